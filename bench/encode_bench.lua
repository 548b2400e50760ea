-- Encoder benchmark: sse.encode (C) against a straightforward pure-Lua
-- encoder, side by side in one run, on three shapes. Prints figures; asserts
-- nothing. Run: make bench-encode   (BENCH_SECONDS=0.5 for a shorter run)
--
-- SSE_ENCODE_BEFORE=/path/to/older/sse/core.so adds a "before" column: that
-- build's encode, loaded into the same process and measured in the same
-- rounds (make bench-encode-compare builds one from a git revision).
-- Each cell is the best of BENCH_ROUNDS (3) rounds, the encoders taking
-- turns, so a noisy neighbour on a shared machine hurts every column alike.
-- "faults/call" is the minor page faults per C call (from /proc/self/stat).
local sse = require("sse")
local clock = os.clock
local budget = tonumber(os.getenv("BENCH_SECONDS") or "1")
local rounds = tonumber(os.getenv("BENCH_ROUNDS") or "3")

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

local before_path = os.getenv("SSE_ENCODE_BEFORE")
local before
if before_path and before_path ~= "" then
  local open = assert(package.loadlib(before_path, "luaopen_sse_core"))
  before = open().encode
end

-- Minor page faults of this process so far (nil where /proc is missing).
local function minflt()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local stat = f:read("a")
  f:close()
  local after = stat:match("%)%s+(.*)$")
  local fields = {}
  for w in after:gmatch("%S+") do fields[#fields + 1] = w end
  return tonumber(fields[8])
end

-- Calls per second of fn(ev) over about `secs` seconds, and faults per call.
local function run(fn, ev, secs)
  collectgarbage()
  local f0 = minflt()
  local n, t0 = 0, clock()
  repeat
    for _ = 1, 16 do fn(ev) end
    n = n + 16
  until clock() - t0 > secs
  local rate = n / (clock() - t0)
  local f1 = minflt()
  return rate, f0 and f1 and (f1 - f0) / n or 0
end

local small = {
  id = "1234", event = "update",
  data = '{"user":"ada","action":"edit","doc":"design/spec.md","rev":4711,"ts":1700000000123,"ok":true,"n":1}',
}
local lines = {}
for i = 1, 64 do lines[i] = ("%02d "):format(i) .. ("lorem ipsum dolor sit amet "):rep(2):sub(1, 60) end
local text = { data = table.concat(lines, "\n") }
local big = { data = ("0123456789abcdef"):rep(65536) }

for _, ev in ipairs({ small, text, big }) do
  assert(sse.encode(ev) == lua_encode(ev), "encoders disagree")
  assert(not before or before(ev) == sse.encode(ev), "before and now disagree")
end

local jit_info = rawget(_G, "jit") and (" " .. jit.version) or ""
print(("sse encode benchmark (%s%s, UTF-8 check on, best of %d rounds of %.2f s per cell)")
  :format(_VERSION, jit_info, rounds, budget / rounds))
local head = ("%-26s %12s %12s %7s %9s %7s"):format("shape", "C events/s", "Lua events/s", "ratio",
  "C MB/s", "flt/call")
if before then
  head = head .. ("  |%12s %9s %7s"):format("before ev/s", "MB/s", "flt/call")
end
print(head)
for _, c in ipairs({
  { ("100 B JSON event"), small, "target >= 5x" },
  { ("4 KB 64-line text"), text, "target >= 25x" },
  { ("1 MB one-line payload"), big, "target >= 2000 MB/s" },
}) do
  local name, ev, target = c[1], c[2], c[3]
  local bytes = #sse.encode(ev)
  local best = { c = 0, l = 0, b = 0 }
  local flt = {}
  for _ = 1, rounds do
    local r, f = run(sse.encode, ev, budget / rounds)
    if r > best.c then best.c, flt.c = r, f end
    r = run(lua_encode, ev, budget / rounds)
    if r > best.l then best.l = r end
    if before then
      r, f = run(before, ev, budget / rounds)
      if r > best.b then best.b, flt.b = r, f end
    end
  end
  local line = ("%-26s %12.0f %12.0f %6.1fx %9.0f %7.2f"):format(name, best.c, best.l, best.c / best.l,
    best.c * bytes / 1e6, flt.c)
  if before then
    line = line .. ("  |%12.0f %9.0f %7.2f"):format(best.b, best.b * bytes / 1e6, flt.b)
  end
  print(line .. "   (" .. target .. ")")
end
