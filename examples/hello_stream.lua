-- Prints a small event stream built with sse.Sse and sse.Event: what a
-- buffered SSE response body looks like on the wire.
local sse = require("sse")

local res = sse.Sse.new()
  :retry(3000)
  :comment("sse " .. sse.version)
  :event("greeting", "hello\nworld")
  :push(sse.Event.json({ progress = 0.5, step = "download" }):event_type("progress"):id("1"))
  :data("done")
  :into_response()

print("HTTP/1.1 " .. res.status .. " OK")
for k, v in pairs(res.headers) do print(k .. ": " .. v) end
print()
io.write(res.body)
