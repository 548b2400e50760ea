--- sse.hub.publish: the hub's sending side -- broadcast, broadcast_to,
-- notify_to, deliver -- and when what they queued is written (flush, the
-- flush modes, keep-alive). Installed on sse.Hub by sse.hub.
--
-- A broadcast encodes the event once into a shared frame and the C core
-- queues a reference on each matching subscriber; no Lua runs per
-- subscriber.
local check = require("sse.hub.check")
local host = require("sse.ngx.host")

local uv_ok, uv = pcall(require, "luv")
if not uv_ok then uv = nil end

local argerror, is_async, RING_MT = check.argerror, check.is_async, check.RING_MT
local check_topic, fields_of = check.topic, check.fields_of

local M = {}

--- install(Hub): adds broadcast, broadcast_to, notify_to, deliver, flush to sse.Hub.
function M.install(Hub)
  local check_self = check.self_of(Hub)

  -- Store (when a replayer is set) and queue. Returns count, id, or nil, err
  -- when the replayer fails at runtime; nil, "vetoed" when the broadcast
  -- hook said so (vetoed).
  local function publish(self, fname, n, topic, ev, vetoed)
    if vetoed then return nil, "vetoed" end
    if self._closed then return nil, "closed" end -- the hook closed the hub
    local f = fields_of(ev, n, fname)
    local cat = self._catalogue
    if cat then -- a typed hub: undeclared or invalid events are misuse
      local typed, err = cat:check(f)
      if not typed then argerror(n, fname, err) end
      f = typed
    end
    -- reading the event may have run Lua (an __index) that closed the hub (the
    -- C side answers nil, "closed" when its core was closed that way)
    if self._closed then return nil, "closed" end
    local id = f.id
    local r = self._replayer
    if r and id ~= nil then
      argerror(n, fname, "event must not carry an id when the hub has a replayer (ids are the replayer's)")
    end
    local count
    if r and is_async(r) then
      -- the backend assigns the id; its follower delivers (hub:deliver)
      self.stats.published = self.stats.published + 1
      return r:publish(f, topic)
    elseif r and getmetatable(r) == RING_MT then
      -- one encode: the ring's frame is the one every subscriber gets
      count, id = self._core:publish(f, topic, r, fname, n)
      if count == nil then return nil, id end -- the ring is closed
    else
      if r then
        local res, err = r:store(f, topic) -- a bad event raises and is stored nowhere
        if res == nil then return nil, err end
        id = res
        f.id = id
      end
      local err
      count, err = self._core:publish(f, topic, nil, fname, n)
      if count == nil then return nil, err end
    end
    local st = self.stats
    st.published = st.published + 1
    st.deliveries = st.deliveries + count
    -- even when nobody was queued: a subscriber that just failed is closed by
    -- the flush
    self:_schedule()
    return count, id
  end

  -- After a fan-out that stored nothing (notify_to, deliver): count, err
  -- from the core; the deliveries are counted and the flush scheduled.
  local function fanned_out(self, count, err)
    if count == nil then return nil, err end
    self.stats.deliveries = self.stats.deliveries + count
    self:_schedule()
    return count
  end

  --- hub:broadcast(ev) -> count, id | nil, "vetoed"
  -- Queues ev for every registered stream. With a replayer the event is
  -- stored first and carries the replayer's id.
  function Hub:broadcast(ev)
    check_self(self, "broadcast")
    local hook = self.on_broadcast
    return publish(self, "broadcast", 1, nil, ev, hook and hook(ev) == false)
  end

  --- hub:broadcast_to(topic, ev) -> count, id | nil, "vetoed"
  function Hub:broadcast_to(topic, ev)
    check_self(self, "broadcast_to")
    check_topic(topic, 1, "broadcast_to")
    local hook = self.on_broadcast_to
    return publish(self, "broadcast_to", 2, topic, ev, hook and hook(topic, ev) == false)
  end

  --- hub:notify_to(topic, ev) -> count: the topic's streams get ev now, and
  -- that is all: no id, not stored for replay, no broadcast hooks, this
  -- process only -- for what a reconnecting client need not get back
  -- (presence, typing indicators).
  function Hub:notify_to(topic, ev)
    check_self(self, "notify_to")
    check_topic(topic, 1, "notify_to")
    local f = fields_of(ev, 2, "notify_to")
    if self._closed then return nil, "closed" end
    return fanned_out(self, self._core:publish(f, topic, nil, "notify_to", 2))
  end

  --- hub:deliver(ev, topic, seq) -> count: an event that already has its id
  -- (from an asynchronous backend's follower): one encode, then the fan-out.
  -- seq is the backend's sequence number of the event (integer >= 1).
  function Hub:deliver(ev, topic, seq)
    check_self(self, "deliver")
    return fanned_out(self, self._core:deliver(ev, topic, seq, "deliver"))
  end

  --- hub:flush(): writes what is queued now, drains writer streams, wakes
  -- pull hosts and finishes the streams the core closed. With flush = "loop"
  -- the C core does this at the end of every loop turn by itself.
  function Hub:flush()
    if self._closed then return end
    self._scheduled = false
    self._core:flush()
  end

  -- After a broadcast: "loop" needs nothing (the C core flushes at the end of
  -- the turn), "immediate" flushes now, "ngx" at the end of nginx's turn.
  function Hub:_schedule()
    local mode = self._flush_mode
    if mode == "loop" or self._scheduled then return end
    if mode == "immediate" then return self:flush() end
    -- every event of this turn (pipelined publishes, a follower's batch)
    -- goes out in one write per subscriber
    self._on_defer = self._on_defer or function()
      local ok, err = pcall(self.flush, self)
      if not ok then self:_warn("hub flush failed: " .. tostring(err)) end
    end
    self._scheduled = true
    if not host.defer(self._on_defer) then
      self._scheduled = false
      return self:flush() -- no timer to be had (lua_max_pending_timers): at once
    end
  end

  function Hub:_start_keepalive(seconds)
    local function beat()
      self._core:keepalive(": keep-alive\n\n", seconds)
      self:flush() -- also closes subscribers whose writes failed meanwhile
    end
    if host.active then
      self._ka_ngx = host.every(seconds, beat)
      return
    end
    local t = uv.new_timer()
    local ms = math.floor(seconds * 1000)
    t:start(ms, ms, function()
      local ok, err = pcall(beat)
      if not ok then self:_warn("hub keep-alive failed: " .. tostring(err)) end
    end)
    t:unref()
    self._ka_timer = t
  end
end

return M
