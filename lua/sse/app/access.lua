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
--   max_connections_per_ip     429 past that many open streams from one address
--   max_topic_bytes            400; and a topic name is valid UTF-8 without
--                              control characters or '*', and does not start
--                              with '$' (the hub's own topics, such as
--                              $presence, may be read, never published to)
local deadlines = require("sse.deadlines")
local core = require("sse.core")

local M = {}

local A = {}
A.__index = A

-- How sse.auth's errors name the options they came from.
local JWT_OPTION = { secret = "jwt_secret", public_key_pem = "jwt_key", leeway = "jwt_leeway",
                     query = "jwt_query" }
local function option_of(field)
  return JWT_OPTION[field] and ("option '%s'"):format(JWT_OPTION[field]) or ("field '%s'"):format(field)
end

local argerror = require("sse.app.rules").option_error

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- new(opts, hub) -> access. opts: the app's options (authorize, jwt_secret,
-- jwt_key, jwt_query, the limits). A bad option raises rules.option_error.
function M.new(o, hub)
  local self = setmetatable({ opts = o, hub = hub, per_ip = {}, leeway = 0,
                              -- stream -> {ip =, user =, since =}
                              _meta = setmetatable({}, { __mode = "k" }) }, A)
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
  self.authorize = o.authorize
  if o.jwt_secret or o.jwt_key then
    local leeway = o.jwt_leeway
    if leeway == nil then leeway = require("sse.jwt").DEFAULTS.leeway end
    local jopts = { secret = o.jwt_secret, query = o.jwt_query or false, leeway = leeway }
    if o.jwt_key then
      if type(o.jwt_key) ~= "string" then argerror("option 'jwt_key' must be a file name") end
      local pem, err = read_file(o.jwt_key)
      if not pem then argerror("option 'jwt_key': cannot read " .. tostring(err)) end
      jopts.public_key_pem = pem
    end
    local fn, verifier = require("sse.auth").try_jwt(jopts, option_of)
    if not fn then argerror(verifier) end
    self.authorize, self.leeway = fn, leeway
    self.verifier = verifier
  end
  for _, k in ipairs({ "max_topics_per_connection", "max_topics", "max_connections_per_ip",
                       "max_topic_bytes" }) do
    local v = o[k]
    if type(v) ~= "number" or v ~= math.floor(v) or v < 0 then
      argerror(("option '%s' must be an integer >= 0"):format(k))
    end
  end
  -- one deadline per stream whose authorization expires, on one timer
  self.expiry = deadlines.new({ loop = true, on_due = function(stream, at)
    if stream:is_closed() then return end
    stream:send({ event = "sse-token-expired", data = ('{"exp":%d}'):format(math.floor(at)) })
    stream:close()
  end })
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
-- new stream must fit (per address, topics in the hub).
function A:admit(req, topics)
  local o = self.opts
  local per = o.max_connections_per_ip
  if per > 0 and req.remote and (self.per_ip[req.remote] or 0) >= per then
    return nil, 429, ("too many streams from one address (max-connections-per-ip is %d)"):format(per)
  end
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
  return true
end

--- access:adopt(stream, req, info): count the stream against its address,
-- remember who it is (info.sub: the token's subject) and close it when its
-- authorization expires (info.exp).
function A:adopt(stream, req, info)
  local ip = req.remote
  if ip then self.per_ip[ip] = (self.per_ip[ip] or 0) + 1 end
  local user = info and info.sub
  self._meta[stream] = { ip = ip, user = type(user) == "string" and user or nil, since = os.time() }
  local exp = info and tonumber(info.exp)
  if exp then self.expiry:set(stream, exp + self.leeway) end
  stream:on_close(self._on_close)
end

function A:_closed(stream)
  self.expiry:clear(stream)
  local m = self._meta[stream]
  self._meta[stream] = nil
  local ip = m and m.ip
  if ip then
    local n = (self.per_ip[ip] or 1) - 1
    self.per_ip[ip] = n > 0 and n or nil
  end
end

--- What is known of a stream: {ip =, user =, since =} (fields may be nil).
function A:meta(stream) return self._meta[stream] or {} end

--- The number of open streams from ip.
function A:streams_from(ip) return self.per_ip[ip] or 0 end

function A:close() self.expiry:close() end

return M
