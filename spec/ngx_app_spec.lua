-- The OpenResty demo hub with issue 13's rules, in a real nginx with two
-- workers (examples/openresty/): JWTs minted by PyJWT (helpers.jwt_tokens),
-- a stream closed when its token expires and the client resuming with a
-- fresh one, the limits at their edges (streams per address counted across
-- workers), presence and /subscriptions over both workers, CORS, /metrics
-- (checked by promtool), /catalogue, and options given as the luv hub's
-- flags. `make spec-ngx` runs it on LuaJIT with SSE_NGX_SPEC=1.
local N = require("helpers.nginx")
local cjson = require("cjson")

if not os.getenv("SSE_NGX_SPEC") then
  describe("nginx demo hub: authorization, limits, presence", function()
    pending("runs under `make spec-ngx` (SSE_NGX_SPEC=1, the LuaJIT build)")
  end)
  return
end

local T = require("helpers.jwt_tokens")
local unpack = table.unpack or unpack -- luacheck: ignore 143

local SECRET = "0123456789abcdef0123456789abcdef"

local EXTRA = [==[
        location = /_pid {
            content_by_lua_block { ngx.print(ngx.worker.pid()) }
        }
]==]

-- The example config with cfg (a Lua table's text) as its options and
-- args (the luv hub's flags, one a line) as SSE_HUB_ARGS.
local function start(cfg, args, more)
  local srv, err = N.start({ example = true, workers = 2, edit = function(text)
    local n
    text, n = text:gsub('configure{ token = os.getenv%("SSE_HUB_TOKEN"%) }', function()
      return "configure(" .. cfg .. ")"
    end)
    assert(n == 1, "configure line not found in the example nginx.conf")
    if args then
      text, n = text:gsub('configure_args%(os.getenv%("SSE_HUB_ARGS"%)%)', function()
        return "configure_args(" .. ("%q"):format(args):gsub("\\\n", "\\n") .. ")"
      end)
      assert(n == 1, "configure_args line not found in the example nginx.conf")
    end
    text, n = text:gsub("(\n        location / {)", function(loc) return "\n" .. EXTRA .. loc end)
    assert(n == 1)
    for pat, rep in pairs(more or {}) do
      text, n = text:gsub(pat, rep)
      assert(n == 1, "not in the example nginx.conf: " .. pat)
    end
    return text
  end })
  assert(srv, err)
  return srv
end

local function json(res)
  local ok, v = pcall(cjson.decode, res.body)
  return ok and v or nil
end

local function request(port, method, path, headers, body)
  local res = assert(N.request(port, method, path, { headers = headers, body = body }))
  res.json = (res.headers["content-type"] or ""):find("json", 1, true) and json(res) or nil
  return res
end

local function bearer(t) return { Authorization = "Bearer " .. t } end

local function publish(port, fields, headers)
  local parts = {}
  for k, v in pairs(fields) do parts[#parts + 1] = k .. "=" .. v end
  local h = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return request(port, "POST", "/publish", h, table.concat(parts, "&"))
end

-- An event stream on the worker pid (or any worker), its head arrived.
local function open_stream(srv, path, headers, pid)
  local c
  if pid then
    c = assert(N.connect_worker(srv.port, pid), "no connection to worker " .. pid)
  else
    c = assert(N.connect(srv.port))
  end
  c:stream(path, headers)
  assert(N.wait(function() return c.head ~= nil or c.eof end, 3000), "no answer to " .. path)
  return c
end

local function no_errors(srv)
  local errs = srv:errors()
  assert(#errs == 0, "error.log:\n" .. table.concat(errs, "\n"))
end

describe("nginx demo hub with --jwt-secret", function()
  local srv, port, tok
  local now = os.time()
  lazy_setup(function()
    srv = start(('{ jwt_secret = %q, token = "admin" }'):format(SECRET))
    port = srv.port
    tok = T.hostile(SECRET, now)
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("streams the topics a token grants, 403 for the others, and publishes by the token's grant", function()
    local s = open_stream(srv, "/events?topic=news&topic=user/42/inbox", bearer(tok.good))
    assert.are.equal(200, s.head.status)
    assert.matches("text/event-stream", s.head.headers["content-type"], 1, true)
    local r = publish(port, { topic = "user/42/inbox", data = "for-42" }, bearer(tok.good))
    assert.are.equal(200, r.status)
    assert(N.wait(function() return #s:of_type() == 1 end, 2000), "the event did not arrive")
    assert.are.equal("for-42", s:of_type()[1].data)
    r = request(port, "GET", "/events?topic=news&topic=sports", bearer(tok.good))
    assert.are.equal(403, r.status)
    assert.are.same({ error = "not allowed to subscribe to 'sports'" }, r.json)
    r = publish(port, { topic = "news", data = "x" }, bearer(tok.good))
    assert.are.equal(403, r.status)
    assert.are.same({ error = "not allowed to publish to 'news'" }, r.json)
    -- the static token still publishes anywhere and guards /stats
    assert.are.equal(200, publish(port, { topic = "news", data = "x" }, bearer("admin")).status)
    assert.are.equal(401, request(port, "GET", "/stats", bearer(tok.good)).status)
    assert.are.equal(200, request(port, "GET", "/stats", bearer("admin")).status)
    s:close()
  end)

  it("answers 401 with a challenge to every bad token, and nothing else", function()
    local r = request(port, "GET", "/events?topic=news")
    assert.are.equal(401, r.status)
    assert.are.same({ error = "missing token" }, r.json)
    assert.are.equal('Bearer realm="sse"', r.headers["www-authenticate"])
    local cases = T.bad_cases(tok)
    for _, c in ipairs(cases) do
      r = request(port, "GET", "/events?topic=news", bearer(c[1]))
      assert.are.equal(401, r.status, c[2])
      assert.are.same({ error = c[2] }, r.json)
      assert.are.equal(('Bearer realm="sse", error="invalid_token", error_description="%s"'):format(c[2]),
        r.headers["www-authenticate"])
      r = publish(port, { topic = "user/42/a", data = "x" }, bearer(c[1]))
      assert.are.equal(401, r.status, c[2])
    end
    -- no stream was opened for any of them
    local st = request(port, "GET", "/stats", bearer("admin")).json
    assert.are.equal(0, st.connections)
  end)

  it("takes the cookie for subscribe only, and ?token= only with --jwt-query", function()
    local s = open_stream(srv, "/events?topic=news", { Cookie = "a=b; sse_token=" .. tok.good })
    assert.are.equal(200, s.head.status)
    s:close()
    local r = publish(port, { topic = "user/42/a", data = "x" }, { Cookie = "sse_token=" .. tok.good })
    assert.are.equal(401, r.status)
    assert.are.equal(401, request(port, "GET", "/events?topic=news&token=" .. tok.good).status)
  end)
end)

describe("nginx demo hub: a token that expires", function()
  it("closes the stream on time; the client resumes on either worker with a fresh token, losing nothing", function()
    local client = require("sse.client")
    local srv = start(('{ jwt_secret = %q, jwt_leeway = 0 }'):format(SECRET))
    finally(function() srv:stop() end)
    local t0 = os.time()
    local short, fresh = unpack(T.mint({
      { alg = "HS256", key = SECRET, claims = { exp = t0 + 3, sse = { subscribe = { "news" } } } },
      { alg = "HS256", key = SECRET, claims = { exp = t0 + 600,
        sse = { subscribe = { "news" }, publish = { "news" } } } },
    }))
    local uv = require("luv")
    local got, expired_at = {}, nil
    local url = ("http://127.0.0.1:%d/events?topic=news"):format(srv.port)
    local c1 = client.connect(url, {
      headers = { Authorization = "Bearer " .. short }, retry = 50,
      on_event = function(ev)
        if ev.type == "sse-token-expired" then
          local s, us = uv.gettimeofday()
          expired_at = s + us / 1e6
        elseif ev.type == "message" then
          got[#got + 1] = ev.data
        end
      end,
    })
    assert(N.wait(function() return c1:ready_state() == "open" end, 3000))
    local function pub(i)
      assert.are.equal(200, publish(srv.port, { topic = "news", data = "e" .. i }, bearer(fresh)).status)
    end
    for i = 1, 3 do pub(i) end
    assert(N.wait(function() return #got == 3 end, 3000))
    assert(N.wait(function() return expired_at ~= nil end, 5000), "no sse-token-expired event")
    -- exp is t0 + 3 (t0 is os.time(), up to 1 s before now: minting and
    -- connecting under load must fit before it); the worker looks every 0.25 s
    assert(expired_at >= t0 + 3 and expired_at < t0 + 4.5, "closed at t0 + " .. (expired_at - t0))
    assert(N.wait(function() return c1:ready_state() == "closed" end, 3000),
      "the client did not stop (its reconnect with the old token must get 401)")
    local last = c1:last_event_id()
    assert.truthy(last ~= "")
    for i = 4, 6 do pub(i) end
    -- a new connection with the fresh token (it lands on either worker)
    local c2 = client.connect(url, {
      headers = { Authorization = "Bearer " .. fresh }, last_event_id = last,
      on_event = function(ev) if ev.type == "message" then got[#got + 1] = ev.data end end,
    })
    assert(N.wait(function() return #got == 6 end, 3000), "the replay after the expiry is incomplete")
    pub(7)
    assert(N.wait(function() return #got == 7 end, 3000))
    assert.are.same({ "e1", "e2", "e3", "e4", "e5", "e6", "e7" }, got)
    c1:close()
    c2:close()
    no_errors(srv)
  end)
end)

describe("nginx demo hub: options as the luv hub's flags", function()
  it("verifies RS256 tokens with --jwt-key and takes ?token= with --jwt-query (SSE_HUB_ARGS)", function()
    local K = T.keys()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(K.rsa.public)
    f:close()
    -- read by the master (root) at start: the workers need not read it
    local srv = start("{}", "--jwt-key\n" .. path .. "\n--jwt-query\n--max-topics-per-connection=2\n")
    finally(function()
      srv:stop()
      os.remove(path)
    end)
    local rs = T.mint_one({ alg = "RS256", key = K.rsa.private,
      claims = { exp = os.time() + 600, sse = { subscribe = { "*" } } } })
    local s = open_stream(srv, "/events?topic=news&token=" .. rs)
    assert.are.equal(200, s.head.status)
    s:close()
    local hs = T.mint_one({ alg = "HS256", key = SECRET,
      claims = { exp = os.time() + 600, sse = { subscribe = { "*" } } } })
    assert.are.same({ error = "alg not allowed" }, request(srv.port, "GET", "/events?topic=news", bearer(hs)).json)
    local r = request(srv.port, "GET", "/events?topic=a&topic=b&topic=c&token=" .. rs)
    assert.are.equal(400, r.status)
    assert.are.same({ error = "too many topics on one connection (max-topics-per-connection is 2)" }, r.json)
    no_errors(srv)
  end)

  it("refuses to start on a bad option, saying which", function()
    local cases = {
      { '{ jwt_secret = "short" }', nil, "option 'jwt_secret': secret shorter than 32 bytes" },
      { "{}", "--port\n9\n", "--port: in nginx, set listen in nginx.conf" },
      { "{}", "--bogus\n", "unknown option --bogus" },
      { '{ cors_credentials = true }', nil, "option 'cors_credentials' needs 'cors' (the origins)" },
      { "{}", "--jwt-query\n", "option 'jwt_query' needs 'jwt_secret' or 'jwt_key'" },
    }
    for _, c in ipairs(cases) do
      local srv, err = N.start({ example = true, workers = 1, edit = function(text)
        text = text:gsub('configure{ token = os.getenv%("SSE_HUB_TOKEN"%) }', function()
          return "configure(" .. c[1] .. ")"
        end)
        if c[2] then
          text = text:gsub('configure_args%(os.getenv%("SSE_HUB_ARGS"%)%)', function()
            return "configure_args(" .. ("%q"):format(c[2]):gsub("\\\n", "\\n") .. ")"
          end)
        end
        return text
      end })
      if srv then srv:stop() end
      assert.is_nil(srv, "nginx started with " .. c[1] .. " " .. tostring(c[2]))
      assert.matches("sse_hub: " .. c[3], err, 1, true)
    end
  end)
end)

describe("nginx demo hub's limits over two workers", function()
  local srv, pids
  lazy_setup(function()
    srv = start("{ max_connections_per_ip = 2, max_topics = 3, max_topic_bytes = 8 }")
    pids = srv:workers()
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("--max-connections-per-ip: 429 past it whichever worker counts, room again when one closes", function()
    local a = open_stream(srv, "/events?topic=x", nil, pids[1])
    local b = open_stream(srv, "/events?topic=x", nil, pids[2])
    assert.are.equal(200, a.head.status)
    assert.are.equal(200, b.head.status)
    for _, pid in ipairs(pids) do
      local c = assert(N.connect_worker(srv.port, pid))
      local r = assert(c:request("GET", "/events?topic=x"))
      c:close()
      assert.are.equal(429, r.status, "worker " .. pid)
      assert.are.same({ error = "too many streams from one address (max-connections-per-ip is 2)" }, json(r))
    end
    b:close()
    local c
    assert(N.wait(function()
      if c then c:close() end
      c = open_stream(srv, "/events?topic=x", nil, pids[1])
      return c.head.status == 200
    end, 3000), "no room after a stream closed")
    c:close()
    a:close()
  end)

  it("--max-topics (per worker): 503 for a subscription creating more, existing topics still open", function()
    local p = pids[1]
    local s1 = open_stream(srv, "/events?topic=a&topic=b", nil, p)
    local c = assert(N.connect_worker(srv.port, p))
    local r = assert(c:request("GET", "/events?topic=c&topic=d&topic=e"))
    assert.are.equal(503, r.status)
    assert.are.same({ error = "too many topics in the hub (max-topics is 3)" }, json(r))
    c:close()
    s1:close()
  end)

  it("the topic name rules: 400 naming the rule", function()
    local cases = {
      { "/events?topic=123456789", "topic name longer than 8 bytes (max-topic-bytes)" },
      { "/events?topic=a*", "topic name contains '*' (patterns are for grants)" },
      { "/events?topic=a%01", "topic name contains a control character" },
      { "/events?topic=%FF", "topic name is not valid UTF-8" },
      { "/events?topic=", "empty topic name" },
    }
    for _, c in ipairs(cases) do
      local r = request(srv.port, "GET", c[1])
      assert.are.equal(400, r.status, c[1])
      assert.are.same({ error = c[2] }, r.json)
    end
    local r = publish(srv.port, { topic = "$pres", data = "x" })
    assert.are.equal(400, r.status)
    assert.are.same({ error = "topics starting with '$' are the hub's own" }, r.json)
  end)
end)

describe("nginx demo hub: presence, /subscriptions, CORS, /metrics, /catalogue", function()
  local srv, pids
  lazy_setup(function()
    srv = start('{ presence = true, token = "admin", cors = { "https://a.example" }, cors_credentials = true,'
      .. ' catalogue = "' .. N.ROOT .. '/examples/catalogue.lua" }')
    pids = srv:workers()
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("--presence: joins and leaves in either worker reach $presence in both, counted over both", function()
    local watchers = { open_stream(srv, "/events?topic=$presence", nil, pids[1]),
                       open_stream(srv, "/events?topic=$presence", nil, pids[2]) }
    local a, b
    finally(function()
      for _, c in ipairs({ a, b, watchers[1], watchers[2] }) do c:close() end
    end)
    a = open_stream(srv, "/events?topic=news&topic=sport", nil, pids[1])
    assert(N.wait(function() return #watchers[2]:of_type("presence") >= 2 end, 2000))
    b = open_stream(srv, "/events?topic=news", nil, pids[2])
    assert(N.wait(function() return #watchers[1]:of_type("presence") >= 3 end, 2000))
    a:close()
    for _, w in ipairs(watchers) do
      assert(N.wait(function() return #w:of_type("presence") >= 5 end, 3000), "presence events missing")
    end
    N.sleep(100) -- nothing more comes
    for _, w in ipairs(watchers) do
      local got = {}
      local join = w:of_type("sse-join")[1].id
      for _, ev in ipairs(w:of_type("presence")) do
        assert.are.equal(join, ev.id) -- no id of their own: not kept for replay
        local d = cjson.decode(ev.data)
        got[#got + 1] = d.topic .. " " .. d.subscribers .. " " .. tostring(d.joined)
      end
      table.sort(got)
      assert.are.same({ "news 1 false", "news 1 true", "news 2 true", "sport 0 false", "sport 1 true" }, got)
    end
  end)

  it("GET /subscriptions lists every worker's topics and a topic's streams", function()
    local a = open_stream(srv, "/events?topic=live&topic=other", nil, pids[1])
    local b = open_stream(srv, "/events?topic=live", nil, pids[2])
    finally(function()
      a:close()
      b:close()
    end)
    assert.are.equal(401, request(srv.port, "GET", "/subscriptions").status)
    local want = { topics = 2, subscriptions = { { topic = "live", subscribers = 2 },
      { topic = "other", subscribers = 1 } } }
    local r
    -- (the streams of the test before leave their workers' hubs soon after they close)
    assert(N.wait(function()
      r = request(srv.port, "GET", "/subscriptions", bearer("admin"))
      return r.status == 200 and r.json.topics == 2
    end, 3000), "/subscriptions: " .. tostring(r and r.body))
    assert.are.same(want, r.json)
    r = request(srv.port, "GET", "/subscriptions?topic=live", bearer("admin"))
    assert.are.equal("live", r.json.topic)
    assert.are.equal(2, r.json.subscribers)
    assert.are.equal(2, #r.json.streams)
    assert.is_false(r.json.more)
    for _, s in ipairs(r.json.streams) do
      assert.are.equal("127.0.0.1", s.remote)
      assert(math.abs(s.since - os.time()) <= 2)
    end
    r = request(srv.port, "GET", "/subscriptions?topic=live&limit=1", bearer("admin"))
    assert.are.equal(1, #r.json.streams)
    assert.is_true(r.json.more)
    r = request(srv.port, "GET", "/subscriptions?limit=0", bearer("admin"))
    assert.are.equal(400, r.status)
    assert.are.same({ error = "query 'limit' must be an integer in 1..1000" }, r.json)
  end)

  it("CORS: an allowed origin is echoed with credentials, a preflight answered, others get nothing", function()
    local r = request(srv.port, "GET", "/stats", { Origin = "https://a.example", Authorization = "Bearer admin" })
    assert.are.equal(200, r.status)
    assert.are.equal("https://a.example", r.headers["access-control-allow-origin"])
    assert.are.equal("true", r.headers["access-control-allow-credentials"])
    assert.are.equal("Origin", r.headers.vary)
    local s = open_stream(srv, "/events?topic=c", { Origin = "https://a.example" })
    assert.are.equal("https://a.example", s.head.headers["access-control-allow-origin"])
    s:close()
    r = request(srv.port, "OPTIONS", "/publish", { Origin = "https://a.example",
      ["Access-Control-Request-Method"] = "POST", ["Access-Control-Request-Headers"] = "authorization" })
    assert.are.equal(204, r.status)
    assert.are.equal("POST", r.headers["access-control-allow-methods"])
    assert.are.equal("Last-Event-ID, Content-Type, Authorization", r.headers["access-control-allow-headers"])
    assert.are.equal("https://a.example", r.headers["access-control-allow-origin"])
    r = request(srv.port, "GET", "/stats", { Origin = "https://evil.example", Authorization = "Bearer admin" })
    assert.is_nil(r.headers["access-control-allow-origin"])
    assert.are.equal("Origin", r.headers.vary)
  end)

  it("GET /metrics adds up both workers (promtool accepts it); /catalogue types publishes", function()
    local c1 = open_stream(srv, "/events?topic=m", nil, pids[1])
    local c2 = open_stream(srv, "/events?topic=m", nil, pids[2])
    finally(function()
      c1:close()
      c2:close()
    end)
    local function metric(text, name)
      return tonumber(text:match("\n" .. name:gsub("[%[%]{}\"=]", "%%%0") .. " (%S+)"))
    end
    local before = request(srv.port, "GET", "/metrics", bearer("admin")).body
    assert.are.equal(401, request(srv.port, "GET", "/metrics").status)
    for i = 1, 3 do -- typed by the catalogue: a JSON body ("message" carries a string)
      local r = request(srv.port, "POST", "/publish", { ["Content-Type"] = "application/json",
        Authorization = "Bearer admin" }, ('{"topic":"m","data":"d%d"}'):format(i))
      assert.are.equal(200, r.status, r.body)
    end
    assert(N.wait(function() return #c1:of_type() == 3 and #c2:of_type() == 3 end, 3000))
    local r = request(srv.port, "GET", "/metrics", bearer("admin"))
    assert.are.equal(200, r.status)
    assert.matches("^text/plain; version=0.0.4", r.headers["content-type"])
    local text = r.body
    assert.are.equal(metric(before, "sse_deliveries_total") + 6, metric(text, "sse_deliveries_total"))
    assert.are.equal(metric(before, "sse_events_published_total") + 3, metric(text, "sse_events_published_total"))
    assert(metric(text, "sse_connections") >= 2)
    assert(metric(text, 'sse_http_responses_total{status="200"}') >= 5)
    assert(metric(text, 'sse_auth_refusals_total{status="401"}') >= 1)
    assert(metric(text, "sse_replay_events") >= 3)
    assert(metric(text, "sse_http_connections") >= 2)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    local p = assert(io.popen("env -u LD_PRELOAD promtool check metrics < " .. path .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    assert.matches("rc=0", out, 1, true)
    -- the catalogue: served, and publishes typed
    local cat = request(srv.port, "GET", "/catalogue")
    assert.are.equal(200, cat.status)
    assert.are.equal("application/schema+json", cat.headers["content-type"])
    assert.truthy(cjson.decode(cat.body))
    local bad = request(srv.port, "POST", "/publish", { ["Content-Type"] = "application/json",
      Authorization = "Bearer admin" }, '{"topic":"m","event":"price","data":{"symbol":"X"}}')
    assert.are.equal(400, bad.status)
    assert.matches("price", bad.json.error, 1, true)
    no_errors(srv)
  end)
end)
