-- The fan-out benchmark's server built on the sse library: sse.http + Hub
-- (with the in-memory replayer, like Nchan's message buffer). Same endpoints
-- and command line as bench/luv_fanout_server.lua.
--
--   lua5.4 bench/fanout_server.lua [--host 127.0.0.1] [--port 8080]
--
--   GET  /sub   an event stream
--   POST /pub   body = event data, broadcast to every subscriber; answers the count
local uv = require("luv")
-- A server holding many idle connections: collect garbage sooner, so RSS
-- stays near the live size (bench/README.md shows both settings).
collectgarbage("setpause", tonumber(os.getenv("SSE_GC_PAUSE") or "100"))
local sse = require("sse")

local host, port = "127.0.0.1", 8080
for i = 1, #arg, 2 do
  if arg[i] == "--port" then port = tonumber(arg[i + 1])
  elseif arg[i] == "--host" then host = arg[i + 1]
  else
    io.stderr:write("usage: lua5.4 bench/fanout_server.lua [--host H] [--port P]\n")
    os.exit(2)
  end
end

local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ max_events = 1000 }) })
local app = sse.http.new({ host = host, port = port, max_connections = 20000, log = function() end })

app:get("/sub", function(_, res)
  hub:register(res:sse({}))
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
local sig = uv.new_signal()
sig:start("sigterm", function()
  sig:close()
  app:close()
  hub:close()
end)
uv.run()
