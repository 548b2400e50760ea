-- End to end: two sse instances (sse.http + Hub on sse.redis.backend) on one
-- real redis-server, real sockets, sse.client subscribers. Each instance is
-- what bench/redis_fanout_server.lua runs: GET /sub?topic=..., POST /pub.
local cjson = require("cjson")
local sse = require("sse")
local async = require("helpers.async")
local R = require("helpers.redis_server")
local uv = require("luv")
local client = require("sse.client")
local redis = require("sse.redis")
local App = require("sse.app")
local P = require("helpers.tcp_proxy")

local srv
local n_prefix = 0

-- An instance on the Redis at url (default the spec's server).
local function instance(prefix, opts)
  opts = opts or {}
  local self = {}
  self.backend = redis.backend({
    url = opts.url or srv.url, prefix = prefix, heartbeat = 0.1, timeout = 0.5,
    backoff_min = 0.01, backoff_max = 0.1, max_len = opts.max_len, log = function() end,
  })
  self.hub = sse.Hub.new({ replayer = self.backend })
  self.http = sse.http.new({ host = "127.0.0.1", port = 0, log = function() end })
  self.http:get("/sub", function(req, res)
    local t = req.query.topic
    local stream = res:sse()
    if stream then self.hub:attach(stream, { topics = { t or "all" }, last_event_id = req.last_event_id }) end
  end)
  -- answered once Redis stored the event (res:later), 503 when it did not
  self.http:post("/pub", function(req, res)
    local ok, err = self.backend:publish({ data = req.body }, req.query.topic or "all", function(id, perr)
      if id then res:send(id) else res:status(503):send(perr) end
    end)
    if ok then res:later() else res:status(503):send(err) end
  end)
  self.port = assert(self.http:listen())
  function self.close()
    self.http:close()
    self.hub:close()
    self.backend:close()
  end
  return self
end

local function pair()
  n_prefix = n_prefix + 1
  local prefix = ("e2e%d:"):format(n_prefix)
  local a, b = instance(prefix), instance(prefix)
  async.wait(function() return a.backend:status().healthy and b.backend:status().healthy end, 3, "both healthy")
  return a, b
end

-- POST /pub on an instance -> status, body (a raw request on the running loop)
local function pub(inst, data, topic)
  local tcp, buf, done = uv.new_tcp(), {}, false
  local path = (inst.path or "/pub") .. (topic and ("?topic=" .. topic) or "")
  local key = inst.key and ("Idempotency-Key: " .. inst.key .. "\r\n") or ""
  tcp:connect("127.0.0.1", inst.port, function(err)
    if err then done = true return end
    tcp:write(("POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n%s")
      :format(path, key, #data, data))
    tcp:read_start(function(rerr, chunk)
      if rerr or not chunk then
        done = true
        tcp:close()
      else
        buf[#buf + 1] = chunk
      end
    end)
  end)
  async.wait(function() return done end, 3, "the /pub answer")
  local text = table.concat(buf)
  return tonumber(text:match("^HTTP/1%.1 (%d+)")), text:match("\r\n\r\n(.*)$")
end

-- An sse.client subscriber recording events.
local function subscribe(inst, opts)
  opts = opts or {}
  local got = { events = {}, opens = 0 }
  got.client = client.connect(("http://127.0.0.1:%d/sub%s"):format(inst.port, opts.query or ""), {
    last_event_id = opts.last_event_id, retry = 50,
    on_event = function(ev) got.events[#got.events + 1] = ev end,
    on_open = function() got.opens = got.opens + 1 end,
    on_error = function() end,
  })
  function got.datas(type_)
    local t = {}
    for _, e in ipairs(got.events) do
      if (type_ or "message") == e.type then t[#t + 1] = e.data end
    end
    return t
  end
  function got.count(type_) return #got.datas(type_) end
  return got
end

local function range(prefix, a, b)
  local t = {}
  for i = a, b do t[#t + 1] = prefix .. i end
  return t
end

describe("two sse instances on one Redis", function()
  setup(function() srv = R.start() end)
  teardown(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("a client on A receives what is published on B, with one id sequence", function()
    async.run(20, function()
      local a, b = pair()
      local on_a = subscribe(a)
      async.wait(function() return on_a.count("sse-join") == 1 end, 3, "joined")
      for i = 1, 4 do assert.are.equal(200, (pub(i % 2 == 0 and a or b, "e" .. i))) end
      assert.is_true(b.hub:broadcast_to("all", { data = "e5" })) -- the hub hands it to the backend
      async.wait(function() return on_a.count() == 5 end, 3, "five events on A")
      assert.are.same(range("e", 1, 5), on_a.datas())
      local ids = {}
      for _, e in ipairs(on_a.events) do if e.type == "message" then ids[#ids + 1] = e.id end end
      local epoch = ids[1]:match("^(.-)%-1$")
      assert.truthy(epoch)
      assert.are.same({ epoch .. "-1", epoch .. "-2", epoch .. "-3", epoch .. "-4", epoch .. "-5" }, ids)
      on_a.client:close()
      a.close()
      b.close()
    end)
  end)

  it("a client that leaves A and reconnects to B with Last-Event-ID gets every event once, in order", function()
    async.run(20, function()
      local a, b = pair()
      local on_a = subscribe(a, { query = "?topic=news" })
      async.wait(function() return on_a.count("sse-join") == 1 end, 3, "joined")
      for i = 1, 3 do pub(b, "n" .. i, "news") end
      pub(b, "other", "sport")
      async.wait(function() return on_a.count() == 3 end, 3, "three on A")
      local last = on_a.client:last_event_id()
      on_a.client:close()
      for i = 4, 8 do pub(a, "n" .. i, "news") end
      pub(a, "other2", "sport")
      -- some are published while the client reconnects
      local on_b = subscribe(b, { query = "?topic=news", last_event_id = last })
      for i = 9, 10 do pub(a, "n" .. i, "news") end
      async.wait(function() return on_b.count() == 7 end, 3, "seven on B")
      async.sleep(0.2)
      assert.are.same(range("n", 4, 10), on_b.datas())
      assert.are.equal(0, on_b.count("sse-gap"))
      on_b.client:close()
      a.close()
      b.close()
    end)
  end)

  it("while Redis is down: publishes fail (503) at once, streams stay open, nothing accepted is lost", function()
    async.run(30, function()
      local a, b = pair()
      local on_a = subscribe(a)
      async.wait(function() return on_a.count("sse-join") == 1 end, 3, "joined")
      for i = 1, 3 do assert.are.equal(200, (pub(b, "e" .. i))) end
      async.wait(function() return on_a.count() == 3 end, 3, "three")
      srv:kill()
      async.wait(function() return not b.backend:status().connected end, 2, "b sees the outage")
      local t0 = os.clock()
      local status = pub(b, "lost?")
      assert.are.equal(503, status)
      assert.is_true(os.clock() - t0 < 1)
      assert.is_false(a.backend:status().healthy)
      srv:restart() -- an empty Redis: a new epoch
      async.wait(function() return a.backend:status().healthy and b.backend:status().healthy end, 5, "back")
      for i = 4, 6 do assert.are.equal(200, (pub(b, "e" .. i))) end
      async.wait(function() return on_a.count() == 6 end, 3, "all six")
      assert.are.same(range("e", 1, 6), on_a.datas())
      assert.are.equal(1, on_a.opens) -- the stream stayed open
      -- continuity across the new epoch cannot be proven: the subscriber is told
      assert.are.equal(1, on_a.count("sse-gap"))
      on_a.client:close()
      a.close()
      b.close()
    end)
  end)

  it("a hung Redis fails a publish within the timeout (503), and the hub recovers", function()
    async.run(30, function()
      local a, b = pair()
      srv:pause()
      local t0 = os.time()
      local status = pub(b, "x")
      srv:resume()
      assert.are.equal(503, status)
      assert.is_true(os.time() - t0 <= 2)
      async.wait(function() return b.backend:status().healthy end, 5, "healthy again")
      assert.are.equal(200, (pub(b, "y")))
      a.close()
      b.close()
    end)
  end)

  it("resuming after Redis was flushed (a new epoch) gives the gap event", function()
    async.run(20, function()
      local a, b = pair()
      local on_a = subscribe(a)
      async.wait(function() return on_a.count("sse-join") == 1 end, 3, "joined")
      pub(b, "old")
      async.wait(function() return on_a.count() == 1 end, 3, "one")
      local last = on_a.client:last_event_id()
      on_a.client:close()
      srv:cli("FLUSHALL")
      pub(b, "new")
      async.wait(function() return a.backend:last_id() and a.backend:last_id():match("%-1$") end, 3, "new epoch")
      local on_b = subscribe(b, { last_event_id = last })
      async.wait(function() return on_b.count("sse-gap") == 1 and on_b.count() == 1 end, 3, "gap and new")
      local gap = cjson.decode(on_b.datas("sse-gap")[1])
      assert.are.equal(last, gap.last_event_id)
      assert.are.same({ "new" }, on_b.datas())
      on_b.client:close()
      a.close()
      b.close()
    end)
  end)

  it("resuming from an id older than the window gives the gap event, then what is kept", function()
    async.run(20, function()
      n_prefix = n_prefix + 1
      local prefix = ("e2e%d:"):format(n_prefix)
      local a, b = instance(prefix, { max_len = 3 }), instance(prefix, { max_len = 3 })
      async.wait(function() return a.backend:status().healthy and b.backend:status().healthy end, 3, "healthy")
      local on_a = subscribe(a)
      async.wait(function() return on_a.count("sse-join") == 1 end, 3, "joined")
      pub(a, "e1")
      async.wait(function() return on_a.count() == 1 end, 3, "one")
      local last = on_a.client:last_event_id()
      on_a.client:close()
      for i = 2, 7 do pub(a, "e" .. i) end
      local on_b = subscribe(b, { last_event_id = last })
      async.wait(function() return on_b.count() == 3 end, 3, "the window")
      assert.are.same({ "e5", "e6", "e7" }, on_b.datas())
      assert.are.equal(1, on_b.count("sse-gap"))
      assert.are.equal("sse-gap", on_b.events[1].type)
      on_b.client:close()
      a.close()
      b.close()
    end)
  end)
end)

describe("examples/redis_chat.lua", function()
  setup(function() srv = R.start() end)
  teardown(function()
    if srv then srv:stop() end
    srv = nil
  end)

  -- Starts the example on a free port; returns {port =, handle =}.
  local function start_example()
    local out = uv.new_pipe(false)
    local ex = { text = "" }
    local lua = os.getenv("SSE_LUA") or "lua5.4"
    -- the spec's environment as it is (search paths, and the sanitizer
    -- runtime under make spec-san)
    ex.handle = uv.spawn(lua, { args = { "examples/redis_chat.lua", "0", srv.url }, stdio = { nil, out, 2 } },
      function() end)
    assert(ex.handle, "cannot start " .. lua)
    out:read_start(function(_, data) if data then ex.text = ex.text .. data end end)
    async.wait(function() return ex.text:find("\n") end, 5, "the example's start-up line")
    ex.port = tonumber(ex.text:match("^chat on http://127%.0%.0%.1:(%d+)/events\n$"))
    assert.truthy(ex.port, ex.text)
    return ex
  end

  it("relays what is said on one instance to a subscriber of the other, once per key", function()
    async.run(20, function()
      local a, b = start_example(), start_example()
      local got = {}
      local c = client.connect(("http://127.0.0.1:%d/events"):format(a.port), {
        retry = 50, on_event = function(ev) got[#got + 1] = ev end, on_error = function() end })
      async.wait(function() return #got == 1 end, 5, "joined") -- sse-join
      local status, body = pub({ port = b.port, path = "/say", key = "k1" }, "hi there")
      assert.are.equal(200, status)
      local id = cjson.decode(body).id
      local status2, body2 = pub({ port = b.port, path = "/say", key = "k1" }, "hi there")
      assert.are.same({ 200, id }, { status2, cjson.decode(body2).id }) -- the retry is not stored twice
      async.wait(function() return #got == 2 end, 3, "the message on A")
      async.sleep(0.2)
      assert.are.same({ 2, "chat", "hi there", id }, { #got, got[2].type, got[2].data, got[2].id })
      c:close()
      a.handle:kill("sigterm")
      b.handle:kill("sigterm")
    end)
  end)
end)

-- The demo hub with --redis: POST /publish, /events, /stats as in the README.
describe("the demo hub on Redis (sse.app, --redis)", function()
  setup(function() srv = R.start() end)
  teardown(function()
    if srv then srv:stop() end
    srv = nil
  end)

  local function app(prefix, url)
    local a = App.new({ port = 0, redis = url or srv.url, redis_prefix = prefix, log = function() end,
                        dashboard = false })
    a.backend.heartbeat = 0.1 -- the liveness check, faster for the spec
    a.backend.beat:start(100, 100)
    assert(a:listen())
    return a
  end

  -- a raw HTTP request on the running loop -> status, body
  local function request(port, method, path, body)
    local tcp, buf, done = uv.new_tcp(), {}, false
    tcp:connect("127.0.0.1", port, function(err)
      if err then done = true return end
      tcp:write(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        .. "Content-Length: %d\r\n\r\n%s"):format(method, path, #(body or ""), body or ""))
      tcp:read_start(function(rerr, chunk)
        if rerr or not chunk then
          done = true
          tcp:close()
        else
          buf[#buf + 1] = chunk
        end
      end)
    end)
    async.wait(function() return done end, 3, "the answer to " .. path)
    local text = table.concat(buf)
    return tonumber(text:match("^HTTP/1%.1 (%d+)")), text:match("\r\n\r\n(.*)$")
  end

  local function stats(a)
    local _, body = request(a.port, "GET", "/stats")
    return cjson.decode(body)
  end

  local function publish(a, fields)
    local status, body = request(a.port, "POST", "/publish", cjson.encode(fields))
    return status, body and body ~= "" and cjson.decode(body) or nil
  end

  it("publishes on one hub, delivers on the other, and shows the backend in /stats", function()
    async.run(20, function()
      n_prefix = n_prefix + 1
      local prefix = ("app%d:"):format(n_prefix)
      local a, b = app(prefix), app(prefix)
      async.wait(function() return stats(a).backend.healthy and stats(b).backend.healthy end, 3, "healthy")
      local on_a = { events = {} }
      local c = client.connect(("http://127.0.0.1:%d/events?topic=news"):format(a.port), {
        retry = 50, on_event = function(ev) on_a.events[#on_a.events + 1] = ev end, on_error = function() end })
      async.wait(function() return #on_a.events == 1 end, 3, "joined") -- sse-join
      local status, res = publish(b, { topic = "news", event = "headline", data = "hello" })
      assert.are.equal(200, status)
      assert.matches("%-1$", res.id)
      assert.are.same({ "news", 0 }, { res.topic, res.subscribers })
      async.wait(function() return #on_a.events == 2 end, 3, "the event on A")
      assert.are.same({ "headline", "hello", res.id }, { on_a.events[2].type, on_a.events[2].data, on_a.events[2].id })
      local st = stats(a)
      assert.are.same({ "redis", true, true, true, false, 0, res.id },
        { st.backend.type, st.backend.healthy, st.backend.connected, st.backend.following, st.backend.stale,
          st.backend.lag, st.backend.last_id })
      assert.are.equal(res.id, st.replay.last_id)
      assert.are.equal(cjson.null, st.replay.length)
      -- a bad event is the publisher's 400, naming the field; Redis never sees it
      local bad_status, bad = publish(b, { topic = "news", event = "a\nb", data = "x" })
      assert.are.same({ 400, "field 'event' must not contain a line break (byte 2)" }, { bad_status, bad.error })
      assert.are.equal(res.id, stats(b).replay.last_id)
      c:close()
      a:close()
      b:close()
    end)
  end)

  it("answers 503 while Redis is unreachable, and /stats says so", function()
    async.run(20, function()
      n_prefix = n_prefix + 1
      local proxy = P.new(srv.port)
      local a = app(("app%d:"):format(n_prefix), "redis://127.0.0.1:" .. proxy.port)
      async.wait(function() return stats(a).backend.healthy end, 3, "healthy")
      proxy:close() -- Redis is gone for this hub (and cannot be reached again)
      async.wait(function() return not stats(a).backend.connected end, 2, "disconnected")
      local status, res = publish(a, { data = "x" })
      assert.are.equal(503, status)
      assert.are.equal("redis: not connected", res.error)
      local st = stats(a).backend
      assert.is_false(st.healthy)
      assert.truthy(st.error:match("cannot connect") or st.error:match("closed by server"), st.error)
      a:close()
    end)
  end)

  it("never reports healthy while the follower is stale; it is noticed within 2 heartbeats", function()
    async.run(20, function()
      n_prefix = n_prefix + 1
      local prefix = ("app%d:"):format(n_prefix)
      local proxy = P.new(srv.port)
      local a = app(prefix, "redis://127.0.0.1:" .. proxy.port)
      local b = app(prefix)
      async.wait(function() return stats(a).backend.healthy and stats(b).backend.healthy end, 3, "healthy")
      local got = {}
      local c = client.connect(("http://127.0.0.1:%d/events"):format(a.port), {
        retry = 50, on_event = function(ev) got[#got + 1] = ev end, on_error = function() end })
      async.wait(function() return #got == 1 end, 3, "joined")
      proxy:freeze() -- a's Redis connections go silent, without an error
      assert.are.equal(200, (publish(b, { data = "during" })))
      local t = async.wait(function() return stats(a).backend.stale end, 2, "a reports stale")
      assert.is_true(t <= 2 * 0.1 + 0.5 + 0.2, "noticed after " .. t .. " s")
      assert.is_false(stats(a).backend.healthy)
      async.wait(function() return #got == 2 end, 3, "caught up")
      assert.are.equal("during", got[2].data)
      async.wait(function() return stats(a).backend.healthy end, 3, "healthy again")
      c:close()
      a:close()
      b:close()
      proxy:close()
    end)
  end)

  it("refuses a bad --redis URL at start, naming the option", function()
    local ok, err = pcall(App.new, { redis = "http://x", port = 0 })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'new' %(option 'redis': field 'url': "
      .. "redis://host%[:port%]%[/db%] expected%)", err)
  end)
end)
