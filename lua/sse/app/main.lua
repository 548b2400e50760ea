--- sse.app.main: the demo hub's command line (bin/sse-hub, and
-- examples/hub/server.lua from a checkout). main(argv) parses the flags,
-- starts the hub, runs the luv loop until SIGINT or SIGTERM and returns the
-- exit status: 0 after a clean stop, 1 when it cannot listen, 2 on a bad
-- command line.
local uv = require("luv")
local App = require("sse.app")
local flags = require("sse.app.flags")

local M = {}

local D = App.DEFAULTS
-- name, kind, help, default shown
M.FLAGS = {
  { "host", "string", "address to bind", D.host },
  { "port", "int", "port to bind (0: any free port)", D.port },
  { "replay-events", "int", "events kept for replay", D.replay_events },
  { "replay-bytes", "int", "bytes of encoded events kept for replay", D.replay_bytes },
  { "replay-ttl", "number", "seconds an event is kept for replay", D.replay_ttl },
  { "token", "string", "require 'Authorization: Bearer TOKEN' for /publish, /stats, /metrics and /admin"
    .. " (default: $SSE_TOKEN, which `ps` does not show)", nil },
  { "cors", "list", "comma-separated origins allowed by CORS ('*' for any)", nil },
  { "cors-credentials", "flag", "let those origins send credentials (cookies, Authorization)", nil },
  { "max-connections", "int", "connections served at once (more get 503)", D.max_connections },
  { "keepalive", "number", "seconds between keep-alive comments to idle clients", D.keepalive },
  { "outbox-limit", "int", "bytes queued per client before the slow policy applies", D.outbox_limit },
  { "slow-policy", "string", "close | drop_oldest", D.slow_policy },
  { "write-timeout", "number", "seconds sent data may stay unacknowledged (vanished clients)", D.write_timeout },
  { "head-timeout", "number", "seconds a client has to send a request head", 10 },
  { "max-body-bytes", "int", "largest request body (publish) accepted", 1048576 },
  { "compress", "flag", "gzip the event stream of clients that accept it (flushed per write)", nil },
  { "catalogue", "string", "a Lua file returning the event catalogue: publishes are typed, GET /catalogue", nil },
  { "redis", "string", "share ids, replay and fan-out with other hubs on this Redis (redis://host[:port][/db])", nil },
  { "redis-prefix", "string", "prefix of the hub's keys and channel in Redis", "sse:" },
  { "jwt-secret", "string", "HS256 secret (32+ bytes): /events and /publish need a JWT granting the topics", nil },
  { "jwt-key", "string", "file of a PEM public key (RS256 or ES256) the JWTs are checked with", nil },
  { "jwt-query", "flag", "also take the JWT from ?token= (EventSource cannot set headers)", nil },
  { "jwt-leeway", "number", "seconds of clock skew allowed on a JWT's exp and nbf", 30 },
  { "max-topics-per-connection", "int", "topics one connection may subscribe to (more: 400)",
    D.max_topics_per_connection },
  { "max-topics", "int", "topics in the hub (a subscription creating more: 503)", D.max_topics },
  { "max-connections-per-ip", "int", "open streams from one address (more: 429; 0: no limit)",
    D.max_connections_per_ip },
  { "max-topic-bytes", "int", "longest topic name", D.max_topic_bytes },
  { "presence", "flag", "publish joins and leaves as 'presence' events on the topic $presence", nil },
}

local function usage(out, prog)
  out:write("usage: ", prog, " [options]\n\nA live SSE hub with replay, ",
    "a publish endpoint and a dashboard.\n\noptions:\n")
  local rows, width = { { "--help", "this text" } }, 6
  for _, f in ipairs(M.FLAGS) do
    local value = f[2] == "flag" and "" or (f[2] == "list" and " A,B" or " " .. f[2]:upper())
    local left = "--" .. f[1] .. value
    width = math.max(width, #left)
    rows[#rows + 1] = { left, f[3] .. (f[4] ~= nil and (" (default " .. tostring(f[4]) .. ")") or "") }
  end
  table.insert(rows, table.remove(rows, 1))
  for _, r in ipairs(rows) do
    out:write("  ", r[1], (" "):rep(width - #r[1] + 2), r[2], "\n")
  end
end

--- parse(argv) -> opts | nil, message | "help" (sse.app.flags over M.FLAGS)
function M.parse(argv)
  return flags.parse(argv, M.FLAGS)
end

--- main(argv [, prog]) -> exit status. prog names the command in messages
-- (default "sse-hub").
function M.main(argv, prog)
  prog = prog or "sse-hub"
  local opts, err = M.parse(argv or {})
  if opts == "help" then
    usage(io.stdout, prog)
    return 0
  end
  local function die(msg)
    io.stderr:write(prog, ": ", msg, "\n")
    usage(io.stderr, prog)
    return 2
  end
  if not opts then return die(err) end
  local env_token = os.getenv("SSE_TOKEN")
  local from_env = opts.token == nil and env_token ~= nil and env_token ~= ""
  if from_env then opts.token = env_token end

  -- Many idle connections: collect garbage sooner so RSS stays near the
  -- live size (see "Tuning" in README.md).
  collectgarbage("setpause", 100)
  -- the hub's own options answer a message; a part below it raises its
  -- "bad argument" error, shown as it is
  local ok, app, why = pcall(App.try_new, opts)
  if not ok then return die(tostring(app)) end
  if not app then return die(why) end
  local port, lerr = app:listen()
  if not port then
    io.stderr:write(prog, ": cannot listen on ", tostring(opts.host or D.host), ":",
      tostring(opts.port or D.port), ": ", tostring(lerr), "\n")
    return 1
  end

  local base = ("http://%s:%d/"):format(opts.host or D.host, port)
  -- a token from the environment stays out of the log
  local shown = from_env and '"$SSE_TOKEN"' or opts.token
  local auth = opts.token and (" -H 'Authorization: Bearer " .. shown .. "'") or ""
  io.stdout:write("sse hub listening on ", base, "\n",
    "  dashboard  ", base, app.page and "" or " (not found: GET / answers 404)", "\n",
    "  subscribe  curl -N '", base, "events?topic=news'\n",
    "  publish    curl", auth, " -d topic=news -d event=headline -d data=hello ", base, "publish\n",
    "  stats      curl", auth, " ", base, "stats\n",
    "  metrics    curl", auth, " ", base, "metrics\n")
  if opts.jwt_secret or opts.jwt_key then
    io.stdout:write("  tokens     /events and /publish need a JWT granting the topics: ",
      "-H 'Authorization: Bearer JWT'", opts.jwt_query and " or ?token=JWT" or "", "\n")
  end
  io.stdout:flush()

  -- SIGINT / SIGTERM: stop accepting, close the streams cleanly, exit 0.
  local signals = {}
  local function stop(signame)
    io.stdout:write("sse hub: ", signame, ", closing ", app.hub:connection_count(), " stream(s)\n")
    io.stdout:flush()
    for _, s in ipairs(signals) do s:close() end
    app:close()
  end
  for _, name in ipairs({ "sigint", "sigterm" }) do
    local s = uv.new_signal()
    s:start(name, function() stop(name:upper()) end)
    signals[#signals + 1] = s
  end
  uv.run()
  return 0
end

return M
