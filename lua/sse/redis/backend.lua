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
local core = require("sse.core")
local scripts = require("sse.redis.scripts")
local Follower = require("sse.redis.follower")

local unpack = table.unpack or unpack

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

-- Connections -----------------------------------------------------------

function Backend:_dial(link)
  if self.closed then return end
  local u = self.u
  link.conn = self.env.connect({
    host = u.host, port = u.port, db = u.db, username = u.username, password = u.password,
    timeout = self.timeout, name = self.name .. "-" .. link.name,
    on_close = function(err) self:_lost(link, err) end,
  }, function(conn)
    if not conn then return end -- on_close follows with the reason
    link.attempts = 0
    if link.name == "cmd" then self:_cmd_ready(conn) else self:_sub_ready(conn) end
  end)
end

function Backend:_lost(link, err)
  if self.closed then return end
  link.conn, link.ready = nil, false
  link.error = err
  if link.name == "sub" then self.follower:down() end
  self.stats.reconnects = self.stats.reconnects + 1
  -- capped exponential backoff with jitter (half to all of the delay), so a
  -- fleet of instances does not dial a returning Redis at the same instant
  local d = math.min(self.backoff_max, self.backoff_min * 2 ^ link.attempts)
  d = d * (0.5 + math.random() * 0.5)
  link.attempts = math.min(link.attempts + 1, 30)
  link.timer = link.timer or self.env.timer(function() self:_dial(link) end)
  link.timer:start(d * 1000)
end

function Backend:_cmd_ready(conn)
  local link = self.links.cmd
  local pending = 3
  local function loaded(name)
    return function(sha, err)
      if not err then self.sha[name] = sha end
      pending = pending - 1
      if pending == 0 and link.conn == conn then
        link.ready, link.error = true, nil
        -- the subscriber may have been waiting for us to catch up
        if self:_subscribed() then self.follower:sync() end
      end
    end
  end
  conn:call(loaded("publish"), "SCRIPT", "LOAD", scripts.publish)
  conn:call(loaded("read"), "SCRIPT", "LOAD", scripts.read)
  conn:call(loaded("init"), "SCRIPT", "LOAD", scripts.init)
end

function Backend:_sub_ready(conn)
  local link = self.links.sub
  conn:subscribe(self.channel, function(ch, payload) self.follower:on_message(ch, payload) end,
    function(_, err)
      if err or link.conn ~= conn then return end
      link.ready = true
      self.follower:sync()
    end)
end

function Backend:_ready()
  return self.links.cmd.ready == true
end

function Backend:_subscribed()
  return self.links.sub.ready == true
end

-- The liveness check found the channel silent: drop it and dial again.
function Backend:_resubscribe()
  local link = self.links.sub
  local conn = link.conn
  if conn then
    conn:close()
    self:_lost(link, "stale")
  end
end

function Backend:_ping(cb)
  local c = self.links.sub.conn
  if c then c:call(cb, "PING") end
end

function Backend:_call(cb, ...)
  local c = self.links.cmd.conn
  if not (c and self.links.cmd.ready) then return cb(nil, "not connected") end
  local ok, err = c:call(cb, ...)
  if not ok then cb(nil, err) end
end

-- EVALSHA the named script (EVAL when Redis forgot it: a restart, SCRIPT FLUSH).
function Backend:_eval(name, keys, argv, cb)
  local c = self.links.cmd.conn
  if not (c and self.links.cmd.ready) then return nil, "not connected" end
  local n = #keys
  local args = { "EVALSHA", self.sha[name] or "", n }
  for i = 1, n do args[3 + i] = keys[i] end
  for i = 1, #argv do args[3 + n + i] = argv[i] end
  local cmd = core.resp_command(unpack(args))
  local function retry(r, err)
    if err and err:match("^NOSCRIPT") then
      args[1], args[2] = "EVAL", scripts[name]
      local ok, e2 = self:_send_raw(core.resp_command(unpack(args)), cb)
      if not ok then cb(nil, e2) end
      return
    end
    cb(r, err)
  end
  return c:send(cmd, retry)
end

function Backend:_send_raw(bytes, cb)
  local c = self.links.cmd.conn
  if not (c and self.links.cmd.ready) then return nil, "not connected" end
  return c:send(bytes, cb)
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

-- Reading and replay -----------------------------------------------------

