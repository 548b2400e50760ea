--- sse_hub: the demo hub (sse.app's endpoints and behaviour) as OpenResty
-- handlers, for examples/openresty/nginx.conf (`make run-openresty`).
--
--   GET  /                        the dashboard page (and GET /sse-subscriber.js, the module it loads)
--   GET  /events?topic=a&topic=b  subscribe (Last-Event-ID or ?lastEventId= resumes;
--                                 ?envelope=1: every event as `event: sse` + JSON envelope)
--   POST /publish                 JSON or form: topic, event, data, retry -> {"id": ...}
--   GET  /stats[?top=N]           JSON counters of every worker, the N busiest topics
--   GET  /subscriptions[?topic=]  the busiest topics, or a topic's streams (every worker's)
--   GET  /metrics                 every worker's counters, Prometheus text format
--   GET  /catalogue               the event catalogue (--catalogue), a JSON Schema
--   POST /admin/disconnect        closes every stream of every worker (clients resume)
--
-- One hub per worker over the shared-dict log (sse.ngx.hub{dict = ...}): an
-- event published in any worker reaches the subscribers of all of them, with
-- one id. Who may subscribe and publish, and the limits, are sse.app.access,
-- as in the luv hub: JWTs (--jwt-secret / --jwt-key), a stream closed when
-- its token expires (an nginx timer looks every 0.25 s), 401/403, 400 / 503 /
-- 429 past a limit (streams per address counted across workers,
-- sse.ngx.counter). The workers ask each other through the state dict
-- (sse_hub.workers). nginx.conf calls configure() in init_by_lua (options,
-- read and checked in the master, inherited by the workers), init_worker()
-- in init_worker_by_lua and log() in log_by_lua.
local sse_ngx = require("sse.ngx")
local rules = require("sse.app.rules")
local access = require("sse.app.access")
local presence = require("sse.app.presence")
local J = require("sse.app.json")
local auth = require("sse.app.auth")
local config = require("sse_hub.config")
local W = require("sse_hub.workers")
local views = require("sse_hub.views")

local ngx = ngx -- luacheck: ignore

local M = {}

M.DEFAULTS = config.DEFAULTS
M.opts = config.opts
local opts = config.opts

--- configure(o): options (sse_hub.config), from init_by_lua.
M.configure = config.configure

--- configure_args(text): the luv hub's flags, one a line (SSE_HUB_ARGS).
function M.configure_args(text)
  return config.configure(config.args(text))
end

-- This worker's state (made by init_worker).
local S = { event_types = { message = true }, ntypes = 1, closed_bytes = 0,
            refusals = { [401] = 0, [403] = 0 }, statuses = {},
            assets = {} } -- page (dashboard.html), js (sse-subscriber.js)
M.state = S

local function count_bytes(_, stream)
  S.closed_bytes = S.closed_bytes + stream:stats().bytes_sent
end

--- init_worker(): this worker's hub, access rules and mailbox.
function M.init_worker()
  if S.hub then return S.hub end
  local hub
  if opts.redis then
    -- several nginx on one Redis
    S.backend = require("sse.redis").backend{ url = opts.redis, prefix = opts.redis_prefix,
                                              max_len = opts.replay_events, ttl = opts.replay_ttl }
    hub = sse_ngx.hub{ backend = S.backend, keepalive = opts.keepalive, outbox_limit = opts.outbox_limit,
                       slow_policy = opts.slow_policy }
  else
    hub = sse_ngx.hub{ dict = opts.dict, max_events = opts.replay_events, ttl = opts.replay_ttl,
                       poll = opts.poll, keepalive = opts.keepalive, outbox_limit = opts.outbox_limit,
                       slow_policy = opts.slow_policy }
    S.log = hub:replayer()
  end
  S.hub = hub
  local dict = ngx.shared[opts.state_dict]
  if not dict then error("sse_hub: no lua_shared_dict " .. opts.state_dict .. " (the demo's state)") end
  S.dict = dict
  W.init(dict)
  local counter = opts.max_connections_per_ip > 0
    and sse_ngx.counter{ dict = opts.state_dict, prefix = "ip:" } or nil
  S.access = access.new(opts, hub, counter)
  if opts.presence then
    -- the subscribers of a topic in every worker; each presence event is
    -- sent here and handed to the other workers' $presence streams
    local topics = sse_ngx.counter{ dict = opts.state_dict, prefix = "t:" }
    presence.enable(hub, {
      count = function(topic)
        topics:set(topic, hub:topic_count(topic))
        return topics:count(topic)
      end,
      relay = function(ev) W.tell("presence", ev.data) end,
    })
    W.handle("presence", function(data)
      if type(data) == "string" then hub:notify_to(presence.TOPIC, { event = "presence", data = data }) end
    end)
  end
  views.serve(S, opts)
  if not dict:get("started") then dict:safe_add("started", ngx.time()) end
  for _, a in ipairs({ { "dashboard.html", "page" }, { "sse-subscriber.js", "js" } }) do
    local path = rules.asset_path(a[1])
    local f = path and io.open(path, "rb")
    if f then
      S.assets[a[2]] = f:read("*a")
      f:close()
    end
  end
  return hub
