--- sse.deadlines: many deadlines, one timer -- for closing each stream when
-- its token expires (10,000 streams are 10,000 heap entries, not 10,000
-- timers).
--
--   local d = require("sse.deadlines").new({ on_due = function(key, at) ... end })
--   d:set(stream, claims.exp)   -- add or move; at: seconds since the epoch
--   d:clear(stream)             -- e.g. from stream:on_close
--   d:run(now)                  -- calls on_due for every key due at now, earliest first
--   d:next()                    -- the earliest deadline, or nil
--
-- The structure knows no host: with luv, `M.new{loop = true}` arms one uv
-- timer at the earliest deadline (re-armed after every change, at most an
-- hour ahead, so a wall-clock jump is noticed); OpenResty code calls run()
-- from its own timer or from each subscriber's wait loop.
local M = {}

local D = {}
D.__index = D

local MAX_SLEEP = 3600 -- seconds: the longest the luv timer sleeps

local function report(msg, _)
  io.stderr:write("sse.deadlines: ", msg, "\n")
end

local function wall_now()
  local uv = package.loaded.luv
  if uv and uv.gettimeofday then
    local s, us = uv.gettimeofday()
    return s + us / 1e6
  end
  return os.time()
end

--- new(opts) -> deadlines. opts: on_due(key, at) (called once per key that
-- falls due; its errors go to on_error(msg, key), default: stderr -- never
-- raised into the loop),
-- clock (function -> seconds since the epoch; default: gettimeofday), loop
-- (true: drive a luv timer).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'new' (table expected, got %s)"):format(type(opts)), 2)
  end
  for k in pairs(opts) do
    if k ~= "on_due" and k ~= "on_error" and k ~= "clock" and k ~= "loop" then
      error(("bad argument #1 to 'new' (unknown option '%s')"):format(tostring(k)), 2)
    end
  end
  if type(opts.on_due) ~= "function" then
    error("bad argument #1 to 'new' (field 'on_due' must be a function)", 2)
  end
  for _, f in ipairs({ "clock", "on_error" }) do
    if opts[f] ~= nil and type(opts[f]) ~= "function" then
      error(("bad argument #1 to 'new' (field '%s' must be a function)"):format(f), 2)
    end
  end
  local self = setmetatable({
    on_due = opts.on_due,
    on_error = opts.on_error or report,
    clock = opts.clock or wall_now,
    keys = {}, -- heap: keys[i] due at times[i]; times[parent] <= times[child]
    times = {},
    pos = {},  -- key -> its index in the heap
    n = 0,
  }, D)
  if opts.loop then
    if require("sse.ngx.host").active then
      error("bad argument #1 to 'new' (field 'loop': nothing runs luv's loop inside nginx; "
        .. "call d:run() from an ngx timer instead)", 2)
    end
    local uv = require("luv")
    self.timer = uv.new_timer()
    self.timer:unref() -- deadlines alone do not keep a program running
    self.uv = uv
  end
  return self
end

local function swap(self, i, j)
  local keys, times, pos = self.keys, self.times, self.pos
  keys[i], keys[j] = keys[j], keys[i]
  times[i], times[j] = times[j], times[i]
  pos[keys[i]] = i
  pos[keys[j]] = j
end

local function up(self, i)
  local times = self.times
  while i > 1 do
    local p = math.floor(i / 2)
    if times[p] <= times[i] then break end
    swap(self, i, p)
    i = p
  end
end

local function down(self, i)
  local times, n = self.times, self.n
  while true do
    local l = 2 * i
    if l > n then break end
    local c = l
    if l + 1 <= n and times[l + 1] < times[l] then c = l + 1 end
    if times[i] <= times[c] then break end
    swap(self, i, c)
    i = c
  end
end

local function remove_at(self, i)
  local n = self.n
  local key = self.keys[i]
  swap(self, i, n)
  self.keys[n], self.times[n] = nil, nil
  self.pos[key] = nil
  self.n = n - 1
  if i < n then
    down(self, i)
    up(self, i)
  end
end

-- Re-arm the luv timer at the earliest deadline.
local function arm(self)
  local timer = self.timer
  if not timer or timer:is_closing() then return end
  timer:stop()
  if self.n == 0 then return end
  local delay = self.times[1] - self.clock()
  if delay < 0 then delay = 0 end
  if delay > MAX_SLEEP then delay = MAX_SLEEP end
  timer:start(math.ceil(delay * 1000), 0, function()
    self:run()
  end)
end

--- d:set(key, at): key (any value but nil/NaN) falls due at `at`; moves it
-- when already set.
function D:set(key, at)
  if key == nil or key ~= key then error("bad argument #1 to 'set' (key expected)", 2) end
  if type(at) ~= "number" or at ~= at then
    error("bad argument #2 to 'set' (number expected, got " .. type(at) .. ")", 2)
  end
  local i = self.pos[key]
  if i then
    self.times[i] = at
    down(self, i)
    up(self, i)
  else
    local n = self.n + 1
    self.n = n
    self.keys[n], self.times[n] = key, at
    self.pos[key] = n
    up(self, n)
  end
  arm(self)
end

--- d:clear(key) -> true when key had a deadline
function D:clear(key)
  local i = key ~= nil and self.pos[key]
  if not i then return false end
  remove_at(self, i)
  arm(self)
  return true
end

--- d:get(key) -> at | nil
function D:get(key)
  local i = key ~= nil and self.pos[key]
  return i and self.times[i] or nil
end

--- d:next() -> the earliest deadline, or nil
function D:next() return self.times[1] end

--- d:count() -> number of keys with a deadline
function D:count() return self.n end

--- d:run([now]) -> count: every key due at now (default: the clock) is
-- removed, then on_due(key, at) is called for each, earliest first.
function D:run(now)
  now = now or self.clock()
  -- take every due key first: a key that on_due sets again (even to a past
  -- time) waits for the next run, so run() always ends
  local keys, ats = {}, {}
  while self.n > 0 and self.times[1] <= now do
    keys[#keys + 1], ats[#ats + 1] = self.keys[1], self.times[1]
    remove_at(self, 1)
  end
  for i = 1, #keys do
    local ok, err = pcall(self.on_due, keys[i], ats[i])
    if not ok then pcall(self.on_error, "error in on_due: " .. tostring(err), keys[i]) end
  end
  arm(self)
  return #keys
end

--- d:close(): stops the timer; every deadline is dropped.
function D:close()
  if self.timer and not self.timer:is_closing() then self.timer:close() end
  self.keys, self.times, self.pos, self.n = {}, {}, {}, 0
end

return M
