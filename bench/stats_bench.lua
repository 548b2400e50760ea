-- GET /stats of the demo hub at many topics: the size of the answer and the
-- server's cost per call, over real HTTP on loopback (the hub and a raw luv
-- client in this process; the client's part is a read of the answer).
-- Prints figures; asserts only that each answer is a 200.
--   STATS_TOPICS (100000) topics over STATS_STREAMS (10000) writer streams,
--   STATS_CALLS (20) sequential GET /stats.
-- Run: make && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lua5.4/?.so;;' \
--        lua5.4 bench/stats_bench.lua
-- (The same file runs against an older checkout: it uses only App.new,
-- hub:register/subscribe and Stream.new{writer}.)
local uv = require("luv")
local sse = require("sse")
local App = require("sse.app")

local TOPICS = tonumber(os.getenv("STATS_TOPICS") or "100000")
local STREAMS = tonumber(os.getenv("STATS_STREAMS") or "10000")
local CALLS = tonumber(os.getenv("STATS_CALLS") or "20")

local app = App.new({ port = 0, log = function() end, dashboard = false })
assert(app:listen())
local hub = app.hub

local t0 = os.clock()
local streams = {}
for i = 1, STREAMS do
  streams[i] = sse.Stream.new({ writer = function() return true end })
  hub:register(streams[i])
end
-- topic t has subscribers 1 + (t % 7) streams, spread over all of them
local k = 0
for t = 1, TOPICS do
  for _ = 0, t % 7 do
    k = k % STREAMS + 1
    hub:subscribe(streams[k], "topic-" .. t)
  end
end
io.write(("stats bench (%s): %d topics, %d streams, set up in %.1f s\n"):format(
  _VERSION, TOPICS, STREAMS, os.clock() - t0))
io.stdout:flush()

-- One GET /stats on a fresh connection: bytes of the body.
local function get_stats(path)
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
  return #text - (text:find("\r\n\r\n", 1, true) + 3)
end

for _, path in ipairs({ "/stats", "/stats?top=100" }) do
  get_stats(path) -- warm up
  collectgarbage()
  local bytes, c0, w0 = 0, os.clock(), uv.hrtime()
  for _ = 1, CALLS do bytes = get_stats(path) end
  local cpu, wall = (os.clock() - c0) / CALLS, (uv.hrtime() - w0) / 1e6 / CALLS
  io.write(("  GET %-15s %9d bytes   %8.2f ms CPU per call   %8.2f ms wall\n"):format(
    path, bytes, cpu * 1000, wall))
  io.stdout:flush()
  if path == "/stats" and not io.open("lua/sse/app/json.lua") then break end -- an old hub: no ?top=
end
app:close()
for _, st in ipairs(streams) do st:close() end
hub:close()
uv.run() -- let every close finish (luv crashes at exit on a handle still closing)
