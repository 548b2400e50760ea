-- core.http_listen: sse.http's listener and connections in C (lua_listen.c).
-- Real sockets and a real luv loop; the clients are luv's own handles.
local core = require("sse.core")
local uv = require("luv")
local net = require("helpers.net")
local util = require("helpers.util")

local function listen(max, on_data, on_refuse)
  local l = assert(core.http_listen("127.0.0.1", 0, 128, max or 100, 0,
    net.guarded(on_data or function() end), net.guarded(on_refuse or function(c) c:close() end)))
  return l, l:getsockname().port
end

describe("core.http_listen", function()
  it("hands a connection to Lua with its first bytes, and its methods answer as luv's", function()
    local got = {}
    net.run(5, function(done)
      local l, port
      l, port = listen(100, function(c, data, req)
        got.data, got.req = data, req
        got.type = tostring(c):match("^sse%.Conn") ~= nil
        got.peer = c:getpeername()
        got.sock = c:getsockname()
        got.queue = c:get_write_queue_size()
        got.set_sndbuf = c:send_buffer_size(8192)
        got.sndbuf = c:send_buffer_size()
        got.fd = c:fileno()
        assert(c:write({ "HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n\r\nok" }, function(err)
          got.write_err = err or "none"
          assert(c:shutdown(function(serr)
            got.shutdown_err = serr or "none"
            c:close(function() got.closed_cb = true end)
            got.closing = c:is_closing()
            got.second_close = select("#", c:close())
            got.after = { c:write("x") }
          end))
        end))
      end)
      local client = net.client(port)
      net.when(function() return client.connected end, function()
        got.client_port = client.tcp:getsockname().port
        client.tcp:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      end)
      net.when(function() return client.eof and got.closed_cb end, function()
        got.reply = client:text()
        l:close()
        done()
      end)
    end)
    assert.are.equal("", got.data) -- a whole head: parsed, nothing after it
    assert.are.same({ method = "GET", target = "/", path = "/", query = "", version = "1.1",
      headers = { host = "x" }, keep_alive = true, head_bytes = 27 }, got.req)
    assert.is_true(got.type)
    assert.are.same({ ip = "127.0.0.1", family = "inet", port = got.client_port }, got.peer)
    assert.are.equal("127.0.0.1", got.sock.ip)
    assert.are.equal(0, got.queue)
    assert.are.equal(0, got.set_sndbuf)
    assert.is_true(got.sndbuf >= 8192) -- Linux doubles what it is given
    assert.are.equal("number", type(got.fd))
    assert.are.equal("none", got.write_err)
    assert.are.equal("none", got.shutdown_err)
    assert.are.equal("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", got.reply)
    assert.is_true(got.closing)
    assert.are.equal(0, got.second_close)
    assert.are.equal(nil, got.after[1])
    assert.are.equal("EBADF", got.after[2])
  end)

  it("parses a whole head (the rest after it), and hands over what it cannot parse as bytes", function()
    local sends = {
      "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b", -- head, then more
      "GET /partial HTTP/1.1\r\nHost:", -- not a whole head
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n", -- the parser refuses it: Lua answers the 400
    }
    local got = {}
    net.run(5, function(done)
      local l, port
      l, port = listen(100, function(c, data, req)
        got[#got + 1] = { data = data, req = req }
        c:close()
        if #got == #sends then
          l:close()
          done()
        end
      end)
      for i, bytes in ipairs(sends) do
        net.after(30 * i, function()
          local c = net.client(port)
          net.when(function() return c.connected end, function() c.tcp:write(bytes) end)
        end)
      end
    end)
    assert.are.equal("abcGET /b", got[1].data)
    assert.are.equal("/a", got[1].req.path)
    assert.are.equal("x=1", got[1].req.query)
    assert.are.equal(3, got[1].req.content_length)
    assert.are.same({ data = sends[2] }, got[2])
    assert.are.same({ data = sends[3] }, got[3])
  end)

  it("counts open connections, refuses past max without counting, closes silent ones on expire", function()
    local seen = {}
    net.run(5, function(done)
      local refused = 0
      local l, port
      l, port = listen(2, function(c) seen[#seen + 1] = c end, function(c)
        refused = refused + 1
        c:write("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        c:close()
      end)
      local a, b = net.client(port), net.client(port)
      net.when(function() return l:count() == 2 and l:pending() == 2 end, function()
        local c3 = net.client(port) -- the third: refused, not counted
        net.when(function() return refused == 1 and c3.eof end, function()
          assert.are.equal(2, l:count())
          assert.matches("^HTTP/1.1 503", c3:text())
          a.tcp:write("hello")
          net.when(function() return #seen == 1 end, function()
            assert.are.equal(1, l:pending()) -- a said something: Lua has it
            assert.are.equal(0, l:expire(60000)) -- b is not that old
            assert.are.equal(1, l:expire(0)) -- b sent nothing: closed
            assert.are.equal(0, l:pending())
            assert.are.equal(1, l:count())
            net.when(function() return b.eof end, function()
              seen[1]:close()
              assert.are.equal(0, l:count())
              l:close()
              assert.are.equal(0, l:count())
              assert.are.equal(nil, l:getsockname())
              done()
            end)
          end)
        end)
      end)
    end)
  end)

  it("shows its handles to uv.walk as userdata with is_closing and close", function()
    local walked = {}
    net.run(5, function(done)
      local l, port
      l, port = listen(100, function(c)
        uv.walk(function(h)
          local s = tostring(h)
          if s:match("^sse%.") then walked[#walked + 1] = s:match("^sse%.%a+") end
        end)
        c:close()
        done()
      end)
      local client = net.client(port)
      net.when(function() return client.connected end, function() client.tcp:write("x") end)
      assert(l)
    end) -- net.run closes every handle it walks: the listener too
    table.sort(walked)
    assert.are.same({ "sse.Conn", "sse.Listener" }, walked)
  end)

  it("leaves nothing behind when the state closes with connections open", function()
    -- a child lua: a listener, one connection handed to Lua and one pending,
    -- then os.exit(0, true) closes the state (finalizers, luv's loop __gc)
    local lua = os.getenv("SSE_LUA") or "lua5.4"
    local script = [[
      local core, uv = require("sse.core"), require("luv")
      local l = assert(core.http_listen("127.0.0.1", 0, 16, 10, 0, function(c) _G.kept = c end, function() end))
      local port = l:getsockname().port
      local a, b = uv.new_tcp(), uv.new_tcp()
      a:connect("127.0.0.1", port, function() a:write("GET / HTTP/1.1\r\n") end)
      b:connect("127.0.0.1", port, function() end)
      local t = uv.new_timer()
      t:start(10, 10, function()
        if _G.kept and l:pending() == 1 then
          _G.kept:write("partial", function() end)
          t:stop()
          uv.stop()
        end
      end)
      uv.run()
      io.write("count ", l:count(), "\n")
      os.exit(0, true)
    ]]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local p = assert(io.popen(("LUA_PATH=%q LUA_CPATH=%q %s %s 2>&1; echo \"rc $?\""):format(
      package.path, package.cpath, lua, path)))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    assert.are.equal("count 2\nrc 0\n", out)
  end)

  -- Out of memory when a connection comes: libuv holds it unaccepted and
  -- stops accepting until it is taken; the sweep (listener:expire) takes it
  -- once memory is back, and the listener accepts again. A child process
  -- whose calloc fails while a flag file exists (spec/helpers/calloc_fail.c).
  it("takes a connection that came while memory was out, and accepts on", function()
    if os.getenv("LD_PRELOAD") then
      return pending("LD_PRELOAD is set (a sanitizer runtime, valgrind): the shim's calloc would not be the one called")
    end
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    finally(function() os.execute("rm -rf " .. dir) end)
    local shim = dir .. "/calloc_fail.so"
    assert(os.execute(("cc -shared -fPIC -O1 -o %s spec/helpers/calloc_fail.c -ldl"):format(shim)),
      "cannot build the calloc shim (needs cc)")
    local script = [[
      local uv, sse = require("luv"), require("sse")
      local flag = arg[1]
      local app = sse.http.new({ host = "127.0.0.1", port = 0, log = function() end })
      app:get("/x", function(_, res) res:send("ok") end)
      local port = assert(app:listen())
      local function get(done)
        local t, got = uv.new_tcp(), ""
        t:connect("127.0.0.1", port, function(err)
          if err then return done("connect: " .. err) end
          t:write("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
          t:read_start(function(_, data)
            if data then got = got .. data return end
            t:close()
            done(got:match("^HTTP/1.1 (%d+)") or got)
          end)
        end)
      end
      io.open(flag, "w"):close() -- calloc fails from now on
      local a, b
      get(function(r) a = r end)
      local t = uv.new_timer()
      t:start(400, 0, function()
        io.write("out of memory: ", tostring(a), "\n")
        os.remove(flag)
        get(function(r) b = r end)
        local n = 0
        t:start(20, 20, function()
          n = n + 1
          if (a and b) or n > 200 then
            io.write("a ", tostring(a), " b ", tostring(b), "\n")
            io.flush()
            os.exit(0)
          end
        end)
      end)
      uv.run()
    ]]
    local path = dir .. "/child.lua"
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local lua = os.getenv("SSE_LUA") or "lua5.4"
    local flag = dir .. "/flag"
    local p = assert(io.popen(("LD_PRELOAD=%q SSE_CALLOC_FAIL=%q LUA_PATH=%q LUA_CPATH=%q timeout 20 %s %s %q 2>&1")
      :format(shim, flag, package.path, package.cpath, lua, path, flag)))
    local out = p:read("*a")
    p:close()
    assert.are.equal("out of memory: nil\na 200 b 200\n", out)
  end)

  it("checks its arguments and says why it cannot bind", function()
    local f = function() end
    util.raises_arg(2, "port out of range", core.http_listen, "127.0.0.1", 70000, 1, 1, 0, f, f)
    util.raises_arg(3, "backlog out of range", core.http_listen, "127.0.0.1", 0, 0, 1, 0, f, f)
    util.raises_arg(6, "function expected, got nil", core.http_listen, "127.0.0.1", 0, 1, 1, 0, nil, f)
    assert.are.same({ nil, "Invalid IP address or port [localhost:0]" },
      { core.http_listen("localhost", 0, 1, 1, 0, f, f) })
    local l = assert(core.http_listen("127.0.0.1", 0, 1, 1, 0, f, f))
    local ok, err = core.http_listen("127.0.0.1", l:getsockname().port, 1, 1, 0, f, f)
    assert.is_nil(ok)
    assert.matches("^EADDRINUSE", err)
    l:close()
    uv.run("nowait")
  end)
end)
