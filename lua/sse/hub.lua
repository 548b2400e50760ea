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
local core = require("sse.core")
local Stream = require("sse.stream")
local Event = require("sse.event")

local Hub = {}
Hub.__index = Hub
Hub.__name = "sse.Hub"

Hub.DEFAULT_OUTBOX_LIMIT = core.limits.hub_outbox_limit

local uv_ok, uv = pcall(require, "luv")
if not uv_ok then uv = nil end

-- The in-memory replayer's type: the hub hands it to the C core, which
-- stores and fans out one and the same frame.
local RING_MT = core.ring_metatable

-- An asynchronous backend (docs/CORE.md 3) answers replays later.
local ASYNC = { "publish", "replay_async", "last_id" }
local SYNC = { "store", "replay", "last_id" }

local function is_async(r)
  return type(r) == "table" and type(r.replay_async) == "function"
end

-- Inside nginx luv loads but nothing runs its loop: time, flushes and
-- timers come from nginx there (sse.ngx.host).
local host = require("sse.ngx.host")

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Hub then
    error(("calling '%s' on bad self (sse.Hub expected, got %s)"):format(fname, type(self)), 3)
  end
  if self._closed then error(("calling '%s' on a closed hub"):format(fname), 3) end
end

local function warn(msg)
  if host.active then return host.warn(msg) end -- nginx's error log
  io.stderr:write("sse: ", msg, "\n")
end

local function check_stream(s, n, fname)
  if not Stream.is(s) then argerror(n, fname, "sse.Stream expected, got " .. type(s)) end
end

