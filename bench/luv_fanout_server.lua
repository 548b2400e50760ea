-- A hand-written fan-out SSE server on luv, without the sse library: what a user
-- writes by hand. A table of subscriber sockets, one tcp:write per subscriber per
-- event, minimal HTTP parsing. The baseline for bench/fanout.sh.
--
--   lua5.4 bench/luv_fanout_server.lua [--host 127.0.0.1] [--port 8080]
--
--   GET  /sub   an event stream; stays open
--   POST /pub   body = event data; sent to every subscriber as "data: ...\n\n";
--               answers 200 with the subscriber count (requests may be pipelined)
local uv = require("luv")

local host, port = "127.0.0.1", 8080
local i = 1
while i <= #arg do
  local name, value = arg[i], arg[i + 1]
  if name == "--port" and tonumber(value) then
    port = tonumber(value)
  elseif name == "--host" and value then
    host = value
  else
    io.stderr:write("usage: lua5.4 bench/luv_fanout_server.lua [--host H] [--port P]\n")
    os.exit(2)
  end
  i = i + 2
end

local SSE_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
  .. "Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"

local subscribers = {} -- tcp handle -> true
local count = 0

local function drop(client)
  if subscribers[client] then
    subscribers[client] = nil
    count = count - 1
  end
  if not client:is_closing() then client:close() end
end

local function publish(data)
  data = data:gsub("\r\n", "\n"):gsub("\r", "\n")
  local frame = "data: " .. data:gsub("\n", "\ndata: ") .. "\n\n"
  for client in pairs(subscribers) do
    if not client:write(frame) then drop(client) end
  end
end

local function reply(client, status, body)
  client:write(table.concat({
    "HTTP/1.1 ", status, "\r\nContent-Type: text/plain\r\nContent-Length: ", #body,
    "\r\n\r\n", body,
  }))
end

-- Handles the complete requests at the start of buf; returns what is left, or
-- nil when the connection was closed.
local function handle(client, buf)
  while true do
    local head_end = buf:find("\r\n\r\n", 1, true)
    if not head_end then
      if #buf > 8192 then
        drop(client)
        return nil
      end
      return buf
    end
    local method, target = buf:match("^(%u+) (%S+) HTTP/1%.[01]\r\n")
    if not method then
      reply(client, "400 Bad Request", "bad request\n")
      drop(client)
      return nil
    end
    local len = tonumber(buf:sub(1, head_end):lower():match("\r\ncontent%-length:[ \t]*(%d+)")) or 0
    local body_start = head_end + 4
    if #buf < body_start + len - 1 then return buf end
    local body = buf:sub(body_start, body_start + len - 1)
    buf = buf:sub(body_start + len)
    local path = target:match("^[^?]*")
    if path == "/sub" and method == "GET" then
      client:write(SSE_HEAD)
      subscribers[client] = true
      count = count + 1
      return "" -- a subscriber sends nothing more that we care about
    elseif path == "/pub" and method == "POST" then
      publish(body)
      reply(client, "200 OK", count .. "\n")
    else
      reply(client, "404 Not Found", "not found\n")
    end
  end
end

local server = uv.new_tcp()
assert(server:bind(host, port))
assert(server:listen(4096, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then
    client:close()
    return
  end
  local buf = ""
  client:read_start(function(rerr, chunk)
    if rerr or not chunk then
      drop(client)
      return
    end
    if subscribers[client] then return end
    buf = handle(client, buf .. chunk)
  end)
end))

local function shutdown()
  for client in pairs(subscribers) do drop(client) end
  server:close()
  uv.stop()
end
for _, signame in ipairs({ "sigterm", "sigint" }) do
  local sig = uv.new_signal()
  sig:start(signame, shutdown)
  sig:unref()
end

io.stdout:write(("luv_fanout_server listening on %s:%d\n"):format(host, port))
io.stdout:flush()
uv.run()
