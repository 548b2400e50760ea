-- A chat room in a dozen lines: sse.http + Hub, with replay on reconnect.
--   lua5.4 examples/chat.lua [PORT]   then   curl -N localhost:8081/events
--   and                                      curl -d 'hi there' localhost:8081/say
local uv, sse = require("luv"), require("sse")
local app = sse.http.new({ host = "127.0.0.1", port = tonumber(arg[1]) or 8081 })
local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new(), keepalive = 15 })
app:get("/events", function(_, res)
  hub:attach(res:sse({ retry = 2000 }), { topics = { "room" } })
end)
app:post("/say", function(req, res)
  local _, id = hub:broadcast_to("room", { event = "chat", data = req.body })
  res:json({ id = id })
end)
print("chat on http://127.0.0.1:" .. assert(app:listen()) .. "/events")
io.stdout:flush() -- a pipe is block-buffered (LuaJIT): say it now
uv.run()