end

local function answer(status, value, headers)
  ngx.status = status
  for i = 1, #(headers or {}), 2 do ngx.header[headers[i]] = headers[i + 1] end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(J.encode(value))
end

local function json_error(status, msg, headers)
  return answer(status, J.obj("error", msg), headers)
end

-- CORS as sse.http does it: an allowed Origin is echoed, with credentials
-- when asked; every answer says Vary: Origin. Returns the allowed origin.
local function cors()
  local list = opts.cors
  if not list then return nil end
  ngx.header["Vary"] = "Origin"
  local origin = ngx.var.http_origin
  if not origin then return nil end
  local ok = false
  for _, o in ipairs(list) do ok = ok or o == "*" or o == origin end
  if not ok then return nil end
  ngx.header["Access-Control-Allow-Origin"] = origin
  if opts.cors_credentials then ngx.header["Access-Control-Allow-Credentials"] = "true" end
  return origin
end

-- One method per location, as sse.http's router answers: 405 with Allow;
-- OPTIONS 204 (a CORS preflight when the origin is allowed). Sets the CORS
-- headers of the answer.
local function method_is(m)
  local origin = cors()
  local got = ngx.req.get_method()
  if got == m or (m == "GET" and got == "HEAD") then return true end
  local allow = m == "GET" and "GET, HEAD" or m
  ngx.header["Allow"] = allow
  if got == "OPTIONS" then
    if origin and ngx.var.http_access_control_request_method then
      ngx.header["Access-Control-Allow-Methods"] = allow
      ngx.header["Access-Control-Allow-Headers"] = "Last-Event-ID, Content-Type, Authorization"
      ngx.header["Access-Control-Max-Age"] = "600"
    end
    ngx.status = 204
    return false
  end
  ngx.status = 405
  ngx.header["Content-Type"] = "text/plain; charset=utf-8"
  ngx.print("method not allowed\n")
  return false
end

-- The static token (--token), when set; 401 otherwise.
local function authorized()
  local token = opts.token
  if not token then return true end
  if auth.check(ngx.var.http_authorization, token) then return true end
  S.refusals[401] = S.refusals[401] + 1
  answer(401, J.obj("error", "missing or wrong bearer token"), { "WWW-Authenticate", 'Bearer realm="sse"' })
  return false
end

-- An authorization refusal (401, 403: counted for /metrics).
local function refuse(status, why, headers)
  if S.refusals[status] then S.refusals[status] = S.refusals[status] + 1 end
  return json_error(status, why, headers)
end

-- A file of the demo hub (rules.asset_path), or 404.
local function serve(which, ctype, missing)
  if not method_is("GET") then return end
  if not S.assets[which] then
    ngx.status = 404
    ngx.header["Content-Type"] = "text/plain; charset=utf-8"
    return ngx.print(missing)
  end
  ngx.header["Content-Type"] = ctype
  ngx.header["Cache-Control"] = "no-cache"
  ngx.print(S.assets[which])
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
  local acc, req = S.access, sse_ngx.request()
  local topics, status, err = acc:topics(req.query.topic, opts.default_topic, "subscribe")
  if not topics then return json_error(status, err) end
  local envelope, eerr = rules.request_envelope(req.query)
  if envelope == nil then return json_error(400, eerr) end
  local allowed, info, why, headers = acc:check(req, "subscribe", topics)
  if not allowed then return refuse(info, why, headers) end
  local ok, st, lmsg = acc:admit(req, allowed)
  if not ok then return json_error(st, lmsg) end
  local sok, stream = pcall(sse_ngx.stream, { outbox_limit = opts.outbox_limit, slow_policy = opts.slow_policy,
                                              retry = opts.retry, abort = "log" })
  if not sok then
    acc:release(req)
    error(stream, 0)
  end
  S.statuses[200] = (S.statuses[200] or 0) + 1 -- counted now: log() sees a stream when it ends
  acc:adopt(stream, req, info)
  stream:on_close(count_bytes)
  S.hub:attach(stream, { topics = allowed, envelope = envelope })
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

local function count_type(event)
  local etype = event or "message"
  if not S.event_types[etype] and S.ntypes < opts.max_event_types then
    S.event_types[etype] = true
    S.ntypes = S.ntypes + 1
  end
