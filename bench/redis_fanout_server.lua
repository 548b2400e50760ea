-- The benchmarks' server on the Redis backend: sse.http + a Hub whose
-- replayer is sse.redis.backend, so ids, replay and fan-out are shared by
-- every instance on the same Redis. Same endpoints as bench/fanout_server.lua.
--
--   lua5.4 bench/redis_fanout_server.lua [--host 127.0.0.1] [--port 8080]
--          [--redis redis://127.0.0.1:6379] [--prefix sse:] [--max-len N]
--
--   GET  /sub   an event stream, attached with its Last-Event-ID
--   POST /pub   body = event data, published through Redis: 200 with its id
--               once Redis stored it, or 503 when it did not (Redis down)
local uv = require("luv")
local sse = require("sse")
local redis = require("sse.redis")

local host, port, url, prefix, max_len = "127.0.0.1", 8080, "redis://127.0.0.1:6379", "sse:", 10000
local function usage()
  io.stderr:write("usage: lua5.4 bench/redis_fanout_server.lua [--host H] [--port P] [--redis URL]"
    .. " [--prefix P] [--max-len N]\n")
  os.exit(2)
end
for i = 1, #arg, 2 do
  local name, value = arg[i], arg[i + 1]
  if name == "--host" and value then host = value
  elseif name == "--port" and tonumber(value) then port = tonumber(value)
  elseif name == "--redis" and value then url = value
  elseif name == "--prefix" and value then prefix = value
  elseif name == "--max-len" and tonumber(value) then max_len = tonumber(value)
  else usage() end
end

local backend = redis.backend({ url = url, prefix = prefix, max_len = max_len })
local hub = sse.Hub.new({ replayer = backend })
local app = sse.http.new({ host = host, port = port, max_connections = 20000, log = function() end })

app:get("/sub", function(_, res)
  local stream = res:sse()
  if stream then hub:attach(stream) end -- resumes after its Last-Event-ID
end)

-- answered once Redis stored the event: the id, or 503 when it could not
app:post("/pub", function(req, res)
  local ok, err = backend:publish({ data = req.body }, nil, function(id, perr)
    if id then res:send(id) else res:status(503):send(perr) end
  end)
  if ok then res:later() else res:status(503):send(err) end
end)

local bound, err = app:listen()
if not bound then
  io.stderr:write("redis_fanout_server: cannot listen: ", tostring(err), "\n")
  os.exit(1)
end
local sig = uv.new_signal()
sig:start("sigterm", function()
  sig:close()
  app:close()
  hub:close()
  backend:close()
end)
uv.run()
