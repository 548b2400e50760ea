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
local names = {}
for k in pairs(res.headers) do names[#names + 1] = k end
table.sort(names) -- one order on every run
for _, k in ipairs(names) do print(k .. ": " .. res.headers[k]) end
print()
io.write(res.body)
