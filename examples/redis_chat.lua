-- The chat room on several instances: run it twice on one Redis, subscribe on
-- one, say something on the other.
--   lua5.4 examples/redis_chat.lua [PORT] [REDIS_URL]     (8082, redis://127.0.0.1:6379)
local uv, sse = require("luv"), require("sse")
local backend = require("sse.redis").backend({ url = arg[2] or "redis://127.0.0.1:6379", prefix = "chat:" })
local hub = sse.Hub.new({ replayer = backend }) -- every instance: the same url and prefix
local app = sse.http.new({ host = "127.0.0.1", port = tonumber(arg[1]) or 8082 })
app:get("/events", function(_, res)
  hub:attach(res:sse(), { topics = { "room" } }) -- replays after Last-Event-ID, from Redis
end)
app:post("/say", function(req, res)
  local ok, err = backend:publish({ event = "chat", data = req.body }, "room", function(id, perr)
    if id then res:json({ id = id }) else res:status(503):json({ error = perr }) end
  end, { key = req.headers["idempotency-key"] }) -- optional: a retried publish is stored once
  if ok then res:later() else res:status(503):json({ error = err }) end
end)
print("chat on http://127.0.0.1:" .. assert(app:listen()) .. "/events")
io.stdout:flush()
uv.run()
