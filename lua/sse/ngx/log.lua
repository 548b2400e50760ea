--- sse.ngx.log: the event log every nginx worker shares, in a lua_shared_dict.
--
--   lua_shared_dict sse_log 16m;                       -- nginx.conf, http{}
--   local log = require("sse.ngx.log").new{ dict = "sse_log" }
--   local hub = sse.Hub.new{ replayer = log }          -- or sse.ngx.hub{dict = ...}
--
-- An asynchronous backend of the hub (docs/CORE.md 3): hub:broadcast hands
-- the event here; the dict assigns its id (an atomic counter, incr) and keeps
-- its wire bytes; each worker's follower (an ngx.timer.every of `poll`
-- seconds) applies every new entry in sequence order to its own hub, so
-- every worker sends the same bytes with the same id in the same order. The
-- publishing worker applies at once; the others within `poll` seconds (plus
-- the time to go through their subscribers). A reconnecting client resumes
-- from the dict in whichever worker it lands.
--
-- Keys of the dict (it must be the log's own):
--   epoch    the ids' epoch, set once by the first worker that needs it: a
--            new dict (nginx restarted) is a new epoch, a reload keeps it
--   seq      the last id's sequence number (incr)
--   low      every entry with a sequence number below it was trimmed
--   e:<seq>  "<time> <topic length or -1> <topic><wire bytes>"
--   w:<pid>  a worker's stats (expire on their own)
-- Entries are written with safe_set and never evicted by nginx: the log
-- trims its oldest entries itself, beyond max_events or when the dict is full,
-- and a client whose Last-Event-ID is older than what is left gets the
-- sse-gap event. Nothing is dropped silently.
local core = require("sse.core")

local ngx = ngx -- luacheck: ignore (the nginx global, absent outside nginx)

local Log = {}
Log.__index = Log
Log.__name = "sse.ngx.log"

Log.DEFAULTS = {
  max_events = 10000,  -- entries kept for replay
  ttl = nil,           -- seconds an entry is offered for replay (nil: no bound)
  poll = 0.005,        -- seconds between two looks of a worker at the log
  hole_wait = 1,       -- seconds a follower waits for an entry being written
  stats_every = 1,     -- seconds between two updates of a worker's stats in the dict
}

local B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

local function b36(n)
  if n == 0 then return "0" end
  local t, i = {}, 0
  while n > 0 do
    local d = n % 36
    i = i + 1
    t[i] = B36:sub(d + 1, d + 1)
    n = (n - d) / 36
  end
  return string.reverse(table.concat(t))
end

local function from_b36(s)
  if s == "" or #s > 10 or (s:sub(1, 1) == "0" and #s > 1) or s:find("[^0-9a-z]") then return nil end
  return tonumber(s, 36)
end

-- Raises for the caller of Log.new (level: of that caller, 3 by default).
local function argerror(fname, msg, level)
  error(("bad argument #1 to '%s' (%s)"):format(fname, msg), level or 3)
end

local function in_nginx()
  return type(ngx) == "table" and type(ngx.shared) == "table" and ngx.timer ~= nil
end

-- 20 random bits (from /dev/urandom; the time and pid otherwise).
local function noise()
  local f = io.open("/dev/urandom", "rb")
  local s = f and f:read(3)
  if f then f:close() end
  if s and #s == 3 then
    return (s:byte(1) * 65536 + s:byte(2) * 256 + s:byte(3)) % 1048576
  end
  return math.floor(ngx.now() * 1e6 + ngx.worker.pid()) % 1048576
end

--- Log.new{dict =, max_events =, ttl =, poll =, hole_wait =} -> log
-- dict: the lua_shared_dict's name (or the ngx.shared.DICT object). fname
-- and level: the function a bad option is reported against (default 'new',
-- its caller; sse_ngx.hub passes its own name).
function Log.new(opts, fname, level)
  fname, level = fname or "new", (level or 2) + 1
  if not in_nginx() then error("sse.ngx.log works inside nginx (lua-nginx-module) only", 2) end
  if type(opts) ~= "table" then argerror(fname, "table expected, got " .. type(opts), level) end
  local d = opts.dict
  if type(d) == "string" then
    local name = d
    d = ngx.shared[name]
    if not d then
      argerror(fname, ("field 'dict': no lua_shared_dict '%s' in nginx.conf"):format(name), level)
    end
  elseif type(d) ~= "table" or type(d.incr) ~= "function" then
    argerror(fname, "field 'dict': the name of a lua_shared_dict expected, got " .. type(d), level)
  end
  local o = {}
  for k, v in pairs(Log.DEFAULTS) do o[k] = v end
  for k, v in pairs(opts) do
    if k ~= "dict" and Log.DEFAULTS[k] == nil and k ~= "ttl" then
      argerror(fname, ("unknown option '%s'"):format(tostring(k)), level)
    end
    o[k] = v
  end
  local function num(name, lo, int)
    local v = o[name]
    if v == nil and name == "ttl" then return end
    if type(v) ~= "number" or v ~= v or v < lo or v == math.huge or (int and v ~= math.floor(v)) then
      argerror(fname, ("field '%s': %s >= %s expected, got %s"):format(name, int and "integer" or "number",
        tostring(lo), type(v) == "number" and tostring(v) or type(v)), level + 1)
    end
  end
  num("max_events", 1, true)
  num("ttl", 0.001)
  num("poll", 0.001)
  num("hole_wait", 0)
  num("stats_every", 0.01)
  return setmetatable({
    dict = d,
    opts = o,
    _applied = nil,     -- the last sequence number applied to the hub
    _pending = {},      -- replays waiting for the follower: { {stream, last_id, topics, seq, since} }
    _hole = nil, _hole_since = nil,
    stats = { applied = 0, holes_skipped = 0, worker_gaps = 0, trimmed_full = 0 },
  }, Log)
end

--- The epoch of this dict's ids (created once per dict).
function Log:epoch()
  local e = self._epoch
  if e then return e end
  local d = self.dict
  e = d:get("epoch")
  if not e then
    local r = b36(noise())
    local candidate = b36(math.floor(ngx.now() * 1000)) .. ("0"):rep(4 - #r) .. r
    -- the counters first (safe_add: never evicts), then the epoch that says
    -- they are there
    d:safe_add("seq", 0)
    d:safe_add("low", 1)
    local ok, err = d:safe_add("epoch", candidate)
    if not ok and err ~= "exists" then error("sse.ngx.log: cannot store the epoch: " .. tostring(err), 2) end
    e = d:get("epoch")
  end
  self._epoch = e
  return e
end

function Log:id(seq)
  return self:epoch() .. "-" .. b36(seq)
end

-- The sequence number of an id of this epoch; nil, "malformed" | "epoch".
function Log:_parse(id)
  if type(id) ~= "string" then return nil, "malformed" end
  local epoch, digits = id:match("^([%w_]+)%-([%w]+)$")
  if not epoch then return nil, "malformed" end
  local seq = from_b36(digits)
  if not seq then return nil, "malformed" end
  if epoch ~= self:epoch() then return nil, "epoch" end
  return seq
end

local function top_of(d)
  return d:get("seq") or 0
end

local function low_of(d)
  return d:get("low") or 1
end

-- Trims entries below want (claiming each with incr, so two workers never
-- delete the same one); returns the new low.
local function trim_below(d, want)
  local low = low_of(d)
  while low < want do
    local n, err = d:incr("low", 1, 1)
    if not n then error("sse.ngx.log: cannot move the window: " .. tostring(err)) end
    -- incr with init 1 on a missing key yields 2: seq 1 was the one claimed
    d:delete("e:" .. (n - 1))
    low = n
  end
  return low
end

--- log:bind(hub): the follower applies new entries to hub (called by Hub.new).
function Log:bind(hub)
  if self.hub and self.hub ~= hub then error("sse.ngx.log: already bound to another hub", 2) end
  self.hub = hub
  self:_start()
end

-- Starts the follower (once per worker), when the phase allows timers.
function Log:_start()
  if self._timer_started then return true end
  local phase = ngx.get_phase()
  if phase == "init" then return false end -- the master: the workers start it
  self._timer_started = true
  self:epoch()
  if self._applied == nil then self._applied = top_of(self.dict) end -- join at the present
  local ok, err = ngx.timer.every(self.opts.poll, function(premature) self:_tick(premature) end)
  if not ok then
    self._timer_started = false
    error("sse.ngx.log: cannot start the follower timer: " .. tostring(err))
  end
  return true
end

function Log:_tick(premature)
  if premature then
    -- nginx is stopping or reloading this worker: end the streams cleanly so
    -- their clients reconnect to a live worker and resume from the log
    self._exiting = true
    -- Not from here: this premature run happens outside nginx's event loop,
    -- and the writers' wake-ups it would post could wait in epoll_wait for
    -- the next unrelated event (up to IDLE_WAIT). A 0-delay timer (allowed
    -- while exiting) runs inside the loop, which then runs them at once.
    ngx.timer.at(0, function()
      if self.hub then
        local ok, err = pcall(self.hub.disconnect_all, self.hub)
        if not ok then ngx.log(ngx.ERR, "sse.ngx.log: closing the streams failed: ", tostring(err)) end
      end
    end)
    return
  end
  local ok, err = pcall(self.catch_up, self)
  if not ok then ngx.log(ngx.ERR, "sse.ngx.log: follower failed: ", tostring(err)) end
  local now = ngx.now()
  if now >= (self._stats_at or 0) then
    self._stats_at = now + self.opts.stats_every
    if self.on_stats then
      local sok, serr = pcall(self.on_stats, self)
      if not sok then ngx.log(ngx.ERR, "sse.ngx.log: stats failed: ", tostring(serr)) end
    end
  end
end

-- Splits an entry into time, topic (or nil) and wire bytes.
local function unpack_entry(v)
  local a = v:find(" ", 1, true)
  local b = v:find(" ", a + 1, true)
  local t = tonumber(v:sub(1, a - 1))
  local tl = tonumber(v:sub(a + 1, b - 1))
  if tl < 0 then return t, nil, v:sub(b + 1) end
  return t, v:sub(b + 1, b + tl), v:sub(b + 1 + tl)
end

--- log:catch_up(): applies every entry the worker has not applied yet, in
-- order, to the bound hub; then answers the replays that waited for it.
-- An entry being written by another worker (its number taken, its bytes not
-- yet there) is waited for, hole_wait seconds at most.
function Log:catch_up()
  local hub, d = self.hub, self.dict
  if not hub then return end
  if self._applied == nil then self._applied = top_of(d) end
  local top = top_of(d)
  local s = self._applied + 1
  while s <= top do
    local v = d:get("e:" .. s)
    if v then
      local _, topic, bytes = unpack_entry(v)
      self._applied = s
      self.stats.applied = self.stats.applied + 1
      if bytes ~= "" then hub:deliver(bytes, topic, s) end -- "": a failed publish's mark
      s = s + 1
      self._hole = nil
    else
      local low = low_of(d)
      if s < low then
        -- this worker fell more than the window behind: its subscribers
        -- missed events. They are closed (gracefully) and reconnect with
        -- their Last-Event-ID: the replay then tells them of the gap.
        self.stats.worker_gaps = self.stats.worker_gaps + 1
        ngx.log(ngx.WARN, "sse.ngx.log: worker ", ngx.worker.pid(), " fell behind the log (entries ",
          s, "..", low - 1, " trimmed before it applied them): closing its streams")
        self._applied = low - 1
        hub:disconnect_all()
        s = low
      else
        local now = ngx.now()
        if self._hole ~= s then self._hole, self._hole_since = s, now end
        if now - self._hole_since < self.opts.hole_wait then break end
        -- its writer never finished (it failed, or its worker died between
        -- the two steps): that publish did not happen
        ngx.log(ngx.WARN, "sse.ngx.log: entry ", s, " never written; skipped")
        self.stats.holes_skipped = self.stats.holes_skipped + 1
        self._applied = s
        self._hole = nil
        s = s + 1
      end
    end
  end
  if #self._pending > 0 then self:_answer_pending() end
end

--- log:publish(ev, topic) -> count, id | nil, err (called by hub:broadcast).
-- count: subscribers of this worker it was queued for (others follow).
function Log:publish(ev, topic)
  local d = self.dict
  if not self.hub then error("sse.ngx.log: not bound to a hub (sse.Hub.new{replayer = log})", 2) end
  self:_start()
  -- encode first: a bad event raises here, before it takes a number
  local body = core.encode(ev)
  local head_t = ("%.3f %d %s"):format(ngx.now(), topic and #topic or -1, topic or "")
  local cap = d.capacity and d:capacity() or math.huge
  if #body + #head_t + 64 > cap / 4 then
    return nil, ("event too large for the shared dict (%d bytes; the dict holds %d)"):format(#body, cap)
  end
  local seq, err = d:incr("seq", 1, 0)
  if not seq then return nil, "shared dict: " .. tostring(err) end
  local id = self:id(seq)
  local value = head_t .. "id: " .. id .. "\n" .. body
  local key = "e:" .. seq
  local ok, serr = d:safe_set(key, value)
  while not ok and serr == "no memory" do
    -- full: make room by trimming the oldest entries (their clients, if
    -- they come back, get the gap event)
    local low = low_of(d)
    if low >= seq then break end
    trim_below(d, low + 1)
    self.stats.trimmed_full = self.stats.trimmed_full + 1
    ok, serr = d:safe_set(key, value)
  end
  if not ok then
    -- leave a mark, so followers do not wait for it
    d:safe_set(key, "0 -1 ")
    return nil, "shared dict: " .. tostring(serr)
  end
  if seq - self.opts.max_events >= low_of(d) then trim_below(d, seq - self.opts.max_events + 1) end
  local before = self.hub.stats.deliveries
  self:catch_up()
  return self.hub.stats.deliveries - before, id
end

--- log:last_id(): the id of the newest entry this worker applied ("<epoch>-0"
-- before the first), where a fresh client joins.
function Log:last_id()
  self:_start()
  if self._applied == nil then self._applied = top_of(self.dict) end
  return self:id(self._applied)
end

--- log:first_id(): the oldest id still offered for replay, or nil.
function Log:first_id()
  local d = self.dict
  local low, top = low_of(d), top_of(d)
  if low > top then return nil end
  return self:id(low)
end

--- log:replay_async(hub, stream, last_id, topics): what stream missed after
-- last_id, answered with hub:resume. An id this worker has not reached yet
-- (the client came from a worker ahead of it) waits for the follower.
function Log:replay_async(hub, stream, last_id, topics)
  self:_start()
  local seq = self:_parse(last_id) -- nil: malformed or another epoch, a gap
  local top = top_of(self.dict)
  if seq and seq > top then seq = nil end -- an id not issued yet: a gap too
  if seq and seq > (self._applied or 0) then
    self:catch_up()
    if seq > self._applied then
      self._pending[#self._pending + 1] = { stream, last_id, topics, seq, ngx.now() }
      return
    end
  end
  return self:_replay(hub, stream, seq, topics)
end

function Log:_answer_pending()
  local keep, now = {}, ngx.now()
  for _, p in ipairs(self._pending) do
    if p[4] <= self._applied then
      self:_replay(self.hub, p[1], p[4], p[3])
    elseif now - p[5] > 2 * self.opts.hole_wait + 1 then
      self:_replay(self.hub, p[1], nil, p[3]) -- never reached: a gap
    else
      keep[#keep + 1] = p
    end
  end
  self._pending = keep
end

-- Replays entries after seq (nil: a gap, everything kept) up to what this
-- worker applied, for topics; answers with hub:resume.
function Log:_replay(hub, stream, seq, topics)
  local d = self.dict
  local upto = self._applied or top_of(d)
  local want = {}
  for _, t in ipairs(topics or {}) do want[t] = true end
  local low = low_of(d)
  local gap = seq == nil
  local from = seq and seq + 1 or low
  if from < low then gap, from = true, low end
  local ttl = self.opts.ttl
  local oldest_ok = ttl and ngx.now() - ttl
  local frames, tops, n = {}, {}, 0
  for s = from, upto do
    local v = d:get("e:" .. s)
    if v == nil then
      if s < low_of(d) then gap = true end -- trimmed meanwhile
    else
      local t, topic, bytes = unpack_entry(v)
      if oldest_ok and t < oldest_ok then
        gap = true -- past the ttl: as if trimmed
      elseif bytes ~= "" and (topic == nil or want[topic]) then
        n = n + 1
        frames[n] = bytes
        tops[n] = topic or false -- envelope streams show it
      end
    end
  end
  local info
  if gap then info = { oldest = self:first_id(), latest = self:id(upto) } end
  return hub:resume(stream, frames, upto, info, tops)
end

--- log:len() -> entries offered for replay (sse.metrics' sse_replay_events).
function Log:len()
  local d = self.dict
  local low, top = low_of(d), top_of(d)
  return top >= low and top - low + 1 or 0
end

--- log:oldest_age() -> seconds since the oldest entry offered was written
-- (0 when none; sse.metrics' sse_replay_oldest_age_seconds).
function Log:oldest_age()
  local d = self.dict
  local low, top = low_of(d), top_of(d)
  for s = low, math.min(top, low + 16) do -- a trimmed or in-flight entry: the next
    local v = d:get("e:" .. s)
    local t = v and tonumber(v:match("^(%S+)"))
    if t and t > 0 then return math.max(0, ngx.now() - t) end
  end
  return 0
end

--- log:info(): the window, for stats pages.
function Log:info()
  local d = self.dict
  local low, top = low_of(d), top_of(d)
  return {
    epoch = self:epoch(),
    first_id = self:first_id(),
    last_id = self:id(top),
    length = top >= low and top - low + 1 or 0,
    applied = self._applied,
    max_events = self.opts.max_events,
    ttl = self.opts.ttl,
    capacity = d.capacity and d:capacity() or nil,
    free_space = d.free_space and d:free_space() or nil,
  }
end

Log.b36 = b36

return Log
