--- sse.redis.session: the transport-free half of a connection to Redis,
-- shared by sse.redis.conn (luv) and sse.redis.ngx_env (nginx cosockets):
-- the handshake, the queue of commands waiting for their replies (matched
-- in order, each with a deadline), pub/sub message dispatch, and the failure
-- of everything pending when the connection ends. It never touches a socket
-- or a timer: a transport is a class whose metatable falls back to Session
-- and that provides
--
--   conn:_now() -> ms            its clock, for the deadlines
--   conn:_kick(nout, lone)       a command was queued (nout: encoded commands
--                                not written yet; lone: none other in flight)
--   conn:_idle()                 nothing is in flight any more (optional)
--   conn:_release()              the connection ended: free socket and timers
--   Conn._safe(fn, ...)          runs a callback, reporting its error
--                                (Session.guard(log) makes one)
--
-- Commands are encoded in C (core.resp_command), replies parsed in C
-- (core.resp_reader). Replies: strings, integers, false (null), lists; an
-- error reply is passed as cb(nil, "ERR ...") (nested in a list as
-- {err = "..."}). Callbacks run under pcall: an error in one is reported,
-- never breaks the connection.
local core = require("sse.core")

local Session = {}
Session.__index = Session

--- Session.guard(log) -> safe(fn, ...): runs fn under pcall, reporting an
-- error to log.
function Session.guard(log)
  return function(fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok then log("callback failed: " .. tostring(err)) end
  end
end

--- Session.new(class, opts, on_ready) -> a connection of class, not yet
-- connected. opts as sse.redis.conn.connect (timeout, max_reply_bytes,
-- on_close, and the handshake's password, username, db, name).
function Session.new(class, opts, on_ready)
  return setmetatable({
    state = "connecting",
    opts = opts,
    timeout_ms = math.floor((opts.timeout or 1) * 1000),
    reader = core.resp_reader(opts.max_reply_bytes),
    cbs = {}, deadlines = {}, first = 1, last = 0, -- commands in flight
    out = {}, nout = 0,                              -- encoded, not yet written
    on_close = opts.on_close,
    on_ready = on_ready,
    sub_handlers = nil,                              -- channel -> fn, in pub/sub mode
  }, class)
end

function Session._idle() end

-- The handshake, once the transport is connected: AUTH, SELECT, CLIENT
-- SETNAME, answered in order; then the connection is ready and on_ready is
-- told. Sends are accepted while it runs (self.handshaking).
function Session:_handshake()
  local o = self.opts
  local steps, failed = 0, nil
  local function step(_, err)
    steps = steps - 1
    if err and not failed then failed = err end
    if steps > 0 or self.state == "closed" then return end
    if failed then return self:_fail(failed) end
    self.handshaking = false
    self.state = "ready"
    if self.first > self.last then self:_idle() end
    local cb = self.on_ready
    self.on_ready = nil
    if cb then self._safe(cb, self) end
  end
  self.handshaking = true
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

-- Bytes read from Redis: every whole reply is handed on, in order.
function Session:_on_data(data)
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

function Session:_dispatch(v)
  local subs = self.sub_handlers
  if subs and type(v) == "table" and v[1] == "message" then
    local fn = subs[v[2]]
    if fn then self._safe(fn, v[2], v[3]) end
    return
  end
  local i = self.first
  if i > self.last then return self:_fail("redis protocol error: unexpected reply") end
  local cb = self.cbs[i]
  self.cbs[i], self.deadlines[i] = nil, nil
  self.first = i + 1
  if self.first > self.last then
    self.first, self.last = 1, 0
    self:_idle()
  end
  if type(v) == "table" and v.err then
    self._safe(cb, nil, v.err)
  else
    self._safe(cb, v)
  end
end

--- conn:send(bytes, cb): queues one encoded command (core.resp_command);
-- cb(reply, err). Returns true, or nil, err when the connection is closed or
-- not connected yet (cb is then not called).
function Session:send(bytes, cb)
  if self.state == "closed" then return nil, self.error or "closed" end
  if self.state == "connecting" and not self.handshaking then return nil, "not connected" end
  local n = self.nout + 1
  self.out[n] = bytes
  self.nout = n
  local last = self.last + 1
  self.last = last
  self.cbs[last] = cb
  self.deadlines[last] = self:_now() + self.timeout_ms
  self:_kick(n, last == self.first)
  return true
end

--- conn:call(cb, cmd, ...): conn:send(core.resp_command(cmd, ...), cb).
function Session:call(cb, ...)
  return self:send(core.resp_command(...), cb)
end

--- conn:subscribe(channel, on_message, cb): SUBSCRIBE; the connection is
-- then in pub/sub mode (only SUBSCRIBE, UNSUBSCRIBE and PING are valid).
-- on_message(channel, payload) for each message.
function Session:subscribe(channel, on_message, cb)
  self.sub_handlers = self.sub_handlers or {}
  self.sub_handlers[channel] = on_message
  return self:call(cb, "SUBSCRIBE", channel)
end

--- Commands sent and not answered yet.
function Session:pending()
  return self.last - self.first + 1
end

-- Ends the connection with err: every command in flight fails with it,
-- on_ready (if still pending) and then on_close are told.
function Session:_fail(err)
  if self.state == "closed" then return end
  self:_shutdown(err)
  local ready = self.on_ready
  self.on_ready = nil
  if ready then self._safe(ready, nil, err) end
  if self.on_close then self._safe(self.on_close, err, self) end
end

function Session:_shutdown(err)
  self.state = "closed"
  self.error = err
  self:_release()
  self.reader:close()
  local cbs, first, last = self.cbs, self.first, self.last
  self.cbs, self.deadlines, self.first, self.last = {}, {}, 1, 0
  self.out, self.nout = {}, 0
  for i = first, last do
    if cbs[i] then self._safe(cbs[i], nil, err) end
  end
end

--- conn:close(): ends the connection; commands in flight fail with "closed".
-- on_close is not called. Idempotent.
function Session:close()
  if self.state == "closed" then return end
  self.on_ready = nil
  self:_shutdown("closed")
end

return Session
