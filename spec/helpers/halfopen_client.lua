-- A subscriber for the half-open spec, run inside a network namespace:
-- connects to host:port, asks for /events, prints "open" on its first bytes,
-- then keeps the connection (it is cut off from outside, never closed).
local uv = require("luv")
local host, port = arg[1], tonumber(arg[2])
local tcp = uv.new_tcp()
local said = false
tcp:connect(host, port, function(err)
  if err then io.stdout:write("error ", err, "\n") io.stdout:flush() os.exit(1) end
  tcp:write("GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
  tcp:read_start(function(rerr, data)
    if data and not said then
      said = true
      io.stdout:write("open ", (data:match("^[^\r\n]*")), "\n")
      io.stdout:flush()
    elseif rerr or not data then
      os.exit(0)
    end
  end)
end)
-- bounded: never outlive the spec
local t = uv.new_timer()
t:start(30000, 0, function() os.exit(0) end)
uv.run()
