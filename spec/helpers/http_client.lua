-- A raw-socket HTTP test client on luv for end-to-end specs. Every wait is
-- bounded: wait() runs the loop with a guard timer until a predicate holds
-- or the time is up, so a broken server fails a spec instead of hanging it.
--
--   local C = require("helpers.http_client")
--   local c = C.connect(port)
--   c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
--   local res = c:response()  -- {status=, headers=, body=, raw=} or nil, why
--   c:close()
local uv = require("luv")
local core = require("sse.core")

local M = {}

--- Run the loop until pred() is true or ms pass; returns pred().
function M.wait(pred, ms)
  local guard = uv.new_timer()
  guard:start(5, 5, function() end)
  uv.update_time()
  local deadline = uv.now() + (ms or 2000)
  while not pred() do
    uv.update_time()
    if uv.now() >= deadline then break end
    uv.run("once")
  end
  guard:stop()
  guard:close()
  uv.run("nowait")
  return pred()
end

--- Run the loop for ms milliseconds.
function M.sleep(ms)
  M.wait(function() return false end, ms)
end

-- What a client received is kept as a list of chunks (c.parts, c.len
-- bytes); c.buf joins them when read and replaces them when assigned, so a
-- spec reading megabytes does not pay a concatenation per read.
local Client = {}
Client.__index = function(c, k)
  if k == "buf" then
    local s = table.concat(c.parts)
    c.parts = { s }
    return s
  end
  return Client[k]
end
Client.__newindex = function(c, k, v)
  if k == "buf" then
    c.parts, c.len, c.head = { v }, #v, nil
  else
    rawset(c, k, v)
  end
end

--- Connect to 127.0.0.1:port and wait for the connection (bounded).
function M.connect(port, host)
  local c = setmetatable({ parts = {}, len = 0, eof = false, err = nil, connected = false }, Client)
  c.tcp = uv.new_tcp()
  c.tcp:connect(host or "127.0.0.1", port, function(err)
    if err then
      c.err = err
      c.eof = true
      return
    end
    c.connected = true
    c.reader = function(rerr, data)
      if data then
        c.parts[#c.parts + 1] = data
        c.len = c.len + #data
        return
      end
      -- EOF or error: close our side too, as real clients do
      c.err = rerr
      c.eof = true
      if not c.tcp:is_closing() then c.tcp:close() end
    end
    c.tcp:read_start(c.reader)
  end)
  M.wait(function() return c.connected or c.eof end, 2000)
  return c
end

--- Stop reading (the server's answers pile up in the kernel and its queue).
function Client:pause()
  self.tcp:read_stop()
end

function Client:resume()
  self.tcp:read_start(self.reader)
end

function Client:send(s)
  if self.tcp:is_closing() then return nil, "closed" end
  return self.tcp:write(s)
end

--- Wait until the buffer holds n bytes, or EOF.
function Client:wait_bytes(n, ms)
  return M.wait(function() return self.len >= n or self.eof end, ms)
end

--- Wait until the peer closed the connection (EOF or a reset).
function Client:wait_closed(ms)
  return M.wait(function() return self.eof end, ms or 2000)
end

-- One response at the start of self.buf: returns it and its length, or nil
-- when incomplete. A response without Content-Length (and with a body)
-- runs until EOF.
local function parse_one(self, method)
  local head = rawget(self, "head") -- the head of the response being read, once parsed
  if not head then
    local msg
    head, msg = core.http_parse_response(self.buf)
    if not head then
      if msg then error("bad response head: " .. msg .. "\n" .. self.buf) end
      return nil
    end
    rawset(self, "head", head)
  end
  local n = head.head_bytes
  local len = tonumber(head.headers["content-length"])
  local no_body = method == "HEAD" or head.status == 204 or head.status == 304 or head.status < 200
  if no_body then len = 0 end
  if not len then
    if not self.eof then return nil end
    len = self.len - n
  end
  if self.len < n + len then return nil end
  head.body = self.buf:sub(n + 1, n + len)
  head.raw = self.buf:sub(1, n + len)
  return head, n + len
end

--- Wait for the next complete response and take it from the buffer.
-- Returns it, or nil, "timeout" / "closed".
function Client:response(ms, method)
  local res, used
  M.wait(function()
    res, used = parse_one(self, method)
    return res ~= nil or self.eof
  end, ms or 2000)
  if not res then
    res, used = parse_one(self, method)
  end
  if not res then return nil, self.eof and "closed" or "timeout" end
  self.buf = self.buf:sub(used + 1)
  return res
end

--- Send raw bytes and read one response.
function Client:request(raw, ms)
  self:send(raw)
  return self:response(ms, raw:match("^(%u+) "))
end

function Client:close()
  if not self.tcp:is_closing() then self.tcp:close() end
end

--- A GET request's bytes: path, optional extra header lines (a list).
function M.get(path, extra)
  return "GET " .. path .. " HTTP/1.1\r\nHost: test\r\n" .. table.concat(extra or {}) .. "\r\n"
end

--- A POST request's bytes with a Content-Length body.
function M.post(path, body, extra)
  return "POST " .. path .. " HTTP/1.1\r\nHost: test\r\nContent-Length: " .. #body .. "\r\n"
    .. table.concat(extra or {}) .. "\r\n" .. body
end

return M
