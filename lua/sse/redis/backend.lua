--- sse.redis.backend: ids, replay and fan-out shared by many sse instances
-- through one Redis (docs: README "Several instances (Redis)").
--
--   local backend = require("sse.redis").backend{ url = "redis://127.0.0.1:6379" }
--   local hub = sse.Hub.new{ replayer = backend }   -- the hub binds itself
--   backend:publish({ data = "hi" }, "news", function(id, err) end)
--
-- An asynchronous replayer in the sense of docs/CORE.md: publish stores
-- through one atomic script (next id, XADD, PUBLISH); the follower
-- (sse.redis.follower) hands every stored event, from any instance, to the
-- local hub in id order (hub:deliver); replay_async reads the stream and
-- answers with hub:resume. Two connections: commands (publish, replay, the
-- head check) and the subscriber. Both reconnect on their own with capped
-- exponential backoff and jitter; while the command connection is down,
-- publish fails at once, and a Redis that stops answering fails it within
-- `timeout`.
--
-- This file: options, publish, the follower's deliveries, status, close.
-- By job, beside it: sse.redis.links (the two connections, reconnection,
-- script calls), sse.redis.replay (replay_async and the waits for the
-- follower).
local core = require("sse.core")
local Follower = require("sse.redis.follower")

local Backend = {}
Backend.__index = Backend
Backend.__name = "sse.redis.Backend"

Backend.DEFAULTS = {
  url = "redis://127.0.0.1:6379",
  prefix = "sse:",
  max_len = 10000,        -- events kept for replay (the newest ids)
  ttl = 3600,             -- seconds an event is kept (0: no age limit)
  timeout = 1,            -- seconds: connect, and each command
  heartbeat = 0.5,        -- seconds between liveness checks
  page = 1000,            -- entries per stream read
  idempotency_ttl = 3600, -- seconds a publish key is remembered
  backoff_min = 0.05,     -- seconds before the first reconnection attempt
  backoff_max = 2,        -- cap of the exponential backoff
}

