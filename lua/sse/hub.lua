--- sse.Hub: fan-out of events to many streams, by topic, with replay.
--
--   local hub = sse.Hub.new{ replayer = sse.MemoryReplayer.new(), keepalive = 15 }
--   hub:attach(stream, { topics = { "news" }, last_event_id = req.last_event_id })
--   hub:broadcast_to("news", { event = "headline", data = "..." })
--
-- A broadcast encodes the event once into a shared frame and the C core
-- queues a reference on each matching subscriber; no Lua runs per
-- subscriber. Frames queued during one loop turn are written at the end of
-- the turn with one writev per subscriber, by the C core on luv's loop
-- (csrc/lua/lua_hub.c), which also reports the streams it closed.
-- Membership lives in C: the hub keeps no table of its streams.
--
-- This file: Hub.new, membership, topics, counters, close. By job, beside
-- it: sse.hub.publish (broadcast, notify_to, deliver, flushes and
-- keep-alive), sse.hub.attach (attach, replay, resume), sse.hub.check (the
-- argument checks and Hub.new's options).
local core = require("sse.core")
local Stream = require("sse.stream")
local check = require("sse.hub.check")

local Hub = {}
Hub.__index = Hub
Hub.__name = "sse.Hub"

Hub.DEFAULT_OUTBOX_LIMIT = core.limits.hub_outbox_limit

-- Inside nginx luv loads but nothing runs its loop: time, flushes and
-- timers come from nginx there (sse.ngx.host).
local host = require("sse.ngx.host")

local check_self = check.self_of(Hub)
local check_stream, check_topic = check.stream, check.topic

-- Errors of hooks and timers: reported, never raised into the hub.
function Hub._warn(_, msg)
  if host.active then return host.warn(msg) end -- nginx's error log
  io.stderr:write("sse: ", msg, "\n")
end

--- Hub.new{replayer =, outbox_limit =, slow_policy =, keepalive =, flush =, envelope =}
-- replayer: any object with store/replay/last_id (see sse.replayer);
-- outbox_limit: bytes queued per subscriber before the slow policy applies
-- (default 256 KiB); slow_policy: "close" (default: the client reconnects
-- and replays) or "drop_oldest" (the client gets an sse-gap event);
-- keepalive: seconds between comments to idle subscribers (nil: off);
-- flush: "loop" (end of each luv loop turn; default with luv), "ngx" (end
-- of this nginx event-loop turn, through a 0-delay ngx timer; the default
-- inside nginx) or "immediate" (after each broadcast; default elsewhere).
-- envelope: true attaches streams in envelope mode unless attach says otherwise.
function Hub.new(opts)
  local o = check.options(opts or {}, Hub.DEFAULT_OUTBOX_LIMIT)
  local limit, policy, flush, r = o.limit, o.policy, o.flush, o.replayer
  local self = setmetatable({
    -- "ngx" flushes from a deferred ngx timer (Lua), "immediate" after each
    -- broadcast: the C hub runs a loop of its own only for "loop"
    _core = core.hub_new(limit, policy, flush ~= "loop"),
    _pending = setmetatable({}, { __mode = "k" }), -- stream -> last id of its async replay
    _replayer = r,
    _catalogue = o.catalogue, -- sse.catalogue: broadcasts are typed
    _limit = limit,
    _policy = policy,
    _flush_mode = flush,
    _envelope = o.envelope,
    _scheduled = false,
    on_broadcast = nil,      -- hook(ev) -> false vetoes
    on_broadcast_to = nil,   -- hook(topic, ev) -> false vetoes
    on_subscribe = nil,      -- hook(stream, topic): the stream joined the topic
    on_unsubscribe = nil,    -- hook(stream, topic, reason): it left (reason: see _left)
    stats = { published = 0, deliveries = 0, slow_closed = 0, dropped_streams = 0 },
  }, Hub)
  -- the C hub tells of every registered stream that closes (its topics
  -- still known): stats and presence
  self._core:set_leave(function(stream, reason, topics) self:_left(stream, reason, topics) end)
  if o.keepalive then self:_start_keepalive(o.keepalive) end
  if r ~= nil and type(r.bind) == "function" then r:bind(self) end
  return self
end

--- A new Stream for this hub's outbox limit and policy (opts as Stream.new).
function Hub:new_stream(opts)
  check_self(self, "new_stream")
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.outbox_limit = o.outbox_limit or self._limit
  o.slow_policy = o.slow_policy or self._policy
  if o.catalogue == nil then o.catalogue = self._catalogue end
  return Stream.new(o)
end

--- hub:register(stream): the stream receives broadcasts until it closes or
-- is unregistered. Returns true, or nil, "closed" for a closed stream. A
-- stream follows the hub's outbox limit and policy unless it chose its own.
function Hub:register(stream)
  check_self(self, "register")
  return self._core:add(stream, "register")
end

-- Runs a presence hook; its error is reported, never raised into the hub.
function Hub:_notify(hook, stream, topic, reason)
  local ok, err = pcall(hook, stream, topic, reason)
  if not ok then self:_warn("error in a subscription hook: " .. tostring(err)) end
end

-- on_unsubscribe hears of every topic a leaving stream was in, with the
-- stream's close reason ("closed", "eof", "slow", ...) or "unregistered",
-- once it left them (the counts are the new ones).
local function left_topics(self, stream, reason, topics)
  local hook = self.on_unsubscribe
  if not hook then return end
  for _, topic in ipairs(topics) do self:_notify(hook, stream, topic, reason) end
end

--- hub:unregister(stream): stops broadcasts to it (the stream stays open).
function Hub:unregister(stream)
  check_self(self, "unregister")
  check_stream(stream, 1, "unregister")
  if not self._core:owns(stream) then return false end
  local topics = self.on_unsubscribe and stream:_topics()
  local ok = self._core:remove(stream)
  if topics then left_topics(self, stream, "unregistered", topics) end
  return ok
end

-- The C hub's leave handler: a registered stream closes (by its owner, or
-- the core closed it: slow, write failed, drain timeout).
function Hub:_left(stream, reason, topics)
  local st = self.stats
  if reason == "slow" then st.slow_closed = st.slow_closed + 1 end
  if reason == "slow" or reason == "write failed" then st.dropped_streams = st.dropped_streams + 1 end
  left_topics(self, stream, reason, topics)
