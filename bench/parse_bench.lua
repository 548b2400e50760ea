-- Throughput of the client-side event-stream parser (core.parser) on four
-- bodies: ASCII events, events of multi-byte UTF-8, the same with one
-- ill-formed byte each, and events full of ill-formed bytes (each replaced
-- by U+FFFD). Prints MB/s of input parsed,
-- Lua event tables included: the best of PARSE_BENCH_ROUNDS rounds of
-- PARSE_BENCH_REPS feeds (CPU time), so other jobs on the machine move the
-- figure less. Run several builds side by side in one go:
--   for b in build/lua5.4 OTHER/build/lua5.4; do
--     LUA_CPATH="$b/?.so;;" lua5.4 bench/parse_bench.lua; done
local core = require("sse.core")
local reps = tonumber(os.getenv("PARSE_BENCH_REPS") or "") or 100
local rounds = tonumber(os.getenv("PARSE_BENCH_ROUNDS") or "") or 5

local function bench(name, s)
  local p = core.parser({ max_line_bytes = 1 << 30, max_event_bytes = 1 << 30 })
  local best = math.huge
  for _ = 1, rounds do
    local t0 = os.clock()
    for _ = 1, reps do p:feed(s) end
    best = math.min(best, os.clock() - t0)
  end
  print(("parse %-26s %8.1f MB/s"):format(name, #s * reps / best / 1e6))
end

bench("ascii, 100-byte events", ("data: " .. ("abcdefghij"):rep(10) .. "\n\n"):rep(1000))
bench("multi-byte UTF-8 events", ("data: " .. ("\195\169\226\130\172\240\159\152\128ab"):rep(12) .. "\n\n"):rep(1000))
bench("UTF-8, 1 bad byte an event", ("data: " .. ("\195\169\226\130\172\240\159\152\128ab"):rep(6) .. "\255"
  .. ("\195\169\226\130\172\240\159\152\128ab"):rep(6) .. "\n\n"):rep(1000))
bench("ill-formed bytes", ("data: " .. ("\255a\192"):rep(30) .. "\n\n"):rep(1000))
