-- sse.Stream as the C core's userdata (issue 10): its options checked in C,
-- graceful close drained and reported by the core's flush (no polling), the
-- core's own closes reported without a further send, the home hub that
-- holds streams no Hub holds, and the hub's loop handles as luv handles.
local sse = require("sse")
local uv = require("luv")
local net = require("helpers.net")
local util = require("helpers.util")

local function count_handles()
  local n = 0
  uv.walk(function(h) if not h:is_closing() then n = n + 1 end end)
  return n
end

describe("sse.Stream, the userdata", function()
  it("is a userdata with the methods, is() and tostring", function()
    local st = sse.Stream.new({ writer = function() return true end })
    assert.are.equal("userdata", type(st))
    assert.is_true(sse.Stream.is(st))
    assert.is_false(sse.Stream.is({}))
    assert.are.equal("sse.Stream(open)", tostring(st))
    assert.is_true(st:send_data("x"))
    st:close()
    assert.are.equal("sse.Stream(closed)", tostring(st))
    assert.are.same({ nil, "closed" }, { st:send_data("y") })
  end)

  it("checks every transport option in C, naming 'new' and the field", function()
    local w = function() return true end
    util.raises_arg(1, "table expected, got nil", sse.Stream.new, nil)
    util.raises_arg(1, "exactly one of 'handle' (luv stream), 'writer' (function) or 'on_ready' "
      .. "(function) expected", sse.Stream.new, {})
    util.raises_arg(1, "exactly one of 'handle' (luv stream), 'writer' (function) or 'on_ready' "
      .. "(function) expected", sse.Stream.new, { writer = w, on_ready = w })
    util.raises_arg(1, "field 'handle': luv stream handle (tcp, pipe or tty) expected, got table",
      sse.Stream.new, { handle = {} })
    util.raises_arg(1, "field 'writer': function expected, got string", sse.Stream.new, { writer = "x" })
    util.raises_arg(1, "field 'on_ready': function expected, got number", sse.Stream.new, { on_ready = 1 })
    util.raises_arg(1, "field 'head': string expected, got boolean", sse.Stream.new, { writer = w, head = true })
    util.raises_arg(1, "field 'last_event_id': string expected, got number",
      sse.Stream.new, { writer = w, last_event_id = 5 })
    util.raises_arg(1, "field 'slow_policy': \"close\" or \"drop_oldest\" expected, got fast",
      sse.Stream.new, { writer = w, slow_policy = "fast" })
    local t = uv.new_tcp()
    t:close()
    util.raises_arg(1, "field 'handle': handle is closed", sse.Stream.new, { handle = t })
    uv.run("nowait")
  end)

  it("is collected when nobody holds it, and kept by the Hub it is registered with", function()
    local weak = setmetatable({}, { __mode = "v" })
    weak[1] = sse.Stream.new({ writer = function() return true end })
    local hub = sse.Hub.new({ flush = "immediate" })
    local kept = sse.Stream.new({ writer = function() return true end })
    hub:register(kept)
    weak[2] = kept
    kept = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
    assert.is_not_nil(weak[2])
    assert.are.equal(weak[2], hub:streams()[1])
    hub:close()
  end)

  it("take() hands a pull host its bytes, small or large, and a small take leaves no garbage", function()
    local st = sse.Stream.new({ on_ready = function() end })
    assert.are.equal("", st:take())
    assert.is_true(st:send_data("x"))
    assert.are.equal("data: x\n\n", st:take())
    -- larger than the C stack buffer of a take: the Lua-owned scratch path
    local big = string.rep("b", 5000)
    assert.is_true(st:send_data("x"))
    assert.is_true(st:send_data(big))
    assert.are.equal("data: x\n\ndata: " .. big .. "\n\n", st:take())
    assert.are.equal("", st:take())
    -- one small event per wake, as a pull stream sees at a steady rate: the
    -- bytes go through the C stack, not a Lua scratch object per take
    for _ = 1, 10 do st:send_data("x"); st:take() end
    collectgarbage()
    collectgarbage("stop")
    local n, grew = 0, 0
    for _ = 1, 2000 do
      st:send_data("x") -- (its own allocations are not counted)
      local before = collectgarbage("count")
      n = n + #st:take()
      grew = grew + (collectgarbage("count") - before) * 1024
    end
    collectgarbage("restart")
    assert.are.equal(2000 * 9, n)
    assert.is_true(grew < 2000 * 8, ("%d bytes of garbage for 2000 takes"):format(grew))
    st:close()
  end)
end)

