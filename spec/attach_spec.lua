-- Attach with an asynchronous replayer (docs/CORE.md 3): live events wait
-- behind the pending replay, the answer goes ahead of them, what it covered
-- is not sent twice, a gap is still signalled.
local sse = require("sse")
local uv = require("luv")
local ref = require("helpers.ref_parser")

-- A backend in the shape of the Redis one: ids "f-<seq>", a log of events,
-- a follower that delivers each new event to the bound hub at once, and
-- replays answered later (by the test).
local function fake_backend()
  local b = { log = {}, seq = 0, pending = {} }
  function b:bind(hub) self.hub = hub end
  function b:last_id() return "f-" .. self.seq end
  function b:publish(ev, topic)
    self.seq = self.seq + 1
    local id = "f-" .. self.seq
    local wire = sse.encode({ id = id, data = ev.data, event = ev.event })
    self.log[self.seq] = { wire = wire, topic = topic }
    self.hub:deliver(wire, topic, self.seq)
    return true
  end
  function b:replay_async(hub, stream, last_id, topics)
    self.pending[#self.pending + 1] = { hub = hub, stream = stream, last = tonumber(last_id:match("^f%-(%d+)$")),
                                        topics = topics }
  end
  -- answers the oldest pending replay with what the log holds now
  function b:answer(gap)
    local p = table.remove(self.pending, 1)
    local frames = {}
    for s = (p.last or 0) + 1, self.seq do
      local e = self.log[s]
      if e and not gap then frames[#frames + 1] = e.wire end
    end
    return p.hub:resume(p.stream, frames, self.seq, gap)
  end
  return b
end

local function writer_stream(opts)
  local out = {}
  opts = opts or {}
  opts.writer = function(bytes) out[#out + 1] = bytes return true end
  return sse.Stream.new(opts), out
end

local function events(out) return ref.parse(table.concat(out)) end

local function datas(out)
  local t = {}
  for _, e in ipairs(events(out)) do t[#t + 1] = e.type .. ":" .. e.data end
  return t
end

describe("hub:attach with an asynchronous replayer", function()
  it("queues live events behind the pending replay and drops the ones it covered", function()
    local b = fake_backend()
    local hub = sse.Hub.new({ replayer = b, flush = "immediate" })
    for i = 1, 3 do hub:broadcast({ data = "e" .. i }) end
    local st, out = writer_stream()
    assert.are.same({ 0, "pending" }, { hub:attach(st, { last_event_id = "f-1" }) })
    assert.are.equal("replaying", st:_state())
    -- published while the replay is pending: e4 will be in the replay (the
    -- backend answers with its present), e5 comes after
    hub:broadcast({ data = "e4" })
    assert.are.same({}, out) -- nothing goes out before the replay
    local answered
    local t = uv.new_timer()
    t:start(10, 0, function()
      t:close()
      answered = b:answer()
      hub:broadcast({ data = "e5" })
    end)
    uv.run()
    assert.are.equal(3, answered)
    assert.are.same({ "message:e2", "message:e3", "message:e4", "message:e5" }, datas(out))
    assert.are.equal("f-5", events(out)[4].id)
    hub:close()
  end)

  it("sends the gap event first, then the live events", function()
    local b = fake_backend()
    local hub = sse.Hub.new({ replayer = b, flush = "immediate" })
    hub:broadcast({ data = "e1" })
    local st, out = writer_stream()
    hub:attach(st, { last_event_id = "old-9" })
    hub:broadcast({ data = "e2" })
    b:answer({ oldest = "f-1", latest = "f-2" })
    local evs = events(out)
    assert.are.equal("sse-gap", evs[1].type)
    assert.are.equal('{"last_event_id":"old-9","oldest":"f-1","latest":"f-2","dropped":null}', evs[1].data)
    -- nothing replayed: the join event moves the client to the present; e2
    -- (seq 2 <= upto) was covered by the answer and is not sent again
    assert.are.equal("sse-join", evs[2].type)
    assert.are.equal("f-2", evs[2].id)
    assert.are.equal(2, #evs)
    hub:close()
  end)

  it("answers a failed replay with a gap and goes live", function()
    local b = fake_backend()
    function b.replay_async() error("redis down") end
    local hub = sse.Hub.new({ replayer = b, flush = "immediate" })
    local st, out = writer_stream()
    hub:attach(st, { last_event_id = "f-0" })
    hub:broadcast({ data = "live" })
    local evs = events(out)
    assert.are.equal("sse-gap", evs[1].type)
    assert.are.equal('{"last_event_id":"f-0","oldest":null,"latest":null,"dropped":null}', evs[1].data)
    assert.are.equal("live", evs[2].data)
    hub:close()
  end)

  it("ignores the answer for a stream closed meanwhile", function()
    local b = fake_backend()
    local hub = sse.Hub.new({ replayer = b, flush = "immediate" })
    hub:broadcast({ data = "e1" })
    local st, out = writer_stream()
    hub:attach(st, { last_event_id = "f-0" })
    hub:broadcast({ data = "e2" })
    st:close()
    assert.are.same({ nil, "closed" }, { b:answer() })
    assert.are.same({}, out) -- the waiting live event never went out alone
    assert.are.equal(0, hub:connection_count())
    hub:close()
  end)
end)

describe("hub:attach with the memory ring", function()
  it("starts a fresh client with an sse-join event that carries data and the id", function()
    local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ epoch = "ep" }), flush = "immediate" })
    hub:broadcast({ data = "before" })
    local st, out = writer_stream()
    hub:attach(st, {})
    assert.are.equal('event: sse-join\nid: ep-1\ndata: {"last_event_id":"ep-1"}\n\n', table.concat(out))
    hub:close()
  end)

  it("applies the hub's outbox limit and policy to a stream that chose none", function()
    local hub = sse.Hub.new({ outbox_limit = 512, slow_policy = "drop_oldest", flush = "immediate" })
    local out = {}
    local st = sse.Stream.new({ on_ready = function() end })
    hub:attach(st, {})
    for i = 1, 20 do hub:broadcast({ data = ("x"):rep(40) .. i }) end
    -- drop_oldest, 512 bytes: still open (the stream's own default is close / 1 MiB)
    assert.is_false(st:is_closed())
    assert.is_true(st:queued_bytes() <= 512, st:queued_bytes())
    out[1] = st:take()
    assert.truthy(out[1]:find("event: sse-gap", 1, true))
    -- a stream that chose its own keeps it
    local own = sse.Stream.new({ on_ready = function() end, slow_policy = "close" })
    hub:attach(own, {})
    for i = 1, 20 do hub:broadcast({ data = ("x"):rep(40) .. i }) end
    assert.is_true(own:is_closed())
    hub:close()
  end)

  it("replays in one C call: the ring's Lua replay method is never called", function()
    local core = require("sse.core")
    local methods = core.ring_metatable.__index
    local r = sse.MemoryReplayer.new({ epoch = "ep" })
    local hub = sse.Hub.new({ replayer = r, flush = "immediate" })
    for i = 1, 5 do
      hub:broadcast_to(i % 2 == 0 and "even" or "odd", { data = "e" .. i })
    end
    hub:broadcast({ data = "all" })
    local replay = methods.replay
    local calls = 0
    methods.replay = function(...) calls = calls + 1 return replay(...) end
    local ok, err = pcall(function()
      local st, out = writer_stream()
      assert.are.same({ 3 }, { hub:attach(st, { topics = { "even" }, last_event_id = "ep-1" }) })
      assert.are.same({ "message:e2", "message:e4", "message:all" }, datas(out))
      assert.are.equal("ep-6", events(out)[3].id)
      -- outside the window: the gap event, then what the ring holds
      local st2, out2 = writer_stream()
      assert.are.same({ 4, "gap" }, { hub:attach(st2, { topics = { "odd" }, last_event_id = "zz-3" }) })
      local evs = events(out2)
      assert.are.equal("sse-gap", evs[1].type)
      assert.are.equal('{"last_event_id":"zz-3","oldest":"ep-1","latest":"ep-6","dropped":null}', evs[1].data)
      assert.are.same({ "sse-gap:" .. evs[1].data, "message:e1", "message:e3", "message:e5", "message:all" },
        datas(out2))
    end)
    methods.replay = replay
    assert(ok, err)
    assert.are.equal(0, calls)
    hub:close()
  end)

  it("answers nil, 'closed' when the ring's clock closes the ring during attach", function()
    local r
    local closing = false
    r = sse.MemoryReplayer.new({ epoch = "ep", clock = function()
      if closing then r:close() end
      return 1
    end })
    local hub = sse.Hub.new({ replayer = r, flush = "immediate" })
    hub:broadcast({ data = "x" })
    closing = true
    local st = writer_stream()
    assert.are.same({ nil, "closed" }, { hub:attach(st, { last_event_id = "ep-0" }) })
    hub:close()
  end)

  it("names the bad topic of attach", function()
    local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new(), flush = "immediate" })
    local util = require("helpers.util")
    util.raises_arg(2, "field 'topics': topics[2] must be a string, got number",
      hub.attach, hub, writer_stream(), { topics = { "a", 7 } })
    hub:close()
  end)
end)
