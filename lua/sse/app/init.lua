--- sse.app: the reference SSE hub — topics, replay by Last-Event-ID, an
-- HTTP publish endpoint, stats and a live dashboard — on an in-memory
-- replayer. sse.app.main is its command line (bin/sse-hub, examples/hub/server.lua).
--
--   GET  /                       the dashboard page
--   GET  /events?topic=a&topic=b  subscribe (Last-Event-ID or ?lastEventId= resumes;
--                                ?envelope=1: every event as `event: sse` + JSON envelope)
--   POST /publish                JSON or form: topic, event, data, retry -> {"id": ...}
--   GET  /stats[?top=N]          JSON counters and the N busiest topics
--   GET  /metrics                the same and more, in Prometheus text format
--   GET  /catalogue              the event catalogue (--catalogue), a JSON Schema
--   POST /admin/disconnect       closes every stream (clients resume)
local uv = require("luv")
local sse = require("sse")
local J = require("sse.app.json")
local auth = require("sse.app.auth")
local access = require("sse.app.access")
local rules = require("sse.app.rules")
local presence = require("sse.app.presence")
local metrics = require("sse.metrics")
local catalogue = require("sse.catalogue")

local M = {}

M.DEFAULTS = {
  host = "127.0.0.1",
  port = 8080,
  replay_events = 1000,
  replay_bytes = 4 * 1024 * 1024,
  replay_ttl = 3600,
  keepalive = 15,
  max_connections = 10000,
  outbox_limit = 256 * 1024,
  write_timeout = 60,       -- seconds unacknowledged data may wait (vanished peers)
  slow_policy = "close",
  max_topics_per_connection = 32, -- topics one connection may subscribe to (400)
  max_topics = 100000,      -- topics in the hub (503); about 250 B of C heap each
  max_connections_per_ip = 0, -- open streams from one address (429); 0: no limit
  max_topic_bytes = 128,
  max_event_types = 64,     -- distinct event types listed in /stats
  stats_top = 20,           -- topics listed by /stats without ?top=
  stats_top_max = 100,      -- most topics /stats lists (?top=N)
  default_topic = "default",
  -- passed to sse.http (nil: its defaults)
  head_timeout = nil, idle_timeout = nil, max_head_bytes = nil, max_body_bytes = nil,
}
local HTTP_OPTIONS = { "head_timeout", "idle_timeout", "max_head_bytes", "max_body_bytes" }
-- sse.app.access and sse.app.presence: who may subscribe and publish; presence
local ACCESS_OPTIONS = { authorize = true, jwt_secret = true, jwt_key = true, jwt_query = true,
                         jwt_leeway = true, presence = true }

local argerror = rules.option_error

local read_file = rules.read_file

-- An answer with a JSON body whose key order is fixed (J.obj).
local function json_answer(res, value)
  res:header("Content-Type", "application/json"):send(J.encode(value))
end

local function json_error(res, status, msg, headers)
  res:status(status)
  for i = 1, #(headers or {}), 2 do res:header(headers[i], headers[i + 1]) end
  json_answer(res, J.obj("error", msg))
end

-- With a token configured: is the request's bearer token it? Answers 401
-- when not.
local function authorized(self, req, res)
  local token = self.opts.token
  if not token then return true end
  if auth.check(req.headers.authorization, token) then return true end
  self:_refused(401)
  res:status(401):header("WWW-Authenticate", 'Bearer realm="sse"')
  json_answer(res, J.obj("error", "missing or wrong bearer token"))
  return false
end

M.dashboard_path = rules.dashboard_path
M.asset_path = rules.asset_path

