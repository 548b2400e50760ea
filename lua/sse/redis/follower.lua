--- sse.redis.follower: one instance's ordered feed of every event stored in
-- Redis, handed to its local hub (internal to sse.redis.backend).
--
-- Notification is pub/sub: the publish script announces each stored event
-- (with its bytes) on one channel, so an instance gets it with no further
-- read and Redis writes one message per instance. The stream stays the
-- truth: the follower applies events strictly in seq order (a duplicate is
-- skipped, a hole is read from the stream), and after any outage -- or when
-- the liveness check finds the channel silent -- it subscribes again and
-- catches up from the last seq it applied, reading the stream page by page,
-- with the messages that arrive meanwhile held back until the catch-up ends.
--
-- Liveness, every `heartbeat` seconds: a PING on the subscriber connection
-- must be answered by the next beat; and the head of the sequence (read on
-- the command connection) must not stay ahead of the follower for a whole
-- beat without the follower making progress. Either failure marks it stale
-- (/stats says so) and reconnects it; the bound is 2 x heartbeat plus a
-- round trip. A beat that comes late (the loop itself was busy) judges no
-- PING: its answer may be waiting, unread.
local Follower = {}
Follower.__index = Follower

-- Messages held back during a catch-up before the follower gives up on
-- them and reads the stream once more instead (they are all in it).
local HOLD_MAX = 10000

local DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

