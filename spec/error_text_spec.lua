-- One error helper per direction (STYLE 17): a Lua module never takes an
-- error's text apart to raise or answer it again ("bad argument ... (msg)"
-- cut down to msg, a position stripped, a function's name swapped). A part
-- that must say the same thing in other words gets the words from the part
-- that knows them: a name for the function or the fields (core.check_options
-- (opts, "sse"), jwt.try_verifier(opts, name)), or the message without a
-- raise (sse.event_valid, app.try_new).

-- Text surgery on an error, as it has been written in this code base.
local PATTERNS = {
  { "%((.*)%)", 'match("%((.*)%)$"): the message inside "bad argument ... (...)"' },
  { ":%d+: ", 'gsub("^[^:]*:%d+: ", ""): the position in front of a message' },
  { "to '", "gsub(\"to 'x'\", \"to 'y'\"): another function's name" },
}

-- Sites their owners have yet to change (the hub, the stream, Redis and
-- OpenResty helpers' files); a file leaves this list once it is clean.
local PENDING = {}

local function lua_files()
  local p = assert(io.popen("find lua -name '*.lua' | sort"))
  local list = {}
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

-- The lines of path that apply a pattern of PATTERNS to a string (inside a
-- match or gsub call), with what they do.
local function offences(path)
  local found = {}
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    local code = line:gsub("^%s*%-%-.*$", "")
    for fn, arg in code:gmatch("(%a+)%s*%(%s*(%b\"\")") do
      if fn == "match" or fn == "gsub" or fn == "find" or fn == "gmatch" then
        for _, pat in ipairs(PATTERNS) do
          if arg:find(pat[1], 1, true) then found[#found + 1] = ("%s:%d: %s"):format(path, n, pat[2]) end
        end
      end
    end
  end
  return found
end

describe("error text", function()
  it("no module re-parses an error's text to raise or answer it", function()
    local files = lua_files()
    assert.truthy(#files > 30, "lua/ not found from " .. tostring(os.getenv("PWD")))
    local bad = {}
    for _, path in ipairs(files) do
      if not PENDING[path] then
        for _, o in ipairs(offences(path)) do bad[#bad + 1] = o end
      end
    end
    assert.are.same({}, bad)
  end)

  it("send_json names what cjson said, with no Lua position in it, on every Lua", function()
    local sse = require("sse")
    local Event = require("sse.event")
    local s = sse.Stream.new({ writer = function() return true end })
    local f = function() end
    local _, cjson_msg = Event.json_text(f)
    local ok, err = pcall(s.send_json, s, f)
    assert.is_false(ok)
    assert.are.equal("bad argument #1 to 'send_json' (cannot encode as JSON: " .. cjson_msg .. ")", err)
    assert.is_nil(err:find(":%d+: "), err)
    assert.is_true(s:send_json({ 1 })) -- nothing lost: the stream still sends
    s:close("eof")
  end)

  it("finds the surgery it looks for", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('local a = tostring(e):match("%((.*)%)$")\n',
            'local b = e:gsub("^[^:]*:%d+: ", "")\n',
            "local c = e:gsub(\"to 'verifier'\", \"to 'jwt'\")\n",
            '-- e:match("%((.*)%)$") in a comment is not code\n',
            'local d = ("bad argument #%d to \'%s\' (%s)"):format(1, "f", "m")\n')
    f:close()
    local got = offences(path)
    os.remove(path)
    assert.are.equal(3, #got, table.concat(got, "\n"))
    assert.truthy(got[1]:find(":1: ", 1, true))
    assert.truthy(got[2]:find(":2: ", 1, true))
    assert.truthy(got[3]:find(":3: ", 1, true))
  end)
end)
