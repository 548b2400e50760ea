-- A log tail over SSE with backpressure: each client gets the file's lines
-- (stream:pipe: a huge log never piles up in memory for a slow client),
-- then the lines appended later (read only while the client keeps up:
-- stream:on_drain resumes the reading).
--   lua5.4 examples/tail.lua FILE [PORT]   then   curl -N localhost:8082/tail
local uv, sse = require("luv"), require("sse")
local path = assert(arg[1], "usage: tail.lua FILE [PORT]")
local HIGH = 64 * 1024 -- bytes queued for a client before it is paused

local app = sse.http.new({ host = "127.0.0.1", port = tonumber(arg[2]) or 8082 })

app:get("/tail", function(_, res)
  local stream = res:sse({ keepalive = 15 })
  local f = assert(io.open(path, "rb"))
  local lines = f:lines()
  -- what is there: piped (paused while the client is HIGH bytes behind)
  stream:pipe(lines, { high = HIGH, close = false, on_done = function(err)
    if err then return f:close() end
    -- then follow: poll the file's end once a second, while the client keeps up
    local timer, rest = uv.new_timer(), ""
    local function follow()
      if stream:is_closed() then
        timer:close()
        return f:close()
      end
      local more = f:read(64 * 1024)
      if more then
        rest = rest .. more
        for line in rest:gmatch("([^\n]*)\n") do stream:send_data(line) end
        rest = rest:match("[^\n]*$")
      end
      if stream:queued_bytes() > HIGH then
        timer:stop()
        stream:on_drain(function() timer:start(0, 1000, follow) end)
      end
    end
    timer:start(1000, 1000, follow)
  end })
end)

print("tail of " .. path .. " on http://127.0.0.1:" .. assert(app:listen()) .. "/tail")
io.stdout:flush()
uv.run()
