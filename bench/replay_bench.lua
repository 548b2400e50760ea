-- Replay benchmark: sse.MemoryReplayer (the C ring) on 100-byte events.
-- Prints figures; asserts nothing but correctness of what it measures.
--   store    ns per r:store(ev) including encoding with the new id
--   lookup   ns per r:replay(last_id, send) that finds its place in a
--            100,000-event ring and sends nothing (the client is up to date),
--            and the same for an id that is a gap
--   replay   events/s for a replay of 10,000 events into a no-op send
-- Run: make && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lua5.4/?.so;;' \
--        lua5.4 bench/replay_bench.lua      (BENCH_SECONDS=0.2 for a shorter run)
local replayer = require("sse.replayer")
local clock = os.clock
local budget = tonumber(os.getenv("BENCH_SECONDS") or "1")

-- Run fn(k) in batches of `batch` for about `budget` seconds: ns per call.
local function ns_per_call(fn, batch)
  local n, t0 = 0, clock()
  repeat
    for _ = 1, batch do fn() end
    n = n + batch
  until clock() - t0 > budget
  return (clock() - t0) / n * 1e9
end

local JSON = '{"user":"ada","action":"edit","doc":"design/spec.md","rev":4711,"ts":1700000000123,"p":""}'
local DATA = JSON:sub(1, -3) .. ("x"):rep(100 - #JSON) .. '"}'

assert(#DATA == 100)
local EV = { data = DATA }

print(("sse replay benchmark (%s, %.1f s per figure, events of %d B data)"):format(_VERSION, budget, #DATA))

-- store ------------------------------------------------------------------
for _, max_events in ipairs({ 1000, 100000 }) do
  local r = replayer.MemoryReplayer.new({ max_events = max_events, max_bytes = 1e9 })
  local first = r:store(EV)
  local ns = ns_per_call(function() r:store(EV) end, 256)
  print(("store, ring of %6d events %8.0f ns/event   (target < 300; first id %q, wire %d B)")
    :format(max_events, ns, first, math.floor(r:bytes() / r:len())))
  r:close()
end

-- a full ring of 100,000 events -----------------------------------------
local N = 100000
local r = replayer.MemoryReplayer.new({ max_events = N, max_bytes = 1e9, ttl = math.huge })
local ids = {}
for i = 1, N do ids[i] = r:store(EV, "news") end -- a topic, so a filter can skip them all
assert(r:len() == N)
local function noop() end

local latest = ids[N]
assert(r:replay(latest, noop) == 0)
local ns = ns_per_call(function() r:replay(latest, noop) end, 256)
print(("lookup, up-to-date id, %d-event ring %8.0f ns          (target < 1000)"):format(N, ns))

-- a baseline: the same call shape on a ring of one event
local tiny = replayer.MemoryReplayer.new({ max_events = 1 })
local tiny_id = tiny:store(EV)
local base = ns_per_call(function() tiny:replay(tiny_id, noop) end, 256)
print(("lookup, up-to-date id, 1-event ring  %8.0f ns          (the call itself)"):format(base))

-- a gap: an id of another run (everything would be replayed: use topics to send none)
local other = "zzzz-1"
local n, err = r:replay(other, noop, { "none" })
assert(n == 0 and err == "gap")
ns = ns_per_call(function() r:replay(other, noop, { "none" }) end, 16)
print(("lookup + filter scan of %d, gap id %8.0f ns          (walks the ring for topics)"):format(N, ns))

-- replay of 10,000 events ---------------------------------------------------
local from = ids[N - 10000]
assert(r:replay(from, noop) == 10000)
local t0, rounds = clock(), 0
repeat
  r:replay(from, noop)
  rounds = rounds + 1
until clock() - t0 > budget
local secs = (clock() - t0) / rounds
print(("replay 10,000 events, no-op send   %10.0f events/s  (%.2f ms per replay)")
  :format(10000 / secs, secs * 1e3))

local sink = {}
t0, rounds = clock(), 0
repeat
  local k = 0
  r:replay(from, function(b) k = k + 1; sink[k] = b end)
  rounds = rounds + 1
until clock() - t0 > budget
secs = (clock() - t0) / rounds
assert(#sink == 10000)
print(("replay 10,000 events into a table  %10.0f events/s  (%.2f ms per replay)")
  :format(10000 / secs, secs * 1e3))
r:close()
tiny:close()
