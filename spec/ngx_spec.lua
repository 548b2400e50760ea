-- sse inside a real nginx (Debian's nginx + lua-nginx-module, LuaJIT): the
-- demo hub of examples/openresty/ and a few handlers of the spec's own,
-- driven over loopback sockets from busted. `make spec-ngx` (in `make
-- test`) runs it on LuaJIT with SSE_NGX_SPEC=1; elsewhere it is pending.
local N = require("helpers.nginx")
local cjson = require("cjson")

if not os.getenv("SSE_NGX_SPEC") then
  describe("nginx", function()
    pending("runs under `make spec-ngx` (SSE_NGX_SPEC=1, the LuaJIT build)")
  end)
  return
end

-- Handlers of the spec's own, added to the example config.
local EXTRA = [==[
        location = /_pid {
            content_by_lua_block { ngx.print(ngx.worker.pid()) }
        }
        # misuse is refused with a message (printed here)
        location = /_late {
            content_by_lua_block {
                ngx.say("before")
                local ok, err = pcall(require("sse.ngx").stream)
                ngx.say(ok and "accepted" or err)
            }
        }
        location = /_badopt {
            content_by_lua_block {
                local sse_ngx = require("sse.ngx")
                for _, f in ipairs({
                    function() return sse_ngx.stream({ bogus = 1 }) end,
                    function() return sse_ngx.stream({ outbox_limit = -1 }) end,
                    function() return sse_ngx.stream({ slow_policy = "maybe" }) end,
                    function() return sse_ngx.stream({ abort = "never" }) end,
                    function() return sse_ngx.finish() end,
                    function() return sse_ngx.hub({ outbox_limit = 0 }) end,
                    function() return sse_ngx.hub({ keepalive = -1 }) end,
                    function() return sse_ngx.hub({ dict = "nope" }) end,
                    function() return sse_ngx.hub({ dict = "sse_log", poll = 0 }) end,
                }) do
                    local ok, err = pcall(f)
                    ngx.say(ok and "accepted" or err)
                end
            }
        }
        location = /_loop {
            content_by_lua_block {
                local ok, err = pcall(require("sse").Hub.new, { flush = "loop" })
                ngx.say(ok and "accepted" or err)
            }
        }
        location = /_timer {
            content_by_lua_block {
                local res
                local ok = ngx.timer.at(0, function()
                    local _, err = pcall(require("sse.ngx").stream)
                    res = err
                end)
                ngx.sleep(0.05)
                ngx.say(res)
            }
        }
        # luv's transports refuse to start where nothing runs luv's loop
        location = /_luv {
            content_by_lua_block {
                local out = {}
                local function try(f, ...)
                    local ok, err = pcall(f, ...)
                    out[#out + 1] = ok and "accepted" or tostring(err)
                end
                try(function() return require("sse.http").new({ port = 0 }):listen() end)
                try(require("sse.client").connect, "http://127.0.0.1:1/")
                try(require("sse.deadlines").new, { loop = true, on_due = function() end })
                try(require("sse.redis").backend, { env = require("sse.redis.conn").env })
                ngx.say(table.concat(out, "\n"))
            }
        }
        # a default hub: Hub.new() with no options, broadcast from a timer
        location = /_bare {
            content_by_lua_block {
                local sse = require("sse")
                local hub = package.loaded["spec.bare_hub"]
                if not hub then
                    hub = sse.Hub.new()
                    package.loaded["spec.bare_hub"] = hub
                end
                local stream = require("sse.ngx").stream()
                hub:register(stream)
                ngx.timer.at(0.05, function() hub:broadcast({ data = "from a timer" }) end)
                ngx.timer.at(1, function() stream:close() end)
            }
        }
        # stream:start_keepalive (through the keepalive option), no hub
        location = /_ka {
            content_by_lua_block {
                local stream = require("sse.ngx").stream({ keepalive = 0.1 })
                ngx.timer.at(0.55, function() stream:close() end)
            }
        }
        # nginx's own gzip on an event stream (README: OpenResty streams are
        # compressed by nginx): each ngx.flush ends a deflate block
        location = /_gz {
            gzip on;
            gzip_types text/event-stream;
            gzip_min_length 0;
            content_by_lua_block {
                local stream = require("sse.ngx").stream()
                for i = 1, 3 do
                    stream:send({ id = tostring(i), data = ("tick %d %s"):format(i, ("x"):rep(300)) })
                    ngx.sleep(0.3)
                end
                stream:close()
            }
        }
        # a handler that sends by itself, sleeping between events
        location = /_ticks {
            content_by_lua_block {
                local stream = require("sse.ngx").stream({ retry = 500 })
                for i = 1, 3 do
                    stream:send({ id = tostring(i), data = "tick " .. i })
                    ngx.sleep(0.2)
                end
                stream:close()
            }
        }
]==]

-- The example config with the spec's options and handlers.
local function edit_with(cfg, more)
  return function(text)
    local n
    text, n = text:gsub('configure{ token = os.getenv%("SSE_HUB_TOKEN"%) }', function()
      return "configure(" .. cfg .. ")"
    end)
    assert(n == 1, "configure line not found in the example nginx.conf")
    text, n = text:gsub("(\n        location / {)", function(loc) return "\n" .. EXTRA .. loc end)
    assert(n == 1, "location / not found in the example nginx.conf")
    for pat, rep in pairs(more or {}) do
      text, n = text:gsub(pat, rep)
      assert(n == 1, "not in the example nginx.conf: " .. pat)
    end
    return text
  end
end

local function start(cfg, more, workers)
  local srv, err = N.start({ example = true, workers = workers or 2, edit = edit_with(cfg, more) })
  assert(srv, err)
  return srv
end

local function publish(port, topic, data, extra)
  local body = "topic=" .. topic .. "&data=" .. data .. (extra or "")
  local res = assert(N.request(port, "POST", "/publish", {
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }, body = body }))
  assert(res.status == 200, res.status .. " " .. res.body)
  return cjson.decode(res.body).id, res
end

local function stats(port)
  local res = assert(N.request(port, "GET", "/stats?top=100"))
  assert.are.equal(200, res.status)
  return cjson.decode(res.body)
end

local function subscribe(port, path, headers, version)
  local c = assert(N.connect(port))
  c:stream(path, headers, version)
  return c
end

local function ids(list)
  local out = {}
  for i, ev in ipairs(list) do out[i] = ev.id end
  return out
end

local function joined(c)
  return #c:of_type("sse-join") > 0 or #c.events > 0
end

local function no_errors(srv)
  local errs = srv:errors()
  assert(#errs == 0, "error.log:\n" .. table.concat(errs, "\n"))
end

describe("nginx: the demo hub and sse.ngx", function()
  local srv, port
  lazy_setup(function()
    srv = start("{ retry = 100, keepalive = 0.3, replay_events = 50, outbox_limit = 65536 }",
      { ["send_timeout 60s;"] = "send_timeout 2s;" })
    port = srv.port
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("answers with the event-stream headers, chunked, and the join event first", function()
    local c = subscribe(port, "/events?topic=h")
    assert(N.wait(function() return joined(c) end, 3000), "no join event")
    local h = c.head.headers
    assert.are.equal(200, c.head.status)
    assert.are.equal("text/event-stream; charset=utf-8", h["content-type"])
    assert.are.equal("no-cache", h["cache-control"])
    assert.are.equal("no", h["x-accel-buffering"])
    assert.are.equal("chunked", h["transfer-encoding"])
    assert.is_nil(h["content-length"])
    local first = c.events[1]
    assert.are.equal("sse-join", first.type)
    assert.are.equal(first.id, cjson.decode(first.data).last_event_id)
    assert(c.body:find("^retry: 100\n"), "the retry line goes first: " .. c.body:sub(1, 40))
    c:close()
  end)

  it("delivers each event as it is published, not at the end", function()
    local c = subscribe(port, "/events?topic=live")
    assert(N.wait(function() return joined(c) end, 3000))
    for i = 1, 5 do
      local id = publish(port, "live", "n" .. i)
      assert(N.wait(function() return #c:of_type() == i end, 2000), "event " .. i .. " did not arrive")
      assert.are.equal(id, c:of_type()[i].id)
      assert.are.equal("n" .. i, c:of_type()[i].data)
    end
    assert.is_nil(c.ended)
    c:close()
  end)

  it("writes a handler's own sends as they happen (ngx.sleep between them)", function()
    local c = subscribe(port, "/_ticks")
    local t0 = os.clock()
    assert(N.wait(function() return #c.events >= 1 end, 2000), "first tick missing")
    -- the first tick arrives while the handler still sleeps before the others
    assert.are.equal(1, #c.events)
    assert.is_nil(c.ended)
    assert(N.wait(function() return c.ended end, 3000), "the stream did not end")
    assert.are.same({ "1", "2", "3" }, ids(c.events))
    assert(c.body:find("^retry: 500\n"))
    assert(os.clock() - t0 < 2)
    c:close()
  end)

  it("goes through nginx's gzip event by event (gzip_types text/event-stream)", function()
    local uv = require("luv")
    local got, raw = {}, {}
    local function curl(args, into)
      local so = uv.new_pipe(false)
      local h = assert(uv.spawn("curl", { args = args, stdio = { nil, so, nil } }, function() end))
      so:read_start(function(_, d)
        if d then into[#into + 1] = d else so:close() end
      end)
      return h
    end
    local url = ("http://127.0.0.1:%d/_gz"):format(port)
    local h1 = curl({ "-sN", "--compressed", "-D", "-", url }, got)
    local h2 = curl({ "-sN", "-H", "Accept-Encoding: gzip", url }, raw) -- the bytes on the wire
    local text = function() return table.concat(got) end
    assert(N.wait(function() return text():find("tick 1", 1, true) ~= nil end, 3000), "first tick missing")
    -- decoded by curl while the handler still sleeps before the next
    assert.is_nil(text():find("tick 2", 1, true))
    assert.matches("\r\n[Cc]ontent%-[Ee]ncoding: gzip\r\n", text())
    assert(N.wait(function() return text():find("tick 3", 1, true) ~= nil end, 3000), "third tick missing")
    N.sleep(300) -- the stream ends; both curls have everything
    local wire = table.concat(raw)
    assert.is_nil(wire:find("tick", 1, true)) -- compressed
    assert.are.equal("\31\139", wire:sub(1, 2)) -- a gzip member
    h1:close()
    h2:close()
  end)

  it("streams to an HTTP/1.0 client (no chunks; the end is the connection's)", function()
    local c = subscribe(port, "/events?topic=old", nil, "1.0")
    assert(N.wait(function() return joined(c) end, 3000), "no join event for HTTP/1.0")
    assert.is_nil(c.head.headers["transfer-encoding"])
    assert.are.equal("close", c.head.headers["connection"])
    local id = publish(port, "old", "for 1.0")
    assert(N.wait(function() return #c:of_type() == 1 end, 2000))
    assert.are.equal(id, c:of_type()[1].id)
    local res = assert(N.request(port, "POST", "/admin/disconnect", { body = "" }))
    assert.are.equal(200, res.status)
    assert(N.wait(function() return c.eof end, 3000), "the HTTP/1.0 stream did not end")
    c:close()
  end)

  it("notices a client that goes away and removes its subscriber", function()
    local c = subscribe(port, "/events?topic=gone")
    assert(N.wait(function() return joined(c) end, 3000))
    local function count()
      for _, e in ipairs(stats(port).top_topics) do
        if e.topic == "gone" then return e.subscribers end
      end
      return 0
    end
    assert(N.wait(function() return count() == 1 end, 2000))
    c:close()
    -- ngx.on_abort fires at once; the stats of the other worker follow within 0.2 s
    assert(N.wait(function() N.sleep(50); return count() == 0 end, 2000), "the subscriber is still there")
  end)

  it("sends the hub's keep-alive comments to idle streams", function()
    local c = subscribe(port, "/events?topic=idle")
    assert(N.wait(function() return select(2, c.body:gsub(": keep%-alive\n\n", "")) >= 2 end, 2000),
      "no keep-alive from the hub: " .. c.body)
    c:close()
  end)

  it("sends a stream's own keep-alive comments (stream:start_keepalive, ngx timers)", function()
    local k = subscribe(port, "/_ka")
    assert(N.wait(function() return k.ended end, 2000), "the stream did not end")
    local n = select(2, k.body:gsub(": keep%-alive\n\n", ""))
    assert(n >= 3 and n <= 6, "keep-alives: " .. n)
    k:close()
  end)

  it("a default sse.Hub.new() inside nginx delivers (a broadcast from a timer)", function()
    local c = subscribe(port, "/_bare")
    -- at once, not when the stream closes (1 s later, which flushes anyway)
    assert(N.wait(function() return #c.events == 1 end, 600), "nothing delivered")
    assert.is_nil(c.ended)
    assert.are.equal("from a timer", c.events[1].data)
    assert(N.wait(function() return c.ended end, 2000), "the stream did not end")
    assert.are.equal(1, #c.events)
    c:close()
  end)

  it("refuses misuse with a message", function()
    local late = assert(N.request(port, "GET", "/_late")).body
    assert.matches("before\nsse.ngx.stream: the response headers were already sent", late, 1, true)
    -- the option errors name the function called, not the one below it
    local lines = {}
    for l in assert(N.request(port, "GET", "/_badopt")).body:gmatch("[^\n]+") do
      lines[#lines + 1] = l:gsub("^[^:]*:%d+: ", "")
    end
    assert.are.equal(9, #lines)
    assert.are.equal("bad argument #1 to 'stream' (unknown option 'bogus')", lines[1])
    for i = 2, 3 do assert.matches("^bad argument #1 to 'stream' %(field '", lines[i]) end
    assert.matches("^bad argument #1 to 'stream' %(field 'outbox_limit'", lines[2])
    assert.matches("^bad argument #1 to 'stream' %(field 'slow_policy'", lines[3])
    assert.are.equal("bad argument #1 to 'stream' (field 'abort': \"on_abort\" or \"log\" expected, got string)",
      lines[4])
    assert.matches("sse.ngx.finish: call it from log_by_lua* (the stream's location)", lines[5], 1, true)
    assert.matches("^bad argument #1 to 'hub' %(field 'outbox_limit'", lines[6])
    assert.are.equal("bad argument #1 to 'hub' (field 'keepalive': positive number of seconds expected)", lines[7])
    assert.are.equal("bad argument #1 to 'hub' (field 'dict': no lua_shared_dict 'nope' in nginx.conf)", lines[8])
    assert.matches("^bad argument #1 to 'hub' %(field 'poll': number >= 0.001 expected, got 0%)$", lines[9])
    assert.matches("field 'flush': \"loop\" cannot work inside nginx",
      assert(N.request(port, "GET", "/_loop")).body, 1, true)
    assert.matches("sse.ngx.stream: call it from content_by_lua* (this is the timer phase)",
      assert(N.request(port, "GET", "/_timer")).body, 1, true)
  end)

  it("refuses luv's transports inside nginx (nothing runs luv's loop there)", function()
    local lines = {}
    for l in assert(N.request(port, "GET", "/_luv")).body:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(4, #lines)
    assert.matches("sse.http cannot serve inside nginx", lines[1], 1, true)
    assert.matches("sse.client cannot run inside nginx", lines[2], 1, true)
    assert.matches("bad argument #1 to 'new' (field 'loop': nothing runs luv's loop inside nginx", lines[3], 1, true)
    assert.matches("bad argument #1 to 'backend' (field 'env': luv's cannot run inside nginx",
      lines[4], 1, true)
  end)

  it("envelope mode (?envelope=1): every topic and type on one stream, replayed with the topics", function()
    local js = assert(N.request(port, "GET", "/sse-subscriber.js"))
    assert.are.equal(200, js.status)
    assert.are.equal("text/javascript; charset=utf-8", js.headers["content-type"])
    assert.truthy(js.body:find("class SseSubscriber", 1, true))
    local c = subscribe(port, "/events?topic=ea&topic=eb&envelope=1")
    assert(N.wait(function() return #c.events >= 1 end, 3000), "no join event")
    local a = publish(port, "ea", "one", "&event=first")
    local b = publish(port, "eb", "two")
    assert(N.wait(function() return #c.events == 3 end, 2000), "the events did not arrive")
    local function env(e) local t = cjson.decode(e.data) return { t.topic, t.event, t.data, e.id, e.type } end
    assert.are.same({ cjson.null, "sse-join" }, { env(c.events[1])[1], env(c.events[1])[2] })
    assert.are.same({ { "ea", "first", "one", a, "sse" }, { "eb", "message", "two", b, "sse" } },
                    { env(c.events[2]), env(c.events[3]) })
    c:close()
    -- the shared-dict log's replay names the topics too
    local r = subscribe(port, "/events?topic=ea&topic=eb&envelope=1", { ["Last-Event-ID"] = c.events[1].id })
    assert(N.wait(function() return #r.events == 2 end, 2000), "no replay")
    assert.are.same({ { "ea", "first", "one", a, "sse" }, { "eb", "message", "two", b, "sse" } },
                    { env(r.events[1]), env(r.events[2]) })
    r:close()
    local bad = assert(N.request(port, "GET", "/events?envelope=yes"))
    assert.are.equal(400, bad.status)
  end)

  it("replays after Last-Event-ID (header or ?lastEventId=), and says when events are gone", function()
    local list = {}
    for i = 1, 5 do list[i] = publish(port, "r", "r" .. i) end
    local c = subscribe(port, "/events?topic=r", { ["Last-Event-ID"] = list[2] })
    assert(N.wait(function() return #c:of_type() == 3 end, 2000))
    assert.are.same({ list[3], list[4], list[5] }, ids(c:of_type()))
    assert.are.same({}, c:of_type("sse-gap"))
    c:close()
    local q = subscribe(port, "/events?topic=r&lastEventId=" .. list[4])
    assert(N.wait(function() return #q:of_type() == 1 end, 2000))
    assert.are.same({ list[5] }, ids(q:of_type()))
    q:close()

    -- another epoch (nginx restarted since): the gap event, then what is kept
    local g = subscribe(port, "/events?topic=r", { ["Last-Event-ID"] = "zz9-1" })
    assert(N.wait(function() return #g:of_type() >= 5 end, 2000))
    local gap = g.events[1]
    assert.are.equal("sse-gap", gap.type)
    local info = cjson.decode(gap.data)
    assert.are.equal("zz9-1", info.last_event_id)
    assert.are.equal(stats(port).replay.first_id, info.oldest)
    assert.are.equal(cjson.null, info.dropped)
    g:close()

    -- trimmed: the window keeps 50 events
    local old = publish(port, "trim", "t0")
    local last
    for i = 1, 60 do last = publish(port, "trim", "t" .. i) end
    N.sleep(50) -- both workers have applied the last one (their window's latest)
    local t = subscribe(port, "/events?topic=trim", { ["Last-Event-ID"] = old })
    assert(N.wait(function() return #t:of_type() >= 50 end, 3000))
    local tg = cjson.decode(t.events[1].data)
    assert.are.equal("sse-gap", t.events[1].type)
    assert.are.equal(old, tg.last_event_id)
    assert.are.equal(last, tg.latest)
    local first = stats(port).replay.first_id
    assert.are.equal(first, tg.oldest)
    assert.are.equal(first, t:of_type()[1].id)
    assert.are.equal(last, t:of_type()[50].id)
    assert.are.equal(50, #t:of_type())
    t:close()
  end)

  it("closes a client that stops reading once its outbox passes the limit", function()
    local before = stats(port).slow_closed
    local c = assert(N.connect(port))
    c.tcp:recv_buffer_size(4096)
    c:stream("/events?topic=slow")
    assert(N.wait(function() return joined(c) end, 3000))
    c.tcp:read_stop()
    local big = ("x"):rep(60000)
    local closed
    for _ = 1, 300 do
      publish(port, "slow", big)
      if stats(port).slow_closed > before then closed = true break end
    end
    assert(closed, "the slow client was never closed")
    c:close()
  end)

  it("fans out to 1,000 subscribers over 2 workers: no loss, the same ids in the same order", function()
    local subs = {}
    for i = 1, 1000 do subs[i] = subscribe(port, "/events?topic=fan") end
    assert(N.wait(function()
      for _, c in ipairs(subs) do if not joined(c) then return false end end
      return true
    end, 15000), "not every subscriber joined")
    local per
    -- each worker's counters reach the dict once a second
    assert(N.wait(function()
      per = stats(port).workers
      return #per == 2 and per[1].connections + per[2].connections == 1000
    end, 3000), "the stats do not show 1,000 subscribers")
    assert(per[1].connections > 100 and per[2].connections > 100,
      "subscribers on both workers: " .. per[1].connections .. " / " .. per[2].connections)
    local published = {}
    for i = 1, 20 do published[i] = publish(port, "fan", "f" .. i) end
    assert(N.wait(function()
      for _, c in ipairs(subs) do if #c:of_type() < 20 then return false end end
      return true
    end, 15000), "not every subscriber got 20 events")
    for _, c in ipairs(subs) do
      assert.are.same(published, ids(c:of_type()))
      c:close()
    end
    no_errors(srv)
  end)

  it("logs nothing per stream: no warning at any level for the streams above", function()
    -- Debian's nginx lacks OpenResty's delayed-events patch: an ngx.sleep(0)
    -- there logs a warning each call (once per stream, it was)
    local warns = {}
    for line in srv:log():gmatch("[^\n]+") do
      if line:find("%[warn%]") then warns[#warns + 1] = line end
    end
    assert(#warns == 0, #warns .. " warnings in error.log, the first: " .. tostring(warns[1]))
  end)

  it("resumes exactly when the reconnect lands on the other worker", function()
    local w = srv:workers()
    assert.are.equal(2, #w)
    local a = assert(N.connect_worker(port, w[1]), "no connection to worker A")
    a:stream("/events?topic=move")
    assert(N.wait(function() return joined(a) end, 2000))
    local list = {}
    for i = 1, 3 do list[i] = publish(port, "move", "m" .. i) end
    assert(N.wait(function() return #a:of_type() == 3 end, 2000))
    a:close()
    for i = 4, 6 do list[i] = publish(port, "move", "m" .. i) end
    local b = assert(N.connect_worker(port, w[2]), "no connection to worker B")
    b:stream("/events?topic=move", { ["Last-Event-ID"] = a:of_type()[3].id })
    assert(N.wait(function() return #b:of_type() == 3 end, 2000))
    list[7] = publish(port, "move", "m7")
    assert(N.wait(function() return #b:of_type() == 4 end, 2000))
    N.sleep(100)
    assert.are.same({ list[4], list[5], list[6], list[7] }, ids(b:of_type()))
    assert.are.same({}, b:of_type("sse-gap"))
    b:close()
  end)
end)

describe("nginx: a reconnect to a worker that has not applied the client's last id yet", function()
  local srv
  lazy_setup(function()
    -- a slow follower (0.5 s between looks) makes the window wide
    srv = start("{ poll = 0.5 }")
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("waits for the follower instead of sending the event twice", function()
    local w = srv:workers()
    local pa = assert(N.connect_worker(srv.port, w[1]))
    local function pub(data)
      local res = assert(pa:request("POST", "/publish", {
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }, body = "topic=lag&data=" .. data }))
      return cjson.decode(res.body).id
    end
    N.sleep(600) -- both followers are at the present
    local id1 = pub("one")
    -- worker B applies id1 only at its next look; the client already has it
    local b = assert(N.connect_worker(srv.port, w[2]))
    b:stream("/events?topic=lag", { ["Last-Event-ID"] = id1 })
    local id2 = pub("two")
    assert(N.wait(function() return #b:of_type() >= 1 end, 3000), "nothing arrived")
    N.sleep(700)
    assert.are.same({ id2 }, ids(b:of_type()))
    b:close()
    pa:close()
  end)
end)

describe("nginx: the demo hub's other endpoints, with a token", function()
  it("serves the dashboard, takes JSON publishes with the token, answers 401/405/400 as make run", function()
    local srv = start('{ token = "s3cret" }')
    finally(function() srv:stop() end) -- also when an assertion fails
    local port = srv.port
    local page = assert(N.request(port, "GET", "/"))
    assert.are.equal(200, page.status)
    assert.are.equal("text/html; charset=utf-8", page.headers["content-type"])
    assert.matches("sse-subscriber.js", page.body, 1, true)
    local c = subscribe(port, "/events?topic=j")
    assert(N.wait(function() return joined(c) end, 3000))
    -- "subscribers" counts the other worker's as of its last stats (each
    -- worker writes them once a second; the publisher reads them once a second)
    assert(N.wait(function()
      local r = N.request(port, "GET", "/stats", { headers = { Authorization = "Bearer s3cret" } })
      return r and cjson.decode(r.body).connections == 1
    end, 3000))
    N.sleep(1100)
    local body = '{"topic":"j","event":"n","data":{"x":9007199254740993}}'
    local no = assert(N.request(port, "POST", "/publish", {
      headers = { ["Content-Type"] = "application/json" }, body = body }))
    assert.are.equal(401, no.status)
    assert.are.equal('Bearer realm="sse"', no.headers["www-authenticate"])
    local res = assert(N.request(port, "POST", "/publish", {
      headers = { ["Content-Type"] = "application/json", Authorization = "Bearer s3cret" }, body = body }))
    assert.are.equal(200, res.status)
    local ans = cjson.decode(res.body)
    assert.are.equal("j", ans.topic)
    assert.are.equal(1, ans.subscribers)
    assert(N.wait(function() return #c:of_type("n") == 1 end, 2000))
    assert.are.equal('{"x":9007199254740993}', c:of_type("n")[1].data)
    assert.are.equal(ans.id, c:of_type("n")[1].id)
    local bad = assert(N.request(port, "POST", "/publish", {
      headers = { ["Content-Type"] = "application/json", Authorization = "Bearer s3cret" },
      body = '{"id":"1","data":"x"}' }))
    assert.are.equal(400, bad.status)
    assert.are.equal("ids are assigned by the hub", cjson.decode(bad.body).error)
    local wrong = assert(N.request(port, "GET", "/publish"))
    assert.are.equal(405, wrong.status)
    assert.are.equal("POST", wrong.headers.allow)
    assert.are.equal(401, assert(N.request(port, "GET", "/stats")).status)
    local sj
    -- the publishing worker's counters reach the dict within a second
    assert(N.wait(function()
      local st = assert(N.request(port, "GET", "/stats?top=1", { headers = { Authorization = "Bearer s3cret" } }))
      assert.are.equal(200, st.status)
      sj = cjson.decode(st.body)
      return sj.published == 1
    end, 3000), "/stats never counted the publish")
    assert.are.equal(2, #sj.workers)
    assert.are.same({ { topic = "j", subscribers = 1 } }, sj.top_topics)
    c:close()
    no_errors(srv)
    srv:stop()
  end)
end)

describe("nginx: without lua_check_client_abort", function()
  it("says so in the error log", function()
    local srv = start("{}", { ["lua_check_client_abort on;"] = "lua_check_client_abort off;" })
    finally(function() srv:stop() end) -- also when an assertion fails
    local c = subscribe(srv.port, "/events")
    assert(N.wait(function() return joined(c) end, 3000))
    c:close()
    N.sleep(100)
    local log = srv:log()
    srv:stop()
    assert.matches("lua_check_client_abort is off", log, 1, true)
  end)
end)

describe("nginx: a full shared dict", function()
  it("trims the oldest events (a gap for whoever asks for them) and refuses one too large", function()
    local srv = start("{ replay_events = 1000 }", { ["lua_shared_dict sse_log 32m;"] = "lua_shared_dict sse_log 64k;" })
    finally(function() srv:stop() end) -- also when an assertion fails
    local first = publish(srv.port, "full", "first")
    local big = ("y"):rep(2000)
    for _ = 1, 60 do publish(srv.port, "full", big) end
    local s = stats(srv.port)
    assert(s.replay.length < 60, "nothing was trimmed: " .. s.replay.length)
    local c = subscribe(srv.port, "/events?topic=full", { ["Last-Event-ID"] = first })
    assert(N.wait(function() return #c:of_type() >= s.replay.length end, 3000))
    assert.are.equal("sse-gap", c.events[1].type)
    assert.are.equal(s.replay.first_id, cjson.decode(c.events[1].data).oldest)
    c:close()
    local res = assert(N.request(srv.port, "POST", "/publish", {
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "topic=full&data=" .. ("z"):rep(40000) }))
    assert.are.equal(503, res.status)
    assert.matches("event too large for the shared dict", res.body, 1, true)
    no_errors(srv)
    srv:stop()
  end)
end)

describe("nginx -s reload with live streams", function()
  it("old workers end their streams; clients resume on the new ones, nothing lost, ids in order", function()
    local client = require("sse.client")
    local srv = start("{ retry = 100 }")
    finally(function() srv:stop() end) -- also when an assertion fails
    local port = srv.port
    local clients, got, opens, errs = {}, {}, {}, {}
    for i = 1, 20 do
      got[i], opens[i], errs[i] = {}, 0, {}
      clients[i] = client.connect(("http://127.0.0.1:%d/events?topic=rl"):format(port), {
        on_open = function() opens[i] = opens[i] + 1 end,
        on_event = function(ev) if ev.type == "message" then got[i][#got[i] + 1] = ev.id end end,
        on_error = function(err) errs[i][#errs[i] + 1] = err end,
      })
    end
    assert(N.wait(function()
      for i = 1, 20 do if opens[i] < 1 then return false end end
      return true
    end, 5000))
    N.sleep(100)
    local published = {}
    for i = 1, 20 do published[i] = publish(port, "rl", "a" .. i) end
    local fresh, old = assert(srv:reload())
    for i = 21, 60 do
      published[i] = publish(port, "rl", "b" .. i)
      N.sleep(10)
    end
    assert(N.wait(function()
      for i = 1, 20 do if #got[i] < 60 then return false end end
      return true
    end, 10000), "not every client got every event")
    for i = 1, 20 do
      assert.are.same(published, got[i])
      assert(opens[i] >= 2, "client " .. i .. " never reconnected")
      for _, e in ipairs(errs[i]) do assert.are.equal("end of response body", e) end
    end
    -- the old workers are gone (their streams ended: nothing held them)
    assert(N.wait(function()
      for p in pairs(old) do if N.alive(p) then return false end end
      return true
    end, 5000), "old workers still running")
    assert.are.equal(#fresh, #srv:workers())
    for _, c in ipairs(clients) do c:close() end
    N.sleep(50)
    no_errors(srv)
    srv:stop()
  end)
end)

-- How the writers of a worker sleep (sse.ngx.stream): one shared semaphore
-- for all, until a writer is woken for bytes that are not its own.
local SLEEPERS = [==[
        location = /_s/sub {
            content_by_lua_block {
                local hub = package.loaded["spec.sleepers_hub"]
                if not hub then
                    hub = require("sse.ngx").hub()
                    package.loaded["spec.sleepers_hub"] = hub
                end
                local stream = require("sse.ngx").stream()
                hub:attach(stream, { topics = { "all", "only/" .. ngx.var.arg_n } })
                local by_n = package.loaded["spec.sleepers_streams"] or {}
                package.loaded["spec.sleepers_streams"] = by_n
                by_n[ngx.var.arg_n] = stream
            }
        }
        location = /_s/close {
            content_by_lua_block {
                package.loaded["spec.sleepers_streams"][ngx.var.arg_n]:close()
                ngx.print("closed")
            }
        }
        location = /_s/pub {
            content_by_lua_block {
                local hub = package.loaded["spec.sleepers_hub"]
                ngx.print((hub:broadcast_to(ngx.var.arg_topic, { data = ngx.var.arg_data })))
            }
        }
        location = /_s/state {
            content_by_lua_block {
                local hub = package.loaded["spec.sleepers_hub"]
                local s = require("sse.ngx.stream").sleepers()
                ngx.print(require("cjson").encode({ shared = s.shared, own = s.own,
                                                    subscribers = hub and hub:connection_count() or 0 }))
            }
        }
]==]

describe("nginx: the writers' shared semaphore", function()
  it("a fan-out to all keeps every writer on it; an abort wakes no one; bytes for one move the others off", function()
    local srv = assert(N.start({ workers = 1, http = "lua_check_client_abort on;", server = SLEEPERS }))
    finally(function() srv:stop() end)
    local port = srv.port
    local function state()
      local res = assert(N.request(port, "GET", "/_s/state"))
      assert(res.status == 200, res.body .. "\n" .. table.concat(srv:errors(), "\n"))
      return cjson.decode(res.body)
    end
    local function pub(topic, data)
      return tonumber(assert(N.request(port, "POST", "/_s/pub?topic=" .. topic .. "&data=" .. data)).body)
    end
    local subs = {}
    for i = 1, 20 do subs[i] = subscribe(port, "/_s/sub?n=" .. i) end
    assert(N.wait(function()
      for _, c in ipairs(subs) do if not joined(c) then return false end end
      return true
    end, 3000), "not every subscriber joined")
    assert.are.same({ shared = 20, own = 0, subscribers = 20 }, state())
    for e = 1, 3 do assert.are.equal(20, pub("all", "e" .. e)) end
    assert(N.wait(function()
      for _, c in ipairs(subs) do if #c:of_type() < 3 then return false end end
      return true
    end, 3000), "the fan-out did not reach everyone")
    assert.are.same({ shared = 20, own = 0, subscribers = 20 }, state())
    -- a client that goes away: on_abort ends its request, and wakes no other writer
    subs[20]:close()
    assert(N.wait(function() N.sleep(20); return state().subscribers == 19 end, 2000), "the abort was missed")
    assert.are.same({ shared = 19, own = 0, subscribers = 19 }, state())
    -- bytes for one stream wake every writer once: the 18 others find
    -- nothing and move to semaphores of their own
    assert.are.equal(1, pub("only/1", "mine"))
    assert(N.wait(function() return #subs[1]:of_type() == 4 end, 2000), "the event for one did not arrive")
    assert(N.wait(function() N.sleep(20); return state().own == 18 end, 2000), "the others stayed")
    assert.are.same({ shared = 1, own = 18, subscribers = 19 }, state())
    for i = 2, 19 do assert.are.equal(3, #subs[i]:of_type()) end
    -- and everyone still gets what is for everyone
    assert.are.equal(19, pub("all", "e4"))
    assert(N.wait(function()
      for i = 1, 19 do if #subs[i]:of_type() ~= (i == 1 and 5 or 4) then return false end end
      return true
    end, 3000), "an event for all was lost after the move")
    for i = 1, 19 do
      local got = subs[i]:of_type()
      assert.are.equal("e4", got[#got].data)
      subs[i]:close()
    end
    no_errors(srv)
  end)
end)

describe("nginx: the writers' shared semaphore, a server-side close", function()
  it("ends the closed stream at once; the others move off it and still get everything", function()
    local srv = assert(N.start({ workers = 1, http = "lua_check_client_abort on;", server = SLEEPERS }))
    finally(function() srv:stop() end)
    local port = srv.port
    local function state()
      local res = assert(N.request(port, "GET", "/_s/state"))
      assert(res.status == 200, res.body)
      return cjson.decode(res.body)
    end
    local subs = {}
    for i = 1, 5 do subs[i] = subscribe(port, "/_s/sub?n=" .. i) end
    assert(N.wait(function()
      for _, c in ipairs(subs) do if not joined(c) then return false end end
      return true
    end, 3000), "not every subscriber joined")
    assert.are.equal(200, assert(N.request(port, "POST", "/_s/pub?topic=all&data=e1")).status)
    assert(N.wait(function()
      for _, c in ipairs(subs) do if #c:of_type() < 1 then return false end end
      return true
    end, 3000))
    assert.are.same({ shared = 5, own = 0, subscribers = 5 }, state())
    assert.are.equal("closed", assert(N.request(port, "POST", "/_s/close?n=3")).body)
    assert(N.wait(function() return subs[3].ended end, 1000), "the closed stream did not end")
    assert(N.wait(function() N.sleep(20); return state().own == 4 end, 2000), "the others stayed")
    assert.are.same({ shared = 0, own = 4, subscribers = 4 }, state())
    assert.are.equal(200, assert(N.request(port, "POST", "/_s/pub?topic=all&data=e2")).status)
    assert(N.wait(function()
      for i, c in ipairs(subs) do
        if i ~= 3 and #c:of_type() ~= 2 then return false end
      end
      return true
    end, 3000), "an event was lost after the close")
    for i, c in ipairs(subs) do
      if i ~= 3 then assert.are.equal("e2", c:of_type()[2].data) end
      c:close()
    end
    no_errors(srv)
  end)
end)

-- abort = "log": the location's log handler hears of a client that leaves
-- (sse.ngx.finish), and no ngx.on_abort coroutine is made per stream but
-- the worker's first (which learns whether lua_check_client_abort is on).
local LOG_ABORT = [==[
        location = /_l/sub {
            content_by_lua_block {
                local hub = package.loaded["spec.log_hub"] or require("sse.ngx").hub()
                package.loaded["spec.log_hub"] = hub -- the worker's, made by its first stream
                hub:attach(require("sse.ngx").stream({ abort = "log" }), { topics = { "all" } })
            }
            log_by_lua_block { require("sse.ngx").finish() }
        }
        # the same without the log handler: a misconfiguration, said in the log
        location = /_l/nolog {
            content_by_lua_block {
                local stream = require("sse.ngx").stream({ abort = "log" })
                if ngx.var.arg_close then stream:close() end
            }
        }
        location = /_l/state {
            content_by_lua_block {
                local hub = package.loaded["spec.log_hub"]
                ngx.print(hub and hub:connection_count() or 0)
            }
        }
        location = /_l/pub {
            content_by_lua_block {
                ngx.print((package.loaded["spec.log_hub"]:broadcast_to("all", { data = ngx.var.arg_data })))
            }
        }
        location = /_l/heap {
            content_by_lua_block {
                collectgarbage()
                collectgarbage()
                ngx.print(collectgarbage("count") * 1024)
            }
        }
]==]

describe("nginx: abort = \"log\"", function()
  it("removes the subscriber of a client that goes away, in the log phase; the others keep theirs", function()
    local srv = assert(N.start({ workers = 1, http = "lua_check_client_abort on;", server = LOG_ABORT }))
    finally(function() srv:stop() end)
    local port = srv.port
    local function count() return tonumber(assert(N.request(port, "GET", "/_l/state")).body) end
    local subs = {}
    for i = 1, 5 do subs[i] = subscribe(port, "/_l/sub") end
    assert(N.wait(function() N.sleep(20); return count() == 5 end, 3000), "not every subscriber attached")
    subs[2]:close()
    subs[4]:close()
    assert(N.wait(function() N.sleep(20); return count() == 3 end, 2000), "the aborts were missed")
    assert.are.equal("3", assert(N.request(port, "POST", "/_l/pub?data=after")).body)
    for _, i in ipairs({ 1, 3, 5 }) do
      assert(N.wait(function() return #subs[i]:of_type() == 1 end, 2000), "subscriber " .. i .. " lost the event")
      assert.are.equal("after", subs[i]:of_type()[1].data)
      subs[i]:close()
    end
    assert(N.wait(function() N.sleep(20); return count() == 0 end, 2000))
    no_errors(srv)
    assert.is_nil(srv:log():find("finish() has not run", 1, true))
  end)

  -- The Lua heap a live stream keeps in its worker (after full collections):
  -- the stream, its writer thread and its entries in the hub and the writer
  -- tables, 780-830 B at 480 streams; a writer whose coroutine stack doubled
  -- (LuaJIT never shrinks a stack of 94 slots back) kept ~1,190-1,310 B.
  it("keeps under 1,000 B of Lua heap per live stream in the worker", function()
    local srv = assert(N.start({ workers = 1, http = "lua_check_client_abort on;", server = LOG_ABORT }))
    finally(function() srv:stop() end)
    local port = srv.port
    local function heap() return tonumber(assert(N.request(port, "GET", "/_l/heap")).body) end
    local function count() return tonumber(assert(N.request(port, "GET", "/_l/state")).body) end
    local warm = {}
    for i = 1, 20 do warm[i] = subscribe(port, "/_l/sub") end
    assert(N.wait(function() N.sleep(20); return count() == 20 end, 3000))
    assert.are.equal("20", assert(N.request(port, "POST", "/_l/pub?data=warm")).body)
    N.sleep(100)
    local before = heap()
    local subs = {}
    for i = 1, 480 do subs[i] = subscribe(port, "/_l/sub") end
    assert(N.wait(function() N.sleep(20); return count() == 500 end, 5000), "not every subscriber attached")
    -- every writer has written (the join event, then this one)
    assert.are.equal("500", assert(N.request(port, "POST", "/_l/pub?data=x")).body)
    assert(N.wait(function()
      for _, c in ipairs(subs) do if #c:of_type() < 1 then return false end end
      return true
    end, 3000), "the event did not reach everyone")
    local per = (heap() - before) / 480
    assert(per > 300 and per < 1000, ("%.0f B of Lua heap per stream"):format(per))
    for _, c in ipairs(subs) do c:close() end
    for _, c in ipairs(warm) do c:close() end
  end)

  it("says in the error log when a location lacks the log handler", function()
    local srv = assert(N.start({ workers = 1, http = "lua_check_client_abort on;", server = LOG_ABORT }))
    finally(function() srv:stop() end)
    local port = srv.port
    local first = assert(N.request(port, "GET", "/_l/nolog?close=1"))
    assert.are.equal(200, first.status)
    N.sleep(1100)
    local c = subscribe(port, "/_l/nolog")
    assert(N.wait(function() return srv:log():find("finish() has not run", 1, true) ~= nil end, 2000),
      "no warning: " .. srv:log())
    c:close()
  end)

  it("still says when lua_check_client_abort is off", function()
    local srv = assert(N.start({ workers = 1, http = "lua_check_client_abort off;", server = LOG_ABORT }))
    finally(function() srv:stop() end)
    local c = subscribe(srv.port, "/_l/sub")
    assert(N.wait(function() return srv:log():find("lua_check_client_abort is off", 1, true) ~= nil end, 2000))
    c:close()
  end)
end)
