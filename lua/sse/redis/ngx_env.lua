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
-- on_close), so the backend is the same code in both hosts.
local core = require("sse.core")

local ngx = ngx -- luacheck: ignore (the host's global)

local M = { name = "ngx" }

local Conn = {}
Conn.__index = Conn

-- How often a reader with commands in flight wakes to check deadlines, and
-- an idle one to see whether it was closed.
local TICK_MS, IDLE_MS = 50, 250

local function log(msg)
  ngx.log(ngx.WARN, "sse.redis: ", msg)
end
M.log = log

local function safe(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then log("callback failed: " .. tostring(err)) end
end

--- M.connect(opts, on_ready) -> conn (see sse.redis.conn.connect).
function M.connect(opts, on_ready)
  local semaphore = require("ngx.semaphore")
  local self = setmetatable({
    state = "connecting", opts = opts,
    timeout_ms = math.floor((opts.timeout or 1) * 1000),
    reader = core.resp_reader(opts.max_reply_bytes),
    cbs = {}, deadlines = {}, first = 1, last = 0,
    out = {}, nout = 0, wake = semaphore.new(),
    on_close = opts.on_close, on_ready = on_ready,
  }, Conn)
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

function Conn:_handshake()
  local o = self.opts
  local steps, failed = 0, nil
  local function step(_, err)
    steps = steps - 1
    if err and not failed then failed = err end
    if steps > 0 or self.state == "closed" then return end
    if failed then return self:_fail(failed) end
    self.state = "ready"
    local cb = self.on_ready
    self.on_ready = nil
    if cb then safe(cb, self) end
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
  self.handshaking = false
  if steps == 0 then
    steps = 1
    step()
  end
end

function Conn:_check()
  if self.first > self.last then return end
  ngx.update_time()
  if self.deadlines[self.first] <= ngx.now() * 1000 then self:_fail("timeout") end
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
  self:_check()
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
  if self.first > self.last then self.first, self.last = 1, 0 end
  if type(v) == "table" and v.err then safe(cb, nil, v.err) else safe(cb, v) end
end

--- conn:send(bytes, cb) -> true | nil, err (see sse.redis.conn).
function Conn:send(bytes, cb)
  if self.state == "closed" then return nil, self.error or "closed" end
  if self.state == "connecting" and not self.handshaking then return nil, "not connected" end
  self.nout = self.nout + 1
  self.out[self.nout] = bytes
  local last = self.last + 1
  self.last = last
  self.cbs[last] = cb
  self.deadlines[last] = ngx.now() * 1000 + self.timeout_ms
  if self.nout == 1 then self.wake:post(1) end
  return true
end

function Conn:call(cb, ...)
  return self:send(core.resp_command(...), cb)
end

function Conn:subscribe(channel, on_message, cb)
  self.sub_handlers = self.sub_handlers or {}
  self.sub_handlers[channel] = on_message
  return self:call(cb, "SUBSCRIBE", channel)
end

function Conn:pending()
  return self.last - self.first + 1
end

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
  self.reader:close()
  self.wake:post(1) -- the writer sees "closed" and ends
  local cbs, first, last = self.cbs, self.first, self.last
  self.cbs, self.deadlines, self.first, self.last = {}, {}, 1, 0
  self.out, self.nout = {}, 0
  for i = first, last do
    if cbs[i] then safe(cbs[i], nil, err) end
  end
end

--- conn:close(): commands in flight fail with "closed"; on_close is not
-- called. The timer context closes the socket when its read returns.
function Conn:close()
  if self.state == "closed" then return end
  self.on_ready = nil
  self:_shutdown("closed")
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
