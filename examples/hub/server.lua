-- The sse demo hub: `make run`, or
--   lua5.4 examples/hub/server.lua [--host H] [--port P] [options]   (--help lists them)
local uv = require("luv")
-- Many idle connections: collect garbage sooner so RSS stays near the live
-- size (see "Tuning" in README.md).
collectgarbage("setpause", 100)
local App = require("sse.app")

local D = App.DEFAULTS
local FLAGS = {
  { "host", "string", "address to bind", D.host },
  { "port", "int", "port to bind (0: any free port)", D.port },
  { "replay-events", "int", "events kept for replay", D.replay_events },
  { "replay-bytes", "int", "bytes of encoded events kept for replay", D.replay_bytes },
  { "replay-ttl", "number", "seconds an event is kept for replay", D.replay_ttl },
  { "token", "string", "require 'Authorization: Bearer TOKEN' to publish", nil },
  { "cors", "list", "comma-separated origins allowed by CORS ('*' for any)", nil },
  { "max-connections", "int", "connections served at once (more get 503)", D.max_connections },
  { "keepalive", "number", "seconds between keep-alive comments to idle clients", D.keepalive },
  { "outbox-limit", "int", "bytes queued per client before the slow policy applies", D.outbox_limit },
  { "slow-policy", "string", "close | drop_oldest", D.slow_policy },
  { "write-timeout", "number", "seconds sent data may stay unacknowledged (vanished clients)", D.write_timeout },
  { "head-timeout", "number", "seconds a client has to send a request head", 10 },
  { "max-body-bytes", "int", "largest request body (publish) accepted", 1048576 },
}

local function usage(out)
  out:write("usage: lua5.4 examples/hub/server.lua [options]\n\nA live SSE hub with replay, ",
    "a publish endpoint and a dashboard.\n\noptions:\n")
  for _, f in ipairs(FLAGS) do
    out:write(("  --%-17s %s%s\n"):format(f[1] .. " " .. (f[2] == "list" and "A,B" or f[2]:upper()), f[3],
      f[4] ~= nil and (" (default " .. tostring(f[4]) .. ")") or ""))
  end
  out:write("  --help              this text\n")
end

local function die(msg)
  io.stderr:write("sse hub: ", msg, "\n")
  usage(io.stderr)
  os.exit(2)
end

local opts = {}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--help" or a == "-h" then usage(io.stdout) os.exit(0) end
  local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
  name = name or a:match("^%-%-([%w-]+)$")
  local flag
  for _, f in ipairs(FLAGS) do if f[1] == name then flag = f end end
  if not flag then die("unknown option " .. a) end
  local v = inline
  if v == nil then
    i = i + 1
    v = arg[i]
    if v == nil then die("option --" .. name .. " needs a value") end
  end
  local key = name:gsub("-", "_")
  if flag[2] == "int" or flag[2] == "number" then
    local n = tonumber(v)
    if not n or (flag[2] == "int" and n ~= math.floor(n)) or n < 0 then
      die(("--%s: %s expected, got '%s'"):format(name, flag[2] == "int" and "integer" or "number", v))
    end
    v = flag[2] == "int" and math.floor(n) or n
  elseif flag[2] == "list" then
    local list = {}
    for item in v:gmatch("[^,%s]+") do list[#list + 1] = item end
    v = list
  end
  opts[key] = v
  i = i + 1
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
opts.dashboard = here .. "dashboard.html"

local ok, app = pcall(App.new, opts)
if not ok then die(tostring(app):match("%((.*)%)$") or tostring(app)) end
local port, err = app:listen()
if not port then
  io.stderr:write("sse hub: cannot listen on ", tostring(opts.host or D.host), ":",
    tostring(opts.port or D.port), ": ", tostring(err), "\n")
  os.exit(1)
end

local base = ("http://%s:%d/"):format(opts.host or D.host, port)
local auth = opts.token and (" -H 'Authorization: Bearer " .. opts.token .. "'") or ""
io.stdout:write("sse hub listening on ", base, "\n",
  "  dashboard  ", base, "\n",
  "  subscribe  curl -N '", base, "events?topic=news'\n",
  "  publish    curl", auth, " -d topic=news -d event=headline -d data=hello ", base, "publish\n",
  "  stats      curl ", base, "stats\n")
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
os.exit(0)
