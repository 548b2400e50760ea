-- README.md as a test: every ```lua block runs, on the interpreter the
-- suite runs on (make spec: Lua 5.4, make spec-luajit: LuaJIT; each in a
-- child process with the checkout's search path); the start-up banner and
-- the curl session of the demo hub are checked against a running hub; the
-- examples run; the error samples and the Layout match the code.
--
-- A block is run as written, with `sse` already required. The line just
-- above a fence may say how to run it (an HTML comment GitHub hides):
--   <!-- readme-test: given NAME... -->  run it with these names defined:
--        tcp     a luv TCP handle connected to a local server
--        stream  an sse.Stream writing to a function
--        ev      an event table;  id: nil (no Last-Event-ID yet)
--        hub     a demo hub listening; the block's 127.0.0.1:8080 is its
--                address; after the block the loop runs until the block
--                prints, with an event `headline` published on `news`
--   <!-- readme-test: file PATH -->       the block is the file PATH, byte
--        for byte (the file itself is run below)
--   <!-- readme-test: fragment -->        compiled, not run (use sparingly)
--   <!-- readme-test: banner -->          the demo hub prints exactly this
--   <!-- readme-test: session -->         `$ ` lines are run against a demo
--        hub (curl), in the terminals their `# terminal N` comments name;
--        the other lines are what those terminals show
-- In a Lua block, `print(...)  --> text` (or a `--> text` line right under
-- the print) says what that print writes: white space runs are equal, `…`
-- matches anything, a ` -- comment` after the text is not part of it.
local R = require("helpers.readme")
local C = require("helpers.http_client")

local LUA = os.getenv("SSE_LUA") or "lua5.4"
local README = R.read("README.md")
local BLOCKS = R.blocks(README)
local EXAMPLE_PORT = "127.0.0.1:8080"

local FIXTURES = {
  tcp = [[
local tcp
do
  local uv_ = require("luv")
  local server = uv_.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(8, function()
    local c = uv_.new_tcp()
    server:accept(c)
  end))
  tcp = uv_.new_tcp()
  local connected = false
  tcp:connect("127.0.0.1", server:getsockname().port, function(err)
    assert(not err, err)
    connected = true
  end)
  for _ = 1, 1000 do
    if connected then break end
    uv_.run("once")
  end
  assert(connected, "fixture tcp: no connection")
end
]],
  stream = [[
local stream = sse.Stream.new({ writer = function() return true end })
]],
  ev = [[
local ev = { event = "headline", data = "hello" }
]],
  id = [[
local id = nil
]],
  hub = [[
local __app = require("sse.app").new({ port = 0 })
local __port = assert(__app:listen())
local __printed = false
do
  local print_ = print
  print = function(...) print_(...) io.stdout:flush() __printed = true end
end
]],
}

-- what runs after a block given `hub`: publish once it is subscribed, then
-- run the loop until the block printed (at most 5 s)
local HUB_EPILOGUE = [[
do
  local uv_ = require("luv")
  local t0 = uv_.now()
  local published = false
  local tick = uv_.new_timer()
  tick:start(10, 10, function()
    if not published and __app.hub:connection_count() > 0 then
      published = true
      __app.hub:broadcast_to("news", { event = "headline", data = "hello" })
    end
    if __printed or uv_.now() - t0 > 5000 then uv_.stop() end
  end)
  uv_.run()
  assert(__printed, "the block printed nothing within 5 s")
end
]]

