--- sse.metrics: a hub's counters in the Prometheus text exposition format
-- (version 0.0.4), for any hub and any host.
--
--   local metrics = require("sse.metrics")
--   res:header("Content-Type", metrics.CONTENT_TYPE):send(metrics.render(hub))
--
-- Names follow Prometheus conventions: an sse_ prefix, base units (bytes,
-- seconds), _total on counters, HELP and TYPE for every family. Rendering
-- reads counts the hub keeps (no series per topic or per stream), so its
-- cost does not grow with the number of topics or connections.
local M = {}

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local TYPES = { counter = true, gauge = true }

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- A sample value as the format writes it: integers in full, NaN, +Inf, -Inf.
local function value(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v == math.floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then return ("%d"):format(v) end
  return ("%.17g"):format(v)
end

local function escape_help(s)
  return (s:gsub("\\", "\\\\"):gsub("\n", "\\n"))
end

local function escape_label(s)
  return (s:gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- Appends one family to out: HELP, TYPE, then its samples. samples is a
-- number, or a list of {labels, value} where labels is a flat list
-- {name, value, ...} (label order as given).
-- HELP and TYPE lines, made once per family (bounded: help texts that
-- change every call would otherwise pile up)
local heads, nheads = {}, 0
local function family(out, name, kind, help, samples)
  local by_help = heads[help]
  if not by_help then
    if nheads >= 512 then heads, nheads = {}, 0 end
    by_help = {}
    heads[help] = by_help
    nheads = nheads + 1
  end
  local key = name .. " " .. kind
  local head = by_help[key]
  if not head then
    head = "# HELP " .. name .. " " .. escape_help(help) .. "\n# TYPE " .. key .. "\n"
    by_help[key] = head
  end
  out[#out + 1] = head
  if type(samples) == "number" then
    out[#out + 1] = name .. " " .. value(samples) .. "\n"
    return
  end
  for _, s in ipairs(samples) do
    local labels, parts = s[1], {}
    for i = 1, #labels, 2 do
      parts[#parts + 1] = labels[i] .. '="' .. escape_label(tostring(labels[i + 1])) .. '"'
    end
    out[#out + 1] = name .. (#parts > 0 and "{" .. table.concat(parts, ",") .. "}" or "")
      .. " " .. value(s[2]) .. "\n"
  end
end

-- A method of r if it has one (replayers are tables or userdata).
local function method(r, name)
  local ok, fn = pcall(function() return r[name] end)
  return ok and type(fn) == "function" and fn or nil
end

local function bool(v) return v and 1 or 0 end

-- The replay window of a replayer that can tell (the memory ring can):
-- {oldest_age =, events =, bytes =}, each nil when it cannot.
local function replay_values(r)
  local age_fn, len_fn, bytes_fn = method(r, "oldest_age"), method(r, "len"), method(r, "bytes")
  local v = {}
  if age_fn then v.oldest_age = tonumber(age_fn(r)) or 0 end -- first: it drops what the TTL expired
  if len_fn then v.events = tonumber(len_fn(r)) or 0 end
  if bytes_fn then v.bytes = tonumber(bytes_fn(r)) or 0 end
  return v
end

local function replay_families(out, v)
  if v.oldest_age then
    family(out, "sse_replay_oldest_age_seconds", "gauge",
      "Age of the oldest event held for replay (0 when none).", v.oldest_age)
  end
  if v.events then family(out, "sse_replay_events", "gauge", "Events held for replay.", v.events) end
  if v.bytes then family(out, "sse_replay_bytes", "gauge", "Bytes of encoded events held for replay.", v.bytes) end
end

-- An asynchronous backend's state (sse.redis: backend:status()).
local function backend_families(out, st)
  local b = { "backend", tostring(st.backend or "unknown") }
  local function g(name, help, v)
    family(out, name, "gauge", help, { { b, v } })
  end
  local function c(name, help, v)
    if type(v) == "number" then family(out, name, "counter", help, { { b, v } }) end
  end
  g("sse_backend_up", "1 when the backend is healthy: connected, following, caught up.", bool(st.healthy))
  g("sse_backend_connected", "1 when the command connection to the backend is up.", bool(st.connected))
  g("sse_backend_following", "1 when this instance follows the backend's live events.", bool(st.following))
  if type(st.lag) == "number" then
    g("sse_backend_lag_events", "Events the backend holds that this instance has not applied.", st.lag)
  end
  c("sse_backend_published_total", "Events this instance published to the backend.", st.published)
  c("sse_backend_publish_errors_total", "Publishes the backend refused or could not take.", st.publish_errors)
  c("sse_backend_delivered_total", "Events the follower delivered to this hub.", st.delivered)
  c("sse_backend_reconnects_total", "Reconnections to the backend.", st.reconnects)
  c("sse_backend_catchups_total", "Catch-ups after the follower fell behind or reconnected.", st.catchups)
  c("sse_backend_gaps_total", "Times the follower found events it could no longer read.", st.gaps)
end

-- Checks an extra family; raises naming it.
local function check_extra(i, f)
  local where = ("extra[%d]"):format(i)
  if type(f) ~= "table" then argerror(2, "render", where .. ": table expected, got " .. type(f)) end
  local name = f.name
  if type(name) ~= "string" or not name:match("^[%a_:][%w_:]*$") then
    argerror(2, "render", where .. ": 'name' must be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
  end
  if not TYPES[f.type] then argerror(2, "render", where .. ": 'type' must be \"counter\" or \"gauge\"") end
  if f.type == "counter" and not name:match("_total$") then
    argerror(2, "render", where .. ": a counter's name ends in _total, got '" .. name .. "'")
  end
  if type(f.help) ~= "string" then argerror(2, "render", where .. ": 'help' must be a string") end
  local v = f.value
  if type(v) == "number" then return v end
  if type(v) ~= "table" then argerror(2, "render", where .. ": 'value' must be a number or a list of samples") end
  for j, s in ipairs(v) do
    if type(s) ~= "table" or type(s[2]) ~= "number" or type(s[1]) ~= "table" then
      argerror(2, "render", ("%s: value[%d] must be {labels, number}"):format(where, j))
    end
    for k = 1, #s[1], 2 do
      if type(s[1][k]) ~= "string" or not s[1][k]:match("^[%a_][%w_]*$") then
        argerror(2, "render", ("%s: value[%d]: bad label name"):format(where, j))
      end
    end
  end
  return v
end

-- The counters render writes (hub:counters() names), in this order.
local COUNTERS = { "published", "deliveries", "bytes_sent", "dropped", "gaps_replay", "gaps_dropped",
                   "closed_slow", "closed_write", "closed_timeout", "gzip_in", "gzip_out" }
M.COUNTERS = COUNTERS

--- values(hub) -> the figures render(hub) writes, as plain numbers:
-- {connections =, topics =, counters = {published =, ...}, replay =
-- {oldest_age =, events =, bytes =} (each field only when the replayer
-- tells), backend = status table or nil}. A host with several hubs (nginx
-- workers) adds up theirs (M.sum) and renders the total.
function M.values(hub)
  local Hub = require("sse.hub")
  if getmetatable(hub) ~= Hub then argerror(1, "values", "sse.Hub expected, got " .. type(hub)) end
  local c, counters = hub:counters(), {}
  for _, k in ipairs(COUNTERS) do counters[k] = tonumber(c[k]) or 0 end
  local v = { connections = hub:connection_count(), topics = hub:topic_total(), counters = counters, replay = {} }
  local r = hub:replayer()
  if r ~= nil then
    v.replay = replay_values(r)
    local status_fn = method(r, "status")
    local st = status_fn and status_fn(r)
    if type(st) == "table" then v.backend = st end
  end
  return v
end

--- sum(list) -> the values of several hubs as one: connections, topics
-- and counters added up; replay and backend those of the first (hubs that
-- share one log or backend see the same window).
function M.sum(list)
  if type(list) ~= "table" or type(list[1]) ~= "table" then
    argerror(1, "sum", "non-empty list of values tables expected")
  end
  local first = list[1]
  local total = { connections = 0, topics = 0, counters = {}, replay = first.replay, backend = first.backend }
  for _, k in ipairs(COUNTERS) do total.counters[k] = 0 end
  for i, v in ipairs(list) do
    if type(v) ~= "table" or type(v.counters) ~= "table" then
      argerror(1, "sum", ("list[%d]: values table expected"):format(i))
    end
    total.connections = total.connections + (tonumber(v.connections) or 0)
    total.topics = total.topics + (tonumber(v.topics) or 0)
    for _, k in ipairs(COUNTERS) do total.counters[k] = total.counters[k] + (tonumber(v.counters[k]) or 0) end
  end
  return total
end

--- render(hub [, extra]) -> the text of every metric of hub (an sse.Hub,
-- or the values table of M.values / M.sum), then extra: a list of families
-- {name =, type = "counter" | "gauge", help =, value =} where value is a
-- number or a list of samples {{label, value, ...}, n}.
function M.render(hub, extra)
  local Hub = require("sse.hub")
  local v
  if getmetatable(hub) == Hub then
    v = M.values(hub)
  elseif type(hub) == "table" and getmetatable(hub) == nil and type(hub.counters) == "table" then
    v = hub
  else
    argerror(1, "render", "sse.Hub expected, got " .. type(hub))
  end
  if extra ~= nil and type(extra) ~= "table" then argerror(2, "render", "table expected, got " .. type(extra)) end
  local checked = {}
  for i, f in ipairs(extra or {}) do checked[i] = check_extra(i, f) end
  local c = v.counters
  local function n(k) return tonumber(c[k]) or 0 end
  local out = {}
  family(out, "sse_connections", "gauge", "Streams registered with the hub.", tonumber(v.connections) or 0)
  family(out, "sse_topics", "gauge", "Topics with at least one subscriber.", tonumber(v.topics) or 0)
  family(out, "sse_events_published_total", "counter", "Events published through the hub.", n("published"))
  family(out, "sse_deliveries_total", "counter",
    "Events queued for subscribers (one per subscriber per event).", n("deliveries"))
  family(out, "sse_sent_bytes_total", "counter",
    "Bytes the subscribers' transports accepted (written to sockets or taken by pull hosts).", n("bytes_sent"))
  family(out, "sse_events_dropped_total", "counter",
    "Events dropped for slow clients under the drop_oldest policy.", n("dropped"))
  family(out, "sse_gap_events_total", "counter", "sse-gap events sent, by cause.", {
    { { "cause", "replay" }, n("gaps_replay") }, { { "cause", "dropped" }, n("gaps_dropped") } })
  family(out, "sse_streams_closed_total", "counter",
    "Streams the hub closed itself, by reason (slow: past the outbox limit).", {
    { { "reason", "slow" }, n("closed_slow") }, { { "reason", "write_failed" }, n("closed_write") },
    { { "reason", "drain_timeout" }, n("closed_timeout") } })
  family(out, "sse_compressed_input_bytes_total", "counter",
    "Bytes given to the gzip compressors of compressed streams.", n("gzip_in"))
  family(out, "sse_compressed_output_bytes_total", "counter",
    "Bytes the gzip compressors of compressed streams produced (their ratio: input / output).", n("gzip_out"))
  replay_families(out, v.replay or {})
  if type(v.backend) == "table" then backend_families(out, v.backend) end
  for i, f in ipairs(extra or {}) do family(out, f.name, f.type, f.help, checked[i]) end
  return table.concat(out)
end

return M
