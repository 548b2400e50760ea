--- sse.http.options: the server's options and CORS settings, checked once.
-- check(opts) -> settings | nil, message (the caller raises, naming
-- http.new); shared small helpers for argument errors.
local M = {}

M.DEFAULTS = {
  host = "127.0.0.1",
  port = 8080,
  max_connections = 10000,
  head_timeout = 10,
  idle_timeout = 60,
  max_head_bytes = 8192,
  max_headers = 64,
  max_body_bytes = 1024 * 1024,
  max_query_pairs = 256,
}

--- An HTTP token (method and header names).
M.TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

--- Raises "bad argument #n to 'fname' (msg)" at `level` above the caller.
function M.argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

--- How a bad value is shown in a message.
function M.show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "number" then return type(v) end
  if v ~= v then return "nan" end
  return tostring(v)
end

function M.is_int(v)
  return type(v) == "number" and v == math.floor(v) and v > -math.huge and v < math.huge
end

local show, is_int = M.show, M.is_int

local KNOWN = {
  host = true, port = true, max_connections = true, head_timeout = true, idle_timeout = true,
  max_head_bytes = true, max_headers = true, max_body_bytes = true, max_query_pairs = true,
  cors = true, log = true,
}

-- A failed check: the message travels in a table (told apart from bugs).
local function bad(msg) error({ msg = msg }, 0) end

local function opt_int(opts, name, lo, hi, range)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if not is_int(v) or v < lo or v > hi then
    bad(("%s must be an integer %s, got %s"):format(name, range, show(v)))
  end
  return math.floor(v)
end

local function opt_seconds(opts, name)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if type(v) ~= "number" or not (v > 0 and v < 1e9) then
    bad(("%s must be a positive number of seconds, got %s"):format(name, show(v)))
  end
  return v
end

-- { origins = {...}, max_age =, credentials = } -> { set, any, max_age, credentials }
local function check_cors(c)
  if c == nil then return nil end
  if type(c) ~= "table" then bad("cors must be a table, got " .. type(c)) end
  for k in pairs(c) do
    if k ~= "origins" and k ~= "max_age" and k ~= "credentials" then
      bad(("cors.%s is not a known option"):format(tostring(k)))
    end
  end
  if type(c.origins) ~= "table" then bad("cors.origins must be a list of strings, got " .. type(c.origins)) end
  local set, any = {}, false
  for i, o in ipairs(c.origins) do
    if type(o) ~= "string" or o == "" or o:find("[%c%s]") then
      bad(("cors.origins[%d] must be an origin like \"https://example.com\" or \"*\", got %s"):format(i, show(o)))
    end
    if o == "*" then any = true else set[o] = true end
  end
  local max_age = c.max_age
  if max_age == nil then
    max_age = 600
  elseif not is_int(max_age) or max_age < 0 then
    bad("cors.max_age must be an integer >= 0, got " .. show(max_age))
  end
  if c.credentials ~= nil and type(c.credentials) ~= "boolean" then
    bad("cors.credentials must be a boolean, got " .. type(c.credentials))
  end
  return { set = set, any = any, max_age = math.floor(max_age), credentials = c.credentials == true }
end

local function check(opts)
  if type(opts) ~= "table" then bad("table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then bad(("unknown option '%s'"):format(tostring(k))) end
  end
  local host = opts.host
  if host == nil then
    host = M.DEFAULTS.host
  elseif type(host) ~= "string" or host == "" then
    bad("host must be an IP address string, got " .. (type(host) == "string" and '""' or type(host)))
  end
  if opts.log ~= nil and type(opts.log) ~= "function" then
    bad("log must be a function, got " .. type(opts.log))
  end
  return {
    host = host,
    port = opt_int(opts, "port", 0, 65535, "in 0..65535"),
    max_connections = opt_int(opts, "max_connections", 1, 1e9, ">= 1"),
    head_timeout = opt_seconds(opts, "head_timeout"),
    idle_timeout = opt_seconds(opts, "idle_timeout"),
    max_head_bytes = opt_int(opts, "max_head_bytes", 64, 1073741824, "in 64..2^30"),
    max_headers = opt_int(opts, "max_headers", 1, 10000, "in 1..10000"),
    max_body_bytes = opt_int(opts, "max_body_bytes", 0, 9007199254740992, "in 0..2^53"),
    max_query_pairs = opt_int(opts, "max_query_pairs", 1, 1000000, "in 1..1000000"),
    cors = check_cors(opts.cors),
    log = opts.log,
  }
end

--- check(opts) -> settings | nil, message
function M.check(opts)
  local ok, res = pcall(check, opts)
  if ok then return res end
  if type(res) == "table" then return nil, res.msg end
  error(res, 0)
end

return M