-- Builds the app; a bad option raises rules.option_error.
local function build(opts)
  opts = opts or {}
  if type(opts) ~= "table" then argerror("table expected, got " .. type(opts)) end
  local o = {}
  for k, v in pairs(M.DEFAULTS) do o[k] = v end
  for k, v in pairs(opts) do
    local known = M.DEFAULTS[k] ~= nil or k == "token" or k == "cors" or k == "cors_credentials"
      or k == "dashboard" or k == "log" or k == "redis" or k == "redis_prefix" or ACCESS_OPTIONS[k]
      or k == "catalogue" or k == "compress"
    for _, h in ipairs(HTTP_OPTIONS) do known = known or k == h end
    if not known then
      argerror(("unknown option '%s'"):format(tostring(k)))
    end
    o[k] = v
  end
  if o.token ~= nil and (type(o.token) ~= "string" or not o.token:find(auth.TOKEN68)) then
    argerror("option 'token' must be a bearer token: letters, digits and -._~+/ (then '=' padding)")
  end
  if o.cors_credentials ~= nil then
    if type(o.cors_credentials) ~= "boolean" then argerror("option 'cors_credentials' must be a boolean") end
    if o.cors_credentials and not o.cors then argerror("option 'cors_credentials' needs 'cors' (the origins)") end
    for _, origin in ipairs(o.cors_credentials and o.cors or {}) do
      if origin == "*" then
        argerror("option 'cors_credentials' needs a list of origins, not '*'")
      end
    end
  end
  local cat = o.catalogue
  if type(cat) == "string" then
    local loaded, err = catalogue.load(cat)
    if not loaded then argerror("option 'catalogue': " .. err) end
    cat = loaded
  elseif cat ~= nil and not catalogue.is(cat) then
    argerror("option 'catalogue' must be an sse.catalogue or the path of a Lua file returning one")
  end
  local self = setmetatable({ opts = o, event_types = { message = true }, ntypes = 1, catalogue = cat,
                              started = uv.now(), start_time = os.time(),
                              refusals = { [401] = 0, [403] = 0 } }, { __index = M })
  if o.redis ~= nil then
    -- several hubs on one Redis share ids, replay and fan-out (sse.redis)
    local redis = require("sse.redis")
    local u, why = redis.parse_url(o.redis)
    if not u then argerror("option 'redis': field 'url': " .. why) end
    -- what else it refuses raises as its own: "bad argument #1 to 'backend' (...)"
    local b = redis.backend({ url = o.redis, prefix = o.redis_prefix,
      max_len = o.replay_events, ttl = o.replay_ttl, log = o.log })
    self.backend, self.replayer = b, b
  else
    self.replayer = sse.MemoryReplayer.new({ max_events = o.replay_events, max_bytes = o.replay_bytes,
                                             ttl = o.replay_ttl })
  end
  self.hub = sse.Hub.new({ replayer = self.replayer, outbox_limit = o.outbox_limit,
                           slow_policy = o.slow_policy, keepalive = o.keepalive })
  self.access = access.new(o, self.hub)
  if o.presence ~= nil and type(o.presence) ~= "boolean" then argerror("option 'presence' must be a boolean") end
  if o.presence then presence.enable(self.hub) end
  local hopts = { host = o.host, port = o.port, max_connections = o.max_connections,
                  cors = o.cors and { origins = o.cors, credentials = o.cors_credentials } or nil,
                  log = o.log }
  for _, h in ipairs(HTTP_OPTIONS) do hopts[h] = o[h] end
  self.http = sse.http.new(hopts)
  local page = o.dashboard
  if page == nil then page = M.dashboard_path() end
  self.page = page and read_file(page) or nil
  -- the browser module the dashboard uses (GET /sse-subscriber.js)
  local js = page ~= false and M.asset_path("sse-subscriber.js")
  self.subscriber_js = js and read_file(js) or nil
  self:_routes()
  return self
end

--- app.try_new(opts) -> app | nil, msg: app.new without raising for a bad
-- option of the hub's own ("option 'token' must be ..."); a bad value for
-- a part below it (sse.Hub, sse.http, the replayer, the Redis backend)
-- still raises as that part does.
function M.try_new(opts)
  local ok, app = pcall(build, opts)
  if ok then return app end
  local msg = rules.option_message(app)
  if msg then return nil, msg end
  error(app, 0)
end

--- app.new(opts) -> app; opts as M.DEFAULTS plus token (string), cors
-- (list of origins), dashboard (path of the page; default M.dashboard_path();
-- false: none), log (function(msg)), and who may subscribe and publish
-- (sse.app.access): authorize (a hook), or jwt_secret / jwt_key (a PEM file),
-- jwt_query, jwt_leeway. Raises "bad argument #1 to 'new' (...)".
function M.new(opts)
  local app, msg = M.try_new(opts)
  if not app then error("bad argument #1 to 'new' (" .. msg .. ")", 2) end
  return app
end

