-- sse.metrics and the demo hub's GET /metrics (issue 14): Prometheus text
-- format checked by Debian's promtool, values that follow what really
-- happened (bytes a client read, slow clients closed, drops, gaps), the
-- token rule of /stats, and refusals counted.
local uv = require("luv")
local sse = require("sse")
local metrics = require("sse.metrics")
local App = require("sse.app")
local C = require("helpers.http_client")
local util = require("helpers.util")

-- Samples of an exposition: {["name{labels}"] = value}, plus the HELP and
-- TYPE of each family; raises on a line that is neither.
local function parse(text)
  local samples, types, helps = {}, {}, {}
  for line in text:gmatch("([^\n]*)\n") do
    local name, kind = line:match("^# TYPE ([%w_:]+) (%a+)$")
    if name then
      types[name] = kind
    else
      local hname = line:match("^# HELP ([%w_:]+) .+$")
      if hname then
        helps[hname] = true
      else
        local key, v = line:match("^([%w_:]+%b{}) (%S+)$")
        if not key then key, v = line:match("^([%w_:]+) (%S+)$") end
        assert(key, "not a sample line: " .. line)
        samples[key] = tonumber(v)
      end
    end
  end
  return samples, types, helps
end

-- promtool check metrics on text: exit status and output.
local function promtool(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local p = assert(io.popen("env -u LD_PRELOAD promtool check metrics < " .. path .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out:gsub("rc=%d+%s*$", "")
end

local function writer_stream(sink, opts)
  opts = opts or {}
  opts.writer = function(b)
    if sink then sink[#sink + 1] = b end
    return true
  end
  return sse.Stream.new(opts)
end

describe("sse.metrics.render", function()
  it("renders every family of a fresh hub with HELP and TYPE, and promtool accepts it", function()
    local hub = sse.Hub.new({ flush = "immediate", replayer = sse.MemoryReplayer.new() })
    local text = metrics.render(hub)
    local samples, types, helps = parse(text)
    local want = {
      sse_connections = "gauge", sse_topics = "gauge", sse_events_published_total = "counter",
      sse_deliveries_total = "counter", sse_sent_bytes_total = "counter", sse_events_dropped_total = "counter",
      sse_gap_events_total = "counter", sse_streams_closed_total = "counter",
      sse_replay_oldest_age_seconds = "gauge", sse_replay_events = "gauge", sse_replay_bytes = "gauge",
      sse_compressed_input_bytes_total = "counter", sse_compressed_output_bytes_total = "counter",
    }
    assert.are.same(want, types)
    for name in pairs(want) do assert.is_true(helps[name], name) end
    assert.are.equal(0, samples['sse_gap_events_total{cause="replay"}'])
    assert.are.equal(0, samples['sse_streams_closed_total{reason="slow"}'])
    local rc, out = promtool(text)
    assert.are.equal(0, rc, out)
    hub:close()
  end)

  it("counts what happened: deliveries, bytes, slow closes, drops, gaps, the replay window", function()
    local t = 100
    local ring = sse.MemoryReplayer.new({ clock = function() return t end })
    local hub = sse.Hub.new({ flush = "immediate", replayer = ring })
    local got = {}
    local a = writer_stream(got)
    hub:attach(a, { topics = { "news" } })   -- the sse-join event
    t = 103
    for i = 1, 3 do assert(hub:broadcast_to("news", { data = "event " .. i })) end
    t = 110
    -- a stream in no hub: its bytes are not the hub's
    local lone = writer_stream()
    lone:send({ data = "elsewhere" })
    -- a client that resumes from an unknown id: one replay gap
    local gotb = {}
    local b = writer_stream(gotb)
    hub:attach(b, { topics = { "news" }, last_event_id = "nope-1" })
    local s = parse(metrics.render(hub))
    assert.are.equal(2, s.sse_connections)
    assert.are.equal(1, s.sse_topics)
    assert.are.equal(3, s.sse_events_published_total)
    assert.are.equal(3, s.sse_deliveries_total)
    assert.are.equal(#table.concat(got) + #table.concat(gotb), s.sse_sent_bytes_total)
    assert.are.equal(1, s['sse_gap_events_total{cause="replay"}'])
    assert.are.equal(3, s.sse_replay_events)
    assert.are.equal(ring:bytes(), s.sse_replay_bytes)
    assert.are.equal(7, s.sse_replay_oldest_age_seconds) -- stored at 103, now 110
    hub:close()
  end)

  it("counts slow clients closed and events dropped with their gap events", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    -- pull streams nobody takes from: their outboxes fill
    local function pull(policy)
      return sse.Stream.new({ on_ready = function() end, outbox_limit = 300, slow_policy = policy })
    end
    local closer, dropper = pull("close"), pull("drop_oldest")
    hub:register(closer)
    hub:register(dropper)
    for i = 1, 10 do hub:broadcast({ data = ("x"):rep(50) .. i }) end
    local s = parse(metrics.render(hub))
    assert.are.equal(1, s['sse_streams_closed_total{reason="slow"}'])
    assert.are.equal(0, s['sse_streams_closed_total{reason="write_failed"}'])
    local dropped = dropper:stats().dropped
    assert.is_true(dropped > 0)
    assert.are.equal(dropped, s.sse_events_dropped_total)
    assert.are.equal(1, s['sse_gap_events_total{cause="dropped"}'])
    hub:close()
  end)

  it("renders an asynchronous backend's state", function()
    local backend = {
      store = function() end, replay = function() end, last_id = function() return nil end,
      status = function()
        return { backend = "redis", healthy = false, connected = true, following = false, lag = 7,
                 published = 5, publish_errors = 1, delivered = 4, reconnects = 2, catchups = 1, gaps = 0 }
      end,
    }
    local hub = sse.Hub.new({ flush = "immediate", replayer = backend })
    local text = metrics.render(hub)
    local s, types = parse(text)
    assert.are.equal(0, s['sse_backend_up{backend="redis"}'])
    assert.are.equal(1, s['sse_backend_connected{backend="redis"}'])
    assert.are.equal(7, s['sse_backend_lag_events{backend="redis"}'])
    assert.are.equal(2, s['sse_backend_reconnects_total{backend="redis"}'])
    assert.are.equal("counter", types.sse_backend_publish_errors_total)
    assert.are.equal(0, (promtool(text)))
    hub:close()
  end)

  it("appends extra families, escaped, and checks them", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    local text = metrics.render(hub, {
      { name = "app_jobs_total", type = "counter", help = "Jobs.\nDone \\ all.",
        value = { { { "kind", 'a"b\\c\nd' }, 3 }, { { "kind", "plain" }, 1.5 } } },
      { name = "app_ratio", type = "gauge", help = "A ratio.", value = 0 / 0 },
    })
    assert.truthy(text:find('# HELP app_jobs_total Jobs.\\nDone \\\\ all.\n', 1, true))
    assert.truthy(text:find('app_jobs_total{kind="a\\"b\\\\c\\nd"} 3\n', 1, true))
    assert.truthy(text:find("app_jobs_total{kind=\"plain\"} 1.5\n", 1, true))
    assert.truthy(text:find("app_ratio NaN\n", 1, true))
    assert.are.equal(0, (promtool(text)))
    util.raises_arg(1, "sse.Hub expected, got nil", metrics.render, nil)
    util.raises_arg(2, "extra[1]: a counter's name ends in _total, got 'app_jobs'", metrics.render, hub,
      { { name = "app_jobs", type = "counter", help = "x", value = 1 } })
    util.raises_arg(2, "extra[1]: 'name' must be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", metrics.render, hub,
      { { name = "app-jobs", type = "gauge", help = "x", value = 1 } })
    util.raises_arg(2, "extra[1]: 'type' must be \"counter\" or \"gauge\"", metrics.render, hub,
      { { name = "app", type = "summary", help = "x", value = 1 } })
    util.raises_arg(2, "extra[1]: value[1] must be {labels, number}", metrics.render, hub,
      { { name = "app", type = "gauge", help = "x", value = { { {}, "1" } } } })
    hub:close()
  end)

  it("is checked by a promtool that does find faults", function()
    -- the check is real: promtool refuses what breaks the conventions
    local rc, out = promtool("# HELP x_bytes A.\n# TYPE x_bytes counter\nx_bytes 1\n")
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("_total", 1, true), out)
  end)
end)

describe("GET /metrics in the demo hub", function()
  local app
  after_each(function()
    if app then app:close() end
    app = nil
    C.sleep(20)
  end)

  local function get(path, headers)
    local c = C.connect(app.port)
    local res = assert(c:request(C.get(path, headers), 3000))
    c:close()
    return res
  end

  it("follows the token rule of /stats and counts refusals and answers by status", function()
    app = App.new({ port = 0, log = function() end, token = "s3cret" })
    assert(app:listen())
    local res = get("/metrics")
    assert.are.equal(401, res.status)
    assert.is_nil(res.body:find("sse_connections", 1, true))
    assert.are.equal(404, get("/nope").status)
    local auth = { "Authorization: Bearer s3cret\r\n" }
    res = get("/metrics", auth)
    assert.are.equal(200, res.status)
    assert.are.equal(metrics.CONTENT_TYPE, res.headers["content-type"])
    local s = parse(res.body)
    assert.are.equal(1, s['sse_auth_refusals_total{status="401"}'])
    assert.are.equal(0, s['sse_auth_refusals_total{status="403"}'])
    assert.are.equal(1, s['sse_http_responses_total{status="401"}'])
    assert.are.equal(1, s['sse_http_responses_total{status="404"}'])
    assert.are.equal(1, s['sse_info{version="' .. sse.version .. '"}'])
    assert.is_true(math.abs(s.sse_start_time_seconds - os.time()) < 60)
    local rc, out = promtool(res.body)
    assert.are.equal(0, rc, out)
  end)

  it("counts the bytes a real client read and a slow client closed", function()
    app = App.new({ port = 0, log = function() end, outbox_limit = 4096, keepalive = 60 })
    assert(app:listen())
    local reader = C.connect(app.port)
    reader:send(C.get("/events?topic=news"))
    local slow = C.connect(app.port)
    slow:send(C.get("/events?topic=news"))
    assert.is_true(C.wait(function() return app.hub:connection_count() == 2 end, 2000))
    slow:pause()
    local big = ("y"):rep(60000)
    local pub = C.connect(app.port)
    local function publish(data)
      local r = assert(pub:request(C.post("/publish", "topic=news&data=" .. data,
        { "Content-Type: application/x-www-form-urlencoded\r\n" }), 3000))
      assert.are.equal(200, r.status)
    end
    publish("hello")
    -- the paused client's socket buffers fill, then its outbox: closed as slow
    for _ = 1, 200 do
      publish(big)
      if app.hub:connection_count() < 2 then break end
    end
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 3000))
    local sent_before = reader.len
    C.wait(function() return false end, 200)
    assert.are.equal(sent_before, reader.len) -- everything published reached the reader
    pub:close()
    -- the slow client now reads what its socket accepted before the close
    slow:resume()
    assert.is_true(slow:wait_closed(3000))
    local res = get("/metrics")
    local s = parse(res.body)
    assert.are.equal(1, s['sse_streams_closed_total{reason="slow"}'])
    assert.are.equal(1, s.sse_connections)
    -- what the hub says its transports accepted is what the clients read,
    -- response head included (it goes out in the stream's first write, in
    -- the hub)
    assert.are.equal(reader.len + slow.len, s.sse_sent_bytes_total)
    local rc, out = promtool(res.body)
    assert.are.equal(0, rc, out)
    reader:close()
    slow:close()
    uv.run("nowait")
  end)
end)
