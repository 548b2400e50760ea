--- sse.http: a small, strict HTTP/1.1 server on luv, made to serve SSE.
--
--   local http = require("sse.http")
--   local app = http.new{ port = 8080 }
--   app:get("/events", function(req, res)
--     local stream = res:sse{ retry = 2000, keepalive = 15 }
--     stream:send_data("hello")
--   end)
--   app:post("/publish", function(req, res) res:json{ ok = true } end)
--   assert(app:listen())
--   require("luv").run()
--
-- http.new(opts) options (all optional; a bad one raises naming it):
--   host             address to bind, default "127.0.0.1" (an IP, not a name)
--   port             0..65535, default 8080; 0 picks a free port
--   max_connections  open connections (SSE streams included), default 10000;
--                    past it a new connection gets 503 and is closed at once
--   head_timeout     seconds a request head may take, default 10; a new
--                    connection must send its head within it too
--                    (slowloris). A body may pause at most this long and
--                    must arrive within it plus 1 ms per byte (1 KB/s).
--   idle_timeout     seconds a keep-alive connection may wait for its next
--                    request, default 60
--   max_head_bytes   request head limit, default 8192 (431, or 414 when the
--                    request line alone is too long)
--   max_headers      header lines per request, default 64 (431)
--   max_body_bytes   request body limit, default 1 MiB (413, answered as soon
--                    as Content-Length is seen)
--   max_query_pairs  query parameters per request, default 256 (400)
--   cors             { origins = { "https://a.example", ... } | { "*" },
--                      max_age = seconds (default 600), credentials = bool }
--   log              function(message) for handler errors and internal
--                    failures, default: a line on stderr
--
-- handler(req, res): req.method, req.path (percent-decoded), req.target (raw),
-- req.query (decoded; a repeated key gives a list), req.headers (lowercased
-- names; any-case lookup works; repeats joined by ", "), req.body ("" when
-- none), req.version ("1.1" | "1.0"), req.last_event_id (Last-Event-ID
-- header, else the lastEventId query parameter, else nil), req.remote (peer
-- IP). A handler must answer before it returns, with exactly one of
-- res:send(body), res:json(value) or res:sse{...}; one that returns without
-- answering gets a 500 (and a log line). A handler error is caught and logged
-- with its route: 500 if nothing was sent yet, the stream closed otherwise.
--
-- Protocol errors (400, 408, 411, 413, 414, 417, 431, 503, 505) get a short
-- text body naming the problem and close the connection; 404, 405 (with
-- Allow) and the handlers' own answers keep it alive. Requests pipelined in
-- one read are answered in order in the same loop turn. HEAD is served by
-- the GET handler without the body; OPTIONS is answered with 204 + Allow
-- (a CORS preflight when the origin is allowed) unless a route handles it.
--
-- CORS: with opts.cors, a request whose Origin is listed (or any Origin
-- with "*") gets Access-Control-Allow-Origin: <that origin> (and
-- Allow-Credentials when asked); a preflight gets Allow-Methods (the
-- route's), Allow-Headers (Last-Event-ID, Content-Type, Authorization) and
-- Max-Age. Every answer then carries Vary: Origin. Without opts.cors no such
-- header is ever sent.
local uv = require("luv")
local core = require("sse.core")

local M = {}

M.DEFAULTS = {
  host = "127.0.0.1",
  port = 8080,
  max_connections = 10000,
  head_timeout = 10,
  idle_timeout = 60,
  max_head_bytes = 8192,
  max_headers = 64,
  max_body_bytes = 1024 * 1024,
  max_query_pairs = 256,
}

--- Seconds a closing connection may keep sending before it is cut: after an
-- error answer the server shuts its side down and discards what still comes,
-- so the client reads the answer instead of a reset.
M.LINGER = 2
--- Past this many queued response bytes a connection is not read until its
-- client has taken them (pipelining without reading).
M.WRITE_HIGH = 256 * 1024
--- At most this many refused (503) connections linger at once; more are
-- closed straight after the answer is written.
M.MAX_REFUSED = 256

local CORS_HEADERS = "Last-Event-ID, Content-Type, Authorization"
local BACKLOG = 4096

local REASONS = {
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
M.REASONS = REASONS

-- Connection states (plain connections; a stream leaves this machinery).
local HEAD, BODY, IDLE, LINGER = 1, 2, 3, 4

local Server = {}
Server.__index = Server
Server.__name = "sse.http.Server"

local Response = {}
Response.__index = Response
Response.__name = "sse.http.Response"

-- ---------------------------------------------------------------------------
-- small helpers

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

-- How a bad option value is shown in a message.
local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "number" then return type(v) end
  if v ~= v then return "nan" end
  return tostring(v)
end

local function is_int(v)
  return type(v) == "number" and v == math.floor(v) and v > -math.huge and v < math.huge
end

local function default_log(msg)
  io.stderr:write("sse.http: ", msg, "\n")
end

local date_t, date_s = -1, nil
-- The Date header line, recomputed at most once a second.
local function date_line()
  local t = os.time()
  if t ~= date_t then
    date_t = t
    date_s = "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT", t) .. "\r\n"
  end
  return date_s
end

-- Lowercasing lookup for req.headers: h["Content-Type"] finds "content-type".
local headers_mt = {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local lk = k:lower()
    if lk == k then return nil end
    return rawget(t, lk)
  end,
}

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

-- ---------------------------------------------------------------------------
-- options

local KNOWN = {
  host = true, port = true, max_connections = true, head_timeout = true, idle_timeout = true,
  max_head_bytes = true, max_headers = true, max_body_bytes = true, max_query_pairs = true,
  cors = true, log = true,
}

local function opt_int(opts, name, lo, hi, range)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if not is_int(v) or v < lo or v > hi then
    argerror(1, "new", ("%s must be an integer %s, got %s"):format(name, range, show(v)), 3)
  end
  return math.floor(v)
end

local function opt_seconds(opts, name)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if type(v) ~= "number" or not (v > 0 and v < 1e9) then
    argerror(1, "new", ("%s must be a positive number of seconds, got %s"):format(name, show(v)), 3)
  end
  return v
end

local function check_cors(c)
  if c == nil then return nil end
  local function bad(msg) argerror(1, "new", "cors." .. msg, 4) end
  if type(c) ~= "table" then argerror(1, "new", "cors must be a table, got " .. type(c), 3) end
  for k in pairs(c) do
    if k ~= "origins" and k ~= "max_age" and k ~= "credentials" then
      bad(("%s is not a known option"):format(tostring(k)))
    end
  end
  if type(c.origins) ~= "table" then bad("origins must be a list of strings, got " .. type(c.origins)) end
  local set, any = {}, false
  for i, o in ipairs(c.origins) do
    if type(o) ~= "string" or o == "" or o:find("[%c%s]") then
      bad(("origins[%d] must be an origin like \"https://example.com\" or \"*\", got %s"):format(i, show(o)))
    end
    if o == "*" then any = true else set[o] = true end
  end
  local max_age = c.max_age
  if max_age == nil then
    max_age = 600
  elseif not is_int(max_age) or max_age < 0 then
    bad("max_age must be an integer >= 0, got " .. show(max_age))
  end
  if c.credentials ~= nil and type(c.credentials) ~= "boolean" then
    bad("credentials must be a boolean, got " .. type(c.credentials))
  end
  return { set = set, any = any, max_age = math.floor(max_age), credentials = c.credentials == true }
end

--- http.new([opts]) -> app (nothing is bound until app:listen()).
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then argerror(1, "new", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then argerror(1, "new", ("unknown option '%s'"):format(tostring(k))) end
  end
  local host = opts.host
  if host == nil then
    host = M.DEFAULTS.host
  elseif type(host) ~= "string" or host == "" then
    argerror(1, "new", "host must be an IP address string, got "
      .. (type(host) == "string" and '""' or type(host)))
  end
  local log = opts.log
  if log ~= nil and type(log) ~= "function" then
    argerror(1, "new", "log must be a function, got " .. type(log))
  end
  local self = setmetatable({
    host = host,
    port = opt_int(opts, "port", 0, 65535, "in 0..65535"),
    max_connections = opt_int(opts, "max_connections", 1, 1e9, ">= 1"),
    head_timeout = opt_seconds(opts, "head_timeout"),
    idle_timeout = opt_seconds(opts, "idle_timeout"),
    max_head_bytes = opt_int(opts, "max_head_bytes", 64, 1073741824, "in 64..2^30"),
    max_headers = opt_int(opts, "max_headers", 1, 10000, "in 1..10000"),
    max_body_bytes = opt_int(opts, "max_body_bytes", 0, 9007199254740992, "in 0..2^53"),
    max_query_pairs = opt_int(opts, "max_query_pairs", 1, 1000000, "in 1..1000000"),
    cors = check_cors(opts.cors),
    log = log or default_log,
    _routes = {},     -- exact path -> { methods = {GET = fn, ...}, path = }
    _prefixes = {},   -- list of routes whose path ends in '*', longest first
    _conns = {},      -- plain connection -> true (each has a deadline)
    _streams = {},    -- sse.Stream -> true
    _nconn = 0,       -- admitted connections: plain + streams
    _nrefused = 0,    -- refused connections still lingering
  }, Server)
  self._limits = { max_head_bytes = self.max_head_bytes, max_headers = self.max_headers }
  self._head_ms = math.max(1, math.floor(self.head_timeout * 1000))
  self._idle_ms = math.max(1, math.floor(self.idle_timeout * 1000))
  self._linger_ms = math.floor(M.LINGER * 1000)
  -- on_close of every stream this server opened (a stream passes itself)
  self._forget_stream = function(_, stream)
    if self._streams[stream] then
      self._streams[stream] = nil
      self._nconn = self._nconn - 1
    end
  end
  return self
end

local function check_server(self, fname)
  if getmetatable(self) ~= Server then
    error(("calling '%s' on bad self (sse.http.Server expected, got %s)"):format(fname, type(self)), 3)
  end
end

-- ---------------------------------------------------------------------------
-- routes

local function add_route(self, fname, method, path, handler, n)
  if type(method) ~= "string" or not method:find(TOKEN) or method ~= method:upper() then
    argerror(n, fname, "method must be an uppercase token like \"GET\", got " .. show(method), 3)
  end
  n = n + 1
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" or path:find("[%c ]") then
    argerror(n, fname, "path must start with '/' and hold no spaces or control characters, got "
      .. show(path), 3)
  end
  if path:find("*", 1, true) and path:find("*", 1, true) ~= #path then
    argerror(n, fname, "'*' is only allowed at the end of a path, got " .. show(path), 3)
  end
  if type(handler) ~= "function" then
    argerror(n + 1, fname, "function expected, got " .. type(handler), 3)
  end
  local prefix = path:sub(-1) == "*"
  local key = prefix and path:sub(1, -2) or path
  local route
  if prefix then
    for _, r in ipairs(self._prefixes) do
      if r.prefix == key then route = r break end
    end
  else
    route = self._routes[key]
  end
  if not route then
    route = { methods = {}, path = path, prefix = prefix and key or nil }
    if prefix then
      local list = self._prefixes
      list[#list + 1] = route
      table.sort(list, function(a, b) return #a.prefix > #b.prefix end)
    else
      self._routes[key] = route
    end
  end
  if route.methods[method] then
    argerror(n, fname, ("%s %s is already routed"):format(method, path), 3)
  end
  route.methods[method] = handler
  route.allow = nil
  return self
end

--- app:route(method, path, handler): path is exact, or a prefix when it
-- ends in '*' ("/static/*" matches "/static/" and below; the longest prefix
-- wins, exact paths first). Returns app.
function Server:route(method, path, handler)
  check_server(self, "route")
  return add_route(self, "route", method, path, handler, 1)
end

function Server:get(path, handler)
  check_server(self, "get")
  return add_route(self, "get", "GET", path, handler, 0)
end

function Server:post(path, handler)
  check_server(self, "post")
  return add_route(self, "post", "POST", path, handler, 0)
end

local function find_route(self, path)
  local r = self._routes[path]
  if r then return r end
  for _, p in ipairs(self._prefixes) do
    if path:sub(1, #p.prefix) == p.prefix then return p end
  end
  return nil
end

-- "GET, HEAD, OPTIONS, POST": the methods a route answers, sorted.
local function allow_list(route)
  if route.allow then return route.allow end
  local seen, list = { OPTIONS = true }, { "OPTIONS" }
  for m in pairs(route.methods) do
    if not seen[m] then seen[m] = true list[#list + 1] = m end
  end
  if seen.GET and not seen.HEAD then list[#list + 1] = "HEAD" end
  table.sort(list)
  route.allow = table.concat(list, ", ")
  return route.allow
end

-- ---------------------------------------------------------------------------
-- connections

local on_read, process, after_response

-- Forget a plain connection and close its handle now.
local function close_conn(self, conn)
  if conn.closed then return end
  conn.closed = true
  conn.buf, conn.req, conn.parts = nil, nil, nil
  self._conns[conn] = nil
  if conn.refused then
    self._nrefused = self._nrefused - 1
  else
    self._nconn = self._nconn - 1
  end
  local tcp = conn.tcp
  if not tcp:is_closing() then tcp:close() end
end

-- Shut our side down after what is queued and discard what the peer still
-- sends, until it closes or the linger time runs out.
local function linger(self, conn)
  if conn.closed or conn.state == LINGER then return end
  conn.state = LINGER
  conn.buf, conn.req, conn.parts = nil, nil, nil
  -- the client gets idle_timeout to take a long answer, then M.LINGER
  conn.deadline = uv.now() + self._idle_ms
  if conn.paused then
    conn.paused = nil
    conn.tcp:read_start(conn.reader)
  end
  local ok, res = pcall(conn.tcp.shutdown, conn.tcp, function()
    if not conn.closed then conn.deadline = uv.now() + self._linger_ms end
  end)
  if not ok or not res then close_conn(self, conn) end
end

-- Answer a protocol error and close: status, short text body naming it.
local function fail(self, conn, status, msg)
  if conn.closed or conn.state == LINGER then return end
  local body = msg .. "\n"
  conn.tcp:write(table.concat({
    "HTTP/1.1 ", status, " ", REASONS[status] or "", "\r\n",
    date_line(),
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Content-Length: ", #body, "\r\n",
    "Connection: close\r\n\r\n",
    body,
  }))
  linger(self, conn)
end

local function guard(self, what, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    pcall(self.log, ("internal error in %s: %s"):format(what, tostring(err)))
  end
end

-- A new client past max_connections: 503, then close.
local function refuse(self, tcp)
  local msg = "too many connections\n"
  tcp:write(table.concat({
    "HTTP/1.1 503 Service Unavailable\r\n", date_line(),
    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ", #msg,
    "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n", msg,
  }))
  if self._nrefused >= M.MAX_REFUSED then
    -- too many already lingering: the answer is queued; close after it
    tcp:shutdown(function() pcall(function() if not tcp:is_closing() then tcp:close() end end) end)
    return
  end
  self._nrefused = self._nrefused + 1
  local conn = { tcp = tcp, refused = true, state = LINGER,
                 deadline = uv.now() + self._linger_ms }
  conn.reader = function(err, data)
    if err or not data then guard(self, "read", close_conn, self, conn) end
  end
  self._conns[conn] = true
  tcp:read_start(conn.reader)
  tcp:shutdown()
end

local function accept(self)
  local tcp = uv.new_tcp()
  local ok, err = self._tcp:accept(tcp)
  if not ok then
    tcp:close()
    pcall(self.log, "accept failed: " .. tostring(err))
    return
  end
  if self._nconn >= self.max_connections then return refuse(self, tcp) end
  self._nconn = self._nconn + 1
  tcp:nodelay(true)
  local peer = tcp:getpeername()
  local conn = {
    tcp = tcp, buf = "", scanned = 0, state = HEAD,
    deadline = uv.now() + self._head_ms,
    remote = type(peer) == "table" and peer.ip or nil,
  }
  conn.reader = function(rerr, data)
    local rok, e = pcall(on_read, self, conn, rerr, data)
    if not rok then
      pcall(self.log, "internal error in read: " .. tostring(e))
      pcall(close_conn, self, conn)
    end
  end
  self._conns[conn] = true
  local rok, rerr = tcp:read_start(conn.reader)
  if not rok then
    pcall(self.log, "read_start failed: " .. tostring(rerr))
    close_conn(self, conn)
  end
end

function on_read(self, conn, err, data)
  if conn.closed then return end
  if err or not data then return close_conn(self, conn) end
  local st = conn.state
  if st == LINGER then return end -- discarded
  if st == IDLE then
    conn.state = HEAD
    conn.deadline = uv.now() + self._head_ms
  elseif st == BODY then
    -- a body must keep moving, and at 1 KB/s at least past head_timeout
    conn.deadline = math.min(uv.now() + self._head_ms, conn.body_deadline)
  end
  if st == BODY then
    -- body bytes are kept as a list of chunks, joined once (linear time)
    local parts = conn.parts
    parts[#parts + 1] = data
    conn.have = conn.have + #data
  else
    local buf = conn.buf
    conn.buf = buf == "" and data or buf .. data -- a head: at most max_head_bytes
  end
  process(self, conn)
  if conn.closed or conn.state == LINGER or conn.stream then return end
  -- a client pipelining without reading its answers is not read further
  if conn.tcp:get_write_queue_size() > M.WRITE_HIGH then
    conn.tcp:read_stop()
    conn.paused = true
    conn.deadline = uv.now() + self._idle_ms
  end
end

-- Answer every complete request in conn.buf, in order.
function process(self, conn)
  while true do
    if conn.state == HEAD then
      local buf = conn.buf
      local n, status, msg = core.http_head_end(buf, conn.scanned + 1, self._limits)
      if not n then
        if status then return fail(self, conn, status, msg) end
        conn.scanned = #buf
        return
      end
      local req
      req, status, msg = core.http_parse_request(buf, self._limits)
      if not req then return fail(self, conn, status, msg) end
      local len = req.content_length or 0
      if len > self.max_body_bytes then
        return fail(self, conn, 413, ("request body over %d bytes"):format(self.max_body_bytes))
      end
      local expect = req.headers.expect
      if expect then
        if expect:lower() ~= "100-continue" then
          return fail(self, conn, 417, "unsupported Expect header")
        end
        if req.version == "1.1" and len > 0 and #buf < n + len then
          conn.tcp:write("HTTP/1.1 100 Continue\r\n\r\n")
        end
      end
      conn.req, conn.need, conn.scanned = req, len, 0
      if len == 0 then
        conn.buf = #buf > n and buf:sub(n + 1) or ""
      else
        local rest = #buf > n and buf:sub(n + 1) or ""
        conn.buf, conn.parts, conn.have = "", { rest }, #rest
        conn.state = BODY
        if #rest < len then
          conn.body_deadline = uv.now() + self._head_ms + len
          conn.deadline = math.min(uv.now() + self._head_ms, conn.body_deadline)
          return
        end
      end
    end
    local req, need = conn.req, conn.need
    if need == 0 then
      req.body = ""
    else
      -- BODY: complete once `need` bytes are in conn.parts
      if conn.have < need then return end
      local all = table.concat(conn.parts)
      conn.parts, conn.have = nil, nil
      req.body = #all > need and all:sub(1, need) or all
      conn.buf = #all > need and all:sub(need + 1) or ""
    end
    conn.req = nil
    self:_dispatch(conn, req)
    if conn.closed or conn.state == LINGER or conn.stream then return end
    if conn.buf == "" then
      conn.state = IDLE
      conn.deadline = uv.now() + self._idle_ms
      return
    end
    conn.state = HEAD
    conn.deadline = uv.now() + self._head_ms
  end
end

-- After an ordinary answer: close when the request asked for it.
function after_response(self, conn, keep)
  if not keep then linger(self, conn) end
end

-- Sweep: time out heads, idle connections and lingering closes; resume
-- paused readers whose client caught up.
local function sweep(self)
  local now = uv.now()
  for conn in pairs(self._conns) do
    if conn.paused and not conn.closed and conn.tcp:get_write_queue_size() <= M.WRITE_HIGH / 2 then
      conn.paused = nil
      conn.tcp:read_start(conn.reader)
      local st = conn.state
      conn.deadline = st == IDLE and now + self._idle_ms
        or st == BODY and math.min(now + self._head_ms, conn.body_deadline)
        or now + self._head_ms
    end
    if not conn.closed and now >= conn.deadline then
      local st = conn.state
      if st == LINGER or st == IDLE or conn.paused or (st == HEAD and conn.buf == "") then
        close_conn(self, conn)
      else
        fail(self, conn, 408, st == HEAD and "request head not received in time"
          or "request body not received in time")
        -- the 408 gets one linger period, not idle_timeout
        if not conn.closed then conn.deadline = now + self._linger_ms end
      end
    end
  end
end

-- ---------------------------------------------------------------------------
-- requests and responses

local function first(v)
  if type(v) == "table" then return v[1] end
  return v
end

function Server:_dispatch(conn, req)
  local q, status, msg = core.http_parse_query(req.query, self.max_query_pairs)
  if not q then return fail(self, conn, status, msg) end
  req.query = q
  local headers = setmetatable(req.headers, headers_mt)
  req.last_event_id = headers["last-event-id"] or first(q.lastEventId)
  req.remote = conn.remote
  req.content_length, req.head_bytes = nil, nil
  local keep = req.keep_alive
  req.keep_alive = nil

  local res = setmetatable({ _conn = conn, _server = self, _req = req, _keep = keep,
                             _status = 200 }, Response)
  local cors = self.cors
  if cors then
    local origin = headers.origin
    if origin and (cors.any or cors.set[origin]) then res._origin = origin end
  end

  local method, path = req.method, req.path
  local route = find_route(self, path)
  if not route then
    if method == "OPTIONS" and req.target == "*" then
      local all = { methods = {} }
      for _, r in pairs(self._routes) do
        for m, h in pairs(r.methods) do all.methods[m] = h end
      end
      for _, r in ipairs(self._prefixes) do
        for m, h in pairs(r.methods) do all.methods[m] = h end
      end
      return res:_answer(204, nil, { "Allow", allow_list(all) })
    end
    return res:_answer(404, "not found\n")
  end
  local handler = route.methods[method]
  if not handler and method == "HEAD" then handler = route.methods.GET end
  if not handler then
    local allow = allow_list(route)
    if method == "OPTIONS" then
      if res._origin and headers["access-control-request-method"] then
        return res:_answer(204, nil, {
          "Allow", allow,
          "Access-Control-Allow-Methods", allow,
          "Access-Control-Allow-Headers", CORS_HEADERS,
          "Access-Control-Max-Age", tostring(cors.max_age),
        })
      end
      return res:_answer(204, nil, { "Allow", allow })
    end
    return res:_answer(405, "method not allowed\n", { "Allow", allow })
  end

  local ok, err = xpcall(handler, debug.traceback, req, res)
  if not ok then
    pcall(self.log, ("handler error in %s %s: %s"):format(method, route.path, tostring(err)))
    if res._stream then
      res._stream:close()
    elseif not res._done then
      res:_answer(500, "internal server error\n")
    end
  elseif not res._done then
    pcall(self.log, ("handler of %s %s returned without a response"):format(method, route.path))
    res:_answer(500, "internal server error\n")
  end
end

local NO_BODY = { [204] = true, [304] = true }

-- Write the answer: status, user headers, extra (list of name, value),
-- framing headers, body. Keeps or closes the connection.
function Response:_answer(status, body, extra)
  self._done = true
  local conn, server = self._conn, self._server
  if conn.closed or conn.state == LINGER then return nil, "closed" end
  body = body or ""
  local t = { "HTTP/1.1 ", status, " ", REASONS[status] or "", "\r\n", date_line() }
  local h = self._headers
  if h then
    for i = 1, #h, 2 do
      t[#t + 1] = h[i]; t[#t + 1] = ": "; t[#t + 1] = h[i + 1]; t[#t + 1] = "\r\n"
    end
  end
  if extra then
    for i = 1, #extra, 2 do
      t[#t + 1] = extra[i]; t[#t + 1] = ": "; t[#t + 1] = extra[i + 1]; t[#t + 1] = "\r\n"
    end
  end
  if not self._has_type and body ~= "" then
    t[#t + 1] = "Content-Type: text/plain; charset=utf-8\r\n"
  end
  if not NO_BODY[status] then
    t[#t + 1] = "Content-Length: "; t[#t + 1] = #body; t[#t + 1] = "\r\n"
  end
  self:_cors_lines(t)
  local keep = self._keep
  if not keep then
    t[#t + 1] = "Connection: close\r\n"
  elseif self._req.version == "1.0" then
    t[#t + 1] = "Connection: keep-alive\r\n"
  end
  t[#t + 1] = "\r\n"
  local head = table.concat(t)
  if body == "" or self._req.method == "HEAD" or NO_BODY[status] then
    conn.tcp:write(head)
  elseif #body < 16384 then
    conn.tcp:write(head .. body)
  else
    conn.tcp:write({ head, body })
  end
  after_response(server, conn, keep)
  return true
end

function Response:_cors_lines(t)
  local cors = self._server.cors
  if not cors then return end
  local origin = self._origin
  if origin then
    t[#t + 1] = "Access-Control-Allow-Origin: "; t[#t + 1] = origin; t[#t + 1] = "\r\n"
    if cors.credentials then t[#t + 1] = "Access-Control-Allow-Credentials: true\r\n" end
  end
  t[#t + 1] = "Vary: Origin\r\n"
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
  if not k:find(TOKEN) then argerror(1, "header", "header name must be a token, got " .. show(k)) end
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

--- res:json(value): answer with the JSON of value (application/json).
function Response:json(value)
  check_res(self, "json")
  local Event = require("sse.event")
  local ok, text = pcall(Event.to_json, value)
  if not ok then
    argerror(1, "json", "cannot encode as JSON: " .. tostring(text):gsub("^[^:]*:%d+: ", ""))
  end
  if not self._has_type then self:header("Content-Type", "application/json") end
  return self:_answer(self._status, text)
end

local SSE_KNOWN = { retry = true, keepalive = true, outbox_limit = true, slow_policy = true,
                    write_timeout = true }

--- res:sse([opts]) -> sse.Stream: answer 200 (whatever res:status said)
-- with the event-stream head and the headers set by res:header (but
-- Content-Type and Cache-Control, which are the stream's); the connection
-- then belongs to the returned stream, which ends with the connection, and
-- requests the client pipelined behind this one are dropped. The stream's
-- last_event_id() is req.last_event_id. opts: retry (ms sent as "retry:"),
-- keepalive (seconds between comments), outbox_limit, slow_policy,
-- write_timeout (see
-- sse.Stream). On a HEAD request the stream is returned already closed.
-- Returns nil, "closed" when the connection is gone.
function Response:sse(opts)
  check_res(self, "sse")
  if opts == nil then opts = {} end
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
  local Stream = require("sse.stream")
  local conn, server, req = self._conn, self._server, self._req
  if conn.closed or conn.state == LINGER then
    self._done = true
    return nil, "closed"
  end
  local t = {
    "HTTP/1.1 200 OK\r\n", date_line(),
    "Content-Type: text/event-stream; charset=utf-8\r\n",
    "Cache-Control: no-cache\r\n",
    "X-Accel-Buffering: no\r\n",
  }
  local h = self._headers
  if h then
    for i = 1, #h, 2 do
      local lk = h[i]:lower()
      if lk ~= "content-type" and lk ~= "cache-control" then
        t[#t + 1] = h[i]; t[#t + 1] = ": "; t[#t + 1] = h[i + 1]; t[#t + 1] = "\r\n"
      end
    end
  end
  self:_cors_lines(t)
  -- HTTP/1.0 has no chunked coding: the stream's end is the connection's
  t[#t + 1] = req.version == "1.0" and "Connection: close\r\n\r\n" or "Connection: keep-alive\r\n\r\n"
  local tcp = conn.tcp
  local sok, stream = pcall(Stream.new, {
    handle = tcp, last_event_id = req.last_event_id,
    outbox_limit = opts.outbox_limit, slow_policy = opts.slow_policy,
    write_timeout = opts.write_timeout,
  })
  if not sok then
    argerror(1, "sse", tostring(stream):match("%((.*)%)$") or tostring(stream))
  end
  tcp:write(table.concat(t))
  self._done = true
  self._stream = stream

  -- The connection is the stream's now: keep only what notices EOF.
  server._conns[conn] = nil
  conn.stream = true
  conn.buf, conn.req, conn.reader = nil, nil, nil
  server._streams[stream] = true
  stream:on_close(server._forget_stream) -- one function for all streams
  tcp:read_stop()
  local ok = tcp:read_start(function(err, data)
    if data then return end -- bytes from the client are ignored
    local cok, cerr = pcall(stream.close, stream, err or "eof")
    if not cok then pcall(server.log, "internal error in stream close: " .. tostring(cerr)) end
  end)
  if not ok then
    stream:close("read failed")
    return stream
  end
  if req.method == "HEAD" then
    stream:close()
    return stream
  end
  if retry then stream:set_retry(retry) end
  if ka then stream:start_keepalive(ka) end
  return stream
end

-- ---------------------------------------------------------------------------
-- listen / close

--- app:listen() -> port | nil, err: bind, listen and start serving (the
-- caller runs uv.run()).
function Server:listen()
  check_server(self, "listen")
  if self._tcp then return nil, "already listening" end
  if self._closed then return nil, "closed" end
  local tcp = uv.new_tcp()
  local ok, res, err = pcall(tcp.bind, tcp, self.host, self.port)
  if not ok then
    tcp:close()
    return nil, tostring(res)
  end
  if not res then
    tcp:close()
    return nil, err
  end
  local lok, lerr = tcp:listen(BACKLOG, function(aerr)
    if aerr then
      pcall(self.log, "listen error: " .. tostring(aerr))
      return
    end
    guard(self, "accept", accept, self)
  end)
  if not lok then
    tcp:close()
    return nil, lerr
  end
  local name = tcp:getsockname()
  self._tcp = tcp
  local period = math.min(self._head_ms, self._idle_ms, self._linger_ms) / 4
  period = math.max(10, math.min(1000, math.floor(period)))
  self._timer = uv.new_timer()
  self._timer:start(period, period, function() guard(self, "sweep", sweep, self) end)
  self._timer:unref() -- the listening handle keeps the loop alive, not this
  self.bound_port = name.port
  return name.port
end

--- app:close(): stop accepting and close every connection (streams through
-- stream:close(), so what they have queued is still sent). Idempotent.
function Server:close()
  check_server(self, "close")
  if self._closed then return end
  self._closed = true
  if self._tcp then
    self._tcp:close()
    self._timer:stop()
    self._timer:close()
    self._tcp, self._timer = nil, nil
  end
  for conn in pairs(self._conns) do close_conn(self, conn) end
  for stream in pairs(self._streams) do stream:close() end
end

--- app:connection_count(): open connections, SSE streams included (refused
-- ones are not counted).
function Server:connection_count()
  check_server(self, "connection_count")
  return self._nconn
end

function Server:__tostring()
  return ("sse.http.Server(%s)"):format(self._tcp and ("%s:%d"):format(self.host, self.bound_port)
    or (self._closed and "closed" or "not listening"))
end

M.Server = Server
M.Response = Response
return M