function M:_routes()
  local http, hub = self.http, self.hub

  http:get("/", function(_, res)
    if not self.page then
      return res:status(404):header("Content-Type", "text/plain; charset=utf-8"):send("no dashboard\n")
    end
    res:header("Content-Type", "text/html; charset=utf-8"):header("Cache-Control", "no-cache")
    res:send(self.page)
  end)

  http:get("/sse-subscriber.js", function(_, res)
    if not self.subscriber_js then
      return res:status(404):header("Content-Type", "text/plain; charset=utf-8"):send("no sse-subscriber.js\n")
    end
    res:header("Content-Type", "text/javascript; charset=utf-8"):header("Cache-Control", "no-cache")
    res:send(self.subscriber_js)
  end)

  http:get("/events", function(req, res)
    local acc = self.access
    local topics, status, msg = acc:topics(req.query.topic, self.opts.default_topic, "subscribe")
    if not topics then return json_error(res, status, msg) end
    local envelope, eerr = rules.request_envelope(req.query)
    if envelope == nil then return json_error(res, 400, eerr) end
    local allowed, info, why, headers = acc:check(req, "subscribe", topics) -- may wait
    if not allowed then return self:_refuse(res, info, why, headers) end
    local ok, st, lmsg = acc:admit(req, allowed)
    if not ok then return json_error(res, st, lmsg) end
    local stream = res:sse({ outbox_limit = self.opts.outbox_limit, slow_policy = self.opts.slow_policy,
                             write_timeout = self.opts.write_timeout, compress = self.opts.compress })
    if not stream then return acc:release(req) end -- the client left while it was being authorized
    acc:adopt(stream, req, info)
    hub:attach(stream, { topics = allowed, last_event_id = req.last_event_id, envelope = envelope })
  end)

  http:post("/publish", function(req, res)
    local acc = self.access
    -- without an authorization hook the static token is checked first, as before
    if not acc.authorize and not authorized(self, req, res) then return end
    local f, value = rules.publish_fields(req) -- value: a JSON body's data, or the error
    if not f then return json_error(res, 400, value) end
    if self.catalogue then
      local ok, terr = rules.typed(self.catalogue, f, value)
      if not ok then return json_error(res, 400, terr) end
    end
    local topic = f.topic or self.opts.default_topic
    local tlist, tstatus, terr = acc:topics(topic, self.opts.default_topic, "publish")
    if not tlist then return json_error(res, tstatus, terr) end
    -- with one, the static token (when set) still lets its holder publish
    if acc.authorize and not (self.opts.token and auth.check(req.headers.authorization, self.opts.token)) then
      local allowed, status, why, headers = acc:check(req, "publish", { topic }) -- may wait
      if not allowed then return self:_refuse(res, status, why, headers) end
    end
    f.topic = nil
    -- the publisher's mistake is a 400 naming the field, not a raise
    local valid, why = sse.event_valid(f)
    if not valid then return json_error(res, 400, why) end
    if self.backend then return self:_publish_redis(res, topic, f) end
    local n, id = hub:broadcast_to(topic, f)
    if not n then return json_error(res, 503, id) end
    self:_count_type(f.event)
    json_answer(res, J.obj("id", id, "topic", topic, "subscribers", n))
  end)

  http:get("/stats", function(req, res)
    if not authorized(self, req, res) then return end
    local top, err = rules.stats_top(self.opts, req.query)
    if not top then return json_error(res, 400, err) end
    res:header("Cache-Control", "no-cache")
    json_answer(res, self:_stats_json(top))
  end)

  http:get("/subscriptions", function(req, res)
    if not authorized(self, req, res) then return end
    local limit, err = presence.limit(req.query)
    if not limit then return json_error(res, 400, err) end
    local topic = req.query.topic
    if type(topic) == "table" then return json_error(res, 400, "query 'topic' given more than once") end
    res:header("Cache-Control", "no-cache")
    json_answer(res, presence.listing(hub, self.access, topic, limit))
  end)

  -- the event catalogue (a JSON Schema), public like the stream it describes
  http:get("/catalogue", function(_, res)
    if not self.catalogue then return json_error(res, 404, "no catalogue (start the hub with --catalogue FILE)") end
    res:header("Content-Type", "application/schema+json"):header("Cache-Control", "no-cache")
    res:send(self.catalogue:to_json())
  end)

  http:get("/metrics", function(req, res)
    if not authorized(self, req, res) then return end
    res:header("Content-Type", metrics.CONTENT_TYPE):header("Cache-Control", "no-cache")
    res:send(self:metrics())
  end)

  http:post("/admin/disconnect", function(req, res)
    if not authorized(self, req, res) then return end
    json_answer(res, J.obj("closed", self:disconnect_all()))
  end)
end

