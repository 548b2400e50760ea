-- The RESP2 reply reader and command encoder of sse.core (used by the
-- Redis client, lua/sse/redis/conn.lua).
local core = require("sse.core")

-- Every reply a reader yields once `bytes` are fed in pieces of `step`.
local function replies(bytes, step, max)
  local r = core.resp_reader(max)
  local out = {}
  for i = 1, #bytes, step do
    r:feed(bytes:sub(i, i + step - 1))
    while true do
      local ok, v = r:read()
      if not ok then
        if v then out[#out + 1] = { error = v } end
        break
      end
      out[#out + 1] = v
    end
    if out[#out] and type(out[#out]) == "table" and out[#out].error then break end
  end
  return out, r
end

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("sse.core RESP reader", function()
  local all = "+OK\r\n-ERR wrong type\r\n:42\r\n:-7\r\n$5\r\nhel\rl\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
    .. "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*2\r\n:1\r\n$1\r\n\n\r\n"
  local want = {
    "OK", { err = "ERR wrong type" }, 42, -7, "hel\rl", "", false, false, {},
    { "message", "ch", { 1, "\n" } },
  }

  it("reads every RESP2 type, binary-safe, whole or split anywhere", function()
    for _, step in ipairs({ #all, 1, 2, 3, 7, 64 }) do
      assert.are.same(want, (replies(all, step)))
    end
  end)

  it("integers are Lua integers on 5.4", function()
    local out = replies(":9007199254740993\r\n", 100)
    if math.type then
      assert.are.equal("integer", math.type(out[1]))
      assert.are.equal(9007199254740993, out[1])
    end
  end)

  it("answers nil while a reply is incomplete, and counts what is buffered", function()
    local r = core.resp_reader()
    r:feed("*2\r\n$3\r\nabc\r\n")
    assert.is_nil((r:read()))
    assert.are.equal(13, r:buffered())
    r:feed(":1\r\n+x")
    assert.are.same({ true, { "abc", 1 } }, { r:read() })
    assert.is_nil((r:read()))
    assert.are.equal(2, r:buffered())
  end)

  it("refuses what is not RESP2, and stays refused", function()
    for _, bad in ipairs({ "?x\r\n", "+a\nb\r\n", ":1.5\r\n", "$-2\r\n", "$1\r\nab\r\n", "%1\r\n" }) do
      local out = replies(bad, 1)
      assert.are.same({ { error = "protocol error" } }, out, bad)
    end
    local r = core.resp_reader()
    r:feed("?\r\n")
    assert.are.same({ nil, "protocol error" }, { r:read() })
    r:feed("+OK\r\n")
    assert.are.same({ nil, "protocol error" }, { r:read() })
  end)

  it("bounds nesting depth and the size of one reply", function()
    assert.are.same({ { error = "reply nested too deeply" } }, (replies(("*1\r\n"):rep(17) .. ":1\r\n", 5)))
    assert.are.same({ { "x" } }, (replies(("*1\r\n"):rep(1) .. "+x\r\n", 5)))
    assert.are.same({ { error = "reply too large" } }, (replies("$100\r\n", 1, 64)))
    assert.are.same({ { error = "reply too large" } }, (replies("*1000\r\n", 1, 64)))
    assert.are.same({ { error = "reply too large" } }, (replies("+" .. ("x"):rep(100) .. "\r\n", 10, 64)))
    -- replies under the bound pass one after another
    assert.are.same({ "abc", "abc" }, (replies("$3\r\nabc\r\n$3\r\nabc\r\n", 3, 16)))
  end)

  it("checks its arguments and its state", function()
    -- internal functions: the name Lua gives them differs by version
    assert.matches("^bad argument #1 to '.*' %(max_bytes must be an integer >= 16%)$",
      err_of(core.resp_reader, 1))
    local r = core.resp_reader()
    assert.matches("bad argument #2 to '.*' %(string expected, got no value%)", err_of(r.feed, r))
    r:close()
    assert.matches("reader is closed", err_of(r.read, r))
    r:close() -- idempotent
  end)
end)

describe("sse.core.resp_command", function()
  it("encodes a command as an array of bulk strings", function()
    assert.are.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", core.resp_command("SET", "k", ""))
    assert.are.equal("*2\r\n$4\r\nINCR\r\n$2\r\n-5\r\n", core.resp_command("INCR", -5))
    local big = ("x"):rep(10000)
    local cmd = core.resp_command("SET", big, "a\r\nb")
    assert.are.same({ "SET", big, "a\r\nb" }, (replies(cmd, 999)[1]))
  end)

  it("refuses what is not a string or an integer", function()
    assert.matches("^bad argument #2 to '.*' %(string or integer expected, got table%)$",
      err_of(core.resp_command, "GET", {}))
    assert.matches("^bad argument #2 to '.*' %(string or integer expected, got non%-integer number%)$",
      err_of(core.resp_command, "GET", 1.5))
    assert.matches("^bad argument #1 to '.*' %(string expected, got no value%)$",
      err_of(core.resp_command))
  end)
end)
