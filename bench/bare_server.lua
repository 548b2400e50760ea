-- The floor under bench/fanout_server.lua: the same Hub, memory replayer,
-- Stream and attach, with no sse.http. Each connection is read with one
-- luv callback that finds the end of the head with a pattern, answers
-- GET /sub with a fixed event-stream head (Stream.new{head =}, then
-- hub:attach with the request's Last-Event-ID) and POST /pub with the
-- broadcast count; requests may be pipelined. No limits, no timeouts, no
-- routing, no error answers: a measure of what the HTTP layer costs, not a
-- server to use. Column `sse-bare` of bench/lib.sh.
--
--   lua5.4 bench/bare_server.lua [--port P]
local uv = require("luv")
local sse = require("sse")

local port = 8080
for i = 1, #arg, 2 do
  if arg[i] == "--port" and tonumber(arg[i + 1]) then
    port = tonumber(arg[i + 1])
  else
    io.stderr:write("usage: lua5.4 bench/bare_server.lua [--port P]\n")
    os.exit(2)
  end
end

local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ max_events = 1000 }) })
local HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
  .. "Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"

-- Handles every complete request in buf; returns what is left, or nil once
-- the connection is a stream's.
local function serve(tcp, buf)
  while true do
    local e = buf:find("\r\n\r\n", 1, true)
    if not e then return buf end
    local head = buf:sub(1, e + 3)
    if head:sub(1, 4) == "GET " then
      local lid = head:match("\r\n[Ll]ast%-[Ee]vent%-[Ii][Dd]: *([^\r]*)")
      local stream = sse.Stream.new({ handle = tcp, head = HEAD, last_event_id = lid })
      stream:_watch_eof() -- as sse.http does: the core reads the connection's end
      hub:attach(stream)
      return nil
    end
    local len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: *(%d+)") or "0")
    if #buf < e + 3 + len then return buf end
    local n = tostring(hub:broadcast({ data = buf:sub(e + 4, e + 3 + len) }))
    tcp:write("HTTP/1.1 200 OK\r\nContent-Length: " .. #n .. "\r\n\r\n" .. n)
    buf = buf:sub(e + 4 + len)
  end
end

local listener = uv.new_tcp()
assert(listener:bind("127.0.0.1", port))
listener:nodelay(true) -- accepted sockets inherit it (Linux)
assert(listener:listen(4096, function(err)
  if err then return end
  local tcp = uv.new_tcp()
  if not listener:accept(tcp) then return tcp:close() end
  local buf = ""
  tcp:read_start(function(rerr, data)
    if rerr or not data then
      if not tcp:is_closing() then tcp:close() end
      return
    end
    if buf then buf = serve(tcp, buf .. data) end
  end)
end))

local sig = uv.new_signal()
sig:start("sigterm", function()
  sig:close()
  listener:close()
  hub:close()
end)
uv.run()
