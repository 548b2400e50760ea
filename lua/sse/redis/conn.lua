--- sse.redis.conn: one non-blocking, pipelined connection to Redis on luv.
--
--   local c = Conn.connect({ host = "127.0.0.1", port = 6379, timeout = 1 }, function(c, err) end)
--   c:call(function(reply, err) end, "GET", "key")   -- replies matched in order
--   c:subscribe("chan", function(channel, payload) end, function(reply, err) end)
--   c:close()
--
-- Commands are encoded in C (core.resp_command); a command sent while none
-- is in flight is written at once, the others of a loop turn together at the
-- start of the next one (one write for a burst);
-- replies are parsed in C (core.resp_reader) and handed to the callbacks in
-- the order of the commands. Every command has a deadline (`timeout`): one
-- that passes it fails the connection and every command still in flight with
-- "timeout", so a Redis that stops answering fails calls within about
-- `timeout`, never at TCP's pace. A connection never reconnects by itself:
-- its owner (sse.redis.backend) decides when to dial again.
--
-- Replies: strings, integers, false (null), lists; an error reply is passed
-- as cb(nil, "ERR ...") (and nested in a list as {err = "..."}). Callbacks
-- run under pcall: an error in one is reported, never breaks the connection.
local uv = require("luv")
local core = require("sse.core")

local Conn = {}
Conn.__index = Conn

local function warn(msg)
  io.stderr:write("sse.redis: ", msg, "\n")
end

local function safe(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then warn("callback failed: " .. tostring(err)) end
end

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

--- Conn.connect(opts, on_ready) -> conn. opts: host, port, timeout (seconds,
-- default 1: connect, handshake and each command), password, username, db,
-- name (CLIENT SETNAME), max_reply_bytes, on_close (function(err, conn),
-- called once when the connection ends for any reason but close()).
-- on_ready(conn) once the handshake is done, or on_ready(nil, err).
function Conn.connect(opts, on_ready)
  local self = setmetatable({
    state = "connecting",
    opts = opts,
    timeout_ms = math.floor((opts.timeout or 1) * 1000),
    reader = core.resp_reader(opts.max_reply_bytes),
    cbs = {}, deadlines = {}, first = 1, last = 0, -- commands in flight
    out = {}, nout = 0,                              -- encoded, not yet written
    on_close = opts.on_close,
    sub_handlers = nil,                              -- channel -> fn, in pub/sub mode
  }, Conn)
  self.on_ready = on_ready
  self.timer = uv.new_timer()       -- deadlines
  self.flusher = uv.new_timer()     -- the write at the start of the next turn
  self:_arm(self.timeout_ms)        -- the connect deadline
  local function dial(addr)
    local tcp = uv.new_tcp()
    self.tcp = tcp
    local ok, req, err = pcall(tcp.connect, tcp, addr, opts.port, function(cerr)
      if self.state == "closed" then return end
      if cerr then return self:_fail("cannot connect: " .. tostring(cerr)) end
      self:_connected()
    end)
    if not ok or req == nil then self:_later_fail("cannot connect: " .. tostring(ok and err or req)) end
  end
  local host = opts.host
  if host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true) then
    dial(host)
  else
    local ok, req = pcall(uv.getaddrinfo, host, tostring(opts.port), { socktype = "stream" },
      function(gerr, res)
        if self.state == "closed" then return end
        if gerr or not res or not res[1] then return self:_fail("cannot resolve " .. host) end
        dial(res[1].addr)
      end)
    if not ok or req == nil then self:_later_fail("cannot resolve " .. host) end
  end
  return self
end

-- A failure found inside connect(): reported from the loop, never from
-- inside the call that created the connection.
function Conn:_later_fail(err)
  self.timer:stop()
  self.timer:start(0, 0, function() self:_fail(err) end)
end

-- (Re)starts the deadline timer so it fires after ms.
function Conn:_arm(ms)
  self.timer:stop()
  self.timer:start(ms, 0, function() self:_check() end)
end

function Conn:_check()
  if self.state == "closed" then return end
  if self.state == "connecting" and not self.handshaking then
    return self:_fail("connect timeout")
  end
  if self.first > self.last then return end
  local left = self.deadlines[self.first] - uv.now()
  if left <= 0 then return self:_fail("timeout") end
  self:_arm(left)
end

function Conn:_connected()
  local tcp, o = self.tcp, self.opts
  tcp:nodelay(true)
  tcp:read_start(function(err, data)
    if self.state == "closed" then return end
    if err or not data then return self:_fail(err and ("read: " .. err) or "connection closed by server") end
    self:_on_data(data)
  end)
  -- the handshake: AUTH, SELECT, CLIENT SETNAME, answered in order
  self.handshaking = true
  local steps, failed = 0, nil
  local function step(_, err)
    steps = steps - 1
    if err and not failed then failed = err end
    if steps > 0 or self.state == "closed" then return end
    if failed then return self:_fail(failed) end
    self.handshaking = false
    self.state = "ready"
    if self.first > self.last then self.timer:stop() end
    local cb = self.on_ready
    self.on_ready = nil
    if cb then safe(cb, self) end
  end
  if o.password then
    steps = steps + 1
    if o.username then self:call(step, "AUTH", o.username, o.password)
    else self:call(step, "AUTH", o.password) end
  end
  if o.db and o.db ~= 0 then
    steps = steps + 1
    self:call(step, "SELECT", o.db)
  end
  if o.name then
    steps = steps + 1
    self:call(step, "CLIENT", "SETNAME", o.name)
  end
  if steps == 0 then
    steps = 1
    step()
  end
