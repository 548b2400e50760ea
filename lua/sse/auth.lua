--- sse.auth: who may subscribe to or publish on which topics.
--
-- The model: a request carries a token (Authorization: Bearer, a cookie, or
-- -- opt-in -- a query parameter); a verified token's claims grant topic
-- patterns per action:
--
--   { "sse": { "subscribe": ["news", "user/42/*"], "publish": ["user/42/*"] },
--     "exp": 1767225600 }
--
-- A pattern is a topic name (exact match), "*" (every topic) or "prefix/*"
-- (every topic that starts with "prefix/", at any depth). A request is
-- allowed only when every topic it names matches a pattern of its action:
-- 401 when there is no valid token, 403 when the token does not grant a
-- topic.
local M = {}

local ACTIONS = { subscribe = true, publish = true }

-- A pattern is well formed: no '*' except a whole "*" or a final "/*".
local function pattern_ok(p)
  if p == "" then return false end
  local star = p:find("*", 1, true)
  if not star then return true end
  if p == "*" then return true end
  return star == #p and p:sub(-2) == "/*"
end

--- match(pattern, topic) -> boolean
function M.match(pattern, topic)
  if pattern == "*" then return true end
  if pattern:sub(-2) == "/*" then
    local prefix = pattern:sub(1, -2) -- keeps the '/'
    return #topic > #prefix and topic:sub(1, #prefix) == prefix
  end
  return pattern == topic
end

