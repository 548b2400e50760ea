-- The demo hub with authorization (issue 13): JWTs minted by PyJWT
-- (helpers.jwt_tokens), real sockets, real luv loops, sse.client as the
-- subscriber that resumes with a fresh token; and the limits at their edges.
local App = require("sse.app")
local C = require("helpers.http_client")
local T = require("helpers.jwt_tokens")
local util = require("helpers.util")
local cjson = require("cjson")
local uv = require("luv")

local SECRET = "0123456789abcdef0123456789abcdef"
local get, post = C.get, C.post

local apps, clients = {}, {}
local function start(opts)
  opts.port, opts.host, opts.dashboard = 0, "127.0.0.1", false
  opts.log = opts.log or function() end
  local app = App.new(opts)
  assert(app:listen())
  apps[#apps + 1] = app
  return app
end

local function connect(app)
  local c = C.connect(app.port)
  assert.is_true(c.connected, "connect failed: " .. tostring(c.err))
  clients[#clients + 1] = c
  return c
end

local function bearer(t) return { "Authorization: Bearer " .. t .. "\r\n" } end

-- one request on a fresh connection; the body decoded when it is JSON
local function request(app, raw)
  local r = connect(app):request(raw, 3000)
  assert(r, "no answer")
  if (r.headers["content-type"] or ""):find("json", 1, true) then r.json = cjson.decode(r.body) end
  return r
end

-- a stream: the connection once its head arrived (wait for more with C.wait)
local function open_stream(app, path, extra)
  local c = connect(app)
  c:send(get(path, extra))
  assert.is_true(C.wait(function() return c.buf:find("\r\n\r\n", 1, true) ~= nil end, 3000))
  return c
end

local function publish_form(app, fields, extra)
  local parts = {}
  for k, v in pairs(fields) do parts[#parts + 1] = k .. "=" .. v end
  local body = table.concat(parts, "&")
  return request(app, post("/publish", body,
    { "Content-Type: application/x-www-form-urlencoded\r\n", table.unpack(extra or {}) }))
end

after_each(function()
  for _, c in ipairs(clients) do c:close() end
  for _, a in ipairs(apps) do a:close() end
  clients, apps = {}, {}
  C.sleep(5)
end)

describe("the demo hub with --jwt-secret", function()
  local now = os.time()
  local tok
  setup(function()
    tok = T.hostile(SECRET, now)
  end)

  it("streams the topics a token grants and refuses the others with 403", function()
    local app = start({ jwt_secret = SECRET })
    local s = open_stream(app, "/events?topic=news&topic=user/42/inbox", bearer(tok.good))
    assert.truthy(s.buf:find("HTTP/1.1 200 OK", 1, true))
    local r = publish_form(app, { topic = "user/42/inbox", data = "for-42" }, bearer(tok.good))
    assert.equal(200, r.status)
    assert.is_true(C.wait(function() return s.buf:find("data: for-42\n", 1, true) ~= nil end, 2000))
    r = request(app, get("/events?topic=news&topic=sports", bearer(tok.good)))
    assert.equal(403, r.status)
    assert.same({ error = "not allowed to subscribe to 'sports'" }, r.json)
    r = publish_form(app, { topic = "news", data = "x" }, bearer(tok.good))
    assert.equal(403, r.status)
    assert.same({ error = "not allowed to publish to 'news'" }, r.json)
  end)

  it("answers 401 with a challenge to every bad token, and nothing else", function()
    local app = start({ jwt_secret = SECRET, max_head_bytes = 16384 })
    local r = request(app, get("/events?topic=news"))
    assert.equal(401, r.status)
    assert.same({ error = "missing token" }, r.json)
    assert.equal('Bearer realm="sse"', r.headers["www-authenticate"])
    local cases = T.bad_cases(tok)
    for _, c in ipairs(cases) do
      r = request(app, get("/events?topic=news", bearer(c[1])))
      assert.equal(401, r.status, c[2])
      assert.same({ error = c[2] }, r.json)
      assert.equal(('Bearer realm="sse", error="invalid_token", error_description="%s"'):format(c[2]),
        r.headers["www-authenticate"])
      assert.is_nil(r.headers["content-type"]:find("event-stream", 1, true))
      r = publish_form(app, { topic = "user/42/a", data = "x" }, bearer(c[1]))
      assert.equal(401, r.status, c[2])
    end
    assert.equal(0, app.hub:connection_count())
  end)

  it("takes ?token= only with --jwt-query, and the cookie for subscribe", function()
    local plain = start({ jwt_secret = SECRET })
    assert.equal(401, request(plain, get("/events?topic=news&token=" .. tok.good)).status)
    local s = open_stream(plain, "/events?topic=news", { "Cookie: a=b; sse_token=" .. tok.good .. "\r\n" })
    assert.truthy(s.buf:find("200 OK", 1, true))
    local r = publish_form(plain, { topic = "user/42/a", data = "x" }, { "Cookie: sse_token=" .. tok.good .. "\r\n" })
    assert.equal(401, r.status)
    local q = start({ jwt_secret = SECRET, jwt_query = true })
    s = open_stream(q, "/events?topic=news&token=" .. tok.good)
    assert.truthy(s.buf:find("200 OK", 1, true))
  end)

  it("still lets the holder of the static --token publish anywhere", function()
    local app = start({ jwt_secret = SECRET, token = "admin-token" })
    local r = publish_form(app, { topic = "news", data = "x" }, bearer("admin-token"))
    assert.equal(200, r.status)
    assert.equal(401, publish_form(app, { topic = "news", data = "x" }, bearer("other")).status)
    -- /stats stays the static token's
    assert.equal(401, request(app, get("/stats", bearer(tok.good))).status)
    assert.equal(200, request(app, get("/stats", bearer("admin-token"))).status)
  end)

  it("closes a stream when its token expires; the client resumes with a fresh one and loses nothing", function()
    local app = start({ jwt_secret = SECRET, jwt_leeway = 0 })
    local t0 = os.time()
    local short, fresh = table.unpack(T.mint({
      { alg = "HS256", key = SECRET, claims = { exp = t0 + 3, sse = { subscribe = { "news" } } } },
      { alg = "HS256", key = SECRET, claims = { exp = t0 + 600,
        sse = { subscribe = { "news" }, publish = { "news" } } } },
    }))
    local client = require("sse.client")
    local got, expired_at, errors = {}, nil, {}
    local url = ("http://127.0.0.1:%d/events?topic=news"):format(app.port)
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
      on_error = function(err, info) errors[#errors + 1] = { err, info and info.closed } end,
    })
    assert.is_true(C.wait(function() return c1:ready_state() == "open" end, 3000))
    local pub = function(i)
      assert.equal(200, publish_form(app, { topic = "news", data = "e" .. i }, bearer(fresh)).status)
    end
    for i = 1, 3 do pub(i) end
    assert.is_true(C.wait(function() return #got == 3 end, 3000))
    -- the expiry: an event, then the stream closes; the reconnect with the
    -- old token is refused for good (401)
    assert.is_true(C.wait(function() return expired_at ~= nil end, 5000))
    assert.is_true(expired_at >= t0 + 3 and expired_at < t0 + 4.5, "closed at " .. expired_at - t0)
    assert.is_true(C.wait(function() return c1:ready_state() == "closed" end, 3000))
    local last = c1:last_event_id()
    assert.truthy(last ~= "")
    -- published while nobody listened
    for i = 4, 6 do pub(i) end
    local c2 = client.connect(url, {
      headers = { Authorization = "Bearer " .. fresh }, last_event_id = last,
      on_event = function(ev) if ev.type == "message" then got[#got + 1] = ev.data end end,
    })
    assert.is_true(C.wait(function() return #got == 6 end, 3000))
    pub(7)
    assert.is_true(C.wait(function() return #got == 7 end, 3000))
    assert.same({ "e1", "e2", "e3", "e4", "e5", "e6", "e7" }, got)
    c1:close()
    c2:close()
  end)

  it("lets a custom authorize hook wait and narrow the topics", function()
    local http = require("sse.http")
    local calls = {}
    local app = start({ authorize = function(req, action, topics)
      calls[#calls + 1] = action .. " " .. table.concat(topics, ",")
      local user = http.await(function(done)
        local t = uv.new_timer()
        t:start(30, 0, function() t:close() done(req.headers["x-user"]) end)
      end)
      if not user then return nil, 401, "who are you?" end
      if action == "publish" then return nil, 403, "read only" end
      local mine = {}
      for _, t in ipairs(topics) do
        if t:sub(1, #user + 1) == user .. "/" then mine[#mine + 1] = t end
      end
      return mine, { exp = os.time() + 600 }
    end })
    local r = request(app, get("/events?topic=ann/a"))
    assert.equal(401, r.status)
    assert.same({ error = "who are you?" }, r.json)
    assert.equal('Bearer realm="sse", error="invalid_token", error_description="who are you?"',
      r.headers["www-authenticate"])
    r = request(app, get("/events?topic=bob/a", { "X-User: ann\r\n" }))
    assert.equal(403, r.status)
    local s = open_stream(app, "/events?topic=ann/a&topic=bob/b", { "X-User: ann\r\n" })
    assert.truthy(s.buf:find("200 OK", 1, true))
    assert.is_true(app.hub:is_subscribed(app.hub:streams()[1], "ann/a"))
    assert.is_false(app.hub:is_subscribed(app.hub:streams()[1], "bob/b"))
    r = publish_form(app, { topic = "ann/a", data = "x" }, { "X-User: ann\r\n" })
    assert.equal(403, r.status)
    assert.same({ error = "read only" }, r.json)
  end)

  it("raises on misuse, naming the option", function()
    util.raises_arg(1, "option 'jwt_secret': secret shorter than 32 bytes", App.new, { jwt_secret = "short" })
    util.raises_arg(1, "option 'jwt_query' needs 'jwt_secret' or 'jwt_key'", App.new, { jwt_query = true })
    util.raises_arg(1, "option 'authorize' must be a function", App.new, { authorize = 1 })
    util.raises_arg(1, "option 'authorize' and the jwt options exclude each other", App.new,
      { authorize = print, jwt_secret = SECRET })
    local ok, err = pcall(App.new, { jwt_key = "/nonexistent/key.pem" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("option 'jwt_key': cannot read", 1, true))
  end)

  it("try_new answers nil and the message for the same options", function()
    assert.are.same({ nil, "option 'jwt_secret': secret shorter than 32 bytes" },
      { App.try_new({ jwt_secret = "short" }) })
    assert.are.same({ nil, "option 'jwt_leeway' must be a number of seconds in 0..86400" },
      { App.try_new({ jwt_secret = SECRET, jwt_leeway = -1 }) })
    assert.are.same({ nil, "option 'jwt_key': not a PEM public key or certificate" },
      { App.try_new({ jwt_key = "README.md" }) })
    assert.are.same({ nil, "option 'authorize' must be a function" }, { App.try_new({ authorize = 1 }) })
    assert.are.same({ nil, "unknown option 'tokn'" }, { App.try_new({ tokn = "x" }) })
    assert.are.same({ nil, "table expected, got string" }, { App.try_new("x") })
    -- a part below the hub's own options raises as that part does
    util.raises_arg(1, "field 'outbox_limit': positive number expected, got 0", App.try_new, { outbox_limit = 0 })
  end)

  it("verifies RS256 tokens with --jwt-key", function()
    local K = T.keys()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(K.rsa.public)
    f:close()
    local app = start({ jwt_key = path })
    os.remove(path)
    local rs = T.mint_one({ alg = "RS256", key = K.rsa.private,
      claims = { exp = os.time() + 600, sse = { subscribe = { "news" } } } })
    local s = open_stream(app, "/events?topic=news", bearer(rs))
    assert.truthy(s.buf:find("200 OK", 1, true))
    assert.same({ error = "alg not allowed" }, request(app, get("/events?topic=news", bearer(tok.good))).json)
  end)
end)

describe("the demo hub's limits", function()
  it("--max-connections-per-ip: 429 past it, room again when a stream closes", function()
    local app = start({ max_connections_per_ip = 2 })
    local a = open_stream(app, "/events?topic=x")
    open_stream(app, "/events?topic=x")
    local r = request(app, get("/events?topic=x"))
    assert.equal(429, r.status)
    assert.same({ error = "too many streams from one address (max-connections-per-ip is 2)" }, r.json)
    a:close()
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
    assert.truthy(open_stream(app, "/events?topic=x").buf:find("200 OK", 1, true))
  end)

  it("--max-topics: 503 when a subscription would create more topics, existing ones still open", function()
    local app = start({ max_topics = 3 })
    open_stream(app, "/events?topic=a&topic=b")
    open_stream(app, "/events?topic=c")
    local r = request(app, get("/events?topic=a&topic=d"))
    assert.equal(503, r.status)
    assert.same({ error = "too many topics in the hub (max-topics is 3)" }, r.json)
    assert.truthy(open_stream(app, "/events?topic=a&topic=c").buf:find("200 OK", 1, true))
    assert.equal(3, app.hub:topic_total())
  end)

  it("--max-topics-per-connection and the topic name rules: 400 naming the rule", function()
    local app = start({ max_topics_per_connection = 2, max_topic_bytes = 8 })
    local cases = {
      { "/events?topic=a&topic=b&topic=c", "too many topics on one connection (max-topics-per-connection is 2)" },
      { "/events?topic=123456789", "topic name longer than 8 bytes (max-topic-bytes)" },
      { "/events?topic=a*", "topic name contains '*' (patterns are for grants)" },
      { "/events?topic=a%01", "topic name contains a control character" },
      { "/events?topic=%FF", "topic name is not valid UTF-8" },
      { "/events?topic=", "empty topic name" },
    }
    for _, c in ipairs(cases) do
      local r = request(app, get(c[1]))
      assert.equal(400, r.status, c[1])
      assert.same({ error = c[2] }, r.json)
    end
    -- '$' topics are the hub's: readable, never published to
    assert.truthy(open_stream(app, "/events?topic=$pres").buf:find("200 OK", 1, true))
    local r = publish_form(app, { topic = "$pres", data = "x" })
    assert.equal(400, r.status)
    assert.same({ error = "topics starting with '$' are the hub's own" }, r.json)
    -- exactly at the limits: fine
    assert.truthy(open_stream(app, "/events?topic=12345678&topic=b").buf:find("200 OK", 1, true))
  end)
end)

describe("the demo hub's presence", function()
  -- the events of a raw stream's buffer: {event =, data =, id =}
  local function events(c)
    local list = {}
    local body = c.buf:match("\r\n\r\n(.*)$") or ""
    for block in body:gmatch("(.-)\n\n") do
      local ev = {}
      for line in block:gmatch("[^\n]+") do
        local k, v = line:match("^(%w+): ?(.*)$")
        if k then ev[k] = v end
      end
      if ev.event then list[#list + 1] = ev end
    end
    return list
  end

  it("--presence: joins and leaves as presence events on $presence, not stored, without ids", function()
    local app = start({ presence = true })
    local watcher = open_stream(app, "/events?topic=$presence")
    local a = open_stream(app, "/events?topic=news&topic=sport")
    local b = open_stream(app, "/events?topic=news")
    a:close()
    local function presences()
      local n = 0
      for _, ev in ipairs(events(watcher)) do if ev.event == "presence" then n = n + 1 end end
      return n
    end
    assert.is_true(C.wait(function() return presences() >= 5 end, 3000))
    C.sleep(50) -- nothing more comes
    local got = {}
    for _, ev in ipairs(events(watcher)) do
      if ev.event == "presence" then
        assert.is_nil(ev.id)
        got[#got + 1] = cjson.decode(ev.data)
      end
    end
    local function has(t, n, joined)
      for _, g in ipairs(got) do
        if g.topic == t and g.subscribers == n and g.joined == joined then return true end
      end
      return false
    end
    assert.is_true(has("news", 1, true) and has("sport", 1, true) and has("news", 2, true))
    assert.is_true(has("news", 1, false) and has("sport", 0, false))
    assert.equal(5, #got)
    -- nothing about $presence itself, nothing stored for replay
    for _, g in ipairs(got) do assert.not_equal("$presence", g.topic) end
    assert.equal(0, app.replayer:len())
    b:close()
  end)

  it("GET /subscriptions lists topics, and a topic's streams with who they are", function()
    local tok = T.mint_one({ alg = "HS256", key = SECRET,
      claims = { exp = os.time() + 600, sub = "alice", sse = { subscribe = { "*" } } } })
    local app = start({ jwt_secret = SECRET, token = "admin" })
    open_stream(app, "/events?topic=news&topic=sport", bearer(tok))
    open_stream(app, "/events?topic=news", bearer(tok))
    assert.equal(401, request(app, get("/subscriptions")).status)
    local r = request(app, get("/subscriptions", bearer("admin")))
    assert.equal(200, r.status)
    assert.same({ topics = 2, subscriptions = { { topic = "news", subscribers = 2 },
      { topic = "sport", subscribers = 1 } } }, r.json)
    r = request(app, get("/subscriptions?topic=news", bearer("admin")))
    assert.equal("news", r.json.topic)
    assert.equal(2, r.json.subscribers)
    assert.equal(2, #r.json.streams)
    assert.is_false(r.json.more)
    for _, s in ipairs(r.json.streams) do
      assert.equal("127.0.0.1", s.remote)
      assert.equal("alice", s.user)
      assert.is_true(math.abs(s.since - os.time()) <= 2)
      assert.equal("number", type(s.id))
    end
    r = request(app, get("/subscriptions?topic=news&limit=1", bearer("admin")))
    assert.equal(1, #r.json.streams)
    assert.is_true(r.json.more)
    r = request(app, get("/subscriptions?limit=0", bearer("admin")))
    assert.equal(400, r.status)
    assert.same({ error = "query 'limit' must be an integer in 1..1000" }, r.json)
  end)
end)
