--- sse_hub.config: the options of the OpenResty demo hub, checked in nginx's
-- master (init_by_lua) so a bad one stops nginx from starting with a message.
--
-- The names are those of `make run` (sse.app; `--max-topics-per-connection`
-- is max_topics_per_connection), given three ways:
--   configure{ jwt_secret = "...", presence = true }       -- Lua, from init_by_lua
--   SSE_HUB_ARGS="--jwt-secret ... --presence"            -- the luv hub's flags (run.sh
--                                                         -- passes its arguments so)
--   SSE_HUB_TOKEN, SSE_HUB_REDIS                          -- single options (nginx.conf)
local flags = require("sse.app.flags")
local access = require("sse.app.access")
local auth = require("sse.app.auth")
local rules = require("sse.app.rules")

local M = {}

-- The defaults of `make run` (sse.app.DEFAULTS) that apply here, and the
-- options nginx adds.
M.DEFAULTS = {
  dict = "sse_log",      -- the log every worker shares (lua_shared_dict)
  state_dict = "sse_hub", -- the demo's own state: counters, mailboxes, stats
  replay_events = 1000,
  replay_ttl = 3600,
  keepalive = 15,
  outbox_limit = 256 * 1024,
  slow_policy = "close",
  max_topics_per_connection = 32,
  max_topics = 100000,   -- per worker: each worker's hub holds at most this many
  max_connections_per_ip = 0,
  max_topic_bytes = 128,
  max_event_types = 64,
  stats_top = 20,
  stats_top_max = 100,
  default_topic = "default",
  poll = 0.005,          -- seconds between two looks of a worker at the log
  redis_prefix = "sse:",
}

-- Options without a default (nil: off).
M.OPTIONAL = {
  retry = "number",      -- ms sent to each client as "retry:"
  token = "string",      -- bearer token for /publish, /stats, /subscriptions, /metrics, /admin
  redis = "string",      -- redis://host[:port][/db]: ids, replay and fan-out through Redis
  cors = "table",        -- origins allowed by CORS ({"*"}: any)
  cors_credentials = "boolean",
  catalogue = "string",  -- a Lua file returning an sse.catalogue: publishes are typed
  jwt_secret = "string", jwt_key = "string", jwt_query = "boolean", jwt_leeway = "number",
  presence = "boolean",
}

-- The luv hub's flags that mean the same here (sse.app.main.FLAGS' names).
M.FLAGS = {
  { "replay-events", "int" }, { "replay-ttl", "number" }, { "token", "string" },
  { "cors", "list" }, { "cors-credentials", "flag" }, { "keepalive", "number" },
  { "outbox-limit", "int" }, { "slow-policy", "string" }, { "catalogue", "string" },
  { "redis", "string" }, { "redis-prefix", "string" }, { "jwt-secret", "string" },
  { "jwt-key", "string" }, { "jwt-query", "flag" }, { "jwt-leeway", "number" },
  { "max-topics-per-connection", "int" }, { "max-topics", "int" },
  { "max-connections-per-ip", "int" }, { "max-topic-bytes", "int" }, { "presence", "flag" },
  { "retry", "int" },
}

-- The luv hub's flags nginx does itself.
M.NGINX_DOES = {
  host = "listen", port = "listen", ["max-connections"] = "worker_connections",
  ["write-timeout"] = "send_timeout", ["head-timeout"] = "client_header_timeout",
  ["max-body-bytes"] = "client_max_body_size", ["replay-bytes"] = "the size of lua_shared_dict sse_log",
  compress = "gzip on; gzip_types text/event-stream;",
}

local opts = {}
for k, v in pairs(M.DEFAULTS) do opts[k] = v end
M.opts = opts

local function fail(msg)
  error("sse_hub: " .. msg, 0)
end

--- args(text) -> options from the luv hub's flags, one argument a line
-- (SSE_HUB_ARGS as run.sh writes it); raises naming a bad flag.
function M.args(text)
  local argv = {}
  for line in (text or ""):gmatch("[^\n]+") do argv[#argv + 1] = line end
  local o, err = flags.parse(argv, M.FLAGS)
  if o == "help" then fail("the flags are those of `make run` (sse-hub --help), but for: "
    .. "--host, --port (HOST and PORT), and what nginx does itself") end
  if not o then
    local name = err and err:match("^unknown option %-%-([%w-]+)")
    if name and M.NGINX_DOES[name] then
      fail(("--%s: in nginx, set %s in nginx.conf"):format(name, M.NGINX_DOES[name]))
    end
    fail(err)
  end
  return o
end

local read_file = require("sse.app.rules").read_file

--- configure(o): sets options (M.DEFAULTS' and M.OPTIONAL's names) and
-- checks them all, as the luv hub does; reads --jwt-key's file and loads
-- --catalogue here, in the master (its workers may not read them).
function M.configure(o)
  for k, v in pairs(o or {}) do
    if M.DEFAULTS[k] == nil and M.OPTIONAL[k] == nil then fail("unknown option '" .. tostring(k) .. "'") end
    if v == "" and M.OPTIONAL[k] == "string" then v = nil end -- an empty env variable: unset
    opts[k] = v
  end
  for k, kind in pairs(M.OPTIONAL) do
    if opts[k] ~= nil and type(opts[k]) ~= kind then
      fail(("option '%s' must be a %s"):format(k, kind))
    end
  end
  if opts.token and not opts.token:find(auth.TOKEN68) then
    fail("the token must be a bearer token: letters, digits and -._~+/ (then '=' padding)")
  end
  if opts.cors_credentials and not opts.cors then fail("option 'cors_credentials' needs 'cors' (the origins)") end
  for _, origin in ipairs(opts.cors or {}) do
    if type(origin) ~= "string" or origin == "" or origin:find("[%c%s]") then
      fail("option 'cors' must be a list of origins like \"https://example.com\" or \"*\"")
    end
    if origin == "*" and opts.cors_credentials then
      fail("option 'cors_credentials' needs a list of origins, not '*'")
    end
  end
  if opts.jwt_key and not opts.jwt_key:find("-----BEGIN", 1, true) then
    local pem, err = read_file(opts.jwt_key)
    if not pem then fail("option 'jwt_key': cannot read " .. tostring(err)) end
    opts.jwt_key = pem
  end
  local ok, err = pcall(access.check, opts)
  if not ok then fail(rules.option_message(err) or tostring(err)) end
  local cat = opts.catalogue
  if type(cat) == "string" then
    local loaded, cerr = require("sse.catalogue").load(cat)
    if not loaded then fail("option 'catalogue': " .. tostring(cerr)) end
    M.catalogue = loaded
  end
  return opts
end

return M