end

--- hub:subscribe(stream, topic): registers the stream if needed.
-- Returns true, or nil, "closed".
function Hub:subscribe(stream, topic)
  check_self(self, "subscribe")
  check_stream(stream, 1, "subscribe")
  check_topic(topic, 2, "subscribe")
  local ok, err = self._core:add(stream, "subscribe")
  if not ok then return nil, err end
  if self._core:subscribe(stream, topic) and self.on_subscribe then
    self:_notify(self.on_subscribe, stream, topic)
  end
  return true
end

--- hub:unsubscribe(stream, topic) -> true when it was subscribed.
function Hub:unsubscribe(stream, topic)
  check_self(self, "unsubscribe")
  check_stream(stream, 1, "unsubscribe")
  check_topic(topic, 2, "unsubscribe")
  if not self._core:owns(stream) then return false end
  local was = self._core:unsubscribe(stream, topic)
  if was and self.on_unsubscribe then self:_notify(self.on_unsubscribe, stream, topic, "unsubscribed") end
  return was
end

--- hub:is_subscribed(stream, topic)
function Hub:is_subscribed(stream, topic)
  check_self(self, "is_subscribed")
  check_stream(stream, 1, "is_subscribed")
  check_topic(topic, 2, "is_subscribed")
  if not self._core:owns(stream) then return false end
  return self._core:subscribed(stream, topic)
end

--- The registered streams, as a list.
function Hub:streams()
  check_self(self, "streams")
  return self._core:streams()
end

--- Closes every stream gracefully (clients reconnect and resume); returns
-- how many.
function Hub:disconnect_all(reason)
  check_self(self, "disconnect_all")
  local list = self:streams()
  for _, s in ipairs(list) do s:close(reason) end
  return #list
end

--- Number of registered streams.
function Hub:connection_count()
  check_self(self, "connection_count")
  return self._core:count()
end

--- Number of streams subscribed to topic.
function Hub:topic_count(topic)
  check_self(self, "topic_count")
  check_topic(topic, 1, "topic_count")
  return self._core:topic_count(topic)
end

--- { [topic] = subscriber count }
function Hub:topics()
  check_self(self, "topics")
  return self._core:topics()
end

--- The n topics with the most subscribers (0 <= n <= 10000), most first,
-- ties by name: { {topic = name, subscribers = count}, ... }. O(topics)
-- in C, one Lua table per topic returned: cheap enough for a stats page.
function Hub:top_topics(n)
  check_self(self, "top_topics")
  if type(n) ~= "number" or n ~= math.floor(n) or n < 0 or n > 10000 then
    error(("bad argument #1 to 'top_topics' (integer in 0..10000 expected, got %s)"):format(
      type(n) == "number" and tostring(n) or type(n)), 2)
  end
  local list = self._core:top_topics(n)
  for i, e in ipairs(list) do list[i] = { topic = e[1], subscribers = e[2] } end
  return list
end

--- Number of topics with at least one subscriber.
function Hub:topic_total()
  check_self(self, "topic_total")
  return self._core:topic_total()
end

function Hub:replayer()
  return self._replayer
end

--- hub:counters() -> {published, deliveries, bytes_sent, dropped,
-- gaps_replay, gaps_dropped, closed_slow, closed_write, closed_timeout}:
-- cumulative since Hub.new (for sse.metrics). The C core counts the bytes
-- the transports accepted, the events dropped for slow clients, the gap
-- events queued and the streams it closed, by reason.
function Hub:counters()
  check_self(self, "counters")
  local c = self._core:counters()
  c.published, c.deliveries = self.stats.published, self.stats.deliveries
  return c
end

--- hub:close(): closes every stream (gracefully: what is queued still goes
-- out) and the hub.
function Hub:close()
  if getmetatable(self) ~= Hub then error("calling 'close' on bad self", 2) end
  if self._closed then return end
  for _, s in ipairs(self._core:streams()) do s:close() end
  self._closed = true
  if self._ka_ngx then self._ka_ngx.stop() end
  local t = self._ka_timer
  if t and not t:is_closing() then t:close() end
  -- what still drains goes on in the home hub of the Lua state
  self._core:close()
end

-- The rest of the methods, by job: broadcast, notify_to, deliver and the
-- flushes; attach and resume (the replay hand-off).
require("sse.hub.publish").install(Hub)
require("sse.hub.attach").install(Hub)

return Hub
