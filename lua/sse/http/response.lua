--- sse.http.response: the one response-head writer (head) and the Response
-- object a handler answers with (res:send, res:json, res:sse).
--
-- One writer per handle: an ordinary answer is written with the luv handle;
-- for res:sse the head is the first bytes the stream's C transport writes
-- (Stream.new's head option), then the connection is the stream's. Bytes
-- of earlier answers still queued on the handle go first: libuv keeps one
-- write queue per handle.
local options = require("sse.http.options")
local Stream = require("sse.stream")

local argerror, show, is_int = options.argerror, options.show, options.is_int

local M = {}

M.REASONS = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted", [203] = "Non-Authoritative Information",
  [204] = "No Content", [205] = "Reset Content", [206] = "Partial Content",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone", [411] = "Length Required",
  [412] = "Precondition Failed", [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable", [417] = "Expectation Failed",
  [421] = "Misdirected Request", [422] = "Unprocessable Content", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
local REASONS = M.REASONS

local date_t, date_s = -1, nil
-- The Date header value, recomputed at most once a second.
local function date()
  local t = os.time()
  if t ~= date_t then
    date_t = t
    date_s = os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
  end
  return date_s
end

-- The event-stream head with no header of the handler's, no CORS and no
-- compression (most streams), per HTTP version: made once a second.
local SSE_PLAIN = "Content-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
  .. "X-Accel-Buffering: no\r\nConnection: "
local plain_at, plain = nil, {}
local function plain_sse_head(version)
  local d = date()
  if d ~= plain_at then
    plain_at, plain = d, {}
  end
  local h = plain[version]
  if not h then
    h = "HTTP/1.1 200 OK\r\nDate: " .. d .. "\r\n" .. SSE_PLAIN
      .. (version == "1.0" and "close" or "keep-alive") .. "\r\n\r\n"
    plain[version] = h
  end
  return h
end

--- head(status, lines) -> the bytes of a response head: the status line,
-- Date (not on 1xx), then the headers in `lines` (a flat list: name, value,
-- name, value, ...; a nil name ends it early), then the blank line.
function M.head(status, lines)
  local t = { "HTTP/1.1 ", status, " ", REASONS[status] or "", "\r\n" }
  if status >= 200 then t[#t + 1] = "Date: " t[#t + 1] = date() t[#t + 1] = "\r\n" end
  for i = 1, #lines, 2 do
    t[#t + 1] = lines[i]; t[#t + 1] = ": "; t[#t + 1] = lines[i + 1]; t[#t + 1] = "\r\n"
  end
  t[#t + 1] = "\r\n"
  return table.concat(t)
end

local Response = {}
Response.__index = Response
Response.__name = "sse.http.Response"
M.Response = Response

--- Response.new(server, conn, req, keep): keep says whether the connection
-- stays open after the answer.
function Response.new(server, conn, req, keep)
  return setmetatable({ _conn = conn, _server = server, _req = req, _keep = keep, _status = 200 }, Response)
end

local NO_BODY = { [204] = true, [304] = true }

local function gone(conn)
  return conn.closed or conn.state == "linger"
end

-- Appends CORS headers to the list t (when the server has CORS).
function Response:_cors(t)
  local cors = self._server.cors
  if not cors then return end
  local origin = self._origin
  if origin then
    t[#t + 1] = "Access-Control-Allow-Origin"; t[#t + 1] = origin
    if cors.credentials then t[#t + 1] = "Access-Control-Allow-Credentials"; t[#t + 1] = "true" end
  end
  t[#t + 1] = "Vary"; t[#t + 1] = "Origin"
end

-- Write the answer: status, user headers, extra (list of name, value),
-- framing headers, body. Keeps or closes the connection.
function Response:_answer(status, body, extra)
  self._done = true
  local conn, server = self._conn, self._server
  if gone(conn) then return nil, "closed" end
  body = body or ""
  local t = {}
  for i, v in ipairs(self._headers or {}) do t[i] = v end
  for _, v in ipairs(extra or {}) do t[#t + 1] = v end
  if not self._has_type and body ~= "" then
    t[#t + 1] = "Content-Type"; t[#t + 1] = "text/plain; charset=utf-8"
  end
  if not NO_BODY[status] then t[#t + 1] = "Content-Length"; t[#t + 1] = tostring(#body) end
  self:_cors(t)
  local keep = self._keep
  if not keep then
    t[#t + 1] = "Connection"; t[#t + 1] = "close"
  elseif self._req.version == "1.0" then
    t[#t + 1] = "Connection"; t[#t + 1] = "keep-alive"
  end
  local head = M.head(status, t)
  server:_count(status)
  if body == "" or self._req.method == "HEAD" or NO_BODY[status] then
    conn.tcp:write(head)
  elseif #body < 16384 then
    conn.tcp:write(head .. body)
  else
    conn.tcp:write({ head, body })
  end
  server:_answered(conn, keep)
  return true
end

local function check_res(self, fname)
  if getmetatable(self) ~= Response then
    error(("calling '%s' on bad self (sse.http.Response expected, got %s)"):format(fname, type(self)), 3)
  end
  if self._done then
    error(("'%s': the response was already sent"):format(fname), 3)
  end
end

--- res:status(n): the status of the answer (default 200). Returns res.
function Response:status(n)
  check_res(self, "status")
  if not is_int(n) or n < 200 or n > 599 then
    argerror(1, "status", "integer in 200..599 expected, got " .. show(n))
  end
  self._status = math.floor(n)
  return self
end

local MANAGED = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

--- res:header(name, value): add a header line (repeatable). Returns res.
-- Content-Length, Transfer-Encoding and Connection are the server's.
function Response:header(k, v)
  check_res(self, "header")
  if type(k) ~= "string" then argerror(1, "header", "string expected, got " .. type(k)) end
  if k:find("[\r\n]") then argerror(1, "header", "header name must not contain CR or LF") end
  if not k:find(options.TOKEN) then argerror(1, "header", "header name must be a token, got " .. show(k)) end
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" then argerror(2, "header", "string expected, got " .. type(v)) end
  if v:find("[\r\n]") then argerror(2, "header", "header value must not contain CR or LF") end
  if v:find("[%z\1-\8\11\12\14-\31\127]") then
    argerror(2, "header", "header value must not contain control characters")
  end
  local lk = k:lower()
  if MANAGED[lk] then argerror(1, "header", k .. " is set by the server") end
  if lk == "content-type" then self._has_type = true end
  local h = self._headers
  if not h then h = {} self._headers = h end
  h[#h + 1] = k
  h[#h + 1] = v
  return self
end

--- res:send([body]): answer with body (a string, default ""), once.
-- Content-Type defaults to text/plain; charset=utf-8. Returns true, or
-- nil, "closed" when the connection is gone.
function Response:send(body)
  check_res(self, "send")
  if body == nil then body = "" end
  if type(body) ~= "string" then argerror(1, "send", "string expected, got " .. type(body)) end
  if body ~= "" and NO_BODY[self._status] then
    argerror(1, "send", ("status %d has no body, got %d bytes"):format(self._status, #body))
  end
  return self:_answer(self._status, body)
end

--- res:later() -> res: the handler answers after it returns (from a
-- callback: a Redis reply, a timer), with res:send or res:json. Until then
-- the connection handles nothing more (requests pipelined behind wait, in
-- order); no answer within the server's idle_timeout gets a 503. Returns res.
function Response:later()
  check_res(self, "later")
  self._later = true
  self._conn.waiting = true
  return self
end

--- res:json(value): answer with the JSON of value (application/json).
function Response:json(value)
  check_res(self, "json")
  local Event = require("sse.event")
  local text, why = Event.json_text(value)
  if not text then argerror(1, "json", "cannot encode as JSON: " .. why) end
  if not self._has_type then self:header("Content-Type", "application/json") end
  return self:_answer(self._status, text)
end

local SSE_KNOWN = { retry = true, keepalive = true, outbox_limit = true, slow_policy = true,
                    write_timeout = true, compress = true }

--- accepts_gzip(value) -> true when an Accept-Encoding value accepts gzip
-- (RFC 9110 12.5.3: "gzip", "x-gzip" or "*" with a q above 0; an explicit
-- "gzip;q=0" refuses it whatever "*" says).
function M.accepts_gzip(value)
  if type(value) ~= "string" then return false end
  local star, gzip
  for item in value:gmatch("[^,]+") do
    local coding, params = item:match("^%s*([^;%s]+)%s*(.*)$")
    if coding then
      coding = coding:lower()
      local q = tonumber(params:match(";%s*[qQ]%s*=%s*([%d.]+)") or "1") or 0
      if coding == "gzip" or coding == "x-gzip" then
        gzip = (gzip or false) or q > 0
      elseif coding == "*" then
        star = q > 0
      end
    end
  end
  if gzip ~= nil then return gzip end
  return star == true
end
local SSE_OWN = { ["content-type"] = true, ["cache-control"] = true }

local NO_OPTS = {} -- read only
-- res:sse's options for Stream.new: outbox_limit, slow_policy and
-- write_timeout are checked there, naming 'sse'
local new_opts = { _fname = "sse" }

--- res:sse([opts]) -> sse.Stream: answer 200 (whatever res:status said)
-- with the event-stream head and the headers set by res:header (but
-- Content-Type and Cache-Control, which are the stream's); the connection
-- then belongs to the returned stream, which ends with the connection, and
-- requests the client pipelined behind this one are dropped. The stream's
-- last_event_id() is req.last_event_id. opts: retry (ms sent as "retry:"),
-- keepalive (seconds between comments), outbox_limit, slow_policy,
-- write_timeout (see sse.Stream), compress (true or {level, window_bits,
-- mem_level}: gzip when the client's Accept-Encoding allows it; the head
-- then says Content-Encoding: gzip, and always Vary: Accept-Encoding). On a HEAD request the stream is returned
-- closed (after the head). Returns nil, "closed" when the connection is gone.
function Response:sse(opts)
  check_res(self, "sse")
  if opts == nil then opts = NO_OPTS end
  if type(opts) ~= "table" then argerror(1, "sse", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not SSE_KNOWN[k] then argerror(1, "sse", ("unknown option '%s'"):format(tostring(k))) end
  end
  local retry, ka = opts.retry, opts.keepalive
  if retry ~= nil and (not is_int(retry) or retry < 0) then
    argerror(1, "sse", "retry must be an integer >= 0, got " .. show(retry))
  end
  if ka ~= nil and (type(ka) ~= "number" or not (ka > 0 and ka < 1e9)) then
    argerror(1, "sse", "keepalive must be a positive number of seconds, got " .. show(ka))
  end
  local conn, server, req = self._conn, self._server, self._req
  if gone(conn) then
    self._done = true
    return nil, "closed"
  end
  local gz = opts.compress
  local head
  if (gz == nil or gz == false) and not self._headers and not server.cors then
    gz = nil
    head = plain_sse_head(req.version)
  else
    head, gz = self:_sse_head(gz)
  end
  -- the head goes through the stream's outbox: the first bytes its C
  -- writer writes, in the same write as what follows it this loop turn
  -- Stream.new reads its options and keeps nothing of the table: one
  -- table for every stream (every field set each time; emptied after, so
  -- it holds no handle)
  local o = new_opts
  o.handle, o.last_event_id, o.head = conn.tcp, req.last_event_id, head
  o.outbox_limit, o.slow_policy, o.write_timeout = opts.outbox_limit, opts.slow_policy, opts.write_timeout
  o._inherits_write_timeout = server._write_timeout_inherited
  local stream = Stream.new(o)
  o.handle, o.last_event_id, o.head = nil, nil, nil
  self._done = true
  self._stream = stream
  server:_count(200)
  server:_adopt(conn, stream)
  if stream:is_closed() then return stream end
  if gz and req.method ~= "HEAD" then stream:_gzip(gz) end
  if req.method == "HEAD" then
    stream:close()
    return stream
  end
  if retry then stream:set_retry(retry) end
  if ka then stream:start_keepalive(ka) end
  return stream
end

-- The event-stream head with the handler's headers, CORS and compression:
-- returns it and the checked gzip options (nil: not compressed).
function Response:_sse_head(gz)
  local conn, req = self._conn, self._req
  local t = { "Content-Type", "text/event-stream; charset=utf-8", "Cache-Control", "no-cache",
              "X-Accel-Buffering", "no" }
  -- compress: the stream is gzip-encoded when the client accepts it (each
  -- write sync-flushed, so events still arrive one by one)
  if gz ~= nil and gz ~= false then
    gz = Stream._compress_options(gz, conn.tcp, "sse") -- raises for a bad one
    t[#t + 1] = "Vary"; t[#t + 1] = "Accept-Encoding"
    if M.accepts_gzip(req.headers["accept-encoding"]) then
      t[#t + 1] = "Content-Encoding"; t[#t + 1] = "gzip"
    else
      gz = nil
    end
  else
    gz = nil
  end
  local h = self._headers or NO_OPTS
  for i = 1, #h, 2 do
    if not SSE_OWN[h[i]:lower()] then t[#t + 1] = h[i]; t[#t + 1] = h[i + 1] end
  end
  self:_cors(t)
  -- no Content-Length, no chunked coding: the body ends with the connection
  -- (HTTP/1.0 must be told so)
  t[#t + 1] = "Connection"; t[#t + 1] = req.version == "1.0" and "close" or "keep-alive"
  return M.head(200, t), gz
end

return M