local function b36(n)
  local s = {}
  repeat
    local r = n % 36
    s[#s + 1] = DIGITS:sub(r + 1, r + 1)
    n = math.floor(n / 36)
  until n == 0
  return string.reverse(table.concat(s))
end

local function id_of(epoch, seq)
  return epoch .. "-" .. b36(seq)
end

function Follower.new(backend)
  return setmetatable({
    b = backend,
    epoch = nil, pos = 0,      -- the last event applied
    syncing = false, resync = false, held = {}, live = false,
    stale = false, ping_out = false, mark = nil, pos_at_beat = 0,
    head = nil, head_epoch = nil,
    waiting = {},              -- replays waiting for pos (see backend)
    stats = { applied = 0, catchups = 0, stale = 0, gaps = 0, duplicates = 0 },
  }, Follower)
end
Follower.id_of = id_of

function Follower:last_id()
  if not self.epoch then return nil end
  return id_of(self.epoch, self.pos)
end

-- "<epoch> <seq> <tlen|->\n<topic><bytes>" -> epoch, seq, topic, bytes
local function parse(payload)
  local epoch, seq, tl, hend = payload:match("^([%w_]+) (%d+) ([%d%-]+)\n()")
  if not epoch then return nil end
  seq = tonumber(seq)
  if tl == "-" then return epoch, seq, nil, payload:sub(hend) end
  tl = tonumber(tl)
  if not tl then return nil end
  return epoch, seq, payload:sub(hend, hend + tl - 1), payload:sub(hend + tl)
end

-- The channel's message handler.
function Follower:on_message(_, payload)
  local epoch, seq, topic, bytes = parse(payload)
  if not epoch then return self.b:_warn("ignored a malformed message on the channel") end
  if self.syncing then
    local h = self.held
    if #h < HOLD_MAX then h[#h + 1] = { epoch, seq, topic, bytes }
    else self.resync = true end
    return
  end
  self:_apply(epoch, seq, topic, bytes)
end

-- Applies one event in order; returns false when it cannot be applied yet
-- (a hole or an unseen epoch: a catch-up is started).
function Follower:_apply(epoch, seq, topic, bytes)
  if epoch ~= self.epoch then
    if self.epoch ~= nil and seq == 1 then
      -- Redis started a new epoch (flushed, replaced): continuity is lost
      self:_gap(self:last_id(), nil, id_of(epoch, 1))
      self.epoch, self.pos = epoch, 0
    else
      self:sync()
      return false
    end
  end
  if seq <= self.pos then
    self.stats.duplicates = self.stats.duplicates + 1
    return true
  end
  if seq > self.pos + 1 then
    self:sync()
    return false
  end
  self.pos = seq
  self.stats.applied = self.stats.applied + 1
  self.b:_deliver(bytes, topic, seq)
  return true
end

-- Tells the local subscribers that events were lost.
function Follower:_gap(last, oldest, latest)
  self.stats.gaps = self.stats.gaps + 1
  self.b:_local_gap({ last_event_id = last, oldest = oldest, latest = latest })
end

--- Catches up from the last applied seq (or, the first time, learns where
-- the sequence is). Messages arriving meanwhile are held back.
function Follower:sync()
  if self.syncing then
    self.resync = true
    return
  end
  local b = self.b
  if not b:_ready() then return end
  self.syncing, self.resync = true, false
  self.stats.catchups = self.stats.catchups + 1
  if self.epoch == nil then
    -- the first start: join at the head (creating the epoch if Redis has none)
    local ok, err = b:_eval("init", { b.keys.meta, b.keys.log }, { b.cand }, function(r, rerr)
      if rerr or type(r) ~= "table" then return self:_sync_failed(rerr or "bad reply") end
      self.epoch, self.pos = r[1], tonumber(r[2]) or 0
      self:_sync_done()
    end)
    if not ok then self:_sync_failed(err) end
    return
  end
  local function page()
    b:_read(self.epoch, self.pos, nil, nil, function(r, err)
      if err then return self:_sync_failed(err) end
      if not r.epoch then return self:_sync_done() end -- flushed, nothing new yet
      if r.gap ~= "" or r.epoch ~= self.epoch then
        local oldest = r.oldest > 0 and id_of(r.epoch, r.oldest) or nil
        self:_gap(self:last_id(), oldest, id_of(r.epoch, r.head))
      end
      if r.epoch ~= self.epoch then self.epoch, self.pos = r.epoch, 0 end
      local n = #r.frames
      for i = 1, n do
        local seq = r.seqs[i]
        if seq > self.pos then
          self.pos = seq
          self.stats.applied = self.stats.applied + 1
          b:_deliver(r.frames[i], r.topics[i], seq)
        end
      end
      if r.upto > self.pos then self.pos = r.upto end
      if r.more then return page() end
      self:_sync_done()
    end)
  end
  page()
end

function Follower:_sync_failed(err)
  self.syncing = false
  self.held = {}
  self.b:_warn("catch-up failed: " .. tostring(err))
  -- retried at the next heartbeat or reconnection
end

function Follower:_sync_done()
  local held = self.held
  self.held = {}
  self.syncing = false
  for i = 1, #held do
    local m = held[i]
    if not self.syncing and not self:_apply(m[1], m[2], m[3], m[4]) then
      -- a hole: _apply started another catch-up; keep the rest for it
      for j = i + 1, #held do self.held[#self.held + 1] = held[j] end
      break
    end
  end
  if self.syncing then return end
  if self.resync then return self:sync() end
  self.live = self.b:_subscribed()
  if self.live then self.stale = false end
  self.b:_progress()
end

--- The subscriber connection is gone (or being replaced).
function Follower:down()
  self.live = false
  self.ping_out = false
end

--- One heartbeat: PING the channel, compare with the head.
function Follower:beat()
  local b = self.b
  b:_progress() -- replays waiting too long for this follower are answered
  -- A beat that comes late means the loop itself was busy (a big flush, a
  -- slow callback): the answer may be sitting unread, so no verdict now.
  local now = b.env.now()
  local late = self.last_beat and now - self.last_beat > 1.5 * b.heartbeat * 1000
  self.last_beat = now
  if b:_subscribed() then
    if self.ping_out then
      if not late then self:_mark_stale("no answer to PING on the subscriber connection") end
    else
      self.ping_out = true
      b:_ping(function(_, err) if not err then self.ping_out = false end end)
    end
  end
  if not b:_ready() then return end
  b:_call(function(r, err)
    if err or type(r) ~= "table" then return end
    local epoch, head = r[1] or nil, tonumber(r[2]) or 0
    self.head_epoch, self.head = epoch, head
    local m = self.mark
    local progressed = self.pos ~= self.pos_at_beat
    self.pos_at_beat = self.pos
    if m and not self.syncing and not progressed and not (self.epoch == m[1] and self.pos >= m[2]) then
      self:_mark_stale("events in Redis not received for a whole heartbeat")
    end
    local behind = epoch and (epoch ~= self.epoch or head > self.pos)
    self.mark = behind and { epoch, head } or nil
  end, "HMGET", b.keys.meta, "epoch", "seq")
end

function Follower:_mark_stale(why)
  if self.stale then return end
  self.stale = why
  self.stats.stale = self.stats.stale + 1
  self.mark = nil
  self.b:_warn("follower stale: " .. why .. "; reconnecting and catching up")
  self.b:_resubscribe()
end

--- Events Redis holds that this instance has not applied (nil: unknown).
function Follower:lag()
  if not self.head_epoch then return self.epoch and 0 or nil end
  if self.head_epoch ~= self.epoch then return nil end
  return math.max(0, self.head - self.pos)
end

return Follower