-- Runs a Lua block (with its fixtures) in a child on LUA; returns its stdout.
local function run_block(b)
  local given = {}
  if b.kind == "given" then
    for name in b.args:gmatch("%S+") do
      assert(FIXTURES[name], "README.md line " .. b.line .. ": unknown fixture '" .. name .. "'")
      given[#given + 1] = FIXTURES[name]
    end
  end
  local body = b.body
  local epilogue = ""
  if b.kind == "given" and b.args:find("hub") then
    body = body:gsub(EXAMPLE_PORT:gsub("%.", "%%."), function() return "127.0.0.1:\" .. __port .. \"" end)
    epilogue = HUB_EPILOGUE
  end
  local script = table.concat({
    'local sse = require("sse")',
    table.concat(given, "\n"),
    "do",
    body,
    "end",
    epilogue,
    "io.stdout:flush()",
    "os.exit(0)", -- no lua_close: handles the block left open are not collected
  }, "\n")
  local path = R.tmpfile(script)
  local ok, code, out, err = pcall(R.run, LUA, { path }, { env = R.env(), ms = 15000 })
  if not ok then
    os.remove(path)
    error(("README.md line %d: the block did not finish in 15 s (one that serves forever wants a marker:"
      .. " file, given hub or fragment; see spec/readme_spec.lua)\n%s"):format(b.line, tostring(code)), 0)
  end
  os.remove(path)
  assert(code == 0, ("README.md line %d (%s): exit %s\n%s%s"):format(b.line, LUA, tostring(code), out, err))
  return out
end

-- Starts the demo hub as `make run` does (examples/hub/server.lua), on a
-- free port: returns the process and the port.
-- Processes a spec started: killed after it, passed or not.
local live = {}
local function track(p)
  live[#live + 1] = p
  return p
end
local function finish_all()
  for _, p in ipairs(live) do p.finish() end
  live = {}
end

local function start_hub()
  local p = track(R.spawn(LUA, { "examples/hub/server.lua", "--port", "0" }, { env = R.env() }))
  assert(C.wait(function() return p.out():find("stats ", 1, true) ~= nil or p.code ~= nil end, 5000),
    "the hub did not start: " .. p.out() .. p.err())
  local port = p.out():match("listening on http://127%.0%.0%.1:(%d+)/")
  assert(port, p.out() .. p.err())
  return p, port
end

local function stop_hub(p)
  p.kill("sigterm")
  assert.is_true(p.wait(5000))
  p.finish()
  assert.are.equal(0, p.code, p.err())
end

describe("README.md", function()
  after_each(finish_all)
  it("marks its blocks with known kinds only", function()
    local known = { given = true, file = true, fragment = true, banner = true, session = true }
    local lua_blocks = 0
    for _, b in ipairs(BLOCKS) do
      if b.kind then assert(known[b.kind], "README.md line " .. b.line .. ": unknown marker " .. b.kind) end
      if b.lang == "lua" then lua_blocks = lua_blocks + 1 end
    end
    assert.is_true(lua_blocks >= 6, "only " .. lua_blocks .. " lua blocks found")
  end)

  for _, b in ipairs(BLOCKS) do
    if b.lang == "lua" then
      local how = b.kind and (" (" .. b.kind .. " " .. b.args .. ")") or ""
      local what = ("runs the Lua block at line %d%s"):format(b.line, how)
      it(what, function()
        if b.kind == "fragment" then
          assert((loadstring or load)(b.body, "=README.md:" .. b.line))
        elseif b.kind == "file" then
          assert.are.equal(R.read(b.args), b.body, "README.md line " .. b.line .. " differs from " .. b.args)
        else
          local out = run_block(b)
          local lines = {}
          for l in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
          local want = R.expected(b.body)
          if b.kind == "given" and b.args:find("hub") then
            assert.truthy(out:find("%-1\thello\n"), "the client block printed " .. out)
          end
          for _, w in ipairs(want) do
            assert(lines[w.n] and R.same_output(lines[w.n], w.want),
              ("README.md line %d: print #%d wrote %q, the README says %q")
                :format(b.line, w.n, tostring(lines[w.n]), w.want))
          end
        end
      end)
    end
  end

  it("shows the demo hub's start-up banner as it prints it", function()
    local shown
    for _, b in ipairs(BLOCKS) do if b.kind == "banner" then shown = b.body end end
    assert.truthy(shown, "no block marked banner")
    local p, port = start_hub()
    local got = p.out()
    stop_hub(p)
    assert.are.equal(shown:gsub(EXAMPLE_PORT:gsub("%.", "%%."), "127.0.0.1:" .. port), got)
  end)

  it("the curl session gives what it shows, against a running hub", function()
    local block
    for _, b in ipairs(BLOCKS) do if b.kind == "session" then block = b end end
    assert.truthy(block, "no block marked session")
    local p, port = start_hub()
    local subst = EXAMPLE_PORT:gsub("%.", "%%.")
    -- commands and what each terminal shows
    local cmds, shows, term = {}, {}, nil
    for l in block.body:gmatch("([^\n]*)\n") do
      local text, t = l:match("^(.-)%s*#%s*terminal%s*(%d+)")
      text = text or l
      local cmd = text:match("^%$ (.*)$")
      if cmd then
        term = tonumber(t) or (#cmds + 1)
        cmds[#cmds + 1] = { cmd = cmd:gsub(subst, "127.0.0.1:" .. port), term = term }
      else
        term = tonumber(t) or term
        shows[term] = (shows[term] or "") .. text .. "\n"
      end
    end
    assert.are.equal(2, #cmds)
    -- terminal 1 subscribes; once it is counted, terminal 2 publishes
    local sub = track(R.spawn("sh", { "-c", "exec " .. cmds[1].cmd .. " 2>/dev/null" }, { env = R.env_plain() }))
    local stats = function()
      local c = C.connect(tonumber(port))
      local r = c:request(C.get("/stats"), 3000)
      c:close()
      return r and r.body or ""
    end
    assert.is_true(C.wait(function() return stats():find('"connections":1', 1, true) ~= nil end, 5000), stats())
    local code, answer = R.run("sh", { "-c", cmds[2].cmd }, { env = R.env_plain() })
    assert.are.equal(0, code)
    -- the README's ids are examples: its epoch stands for the hub's
    local id = answer:match('"id":"([^"]+)"')
    assert.truthy(id, answer)
    local example = shows[cmds[2].term]:match('"id":"([^"]+)%-%w+"')
    local function real(text)
      text = text:gsub(example:gsub("%p", "%%%0"), (id:match("^(.*)%-%w+$")))
      return text:match("^(.-)\n*$") .. "\n"
    end
    assert.are.equal(real(shows[cmds[2].term]), real(answer))
    local want1 = real(shows[cmds[1].term])
    C.wait(function() return real(sub.out()) == want1 end, 3000)
    assert.are.equal(want1, real(sub.out()))
    sub.finish()
    stop_hub(p)
  end)

  it("quotes the error contract's sample errors as the library raises them", function()
    local sse = require("sse")
    local section = R.section(README, "Error contract")
    local samples = {
      ["bad argument #1 to 'encode' (field 'id' must not contain a line break (byte 3))"] = function()
        return sse.encode({ id = "ab\ncd", data = "x" })
      end,
      ["bad argument #2 to 'event' (string expected, got nil)"] = function()
        return sse.Sse.new():event("tick", nil)
      end,
    }
    for msg, call in pairs(samples) do
      assert.truthy(section:find("`" .. msg .. "`", 1, true), "the Error contract no longer quotes " .. msg)
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.are.equal(msg, tostring(err):gsub("^[^:]*:%d+: ", ""))
    end
  end)

  it("Layout names files that exist, and every C core file and Lua module", function()
    local heading = select(2, README:sub(1, assert(README:find("\n## Layout\n", 1, true))):gsub("\n", "")) + 1
    local layout
    for _, b in ipairs(BLOCKS) do
      if b.line > heading and not layout then layout = b.body end
    end
    assert.truthy(layout, "no block under ## Layout")
    local function exists(path)
      local f = io.open(path)
      if f then f:close() end
      return f ~= nil
    end
    -- a name resolves against the last directory named in its entry, the
    -- entry's first column, or the top of the checkout
    local FILE_EXT = { c = true, h = true, lua = true, html = true, md = true, sh = true, mk = true }
    local named, section = {}, ""
    local here = section
    for l in layout:gmatch("([^\n]*)\n") do
      if l:match("^(%S+/)") then
        section = l:match("^(%S+/)")
        here = section
      end
      for token in l:gmatch("[%w_%.%*/-]+") do
        local name = token:gsub("[%.,:;]+$", "")
        if not name:find("*", 1, true) and (FILE_EXT[name:match("%.(%a+)$") or ""] or name:find("/$")) then
          named[name] = true
          local found
          for _, base in ipairs({ here, section, "" }) do
            if not found and exists(base .. name) then found = base .. name end
          end
          assert(found, "Layout names " .. name .. " (on the line of " .. section .. "), which does not exist")
          if name:find("/$") then here = found end
        end
      end
    end
    local function ls(d)
      local p = io.popen("ls " .. d)
      local t = {}
      for n in p:lines() do t[#t + 1] = n end
      p:close()
      return t
    end
    for _, f in ipairs(ls("csrc/core")) do
      if f:find("%.c$") then assert(named[f], "Layout does not name csrc/core/" .. f) end
    end
    for _, f in ipairs(ls("lua/sse")) do
      local entry = f:find("%.lua$") and f or f .. "/"
      assert(named[entry], "Layout does not name lua/sse/" .. entry)
    end
  end)
end)

describe("examples/", function()
  after_each(finish_all)
  it("chat.lua starts, says where, and relays what is said to a subscriber", function()
    local p = track(R.spawn(LUA, { "examples/chat.lua", "0" }, { env = R.env() }))
    assert.is_true(C.wait(function() return p.out():find("\n") ~= nil or p.code ~= nil end, 5000),
      "no start-up line on " .. LUA .. ": " .. p.out() .. p.err())
    local port = tonumber(p.out():match("^chat on http://127%.0%.0%.1:(%d+)/events\n$"))
    assert.truthy(port, p.out())
    local sub = C.connect(port)
    sub:send("GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    -- the head is written when the stream is attached
    assert.is_true(C.wait(function() return sub.buf:find("\r\n\r\n", 1, true) ~= nil end, 3000), sub.buf)
    local c = C.connect(port)
    local r = c:request(C.post("/say", "hi there"), 3000)
    c:close()
    assert.are.equal(200, r.status)
    local id = r.body:match('"id":"([^"]+)"')
    assert.truthy(id, r.body)
    local want = "event: chat\nid: " .. id .. "\ndata: hi there\n\n"
    assert.is_true(C.wait(function() return sub.buf:find(want, 1, true) ~= nil end, 3000),
      ("got %q, want %q in it"):format(sub.buf, want))
    sub:close()
    p.finish()
  end)

  it("hello_stream.lua prints a response whose body a WHATWG parser reads as the events it built", function()
    local code, out, err = R.run(LUA, { "examples/hello_stream.lua" }, { env = R.env() })
    assert.are.equal(0, code, err)
    local head, body = out:match("^(.-\n)\n(.*)$")
    assert.are.equal(table.concat({
      "HTTP/1.1 200 OK",
      "Cache-Control: no-cache",
      "Content-Type: text/event-stream; charset=utf-8",
      "X-Accel-Buffering: no",
    }, "\n") .. "\n", head)
    local p = require("sse.core").parser()
    local evs = p:feed(body)
    assert.are.equal(3, #evs)
    assert.same({ type = "greeting", data = "hello\nworld", id = "" }, evs[1])
    assert.are.equal("progress", evs[2].type)
    assert.are.equal("1", evs[2].id)
    assert.same({ progress = 0.5, step = "download" }, require("cjson").decode(evs[2].data))
    assert.same({ type = "message", data = "done", id = "1" }, evs[3])
    assert.are.equal(3000, p:retry())
  end)
end)