end

-- POST /publish on Redis: answered once Redis stored the event (503 when it
-- did not); the answer comes from the backend's connection, this handler
-- waits for it on a semaphore. f was checked by sse.event_valid.
local function publish_redis(topic, f)
  local backend = S.backend
  local sema = require("ngx.semaphore").new()
  local res
  local queued, err = backend:publish(f, topic, function(id, perr)
    res = { id = id, err = perr }
    sema:post(1)
  end)
  if not queued then return json_error(503, err) end
  sema:wait(backend.timeout + 1)
  if not (res and res.id) then return json_error(503, res and res.err or "redis: no answer") end
  S.hub.stats.published = S.hub.stats.published + 1
  count_type(f.event)
  answer(200, J.obj("id", res.id, "topic", topic, "subscribers", views.subscribers(topic, S.hub:topic_count(topic))))
end

--- POST /publish
function M.publish()
  if not method_is("POST") then return end
  local acc = S.access
  -- without an authorization hook the static token is checked first, as in the luv hub
  if not acc.authorize and not authorized() then return end
  local req = sse_ngx.request()
  req.body = body()
  local f, value = rules.publish_fields(req)
  if not f then return json_error(400, value) end
  if config.catalogue then
    local tok, terr = rules.typed(config.catalogue, f, value)
    if not tok then return json_error(400, terr) end
  end
  local topic = f.topic or opts.default_topic
  local tlist, tstatus, terr = acc:topics(topic, opts.default_topic, "publish")
  if not tlist then return json_error(tstatus, terr) end
  -- with JWTs, the static token (when set) still lets its holder publish anywhere
  if acc.authorize and not (opts.token and auth.check(req.headers.authorization, opts.token)) then
    local allowed, status, why, headers = acc:check(req, "publish", { topic })
    if not allowed then return refuse(status, why, headers) end
  end
  f.topic = nil
  -- the publisher's mistake is a 400 naming the field, not a raise
  local valid, verr = require("sse").event_valid(f)
  if not valid then return json_error(400, verr) end
  if S.backend then return publish_redis(topic, f) end
  local n, id = S.hub:broadcast_to(topic, f)
  if not n then return json_error(503, id) end
  count_type(f.event)
  answer(200, J.obj("id", id, "topic", topic, "subscribers", views.subscribers(topic, n)))
end

--- GET /stats[?top=N]
function M.stats_handler()
  if not method_is("GET") then return end
  if not authorized() then return end
  local top, err = rules.stats_top(opts, sse_ngx.request().query)
  if not top then return json_error(400, err) end
  ngx.header["Cache-Control"] = "no-cache"
  answer(200, views.stats_json(top))
end

--- Every worker's counters added up, in sse.app's shape (plus "workers").
function M.stats(top)
  return views.stats(top)
end

--- GET /subscriptions[?topic=T][&limit=N]
function M.subscriptions()
  if not method_is("GET") then return end
  if not authorized() then return end
  local q = sse_ngx.request().query
  local limit, err = presence.limit(q)
  if not limit then return json_error(400, err) end
  if type(q.topic) == "table" then return json_error(400, "query 'topic' given more than once") end
  ngx.header["Cache-Control"] = "no-cache"
  answer(200, views.subscriptions(q.topic, limit))
end

--- GET /metrics
function M.metrics()
  if not method_is("GET") then return end
  if not authorized() then return end
  ngx.header["Content-Type"] = require("sse.metrics").CONTENT_TYPE
  ngx.header["Cache-Control"] = "no-cache"
  ngx.print(views.metrics())
end

--- GET /catalogue
function M.catalogue()
  if not method_is("GET") then return end
  local cat = config.catalogue
  if not cat then return json_error(404, "no catalogue (start the hub with --catalogue FILE)") end
  ngx.header["Content-Type"] = "application/schema+json"
  ngx.header["Cache-Control"] = "no-cache"
  ngx.print(cat:to_json())
end

--- Closes every stream of every worker; returns how many.
function M.disconnect_all()
  return views.disconnect_all()
end

--- POST /admin/disconnect
function M.disconnect()
  if not method_is("POST") then return end
  if not authorized() then return end
  answer(200, J.obj("closed", M.disconnect_all()))
end

--- log(): every answer by status, for /metrics (from log_by_lua); an event
-- stream was counted when it started.
function M.log()
  -- a stream whose client went away ends here (M.events makes its streams
  -- with abort = "log": no ngx.on_abort coroutine per subscriber)
  sse_ngx.finish()
  local status = ngx.status
  if status == 200 and (ngx.var.sent_http_content_type or ""):find("text/event-stream", 1, true) then return end
  S.statuses[status] = (S.statuses[status] or 0) + 1
end

return M
