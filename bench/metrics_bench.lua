-- The cost of metrics at many topics (issue 14): sse.metrics.render(hub) in
-- process, and GET /metrics of the demo hub over real HTTP on loopback,
-- beside GET /stats in the same run. Prints figures; asserts only that each
-- answer is a 200 and that the exposition names no topic.
--   METRICS_TOPICS (100000) topics over METRICS_STREAMS (10000) writer
--   streams, METRICS_CALLS (200) renders / 20 HTTP calls each.
-- Run: make bench-metrics (or with LUA=luajit)
local uv = require("luv")
local sse = require("sse")
local metrics = require("sse.metrics")
local App = require("sse.app")

local TOPICS = tonumber(os.getenv("METRICS_TOPICS") or "100000")
local STREAMS = tonumber(os.getenv("METRICS_STREAMS") or "10000")
local CALLS = tonumber(os.getenv("METRICS_CALLS") or "200")

local app = App.new({ port = 0, log = function() end, dashboard = false })
assert(app:listen())
local hub = app.hub

local function populate(ntopics, streams)
  local k = 0
  for t = 1, ntopics do
    for _ = 0, t % 7 do
      k = k % #streams + 1
      hub:subscribe(streams[k], "topic-" .. t)
    end
  end
end

-- One GET on a fresh connection: the body.
local function get(path)
  local c, got, done = uv.new_tcp(), {}, false
  c:connect("127.0.0.1", app.port, function(err)
    assert(not err, err)
    c:write("GET " .. path .. " HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    c:read_start(function(rerr, data)
      if data then got[#got + 1] = data return end
      assert(not rerr, rerr)
      done = true
      c:close()
    end)
  end)
  while not done do uv.run("once") end
  local text = table.concat(got)
  assert(text:match("^HTTP/1.1 200 "), text:sub(1, 200))
  return text:sub(text:find("\r\n\r\n", 1, true) + 4)
end

local function measure(label)
  for i = 1, 20 do hub:broadcast_to("topic-" .. i, { data = "event " .. i }) end
  local text = metrics.render(hub) -- warm up
  assert(not text:find("topic-", 1, true), "a topic in the exposition")
  collectgarbage()
  -- the median of 5 batches: a GC cycle (the heap holds every stream) or
  -- another process lands in one batch, not in the figure
  local cpus, walls, per = {}, {}, math.max(1, math.floor(CALLS / 5))
  for b = 1, 5 do
    local c0, w0 = os.clock(), uv.hrtime()
    for _ = 1, per do metrics.render(hub) end
    cpus[b], walls[b] = (os.clock() - c0) / per, (uv.hrtime() - w0) / 1e3 / per
  end
  table.sort(cpus)
  table.sort(walls)
  io.write(("  %-22s sse.metrics.render  %6d bytes  %8.1f us CPU  %8.1f us wall (median of 5 x %d)\n"):format(
    label, #text, cpus[3] * 1e6, walls[3], per))
  local c0, w0, cpu, wall
  for _, path in ipairs({ "/metrics", "/stats" }) do
    local body = get(path)
    collectgarbage()
    local n = math.max(1, math.floor(CALLS / 10))
    c0, w0 = os.clock(), uv.hrtime()
    for _ = 1, n do body = get(path) end
    cpu, wall = (os.clock() - c0) / n, (uv.hrtime() - w0) / 1e3 / n
    io.write(("  %-22s GET %-15s %6d bytes  %8.1f us CPU  %8.1f us wall\n"):format(
      label, path, #body, cpu * 1e6, wall))
  end
  io.stdout:flush()
end

io.write(("metrics bench (%s): %d streams; %d calls per figure (HTTP: a tenth)\n"):format(
  _VERSION, STREAMS, CALLS))
local streams = {}
for i = 1, STREAMS do
  streams[i] = sse.Stream.new({ writer = function() return true end })
  hub:register(streams[i])
end
populate(20, streams)
measure("20 topics")
local t0 = os.clock()
populate(TOPICS, streams)
io.write(("  (%d topics set up in %.1f s)\n"):format(hub:topic_total(), os.clock() - t0))
measure(hub:topic_total() .. " topics")

app:close()
for _, st in ipairs(streams) do st:close() end
hub:close()
uv.run() -- let every close finish
