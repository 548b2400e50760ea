--- sse.pipe: streaming from code with backpressure -- stream:pipe(producer)
-- and stream:on_drain(fn) (installed on sse.Stream by stream.lua).
--
--   stream:pipe(io.lines("big.log"))                    -- an iterator
--   stream:pipe(coroutine.create(function()              -- or a coroutine
--     for token in tokens() do coroutine.yield(token) end
--   end), { high = 64 * 1024, low = 16 * 1024, on_done = function(err) end })
--
--   if stream:queued_bytes() > 65536 then               -- by hand
--     stream:on_drain(function() resume_producer() end)
--   end
--
-- pipe sends what the producer gives (a string is an event's data, a table
-- an event) while the outbox holds at most `high` bytes; past it, it pauses
-- until the outbox has fallen to `low` (the client read), so a producer
-- faster than its reader never buffers without bound. Drains are noticed by
-- the C core when a write (or take) brings the outbox down to the mark and
-- reported from its hub's loop turn: a paused pipe costs nothing while its
-- client reads nothing, and no stream is polled.
local M = {}

M.HIGH = 64 * 1024   -- pipe pauses above this many queued bytes
M.LOW = 16 * 1024    -- and resumes at or below this
M.BATCH = 64         -- chunks sent per loop turn before the others' turn

local uv_ok, uv = pcall(require, "luv")
if not uv_ok then uv = nil end

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function warn(msg)
  io.stderr:write("sse: ", msg, "\n")
end

-- Streams waiting for a drain: stream -> {low, fn, fn, ...}. The C core
-- notices a watched outbox falling to its mark in the flush that wrote it
-- (stream:_watch_drain) and reports it from the hub's loop turn: nothing
-- polls, and a stream nobody waits for costs nothing.
local waiting = {}
local later

local function fire(s)
  local w = waiting[s]
  if not w then return end
  waiting[s] = nil
  for i = 1, #w do
    local ok, err = pcall(w[i], s)
    if not ok then warn("on_drain callback failed: " .. tostring(err)) end
  end
end

local core_ok, core = pcall(require, "sse.core")
if core_ok and core.set_drain_handler then core.set_drain_handler(fire) end

local function watch(s, low, fn)
  local w = waiting[s]
  if not w then
    w = { low = low }
    waiting[s] = w
  elseif low > w.low then
    w.low = low -- the most lenient mark wins: every waiter is then called
  end
  w[#w + 1] = fn
  -- a closed stream: its waiters run on the next turn
  if not s:_watch_drain(w.low) then later(function() fire(s) end) end
end

-- Functions to run on the next loop turn (a pipe's next batch): an idle
-- handle runs them, and keeps the loop from blocking while there are any.
local soon, ticker = {}, nil
local run_soon

function run_soon()
  local list = soon
  soon = {}
  for i = 1, #list do
    local ok, err = pcall(list[i])
    if not ok then warn("pipe step failed: " .. tostring(err)) end
  end
  if #soon == 0 then ticker:stop() end
end

function later(fn)
  soon[#soon + 1] = fn
  if not ticker then ticker = uv.new_idle() end
  if not ticker:is_active() then ticker:start(run_soon) end
end

--- stream:on_drain(fn [, low]): fn(stream) is called once, on a later
-- loop turn, when the outbox holds `low` bytes or fewer (default M.LOW) or
-- the stream is closed (check stream:is_closed()).
local function on_drain(self, fn, low)
  if type(fn) ~= "function" then argerror(1, "on_drain", "function expected, got " .. type(fn)) end
  if low == nil then low = M.LOW end
  if type(low) ~= "number" or low ~= low or low < 0 then
    argerror(2, "on_drain", "non-negative number of bytes expected, got " .. tostring(low))
  end
  if not uv then error("on_drain needs luv (apt-get install lua-luv)", 2) end
  watch(self, low, fn)
  return true
end

-- The producer as a function returning the next chunk (nil: the end).
local function source(p)
  if type(p) == "function" then return p end
  return function()
    if coroutine.status(p) == "dead" then return nil end
    local ok, v = coroutine.resume(p)
    if not ok then error(v, 0) end
    return v
  end
end

local PIPE_OPTS = { high = true, low = true, batch = true, close = true, on_done = true }

--- stream:pipe(producer [, opts]) -> true: sends what producer (an
-- iterator function, or a coroutine that yields chunks) gives, a string as
-- an event's data, a table as an event, with backpressure (opts.high,
-- opts.low: bytes; opts.batch: chunks per loop turn). At the end (the
-- producer gives nil or its coroutine returns) or when the stream closes:
-- opts.on_done(err, stream) (err nil at the end, "closed", or the
-- producer's error), and the stream is closed gracefully unless opts.close
-- is false. A producer error closes the stream with reason "pipe error".
local function pipe(self, producer, opts)
  if type(producer) ~= "function" and type(producer) ~= "thread" then
    argerror(1, "pipe", "function or coroutine expected, got " .. type(producer))
  end
  opts = opts or {}
  if type(opts) ~= "table" then argerror(2, "pipe", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not PIPE_OPTS[k] then argerror(2, "pipe", ("unknown option '%s'"):format(tostring(k))) end
  end
  local high, low, batch = opts.high or M.HIGH, opts.low or M.LOW, opts.batch or M.BATCH
  for _, f in ipairs({ { "high", high }, { "low", low }, { "batch", batch } }) do
    if type(f[2]) ~= "number" or f[2] ~= f[2] or f[2] < (f[1] == "batch" and 1 or 0) then
      argerror(2, "pipe", ("field '%s': positive number expected, got %s"):format(f[1], tostring(f[2])))
    end
  end
  if low > high then argerror(2, "pipe", "field 'low' must not exceed 'high'") end
  if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
    argerror(2, "pipe", "field 'on_done': function expected, got " .. type(opts.on_done))
  end
  if not uv then error("pipe needs luv (apt-get install lua-luv)", 2) end
  local nextc, done = source(producer), false
  local function finish(err)
    if done then return end
    done = true
    if err and err ~= "closed" then
      self:close("pipe error")
    elseif opts.close ~= false then
      self:close()
    end
    if opts.on_done then
      local ok, e = pcall(opts.on_done, err, self)
      if not ok then warn("pipe on_done failed: " .. tostring(e)) end
    end
  end
  local step
  step = function()
    for _ = 1, batch do
      if self:is_closed() then return finish("closed") end
      if self:queued_bytes() > high then return watch(self, low, step) end
      local ok, chunk = pcall(nextc)
      if not ok then return finish(tostring(chunk)) end
      if chunk == nil then return finish(nil) end
      local sok, sent
      if type(chunk) == "string" then
        sok, sent = pcall(self.send_data, self, chunk)
      else
        sok, sent = pcall(self.send, self, chunk)
      end
      if not sok then return finish(tostring(sent)) end -- a bad chunk: the producer's error
      if not sent then return finish("closed") end
    end
    later(step) -- the next batch on the next turn, after the others'
  end
  later(step)
  return true
end

--- install(Stream): adds on_drain and pipe to sse.Stream.
function M.install(Stream, mt)
  mt = mt or Stream -- the streams' metatable (sse.Stream: the C core's)
  local function checked(fn, fname)
    return function(self, ...)
      if getmetatable(self) ~= mt then
        error(("calling '%s' on bad self (sse.Stream expected, got %s)"):format(fname, type(self)), 2)
      end
      return fn(self, ...)
    end
  end
  Stream.on_drain = checked(on_drain, "on_drain")
  Stream.pipe = checked(pipe, "pipe")
end

return M
