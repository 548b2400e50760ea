-- End to end: the demo hub (sse.app) on a free loopback port, publishing
-- over real HTTP requests, receiving with sse.client.
local uv = require("luv")
local cjson = require("cjson")
local App = require("sse.app")
local client = require("sse.client")
local C = require("helpers.http_client")

local function start(opts)
  opts = opts or {}
  opts.port = 0
  opts.log = opts.log or function() end
  local app = App.new(opts)
  assert(app:listen())
  return app
end

local function request(app, method, path, body, headers)
  local c = assert(C.connect(app.port))
  local lines = { ("%s %s HTTP/1.1"):format(method, path), "Host: 127.0.0.1", "Connection: close" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  local res = assert(c:request(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""), 3000))
  c:close()
  return res
end

local function publish(app, fields, headers)
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(headers or {}) do h[k] = v end
  local res = request(app, "POST", "/publish", cjson.encode(fields), h)
  return res, res.body ~= "" and cjson.decode(res.body) or nil
end

-- An sse.client subscriber recording every event.
local function subscribe(app, query, opts)
  local got = { events = {}, opens = 0, errors = {} }
  opts = opts or {}
  got.client = client.connect(("http://127.0.0.1:%d/events%s"):format(app.port, query or ""), {
    last_event_id = opts.last_event_id,
    retry = 50,
    on_event = function(ev)
      -- the join position (sse-join) is bookkeeping, not one of the app's events
      if ev.type == "sse-join" then got.joined = ev.id return end
      got.events[#got.events + 1] = ev
    end,
    on_open = function() got.opens = got.opens + 1 end,
    on_error = function(err) got.errors[#got.errors + 1] = err end,
  })
  return got
end

local function datas(list, type_)
  local t = {}
  for _, e in ipairs(list) do
    if not type_ or e.type == type_ then t[#t + 1] = e.data end
  end
  return t
end

local function cleanup(app, ...)
  for _, s in ipairs({ ... }) do s.client:close() end
  app:close()
  C.wait(function() return false end, 30)
end

describe("sse.app (the demo hub)", function()
  it("delivers published events to topic subscribers with the hub's ids", function()
    local app = start()
    local a = subscribe(app, "?topic=a")
    local ab = subscribe(app, "?topic=a&topic=b")
    local d = subscribe(app)
    assert.is_true(C.wait(function() return app.hub:connection_count() == 3 end, 2000))

    local res, body = publish(app, { topic = "a", event = "tick", data = "one" })
    assert.are.equal(200, res.status)
    assert.are.equal("a", body.topic)
    assert.are.equal(2, body.subscribers)
    assert.truthy(body.id:match("^[0-9a-z]+%-1$"), body.id)
    publish(app, { topic = "b", data = { n = 2 } })
    -- a form body works too
    local fres = request(app, "POST", "/publish", "data=three&event=x", {
      ["Content-Type"] = "application/x-www-form-urlencoded" })
    assert.are.equal(200, fres.status)

    assert.is_true(C.wait(function() return #ab.events == 2 and #d.events == 1 end, 2000))
    assert.are.same({ "one" }, datas(a.events))
    assert.are.same({ "one", '{"n":2}' }, datas(ab.events))
    assert.are.same({ "three" }, datas(d.events))
    assert.are.equal("tick", a.events[1].type)
    assert.are.equal(body.id, a.events[1].id)
    assert.are.equal("x", d.events[1].type)

    local stats = cjson.decode(request(app, "GET", "/stats").body)
    assert.are.equal(3, stats.connections)
    assert.are.equal(3, stats.topics)
    assert.are.same({ { topic = "a", subscribers = 2 }, { topic = "b", subscribers = 1 },
      { topic = "default", subscribers = 1 } }, stats.top_topics)
    assert.are.equal(3, stats.published)
    assert.are.equal(3, stats.replay.length)
    assert.are.same({ "message", "tick", "x" }, stats.event_types)
    assert.is_true(stats.bytes_sent > 0)
    cleanup(app, a, ab, d)
  end)

  it("resumes a client cut off mid-stream with no event lost or repeated", function()
    local app = start()
    local s = subscribe(app, "?topic=t")
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
    local sent = {}
    for i = 1, 60 do
      sent[#sent + 1] = "m" .. i
      publish(app, { topic = "t", data = "m" .. i })
      if i % 20 == 0 then
        -- the server cuts every stream; events keep coming while it reconnects
        assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
        local r = cjson.decode(request(app, "POST", "/admin/disconnect").body)
        assert.are.equal(1, r.closed)
      end
    end
    assert.is_true(C.wait(function() return #s.events >= 60 end, 5000), "got " .. #s.events)
    C.wait(function() return false end, 100) -- anything extra would show up now
    assert.are.same(sent, datas(s.events))
    assert.is_true(s.opens >= 3, "reconnected " .. s.opens .. " times")
    cleanup(app, s)
  end)

  it("sends the gap event when the client's id is outside the replay window", function()
    local app = start({ replay_events = 5 })
    local _, first = publish(app, { data = "0" })
    for i = 1, 9 do publish(app, { data = tostring(i) }) end
    local s = subscribe(app, "", { last_event_id = first.id })
    assert.is_true(C.wait(function() return #s.events >= 6 end, 2000))
    assert.are.equal("sse-gap", s.events[1].type)
    local info = cjson.decode(s.events[1].data)
    assert.are.equal(first.id, info.last_event_id)
    assert.are.same({ "5", "6", "7", "8", "9" }, datas(s.events, "message"))
    -- lastEventId in the query works like the header
    local q = subscribe(app, "?lastEventId=" .. s.events[#s.events].id)
    publish(app, { data = "10" })
    assert.is_true(C.wait(function() return #q.events >= 1 end, 2000))
    assert.are.same({ "10" }, datas(q.events))
    cleanup(app, s, q)
  end)

  describe("refuses bad publishes", function()
    local app
    setup(function() app = start({ token = "s3cret" }) end)
    teardown(function() app:close() C.wait(function() return false end, 20) end)

    local auth = { Authorization = "Bearer s3cret" }
    local cases = {
      { "no token", { data = "x" }, {}, 401, "missing or wrong bearer token" },
      { "a wrong token", { data = "x" }, { Authorization = "Bearer nope" }, 401, "missing or wrong bearer token" },
      { "no data", { topic = "a" }, auth, 400, "field 'data' is required" },
      { "an id", { data = "x", id = "7" }, auth, 400, "ids are assigned by the hub" },
      { "an unknown field", { data = "x", colour = "red" }, auth, 400, "unknown field 'colour'" },
      { "a bad retry", { data = "x", retry = -5 }, auth, 400, "field 'retry' must be a non-negative integer" },
      { "a line break in the event type", { data = "x", event = "a\nb" }, auth, 400,
        "field 'event' must not contain a line break (byte 2)" },
      { "invalid UTF-8 data", { data = "ok\xff" }, auth, 400, nil },
    }
    for _, c in ipairs(cases) do
      it("with " .. c[1], function()
        local res, body
        if c[1] == "invalid UTF-8 data" then
          -- cjson would refuse to encode it: send the raw body
          res = request(app, "POST", "/publish", '{"data":"ok\xff"}',
            { ["Content-Type"] = "application/json", Authorization = "Bearer s3cret" })
          body = cjson.decode(res.body)
          assert.are.equal(400, res.status)
          assert.truthy(body.error)
          return
        end
        res, body = publish(app, c[2], c[3])
        assert.are.equal(c[4], res.status)
        assert.are.equal(c[5], body.error)
      end)
    end

    it("with a body that is not JSON", function()
      local res = request(app, "POST", "/publish", "{nope", { ["Content-Type"] = "application/json",
        Authorization = "Bearer s3cret" })
      assert.are.equal(400, res.status)
      assert.are.equal("body is not valid JSON: Expected object key string but found invalid token at character 2",
        cjson.decode(res.body).error)
    end)

    it("with a wrong method (405) and an oversized body (413)", function()
      local res = request(app, "GET", "/publish")
      assert.are.equal(405, res.status)
      assert.truthy(res.headers["allow"]:find("POST", 1, true))
      res = request(app, "POST", "/publish", ("x"):rep(2 * 1024 * 1024), auth)
      assert.are.equal(413, res.status)
    end)

    it("accepts the right token", function()
      local res, body = publish(app, { data = "fine" }, auth)
      assert.are.equal(200, res.status)
      assert.truthy(body.id)
    end)
  end)

  it("serves the dashboard page", function()
    local app = start({ dashboard = "lua/sse/app/dashboard.html" })
    local res = request(app, "GET", "/")
    if io.open("lua/sse/app/dashboard.html") then
      assert.are.equal(200, res.status)
      assert.truthy(res.headers["content-type"]:find("text/html", 1, true))
      assert.truthy(res.body:find('<script src="sse-subscriber.js">', 1, true))
      local js = request(app, "GET", "/sse-subscriber.js")
      assert.are.equal(200, js.status)
      assert.are.equal("text/javascript; charset=utf-8", js.headers["content-type"])
      assert.truthy(js.body:find("class SseSubscriber", 1, true))
    else
      assert.are.equal(404, res.status)
    end
    app:close()
    C.wait(function() return false end, 20)
  end)

  it("runs as a program: prints its URLs, and SIGTERM closes streams and exits 0", function()
    local out, code, sub_closed = {}, nil, false
    local stdout = uv.new_pipe()
    local proc = uv.spawn(os.getenv("SSE_LUA") or "lua5.4", {
      args = { "examples/hub/server.lua", "--port", "0", "--keepalive", "30" },
      stdio = { nil, stdout, 2 },
      env = (function()
        local env = { "LUA_PATH=lua/?.lua;lua/?/init.lua;;",
                      "LUA_CPATH=" .. (os.getenv("SSE_BUILD") or "build/lua5.4") .. "/?.so;;" }
        -- the sanitizer run preloads its runtimes: the child needs them too
        for _, k in ipairs({ "PATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
          if os.getenv(k) then env[#env + 1] = k .. "=" .. os.getenv(k) end
        end
        return env
      end)(),
    }, function(c) code = c end)
    assert.truthy(proc)
    stdout:read_start(function(_, data) if data then out[#out + 1] = data end end)
    assert.is_true(C.wait(function() return table.concat(out):find("listening on", 1, true) ~= nil end, 3000))
    local text = table.concat(out)
    local port = tonumber(text:match("http://127%.0%.0%.1:(%d+)/"))
    assert.truthy(port, text)
    assert.truthy(text:find("curl -d topic=news", 1, true))
    -- a subscriber, then SIGTERM: the stream ends and the program exits 0
    local sub = client.connect(("http://127.0.0.1:%d/events"):format(port), {
      retry = 60000,
      on_error = function(_, info) if not info.closed then sub_closed = true end end,
    })
    assert.is_true(C.wait(function() return sub:ready_state() == "open" end, 3000))
    proc:kill("sigterm")
    assert.is_true(C.wait(function() return code ~= nil end, 5000))
    assert.are.equal(0, code)
    assert.is_true(C.wait(function() return sub_closed end, 2000))
    assert.truthy(table.concat(out):find("SIGTERM, closing 1 stream", 1, true))
    sub:close()
    if not stdout:is_closing() then stdout:close() end
    if not proc:is_closing() then proc:close() end
    C.wait(function() return false end, 20)
  end)

  it("rejects too many topics on one connection", function()
    local app = start({ max_topics_per_connection = 2 })
    local res = request(app, "GET", "/events?topic=a&topic=b&topic=c")
    assert.are.equal(400, res.status)
    assert.are.equal("too many topics on one connection (max-topics-per-connection is 2)",
      cjson.decode(res.body).error)
    res = request(app, "GET", "/events?topic=a%00b")
    assert.are.equal(400, res.status)
    assert.are.equal("topic name contains a control character", cjson.decode(res.body).error)
    local pres, body = publish(app, { topic = "a\nb", data = "x" })
    assert.are.equal(400, pres.status)
    assert.are.equal("topic name contains a control character", body.error)
    app:close()
    C.wait(function() return false end, 20)
  end)
end)
