--- sse.client: an EventSource-compatible client on luv (http:// only).
--
--   local client = require("sse.client").connect("http://127.0.0.1:8080/events", {
--     on = { message = function(ev) print(ev.data) end },
--   })
--   uv.run()
--
-- connect(url [, opts]) -> client. opts (all optional):
--   headers         = { name = value } extra request headers
--   last_event_id   = string sent as Last-Event-ID on the first request
--   on              = { [type] = function(ev) } handlers by event type
--   on_event        = function(ev) called for every event (after on[type])
--   on_open         = function(client) when a response is accepted
--   on_error        = function(err, info) err is a short string; info has
--                     closed (true when the client stopped for good),
--                     delay (ms until the next attempt, nil when closed) and
--                     status (the HTTP status, when the error is about one)
--   retry           = initial reconnection time in ms (default 3000); the
--                     server's "retry:" replaces it
--   max_backoff     = cap in ms of the exponential backoff (default 30000)
--   timeout         = ms allowed to resolve, connect and read the response
--                     head (default 30000); then it counts as a failed attempt
--   max_line_bytes, max_event_bytes = parser limits (default 1 MiB each)
-- ev = { type =, data =, id = (last event id, "" when none), origin = }.
--
-- Like a browser: it sends Accept: text/event-stream, Cache-Control: no-cache
-- and Last-Event-ID when it has one; it skips 1xx interim responses; it
-- follows up to 10 redirects; it stops
-- for good on a status other than 200 (204 included), on a Content-Type that
-- is not text/event-stream, and on a parser limit; it reconnects after EOF
-- and network errors, waiting the reconnection time, doubled for each attempt
-- in a row that failed before a response was accepted, capped at
-- max(max_backoff, reconnection time). User callbacks run under pcall; an
-- error in one is reported through on_error (info.closed false) or stderr.
local uv = require("luv")
local core = require("sse.core")

local M = {}

local Client = {}
Client.__index = Client

-- Response heads are parsed in C (core.http_parse_response, strict
-- RFC 9112), bodies decoded in C (core.http_body: chunked, length, close).
local HEAD_LIMITS = { max_head_bytes = 64 * 1024, max_headers = 256 }
local MAX_REDIRECTS = 10

-- ---------------------------------------------------------------------------
-- URL and request

-- Parse an http:// URL. Returns {host, port, path, authority, origin} or
-- nil, reason.
local function parse_url(url)
  local rest = url:match("^[hH][tT][tT][pP]://(.*)$")
  if not rest then return nil, "http:// URL expected" end
  if rest:find("[%c%s]") then return nil, "URL contains whitespace or control characters" end
  rest = rest:gsub("#.*$", "")
  local authority, path = rest:match("^([^/?]*)(.*)$")
  if path == "" then
    path = "/"
  elseif path:sub(1, 1) == "?" then
    path = "/" .. path
  end
  if authority:find("@", 1, true) then return nil, "user info in URL not supported" end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host then return nil, "bad host in URL" end
  port = port == "" and 80 or tonumber(port)
  if port < 1 or port > 65535 then return nil, "bad port in URL" end
  local h = host:lower()
  if authority:sub(1, 1) == "[" then h = "[" .. h .. "]" end
  local origin = "http://" .. h .. (port ~= 80 and (":" .. port) or "")
  return { host = host, port = port, path = path, authority = authority, origin = origin }
end

-- Resolve a Location header against the URL u. Returns a URL string.
local function resolve_location(u, loc)
  if loc:match("^[%a][%w+.-]*://") then return loc end
  if loc:sub(1, 2) == "//" then return "http:" .. loc end
  if loc:sub(1, 1) == "/" then return "http://" .. u.authority .. loc end
  local dir = u.path:gsub("%?.*$", ""):gsub("[^/]*$", "")
  return "http://" .. u.authority .. dir .. loc
end

local function build_request(u, headers, last_id)
  local t = {
    "GET ", u.path, " HTTP/1.1\r\n",
    "Host: ", u.authority, "\r\n",
  }
  local seen = {}
  for _, h in ipairs(headers) do seen[h[1]:lower()] = true end
  if not seen["accept"] then t[#t + 1] = "Accept: text/event-stream\r\n" end
  if not seen["cache-control"] then t[#t + 1] = "Cache-Control: no-cache\r\n" end
  for _, h in ipairs(headers) do
    t[#t + 1] = h[1]
    t[#t + 1] = ": "
    t[#t + 1] = h[2]
    t[#t + 1] = "\r\n"
  end
  if last_id ~= "" then
    t[#t + 1] = "Last-Event-ID: "
    t[#t + 1] = last_id
    t[#t + 1] = "\r\n"
  end
  t[#t + 1] = "\r\n"
  return table.concat(t)
end

-- ---------------------------------------------------------------------------
-- Argument checks (raise naming the argument)

local function check_opts(url, opts)
  if type(url) ~= "string" then
    error(("bad argument #1 to 'connect' (string expected, got %s)"):format(type(url)), 3)
  end
  local u, why = parse_url(url)
  if not u then error(("bad argument #1 to 'connect' (%s)"):format(why), 3) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(("bad argument #2 to 'connect' (table expected, got %s)"):format(type(opts)), 3)
  end
  local function bad(msg) error("bad argument #2 to 'connect' (" .. msg .. ")", 4) end
  local function want(field, ty)
    local v = opts[field]
    if v ~= nil and type(v) ~= ty then
      bad(("field '%s': %s expected, got %s"):format(field, ty, type(v)))
    end
    return v
  end
  local function want_int(field, min, max)
    local v = opts[field]
    if v == nil then return nil end
    if type(v) ~= "number" then bad(("field '%s': number expected, got %s"):format(field, type(v))) end
    if v ~= math.floor(v) or v < min or v > max then
      bad(("field '%s' must be an integer from %d to %d"):format(field, min, max))
    end
    return v
  end
  want("headers", "table")
  want("last_event_id", "string")
  want("on", "table")
  want("on_event", "function")
  want("on_open", "function")
  want("on_error", "function")
  want_int("retry", 0, 2147483647)
  want_int("max_backoff", 0, 2147483647)
  want_int("timeout", 1, 2147483647)
  want_int("max_line_bytes", 1, 2147483647)
  want_int("max_event_bytes", 1, 2147483647)
  local headers = {}
  for name, value in pairs(opts.headers or {}) do
    if type(name) ~= "string" or not name:match("^[!#$%%&'*+.^_`|~%w-]+$") then
      bad(("field 'headers': bad header name %q"):format(tostring(name)))
    end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" then
      bad(("field 'headers.%s': string expected, got %s"):format(name, type(value)))
    end
    if value:gsub("\t", ""):find("%c") then
      bad(("field 'headers.%s': control characters in value"):format(name))
    end
    local lname = name:lower()
    if lname == "host" or lname == "last-event-id" or lname == "content-length"
      or lname == "transfer-encoding" or lname == "connection" then
      bad(("field 'headers': %s is set by the client"):format(name))
    end
    headers[#headers + 1] = { name, value }
  end
  table.sort(headers, function(a, b) return a[1] < b[1] end)
  for k, fn in pairs(opts.on or {}) do
    if type(k) ~= "string" or type(fn) ~= "function" then
      bad(("field 'on.%s': function expected, got %s"):format(tostring(k), type(fn)))
    end
  end
  if opts.last_event_id and (opts.last_event_id:find("\0", 1, true) or opts.last_event_id:find("[\r\n]")) then
    bad("field 'last_event_id' must not contain NUL, CR or LF")
  end
  return u, opts, headers
end

-- ---------------------------------------------------------------------------
-- Client

--- connect(url [, opts]) -> client (see the top of this file).
function M.connect(url, opts)
  local u, o, headers = check_opts(url, opts)
  if require("sse.ngx.host").active then
    -- luv loads inside nginx, but nothing runs its loop: it would never connect
    error("sse.client cannot run inside nginx (nothing runs luv's loop there)", 2)
  end
  local self = setmetatable({
    url = url,
    _u = u,
    _headers = headers,
    _on = {},
    _on_event = o.on_event,
    _on_open = o.on_open,
    _on_error = o.on_error,
    _retry = o.retry or 3000,
    _max_backoff = o.max_backoff or 30000,
    _timeout = o.timeout or 30000,
    _failures = 0,
    _state = "connecting",
    _conn = nil,
    _last_id = o.last_event_id or "",
  }, Client)
  for k, fn in pairs(o.on or {}) do self._on[k] = fn end
  self._parser = core.parser({
    max_line_bytes = o.max_line_bytes,
    max_event_bytes = o.max_event_bytes,
    last_event_id = o.last_event_id,
  })
  self._timer = uv.new_timer()
  self:_attempt(u, 0)
  return self
end

--- client:ready_state() -> "connecting" | "open" | "closed"
function Client:ready_state() return self._state end

--- client:last_event_id() -> the last event id ("" when none)
function Client:last_event_id()
  if self._state ~= "closed" then return self._parser:last_event_id() end
  return self._last_id
end

--- client:on(type, fn) sets (fn) or removes (nil) the handler of a type.
function Client:on(type_, fn)
  if type(type_) ~= "string" then
    error(("bad argument #1 to 'on' (string expected, got %s)"):format(type(type_)), 2)
  end
  if fn ~= nil and type(fn) ~= "function" then
    error(("bad argument #2 to 'on' (function expected, got %s)"):format(type(fn)), 2)
  end
  self._on[type_] = fn
  return self
end

--- client:close() stops everything and closes every handle. Returns true;
-- idempotent.
function Client:close()
  if self._state == "closed" then return true end
  self._state = "closed"
  self:_drop()
  if not self._timer:is_closing() then self._timer:close() end
  self._last_id = self._parser:last_event_id()
  self._parser:close()
  return true
end

-- Report a problem from a user callback: on_error, else stderr.
function Client:_report(msg)
  local fn = self._on_error
  if fn and not self._in_on_error then
    self._in_on_error = true
    local ok, err = pcall(fn, msg, { closed = self._state == "closed" })
    self._in_on_error = false
    if ok then return end
    msg = msg .. "; then in on_error: " .. tostring(err)
  end
  io.stderr:write("sse.client: ", msg, "\n")
end

-- Call a user callback under pcall; report an error it raises.
function Client:_call(what, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then self:_report("error in " .. what .. ": " .. tostring(err)) end
end

-- Call on_error (guarded) with err and info.
function Client:_error(err, info)
  local fn = self._on_error
  if not fn then return end
  self._in_on_error = true
  local ok, e = pcall(fn, err, info)
  self._in_on_error = false
  if not ok then io.stderr:write("sse.client: error in on_error: ", tostring(e), "\n") end
end

-- Close the current connection (if any) without touching the state.
function Client:_drop()
  local conn = self._conn
  self._conn = nil
  if conn and conn.tcp and not conn.tcp:is_closing() then conn.tcp:close() end
end

-- Stop for good with err.
function Client:_fatal(err, status)
  self:close()
  self:_error(err, { closed = true, status = status })
end

-- The current attempt failed or ended: drop it and schedule the next one.
-- opened tells whether a response had been accepted on it.
function Client:_lost(err, opened)
  if self._state == "closed" then return end
  self:_drop()
  if not opened then self._failures = self._failures + 1 end
  local delay = self._retry
  if self._failures > 1 then
    local cap = math.max(self._max_backoff, self._retry)
    delay = math.min(self._retry * 2 ^ (self._failures - 1), cap)
  end
  delay = math.floor(delay)
  self._state = "connecting"
  self._timer:stop()
  self:_error(err, { closed = false, delay = delay })
  if self._state == "closed" then return end -- closed from on_error
  self._timer:start(delay, 0, function()
    if self._state ~= "closed" then self:_attempt(self._u, 0) end
  end)
end

-- Start one connection attempt to u (redirects = hops so far).
function Client:_attempt(u, redirects)
  local conn = { u = u, redirects = redirects, head = "", scanned = 0, opened = false }
  self._conn = conn
  self._parser:reset()
  self._timer:stop()
  self._timer:start(self._timeout, 0, function()
    if self._conn == conn and not conn.opened then self:_lost("timeout", false) end
  end)
  local ok, req = pcall(uv.getaddrinfo, u.host, tostring(u.port), { socktype = "stream" },
    function(gerr, res)
      if self._conn ~= conn then return end
      if gerr or not res or #res == 0 then return self:_lost("cannot resolve " .. u.host, false) end
      self:_connect(conn, res, 1, nil)
    end)
  if not ok or req == nil then
    -- a synchronous failure (luv raises or returns nil, err): report it from
    -- the loop, never from inside connect()
    local why = "cannot resolve " .. u.host
    self._timer:stop()
    self._timer:start(0, 0, function()
      if self._conn == conn then self:_lost(why, false) end
    end)
  end
end

-- Try the resolved addresses in order.
function Client:_connect(conn, addrs, i, last_err)
  local a = addrs[i]
  if not a then return self:_lost(last_err or "cannot connect", false) end
  local tcp = uv.new_tcp()
  conn.tcp = tcp
  local ok, err = tcp:connect(a.addr, conn.u.port, function(cerr)
    if self._conn ~= conn then return end
    if cerr then
      tcp:close()
      conn.tcp = nil
      return self:_connect(conn, addrs, i + 1, cerr)
    end
    self:_send(conn)
  end)
  if not ok then
    tcp:close()
    conn.tcp = nil
    return self:_connect(conn, addrs, i + 1, err)
  end
end

function Client:_send(conn)
  local req = build_request(conn.u, self._headers, self._parser:last_event_id())
  conn.tcp:write(req, function(werr)
    if werr and self._conn == conn then self:_lost(werr, conn.opened) end
  end)
  conn.tcp:read_start(function(rerr, chunk)
    if self._conn ~= conn then return end
    if rerr then return self:_lost(rerr, conn.opened) end
    if not chunk then
      if conn.body and conn.framing == "close" then return self:_lost("connection closed", conn.opened) end
      return self:_lost(conn.opened and "connection closed before the end of the body"
        or "connection closed before the response head", conn.opened)
    end
    if conn.opened then return self:_body(conn, chunk) end
    self:_head(conn, chunk)
  end)
end

-- Accumulate and act on the response head.
function Client:_head(conn, chunk)
  conn.head = conn.head .. chunk
  local n, _, why = core.http_head_end(conn.head, conn.scanned + 1, HEAD_LIMITS)
  if not n then
    if why then return self:_lost("response head too large", false) end
    conn.scanned = #conn.head
    return
  end
  local res, err = core.http_parse_response(conn.head, HEAD_LIMITS)
  if not res then return self:_lost(err, false) end
  local rest = conn.head:sub(res.head_bytes + 1)
  local status, headers = res.status, res.headers
  if status < 200 and status ~= 101 then -- an interim response: the real one follows
    conn.head, conn.scanned = "", 0
    return self:_head(conn, rest)
  end
  conn.head = nil

  if status == 301 or status == 302 or status == 303 or status == 307 or status == 308 then
    local loc = headers["location"]
    if not loc then return self:_fatal("redirect without location", status) end
    if conn.redirects >= MAX_REDIRECTS then return self:_fatal("too many redirects", status) end
    local nu, uwhy = parse_url(resolve_location(conn.u, loc))
    if not nu then return self:_fatal("bad redirect: " .. uwhy, status) end
    self:_drop()
    return self:_attempt(nu, conn.redirects + 1)
  end
  if status ~= 200 then return self:_fatal("http status " .. status, status) end
  if res.media_type ~= "text/event-stream" then
    return self:_fatal(("content type '%s' is not text/event-stream"):format(headers["content-type"] or ""), status)
  end

  conn.body, conn.framing = core.http_body(res.framing, res.content_length), res.framing
  conn.opened = true
  conn.origin = conn.u.origin
  self._failures = 0
  self._timer:stop()
  self._state = "open"
  if self._on_open then self:_call("on_open", self._on_open, self) end
  if self._conn ~= conn then return end
  if conn.body:done() then return self:_lost("end of response body", true) end
  if #rest > 0 then self:_body(conn, rest) end
end

-- Decode the body framing and feed the parser.
function Client:_body(conn, chunk)
  local data, done = conn.body:feed(chunk)
  if not data then return self:_lost("bad chunked encoding", true) end
  if #data > 0 then self:_feed(conn, data) end
  if done and self._conn == conn then self:_lost("end of response body", true) end
end

-- Feed body bytes to the parser and dispatch the events.
function Client:_feed(conn, bytes)
  local evs, err, before = self._parser:feed(bytes)
  local r = self._parser:retry()
  if r then self._retry = r end
  self:_dispatch(conn, evs or before)
  if not evs and self._conn == conn then self:_fatal(err) end
end

function Client:_dispatch(conn, evs)
  for i = 1, #evs do
    if self._conn ~= conn then return end
    local ev = evs[i]
    ev.origin = conn.origin
    local fn = self._on[ev.type]
    if fn then self:_call("on." .. ev.type .. " handler", fn, ev) end
    if self._on_event and self._conn == conn then self:_call("on_event", self._on_event, ev) end
  end
end

-- exposed for tests
M._parse_url = parse_url
M._resolve_location = resolve_location

return M
