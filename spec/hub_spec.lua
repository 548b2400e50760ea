local sse = require("sse")
local net = require("helpers.net")
local util = require("helpers.util")
local uv = require("luv")

-- A hub whose server side turns every accepted connection into a stream.
-- on_stream(stream, index) decides what to do with it (attach, subscribe...).
local function setup(hub, on_stream, sndbuf)
  local streams = {}
  local server, port = net.server(function(tcp)
    local st = hub:new_stream({ handle = tcp })
    streams[#streams + 1] = st
    -- notice a vanished client, as sse.http does
    tcp:read_start(function(err, data)
      if err or not data then st:close(err or "eof") end
    end)
    on_stream(st, #streams)
  end, sndbuf)
  return server, port, streams
end

local function datas(events)
  local t = {}
  for i, e in ipairs(events) do t[i] = e.data end
  return t
end

describe("sse.Hub", function()
  it("broadcasts every event, in order, to every client", function()
    local hub = sse.Hub.new()
    local N, M = 40, 25
    local clients = {}
    net.run(5, function(done)
      local _, port = setup(hub, function(st) hub:register(st) end)
      for i = 1, N do clients[i] = net.client(port) end
      net.when(function() return hub:connection_count() == N end, function()
        for i = 1, M do
          local n = hub:broadcast({ data = "event " .. i })
          assert.are.equal(N, n)
        end
        net.when(function()
          for _, c in ipairs(clients) do if #c:events() < M then return false end end
          return true
        end, done)
      end)
    end)
    for _, c in ipairs(clients) do
      local got = datas(c:events())
      assert.are.equal(M, #got)
      for i = 1, M do assert.are.equal("event " .. i, got[i]) end
    end
    assert.are.equal(25, hub.stats.published)
    hub:close()
  end)

  it("coalesces a burst published in one loop turn: one write per 64 events", function()
    local hub = sse.Hub.new()
    net.run(5, function(done)
      local _, port, streams = setup(hub, function(st) hub:register(st) end)
      local c = net.client(port)
      net.when(function() return hub:connection_count() == 1 end, function()
        for i = 1, 100 do hub:broadcast({ data = tostring(i) }) end
        -- the first 64 went out as one write when the batch filled; the rest
        -- wait for the end of the loop turn
        local expected = 0
        for i = 65, 100 do expected = expected + #("data: " .. i .. "\n\n") end
        assert.are.equal(expected, streams[1]:queued_bytes())
        net.when(function() return c.n == 100 end, function()
          assert.are.equal(0, streams[1]:queued_bytes())
          for i, e in ipairs(c:events()) do assert.are.equal(tostring(i), e.data) end
          done()
        end)
      end)
    end)
    hub:close()
  end)

  it("sends topic events only to the topic's subscribers", function()
    local hub = sse.Hub.new()
    net.run(5, function(done)
      local _, port = setup(hub, function(st, i)
        hub:attach(st, { topics = i == 1 and { "a" } or i == 2 and { "a", "b" } or {} })
      end)
      local cs = { net.client(port), net.client(port), net.client(port) }
      net.when(function() return hub:connection_count() == 3 end, function()
        assert.are.equal(2, hub:topic_count("a"))
        assert.are.equal(1, hub:topic_count("b"))
        assert.are.equal(0, hub:topic_count("c"))
        assert.are.same({ a = 2, b = 1 }, hub:topics())
        assert.are.equal(2, (hub:broadcast_to("a", { data = "to a" })))
        assert.are.equal(1, (hub:broadcast_to("b", { data = "to b" })))
        assert.are.equal(0, (hub:broadcast_to("c", { data = "to c" })))
        assert.are.equal(3, (hub:broadcast({ data = "to all" })))
        net.when(function() return #cs[3]:events() == 1 and #cs[2]:events() == 3 end, function()
          assert.are.same({ "to a", "to all" }, datas(cs[1]:events()))
          assert.are.same({ "to a", "to b", "to all" }, datas(cs[2]:events()))
          assert.are.same({ "to all" }, datas(cs[3]:events()))
          done()
        end)
      end)
    end)
    hub:close()
  end)

  it("unsubscribes and unregisters", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    local st = sse.Stream.new({ writer = function() return true end })
    assert.is_true(hub:subscribe(st, "x"))
    assert.is_true(hub:is_subscribed(st, "x"))
    assert.are.equal(1, hub:topic_count("x"))
    assert.is_true(hub:unsubscribe(st, "x"))
    assert.is_false(hub:unsubscribe(st, "x"))
    assert.are.equal(0, hub:topic_count("x"))
    assert.are.equal(1, hub:connection_count())
    assert.is_true(hub:unregister(st))
    assert.are.equal(0, hub:connection_count())
    assert.are.equal(0, (hub:broadcast({ data = "x" })))
    hub:close()
  end)

  describe("attach and replay", function()
    it("replays what a client missed, then goes live, with no loss or duplicate", function()
      local r = sse.MemoryReplayer.new({ max_events = 100 })
      local hub = sse.Hub.new({ replayer = r })
      local ids = {}
      for i = 1, 10 do ids[i] = select(2, hub:broadcast({ data = "e" .. i })) end
      local c
      net.run(5, function(done)
        local _, port = setup(hub, function(st)
          local n, gap = hub:attach(st, { last_event_id = ids[4] })
          assert.are.equal(6, n)
          assert.is_nil(gap)
          -- published right after the replay, in the same turn
          hub:broadcast({ data = "e11" })
        end)
        c = net.client(port)
        net.when(function() return #c:events() >= 7 end, function()
          hub:broadcast({ data = "e12" })
          net.when(function() return #c:events() >= 8 end, function() net.after(20, done) end)
        end)
      end)
      local got = datas(c:events())
      assert.are.same({ "e5", "e6", "e7", "e8", "e9", "e10", "e11", "e12" }, got)
      local evs = c:events()
      assert.are.equal(ids[10], evs[6].id)
      assert.are.equal(r:last_id(), evs[8].id)
      hub:close()
    end)

    it("filters the replay by topic", function()
      local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new() })
      local first = select(2, hub:broadcast_to("a", { data = "a0" }))
      hub:broadcast_to("a", { data = "a1" })
      hub:broadcast_to("b", { data = "b1" })
      hub:broadcast({ data = "all" })
      local out = {}
      local st = sse.Stream.new({ writer = function(b) out[#out + 1] = b return true end })
      assert.are.equal(2, (hub:attach(st, { topics = { "a" }, last_event_id = first })))
      local evs = require("helpers.ref_parser").parse(table.concat(out))
      assert.are.same({ "a1", "all" }, datas(evs))
      hub:close()
    end)

    it("sends the gap event first when the id is outside the window", function()
      local r = sse.MemoryReplayer.new({ max_events = 3 })
      local hub = sse.Hub.new({ replayer = r })
      local first = select(2, hub:broadcast({ data = "1" }))
      for i = 2, 6 do hub:broadcast({ data = tostring(i) }) end
      local out = {}
      local st = sse.Stream.new({ writer = function(b) out[#out + 1] = b return true end })
      local n, gap = hub:attach(st, { last_event_id = first })
      assert.are.equal(3, n)
      assert.are.equal("gap", gap)
      local evs = require("helpers.ref_parser").parse(table.concat(out))
      assert.are.equal(4, #evs)
      assert.are.equal("sse-gap", evs[1].type)
      local info = require("cjson").decode(evs[1].data)
      assert.are.equal(first, info.last_event_id)
      assert.are.equal(r:last_id(), info.latest)
      assert.are.same({ "4", "5", "6" }, { evs[2].data, evs[3].data, evs[4].data })
      hub:close()
    end)

    it("refuses an event carrying its own id when ids are the replayer's", function()
      local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new() })
      util.raises_arg(1, "event must not carry an id when the hub has a replayer (ids are the replayer's)",
        hub.broadcast, hub, { id = "1", data = "x" })
      assert.are.equal(0, hub:replayer():len())
      hub:close()
    end)
  end)

  describe("slow consumers", function()
    local function slow_run(policy, check)
      local hub = sse.Hub.new({ outbox_limit = 64 * 1024, slow_policy = policy })
      local payload = ("x"):rep(8000)
      local closed_reason
      net.run(10, function(done)
        local _, port, streams = setup(hub, function(st)
          hub:register(st)
          st:on_close(function(why) closed_reason = why end)
        end, 16384)
        local fast = net.client(port)
        local slow = net.client(port, { read = false, rcvbuf = 4096 })
        net.when(function() return hub:connection_count() == 2 end, function()
          local sent = 0
          local pump = uv.new_timer()
          pump:start(1, 1, function()
            for _ = 1, 4 do -- 32 KB a tick: a reading client keeps up
              sent = sent + 1
              hub:broadcast({ data = payload .. sent })
            end
            if streams[2] and not streams[2]:is_closed() then
              assert.is_true(streams[2]:queued_bytes() <= 64 * 1024, "outbox over its limit")
            end
            if sent >= 600 then
              pump:stop()
              pump:close()
              net.when(function() return fast.n >= sent end, function()
                check(hub, streams, fast, slow, sent, closed_reason, done)
              end)
            end
          end)
        end)
      end)
      hub:close()
    end

    it("closes a client that stops reading and keeps the others at pace (close policy)", function()
      slow_run("close", function(hub, streams, fast, _, sent, reason, done)
        assert.is_true(streams[2]:is_closed())
        assert.are.equal("slow", reason)
        assert.are.equal(1, hub:connection_count())
        assert.are.equal(1, hub.stats.slow_closed)
        assert.are.equal(sent, fast.n)
        done()
      end)
    end)

    it("drops the oldest events and tells the client (drop_oldest policy)", function()
      slow_run("drop_oldest", function(hub, streams, fast, slow, sent, _, done)
        assert.is_false(streams[2]:is_closed())
        assert.are.equal(2, hub:connection_count())
        assert.are.equal(sent, fast.n)
        assert.is_true(streams[2]:queued_bytes() <= 64 * 1024)
        slow:start() -- reading again: it gets a gap event, then the newest events
        net.when(function()
          local evs = slow:events()
          return #evs > 0 and evs[#evs].data == ("x"):rep(8000) .. sent
        end, function()
          local seen_gap = false
          for _, e in ipairs(slow:events()) do
            if e.type == "sse-gap" then
              seen_gap = true
              assert.truthy(e.data:match('^{"last_event_id":null,"oldest":null,"latest":null,"dropped":%d+}$'), e.data)
            end
          end
          assert.is_true(seen_gap)
          done()
        end)
      end)
    end)
  end)

  it("closes and unregisters clients that vanished, within a loop turn of noticing", function()
    local hub = sse.Hub.new()
    local closes = 0
    net.run(5, function(done)
      local _, port = setup(hub, function(st)
        hub:register(st)
        st:on_close(function() closes = closes + 1 end)
      end)
      local cs = {}
      for i = 1, 10 do cs[i] = net.client(port) end
      net.when(function() return hub:connection_count() == 10 end, function()
        for _, c in ipairs(cs) do c:close() end
        net.when(function() return hub:connection_count() == 0 end, done)
      end)
    end)
    assert.are.equal(10, closes)
    hub:close()
  end)

  it("writes to a luv pipe handle through the C fast path", function()
    local hub = sse.Hub.new()
    local fds = uv.pipe({ nonblock = true }, { nonblock = true })
    local w, r = uv.new_pipe(), uv.new_pipe()
    w:open(fds.write)
    r:open(fds.read)
    local got = {}
    net.run(5, function(done)
      local st = hub:new_stream({ handle = w })
      hub:register(st)
      r:read_start(net.guarded(function(err, data)
        assert.is_nil(err)
        if data then got[#got + 1] = data end
        if table.concat(got):find("data: two\n\n", 1, true) then done() end
      end))
      hub:broadcast({ data = "one" })
      hub:broadcast({ data = "two" })
    end)
    assert.are.equal("data: one\n\ndata: two\n\n", table.concat(got))
    hub:close()
  end)

  it("sends keep-alive comments to idle clients", function()
    local hub = sse.Hub.new({ keepalive = 0.05 })
    net.run(5, function(done)
      local _, port = setup(hub, function(st) hub:register(st) end)
      local c = net.client(port)
      net.when(function() return c:text():find(": keep-alive\n\n", 1, true) ~= nil end, done)
    end)
    hub:close()
  end)

  it("lets hooks observe and veto", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    local out = {}
    local st = sse.Stream.new({ writer = function(b) out[#out + 1] = b return true end })
    hub:subscribe(st, "t")
    local seen = {}
    hub.on_broadcast = function(ev) seen[#seen + 1] = ev.data return ev.data ~= "secret" end
    hub.on_broadcast_to = function(topic, ev) return topic ~= "t" or ev.data ~= "no" end
    assert.are.same({ 1 }, { (hub:broadcast({ data = "hello" })) })
    assert.are.same({ nil, "vetoed" }, { hub:broadcast({ data = "secret" }) })
    assert.are.same({ nil, "vetoed" }, { hub:broadcast_to("t", { data = "no" }) })
    assert.are.equal(1, (hub:broadcast_to("t", { data = "yes" })))
    assert.are.same({ "hello", "secret" }, seen)
    assert.are.equal("data: hello\n\ndata: yes\n\n", table.concat(out))
    hub:close()
  end)

  it("delivers to writer-function streams and closes those whose writer fails", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    local good, calls = {}, 0
    local a = sse.Stream.new({ writer = function(b) good[#good + 1] = b return true end })
    local b = sse.Stream.new({ writer = function() calls = calls + 1 return nil, "broken pipe" end })
    local reason
    b:on_close(function(why) reason = why end)
    hub:register(a)
    hub:register(b)
    hub:broadcast({ data = "1" })
    hub:broadcast({ data = "2" })
    assert.are.equal("data: 1\n\ndata: 2\n\n", table.concat(good))
    assert.is_true(b:is_closed())
    assert.are.equal("broken pipe", reason)
    assert.are.equal(1, calls)
    assert.are.equal(1, hub:connection_count())
    hub:close()
    assert.is_true(a:is_closed())
  end)

  describe("bad arguments", function()
    local hub
    before_each(function() hub = sse.Hub.new({ flush = "immediate" }) end)
    after_each(function() hub:close() end)

    it("names each one", function()
      util.raises_arg(1, "field 'slow_policy': \"close\" or \"drop_oldest\" expected, got fast",
        sse.Hub.new, { slow_policy = "fast" })
      util.raises_arg(1, "field 'outbox_limit': positive number expected, got 0", sse.Hub.new, { outbox_limit = 0 })
      util.raises_arg(1, "field 'keepalive': positive number of seconds expected", sse.Hub.new, { keepalive = -1 })
      util.raises_arg(1, "field 'replayer' must have a 'store' method", sse.Hub.new, { replayer = {} })
      util.raises_arg(1, "sse.Stream expected, got table", hub.register, hub, {})
      util.raises_arg(2, "topic (string) expected, got nil",
        hub.subscribe, hub, sse.Stream.new({ writer = print }))
      util.raises_arg(1, "topic (string) expected, got number", hub.broadcast_to, hub, 5, { data = "x" })
      util.raises_arg(1, "field 'id' must not contain a line break (byte 2)",
        hub.broadcast, hub, { id = "a\n", data = "x" })
      util.raises_arg(2, "field 'data': string expected, got boolean (use sse.Event.json for other values)",
        hub.broadcast_to, hub, "t", { data = true })
      util.raises_arg(1, "event (table or sse.Event) expected, got string", hub.broadcast, hub, "data")
      util.raises_arg(2, "field 'topics': topics[2] must be a string, got number",
        hub.attach, hub, sse.Stream.new({ writer = print }), { topics = { "a", 1 } })
    end)

    it("refuses a closed stream at runtime", function()
      local st = sse.Stream.new({ writer = function() return true end })
      st:close()
      assert.are.same({ nil, "closed" }, { hub:register(st) })
      assert.are.same({ nil, "closed" }, { hub:subscribe(st, "x") })
    end)
  end)
end)
