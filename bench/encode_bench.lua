-- Encoder benchmark: sse.encode (C) against a straightforward pure-Lua
-- encoder, side by side in one run, on three shapes. Prints figures; asserts
-- nothing. Run: make bench-encode   (BENCH_SECONDS=0.5 for a shorter run)
local sse = require("sse")
local clock = os.clock
local budget = tonumber(os.getenv("BENCH_SECONDS") or "1")

-- What a user writes without the library: gsub to split lines, concat.
local function lua_encode(ev)
  local out = {}
  if ev.event then out[#out + 1] = "event: " .. ev.event .. "\n" end
  if ev.id then out[#out + 1] = "id: " .. ev.id .. "\n" end
  if ev.retry then out[#out + 1] = "retry: " .. ev.retry .. "\n" end
  local data = ev.data:gsub("\r\n", "\n"):gsub("\r", "\n")
  out[#out + 1] = "data: " .. data:gsub("\n", "\ndata: ") .. "\n\n"
  return table.concat(out)
end

local function run(fn, ev)
  -- calibrate, then run for about `budget` seconds
  local n, t0 = 0, clock()
  repeat
    for _ = 1, 16 do fn(ev) end
    n = n + 16
  until clock() - t0 > budget
  return n / (clock() - t0)
end

local small = {
  id = "1234", event = "update",
  data = '{"user":"ada","action":"edit","doc":"design/spec.md","rev":4711,"ts":1700000000123,"ok":true,"n":1}',
}
local lines = {}
for i = 1, 64 do lines[i] = ("%02d "):format(i) .. ("lorem ipsum dolor sit amet "):rep(2):sub(1, 60) end
local text = { data = table.concat(lines, "\n") }
local big = { data = ("0123456789abcdef"):rep(65536) }

assert(sse.encode(small) == lua_encode(small), "encoders disagree on the small event")
assert(sse.encode(text) == lua_encode(text), "encoders disagree on the text")
assert(sse.encode(big) == lua_encode(big), "encoders disagree on the 1 MB payload")

print(("sse encode benchmark (%s, UTF-8 check on, %.1f s per cell)"):format(_VERSION, budget))
print(("%-30s %14s %14s %8s %10s"):format("shape", "C events/s", "Lua events/s", "ratio", "C MB/s"))
for _, c in ipairs({
  { ("small JSON event (%d B data)"):format(#small.data), small, 5 },
  { ("64-line text (%d B)"):format(#text.data), text, 25 },
  { ("1 MB one-line payload"), big, nil },
}) do
  local name, ev, target = c[1], c[2], c[3]
  local bytes = #sse.encode(ev)
  local c_rate = run(sse.encode, ev)
  local l_rate = run(lua_encode, ev)
  print(("%-30s %14.0f %14.0f %7.1fx %10.0f%s"):format(name, c_rate, l_rate, c_rate / l_rate,
    c_rate * bytes / 1e6, target and ("   (target >= %dx)"):format(target) or "   (target >= 2000 MB/s)"))
end
