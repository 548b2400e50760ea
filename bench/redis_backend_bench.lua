-- The Redis backend alone (no HTTP, no hub): publishes pipelined from one
-- backend, followed by a second one, against a fresh redis-server.
--
--   lua5.4 bench/redis_backend_bench.lua [events (50000)] [payload bytes (40)]
--
-- Prints publishes/s (publish call to the follower's delivery of the last
-- event), the publish round trip p50/p99, and Redis CPU per event.
local uv = require("luv")
local redis = require("sse.redis")

local N = tonumber(arg[1]) or 50000
local PAYLOAD = tonumber(arg[2]) or 40
local BATCH = 1000 -- publishes per loop turn (one write each turn)

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local t = uv.new_tcp()
assert(t:bind("127.0.0.1", 0))
local port = t:getsockname().port
t:close()
local dir = sh("mktemp -d /tmp/sse-rbench.XXXXXX"):gsub("%s+$", "")
local pid = tonumber(sh(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s"
  .. " >/dev/null 2>&1 & echo $!"):format(port, dir)):match("%d+"))
for _ = 1, 200 do
  if sh(("redis-cli -p %d PING 2>/dev/null"):format(port)):match("PONG") then break end
  sh("sleep 0.02")
end

local function cpu_us(p)
  local f = io.open("/proc/" .. p .. "/stat")
  local s = f:read("a")
  f:close()
  local rest = s:match("%) (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  return (tonumber(fields[12]) + tonumber(fields[13])) * 1e6 / 100
end

local url = "redis://127.0.0.1:" .. port
local got, t_last = 0, nil
local pub = redis.backend({ url = url, log = function() end })
local sub = redis.backend({ url = url, log = function() end,
  on_event = function() got = got + 1; if got == N then t_last = uv.hrtime() end end })
local lat = {}
local payload = ("x"):rep(PAYLOAD)

local timer = uv.new_timer()
local t0, cpu0, self_cpu0
local sent = 0
local function batch()
  for _ = 1, math.min(BATCH, N - sent) do
    local ts = uv.hrtime()
    sent = sent + 1
    assert(pub:publish({ data = payload }, nil, function(id)
      assert(id)
      lat[#lat + 1] = (uv.hrtime() - ts) / 1e3
    end))
  end
end
local wait = uv.new_timer()
wait:start(50, 50, function()
  if not (pub:status().healthy and sub:status().healthy) then return end
  wait:stop()
  cpu0 = cpu_us(pid)
  t0 = uv.hrtime()
  self_cpu0 = os.clock()
  timer:start(0, 1, function()
    if sent < N then batch() end
    if t_last and #lat == N then
      timer:stop()
      local secs = (t_last - t0) / 1e9
      local cpu = cpu_us(pid) - cpu0
      local own = (os.clock() - self_cpu0) * 1e6
      table.sort(lat)
      print(("redis backend: %d events of %d B: %.0f publishes/s end to end (%.2f s);"
        .. " publish round trip p50 %.1f ms, p99 %.1f ms; Redis CPU %.1f us/event;"
        .. " this process (publisher + follower) %.1f us/event"):format(
        N, PAYLOAD, N / secs, secs, lat[math.floor(#lat * 0.5)] / 1e3, lat[math.floor(#lat * 0.99)] / 1e3,
        cpu / N, own / N))
      pub:close()
      sub:close()
      timer:close()
      wait:close()
    end
  end)
end)
uv.run()
os.execute("kill " .. pid)
os.execute("rm -rf " .. dir)