describe("sse.Stream on a luv handle", function()
  it("drains a graceful close in the core and runs on_close once the client read it all", function()
    local handles_before, handles_after
    local st, client
    local payload = ("z"):rep(200000)
    net.run(10, function(done)
      local _, port = net.server(function(tcp)
        st = sse.Stream.new({ handle = tcp, head = "HTTP/1.1 200 OK\r\n\r\n" })
        st:on_close(function(reason, s)
          assert.are.equal("closed", reason)
          assert.are.equal(st, s)
          net.when(function() return client.eof end, function()
            assert.are.equal("HTTP/1.1 200 OK\r\n\r\n" .. "data: " .. payload .. "\n\n", client:text())
            done()
          end)
        end)
        assert.is_true(st:send_data(payload))
        handles_before = count_handles()
        st:close()
        handles_after = count_handles()
        assert.are.equal("draining", (st:_state()))
        assert.is_true(st:is_closed())
        assert.are.same({ nil, "closed" }, { st:send_data("late") })
        -- the client reads only now: the core writes the rest, then closes
        net.after(100, function() client:start() end)
      end, 16384)
      client = net.client(port, { read = false, rcvbuf = 4096 })
    end)
    -- no timer per closing stream: the home hub's handles were there already
    assert.is_true(handles_after <= handles_before, handles_before .. " -> " .. handles_after)
    assert.are.equal("closed", (st:_state()))
  end)

  it("reports a write the core saw fail without another send", function()
    local reason
    net.run(10, function(done)
      local _, port = net.server(function(tcp)
        local st = sse.Stream.new({ handle = tcp })
        st:on_close(function(why)
          reason = why
          done()
        end)
        -- more than the socket takes: the rest waits for the client, which
        -- resets the connection instead of reading
        st:send_data(("r"):rep(4 * 1024 * 1024))
      end, 16384)
      local c = net.client(port, { read = false, rcvbuf = 4096 })
      net.after(100, function()
        c.tcp:close() -- with unread data: the kernel answers with a reset
      end)
    end)
    assert.are.equal("write failed", reason)
  end)

  it("keeps draining in the home hub when its Hub closes", function()
    local closed_with
    local client
    net.run(10, function(done)
      local hub = sse.Hub.new()
      local _, port = net.server(function(tcp)
        local st = sse.Stream.new({ handle = tcp })
        hub:register(st)
        st:on_close(function(why)
          closed_with = why
          net.when(function() return client.eof end, done)
        end)
        hub:broadcast({ data = ("h"):rep(300000) })
        hub:close() -- closes st gracefully: what is queued still goes out
        assert.are.equal("draining", (st:_state()))
        net.after(100, function() client:start() end)
      end, 16384)
      client = net.client(port, { read = false, rcvbuf = 4096 })
    end)
    assert.are.equal("closed", closed_with)
    assert.are.equal(300000 + #"data: \n\n", #client:text())
  end)

  it("writes at the end of the turn after something closed every luv handle", function()
    -- a uv.walk that closes every handle (net.run does, after each run) also
    -- closes the home hub's: the next push stream gets new ones
    for round = 1, 2 do
      local got
      net.run(5, function(done)
        local _, port = net.server(function(tcp)
          sse.Stream.new({ handle = tcp, head = "round " .. round .. "\n" })
        end)
        local c = net.client(port)
        net.when(function() return c:text() ~= "" end, function()
          got = c:text()
          done()
        end)
      end)
      assert.are.equal("round " .. round .. "\n", got)
    end
  end)

  it("core.read_start: the core reads a luv handle, fn(nil, data) per read, fn(nil, nil) at the end", function()
    local core = require("sse.core")
    local got, calls, want = {}, 0, 200000
    local paused_at
    net.run(5, function(done)
      local _, port = net.server(function(tcp)
        local function reader(err, data)
          calls = calls + 1
          if err or not data then
            got.err, got.eof = err, true
            core.read_release(tcp)
            tcp:close()
            return done()
          end
          got[#got + 1] = data
          if not paused_at then
            -- paused by luv's read_stop, resumed by core.read_start
            paused_at = #table.concat(got)
            tcp:read_stop()
            net.after(20, function() assert.is_true(core.read_start(tcp, reader)) end)
          end
        end
        assert.is_true(core.read_start(tcp, reader))
      end)
      local c = net.client(port, { read = false })
      c.tcp:write(("x"):rep(want), function() c.tcp:shutdown() end)
    end)
    assert.are.equal(want, #table.concat(got))
    assert.is_true(got.eof)
    assert.is_nil(got.err)
    assert.is_true(paused_at > 0 and paused_at < want)
    util.raises_arg(1, "luv stream handle expected, got table", core.read_start, {}, print)
    util.raises_arg(1, "luv stream handle expected, got boolean", core.read_release, true)
  end)

  it("core.read_start: a reset is fn('ECONNRESET', nil); a released handle is no longer read", function()
    local core = require("sse.core")
    local errs, after_release = {}, 0
    net.run(5, function(done)
      local n = 0
      local _, port = net.server(function(tcp)
        n = n + 1
        if n == 1 then
          assert.is_true(core.read_start(tcp, function(err, data)
            if err or not data then
              errs[#errs + 1] = err or "eof"
              tcp:close()
            end
          end))
          tcp:write("never read") -- the client closes with this unread: a reset
        else
          assert.is_true(core.read_start(tcp, function() after_release = after_release + 1 end))
          core.read_release(tcp) -- reading stops: what the client sends stays unread
          net.after(100, function()
            tcp:close()
            done()
          end)
        end
      end)
      local c1 = net.client(port, { read = false })
      net.after(50, function()
        c1.tcp:close()
        net.after(50, function()
          local c2 = net.client(port, { read = false })
          net.after(20, function() c2.tcp:write("ignored") end)
        end)
      end)
    end)
    assert.are.same({ "ECONNRESET" }, errs)
    assert.are.equal(0, after_release)
  end)

  it("watches its connection's end in C: a stream nobody holds still closes at EOF", function()
    local reasons, weak = {}, setmetatable({}, { __mode = "v" })
    local c1, c2
    local accepted = 0
    net.run(5, function(done)
      local _, port = net.server(function(tcp)
        tcp:read_start(function() end) -- reading, as sse.http's connection is
        local st = sse.Stream.new({ handle = tcp, head = "ok\n" })
        st:on_close(function(why)
          reasons[#reasons + 1] = why
          if #reasons == 2 then done() end
        end)
        assert.is_true(st:_watch_eof())
        accepted = accepted + 1
        weak[accepted] = st -- nothing else holds it
        st = nil -- luacheck: ignore
        collectgarbage()
        collectgarbage()
        assert.is_not_nil(weak[accepted]) -- anchored while its connection is watched
        if accepted == 1 then
          c1.tcp:write("ignored bytes\n") -- what the client sends is dropped
        else
          net.after(50, function()
            c2.tcp:close() -- a reset: unread bytes are waiting on its side
          end)
        end
      end)
      c1 = net.client(port)
      -- c1 closes once it has the head (timed from here, not from the
      -- accept callback, whose full GCs can outlast a timer started there)
      net.when(function() return c1:text() == "ok\n" end, function()
        net.after(50, function() c1:close() end)
        c2 = net.client(port, { read = false })
        c2.tcp:write(("x"):rep(100))
      end)
    end)
    -- c1 ended with a FIN; c2, closed with bytes unread, with a reset
    table.sort(reasons, function(a, b) return a:lower() > b:lower() end)
    assert.are.equal("eof", reasons[1])
    assert.truthy(reasons[2] == "eof" or reasons[2]:match("^E%u+$"), reasons[2])
  end)
end)
