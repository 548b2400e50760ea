--- sse.http.server: the Server object: options, routes, listen and close.
-- Connections are sse.http.conn's, answers sse.http.response's, routing
-- sse.http.router's.
local uv = require("luv")
local core = require("sse.core")
local Stream = require("sse.stream")
local options = require("sse.http.options")
local Router = require("sse.http.router")
local conn = require("sse.http.conn")

local BACKLOG = 4096

local Server = {}
Server.__index = Server
Server.__name = "sse.http.Server"

local function default_log(msg)
  io.stderr:write("sse.http: ", msg, "\n")
end

--- Server.new([opts]) -> app (nothing is bound until app:listen()).
function Server.new(opts)
  if opts == nil then opts = {} end
  local o, err = options.check(opts)
  if not o then options.argerror(1, "new", err) end
  local self = setmetatable(o, Server)
  self.log = o.log or default_log
  self._router = Router.new()
  self._conns = {}      -- plain connection -> true (each has a deadline)
  self._tag = core.new_tag() -- this server's streams carry it (no table of them)
  self._nrefused = 0    -- refused connections still lingering
  -- the parser's limits; nil when they are its defaults (not read per request)
  local d = options.DEFAULTS
  if self.max_head_bytes ~= d.max_head_bytes or self.max_headers ~= d.max_headers then
    self._limits = { max_head_bytes = self.max_head_bytes, max_headers = self.max_headers }
  end
  self._head_ms = math.max(1, math.floor(self.head_timeout * 1000))
  self._idle_ms = math.max(1, math.floor(self.idle_timeout * 1000))
  self._linger_ms = math.floor(conn.LINGER * 1000)
  self._statuses = {}   -- status -> answers written (app:status_counts())
  return self
end

local function check_server(self, fname)
  if getmetatable(self) ~= Server then
    error(("calling '%s' on bad self (sse.http.Server expected, got %s)"):format(fname, type(self)), 3)
  end
end

--- app:route(method, path, handler): path is exact, or a prefix when it
-- ends in '*' ("/static/*" matches "/static/" and below; the longest prefix
-- wins, exact paths first). Returns app.
function Server:route(method, path, handler)
  check_server(self, "route")
  self._router:add("route", method, path, handler, 1)
  return self
end

function Server:get(path, handler)
  check_server(self, "get")
  self._router:add("get", "GET", path, handler, 0)
  return self
end

function Server:post(path, handler)
  check_server(self, "post")
  self._router:add("post", "POST", path, handler, 0)
  return self
end

--- app:use([prefix,] fn): middleware fn(req, res) run before the handler
-- of every routed request (or of those whose path starts with prefix), in
-- the order added; it answers to stop the request (401, 429, ...) or
-- returns to let it through, and may wait with sse.http.await. Returns app.
function Server:use(prefix, fn)
  check_server(self, "use")
  if fn == nil then prefix, fn = nil, prefix end
  if prefix ~= nil and (type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/") then
    options.argerror(1, "use", "path prefix must start with '/', got " .. options.show(prefix), 2)
  end
  if type(fn) ~= "function" then
    options.argerror(prefix and 2 or 1, "use", "function expected, got " .. type(fn), 2)
  end
  self._router:use(prefix, fn)
  return self
end

-- What the other parts call on the server.
function Server:_fail(c, status, msg) return conn.fail(self, c, status, msg) end
function Server:_answered(c, keep) return conn.answered(self, c, keep) end
function Server:_adopt(c, stream) return conn.adopt(self, c, stream) end

--- app:listen() -> port | nil, err: bind, listen and start serving (the
-- caller runs uv.run()).
function Server:listen()
  check_server(self, "listen")
  if require("sse.ngx.host").active then
    -- luv loads inside nginx, but nothing runs its loop: this would never serve
    error("sse.http cannot serve inside nginx (nothing runs luv's loop there): use sse.ngx", 2)
  end
  if self._tcp then return nil, "already listening" end
  if self._closed then return nil, "closed" end
  -- the core accepts, and reads each connection until its first bytes:
  -- Lua sees a connection once it has said something (sse.http.conn.start)
  -- accepted sockets inherit TCP_NODELAY and the write timeout (Linux)
  local wt = core.accepted_inherit and Stream.DEFAULT_WRITE_TIMEOUT or 0
  local tcp, err = core.http_listen(self.host, self.port, BACKLOG, self.max_connections, wt,
    function(c, data, req) conn.guard(self, "accept", conn.start, self, c, data, req) end,
    function(c) conn.guard(self, "accept", conn.refuse, self, c) end,
    self.max_head_bytes, self.max_headers)
  if not tcp then return nil, err end
  self._write_timeout_inherited = core.accepted_inherit
  local name = tcp:getsockname()
  self._tcp = tcp
  self._listener = tcp -- kept after close: its count goes on down
  local period = math.min(self._head_ms, self._idle_ms, self._linger_ms) / 4
  period = math.max(10, math.min(1000, math.floor(period)))
  self._timer = uv.new_timer()
  self._timer:start(period, period, function() conn.guard(self, "sweep", conn.sweep, self) end)
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
  for c in pairs(self._conns) do conn.close(self, c) end
  for _, stream in ipairs(core.tagged(self._tag)) do stream:close() end
end

--- app:connection_count(): open connections, SSE streams included (refused
-- ones are not counted).
function Server:connection_count()
  check_server(self, "connection_count")
  return self._listener and self._listener:count() or 0
end

--- app:status_counts() -> {[status] = n}: the answers this server wrote,
-- by status, since Server.new (handlers' answers, event streams as 200,
-- and the server's own refusals: 400, 408, 413, 431, 503, ...).
function Server:status_counts()
  check_server(self, "status_counts")
  local t = {}
  for k, v in pairs(self._statuses) do t[k] = v end
  return t
end

-- Counts one answer of status (every head but 1xx goes through here).
function Server:_count(status)
  local t = self._statuses
  t[status] = (t[status] or 0) + 1
end

function Server:__tostring()
  return ("sse.http.Server(%s)"):format(self._tcp and ("%s:%d"):format(self.host, self.bound_port)
    or (self._closed and "closed" or "not listening"))
end

return Server
