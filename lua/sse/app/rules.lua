--- sse.app.rules: the demo hub's rules that do not depend on its host, shared
-- by sse.app (on luv) and the OpenResty demo (examples/openresty/): the
-- fields of a publish request, ?top=N of /stats, the /stats answer and where
-- the dashboard page is.
local core = require("sse.core")
local cjson = require("cjson")
local J = require("sse.app.json")

local M = {}

local FIELDS = { topic = true, event = true, data = true, retry = true }

-- A bad option of sse.app.new, raised as an object (not text) by every
-- check of the demo hub's options, so sse.app.try_new answers nil, message
-- and sse.app.new raises "bad argument #1 to 'new' (message)" without
-- either reading an error's text.
local OptionError = {}

--- option_error(msg): raises msg as a bad option of sse.app.new.
function M.option_error(msg)
  error(setmetatable({ msg = msg }, OptionError), 0)
end

--- option_message(e) -> the message of an option_error, or nil for any
-- other error value.
function M.option_message(e)
  return getmetatable(e) == OptionError and e.msg or nil
end

--- read_file(path) -> the file's bytes, or nil, err (a file an option
-- names: --jwt-key's PEM, the dashboard's page).
function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- publish_fields(req) -> the fields of a publish request ({topic, event,
-- data, retry}) and, for a JSON body, the decoded value of its data; or nil,
-- message. req: {headers = {[lowercase name] = value}, body = string}. A
-- JSON body's non-string data is the text the publisher wrote
-- (sse.app.json), not a re-encoding.
function M.publish_fields(req)
  local ctype = (req.headers["content-type"] or ""):lower()
  local body = req.body or ""
  local f, texts
  if ctype:find("json", 1, true) or (ctype == "" and body:match("^%s*{")) then
    f, texts = J.decode_object(body)
    if not f then return nil, texts end
  elseif ctype == "" or ctype:find("application/x-www-form-urlencoded", 1, true) then
    local q, _, msg = core.http_parse_query(body, 64)
    if not q then return nil, msg end
    f = q
    for k, v in pairs(f) do
      if type(v) == "table" then return nil, ("field '%s' given more than once"):format(k) end
    end
  else
    return nil, "unsupported Content-Type (use application/json or a form)"
  end
  for k in pairs(f) do
    if not FIELDS[k] then
      if k == "id" then return nil, "ids are assigned by the hub" end
      return nil, ("unknown field '%s'"):format(tostring(k))
    end
  end
  local data = f.data
  if data == nil or data == cjson.null then return nil, "field 'data' is required" end
  local value = texts and data -- a JSON body: the data as a value (for a catalogue)
  if type(data) ~= "string" then data = texts.data end
  local topic = f.topic
  if topic ~= nil and type(topic) ~= "string" then return nil, "field 'topic' must be a string" end
  local event = f.event
  if event ~= nil and type(event) ~= "string" then return nil, "field 'event' must be a string" end
  local retry = f.retry
  if retry ~= nil then
    retry = tonumber(retry)
    if not retry or retry < 0 or retry ~= math.floor(retry) or retry > 2 ^ 53 then
      return nil, "field 'retry' must be a non-negative integer"
    end
    retry = math.floor(retry)
  end
  return { topic = topic, event = event ~= "" and event or nil, data = data, retry = retry }, value
end

--- typed(cat, f, value) -> true, or nil, message: the publish fields f
-- checked against the catalogue cat. value: the data of a JSON body as a
-- value (publish_fields' second result; its data goes out as JSON: a string
-- is quoted), nil for a form, whose data is JSON text. f.data becomes the
-- JSON text sent.
function M.typed(cat, f, value)
  if value == nil then
    local ev, err = cat:check({ event = f.event, data = f.data })
    if not ev then return nil, err end
    return true
  end
  local ok, err = cat:validate(f.event or "message", value)
  if not ok then return nil, err end
  if type(value) == "string" then f.data = require("sse.catalogue.schema").quote(value) end
  return true
end

--- stats_top(opts, query): ?top=N of /stats: the default, or an integer
-- in 0..max; nil, message. opts: stats_top, stats_top_max.
function M.stats_top(o, q)
  local v = q.top
  if v == nil then return o.stats_top end
  local max = o.stats_top_max
  local n = type(v) == "string" and v:match("^%d+$") and tonumber(v)
  if not n or n > max then return nil, ("query 'top' must be an integer in 0..%d"):format(max) end
  return n
end

--- request_envelope(query) -> true | false | nil, message: ?envelope= of
-- /events (1 or true: envelope mode; 0, false or absent: plain).
local ENVELOPE = { ["1"] = true, ["true"] = true, ["0"] = false, ["false"] = false }
function M.request_envelope(q)
  local v = q.envelope
  if v == nil then return false end
  if ENVELOPE[v] == nil then return nil, "query 'envelope' must be 1 or 0" end
  return ENVELOPE[v]
end

--- Where a file of the demo hub is (dashboard.html, sse-subscriber.js):
-- beside this module, found on package.path like a module (lua/sse/app/ in
-- a checkout; installed beside the Lua modules,
-- <share>/lua/<version>/sse/app/). nil when it is not there.
function M.asset_path(name)
  local file = "sse/app/" .. name
  for template in package.path:gmatch("[^;]+") do
    local path = template:gsub("%?%.lua$", file)
    if path ~= template then
      local f = io.open(path, "rb")
      if f then
        f:close()
        return path
      end
    end
  end
  return nil
end

--- Where the dashboard page is (asset_path), nil when it is not there.
function M.dashboard_path()
  return M.asset_path("dashboard.html")
end

--- stats_json(stats) -> the /stats answer (a J value), keys in the README's
-- order ("backend" only on Redis); stats as app:stats() returns it.
function M.stats_json(s)
  local tops = {}
  for i, e in ipairs(s.top_topics) do tops[i] = J.obj("topic", e.topic, "subscribers", e.subscribers) end
  local r = s.replay
  local kv = {
    "connections", s.connections,
    "topics", s.topics,
    "top_topics", J.arr(tops),
    "published", s.published,
    "deliveries", s.deliveries,
    "bytes_sent", s.bytes_sent,
    "slow_closed", s.slow_closed,
    "event_types", J.arr(s.event_types),
    "replay", J.obj("first_id", r.first_id, "last_id", r.last_id, "length", r.length, "bytes", r.bytes,
      "max_events", r.max_events, "ttl", r.ttl),
  }
  local n = 18
  local b = s.backend
  if b then
    kv[n + 1], kv[n + 2] = "backend", J.obj("type", "redis", "url", b.url, "healthy", b.healthy,
      "connected", b.connected, "following", b.following, "stale", b.stale, "lag", b.lag,
      "last_id", b.last_id, "epoch", b.epoch, "published", b.published, "publish_errors", b.publish_errors,
      "reconnects", b.reconnects, "catchups", b.catchups, "stale_events", b.stale_events, "gaps", b.gaps,
      "error", b.error)
    n = n + 2
  end
  kv[n + 1], kv[n + 2] = "uptime", s.uptime
  return J.obj((table.unpack or unpack)(kv, 1, n + 2))
end

return M
