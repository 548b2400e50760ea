--- sse.redis.conn: one non-blocking, pipelined connection to Redis on luv.
--
--   local c = Conn.connect({ host = "127.0.0.1", port = 6379, timeout = 1 }, function(c, err) end)
--   c:call(function(reply, err) end, "GET", "key")   -- replies matched in order
--   c:subscribe("chan", function(channel, payload) end, function(reply, err) end)
--   c:close()
--
-- This file is the transport: the socket, the deadline timer and the
-- writes. A command sent while none is in flight is written at once, the
-- others of a loop turn together at the start of the next one (one write
-- for a burst). Every command has a deadline (`timeout`): one that passes
-- it fails the connection and every command still in flight with
-- "timeout", so a Redis that stops answering fails calls within about
-- `timeout`, never at TCP's pace. A connection never reconnects by itself:
-- its owner (sse.redis.backend) decides when to dial again. Replies,
-- the handshake and pub/sub: sse.redis.session.
local uv = require("luv")
local Session = require("sse.redis.session")

local Conn = setmetatable({}, { __index = Session })
Conn.__index = Conn

local function warn(msg)
  io.stderr:write("sse.redis: ", msg, "\n")
end

local safe = Session.guard(warn)
Conn._safe = safe

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

--- Conn.connect(opts, on_ready) -> conn. opts: host, port, timeout (seconds,
-- default 1: connect, handshake and each command), password, username, db,
-- name (CLIENT SETNAME), max_reply_bytes, on_close (function(err, conn),
-- called once when the connection ends for any reason but close()).
-- on_ready(conn) once the handshake is done, or on_ready(nil, err).
function Conn.connect(opts, on_ready)
  local self = Session.new(Conn, opts, on_ready)
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
  local tcp = self.tcp
  tcp:nodelay(true)
  tcp:read_start(function(err, data)
    if self.state == "closed" then return end
    if err or not data then return self:_fail(err and ("read: " .. err) or "connection closed by server") end
    self:_on_data(data)
  end)
  self:_handshake()
end

function Conn._now()
  return uv.now()
end

-- A command was queued: a lone one is written at once (say a publish an
-- HTTP request waits for: it does not wait for the next loop turn), the
-- others of this turn gather into one write.
function Conn:_kick(nout, lone)
  if lone then
    self:_arm(self.timeout_ms)
    if self.state == "ready" then return self:_flush() end
  end
  if nout == 1 then self.flusher:start(0, 0, function() self:_flush() end) end
end

-- Nothing in flight: no deadline to watch (the connect deadline stays
-- until the handshake is done).
function Conn:_idle()
  if self.state == "ready" then self.timer:stop() end
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

function Conn:_release()
  close_handle(self.timer)
  close_handle(self.flusher)
  if self.tcp then
    pcall(self.tcp.read_stop, self.tcp)
    close_handle(self.tcp)
  end
end

--- The environment the backend runs in (see sse.redis.backend): how it
-- dials Redis and keeps time, here on luv's loop. Another host (OpenResty
-- cosockets) provides the same four functions.
Conn.env = {
  name = "luv",
  log = warn,
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