-- An authorization refusal (401: no or a bad token, 403: a topic not
-- granted) is counted for /metrics; other statuses are answered as they are.
function M:_refuse(res, status, why, headers)
  self:_refused(status)
  return json_error(res, status, why, headers)
end

function M:_refused(status)
  if self.refusals[status] then self.refusals[status] = self.refusals[status] + 1 end
end

--- The /metrics text: sse.metrics' families of the hub, then the HTTP
-- server's (answers by status, connections), the refusals and the start time.
function M:metrics()
  local statuses, list = self.http:status_counts(), {}
  for status in pairs(statuses) do list[#list + 1] = status end
  table.sort(list)
  local answers = {}
  for i, status in ipairs(list) do answers[i] = { { "status", status }, statuses[status] } end
  local refused = {}
  for _, status in ipairs({ 401, 403 }) do refused[#refused + 1] = { { "status", status }, self.refusals[status] } end
  return metrics.render(self.hub, {
    { name = "sse_http_connections", type = "gauge", value = self.http:connection_count(),
      help = "Open HTTP connections, event streams included." },
    { name = "sse_http_responses_total", type = "counter", value = answers,
      help = "HTTP answers written, by status (event streams count as 200)." },
    { name = "sse_auth_refusals_total", type = "counter", value = refused,
      help = "Requests refused for authorization: 401 no or a bad token, 403 a topic not granted." },
    { name = "sse_start_time_seconds", type = "gauge", value = self.start_time,
      help = "When the hub started, in seconds since the Unix epoch." },
    { name = "sse_info", type = "gauge", value = { { { "version", sse.version }, 1 } },
      help = "The sse library's version." },
  })
end

function M:_count_type(event)
  local etype = event or "message"
  if not self.event_types[etype] and self.ntypes < self.opts.max_event_types then
    self.event_types[etype] = true
    self.ntypes = self.ntypes + 1
  end
end

-- POST /publish on Redis: answered once Redis stored the event (the id it
-- got; "subscribers" counts this instance's), 503 when it did not. f was
-- checked by sse.event_valid.
function M:_publish_redis(res, topic, f)
  local queued, err = self.backend:publish(f, topic, function(id, perr)
    if not id then return json_error(res, 503, perr) end
    self.hub.stats.published = self.hub.stats.published + 1
    self:_count_type(f.event)
    json_answer(res, J.obj("id", id, "topic", topic, "subscribers", self.hub:topic_count(topic)))
  end)
  if not queued then return json_error(res, 503, err) end
  res:later()
end

--- Counters, as /stats shows them: a plain table (top: how many of the
-- busiest topics to list, default opts.stats_top). Bounded whatever the
-- number of topics: their count, and the busiest ones found in C.
function M:stats(top)
  local hub, r = self.hub, self.replayer
  local types = {}
  for t in pairs(self.event_types) do types[#types + 1] = t end
  table.sort(types)
  local c = hub:counters()
  return {
    connections = hub:connection_count(),
    topics = hub:topic_total(),
    top_topics = hub:top_topics(top or self.opts.stats_top),
    published = c.published,
    deliveries = c.deliveries,
    bytes_sent = c.bytes_sent,
    slow_closed = c.closed_slow,
    event_types = types,
    replay = {
      first_id = not self.backend and r:first_id() or nil,
      last_id = r:last_id(),
      length = not self.backend and r:len() or nil,
      bytes = not self.backend and r:bytes() or nil,
      max_events = self.opts.replay_events,
      ttl = self.opts.replay_ttl,
    },
    backend = self.backend and self.backend:status() or nil,
    uptime = (uv.now() - self.started) / 1000,
  }
end

-- The /stats answer, keys in the README's order ("backend" only on Redis).
function M:_stats_json(top)
  return rules.stats_json(self:stats(top))
end

--- Closes every stream gracefully; clients reconnect and resume.
function M:disconnect_all()
  local list = {}
  for _, s in ipairs(self.hub:streams()) do list[#list + 1] = s end
  for _, s in ipairs(list) do s:close() end
  return #list
end

--- Binds; returns the port, or nil, err.
function M:listen()
  local port, err = self.http:listen()
  if not port then return nil, err end
  self.port = port
  return port
end

--- Stops accepting, closes every stream and the hub.
function M:close()
  if self.closed then return end
  self.closed = true
  self.http:close()
  self.hub:close()
  if self.backend then self.backend:close() end
  self.access:close()
end

return M