end

function Conn:_on_data(data)
  local r = self.reader
  r:feed(data)
  while self.state ~= "closed" do
    local ok, v = r:read()
    if not ok then
      if v then self:_fail("redis protocol error: " .. v) end
      return
    end
    self:_dispatch(v)
  end
end

function Conn:_dispatch(v)
  local subs = self.sub_handlers
  if subs and type(v) == "table" and v[1] == "message" then
    local fn = subs[v[2]]
    if fn then safe(fn, v[2], v[3]) end
    return
  end
  local i = self.first
  if i > self.last then return self:_fail("redis protocol error: unexpected reply") end
  local cb = self.cbs[i]
  self.cbs[i], self.deadlines[i] = nil, nil
  self.first = i + 1
  if self.first > self.last then
    self.first, self.last = 1, 0
    if self.state == "ready" then self.timer:stop() end
  end
  if type(v) == "table" and v.err then
    safe(cb, nil, v.err)
  else
    safe(cb, v)
  end
end

--- conn:send(bytes, cb): queues one encoded command (core.resp_command);
-- cb(reply, err). Returns true, or nil, err when the connection is closed or
-- not connected yet (cb is then not called).
function Conn:send(bytes, cb)
  if self.state == "closed" then return nil, self.error or "closed" end
  if self.state == "connecting" and not self.handshaking then return nil, "not connected" end
  local n = self.nout + 1
  self.out[n] = bytes
  self.nout = n
  local last = self.last + 1
  self.last = last
  self.cbs[last] = cb
  self.deadlines[last] = uv.now() + self.timeout_ms
  if last == self.first then
    self:_arm(self.timeout_ms)
    -- nothing else in flight: write at once (a lone command, say a publish
    -- an HTTP request waits for, does not wait for the next loop turn)
    if self.state == "ready" then return true, self:_flush() end
  end
  -- more in flight: gather what this turn sends into one write
  if n == 1 then self.flusher:start(0, 0, function() self:_flush() end) end
  return true
end

--- conn:call(cb, cmd, ...): conn:send(core.resp_command(cmd, ...), cb).
function Conn:call(cb, ...)
  return self:send(core.resp_command(...), cb)
end

function Conn:_flush()
  if self.state == "closed" or self.nout == 0 then return end
  local out = self.out
  self.out, self.nout = {}, 0
  local ok, req, err = pcall(self.tcp.write, self.tcp, out, function(werr)
    if werr and self.state ~= "closed" then self:_fail("write: " .. tostring(werr)) end
  end)
  if not ok or req == nil then self:_fail("write: " .. tostring(ok and err or req)) end
end

--- conn:subscribe(channel, on_message, cb): SUBSCRIBE; the connection is
-- then in pub/sub mode (only SUBSCRIBE, UNSUBSCRIBE and PING are valid).
-- on_message(channel, payload) for each message.
function Conn:subscribe(channel, on_message, cb)
  self.sub_handlers = self.sub_handlers or {}
  self.sub_handlers[channel] = on_message
  return self:call(cb, "SUBSCRIBE", channel)
end

--- Commands sent and not answered yet.
function Conn:pending()
  return self.last - self.first + 1
end

-- Ends the connection with err: every command in flight fails with it,
-- on_ready (if still pending) and then on_close are told.
function Conn:_fail(err)
  if self.state == "closed" then return end
  self:_shutdown(err)
  local ready = self.on_ready
  self.on_ready = nil
  if ready then safe(ready, nil, err) end
  if self.on_close then safe(self.on_close, err, self) end
end

function Conn:_shutdown(err)
  self.state = "closed"
  self.error = err
  close_handle(self.timer)
  close_handle(self.flusher)
  if self.tcp then
    pcall(self.tcp.read_stop, self.tcp)
    close_handle(self.tcp)
  end
  self.reader:close()
  local cbs, first, last = self.cbs, self.first, self.last
  self.cbs, self.deadlines, self.first, self.last = {}, {}, 1, 0
  self.out, self.nout = {}, 0
  for i = first, last do
    if cbs[i] then safe(cbs[i], nil, err) end
  end
end

--- conn:close(): ends the connection; commands in flight fail with "closed".
-- on_close is not called. Idempotent.
function Conn:close()
  if self.state == "closed" then return end
  self.on_ready = nil
  self:_shutdown("closed")
end

--- The environment the backend runs in (see sse.redis.backend): how it
-- dials Redis and keeps time, here on luv's loop. Another host (OpenResty
-- cosockets) provides the same four functions.
Conn.env = {
  name = "luv",
  log = function(msg) io.stderr:write("sse.redis: ", msg, "\n") end,
  connect = Conn.connect,
  -- now() -> milliseconds (the loop's clock)
  now = function() return uv.now() end,
  -- timer(fn) -> t with t:start(ms [, repeat_ms]), t:stop(), t:close();
  -- fn runs under pcall
  timer = function(fn)
    local h = uv.new_timer()
    local guarded = function() safe(fn) end
    return {
      start = function(_, ms, rep)
        h:stop()
        h:start(math.max(0, math.floor(ms)), rep and math.floor(rep) or 0, guarded)
      end,
      stop = function() h:stop() end,
      close = function() close_handle(h) end,
    }
  end,
}

return Conn