-- Reads one page after (epoch, seq); bound = {epoch, seq} or nil; topics a
-- list or nil (every topic). cb(r) with r = {epoch, head, oldest, gap,
-- upto, more, seqs, frames, topics} (topics[i]: frames[i]'s topic, nil for
-- none) or cb(nil, err).
function Backend:_read(epoch, seq, bound, topics, cb)
  local argv = { epoch or "", seq or 0, self.max_len, math.floor(self.ttl * 1000),
                 bound and bound[1] or "", bound and bound[2] or 0, self.page }
  if topics then
    argv[8] = #topics
    for i = 1, #topics do argv[8 + i] = topics[i] end
  else
    argv[8] = "*"
  end
  local ok, err = self:_eval("read", { self.keys.meta, self.keys.log }, argv, function(r, rerr)
    if rerr or type(r) ~= "table" then return cb(nil, rerr or "bad reply") end
    local out = { epoch = r[1] or nil, head = r[2], oldest = r[3], gap = r[4], upto = r[5],
                  more = r[6] == 1, seqs = {}, frames = {}, topics = {} }
    for i = 7, #r, 3 do
      local n = #out.seqs + 1
      out.seqs[n], out.frames[n], out.topics[n] = r[i], r[i + 1], r[i + 2] or nil
    end
    cb(out)
  end)
  if not ok then cb(nil, err) end
end

-- "<epoch>-<base36 seq>" -> epoch, seq; "" , 0 when malformed.
local function parse_id(id)
  local e, s = id:match("^([%w_]+)%-([0-9a-z]+)$")
  if not e or #e > 32 or #s > 11 or (#s > 1 and s:sub(1, 1) == "0") then return "", 0 end
  return e, tonumber(s, 36)
end
Backend.parse_id = parse_id

--- backend:replay_async(hub, stream, last_id, topics): reads what stream
-- missed after last_id for topics and answers with hub:resume (CORE.md).
-- The read is bounded by the follower's position, and the answer waits
-- until the follower has reached the reader's own position, so the live
-- feed takes over exactly where the replay ends.
function Backend:replay_async(hub, stream, last_id, topics)
  local f = self.follower
  if not f.epoch and not self.closed then
    -- just started: the read is bounded by where the follower starts
    return self:_when(function() return f.epoch ~= nil end, function()
      if f.epoch then return self:replay_async(hub, stream, last_id, topics) end
      self:_defer(function() hub:resume(stream, nil, "redis: not connected") end)
    end)
  end
  local epoch, seq = parse_id(last_id)
  local bound = f.epoch and { f.epoch, f.pos } or nil
  local frames, tops, gap, first_gap = {}, {}, nil, nil
  local function fail(err)
    -- answered later, never from inside replay_async
    self:_defer(function() hub:resume(stream, nil, "redis: " .. tostring(err)) end)
  end
  local function page(e, s)
    self:_read(e, s, bound, topics or {}, function(r, err)
      if err then return fail(err) end
      if not r.epoch then
        -- an empty Redis: nothing to send; an id is then a gap
        return hub:resume(stream, {}, 0, { oldest = nil, latest = nil })
      end
      if r.gap ~= "" and not first_gap then
        first_gap = r.gap
        gap = { oldest = r.oldest > 0 and Follower.id_of(r.epoch, r.oldest) or nil,
                latest = Follower.id_of(r.epoch, r.head) }
      end
      for i = 1, #r.frames do
        frames[#frames + 1] = r.frames[i]
        tops[#frames] = r.topics[i] or false -- envelope streams show it
      end
      if r.more then return page(r.epoch, r.upto) end
      self:_when_applied(r.epoch, r.upto, function()
        hub:resume(stream, frames, r.upto, gap, tops)
      end)
    end)
  end
  page(epoch, seq)
end

-- Runs fn at the next loop turn.
function Backend:_defer(fn)
  local t
  t = self.env.timer(function()
    t:close()
    fn()
  end)
  t:start(0)
end

-- Runs fn once ready() holds (checked as the follower applies events and at
-- each heartbeat), or after `timeout`: a follower that lags that long is
-- not waited for.
function Backend:_when(ready, fn)
  if ready() then return fn() end
  local w = self.follower.waiting
  w[#w + 1] = { ready = ready, fn = fn, at = self.env.now() }
end

-- fn once the follower has applied (epoch, seq).
function Backend:_when_applied(epoch, seq, fn)
  local f = self.follower
  return self:_when(function() return f.epoch ~= epoch or f.pos >= seq end, fn)
end

-- Answers the waits that are ready or timed out.
function Backend:_progress()
  local f = self.follower
  local list = f.waiting
  if #list == 0 then return end
  f.waiting = {} -- an answer may add waits (or get here again) meanwhile
  local now = self.env.now()
  for _, w in ipairs(list) do
    if self.closed or w.ready() or now - w.at > self.timeout * 1000 then
      local ok, err = pcall(w.fn)
      if not ok then self:_warn("replay answer failed: " .. tostring(err)) end
    else
      f.waiting[#f.waiting + 1] = w
    end
  end
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

return Backend
