-- The benchmarks' server built on the sse library: sse.http + Hub with the
-- in-memory replayer (like Nchan's message buffer). Same endpoints and command
-- line as bench/luv_fanout_server.lua. It uses only the public API, so the
-- drivers also run it against the library of an older commit (BENCH_BEFORE).
--
--   lua5.4 bench/fanout_server.lua [--host 127.0.0.1] [--port 8080]
--          [--gc-pause N] [--outbox-limit BYTES] [--replay-events N]
--
--   GET  /sub   an event stream, attached with its Last-Event-ID (replayed
--               from the ring when it has one)
--   POST /pub   body = event data, broadcast to every subscriber; answers the count
--
-- --gc-pause N calls collectgarbage("setpause", N) (SSE_GC_PAUSE too); without
-- it Lua's default GC settings stay. bench/fanout.sh passes 100.
--
-- SSE_HEAP_REPORT=1 (not for the RSS figures: it collects): samples
-- collectgarbage("count") every 20 ms; once the heap has not moved for 1 s
-- (the server is idle) it collects fully and writes the peak so far, the
-- heap then and what is live to stderr (the server's log; BENCH_KEEP=1).
local uv = require("luv")
local sse = require("sse")

local host, port = "127.0.0.1", 8080
local gc_pause = tonumber(os.getenv("SSE_GC_PAUSE") or "")
local outbox_limit, replay_events = nil, 1000
local function usage()
  io.stderr:write("usage: lua5.4 bench/fanout_server.lua [--host H] [--port P] [--gc-pause N]"
    .. " [--outbox-limit BYTES] [--replay-events N]\n")
  os.exit(2)
end
for i = 1, #arg, 2 do
  local name, value = arg[i], arg[i + 1]
  if name == "--host" and value then host = value
  elseif name == "--port" and tonumber(value) then port = tonumber(value)
  elseif name == "--gc-pause" and tonumber(value) then gc_pause = tonumber(value)
  elseif name == "--outbox-limit" and tonumber(value) then outbox_limit = tonumber(value)
  elseif name == "--replay-events" and tonumber(value) then replay_events = tonumber(value)
  else usage() end
end
if gc_pause then collectgarbage("setpause", gc_pause) end

local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ max_events = replay_events }) })
local app = sse.http.new({ host = host, port = port, max_connections = 20000, log = function() end })
local stream_opts = { outbox_limit = outbox_limit }

app:get("/sub", function(_, res)
  local stream = res:sse(stream_opts)
  if stream then hub:attach(stream) end -- resumes after its Last-Event-ID
end)

app:post("/pub", function(req, res)
  local n = hub:broadcast({ data = req.body })
  res:send(tostring(n))
end)

local bound, err = app:listen()
if not bound then
  -- os.exit skips lua_close: Debian's luv 1.44 crashes closing a state whose
  -- loop has a closed-but-not-run handle
  io.stderr:write("fanout_server: cannot listen: ", tostring(err), "\n")
  os.exit(1)
end
if os.getenv("SSE_HEAP_REPORT") == "1" then
  local peak, last, still = 0, -1, 0
  local t = uv.new_timer()
  t:start(20, 20, function()
    local kb = collectgarbage("count")
    if kb > peak then peak = kb end
    if kb ~= last then last, still = kb, 0 return end
    still = still + 1
    if still ~= 50 then return end
    collectgarbage()
    collectgarbage()
    last = collectgarbage("count")
    io.stderr:write(("lua heap: peak %.0f KB, idle %.0f KB, live %.0f KB\n"):format(peak, kb, last))
  end)
  t:unref()
end

local sig = uv.new_signal()
sig:start("sigterm", function()
  sig:close()
  app:close()
  hub:close()
end)
uv.run()