-- t is a list (keys 1..#t, nothing else) of strings.
local function string_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k, v in pairs(t) do
    if type(k) ~= "number" or type(v) ~= "string" then return false end
    n = n + 1
  end
  return n == #t
end

local function check_args(fname, action, topics)
  if not ACTIONS[action] then
    error(("bad argument #2 to '%s' (action must be \"subscribe\" or \"publish\", got %s)"):format(
      fname, tostring(action)), 3)
  end
  if not string_list(topics) then
    error(("bad argument #3 to '%s' (topics must be a list of strings)"):format(fname), 3)
  end
end

--- allowed(claims, action, topics) -> topics | nil, status, message.
-- claims: a verified token's claims (a table). The grant of an action is
-- claims.sse[action], a list of patterns; a claim of the wrong shape makes
-- the token unusable (401), a missing or insufficient grant is 403.
function M.allowed(claims, action, topics)
  check_args("allowed", action, topics)
  if type(claims) ~= "table" then
    error(("bad argument #1 to 'allowed' (table expected, got %s)"):format(type(claims)), 2)
  end
  local grant = claims.sse
  if grant == nil then return nil, 403, "token grants no topics" end
  if type(grant) ~= "table" or (#grant > 0) then
    return nil, 401, "claim 'sse' must be an object"
  end
  local patterns = grant[action]
  if patterns == nil then return nil, 403, ("token does not allow %s"):format(action) end
  if not string_list(patterns) then
    return nil, 401, ("claim 'sse.%s' must be an array of strings"):format(action)
  end
  for _, p in ipairs(patterns) do
    if not pattern_ok(p) then
      return nil, 401, ("claim 'sse.%s' has a bad pattern"):format(action)
    end
  end
  local out = {}
  for i, topic in ipairs(topics) do
    local ok = false
    for _, p in ipairs(patterns) do
      if M.match(p, topic) then
        ok = true
        break
      end
    end
    if not ok then
      local shown = #topic > 64 and topic:sub(1, 64) .. "..." or topic
      return nil, 403, ("not allowed to %s to '%s'"):format(action, shown)
    end
    out[i] = topic
  end
  return out
end

-- RFC 6750 b64token: the characters a bearer token may hold.
local function b64token(s)
  return s ~= "" and s:find("^[%w%-%._~%+/]+=*$") ~= nil
end

-- The first value of a query parameter or header that may be a list.
local function single(v)
  if type(v) == "table" then return nil, "given more than once" end
  return v
end

-- The value of the cookie named name in a Cookie header, or nil.
local function cookie_value(header, name)
  for pair in header:gmatch("[^;,]+") do
    local k, v = pair:match("^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if k == name then
      if v:sub(1, 1) == '"' and v:sub(-1) == '"' and #v >= 2 then v = v:sub(2, -2) end
      return v
    end
  end
  return nil
end

--- token(req, action [, opts]) -> token | nil [, status, message]
-- Where a token is looked for, in order: the Authorization header (scheme
-- "Bearer", any case); the cookie opts.cookie (default "sse_token"; false:
-- never) for subscribe only -- browsers attach cookies to cross-site
-- POSTs, so a cookie must not authorize a publish; the query parameter
-- opts.query (default false: never; true: "token"), for EventSource, which
-- cannot set headers (a URL ends up in logs: give such tokens a short exp).
-- Returns nil alone when there is no token, nil, 401, message for a
-- malformed one.
function M.token(req, action, opts)
  opts = opts or {}
  local headers = req.headers or {}
  local auth = headers.authorization or headers.Authorization
  if auth ~= nil then
    local a = single(auth)
    if type(a) ~= "string" then return nil, 401, "malformed authorization header" end
    -- RFC 7235: scheme 1*SP token68, the field's surrounding whitespace
    -- not part of it (the rule of sse.app.auth too)
    local scheme = a:match("^[ \t]*(%S+)")
    if scheme and scheme:lower() == "bearer" then
      local cred = a:match("^[ \t]*%S+ +([^ \t]+)[ \t]*$")
      if not cred or not b64token(cred) then return nil, 401, "malformed bearer token" end
      return cred
    end
  end
  local cname = opts.cookie
  if cname == nil then cname = "sse_token" end
  if cname and action == "subscribe" then
    local header = headers.cookie or headers.Cookie
    local v = type(header) == "string" and cookie_value(header, cname)
    if v then
      if not b64token(v) then return nil, 401, "malformed token cookie" end
      return v
    end
  end
  local qname = opts.query
  if qname == true then qname = "token" end
  if qname and req.query and req.query[qname] ~= nil then
    local v = single(req.query[qname])
    if type(v) ~= "string" or not b64token(v) then
      return nil, 401, "malformed token parameter"
    end
    return v
  end
  return nil
end

local JWT_OPTIONS = { cookie = true, query = true, anonymous = true }

local function field_name(f)
  return ("field '%s'"):format(f)
end

--- try_jwt(opts [, name]) -> authorize, verifier | nil, msg: M.jwt without
-- raising on a bad option; msg names an option by name(field) (default
-- "field 'cookie'"), as sse.jwt.try_verifier does.
function M.try_jwt(opts, name)
  name = name or field_name
  if type(opts) ~= "table" then return nil, "table expected, got " .. type(opts) end
  local vopts, topts = {}, {}
  for k, v in pairs(opts) do
    if JWT_OPTIONS[k] then topts[k] = v else vopts[k] = v end
  end
  if topts.cookie ~= nil and topts.cookie ~= false and type(topts.cookie) ~= "string" then
    return nil, name("cookie") .. " must be a cookie name or false"
  end
  if topts.query ~= nil and type(topts.query) ~= "boolean" and type(topts.query) ~= "string" then
    return nil, name("query") .. " must be a boolean or a parameter name"
  end
  local anon = topts.anonymous
  if anon ~= nil and type(anon) ~= "table" then
    return nil, name("anonymous") .. " must be a claims table"
  end
  local verifier, verr = require("sse.jwt").try_verifier(vopts, name)
  if not verifier then return nil, verr end
  local function authorize(req, action, topics)
    check_args("authorize", action, topics)
    local token, status, msg = M.token(req, action, topts)
    local claims
    if token then
      local err
      claims, err = verifier:verify(token)
      if not claims then return nil, 401, err end
    elseif status then
      return nil, status, msg
    elseif anon then
      claims = anon
    else
      return nil, 401, "missing token"
    end
    local allowed, st, why = M.allowed(claims, action, topics)
    if not allowed then return nil, st, why end
    return allowed, claims
  end
  return authorize, verifier
end

--- jwt(opts) -> authorize(req, action, topics) -> topics, claims | nil, status, message
-- The built-in authorizer: the token (M.token, options cookie and query),
-- verified by sse.jwt (every other option is the verifier's), then
-- M.allowed. opts.anonymous: claims ({sse = {subscribe = {...}}}) granted
-- to a request without any token; a bad token is refused all the same.
-- Raises "bad argument #1 to 'jwt' (...)" on a bad option.
function M.jwt(opts)
  local authorize, verifier = M.try_jwt(opts)
  if not authorize then error(("bad argument #1 to 'jwt' (%s)"):format(verifier), 2) end
  return authorize, verifier
end

return M
