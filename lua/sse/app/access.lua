--- sse.app.access: who may subscribe and publish in the demo hub, and the
-- limits that keep one client from taking what the others need (issue 13).
--
-- Authorization: opts.authorize(req, action, topics) (a custom hook), or
-- the JWT authorizer of sse.auth built from opts.jwt_secret / opts.jwt_key
-- (and opts.jwt_query, opts.jwt_leeway). Either answers the topics allowed (or true: all of
-- them) with an optional info table ({exp = seconds}, the JWT's claims), or
-- nil, status, message. It may wait (sse.http.await). A stream whose info
-- has exp is closed when exp passes (plus the verifier's leeway), after an
-- "sse-token-expired" event, so its client reconnects with a fresh token
-- and resumes by Last-Event-ID.
--
-- Limits (each an option; the answer names it):
--   max_topics_per_connection  400 past it
--   max_topics                 503 when a subscription would create more topics
--                              (in this process's hub: an nginx worker's own)
--   max_connections_per_ip     429 past that many open streams from one address
--                              (counted by a counter object: this process's own,
--                              or one every nginx worker shares, sse.ngx.counter)
--   max_topic_bytes            400; and a topic name is valid UTF-8 without
--                              control characters or '*', and does not start
--                              with '$' (the hub's own topics, such as
--                              $presence, may be read, never published to)
local deadlines = require("sse.deadlines")
local core = require("sse.core")
local host = require("sse.ngx.host")

local M = {}

local A = {}
A.__index = A

-- How sse.auth's errors name the options they came from.
local JWT_OPTION = { secret = "jwt_secret", public_key_pem = "jwt_key", leeway = "jwt_leeway",
                     query = "jwt_query" }
local function option_of(field)
  return JWT_OPTION[field] and ("option '%s'"):format(JWT_OPTION[field]) or ("field '%s'"):format(field)
end

-- How often nginx looks for expired streams (there, no luv timer runs).
M.NGX_EXPIRY_TICK = 0.25

-- The counter of one process: open streams per address in a table.
local Local = {}
Local.__index = Local

function Local:take(key, max)
  local n = self.n[key] or 0
  if max > 0 and n >= max then return false end
  self.n[key] = n + 1
  return true
end

function Local:give(key)
  local n = (self.n[key] or 1) - 1
  self.n[key] = n > 0 and n or nil
end

function Local:count(key) return self.n[key] or 0 end

--- local_counter() -> the counter access uses by default: counter:take(key,
-- max) -> true (counted) | false (max reached; max 0: no limit),
-- counter:give(key), counter:count(key).
function M.local_counter()
  return setmetatable({ n = {} }, Local)
end

local argerror = require("sse.app.rules").option_error

local read_file = require("sse.app.rules").read_file

--- check(opts) -> authorize, verifier, leeway: the authorization and limit
-- options checked (a hook, or the JWT authorizer built from jwt_secret /
-- jwt_key: a file name, or the PEM text itself); a bad one raises
-- rules.option_error (as app.new). Nothing is started: an nginx master
-- checks its workers' options with it.
function M.check(o)
  if o.authorize ~= nil and type(o.authorize) ~= "function" then
    argerror("option 'authorize' must be a function")
  end
  if o.authorize and (o.jwt_secret or o.jwt_key) then
    argerror("option 'authorize' and the jwt options exclude each other")
  end
  if o.jwt_query ~= nil and type(o.jwt_query) ~= "boolean" then
    argerror("option 'jwt_query' must be a boolean")
  end
  for _, k in ipairs({ "jwt_query", "jwt_leeway" }) do
    if o[k] ~= nil and not (o.jwt_secret or o.jwt_key) then
      argerror(("option '%s' needs 'jwt_secret' or 'jwt_key'"):format(k))
    end
  end
  local authorize, verifier, leeway = o.authorize, nil, 0
  if o.jwt_secret or o.jwt_key then
    leeway = o.jwt_leeway
    if leeway == nil then leeway = require("sse.jwt").DEFAULTS.leeway end
    local jopts = { secret = o.jwt_secret, query = o.jwt_query or false, leeway = leeway }
    if o.jwt_key then
      if type(o.jwt_key) ~= "string" then argerror("option 'jwt_key' must be a file name") end
      local pem, err = o.jwt_key, nil
      if not pem:find("-----BEGIN", 1, true) then pem, err = read_file(o.jwt_key) end
      if not pem then argerror("option 'jwt_key': cannot read " .. tostring(err)) end
      jopts.public_key_pem = pem
    end
    local fn, v = require("sse.auth").try_jwt(jopts, option_of)
    if not fn then argerror(v) end
    authorize, verifier = fn, v
  end
  for _, k in ipairs({ "max_topics_per_connection", "max_topics", "max_connections_per_ip",
                       "max_topic_bytes" }) do
    local v = o[k]
    if type(v) ~= "number" or v ~= math.floor(v) or v < 0 then
      argerror(("option '%s' must be an integer >= 0"):format(k))
    end
  end
  return authorize, verifier, leeway
end

--- new(opts, hub [, counter]) -> access. opts: the app's options (M.check);
-- counter: where open streams per address are counted (default:
-- M.local_counter(), this process). A bad option raises rules.option_error.
-- Inside nginx, call it where timers may start (init_worker_by_lua*, a
-- handler): expiries are looked for every M.NGX_EXPIRY_TICK seconds there.
function M.new(o, hub, counter)
  local self = setmetatable({ opts = o, hub = hub,
                              counter = counter or M.local_counter(),
                              -- req -> the address admit counted, until adopt or release
                              _taken = setmetatable({}, { __mode = "k" }),
                              -- stream -> {ip =, user =, since =, counted =}
                              _meta = setmetatable({}, { __mode = "k" }) }, A)
  self.authorize, self.verifier, self.leeway = M.check(o)
  -- one deadline per stream whose authorization expires, on one timer
  local function on_due(stream, at)
    if stream:is_closed() then return end
    stream:send({ event = "sse-token-expired", data = ('{"exp":%d}'):format(math.floor(at)) })
    stream:close()
  end
  if host.active then
    -- nothing runs luv's loop inside nginx: an nginx timer looks
    self.expiry = deadlines.new({ clock = host.now, on_due = on_due })
    self._tick = host.every(M.NGX_EXPIRY_TICK, function() self.expiry:run() end)
  else
    self.expiry = deadlines.new({ loop = true, on_due = on_due })
  end
  self._on_close = function(_, stream) self:_closed(stream) end
  return self
end

-- The reason a topic name is refused, or nil.
local function bad_topic(o, name, action)
  if name == "" then return "empty topic name" end
  if #name > o.max_topic_bytes then
    return ("topic name longer than %d bytes (max-topic-bytes)"):format(o.max_topic_bytes)
  end
  if not core.utf8_valid(name) then return "topic name is not valid UTF-8" end
  if name:find("%c") then return "topic name contains a control character" end
  if name:find("*", 1, true) then return "topic name contains '*' (patterns are for grants)" end
  if action == "publish" and name:sub(1, 1) == "$" then
    return "topics starting with '$' are the hub's own"
  end
  return nil
end

--- access.topics(opts, q_topic, default, action) -> list | nil, 400, message:
-- the topics a request names (q.topic: a string or a list; none: the
-- default), without repeats, each checked against opts
-- (max_topics_per_connection, max_topic_bytes). Needs no access object
-- (the OpenResty demo uses it too).
function M.topics(o, t, default, action)
  if t == nil then return { default } end
  if type(t) == "string" then t = { t } end
  local max = o.max_topics_per_connection
  if #t > max then
    return nil, 400, ("too many topics on one connection (max-topics-per-connection is %d)"):format(max)
  end
  local seen, list = {}, {}
  for _, name in ipairs(t) do
    local why = bad_topic(o, name, action)
    if why then return nil, 400, why end
    if not seen[name] then
      seen[name] = true
      list[#list + 1] = name
    end
  end
  return list
end

--- access:topics(q_topic, default, action): access.topics with this app's options.
function A:topics(t, default, action)
  return M.topics(self.opts, t, default, action)
end

-- RFC 6750 3: the challenge of a 401 (the description as a quoted-string).
local function challenge(msg)
  if msg == "missing token" then return 'Bearer realm="sse"' end
  return ('Bearer realm="sse", error="invalid_token", error_description="%s"'):format(
    (msg:gsub('[%c"\\]', "'")))
end

--- access:check(req, action, topics) -> topics, info | nil, status, message,
-- headers (a flat list for res:header). Runs the authorization hook (which
-- may wait) and normalises its answer.
function A:check(req, action, topics)
  local fn = self.authorize
  if not fn then return topics, nil end
  local allowed, info, msg = fn(req, action, topics)
  if not allowed then
    local status = tonumber(info) or 403
    if status < 400 or status > 599 then status = 403 end
    msg = type(msg) == "string" and msg or (status == 401 and "unauthorized" or "forbidden")
    return nil, status, msg, status == 401 and { "WWW-Authenticate", challenge(msg) } or nil
  end
  if allowed == true then allowed = topics end
  if type(allowed) ~= "table" then
    error("authorize must return the allowed topics (a list) or true, got " .. type(allowed), 0)
  end
  for i = 1, #allowed do
    if type(allowed[i]) ~= "string" then error("authorize returned a topic that is not a string", 0) end
  end
  if #allowed == 0 then return nil, 403, ("not allowed to %s to these topics"):format(action) end
  return allowed, type(info) == "table" and info or nil
end

--- access:admit(req, topics) -> true | nil, status, message: the limits a
-- new stream must fit (topics in the hub, streams per address). Once it
-- answers true, the stream is counted against req.remote: give it to
-- access:adopt, or call access:release(req) when no stream follows.
function A:admit(req, topics)
  local o = self.opts
  local max, hub = o.max_topics, self.hub
  if max > 0 then
    local new = 0
    for _, t in ipairs(topics) do
      if hub:topic_count(t) == 0 then new = new + 1 end
    end
    if new > 0 and hub:topic_total() + new > max then
      return nil, 503, ("too many topics in the hub (max-topics is %d)"):format(max)
    end
  end
  local per, ip = o.max_connections_per_ip, req.remote
  if per > 0 and ip then
    -- counted at once, so two admits at the same time (two nginx workers)
    -- cannot both take the last place
    if not self.counter:take(ip, per) then
      return nil, 429, ("too many streams from one address (max-connections-per-ip is %d)"):format(per)
    end
    self._taken[req] = ip
  end
  return true
end

--- access:release(req): admit counted a stream for req that was not made
-- (the client left): the count is given back.
function A:release(req)
  local ip = self._taken[req]
  if ip then
    self._taken[req] = nil
    self.counter:give(ip)
  end
end

--- access:adopt(stream, req, info): count the stream against its address,
-- remember who it is (info.sub: the token's subject) and close it when its
-- authorization expires (info.exp).
function A:adopt(stream, req, info)
  local counted = self._taken[req]
  self._taken[req] = nil
  local user = info and info.sub
  self._meta[stream] = { ip = req.remote, user = type(user) == "string" and user or nil, since = os.time(),
                         counted = counted }
  local exp = info and tonumber(info.exp)
  if exp then self.expiry:set(stream, exp + self.leeway) end
  stream:on_close(self._on_close)
end

function A:_closed(stream)
  self.expiry:clear(stream)
  local m = self._meta[stream]
  self._meta[stream] = nil
  if m and m.counted then self.counter:give(m.counted) end
end

--- What is known of a stream: {ip =, user =, since =} (fields may be nil).
function A:meta(stream) return self._meta[stream] or {} end

--- The number of open streams from ip (counted while
-- max_connections_per_ip is set).
function A:streams_from(ip) return self.counter:count(ip) end

function A:close()
  if self._tick then self._tick.stop() end
  self.expiry:close()
end

return M
