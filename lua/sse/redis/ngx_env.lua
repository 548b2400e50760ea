--- sse.redis.ngx_env: the Redis backend's environment inside nginx
-- (lua-nginx-module cosockets), the counterpart of sse.redis.conn's luv env:
--
--   local backend = require("sse.redis").backend{ url = ..., env = require("sse.redis.ngx_env") }
--
-- Create it once per worker (init_worker_by_lua*, or a module the handlers
-- require), never in init_by_lua (the master has no timers).
--
-- A connection is one ngx.timer context that owns its cosocket for its whole
-- life: the timer's own thread reads (receiveany, parsed by the C RESP
-- reader), a light thread writes what any handler or timer of the worker
-- queued (woken by an ngx.semaphore). Replies are matched to commands in
-- order, and each command has a deadline (`timeout`) checked as the reader
-- wakes; callbacks run in the connection's timer context and must not yield.
-- The contract is sse.redis.conn's (call, send, subscribe, pending, close,
-- on_close), so the backend is the same code in both hosts; the replies,
-- the handshake and pub/sub are the same code too (sse.redis.session):
-- this file is the transport.
local Session = require("sse.redis.session")

local ngx = ngx -- luacheck: ignore (the host's global)

local M = { name = "ngx" }

local Conn = setmetatable({}, { __index = Session })
Conn.__index = Conn

-- How often a reader with commands in flight wakes to check deadlines, and
-- an idle one to see whether it was closed.
local TICK_MS, IDLE_MS = 50, 250

local function log(msg)
  ngx.log(ngx.WARN, "sse.redis: ", msg)
end
M.log = log

local safe = Session.guard(log)
Conn._safe = safe

--- M.connect(opts, on_ready) -> conn (see sse.redis.conn.connect).
function M.connect(opts, on_ready)
  local semaphore = require("ngx.semaphore")
  local self = Session.new(Conn, opts, on_ready)
  self.wake = semaphore.new() -- wakes the writer
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return self:_fail("nginx is exiting") end
    self:_run()
  end)
  if not ok then
    -- reported from a timer when one can be made, else at once
    self.state = "closed"
    self.error = "cannot start a timer: " .. tostring(err)
  end
  return self
end

function Conn:_run()
  local sock = ngx.socket.tcp()
  self.sock = sock
  sock:settimeouts(self.timeout_ms, self.timeout_ms, IDLE_MS)
  local ok, err = sock:connect(self.opts.host, self.opts.port)
  if not ok then return self:_fail("cannot connect: " .. tostring(err)) end
  if self.state == "closed" then return sock:close() end
  self.writer = ngx.thread.spawn(function() self:_write_loop() end)
  self:_handshake()
  -- the handshake's commands are queued: until it is done, other sends are
  -- refused ("not connected"; the backend sends only after on_ready)
  self.handshaking = false
  while self.state ~= "closed" do
    if ngx.worker.exiting() then
      self:_fail("nginx is exiting")
      break
    end
    -- wake often while commands are in flight (their deadlines), rarely when idle
    sock:settimeouts(self.timeout_ms, self.timeout_ms, self.first <= self.last and TICK_MS or IDLE_MS)
    local data, rerr = sock:receiveany(65536)
    if data then
      self:_on_data(data)
    elseif rerr == "timeout" then
      self:_check()
    else
      self:_fail(rerr == "closed" and "connection closed by server" or ("read: " .. tostring(rerr)))
    end
  end
  if self.writer then ngx.thread.kill(self.writer) end
  sock:close()
end

function Conn:_write_loop()
  local sock = self.sock
  while self.state ~= "closed" do
    if self.nout == 0 then
      self.wake:wait(1)
    else
      local out = self.out
      self.out, self.nout = {}, 0
      local ok, err = sock:send(out)
      if not ok then return self:_fail("write: " .. tostring(err)) end
    end
  end
end

function Conn:_check()
  if self.first > self.last then return end
  ngx.update_time()
  if self.deadlines[self.first] <= ngx.now() * 1000 then self:_fail("timeout") end
end

function Conn:_on_data(data)
  Session._on_data(self, data)
  self:_check() -- deadlines, also while replies keep coming
end

function Conn._now()
  return M.now()
end

-- A command was queued: the writer takes what is queued when it wakes.
function Conn:_kick(nout)
  if nout == 1 then self.wake:post(1) end
end

function Conn:_release()
  self.wake:post(1) -- the writer sees "closed" and ends; the timer context
                    -- closes the socket when its read returns
end

--- now() -> milliseconds.
function M.now()
  return ngx.now() * 1000
end

--- timer(fn) -> t with t:start(ms [, repeat_ms]), t:stop(), t:close().
function M.timer(fn)
  local t = { gen = 0 }
  local function arm(gen, ms, rep)
    local ok, err = ngx.timer.at(ms / 1000, function(premature)
      if premature or t.closed or gen ~= t.gen then return end
      safe(fn)
      if rep and rep > 0 and gen == t.gen and not t.closed then arm(gen, rep, rep) end
    end)
    if not ok then log("cannot start a timer: " .. tostring(err)) end
  end
  function t.start(_, ms, rep)
    t.gen = t.gen + 1
    arm(t.gen, math.max(0, ms), rep)
  end
  function t.stop() t.gen = t.gen + 1 end
  function t.close() t.closed = true end
  return t
end

return M
