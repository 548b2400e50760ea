-- Envelope mode benchmark: what a broadcast costs when its subscribers read
-- the plain stream, the envelope, or both, side by side in one run.
--   fan-out   ns per broadcast_to of a 100-byte event (ring replayer: id,
--             store, encode, queue a reference per subscriber) to N pull
--             subscribers of one topic, in plain mode, envelope mode, and
--             half and half; the envelope twin is made once per event, so
--             envelope mode adds a constant per event, not a cost per
--             subscriber
--   replay    ns per replayed event when a client resumes over 1,000 stored
--             events, plain and envelope (the twins are made by the first
--             envelope client and shared by the next ones)
-- Run: make bench-envelope   (BENCH_SECONDS=0.2 for a shorter run)
local sse = require("sse")
local clock = os.clock
local budget = tonumber(os.getenv("BENCH_SECONDS") or "1")

local DATA = '{"user":"ada","action":"edit","doc":"design/spec.md","rev":4711,"note":"' .. ("x"):rep(26) .. '"}'
assert(#DATA == 100, #DATA)
local EV = { event = "edit", data = DATA }

local function stream()
  return sse.Stream.new({ on_ready = function() end, outbox_limit = 2 ^ 40 })
end

-- ns per broadcast to n subscribers, `env` of them in envelope mode: the
-- broadcasts alone are timed; between batches the outboxes are emptied and
-- the garbage collected (not timed)
local function fanout(n, env, seconds)
  local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ max_events = 256 }) })
  local subs = {}
  for i = 1, n do
    subs[i] = stream()
    hub:attach(subs[i], { topics = { "doc" }, envelope = i <= env })
  end
  for i = 1, n do subs[i]:take() end -- the join events
  local sent, timed = 0, 0
  repeat
    local t0 = clock()
    for _ = 1, 16 do hub:broadcast_to("doc", EV) end
    timed = timed + (clock() - t0)
    sent = sent + 16
    for i = 1, n do subs[i]:take() end
    collectgarbage()
  until timed > seconds
  hub:close()
  return timed / sent * 1e9
end

print(("sse envelope benchmark (%s, %.1f s per figure, events of %d B data)"):format(_VERSION, budget, #DATA))
print("ns per broadcast_to (best of 3 runs, interleaved)")
print(("%-8s %12s %12s %12s %16s"):format("subs", "plain", "envelope", "half/half", "envelope-plain"))
for _, n in ipairs({ 1, 100, 1000, 10000 }) do
  local p, e, h = math.huge, math.huge, math.huge
  for _ = 1, 3 do
    p = math.min(p, fanout(n, 0, budget / 3))
    e = math.min(e, fanout(n, n, budget / 3))
    h = math.min(h, fanout(n, n // 2, budget / 3))
  end
  print(("%-8d %12.0f %12.0f %12.0f %16.0f"):format(n, p, e, h, e - p))
end

-- replay of 1,000 stored events to a client of either mode
local function replay(env)
  local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ max_events = 1000, epoch = "b" }) })
  for _ = 1, 1000 do hub:broadcast_to("doc", EV) end
  local n, t0 = 0, clock()
  repeat
    local s = stream()
    hub:attach(s, { topics = { "doc" }, last_event_id = "b-0", envelope = env })
    s:close("bench")
    n = n + 1
  until clock() - t0 > budget
  local ns = (clock() - t0) / n / 1000 * 1e9
  hub:close()
  return ns
end
print(("replay of 1,000 stored events, per event: plain %.0f ns, envelope %.0f ns"):format(replay(false), replay(true)))
-- let the hubs' closed handles finish before Lua exits (luv would run them
-- while the state is being torn down)
require("luv").run()