local function check_topic(t, n, fname)
  if type(t) ~= "string" then argerror(n, fname, "topic (string) expected, got " .. type(t)) end
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
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "new", "table expected, got " .. type(opts)) end
  local r = opts.replayer
  if r ~= nil then
    for _, m in ipairs(is_async(r) and ASYNC or SYNC) do
      if type(r) ~= "table" and type(r) ~= "userdata" or type(r[m]) ~= "function" then
        argerror(1, "new", ("field 'replayer' must have a '%s' method"):format(m))
      end
    end
  end
  core.check_options(opts, "new") -- outbox_limit, slow_policy: one rule, in C
  local cat = opts.catalogue
  if cat ~= nil and not require("sse.catalogue").is(cat) then
    argerror(1, "new", "field 'catalogue': sse.catalogue expected, got " .. type(cat))
  end
  local limit = opts.outbox_limit or Hub.DEFAULT_OUTBOX_LIMIT
  local policy = opts.slow_policy or "close"
  local ka = opts.keepalive
  if ka ~= nil and (type(ka) ~= "number" or ka <= 0) then
    argerror(1, "new", "field 'keepalive': positive number of seconds expected")
  end
  local flush = opts.flush or (host.active and "ngx" or uv and "loop" or "immediate")
  if flush ~= "loop" and flush ~= "immediate" and flush ~= "ngx" then
    argerror(1, "new", "field 'flush': \"loop\", \"ngx\" or \"immediate\" expected, got " .. tostring(flush))
  end
  if flush == "loop" and not uv then argerror(1, "new", "flush = \"loop\" needs luv") end
  if flush == "loop" and host.active then
    argerror(1, "new", "field 'flush': \"loop\" cannot work inside nginx (nothing runs the luv loop there); "
      .. "use \"ngx\" (the default there) or \"immediate\"")
  end
  if flush == "ngx" and not host.active then argerror(1, "new", "flush = \"ngx\" works inside nginx only") end
  if ka and host.active and not host.timers_allowed() then
    argerror(1, "new", "field 'keepalive': nginx cannot start timers in init_by_lua; create the hub in "
      .. "init_worker_by_lua* or in a handler (each worker has its own)")
  end
  if opts.envelope ~= nil and type(opts.envelope) ~= "boolean" then
    argerror(1, "new", "field 'envelope': boolean expected, got " .. type(opts.envelope))
  end
  local self = setmetatable({
    -- "ngx" flushes from a deferred ngx timer (Lua), "immediate" after each
    -- broadcast: the C hub runs a loop of its own only for "loop"
    _core = core.hub_new(limit, policy, flush ~= "loop"),
    _pending = setmetatable({}, { __mode = "k" }), -- stream -> last id of its async replay
    _replayer = r,
    _catalogue = cat,        -- sse.catalogue: broadcasts are typed
    _limit = limit,
    _policy = policy,
    _flush_mode = flush,
    _envelope = opts.envelope or false,
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
  if ka then self:_start_keepalive(ka) end
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
local function notify(hook, stream, topic, reason)
  local ok, err = pcall(hook, stream, topic, reason)
  if not ok then warn("error in a subscription hook: " .. tostring(err)) end
end

-- on_unsubscribe hears of every topic a leaving stream was in, with the
-- stream's close reason ("closed", "eof", "slow", ...) or "unregistered",
-- once it left them (the counts are the new ones).
local function left_topics(self, stream, reason, topics)
  local hook = self.on_unsubscribe
  if not hook then return end
  for _, topic in ipairs(topics) do notify(hook, stream, topic, reason) end
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
    notify(self.on_subscribe, stream, topic)
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
  if was and self.on_unsubscribe then notify(self.on_unsubscribe, stream, topic, "unsubscribed") end
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

-- The event's fields as a plain table (copied, so an id can be added).
local function fields_of(ev, n, fname)
  if type(ev) ~= "table" then argerror(n, fname, "event (table or sse.Event) expected, got " .. type(ev)) end
  local src = Event.is(ev) and ev[1] or ev
  return { id = src.id, event = src.event, data = src.data, retry = src.retry,
           comment = src.comment, check_utf8 = src.check_utf8 }
end


-- Store (when a replayer is set) and queue. Returns count, id, or nil, err
-- when the replayer fails at runtime.
local function publish(self, fname, n, topic, ev)
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

--- hub:broadcast(ev) -> count, id | nil, "vetoed"
-- Queues ev for every registered stream. With a replayer the event is
-- stored first and carries the replayer's id.
function Hub:broadcast(ev)
  check_self(self, "broadcast")
  local hook = self.on_broadcast
  if hook and hook(ev) == false then return nil, "vetoed" end
  if self._closed then return nil, "closed" end -- the hook closed the hub
  return publish(self, "broadcast", 1, nil, ev)
end

--- hub:broadcast_to(topic, ev) -> count, id | nil, "vetoed"
function Hub:broadcast_to(topic, ev)
  check_self(self, "broadcast_to")
  check_topic(topic, 1, "broadcast_to")
  local hook = self.on_broadcast_to
  if hook and hook(topic, ev) == false then return nil, "vetoed" end
  if self._closed then return nil, "closed" end -- the hook closed the hub
  return publish(self, "broadcast_to", 2, topic, ev)
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
  local count, err = self._core:publish(f, topic, nil, "notify_to", 2)
  if count == nil then return nil, err end
  self.stats.deliveries = self.stats.deliveries + count
  self:_schedule()
  return count
end

--- hub:attach(stream, {topics =, last_event_id =, envelope =}) -> replayed count [, "gap"]
-- Registers and subscribes the stream, sends what it missed since
-- last_event_id (default: the stream's own), then it is live: nothing is
-- lost or sent twice between the replay and the live feed. When the id is
-- outside the replay window the stream first gets the sse-gap event.
-- envelope = true (default: the hub's envelope option): every event from
-- here on, the join and gap events too, comes as `event: sse` with a JSON
-- envelope of its topic, type and data (README, "Envelope mode").
local NO_OPTS = {} -- read only

function Hub:attach(stream, opts)
  check_self(self, "attach")
  opts = opts or NO_OPTS
  if type(opts) ~= "table" then argerror(2, "attach", "table expected, got " .. type(opts)) end
  local r = self._replayer
  local ring = r ~= nil and getmetatable(r) == RING_MT
  local hook = self.on_subscribe
  local envelope = opts.envelope
  if envelope ~= nil and type(envelope) ~= "boolean" then
    argerror(2, "attach", "field 'envelope': boolean expected, got " .. type(envelope))
  end
  if envelope == nil then envelope = self._envelope end
  if ring and not hook then
    -- one C call: register, subscribe, replay by frame reference (or the
    -- join event), live; every argument checked there
    return self._core:attach(stream, opts.topics, opts.last_event_id, r, "attach", envelope)
  end
  check_stream(stream, 1, "attach")
  local topics = opts.topics
  if topics ~= nil then
    if type(topics) ~= "table" then argerror(2, "attach", "field 'topics': table expected, got " .. type(topics)) end
    for i = 1, #topics do
      if type(topics[i]) ~= "string" then
        argerror(2, "attach", ("field 'topics': topics[%d] must be a string, got %s"):format(i, type(topics[i])))
      end
    end
  end
  local last_id = opts.last_event_id
  if last_id == nil then last_id = stream:last_event_id() end
  if last_id ~= nil and type(last_id) ~= "string" then
    argerror(2, "attach", "field 'last_event_id': string expected, got " .. type(last_id))
  end
  local ok, err = self._core:add(stream, "attach")
  if not ok then return nil, err end
  if envelope then stream:_set_envelope(true) end
  local joined
  if hook then
    joined = {}
    for i = 1, #(topics or {}) do
      if self._core:subscribe(stream, topics[i]) then joined[#joined + 1] = topics[i] end
    end
  elseif not ring then
    for i = 1, #(topics or {}) do self._core:subscribe(stream, topics[i]) end
  end
  -- on_subscribe runs once the stream is set up (after its replay, or with
  -- the replay pending): an event it publishes reaches the stream after the
  -- replay, never before
  local count, state = self:_replay(stream, last_id, topics)
  if hook then
    for _, t in ipairs(joined) do notify(hook, stream, t) end
  end
  return count, state
end

-- The replay part of attach: what the stream missed, then live.
function Hub:_replay(stream, last_id, topics)
  local r = self._replayer
  if r and getmetatable(r) == RING_MT then
    return self._core:attach(stream, topics, last_id, r, "attach")
  end
  if not r then return 0 end
  if last_id == nil then
    -- A first connection: tell the client where it joined, as a named event
    -- with data (clients such as eventsource-parser drop an id-only block),
    -- so if it is cut off before its first event it still resumes from here.
    local joined = r:last_id()
    if joined ~= nil then stream:_send_raw(core.join_event(joined)) end
    return 0
  end
  self._core:replay_begin(stream) -- live frames wait behind the replay
  if is_async(r) then
    self._pending[stream] = last_id
    local aok, aerr = pcall(r.replay_async, r, self, stream, last_id, topics or {})
    if not aok then self:resume(stream, nil, tostring(aerr)) end
    return 0, "pending"
  end
  -- a synchronous replayer: its frames go ahead of whatever was published
  -- meanwhile, in one hand-off
  local frames, tops, n = {}, {}, 0
  local count, gap = r:replay(last_id, function(bytes, topic)
    n = n + 1
    frames[n] = bytes
    tops[n] = type(topic) == "string" and topic -- an envelope names it
  end, topics or {})
  local info
  if gap == "gap" then info = { oldest = r.first_id and r:first_id() or nil, latest = r:last_id() } end
  self._core:resume(stream, frames, 0, info, last_id, "attach", tops)
  return count, gap
end

--- hub:resume(stream, frames, upto [, gap [, topics]]) -> count | nil, "closed"
-- The answer of an asynchronous replay (docs/CORE.md 3): frames (wire
-- bytes or events with their ids, oldest first) go out ahead of the live
-- events that waited; those with seq <= upto are dropped (the replay has
-- them). gap = {oldest =, latest =} sends the sse-gap event first.
-- topics[i] (optional) is the topic of frames[i], for envelope streams.
-- hub:resume(stream, nil, err): the replay failed: a gap, then live.
function Hub:resume(stream, frames, upto, gap, topics)
  check_self(self, "resume")
  check_stream(stream, 1, "resume")
  if frames == nil then
    frames, upto, gap = {}, 0, {}
  end
  local from = self._pending[stream]
  self._pending[stream] = nil
  if stream:is_closed() then return nil, "closed" end
  return self._core:resume(stream, frames, upto, gap, from, "resume", topics)
end

--- hub:deliver(ev, topic, seq) -> count: an event that already has its id
-- (from an asynchronous backend's follower): one encode, then the fan-out.
-- seq is the backend's sequence number of the event (integer >= 1).
function Hub:deliver(ev, topic, seq)
  check_self(self, "deliver")
  local count, err = self._core:deliver(ev, topic, seq, "deliver")
  if count == nil then return nil, err end
  local st = self.stats
  st.deliveries = st.deliveries + count
  self:_schedule()
  return count
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
    if not ok then warn("hub flush failed: " .. tostring(err)) end
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
    if not ok then warn("hub keep-alive failed: " .. tostring(err)) end
  end)
  t:unref()
  self._ka_timer = t
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

return Hub
