--- sse_hub.views: the demo hub's answers that need every worker (/stats,
-- /subscriptions, /metrics, /admin/disconnect, the subscriber count of
-- /publish). Each worker answers for itself (its handlers, sse_hub.workers);
-- the asking worker adds the answers up in sse.app's shapes.
local presence = require("sse.app.presence")
local metrics = require("sse.metrics")
local rules = require("sse.app.rules")
local J = require("sse.app.json")
local W = require("sse_hub.workers")
local cjson = require("cjson.safe")

local ngx = ngx -- luacheck: ignore

local M = {}

M.SNAPSHOT_EVERY = 1 -- seconds between two snapshots of a worker's topics (for /publish)
M.TOP_KEPT = 1000    -- topics of each worker a snapshot or /stats answer lists

local S, opts

local function sent_bytes()
  local sent = S.closed_bytes
  for _, s in ipairs(S.hub:streams()) do sent = sent + s:stats().bytes_sent end
  return sent
end

local function topic_map(n)
  local topics = {}
  for _, e in ipairs(S.hub:top_topics(n)) do topics[e.topic] = e.subscribers end
  return topics
end

-- This worker's answers.
local function my_stats()
  local hub, types = S.hub, {}
  for t in pairs(S.event_types) do types[#types + 1] = t end
  local c = hub:counters()
  return { pid = ngx.worker.pid(), connections = hub:connection_count(), topic_total = hub:topic_total(),
           topics = topic_map(M.TOP_KEPT), published = c.published, deliveries = c.deliveries,
           bytes_sent = sent_bytes(), slow_closed = c.closed_slow, event_types = types }
end

local function my_metrics()
  local v = metrics.values(S.hub)
  local statuses = {}
  for status, n in pairs(S.statuses) do statuses[tostring(status)] = n end
  v.replay, v.backend = nil, nil -- shared by every worker: the asking one's
  return { values = v, statuses = statuses, refusals = { ["401"] = S.refusals[401], ["403"] = S.refusals[403] } }
end

-- The other workers' topic counts as of their last snapshot (decoded at
-- most once a snapshot period).
local others, others_at = {}, -1
local function other_topics()
  local now = ngx.now()
  if now - others_at < M.SNAPSHOT_EVERY then return others end
  others, others_at = {}, now
  local me = ngx.worker.pid()
  for _, pid in pairs(W.pids()) do
    if pid ~= me then
      local t = cjson.decode(S.dict:get("snap:" .. pid) or "null")
      if type(t) == "table" then others[#others + 1] = t end
    end
  end
  return others
end

--- subscribers(topic, here): this worker's count (here) plus the others'
-- as of their last snapshot (at most two periods old).
function M.subscribers(topic, here)
  local n = here
  for _, t in ipairs(other_topics()) do n = n + (tonumber(t[topic]) or 0) end
  return n
end

--- serve(state, opts): this worker's answers to the others, and its
-- snapshot timer.
function M.serve(state, o)
  S, opts = state, o
  W.handle("stats", my_stats)
  W.handle("metrics", my_metrics)
  W.handle("list", function(a)
    if type(a) ~= "table" then return nil end
    return J.encode(presence.listing(S.hub, S.access, a.topic, a.limit))
  end)
  W.handle("disconnect", function() return S.hub:disconnect_all() end)
  local function snap(premature)
    if premature then return end
    S.dict:safe_set("snap:" .. ngx.worker.pid(), cjson.encode(topic_map(M.TOP_KEPT)), 3 * M.SNAPSHOT_EVERY)
  end
  snap()
  ngx.timer.every(M.SNAPSHOT_EVERY, snap)
end

local function by_count(a, b)
  if a.subscribers ~= b.subscribers then return a.subscribers > b.subscribers end
  return a.topic < b.topic
end

--- Every worker's counters added up, in sse.app's shape (plus "workers").
function M.stats(top)
  local answers, missing = W.ask("stats")
  local total = { connections = 0, published = 0, deliveries = 0, bytes_sent = 0, slow_closed = 0 }
  local topics, types, workers = {}, {}, {}
  local topic_total = 0
  for _, s in ipairs(answers) do
    for k in pairs(total) do total[k] = total[k] + (tonumber(s[k]) or 0) end
    for t, c in pairs(s.topics or {}) do topics[t] = (topics[t] or 0) + c end
    for _, t in ipairs(s.event_types or {}) do types[t] = true end
    topic_total = math.max(topic_total, tonumber(s.topic_total) or 0)
    workers[#workers + 1] = { pid = s.pid, connections = s.connections }
  end
  local list = {}
  for t, c in pairs(topics) do list[#list + 1] = { topic = t, subscribers = c } end
  topic_total = math.max(topic_total, #list)
  table.sort(list, by_count)
  for i = top + 1, #list do list[i] = nil end
  local tl = {}
  for t in pairs(types) do tl[#tl + 1] = t end
  table.sort(tl)
  total.topics, total.top_topics, total.event_types = topic_total, list, tl
  if S.backend then
    total.replay = { last_id = S.backend:last_id(), max_events = opts.replay_events, ttl = opts.replay_ttl }
    total.backend = S.backend:status() -- this worker's view
  else
    local info = S.log:info()
    total.replay = {
      first_id = info.first_id, last_id = info.last_id, length = info.length,
      bytes = info.capacity and info.free_space and info.capacity - info.free_space or nil,
      max_events = info.max_events, ttl = info.ttl,
    }
  end
  total.uptime = ngx.now() - (S.dict:get("started") or ngx.now())
  total.workers, total.missing_workers = workers, missing
  return total
end

--- The /stats answer: sse.app's keys, then the workers.
function M.stats_json(top)
  local s = M.stats(top)
  local wl = {}
  for i, w in ipairs(s.workers) do wl[i] = J.obj("pid", w.pid, "connections", w.connections) end
  local obj = rules.stats_json(s)
  obj[obj.n + 1], obj[obj.n + 2], obj.n = "workers", J.arr(wl), obj.n + 2
  return obj
end

--- The /subscriptions answer over every worker: without a topic, the
-- busiest topics (each worker's `limit` busiest, added up); with one, its
-- streams (at most limit, by worker then id) with "worker" (its pid).
function M.subscriptions(topic, limit)
  local answers = W.ask("list", { topic = topic, limit = limit })
  if topic == nil then
    local sums, total = {}, 0
    for _, text in ipairs(answers) do
      local a = cjson.decode(text) or {}
      total = math.max(total, tonumber(a.topics) or 0)
      for _, e in ipairs(a.subscriptions or {}) do sums[e.topic] = (sums[e.topic] or 0) + e.subscribers end
    end
    local list = {}
    for t, n in pairs(sums) do list[#list + 1] = { topic = t, subscribers = n } end
    table.sort(list, by_count)
    local out = {}
    for i = 1, math.min(limit, #list) do out[i] = J.obj("topic", list[i].topic, "subscribers", list[i].subscribers) end
    return J.obj("topics", math.max(total, #list), "subscriptions", J.arr(out))
  end
  local n, streams, more = 0, {}, false
  for _, text in ipairs(answers) do
    local a = cjson.decode(text) or {}
    n = n + (tonumber(a.subscribers) or 0)
    more = more or a.more == true
    for _, s in ipairs(a.streams or {}) do streams[#streams + 1] = s end
  end
  if #streams > limit then more = true end
  local function v(x) if x == cjson.null then return nil end return x end
  local out = {}
  for i = 1, math.min(limit, #streams) do
    local s = streams[i]
    out[i] = J.obj("id", s.id, "remote", v(s.remote), "user", v(s.user), "since", s.since)
  end
  return J.obj("topic", topic, "subscribers", n, "streams", J.arr(out), "more", more)
end

local function samples(maps, names)
  local sums = {}
  for _, m in ipairs(maps) do
    for k, v in pairs(m or {}) do sums[k] = (sums[k] or 0) + (tonumber(v) or 0) end
  end
  for _, k in ipairs(names or {}) do sums[k] = sums[k] or 0 end
  local keys = {}
  for k in pairs(sums) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return (tonumber(a) or 0) < (tonumber(b) or 0) end)
  local out = {}
  for i, k in ipairs(keys) do out[i] = { { "status", k }, sums[k] } end
  return out
end

--- The /metrics text: sse.metrics over every worker's hub (added up; the
-- replay window of the shared log), then the HTTP answers by status, the
-- authorization refusals, the connections nginx holds, the start time.
function M.metrics()
  local answers = W.ask("metrics")
  local values, statuses, refusals = {}, {}, {}
  for i, a in ipairs(answers) do
    values[i], statuses[i], refusals[i] = a.values, a.statuses, a.refusals
  end
  local total = metrics.sum(values)
  local here = metrics.values(S.hub)
  total.replay, total.backend = here.replay, here.backend
  local extra = {
    { name = "sse_http_responses_total", type = "counter", value = samples(statuses),
      help = "HTTP answers written, by status (event streams count as 200)." },
    { name = "sse_auth_refusals_total", type = "counter", value = samples(refusals, { "401", "403" }),
      help = "Requests refused for authorization: 401 no or a bad token, 403 a topic not granted." },
    { name = "sse_start_time_seconds", type = "gauge", value = S.dict:get("started") or 0,
      help = "When the hub started, in seconds since the Unix epoch." },
    { name = "sse_info", type = "gauge", value = { { { "version", require("sse").version }, 1 } },
      help = "The sse library's version." },
  }
  local conns = tonumber(ngx.var.connections_active)
  if conns then
    table.insert(extra, 1, { name = "sse_http_connections", type = "gauge", value = conns,
      help = "Open HTTP connections of the whole nginx (every worker), event streams included." })
  end
  return metrics.render(total, extra)
end

--- Closes every stream of every worker; returns how many.
function M.disconnect_all()
  local answers = W.ask("disconnect")
  local n = 0
  for _, c in ipairs(answers) do n = n + (tonumber(c) or 0) end
  return n
end

return M
