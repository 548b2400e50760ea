-- sse.http: middleware (app:use) and handlers that wait (http.await), over
-- real loopback sockets; every wait bounded (helpers.http_client).
local http = require("sse.http")
local C = require("helpers.http_client")
local util = require("helpers.util")
local uv = require("luv")

local get = C.get

local apps, clients = {}, {}
local function serve(setup, opts)
  local logs = {}
  opts = opts or {}
  opts.port, opts.log = 0, function(msg) logs[#logs + 1] = msg end
  local app = http.new(opts)
  setup(app)
  local port = assert(app:listen())
  apps[#apps + 1] = app
  return app, port, logs
end

local function connect(port)
  local c = C.connect(port)
  assert.is_true(c.connected, "connect failed: " .. tostring(c.err))
  clients[#clients + 1] = c
  return c
end

-- fn(done) that calls done(...) after ms on a luv timer
local function later(ms, ...)
  local args = { n = select("#", ...), ... }
  return function(done)
    local t = uv.new_timer()
    t:start(ms, 0, function()
      t:close()
      done((table.unpack or unpack)(args, 1, args.n)) -- luacheck: ignore 143
    end)
  end
end

after_each(function()
  for _, c in ipairs(clients) do c:close() end
  for _, a in ipairs(apps) do a:close() end
  clients, apps = {}, {}
  C.sleep(5)
end)

describe("sse.http middleware", function()
  it("runs in order before the handler, and an answer stops the request", function()
    local seen = {}
    local _, port = serve(function(app)
      app:use(function(req) seen[#seen + 1] = "log " .. req.path end)
      app:use("/private", function(req, res)
        if req.headers.authorization ~= "Bearer ok" then
          res:status(401):header("WWW-Authenticate", "Bearer"):send("no\n")
        end
      end)
      app:get("/private/x", function(_, res) seen[#seen + 1] = "handler" res:send("secret") end)
      app:get("/public", function(_, res) res:send("hi") end)
    end)
    local c = connect(port)
    local r = c:request(get("/private/x"))
    assert.equal(401, r.status)
    assert.equal("Bearer", r.headers["www-authenticate"])
    r = c:request(get("/private/x", { "Authorization: Bearer ok\r\n" }))
    assert.equal(200, r.status)
    assert.equal("secret", r.body)
    r = c:request(get("/public"))
    assert.equal("hi", r.body)
    assert.same({ "log /private/x", "log /private/x", "handler", "log /public" }, seen)
    -- a 404 is the router's: no middleware runs for it
    assert.equal(404, c:request(get("/nothing")).status)
    assert.equal(4, #seen)
  end)

  it("gets a 500 and a log line when it raises, and the server lives on", function()
    local _, port, logs = serve(function(app)
      app:use(function() error("middleware broke") end)
      app:get("/x", function(_, res) res:send("x") end)
    end)
    local c = connect(port)
    assert.equal(500, c:request(get("/x")).status)
    assert.equal(500, c:request(get("/x")).status)
    assert.truthy(logs[1]:find("handler error in GET /x: .*middleware broke"))
  end)

  it("raises on misuse", function()
    local app = http.new({ port = 0 })
    util.raises_arg(1, "function expected, got nil", app.use, app)
    util.raises_arg(1, "path prefix must start with '/', got \"x\"", app.use, app, "x", print)
    util.raises_arg(2, "function expected, got number", app.use, app, "/x", 1)
  end)
end)

describe("sse.http.await", function()
  it("lets a handler wait for a callback without blocking other requests", function()
    local _, port = serve(function(app)
      app:get("/slow", function(_, res)
        local a, b = http.await(later(150, "from", "callback"))
        res:send(a .. " " .. b)
      end)
      app:get("/fast", function(_, res) res:send("fast") end)
    end)
    local slow, fast = connect(port), connect(port)
    slow:send(get("/slow"))
    local t0 = uv.now()
    local r = fast:request(get("/fast"))
    assert.equal("fast", r.body)
    assert.is_true(uv.now() - t0 < 120, "the fast request waited for the slow one")
    r = slow:response(2000)
    assert.equal(200, r.status)
    assert.equal("from callback", r.body)
    assert.is_true(uv.now() - t0 >= 140)
  end)

  it("returns at once when the callback comes synchronously; nil values survive", function()
    local _, port = serve(function(app)
      app:get("/sync", function(_, res)
        local a, b, c = http.await(function(done) done(nil, "two", nil) end)
        res:send(tostring(a) .. "," .. b .. "," .. tostring(c))
      end)
    end)
    assert.equal("nil,two,nil", connect(port):request(get("/sync")).body)
  end)

  it("answers pipelined requests in order after the waiting one", function()
    local _, port = serve(function(app)
      app:get("/wait", function(_, res) http.await(later(100)) res:send("first") end)
      app:get("/now", function(_, res) res:send("second") end)
    end)
    local c = connect(port)
    c:send(get("/wait") .. get("/now"))
    assert.equal("first", c:response(2000).body)
    assert.equal("second", c:response(2000).body)
    -- and the connection serves the next request as usual
    assert.equal("second", c:request(get("/now")).body)
  end)

  it("gives nil, \"timeout\" when the callback does not come in time, and ignores it later", function()
    local called = 0
    local _, port = serve(function(app)
      app:get("/t", function(_, res)
        local v, err = http.await(function(done)
          later(200)(function() called = called + 1 done("late") end)
        end, 0.05)
        res:send(tostring(v) .. " " .. tostring(err))
      end)
    end)
    local c = connect(port)
    assert.equal("nil timeout", c:request(get("/t"), 2000).body)
    C.sleep(250)
    assert.equal(1, called)
    assert.equal("nil timeout", c:request(get("/t"), 2000).body)
  end)

  it("works in middleware (an asynchronous authorization) and with res:sse after it", function()
    local _, port = serve(function(app)
      app:use(function(req, res)
        local ok = http.await(later(30, req.query.key == "good"))
        if not ok then res:status(403):send("denied\n") end
      end)
      app:get("/events", function(_, res)
        local stream = res:sse()
        stream:send_data("welcome")
      end)
    end)
    local c = connect(port)
    assert.equal(403, c:request(get("/events?key=bad"), 2000).status)
    local s = connect(port)
    s:send(get("/events?key=good"))
    assert.is_true(C.wait(function() return s.buf:find("data: welcome\n\n", 1, true) ~= nil end, 2000))
    assert.truthy(s.buf:find("Content-Type: text/event-stream", 1, true))
  end)

  it("survives a client that leaves while its handler waits", function()
    local answered
    local _, port = serve(function(app)
      app:get("/wait", function(_, res)
        http.await(later(100))
        answered = { res:send("too late") }
      end)
      app:get("/ok", function(_, res) res:send("ok") end)
    end)
    local c = connect(port)
    c:send(get("/wait"))
    C.sleep(20)
    c:close()
    assert.is_true(C.wait(function() return answered ~= nil end, 2000))
    assert.same({ nil, "closed" }, answered)
    assert.equal("ok", connect(port):request(get("/ok")).body)
  end)

  it("answers 503 when the handler still waits after idle_timeout", function()
    local _, port = serve(function(app)
      app:get("/never", function() http.await(function() end) end)
    end, { idle_timeout = 0.2 })
    local c = connect(port)
    local t0 = uv.now()
    local r = c:request(get("/never"), 2000)
    assert.equal(503, r.status)
    assert.equal("no answer in time\n", r.body)
    assert.is_true(uv.now() - t0 >= 190)
  end)

  it("logs and answers 500 when a handler raises after waiting", function()
    local _, port, logs = serve(function(app)
      app:get("/x", function() http.await(later(20)) error("after the wait") end)
    end)
    assert.equal(500, connect(port):request(get("/x"), 2000).status)
    assert.truthy(logs[1]:find("after the wait", 1, true))
  end)

  it("reuses a request's coroutine once its handler ended, not after an error or while it waits", function()
    local seen = {}
    local waiting
    local _, port, logs = serve(function(app)
      app:get("/co", function(_, res) seen[#seen + 1] = coroutine.running() res:send("co") end)
      app:get("/boom", function() seen[#seen + 1] = coroutine.running() error("boom") end)
      app:get("/wait", function(_, res)
        waiting = coroutine.running()
        seen[#seen + 1] = waiting
        res:send(http.await(later(100, "waited")))
      end)
    end)
    local c = connect(port)
    assert.equal("co", c:request(get("/co")).body)
    assert.equal("co", c:request(get("/co")).body)
    -- no new coroutine per request: the second ran in the first one's
    assert.equal(seen[1], seen[2])
    assert.equal(500, c:request(get("/boom")).status)
    assert.equal(seen[1], seen[3])
    assert.truthy(logs[1]:find("handler error in GET /boom", 1, true))
    -- the one that raised is dead: the next request gets another
    assert.equal("co", c:request(get("/co")).body)
    assert.are_not.equal(seen[1], seen[4])
    -- a waiting handler keeps its coroutine: a request meanwhile gets another
    local w = connect(port)
    w:send(get("/wait"))
    assert.is_true(C.wait(function() return waiting ~= nil end, 2000))
    assert.equal("co", connect(port):request(get("/co")).body)
    assert.are_not.equal(waiting, seen[#seen])
    assert.equal("waited", w:response(2000).body)
    -- and once it answered, its coroutine serves the next ones (with await)
    assert.equal("co", c:request(get("/co")).body)
    local again = connect(port):request(get("/wait"), 2000)
    assert.equal("waited", again.body)
  end)

  it("await inside a handler resumed from another request's handler returns to the right one", function()
    local resume_first
    local _, port = serve(function(app)
      app:get("/first", function(_, res)
        res:send(http.await(function(done) resume_first = done end))
      end)
      app:get("/second", function(_, res)
        -- the first request's handler runs on, inside this one's
        resume_first("first answered")
        res:send(http.await(later(30, "second answered")))
      end)
    end)
    local a, b = connect(port), connect(port)
    a:send(get("/first"))
    assert.is_true(C.wait(function() return resume_first ~= nil end, 2000))
    b:send(get("/second"))
    assert.equal("first answered", a:response(2000).body)
    assert.equal("second answered", b:response(2000).body)
  end)

  it("raises outside a handler and on bad arguments", function()
    local ok, err = pcall(http.await, function() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("'await' called outside an sse.http handler", 1, true))
    util.raises_arg(1, "function expected, got nil", http.await)
    util.raises_arg(2, "timeout must be a positive number of seconds, got 0", http.await, print, 0)
  end)
end)