local function argerror(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

--- parse_url("redis://[user:password@]host[:port][/db]") -> t | nil, why
function Backend.parse_url(url)
  local rest = type(url) == "string" and url:match("^redis://(.*)$")
  if not rest then return nil, "redis://host[:port][/db] expected" end
  local auth, hostport, db = rest:match("^(.-)@?([^@/]*)/?(%d*)$")
  if not hostport or hostport == "" then return nil, "no host in the URL" end
  local t = { db = tonumber(db) or 0 }
  local host, port = hostport:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
  if not host then return nil, "bad host:port" end
  t.host, t.port = host, tonumber(port) or 6379
  if t.port < 1 or t.port > 65535 then return nil, "bad port" end
  if auth ~= "" then
    local user, pass = auth:match("^([^:]*):(.*)$")
    if user then
      t.username, t.password = user ~= "" and user or nil, pass
    else
      t.password = auth
    end
  end
  return t
end

local function check_number(opts, name, lo)
  local v = opts[name]
  if v == nil then return Backend.DEFAULTS[name] end
  if type(v) ~= "number" or v ~= v or v < lo or v == math.huge then
    argerror("backend", 1, ("field '%s': number >= %s expected"):format(name, tostring(lo)))
  end
  return v
end

local KNOWN = { env = true, name = true, on_event = true, log = true }
for k in pairs(Backend.DEFAULTS) do KNOWN[k] = true end

-- Random characters for a new epoch (the script prefixes Redis's clock in
-- ms, so an epoch never repeats unless both collide): from /dev/urandom,
-- since LuaJIT's math.random starts from the same seed in every process.
local function fresh_epoch()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(4)
  if f then f:close() end
  local n = 0
  if bytes and #bytes == 4 then
    for i = 1, 4 do n = n * 256 + bytes:byte(i) end
  else
    n = math.random(0, 2 ^ 31 - 1) + os.time()
  end
  return Follower.id_of("", n % 1679616 + 1679616):sub(3) -- 4 base36 digits
end

--- Backend.new(opts): see Backend.DEFAULTS;
-- opts.env (how it dials and keeps time: sse.redis.conn.env on luv,
-- sse.redis.ngx_env inside nginx; chosen by the host when absent),
-- opts.name (CLIENT SETNAME prefix), opts.on_event (function(bytes, topic,
-- seq) called for each followed event when no hub is bound), opts.log
-- (function(msg): reconnections, stale followers; default stderr).
function Backend.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then argerror("backend", 1, "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then argerror("backend", 1, ("unknown option '%s'"):format(tostring(k))) end
  end
  local host = require("sse.ngx.host")
  if opts.env ~= nil and opts.env.name == "luv" and host.active then
    -- nothing runs luv's loop inside nginx: its sockets and timers never would
    argerror("backend", 1, "field 'env': luv's cannot run inside nginx (the default there is sse.redis.ngx_env)")
  end
  local url = opts.url or Backend.DEFAULTS.url
  local u, why = Backend.parse_url(url)
  if not u then argerror("backend", 1, "field 'url': " .. why) end
  local prefix = opts.prefix or Backend.DEFAULTS.prefix
  if type(prefix) ~= "string" or #prefix > 200 then
    argerror("backend", 1, "field 'prefix': string of at most 200 bytes expected")
  end
  local max_len = check_number(opts, "max_len", 1)
  if max_len ~= math.floor(max_len) then argerror("backend", 1, "field 'max_len': integer expected") end
  for _, k in ipairs({ "on_event", "log" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      argerror("backend", 1, ("field '%s': function expected"):format(k))
    end
  end
  local self = setmetatable({
    url = url, u = u, prefix = prefix, max_len = max_len,
    ttl = check_number(opts, "ttl", 0),
    timeout = check_number(opts, "timeout", 0.01),
    heartbeat = check_number(opts, "heartbeat", 0.01),
    page = math.floor(check_number(opts, "page", 1)),
    idem_ttl = math.max(1, math.floor(check_number(opts, "idempotency_ttl", 1))),
    backoff_min = check_number(opts, "backoff_min", 0.001),
    backoff_max = check_number(opts, "backoff_max", 0.001),
    -- the host's own sockets and timers: cosockets inside nginx (where luv
    -- loads but nothing runs its loop), luv elsewhere
    env = opts.env or (host.active and require("sse.redis.ngx_env")
      or require("sse.redis.conn").env),
    name = opts.name or "sse",
    on_event = opts.on_event,
    log = opts.log,
    keys = { meta = prefix .. "meta", log = prefix .. "log" },
    channel = prefix .. "events",
    sha = {},
    closed = false,
    stats = { published = 0, publish_errors = 0, duplicates = 0, reconnects = 0, delivered = 0 },
  }, Backend)
  self.cand = fresh_epoch()
  self.follower = Follower.new(self)
  self.links = {
    cmd = { name = "cmd", attempts = 0 },
    sub = { name = "sub", attempts = 0 },
  }
  self.beat = self.env.timer(function() self.follower:beat() end)
  local hb = math.floor(self.heartbeat * 1000)
  self.beat:start(hb, hb)
  self:_dial(self.links.cmd)
  self:_dial(self.links.sub)
  return self
end

function Backend:_warn(msg)
  if self.log then
    pcall(self.log, msg)
  elseif self.env.log then
    self.env.log(msg)
  else
    io.stderr:write("sse.redis: ", msg, "\n")
  end
end

-- Publishing -------------------------------------------------------------

-- The wire bytes of ev around its id line: the script inserts the id it
-- assigns between them (the order of sse.encode: comment, event, id, retry,
-- data). Raises, naming fname, on a bad event.
local function encode_parts(ev, fname)
  if type(ev) ~= "table" then argerror(fname, 1, "event (table or sse.Event) expected, got " .. type(ev)) end
  local src = ev[1] ~= nil and type(ev[1]) == "table" and ev[1] or ev
  if src.id ~= nil then argerror(fname, 1, "event must not carry an id (ids are the backend's)") end
  -- the whole event rule, answered without a raise (no message to take apart)
  local valid, why = core.event_valid({ comment = src.comment, event = src.event, retry = src.retry,
                                        data = src.data, check_utf8 = src.check_utf8 })
  if not valid then argerror(fname, 1, why) end
  local opts = src.check_utf8 == false and { check_utf8 = false } or nil
  local head = core.encode({ comment = src.comment, event = src.event }, opts)
  local tail = core.encode({ retry = src.retry, data = src.data }, opts)
  return head:sub(1, -2), tail
end

--- backend:publish(ev, topic [, done [, opts]]) -> true | nil, err
-- Stores ev (no id: the backend assigns it) under the next id and announces
-- it to every instance, this one included (its subscribers get it from the
-- follower, in id order). done(id, err, duplicate) is called once Redis
-- answered: id, or nil and the reason ("redis: timeout", ...); duplicate is
-- true when opts.key was published before (the first id is returned, the
-- event is not stored twice). Returns nil, err (done not called) when the
-- command connection is down.
function Backend:publish(ev, topic, done, opts)
  if getmetatable(self) ~= Backend then error("calling 'publish' on bad self", 2) end
  local head, tail = encode_parts(ev, "publish")
  if topic ~= nil and type(topic) ~= "string" then argerror("publish", 2, "string expected, got " .. type(topic)) end
  if done ~= nil and type(done) ~= "function" then argerror("publish", 3, "function expected, got " .. type(done)) end
  local key = opts and opts.key
  if key ~= nil and (type(key) ~= "string" or key == "" or #key > 200) then
    argerror("publish", 4, "field 'key': string of 1 to 200 bytes expected")
  end
  if self.closed then return nil, "closed" end
  local f = self.follower
  local keys = { self.keys.meta, self.keys.log }
  if key then keys[3] = self.prefix .. "idem:" .. key end
  local known_epoch, known_seq = f.epoch or "", f.pos
  if self.hw_epoch and self.hw_epoch == known_epoch and self.hw_seq > known_seq then known_seq = self.hw_seq end
  local ok, err = self:_eval("publish", keys, {
    self.cand, known_epoch, known_seq, self.max_len, head, tail, topic or "", topic and "1" or "0",
    math.floor(self.ttl * 1000), self.idem_ttl, self.channel,
  }, function(r, rerr)
    if rerr or type(r) ~= "table" then
      self.stats.publish_errors = self.stats.publish_errors + 1
      if done then done(nil, "redis: " .. tostring(rerr or "bad reply")) end
      return
    end
    local id, stored, seq, epoch = r[1], r[2], r[3], r[4]
    if stored == 1 then
      self.stats.published = self.stats.published + 1
      if epoch:sub(-#self.cand) == self.cand then self.cand = fresh_epoch() end
      if epoch ~= self.hw_epoch or seq > self.hw_seq then self.hw_epoch, self.hw_seq = epoch, seq end
    else
      self.stats.duplicates = self.stats.duplicates + 1
    end
    if done then done(id, nil, stored == 0) end
  end)
  if not ok then
    self.stats.publish_errors = self.stats.publish_errors + 1
    return nil, "redis: " .. tostring(err)
  end
  return true
end

function Backend:_deliver(bytes, topic, seq)
  self.stats.delivered = self.stats.delivered + 1
  local hub = self.hub
  if hub then
    local ok, err = pcall(hub.deliver, hub, bytes, topic, seq)
    if not ok then self:_warn("deliver failed: " .. tostring(err)) end
  elseif self.on_event then
    local ok, err = pcall(self.on_event, bytes, topic, seq)
    if not ok then self:_warn("on_event failed: " .. tostring(err)) end
  end
  if #self.follower.waiting > 0 then self:_progress() end
end

-- The follower lost continuity (an outage longer than the window, a new
-- epoch): every local subscriber gets the gap event (no id: its
-- Last-Event-ID stays). Rare, so one send per stream is fine.
function Backend:_local_gap(info)
  local hub = self.hub
  if hub and hub.streams then
    local data = core.gap_data and core.gap_data(info.last_event_id, info.oldest, info.latest)
      or require("sse.gap").data(info)
    local ev = { event = "sse-gap", data = data }
    local ok, list = pcall(hub.streams, hub)
    for _, s in ipairs(ok and list or {}) do pcall(s.send, s, ev) end
  end
  if self.on_gap then pcall(self.on_gap, info) end
end

-- The hub interface ---------------------------------------------------------

--- backend:bind(hub): the follower delivers to this hub (Hub.new calls it).
function Backend:bind(hub)
  self.hub = hub
end

--- The newest id this instance applied: where a fresh client joins.
function Backend:last_id()
  return self.follower:last_id()
end

--- backend:status() -> {healthy, connected, following, stale, lag, last_id, ...}
-- healthy is false while the follower is stale, catching up or disconnected.
function Backend:status()
  local f = self.follower
  local cmd, sub = self.links.cmd, self.links.sub
  local lag = f:lag()
  return {
    backend = "redis",
    url = ("redis://%s:%d/%d"):format(self.u.host, self.u.port, self.u.db),
    connected = cmd.ready == true,
    following = f.live and sub.ready == true,
    stale = f.stale or false,
    healthy = cmd.ready == true and sub.ready == true and f.live and not f.stale and not f.syncing,
    error = (not cmd.ready and cmd.error) or (not sub.ready and sub.error) or nil,
    last_id = f:last_id(),
    epoch = f.epoch,
    lag = lag,
    published = self.stats.published,
    publish_errors = self.stats.publish_errors,
    duplicates = self.stats.duplicates,
    delivered = self.stats.delivered,
    reconnects = self.stats.reconnects,
    catchups = f.stats.catchups,
    stale_events = f.stats.stale,
    gaps = f.stats.gaps,
  }
end

--- Closes both connections; replays still waiting are answered with an
-- error. Idempotent.
function Backend:close()
  if self.closed then return end
  self.closed = true
  self.beat:close()
  for _, link in pairs(self.links) do
    if link.timer then link.timer:close() end
    if link.conn then link.conn:close() end
    link.conn, link.ready = nil, false
  end
  self:_progress() -- the replays still waiting are answered now
end

require("sse.redis.links").install(Backend)
require("sse.redis.replay").install(Backend)

return Backend
