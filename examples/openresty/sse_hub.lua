--- sse_hub: the demo hub (sse.app's endpoints and behaviour) as OpenResty
-- handlers, for examples/openresty/nginx.conf (`make run-openresty`).
--
--   GET  /                        the dashboard page (and GET /sse-subscriber.js, the module it loads)
--   GET  /events?topic=a&topic=b  subscribe (Last-Event-ID or ?lastEventId= resumes)
--   POST /publish                 JSON or form: topic, event, data, retry -> {"id": ...}
--   GET  /stats[?top=N]           JSON counters of every worker, the N busiest topics
--   POST /admin/disconnect        closes every stream of every worker (clients resume)
--
-- One hub per worker over the shared-dict log (sse.ngx.hub{dict = ...}): an
-- event published in any worker reaches the subscribers of all of them, with
-- one id. Each worker writes its counters into the dict every second; /stats
-- adds them up. nginx.conf calls configure() in init_by_lua (options, read
-- in the master, inherited by the workers) and init_worker() in
-- init_worker_by_lua (the hub and its timers, one per worker).
local sse_ngx = require("sse.ngx")
local rules = require("sse.app.rules")
local access = require("sse.app.access")
local J = require("sse.app.json")
local auth = require("sse.app.auth")
local cjson = require("cjson.safe")

local ngx = ngx -- luacheck: ignore

local M = {}

-- The defaults of `make run` (sse.app.DEFAULTS) that apply here.
M.DEFAULTS = {
  dict = "sse_log",
  replay_events = 1000,
  replay_ttl = 3600,
  keepalive = 15,
  outbox_limit = 256 * 1024,
  slow_policy = "close",
  max_topics_per_connection = 32,
  max_topic_bytes = 128,
  max_event_types = 64,
  stats_top = 20,
  stats_top_max = 100,
  default_topic = "default",
  poll = 0.005,          -- seconds between two looks of a worker at the log
  retry = nil,           -- ms sent to each client as "retry:" (nil: the client's default)
  token = nil,           -- bearer token for /publish, /stats, /admin (nil: open)
  redis = nil,           -- redis://host[:port][/db]: ids, replay and fan-out shared with
                         -- other nginx (and luv hubs) through Redis instead of the dict
  redis_prefix = "sse:",
}

local opts = {}
for k, v in pairs(M.DEFAULTS) do opts[k] = v end
M.opts = opts

--- configure(o): options (M.DEFAULTS' names), from init_by_lua.
function M.configure(o)
  for k, v in pairs(o or {}) do
    if M.DEFAULTS[k] == nil and k ~= "token" and k ~= "retry" and k ~= "redis" then
      error("sse_hub: unknown option '" .. tostring(k) .. "'", 2)
    end
    opts[k] = v
  end
  if opts.token == "" then opts.token = nil end
  if opts.redis == "" then opts.redis = nil end
  if opts.token and not opts.token:find(auth.TOKEN68) then
    error("sse_hub: the token must be a bearer token: letters, digits and -._~+/ (then '=' padding)", 2)
  end
end

local hub, log, dict, backend
local assets = {} -- page (dashboard.html), js (sse-subscriber.js)
local event_types, ntypes = { message = true }, 1
local closed_bytes = 0
local disconnect_gen -- the last /admin/disconnect generation this worker obeyed

local function count_bytes(_, stream)
  closed_bytes = closed_bytes + stream:stats().bytes_sent
end

-- This worker's counters, as the dict keeps them for /stats.
local function snapshot()
  local sent = closed_bytes
  for _, s in ipairs(hub:streams()) do sent = sent + s:stats().bytes_sent end
  local types = {}
  for t in pairs(event_types) do types[#types + 1] = t end
  local topics = {}
  for _, e in ipairs(hub:top_topics(1000)) do topics[e.topic] = e.subscribers end
  return {
    pid = ngx.worker.pid(),
    connections = hub:connection_count(),
    topic_total = hub:topic_total(),
    topics = topics,
    published = hub.stats.published,
    deliveries = hub.stats.deliveries,
    bytes_sent = sent,
    slow_closed = hub.stats.slow_closed,
    event_types = types,
  }
end

local function worker_key(id)
  return "w:" .. id
end

local function save_snapshot()
  dict:safe_set(worker_key(ngx.worker.id()), cjson.encode(snapshot()), 3)
end

-- Every 0.2 s (the log's stats timer): an /admin/disconnect of another
-- worker obeyed; once a second, this worker's counters into the dict.
local saved_at = 0
local function on_stats()
  local gen = dict:get("disconnect") or 0
  if disconnect_gen == nil then disconnect_gen = gen end
  if gen ~= disconnect_gen then
    disconnect_gen = gen
    local n = hub:disconnect_all()
    dict:safe_set("dc:" .. gen .. ":" .. ngx.worker.id(), n, 60)
  end
  local now = ngx.now()
  if now - saved_at >= 1 then
    saved_at = now
    save_snapshot()
  end
end

--- init_worker(): this worker's hub (from init_worker_by_lua).
function M.init_worker()
  if hub then return hub end
  if opts.redis then
    -- several nginx on one Redis; the dict still carries the counters
    backend = require("sse.redis").backend{ url = opts.redis, prefix = opts.redis_prefix,
                                            max_len = opts.replay_events, ttl = opts.replay_ttl }
    hub = sse_ngx.hub{ backend = backend, keepalive = opts.keepalive, outbox_limit = opts.outbox_limit,
                       slow_policy = opts.slow_policy }
    dict = assert(ngx.shared[opts.dict], "no lua_shared_dict " .. opts.dict)
    ngx.timer.every(0.2, function(premature) if not premature then on_stats() end end)
  else
    hub = sse_ngx.hub{ dict = opts.dict, max_events = opts.replay_events, ttl = opts.replay_ttl,
                       poll = opts.poll, keepalive = opts.keepalive, outbox_limit = opts.outbox_limit,
                       slow_policy = opts.slow_policy }
    log = hub:replayer()
    dict = log.dict
    log.opts.stats_every = math.min(log.opts.stats_every, 0.2)
    log.on_stats = on_stats
  end
  if not dict:get("started") then dict:safe_add("started", ngx.now()) end
  for _, a in ipairs({ { "dashboard.html", "page" }, { "sse-subscriber.js", "js" } }) do
    local path = rules.asset_path(a[1])
    local f = path and io.open(path, "rb")
    if f then
      assets[a[2]] = f:read("*a")
      f:close()
    end
  end
  return hub
end

local function answer(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(J.encode(value))
end

local function json_error(status, msg)
  return answer(status, J.obj("error", msg))
end

-- One method per location, as sse.http's router answers: 405 with Allow.
local function method_is(m)
  local got = ngx.req.get_method()
  if got == m or (m == "GET" and got == "HEAD") then return true end
  ngx.status = 405
  ngx.header["Allow"] = m == "GET" and "GET, HEAD" or m
  ngx.header["Content-Type"] = "text/plain; charset=utf-8"
  ngx.print("method not allowed\n")
  return false
end

local function authorized()
  local token = opts.token
  if not token then return true end
  if auth.check(ngx.var.http_authorization, token) then return true end
  ngx.header["WWW-Authenticate"] = 'Bearer realm="sse"'
  answer(401, J.obj("error", "missing or wrong bearer token"))
  return false
end

-- The query as rules.request_topics reads it: repeated names give a list.
local function query()
  local args = ngx.req.get_uri_args(64)
  for k, v in pairs(args) do
    if v == true then args[k] = "" end -- "?topic" without a value
  end
  return args
end

-- A file of the demo hub (rules.asset_path), or 404.
local function serve(which, ctype, missing)
  if not method_is("GET") then return end
  if not assets[which] then
    ngx.status = 404
    ngx.header["Content-Type"] = "text/plain; charset=utf-8"
    return ngx.print(missing)
  end
  ngx.header["Content-Type"] = ctype
  ngx.header["Cache-Control"] = "no-cache"
  ngx.print(assets[which])
end

--- GET /
function M.dashboard()
  serve("page", "text/html; charset=utf-8", "no dashboard\n")
end

--- GET /sse-subscriber.js (the browser module the dashboard loads)
function M.subscriber_js()
  serve("js", "text/javascript; charset=utf-8", "no sse-subscriber.js\n")
end

--- GET /events?topic=...
function M.events()
  if not method_is("GET") then return end
  local topics, status, err = access.topics(opts, query().topic, opts.default_topic, "subscribe")
  if not topics then return json_error(status, err) end
  local envelope, eerr = rules.request_envelope(query())
  if envelope == nil then return json_error(400, eerr) end
  local stream = sse_ngx.stream{ outbox_limit = opts.outbox_limit, slow_policy = opts.slow_policy,
                                 retry = opts.retry }
  stream:on_close(count_bytes)
  hub:attach(stream, { topics = topics, envelope = envelope })
end

-- The request body (kept in memory up to client_body_buffer_size, in a
-- file beyond it).
local function body()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data then return data end
  local file = ngx.req.get_body_file()
  if not file then return "" end
  local f = io.open(file, "rb")
  if not f then return "" end
  data = f:read("*a")
  f:close()
  return data
end

-- The other workers' stats, decoded at most once a second.
local others, others_at = {}, -1
local function other_workers()
  local now = ngx.now()
  if now - others_at < 1 then return others end
  others, others_at = {}, now
  local me = ngx.worker.id()
  for id = 0, ngx.worker.count() - 1 do
    if id ~= me then
      local s = cjson.decode(dict:get(worker_key(id)) or "null")
      if type(s) == "table" and type(s.topics) == "table" then others[#others + 1] = s end
    end
  end
  return others
end

-- Subscribers of topic: this worker's, plus the others' as of their last
-- stats (at most two seconds old).
local function subscribers(topic, here)
  local n = here
  for _, s in ipairs(other_workers()) do n = n + (tonumber(s.topics[topic]) or 0) end
  return n
end

local function count_type(event)
  local etype = event or "message"
  if not event_types[etype] and ntypes < opts.max_event_types then
    event_types[etype] = true
    ntypes = ntypes + 1
  end
end

-- POST /publish on Redis: answered once Redis stored the event (503 when it
-- did not); the answer comes from the backend's connection, this handler
-- waits for it on a semaphore.
local function publish_redis(topic, f)
  local sema = require("ngx.semaphore").new()
  local res
  local ok, queued, err = pcall(backend.publish, backend, f, topic, function(id, perr)
    res = { id = id, err = perr }
    sema:post(1)
  end)
  if not ok then return json_error(400, tostring(queued):match("%((.*)%)$") or tostring(queued)) end
  if not queued then return json_error(503, err) end
  sema:wait(backend.timeout + 1)
  if not (res and res.id) then return json_error(503, res and res.err or "redis: no answer") end
  hub.stats.published = hub.stats.published + 1
  count_type(f.event)
  answer(200, J.obj("id", res.id, "topic", topic, "subscribers", subscribers(topic, hub:topic_count(topic))))
end

--- POST /publish
function M.publish()
  if not method_is("POST") then return end
  if not authorized() then return end
  local f, err = rules.publish_fields({ headers = { ["content-type"] = ngx.var.content_type }, body = body() })
  if not f then return json_error(400, err) end
  local topic = f.topic or opts.default_topic
  local tlist, tstatus, terr = access.topics(opts, topic, opts.default_topic, "publish")
  if not tlist then return json_error(tstatus, terr) end
  f.topic = nil
  if backend then return publish_redis(topic, f) end
  local ok, n, id = pcall(hub.broadcast_to, hub, topic, f)
  if not ok then return json_error(400, tostring(n):match("%((.*)%)$") or tostring(n)) end
  if not n then return json_error(503, id) end
  local etype = f.event or "message"
  if not event_types[etype] and ntypes < opts.max_event_types then
    event_types[etype] = true
    ntypes = ntypes + 1
  end
  answer(200, J.obj("id", id, "topic", topic, "subscribers", subscribers(topic, n)))
end

--- Every worker's counters added up, in sse.app's shape (plus "workers").
function M.stats(top)
  save_snapshot()
  local total = { connections = 0, published = 0, deliveries = 0, bytes_sent = 0, slow_closed = 0 }
  local topics, types, workers = {}, {}, {}
  local topic_total = 0
  for id = 0, ngx.worker.count() - 1 do
    local s = cjson.decode(dict:get(worker_key(id)) or "null")
    if type(s) == "table" then
      for k in pairs(total) do total[k] = total[k] + (tonumber(s[k]) or 0) end
      for t, c in pairs(s.topics or {}) do topics[t] = (topics[t] or 0) + c end
      for _, t in ipairs(s.event_types or {}) do types[t] = true end
      topic_total = math.max(topic_total, tonumber(s.topic_total) or 0)
      workers[#workers + 1] = { pid = s.pid, connections = s.connections }
    end
  end
  local list = {}
  for t, c in pairs(topics) do list[#list + 1] = { topic = t, subscribers = c } end
  topic_total = math.max(topic_total, #list)
  table.sort(list, function(a, b)
    if a.subscribers ~= b.subscribers then return a.subscribers > b.subscribers end
    return a.topic < b.topic
  end)
  for i = top + 1, #list do list[i] = nil end
  local tl = {}
  for t in pairs(types) do tl[#tl + 1] = t end
  table.sort(tl)
  total.topics = topic_total
  total.top_topics = list
  total.event_types = tl
  if backend then
    total.replay = { last_id = backend:last_id(), max_events = opts.replay_events, ttl = opts.replay_ttl }
    total.backend = backend:status() -- this worker's view
  else
    local info = log:info()
    total.replay = {
      first_id = info.first_id, last_id = info.last_id, length = info.length,
      bytes = info.capacity and info.free_space and info.capacity - info.free_space or nil,
      max_events = info.max_events, ttl = info.ttl,
    }
  end
  total.uptime = ngx.now() - (dict:get("started") or ngx.now())
  total.workers = workers
  return total
end

--- GET /stats[?top=N]
function M.stats_handler()
  if not method_is("GET") then return end
  if not authorized() then return end
  local top, err = rules.stats_top(opts, query())
  if not top then return json_error(400, err) end
  ngx.header["Cache-Control"] = "no-cache"
  local s = M.stats(top)
  local wl = {}
  for i, w in ipairs(s.workers) do wl[i] = J.obj("pid", w.pid, "connections", w.connections) end
  local obj = rules.stats_json(s) -- sse.app's keys, then the workers
  obj[obj.n + 1], obj[obj.n + 2], obj.n = "workers", J.arr(wl), obj.n + 2
  answer(200, obj)
end

--- Closes every stream of every worker; returns how many (the other
-- workers answer within their next stats tick, 0.2 s).
function M.disconnect_all()
  local gen = dict:incr("disconnect", 1, 0)
  disconnect_gen = gen
  local n = hub:disconnect_all()
  local me, count = ngx.worker.id(), ngx.worker.count()
  local deadline = ngx.now() + 1
  local seen = {}
  while true do
    local all = true
    for id = 0, count - 1 do
      if id ~= me and not seen[id] then
        local c = dict:get("dc:" .. gen .. ":" .. id)
        if c then
          seen[id] = true
          n = n + c
        elseif dict:get(worker_key(id)) then
          all = false -- a live worker that has not answered yet
        end
      end
    end
    if all or ngx.now() >= deadline then break end
    ngx.sleep(0.02)
  end
  return n
end

--- POST /admin/disconnect
function M.disconnect()
  if not method_is("POST") then return end
  if not authorized() then return end
  answer(200, J.obj("closed", M.disconnect_all()))
end

return M
