-- Fault and abuse specs over real loopback sockets (issue 6): dropped and
-- resumed connections, a client that stops reading, clients that vanish
-- without FIN, connection floods, slowloris, malformed requests and hostile
-- event values. Every wait is bounded; child processes are killed by PID.
--
-- They take longer than the unit specs, so `make spec` lists them as pending
-- and `make fault` runs them (SSE_FAULT=1). The short form runs in CI;
-- SSE_FAULT_FULL=1 runs the documented full form (1,000 subscribers, 10,000
-- events). docs/RELIABILITY.md has the figures.
if os.getenv("SSE_FAULT") ~= "1" then
  describe("fault specs", function()
    pending("run with `make fault` (SSE_FAULT=1)")
  end)
  return
end

local uv = require("luv")
local cjson = require("cjson")
local sse = require("sse")
local App = require("sse.app")
local C = require("helpers.http_client")
local proc = require("helpers.fault_proc")

local FULL = os.getenv("SSE_FAULT_FULL") == "1"
local unpack = table.unpack or unpack -- luacheck: ignore
local CLIENT = "spec/helpers/fault_client.lua"

-- ---------------------------------------------------------------------------
-- helpers

local apps, conns = {}, {}

local function start(opts)
  opts = opts or {}
  opts.port = 0
  opts.log = opts.log or function() end
  local app = App.new(opts)
  assert(app:listen())
  apps[#apps + 1] = app
  return app
end

local function connect(port)
  local c = C.connect(port)
  assert.is_true(c.connected, "connect failed: " .. tostring(c.err))
  conns[#conns + 1] = c
  return c
end

-- Open file descriptors of this (the server's) process.
local function fd_count()
  local n = 0
  local req = assert(uv.fs_scandir("/proc/self/fd"))
  while uv.fs_scandir_next(req) do n = n + 1 end
  return n
end

-- Resident set size of this process in KiB, after a full collection.
local function rss_kib()
  collectgarbage("collect")
  collectgarbage("collect")
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function percentile(list, p)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  return t[math.max(1, math.ceil(#t * p))]
end

-- A raw event-stream reader on loopback: sends the GET, parses the status
-- line, then keeps the body bytes (r.body) and splits them into event blocks
-- (r.blocks, each {text =, t = arrival in ns}). opts.rcvbuf sets a small
-- receive buffer, opts.read = false connects without reading (r.start()
-- reads later), opts.light keeps only the first 64 bytes of each block and
-- no body.
local readers = {}
local function reader(port, target, opts)
  opts = opts or {}
  local r = { head = "", body = "", pending = "", blocks = {}, eof = false, tcp = uv.new_tcp() }
  readers[#readers + 1] = r
  if opts.rcvbuf then r.tcp:recv_buffer_size(opts.rcvbuf) end
  local function on_data(err, data)
    if err or not data then
      r.eof, r.t_eof = true, uv.hrtime()
      if not r.tcp:is_closing() then r.tcp:close() end
      return
    end
    if r.head then
      r.head = r.head .. data
      local e = r.head:find("\r\n\r\n", 1, true)
      if not e then return end
      data = r.head:sub(e + 4)
      r.status = tonumber(r.head:match("^HTTP/1%.1 (%d+)"))
      r.head, r.t_head = nil, uv.hrtime()
    end
    if not opts.light then r.body = r.body .. data end
    local now = uv.hrtime()
    local s = r.pending .. data
    local pos = 1
    while true do
      local a, b = s:find("\n\n", pos, true)
      if not a then break end
      r.blocks[#r.blocks + 1] = { text = s:sub(pos, opts.light and math.min(a, pos + 63) or a), t = now }
      pos = b + 1
    end
    r.pending = s:sub(pos)
  end
  function r.start()
    r.tcp:read_start(function(err, data)
      local ok, e = pcall(on_data, err, data)
      if not ok then r.failure = r.failure or e end
    end)
  end
  function r.close()
    if not r.tcp:is_closing() then r.tcp:close() end
  end
  r.tcp:connect("127.0.0.1", port, function(err)
    if err then
      r.eof, r.err = true, err
      return
    end
    r.connected = true
    r.tcp:write("GET " .. target .. " HTTP/1.1\r\nHost: fault\r\nAccept: text/event-stream\r\n\r\n")
    if opts.read ~= false then r.start() end
  end)
  return r
end

-- The data of each event block of r.
local function datas(r)
  local t = {}
  for i = 1, #r.blocks do
    local text = r.blocks[i].text
    -- the join position (sse-join) is bookkeeping, not one of the events
    local d = not text:find("^event: sse%-join\n") and text:match("data: ([^\n]*)")
    if d then t[#t + 1] = d end
  end
  return t
end

-- An sse.client subscriber in this process, recording what it gets.
local clients = {}
local function subscriber(app, query, opts)
  local got = { events = {}, opens = 0, errors = {} }
  opts = opts or {}
  got.client = require("sse.client").connect(("http://127.0.0.1:%d/events%s"):format(app.port, query), {
    retry = 20,
    last_event_id = opts.last_event_id,
    max_event_bytes = 4 * 1024 * 1024,
    on_event = function(ev)
      if ev.type ~= "sse-join" then got.events[#got.events + 1] = ev end
    end,
    on_open = function() got.opens = got.opens + 1 end,
    on_error = function(err) got.errors[#got.errors + 1] = err end,
  })
  clients[#clients + 1] = got.client
  return got
end

local function event_datas(got)
  local t = {}
  for i, e in ipairs(got.events) do t[i] = #e.data > 40 and (#e.data .. " bytes") or e.data end
  return t
end

after_each(function()
  proc.kill_all()
  C.wait(proc.all_reaped, 5000)
  for _, c in ipairs(conns) do c:close() end
  for _, r in ipairs(readers) do r.close() end
  for _, c in ipairs(clients) do c:close() end
  readers, clients = {}, {}
  for _, a in ipairs(apps) do a:close() end
  conns, apps = {}, {}
  C.sleep(20)
end)

-- ---------------------------------------------------------------------------

describe("fault: dropped connections", function()
  local SUBS = 1000
  local EVENTS = FULL and 10000 or 2000
  local BURST = FULL and 100 or 50
  local LIMIT = FULL and 120 or 40 -- seconds the client process may take

  it(("%d subscribers resume after random drops and get all %d events, in order, once")
      :format(SUBS, EVENTS), function()
    local app = start({ replay_events = EVENTS, max_connections = SUBS + 100 })
    local hub = app.hub
    local child = proc.spawn(CLIENT, { "subscribe", app.port, SUBS, EVENTS, "f", LIMIT })
    assert.is_true(C.wait(function() return hub:connection_count() == SUBS or child.exited end, 20000),
      "subscribers connected: " .. hub:connection_count() .. "\n" .. child:stderr_text())

    local published, bursts, drops, storms = 1, 0, 0, 0
    local rng = 12345
    local function rand(k) -- a small LCG: the same drops on every run
      rng = (rng * 1103515245 + 12345) % 2147483648
      return rng % k + 1
    end
    local function first() return tonumber(child:last("first ")) or 0 end
    local failure
    local t0 = uv.hrtime()
    -- The first event, then drops only once every subscriber holds an id to
    -- resume from (one cut off before it has one cannot: "known problems").
    hub:broadcast_to("f", { data = "1" })
    assert.is_true(C.wait(function() return first() == SUBS end, 10000), "first event: " .. first())
    -- Each turn publishes a burst, then drops streams in the same loop
    -- turn, before the hub has written the burst.
    local pump = uv.new_timer()
    pump:start(5, 10, function()
      local ok, err = pcall(function()
        -- publish only while most subscribers are attached: a reconnect
        -- storm is not outrun (that would test the size of the window)
        if published >= EVENTS or hub:connection_count() < SUBS * 0.5 then return end
        for _ = 1, BURST do
          published = published + 1
          hub:broadcast_to("f", { data = tostring(published) })
          if published == EVENTS then break end
        end
        bursts = bursts + 1
        if published == EVENTS then return end
        -- drop 2% of the streams: half gracefully (what is queued goes
        -- out), half cut off at once (the client may get half an event)
        local list = {}
        for _, s in ipairs(hub:streams()) do list[#list + 1] = s end
        for k = 1, math.floor(#list / 50) do
          local s = table.remove(list, rand(#list))
          drops = drops + 1
          s:close(k % 2 == 0 and "fault" or nil)
        end
        -- after every tenth burst, everyone at once (/admin/disconnect)
        if bursts % 10 == 5 then
          storms = storms + 1
          drops = drops + app:disconnect_all()
        end
      end)
      if not ok then failure = failure or err end
    end)
    local finished = C.wait(function() return child.exited or failure end, LIMIT * 1000 + 5000)
    pump:stop()
    pump:close()
    local secs = (uv.hrtime() - t0) / 1e9
    assert.is_nil(failure)
    assert.is_true(finished, "client process did not finish")
    assert.are.equal(EVENTS, published)
    local line = child:last("result ")
    assert.is_truthy(line, "no result from the client process:\n" .. table.concat(child.lines, "\n")
      .. child:stderr_text())
    local r = cjson.decode(line)
    print(("\n  [dropped connections] %d subscribers, %d events, %d drops (%d storms), %d reconnects,"
      .. " %.1f s"):format(SUBS, EVENTS, drops, storms, r.opens - SUBS, secs))
    assert.are.same({ dups = 0, lost = 0, gaps = 0, foreign = 0, complete = SUBS, min_received = EVENTS },
      { dups = r.dups, lost = r.lost, gaps = r.gaps, foreign = r.foreign, complete = r.complete,
        min_received = r.min_received }, r.sample)
    assert.is_true(r.all_complete)
    -- every drop came with events still to come: each client reconnected
    -- (a stream dropped in the loop turn that opened it never wrote its
    -- head: its client saw the connection end before a response, and tried
    -- again)
    assert.is_true(drops > SUBS, "only " .. drops .. " drops")
    local tries = r.opens - SUBS + (r.unopened or 0)
    assert.is_true(tries >= drops, ("%d reconnects for %d drops"):format(tries, drops))
    -- the client process is gone: every stream and connection is cleaned up
    assert.is_true(C.wait(function() return app.http:connection_count() == 0 end, 5000),
      app.http:connection_count() .. " connections left")
    assert.are.equal(0, hub:connection_count())
  end)
end)

describe("fault: a subscriber that stops reading", function()
  local READERS, EVENTS, SIZE, LIMIT = 20, 300, 4000, 64 * 1024

  -- READERS reading clients and, with_slow, one that never reads (4 KB
  -- receive buffer). EVENTS events of SIZE bytes, one every 2 ms. Returns
  -- the readers' delivery latencies (ms) and what happened to the slow one.
  local function run(policy, with_slow)
    local app = start({ outbox_limit = LIMIT, slow_policy = policy })
    local hub = app.hub
    local res = { max_queued = 0, latencies = {} }
    local slow, slow_stream
    if with_slow then
      slow = reader(app.port, "/events?topic=l", { read = false, rcvbuf = 4096 })
      assert.is_true(C.wait(function() return hub:connection_count() == 1 end, 2000))
      slow_stream = hub:streams()[1]
      slow_stream:on_close(function(why) res.reason = why end)
      -- pin its kernel send buffer, so the backlog lands in the outbox
      -- after ~16 KB rather than after the up to 4 MB that loopback
      -- autotuning would first absorb
      slow_stream:_handle():send_buffer_size(8192)
    end
    local rs = {}
    for i = 1, READERS do rs[i] = reader(app.port, "/events?topic=l", { light = true }) end
    local n = READERS + (with_slow and 1 or 0)
    assert.is_true(C.wait(function() return hub:connection_count() == n end, 2000))
    C.sleep(50)
    for _, r in ipairs(rs) do r.skip = #r.blocks end -- blocks before the first event

    local pad = ("p"):rep(SIZE)
    local sent_at, k = {}, 0
    local pump = uv.new_timer()
    pump:start(2, 2, function()
      if k >= EVENTS then return end
      k = k + 1
      sent_at[k] = uv.hrtime()
      hub:broadcast_to("l", { data = k .. ":" .. pad })
      if slow_stream and not slow_stream:is_closed() then
        res.max_queued = math.max(res.max_queued, slow_stream:queued_bytes())
      end
    end)
    local all = C.wait(function()
      for _, r in ipairs(rs) do if #r.blocks < EVENTS + r.skip then return false end end
      return true
    end, 10000)
    pump:stop()
    pump:close()
    assert.is_true(all, "the reading clients did not get every event")
    for _, r in ipairs(rs) do
      local i = 0
      for _, b in ipairs(r.blocks) do
        local seq = tonumber(b.text:match("data: (%d+):"))
        if seq then
          i = i + 1
          assert.are.equal(i, seq)
          res.latencies[#res.latencies + 1] = (b.t - sent_at[seq]) / 1e6
        end
      end
    end
    res.p50 = percentile(res.latencies, 0.5)
    res.p90 = percentile(res.latencies, 0.9)
    res.app, res.slow, res.slow_stream, res.sent = app, slow, slow_stream, k
    return res
  end

  for _, policy in ipairs({ "close", "drop_oldest" }) do
    it(("does not slow the others down and stays within its outbox (%s policy)"):format(policy), function()
      run(policy, false) -- warm-up, not measured
      local base = run(policy, false)
      local with = run(policy, true)
      print(("\n  [slow reader, %s] latency p50 %.2f ms -> %.2f ms, p90 %.2f ms -> %.2f ms,"
        .. " its outbox peaked at %d bytes"):format(policy, base.p50, with.p50, base.p90, with.p90,
        with.max_queued))
      -- within 2x of the run without it (+0.1 ms: the clock's and the
      -- scheduler's grain at these sub-millisecond figures)
      assert.is_true(with.p50 <= 2 * base.p50 + 0.1, ("p50 %.2f ms vs %.2f ms"):format(with.p50, base.p50))
      assert.is_true(with.p90 <= 2 * base.p90 + 0.1, ("p90 %.2f ms vs %.2f ms"):format(with.p90, base.p90))
      assert.is_true(with.max_queued > 0, "the slow client never had anything queued")
      assert.is_true(with.max_queued <= LIMIT, with.max_queued .. " bytes queued")
      local hub, slow, st = with.app.hub, with.slow, with.slow_stream
      if policy == "close" then
        assert.are.equal("slow", with.reason)
        assert.is_true(st:is_closed())
        assert.are.equal(1, hub.stats.slow_closed)
        assert.are.equal(READERS, hub:connection_count())
        -- what it finally reads ends with EOF
        slow.start()
        assert.is_true(C.wait(function() return slow.eof end, 3000))
      else
        assert.is_nil(with.reason)
        assert.is_false(st:is_closed())
        assert.are.equal(0, hub.stats.slow_closed)
        assert.are.equal(READERS + 1, hub:connection_count())
        assert.is_true(st:queued_bytes() <= LIMIT)
        -- reading again: old events, the gap event, then the newest
        slow.start()
        local last = with.sent .. ":"
        assert.is_true(C.wait(function()
          local b = slow.blocks[#slow.blocks]
          return b and b.text:find("data: " .. last, 1, true) ~= nil
        end, 3000), "the slow client never caught up")
        local gaps = 0
        for _, b in ipairs(slow.blocks) do
          local dropped = b.text:match('^event: sse%-gap\ndata: {"last_event_id":null,"oldest":null,'
            .. '"latest":null,"dropped":(%d+)}\n$')
          if dropped then
            gaps = gaps + 1
            assert.is_true(tonumber(dropped) > 0)
          end
        end
        assert.is_true(gaps >= 1, "no sse-gap event")
        -- in order around the gaps
        local prev = 0
        for _, d in ipairs(datas(slow)) do
          local seq = tonumber(d:match("^(%d+):"))
          if seq then
            assert.is_true(seq > prev)
            prev = seq
          end
        end
      end
    end)
  end
end)

describe("fault: clients that vanish", function()
  local ROUNDS, PER = 10, 25

  it(("are detected and cleaned up, with no fd or memory leak over %d rounds"):format(ROUNDS), function()
    -- A stopped process (SIGSTOP) keeps its sockets open and never reads
    -- again: no FIN, no RST, its kernel still ACKs (with a zero window).
    -- Only the server's writes can notice it: once the outbox overflows,
    -- the close policy drops it. A killed process (SIGKILL) sends FIN/RST,
    -- which the server sees at once.
    local app = start({ outbox_limit = 64 * 1024, replay_bytes = 512 * 1024 })
    local hub, http = app.hub, app.http
    local pad = ("v"):rep(16 * 1024)
    local fds, rss, secs = {}, {}, {}
    local fd0 = fd_count()
    for round = 1, ROUNDS do
      local stopped = proc.spawn(CLIENT, { "hold", app.port, PER, "/events?topic=h" })
      local killed = proc.spawn(CLIENT, { "hold", app.port, PER, "/events?topic=h" })
      assert.is_true(C.wait(function()
        return (stopped:last("ready ") and killed:last("ready ")) ~= nil or stopped.exited or killed.exited
      end, 5000), "round " .. round .. ": clients not ready\n" .. stopped:stderr_text())
      assert.are.equal(2 * PER, hub:connection_count())
      local t0 = uv.hrtime()
      assert.is_true(stopped:signal("sigstop"))
      assert.is_true(killed:signal("sigkill"))
      -- the killed ones go at once, without any write
      assert.is_true(C.wait(function() return hub:connection_count() == PER end, 2000),
        "round " .. round .. ": " .. hub:connection_count() .. " streams after SIGKILL")
      -- events flow until every stopped one has been dropped
      local pump = uv.new_timer()
      local n = 0
      pump:start(1, 2, function()
        n = n + 1
        hub:broadcast_to("h", { data = pad .. n })
      end)
      local gone = C.wait(function() return http:connection_count() == 0 end, 10000)
      pump:stop()
      pump:close()
      secs[round] = (uv.hrtime() - t0) / 1e9
      assert.is_true(gone, ("round %d: %d connections left"):format(round, http:connection_count()))
      assert.are.equal(0, hub:connection_count())
      stopped:signal("sigkill")
      assert.is_true(C.wait(proc.all_reaped, 5000))
      C.sleep(20)
      fds[round], rss[round] = fd_count(), rss_kib()
      assert.are.equal(fd0, fds[round], "round " .. round .. ": fds " .. table.concat(fds, " "))
    end
    print(("\n  [vanished clients] %d rounds of %d stopped + %d killed: detected in %.2f..%.2f s;"
      .. " fds %d -> %d; RSS %d KiB after round 2, %d KiB after round %d")
      :format(ROUNDS, PER, PER, math.min(unpack(secs)), math.max(unpack(secs)),
        fd0, fds[ROUNDS], rss[2], rss[ROUNDS], ROUNDS))
    -- every stopped client was dropped by the slow policy, none otherwise
    assert.are.equal(PER * ROUNDS, hub.stats.slow_closed)
    assert.are.equal(PER * ROUNDS, hub.stats.dropped_streams)
    -- memory: flat after the first rounds warmed the allocator and the ring
    -- (not under ASan, whose quarantine holds freed memory on purpose)
    if not (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
      assert.is_true(rss[ROUNDS] - rss[2] < 2048, ("RSS grew %d KiB"):format(rss[ROUNDS] - rss[2]))
    end
  end)
end)

describe("fault: connection flood", function()
  it("answers 503 past max_connections and closes at once; streams keep receiving; service recovers",
    function()
      local MAX, SUBS, FLOOD, WAVES = 64, 16, 400, 5
      local app = start({ max_connections = MAX })
      local hub, http = app.hub, app.http
      local subs = {}
      for i = 1, SUBS do subs[i] = reader(app.port, "/events?topic=fl") end
      assert.is_true(C.wait(function() return hub:connection_count() == SUBS end, 2000))

      -- events every 5 ms through the flood
      local n = 0
      local pump = uv.new_timer()
      pump:start(5, 5, function()
        n = n + 1
        hub:broadcast_to("fl", { data = tostring(n) })
      end)
      -- WAVES waves of FLOOD connections at once
      local flood, ok200, refused, other, slowest = {}, 0, 0, 0, 0
      for _ = 1, WAVES do
        local wave = {}
        for i = 1, FLOOD do
          wave[i] = reader(app.port, "/events?topic=fl")
          flood[#flood + 1] = wave[i]
        end
        local settled = C.wait(function()
          for _, f in ipairs(wave) do
            if not (f.status == 200 or f.eof) then return false end
          end
          return true
        end, 5000)
        assert.is_true(settled, "flood connections neither served nor closed")
        for _, f in ipairs(wave) do
          if f.status == 200 then
            ok200 = ok200 + 1
          elseif f.status == 503 then
            refused = refused + 1
            -- the answer, then at once the end of the connection
            assert.are.equal("too many connections\n", f.body)
            slowest = math.max(slowest, (f.t_eof - f.t_head) / 1e6)
          else
            other = other + 1
          end
        end
        assert.are.equal(MAX, http:connection_count())
      end
      assert.are.same({ MAX - SUBS, WAVES * FLOOD - (MAX - SUBS), 0 }, { ok200, refused, other })
      assert.is_true(slowest < 500, ("a refused connection stayed open %.0f ms"):format(slowest))
      local during = n
      -- the existing streams kept receiving, in order
      assert.is_true(C.wait(function()
        for _, r in ipairs(subs) do if #datas(r) < during then return false end end
        return true
      end, 2000))
      for _, r in ipairs(subs) do
        local d = datas(r)
        for i = 1, during do assert.are.equal(tostring(i), d[i]) end
      end
      pump:stop()
      pump:close()
      -- recovery: the accepted flood streams leave, new clients are served
      for _, f in ipairs(flood) do f.close() end
      assert.is_true(C.wait(function() return http:connection_count() == SUBS end, 2000),
        http:connection_count() .. " connections")
      local late = reader(app.port, "/events?topic=fl")
      assert.is_true(C.wait(function() return hub:connection_count() == SUBS + 1 end, 2000))
      local c = connect(app.port)
      local res = c:request("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Content-Length: 29\r\n\r\n" .. '{"topic":"fl","data":"after"}', 2000)
      assert.are.equal(200, res.status)
      assert.is_true(C.wait(function() return datas(late)[1] == "after" end, 2000))
      print(("\n  [flood] %d connections at max_connections = %d: %d served, %d refused with 503"
        .. " (closed within %.1f ms); %d events reached all %d streams")
        :format(WAVES * FLOOD, MAX, ok200, refused, slowest, during, SUBS))
    end)
end)

describe("fault: slowloris and idle connections", function()
  it("closes heads sent one byte a second and silent connections after head_timeout", function()
    local TIMEOUT, SLOW, IDLE = 1.5, 40, 40
    -- the demo hub has no head_timeout option: its parts, with one
    local hub = sse.Hub.new({})
    local http = sse.http.new({ port = 0, head_timeout = TIMEOUT, log = function() end })
    http:get("/events", function(_, res) hub:register(res:sse()) end)
    http:get("/ping", function(_, res) res:send("pong") end)
    local port = assert(http:listen())
    finally(function() http:close() hub:close() end)

    local live = reader(port, "/events")
    assert.is_true(C.wait(function() return hub:connection_count() == 1 end, 2000))
    local head = "GET /ping HTTP/1.1\r\nHost: slowloris\r\nX-Pad: " .. ("z"):rep(64) .. "\r\n\r\n"
    local slow, idle = {}, {}
    for i = 1, SLOW do slow[i] = connect(port) end
    for i = 1, IDLE do idle[i] = connect(port) end
    local t0, sent = uv.hrtime(), 0
    -- one byte a second to each slow connection; events and requests go on
    local drip, n, pings, pongs = uv.new_timer(), 0, 0, 0
    drip:start(0, 1000, function()
      sent = sent + 1
      for _, c in ipairs(slow) do
        if not c.eof then c:send(head:sub(sent, sent)) end
      end
    end)
    local pump = uv.new_timer()
    pump:start(50, 50, function()
      n = n + 1
      hub:broadcast({ data = tostring(n) })
      pings = pings + 1
      local c = C.connect(port)
      conns[#conns + 1] = c
      c:send("GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      c.ping = true
    end)
    local closed = {}
    local all = C.wait(function()
      local now = uv.hrtime()
      for _, list in ipairs({ slow, idle }) do
        for _, c in ipairs(list) do
          if c.eof and not closed[c] then closed[c] = (now - t0) / 1e9 end
        end
      end
      local k = 0
      for _ in pairs(closed) do k = k + 1 end
      return k == SLOW + IDLE
    end, (TIMEOUT + 2) * 1000)
    drip:stop()
    drip:close()
    pump:stop()
    pump:close()
    assert.is_true(all, "some connections are still open")
    local first, last = math.huge, 0
    for _, t in pairs(closed) do first, last = math.min(first, t), math.max(last, t) end
    -- closed after the head timeout (the sweep runs every head_timeout / 4)
    assert.is_true(first >= TIMEOUT - 0.05 and last <= TIMEOUT + 0.6,
      ("closed between %.2f and %.2f s"):format(first, last))
    -- the silent ones are closed without a word, the slow ones get a 408
    for _, c in ipairs(idle) do assert.are.equal("", c.buf) end
    for _, c in ipairs(slow) do
      local r = c:response(100)
      assert.are.equal(408, r and r.status)
      assert.are.equal("request head not received in time\n", r.body)
    end
    assert.is_true(sent <= 3, sent .. " bytes dripped")
    -- meanwhile: every ping answered, the stream got every event in order
    for _, c in ipairs(conns) do
      if c.ping then
        local r = c:response(1000)
        assert.are.equal("pong", r and r.body)
        pongs = pongs + 1
      end
    end
    assert.are.equal(pings, pongs)
    assert.is_true(C.wait(function() return #datas(live) >= n end, 1000))
    for i, d in ipairs(datas(live)) do assert.are.equal(tostring(i), d) end
    assert.are.equal(1, http:connection_count())
    print(("\n  [slowloris] %d one-byte-a-second heads and %d silent connections closed after"
      .. " %.2f..%.2f s (head_timeout %.1f s); %d requests and %d events served meanwhile")
      :format(SLOW, IDLE, first, last, TIMEOUT, pongs, n))
  end)
end)

describe("fault: malformed and hostile requests", function()
  local H = "Host: x\r\n"
  local function topics(n)
    local t = {}
    for i = 1, n do t[i] = "topic=t" .. i end
    return table.concat(t, "&")
  end
  local function post(body)
    return ("POST /publish HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
      :format(H, #body, body)
  end
  -- name, request, status, body (text: the connection is closed; JSON error:
  -- it stays open)
  local cases = {
    { "bad request line", "GET /events\r\n" .. H .. "\r\n", 400, "malformed request line\n" },
    { "binary garbage", "\22\3\1\0\165\r\n\r\n", 400, "malformed request line\n" },
    { "bad version", "GET /events HTTP/one\r\n" .. H .. "\r\n", 400, "malformed HTTP version\n" },
    { "HTTP/1.2", "GET /events HTTP/1.2\r\n" .. H .. "\r\n", 505, "HTTP version not supported\n" },
    { "HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP version not supported\n" },
    { "header without colon", "GET /events HTTP/1.1\r\n" .. H .. "NoColon\r\n\r\n", 400,
      "header line without a colon\n" },
    { "missing Host", "GET /events HTTP/1.1\r\n\r\n", 400, "missing Host header\n" },
    { "oversize head", "GET /events HTTP/1.1\r\n" .. H .. "X-Big: " .. ("a"):rep(9000) .. "\r\n\r\n",
      431, "request head too large\n" },
    { "70 headers", "GET /events HTTP/1.1\r\n" .. H .. ("X-A: b\r\n"):rep(70) .. "\r\n", 431,
      "too many headers\n" },
    { "oversize body", "POST /publish HTTP/1.1\r\n" .. H .. "Content-Length: 2000000\r\n\r\n", 413,
      "request body over 1048576 bytes\n" },
    { "bad Content-Length", "POST /publish HTTP/1.1\r\n" .. H .. "Content-Length: 12abc\r\n\r\n", 400,
      "invalid Content-Length\n" },
    { "negative Content-Length", "POST /publish HTTP/1.1\r\n" .. H .. "Content-Length: -5\r\n\r\n", 400,
      "invalid Content-Length\n" },
    { "two Content-Lengths", "POST /publish HTTP/1.1\r\n" .. H
      .. "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "conflicting Content-Length headers\n" },
    { "chunked body", "POST /publish HTTP/1.1\r\n" .. H
      .. "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411, "Transfer-Encoding not supported\n" },
    { "unknown Expect", "POST /publish HTTP/1.1\r\n" .. H .. "Content-Length: 2\r\nExpect: x\r\n\r\n{}", 417,
      "unsupported Expect header\n" },
    { "NUL in the request line", "GET /ev\0ents HTTP/1.1\r\n" .. H .. "\r\n", 400, "invalid request target\n" },
    { "NUL in a header", "GET /events HTTP/1.1\r\n" .. H .. "X-N: a\0b\r\n\r\n", 400,
      "invalid character in header value\n" },
    { "encoded NUL in the path", "GET /events%00 HTTP/1.1\r\n" .. H .. "\r\n", 400, "NUL byte in path\n" },
    { "NUL in a published event type", post('{"data":"a","event":"x\\u0000y"}'), 400,
      '{"error":"field \'event\' must not contain a NUL byte (byte 2)"}' },
    { "non-UTF-8 path", "GET /events%FF HTTP/1.1\r\n" .. H .. "\r\n", 400, "path is not valid UTF-8\n" },
    { "raw non-UTF-8 path", "GET /events\255 HTTP/1.1\r\n" .. H .. "\r\n", 400, "invalid request target\n" },
    { "non-UTF-8 topic", "GET /events?topic=%C0%AF HTTP/1.1\r\n" .. H .. "\r\n", 400,
      '{"error":"topic name is not valid UTF-8"}' },
    { "bad escape in the query", "GET /events?topic=%zz HTTP/1.1\r\n" .. H .. "\r\n", 400,
      "bad percent-escape in query\n" },
    { "huge query", "GET /events?x=" .. ("a"):rep(100000) .. " HTTP/1.1\r\n" .. H .. "\r\n", 414,
      "request line too long\n" },
    { "1,000 topics", "GET /events?" .. topics(1000) .. " HTTP/1.1\r\n" .. H .. "\r\n", 414,
      "request line too long\n" },
    { "300 topics", "GET /events?" .. topics(300) .. " HTTP/1.1\r\n" .. H .. "\r\n", 400,
      "too many query parameters\n" },
    { "33 topics", "GET /events?" .. topics(33) .. " HTTP/1.1\r\n" .. H .. "\r\n", 400,
      '{"error":"too many topics on one connection (max-topics-per-connection is 32)"}' },
    { "a 200-byte topic", "GET /events?topic=" .. ("t"):rep(200) .. " HTTP/1.1\r\n" .. H .. "\r\n", 400,
      '{"error":"topic name longer than 128 bytes (max-topic-bytes)"}' },
    { "10 KB Last-Event-ID", "GET /events HTTP/1.1\r\n" .. H .. "Last-Event-ID: " .. ("9"):rep(10240)
      .. "\r\n\r\n", 431, "request head too large\n" },
    { "10 KB lastEventId", "GET /events?lastEventId=" .. ("9"):rep(10240) .. " HTTP/1.1\r\n" .. H .. "\r\n",
      414, "request line too long\n" },
  }

  it("answers each with the right 4xx while a stream keeps receiving", function()
    local app = start()
    local hub = app.hub
    local live = reader(app.port, "/events?topic=m")
    assert.is_true(C.wait(function() return hub:connection_count() == 1 end, 2000))
    for i, case in ipairs(cases) do
      local name, raw, status, body = case[1], case[2], case[3], case[4]
      local c = connect(app.port)
      local r, why = c:request(raw, 2000)
      assert.is_truthy(r, name .. ": " .. tostring(why))
      assert.are.same({ name, status, body }, { name, r.status, r.body })
      local text = r.headers["content-type"]:find("text/plain", 1, true) ~= nil
      -- a protocol error closes the connection; an application one does not
      assert.are.same({ name, text }, { name, c:wait_closed(text and 2000 or 50) })
      c:close()
      -- the stream is untouched: the next event arrives intact
      local before = #live.body
      local _, id = hub:broadcast_to("m", { data = "after " .. i })
      local expect = ("id: %s\ndata: after %d\n\n"):format(id, i)
      assert.is_true(C.wait(function() return #live.body >= before + #expect end, 2000), name)
      assert.are.equal(expect, live.body:sub(before + 1))
    end
    assert.are.equal(1, hub:connection_count())
    assert.are.equal(1, app.http:connection_count())
    assert.is_false(live.eof)
    print(("\n  [malformed requests] %d kinds answered with their 4xx; the stream got all %d events")
      :format(#cases, #datas(live)))
  end)
end)

describe("fault: hostile event values", function()
  local function err_of(fn, ...)
    local ok, e = pcall(fn, ...)
    assert.is_false(ok, "no error")
    return (tostring(e):gsub("^[^:]*:%d+: ", ""))
  end

  it("are refused with their documented error and put nothing on the wire", function()
    local app = start()
    local hub, ring = app.hub, app.replayer
    local live = reader(app.port, "/events?topic=v")
    assert.is_true(C.wait(function() return hub:connection_count() == 1 end, 2000))
    local direct = reader(app.port, "/events?topic=w")
    assert.is_true(C.wait(function() return hub:connection_count() == 2 end, 2000))
    local S -- the server side of `direct`
    for _, st in ipairs(hub:streams()) do
      if hub:is_subscribed(st, "w") then S = st end
    end
    local stored = ring:len()
    local checked = 0

    -- after each refusal: nothing arrived, and the next good event is intact
    local function next_good(r, send)
      local before = #r.body
      C.sleep(10) -- anything the refused call queued would be written by now
      assert.are.equal(before, #r.body)
      local expect = send()
      assert.is_true(C.wait(function() return #r.body >= before + #expect end, 2000))
      C.sleep(5)
      assert.are.equal(expect, r.body:sub(before + 1))
      checked = checked + 1
    end
    local function good_broadcast()
      local data = "good " .. checked
      local _, id = hub:broadcast_to("v", { data = data })
      stored = stored + 1
      return ("id: %s\ndata: %s\n\n"):format(id, data)
    end
    local function good_send()
      local id = "s" .. checked
      assert.is_true(S:send({ id = id, event = "ok", data = "fine" }))
      return ("event: ok\nid: %s\ndata: fine\n\n"):format(id)
    end

    local B = "bad argument #2 to 'broadcast_to' (%s)"
    local via_hub = {
      { { event = "a\nb", data = "x" }, "field 'event' must not contain a line break (byte 2)" },
      { { event = "a\rb", data = "x" }, "field 'event' must not contain a line break (byte 2)" },
      { { event = "ab\0", data = "x" }, "field 'event' must not contain a NUL byte (byte 3)" },
      { { event = "\192\175", data = "x" }, "field 'event' is not valid UTF-8 (byte 1)" },
      { { data = "ok\255" }, "field 'data' is not valid UTF-8 (byte 3)" },
      { { data = "\237\160\128" }, "field 'data' is not valid UTF-8 (byte 1)" },
      { { comment = "c\255", data = "x" }, "field 'comment' is not valid UTF-8 (byte 2)" },
      { { id = "1", data = "x" }, "event must not carry an id when the hub has a replayer (ids are the replayer's)" },
      { { data = 5 }, "field 'data': string expected, got number (use sse.Event.json for other values)" },
      { { event = {}, data = "x" }, "field 'event': string expected, got table" },
      { { data = "x", retry = -1 }, "field 'retry' must be an integer from 0 to 9007199254740991" },
      { { data = "x", retry = 1.5 }, "field 'retry' must be an integer from 0 to 9007199254740991" },
      { { data = "x", retry = "5" }, "field 'retry': integer expected, got string" },
      { "data: x\n\n", "event (table or sse.Event) expected, got string" },
    }
    for _, case in ipairs(via_hub) do
      assert.are.equal(B:format(case[2]), err_of(hub.broadcast_to, hub, "v", case[1]))
      next_good(live, good_broadcast)
    end
    assert.are.equal("bad argument #1 to 'broadcast_to' (topic (string) expected, got number)",
      err_of(hub.broadcast_to, hub, 5, { data = "x" }))
    next_good(live, good_broadcast)

    local via_stream = {
      { S.send, { id = "1\n2", data = "x" }, "send", "field 'id' must not contain a line break (byte 2)" },
      { S.send, { id = "1\r", data = "x" }, "send", "field 'id' must not contain a line break (byte 2)" },
      { S.send, { id = "a\0", data = "x" }, "send", "field 'id' must not contain a NUL byte (byte 2)" },
      { S.send, { id = "\255", data = "x" }, "send", "field 'id' is not valid UTF-8 (byte 1)" },
      { S.send, { id = {}, data = "x" }, "send", "field 'id': string or integer expected, got table" },
      { S.send, { event = "e\n\ndata: injected", data = "x" }, "send",
        "field 'event' must not contain a line break (byte 2)" },
      { S.send, 5, "send", "event (table or sse.Event) expected, got number" },
      { S.send_event, "a\nb", "send_event", "field 'event' must not contain a line break (byte 2)", "x" },
      { S.send_data, 5, "send_data", "string expected, got number" },
      { S.send_data, "ok\255", "send_data", "field 'data' is not valid UTF-8 (byte 3)" },
      { S.send_comment, "a\255", "send_comment", "field 'comment' is not valid UTF-8 (byte 2)" },
    }
    for _, case in ipairs(via_stream) do
      local fn, arg1, fname, msg, arg2 = case[1], case[2], case[3], case[4], case[5]
      assert.are.equal(("bad argument #1 to '%s' (%s)"):format(fname, msg), err_of(fn, S, arg1, arg2))
      next_good(direct, good_send)
    end
    local jmsg = err_of(S.send_json, S, function() end)
    assert.are.equal("bad argument #1 to 'send_json' (cannot encode as JSON: ", jmsg:sub(1, 55))
    next_good(direct, good_send)

    local auth = "Host: x\r\nContent-Type: application/json\r\n"
    local function publish(body)
      local c = connect(app.port)
      return c:request(("POST /publish HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"):format(auth, #body, body),
        3000)
    end
    local via_http = {
      { '{"topic":"v","data":"x","event":"a\\nb"}', "field 'event' must not contain a line break (byte 2)" },
      { '{"topic":"v","data":"x","event":"a\\rb"}', "field 'event' must not contain a line break (byte 2)" },
      { '{"topic":"v","data":"x","event":"a\\u0000"}', "field 'event' must not contain a NUL byte (byte 2)" },
      { '{"topic":"v","data":"ok\255"}', "field 'data' is not valid UTF-8 (byte 3)" },
      { '{"topic":"v","data":"x","event":5}', "field 'event' must be a string" },
      { '{"topic":["v"],"data":"x"}', "field 'topic' must be a string" },
      { '{"topic":"v","data":"x","retry":"soon"}', "field 'retry' must be a non-negative integer" },
      { '{"topic":"v","data":"x","retry":1e300}', "field 'retry' must be a non-negative integer" },
      { '{"topic":"v","data":"x","id":"7"}', "ids are assigned by the hub" },
      { '{"topic":"v","data":null}', "field 'data' is required" },
      { '["v","x"]', "body must be a JSON object" },
    }
    for _, case in ipairs(via_http) do
      local r = publish(case[1])
      assert.are.same({ 400, case[2] }, { r.status, cjson.decode(r.body).error })
      next_good(live, good_broadcast)
    end
    local r = publish('{"topic":"v","data":"' .. ("x"):rep(1100 * 1024) .. '"}')
    assert.are.same({ 413, "request body over 1048576 bytes\n" }, { r.status, r.body })
    next_good(live, good_broadcast)

    -- huge data with every kind of line end goes out whole, one data line each
    local lines = {}
    for i = 1, 5000 do lines[i] = ("line %05d"):format(i) end
    local big = table.concat(lines, "\r\n", 1, 2000) .. "\n" .. table.concat(lines, "\r", 2001, 4000)
      .. "\n" .. table.concat(lines, "\n", 4001, 5000)
    next_good(live, function()
      local _, id = hub:broadcast_to("v", { data = big })
      stored = stored + 1
      return "id: " .. id .. "\ndata: " .. table.concat(lines, "\ndata: ") .. "\n\n"
    end)

    assert.are.equal(stored, ring:len())
    assert.is_false(live.eof or direct.eof)
    assert.are.equal(2, hub:connection_count())
    print(("\n  [hostile values] %d refused (hub %d, stream %d, HTTP %d), each with its error and"
      .. " nothing on the wire; %d good events intact after them")
      :format(#via_hub + 1 + #via_stream + 1 + #via_http + 1, #via_hub + 1, #via_stream + 1, #via_http + 1,
        checked))
  end)
end)

describe("fault: regressions", function()
  -- Hub:_forget dropped the frames a broadcast had queued in the same loop
  -- turn: the stream then waited Stream.CLOSE_GRACE_MS (5 s) and closed
  -- without sending them.
  it("a stream closed right after a broadcast sends it and closes at once", function()
    local app = start()
    local live = reader(app.port, "/events?topic=g")
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
    local _, id = app.hub:broadcast_to("g", { event = "bye", data = "last" })
    local t0 = uv.hrtime()
    assert.are.equal(1, app:disconnect_all())
    assert.is_true(C.wait(function() return live.eof end, 1000), "not closed within 1 s")
    assert.is_true((uv.hrtime() - t0) / 1e6 < 200)
    -- (the sse-join event first: the hub sends it on attach)
    assert.are.equal(("event: bye\nid: %s\ndata: last\n\n"):format(id),
      (live.body:gsub("^event: sse%-join\n[^\n]*\n[^\n]*\n\n", "")))
  end)
end)

-- Known problems: these specs fail until the library is fixed (see
-- docs/RELIABILITY.md, "Open problems"). Tagged #known: busted
-- --exclude-tags=known leaves them out.
describe("fault: known problems #known", function()
  -- A replay is queued as one frame; over the outbox limit the close
  -- policy drops the stream at once, the client comes back with the same
  -- Last-Event-ID, and so on forever.
  it("a client that missed more than outbox_limit bytes resumes", function()
    local app = start({ outbox_limit = 64 * 1024, replay_events = 1000 })
    local _, first = app.hub:broadcast_to("r", { data = "first" })
    local sent = {}
    for i = 1, 100 do
      sent[i] = ("%03d "):format(i) .. ("r"):rep(1000)
      app.hub:broadcast_to("r", { data = sent[i] })
    end
    local got = subscriber(app, "?topic=r", { last_event_id = first })
    C.wait(function() return #got.events >= 100 end, 1500)
    assert.are.same({ 100, 1 }, { #got.events, got.opens })
    for i = 1, 100 do assert.are.equal(sent[i], got.events[i].data) end
  end)

  -- The same with one event larger than the outbox limit: every subscriber
  -- of its topic is dropped, and then locked out by the replay above.
  it("an event larger than outbox_limit reaches a reading subscriber", function()
    local app = start({ outbox_limit = 64 * 1024 })
    local got = subscriber(app, "?topic=b")
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
    app.hub:broadcast_to("b", { data = "small" })
    app.hub:broadcast_to("b", { data = ("B"):rep(100 * 1024) })
    app.hub:broadcast_to("b", { data = "after" })
    C.wait(function() return #got.events >= 3 end, 1500)
    assert.are.same({ { "small", "102400 bytes", "after" }, 1 }, { event_datas(got), got.opens })
  end)

  -- A client has no Last-Event-ID until its first event: cut off before
  -- that, it reconnects without one and misses what was published
  -- meanwhile, although it had subscribed before.
  it("a client cut off before its first event resumes from where it joined", function()
    local app = start()
    app.hub:broadcast_to("j", { data = "before" })
    local got = subscriber(app, "?topic=j")
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
    C.sleep(20)
    app.hub:streams()[1]:close("fault")
    app.hub:broadcast_to("j", { data = "1" })
    app.hub:broadcast_to("j", { data = "2" })
    assert.is_true(C.wait(function() return got.opens == 2 and app.hub:connection_count() == 1 end, 2000))
    app.hub:broadcast_to("j", { data = "3" })
    C.wait(function() return #got.events >= 3 end, 1000)
    assert.are.same({ "1", "2", "3" }, event_datas(got))
  end)
end)
