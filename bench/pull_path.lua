-- The pull transport's own cost per delivery, outside any host: N pull
-- streams (on_ready = a counter), E broadcasts, each followed by hub:flush()
-- (the report that calls on_ready per ready stream) and one take() per
-- stream. What sse.ngx's writers add on top is ngx.print, ngx.flush, the
-- semaphore and nginx itself (bench/ngx_fanout.sh measures the whole).
--
--   lua5.4 bench/pull_path.lua [N [E]]      (or luajit, with build/luajit)
local sse = require("sse")
local N = tonumber(arg[1]) or 10000
local E = tonumber(arg[2]) or 20
local hub = sse.Hub.new({ flush = "immediate" })
local calls = 0
local function on_ready() calls = calls + 1 end
local streams = {}
for i = 1, N do
  local st = sse.Stream.new({ on_ready = on_ready })
  hub:attach(st)
  streams[i] = st
end
local got = 0
local t0 = os.clock()
for _ = 1, E do
  hub:broadcast({ data = "x" })
  hub:flush()
  for i = 1, N do got = got + #streams[i]:take() end
end
local t = os.clock() - t0
assert(calls == N * E, "on_ready calls: " .. calls)
print(("%s: %.3f us of CPU per delivery (broadcast + report + on_ready + take),"
  .. " %d streams x %d events, %d bytes taken"):format(jit and jit.version or _VERSION,
  t / (N * E) * 1e6, N, E, got))
