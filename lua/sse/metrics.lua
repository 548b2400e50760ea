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

-- The replay window of a replayer that can tell (the memory ring can).
local function replay_families(out, r)
  local age_fn, len_fn, bytes_fn = method(r, "oldest_age"), method(r, "len"), method(r, "bytes")
  if age_fn then
    local age = age_fn(r)  -- first: it drops what the TTL expired
    family(out, "sse_replay_oldest_age_seconds", "gauge",
      "Age of the oldest event held for replay (0 when none).", tonumber(age) or 0)
  end
  if len_fn then family(out, "sse_replay_events", "gauge", "Events held for replay.", tonumber(len_fn(r)) or 0) end
  if bytes_fn then
    family(out, "sse_replay_bytes", "gauge", "Bytes of encoded events held for replay.", tonumber(bytes_fn(r)) or 0)
  end
end

-- An asynchronous backend's state (sse.redis: backend:status()).
local function backend_families(out, r)
  local status_fn = method(r, "status")
  if not status_fn then return end
  local st = status_fn(r)
  if type(st) ~= "table" then return end
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

--- render(hub [, extra]) -> the text of every metric of hub, then extra: a
-- list of families {name =, type = "counter" | "gauge", help =, value =}
-- where value is a number or a list of samples {{label, value, ...}, n}.
function M.render(hub, extra)
  local Hub = require("sse.hub")
  if getmetatable(hub) ~= Hub then argerror(1, "render", "sse.Hub expected, got " .. type(hub)) end
  if extra ~= nil and type(extra) ~= "table" then argerror(2, "render", "table expected, got " .. type(extra)) end
  local checked = {}
  for i, f in ipairs(extra or {}) do checked[i] = check_extra(i, f) end
  local c = hub:counters()
  local out = {}
  family(out, "sse_connections", "gauge", "Streams registered with the hub.", hub:connection_count())
  family(out, "sse_topics", "gauge", "Topics with at least one subscriber.", hub:topic_total())
  family(out, "sse_events_published_total", "counter", "Events published through the hub.", c.published)
  family(out, "sse_deliveries_total", "counter",
    "Events queued for subscribers (one per subscriber per event).", c.deliveries)
  family(out, "sse_sent_bytes_total", "counter",
    "Bytes the subscribers' transports accepted (written to sockets or taken by pull hosts).", c.bytes_sent)
  family(out, "sse_events_dropped_total", "counter",
    "Events dropped for slow clients under the drop_oldest policy.", c.dropped)
  family(out, "sse_gap_events_total", "counter", "sse-gap events sent, by cause.", {
    { { "cause", "replay" }, c.gaps_replay }, { { "cause", "dropped" }, c.gaps_dropped } })
  family(out, "sse_streams_closed_total", "counter",
    "Streams the hub closed itself, by reason (slow: past the outbox limit).", {
    { { "reason", "slow" }, c.closed_slow }, { { "reason", "write_failed" }, c.closed_write },
    { { "reason", "drain_timeout" }, c.closed_timeout } })
  family(out, "sse_compressed_input_bytes_total", "counter",
    "Bytes given to the gzip compressors of compressed streams.", c.gzip_in or 0)
  family(out, "sse_compressed_output_bytes_total", "counter",
    "Bytes the gzip compressors of compressed streams produced (their ratio: input / output).", c.gzip_out or 0)
  local r = hub:replayer()
  if r ~= nil then
    replay_families(out, r)
    backend_families(out, r)
  end
  for i, f in ipairs(extra or {}) do family(out, f.name, f.type, f.help, checked[i]) end
  return table.concat(out)
end

return M
