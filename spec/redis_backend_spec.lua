-- sse.redis.backend against a real redis-server (helpers.redis_server), at
-- the backend's own interface: publish, the follower's feed (on_event),
-- replay_async answered through a recording hub, status. The end-to-end
-- specs with real hubs and HTTP clients are in spec/redis_spec.lua.
local uv = require("luv")
local cjson = require("cjson")
local async = require("helpers.async")
local R = require("helpers.redis_server")
local P = require("helpers.tcp_proxy")
local util = require("helpers.util")
local redis = require("sse.redis")

local srv
local n_prefix = 0

-- A backend on a fresh key prefix; opts.port: dial this port (a proxy).
local function backend(opts)
  opts = opts or {}
  local o = { url = srv.url, heartbeat = 0.1, timeout = 0.5, backoff_min = 0.01, backoff_max = 0.1,
              log = function() end }
  for k, v in pairs(opts) do o[k] = v end
  if o.port then
    o.url = "redis://127.0.0.1:" .. o.port
    o.port = nil
  end
  return redis.backend(o)
end

local function fresh_prefix()
  n_prefix = n_prefix + 1
  return ("spec%d:"):format(n_prefix)
end

-- A backend whose followed events are recorded in b.got ({bytes, topic, seq}).
local function follower(opts)
  local got = {}
  opts = opts or {}
  opts.on_event = function(bytes, topic, seq) got[#got + 1] = { bytes = bytes, topic = topic, seq = seq } end
  local b = backend(opts)
  b.got = got
  b.gaps = {}
  b.on_gap = function(info) b.gaps[#b.gaps + 1] = info end
  return b
end

local function healthy(b)
  return function() return b:status().healthy end
end

-- publish and wait for Redis's answer: id, err, duplicate
local function publish(b, ev, topic, opts)
  local res
  local ok, err = b:publish(ev, topic, function(...) res = { ... } end, opts)
  if not ok then return nil, err end
  async.wait(function() return res ~= nil end, 3, "the publish answer")
  return res[1], res[2], res[3]
end

-- The data lines of recorded events, in order.
local function datas(got)
  local t = {}
  for _, g in ipairs(got) do t[#t + 1] = g.bytes:match("\ndata: ([^\n]*)") end
  return t
end

-- A hub that records what replay_async answers.
local function recorder()
  local r = { answers = {} }
  function r.resume(_, stream, frames, upto, gap, topics)
    r.answers[#r.answers + 1] = { stream = stream, frames = frames, upto = upto, gap = gap, topics = topics }
  end
  return r
end

local function replay(b, last_id, topics)
  local hub = recorder()
  b:replay_async(hub, "S", last_id, topics)
  async.wait(function() return #hub.answers > 0 end, 3, "the replay answer")
  async.sleep(0.02)
  assert.are.equal(1, #hub.answers, "resume called exactly once")
  return hub.answers[1]
end

local function frame_datas(frames)
  local t = {}
  for _, f in ipairs(frames) do t[#t + 1] = f:match("\ndata: ([^\n]*)") end
  return t
end

local function close_all(...)
  for _, b in ipairs({ ... }) do b:close() end
end

describe("sse.redis.backend", function()
  setup(function() srv = R.start() end)
  teardown(function() if srv then srv:stop() end end)

  it("assigns one id sequence across instances, and every instance follows it in order", function()
    async.run(15, function()
      local prefix = fresh_prefix()
      local a, b = follower({ prefix = prefix }), follower({ prefix = prefix })
      async.wait(function() return healthy(a)() and healthy(b)() end, 3, "both healthy")
      local ids = {}
      for i = 1, 10 do
        local pub = i % 2 == 0 and a or b
        local id = assert(publish(pub, { data = "e" .. i, event = "tick" }, i % 3 == 0 and "news" or nil))
        ids[i] = id
      end
      local epoch = ids[1]:match("^([%w_]+)%-1$")
      assert.truthy(epoch, ids[1])
      for i = 1, 10 do
        assert.are.equal(epoch .. "-" .. ("0123456789a"):sub(i + 1, i + 1), ids[i])
      end
      async.wait(function() return #a.got == 10 and #b.got == 10 end, 3, "10 events on both")
      local want = {}
      for i = 1, 10 do want[i] = "e" .. i end
      assert.are.same(want, datas(a.got))
      assert.are.same(want, datas(b.got))
      -- the same bytes, the id inside, the encoder's field order
      assert.are.equal("event: tick\nid: " .. ids[3] .. "\ndata: e3\n\n", a.got[3].bytes)
      assert.are.equal("news", a.got[3].topic)
      assert.is_nil(a.got[1].topic)
      assert.are.equal(3, a.got[3].seq)
      assert.are.same(a.got, b.got)
      assert.are.equal(ids[10], a:last_id())
      assert.are.equal(0, a:status().lag)
      close_all(a, b)
    end)
  end)

  it("stores a retried publish once (idempotency key)", function()
    async.run(10, function()
      local a = follower({ prefix = fresh_prefix() })
      async.wait(healthy(a), 3, "healthy")
      local id1, err1, dup1 = publish(a, { data = "once" }, nil, { key = "order-17" })
      local id2, err2, dup2 = publish(a, { data = "once" }, nil, { key = "order-17" })
      local id3 = publish(a, { data = "other" }, nil, { key = "order-18" })
      assert.is_nil(err1)
      assert.is_nil(err2)
      assert.are.equal(id1, id2)
      assert.are.same({ false, true }, { dup1, dup2 })
      assert.are_not.equal(id1, id3)
      async.wait(function() return #a.got == 2 end, 3, "two events")
      async.sleep(0.1)
      assert.are.same({ "once", "other" }, datas(a.got))
      close_all(a)
    end)
  end)

  it("replays after an id, filtered by topic, and signals gaps: other epoch, malformed, future", function()
    async.run(15, function()
      local a = follower({ prefix = fresh_prefix() })
      async.wait(healthy(a), 3, "healthy")
      local ids = {}
      for i = 1, 6 do ids[i] = assert(publish(a, { data = "e" .. i }, ({ "x", "y", false })[i % 3 + 1] or nil)) end
      async.wait(function() return #a.got == 6 end, 3, "six events")
      -- topics: e1 y, e2 untopiced, e3 x, e4 y, e5 untopiced, e6 x
      local r = replay(a, ids[2], { "x" })
      assert.are.same({ "e3", "e5", "e6" }, frame_datas(r.frames))
      assert.are.equal(6, r.upto)
      assert.is_nil(r.gap)
      r = replay(a, ids[6], { "x", "y" })
      assert.are.same({}, r.frames)
      assert.is_nil(r.gap)
      local epoch = ids[1]:match("^(.-)%-")
      for _, bad in ipairs({ "otherepoch-3", "garbage", "", epoch .. "-zz", epoch .. "-01" }) do
        r = replay(a, bad, {})
        assert.are.same({ "e2", "e5" }, frame_datas(r.frames), bad)
        assert.are.same({ oldest = ids[1], latest = ids[6] }, r.gap, bad)
      end
      close_all(a)
    end)
  end)

  it("keeps a window of max_len ids and ttl seconds; older ids are a gap", function()
    async.run(15, function()
      local a = follower({ prefix = fresh_prefix(), max_len = 3 })
      async.wait(healthy(a), 3, "healthy")
      local ids = {}
      for i = 1, 6 do ids[i] = assert(publish(a, { data = "e" .. i })) end
      local r = replay(a, ids[3], {})
      assert.are.same({ "e4", "e5", "e6" }, frame_datas(r.frames))
      assert.is_nil(r.gap)
      r = replay(a, ids[2], {})
      assert.are.same({ "e4", "e5", "e6" }, frame_datas(r.frames))
      assert.are.same({ oldest = ids[4], latest = ids[6] }, r.gap)
      close_all(a)

      -- ttl 1 s: "fresh" must still be in the window when replayed, also on
      -- a loaded machine (0.3 s was not, once)
      local t = follower({ prefix = fresh_prefix(), ttl = 1 })
      async.wait(healthy(t), 3, "healthy")
      local old = assert(publish(t, { data = "old" }))
      local first = assert(publish(t, { data = "first" }))
      async.sleep(1.3)
      local fresh = assert(publish(t, { data = "fresh" }))
      r = replay(t, old, {}) -- "first" expired: a gap
      assert.are.same({ "fresh" }, frame_datas(r.frames))
      assert.are.same({ oldest = fresh, latest = fresh }, r.gap)
      r = replay(t, first, {}) -- nothing after it expired
      assert.are.same({ "fresh" }, frame_datas(r.frames))
      assert.is_nil(r.gap)
      close_all(t)
    end)
  end)

  it("pages a long replay, and a long catch-up, through the whole window", function()
    async.run(20, function()
      local prefix = fresh_prefix()
      local a = follower({ prefix = prefix, page = 7 })
      async.wait(healthy(a), 3, "healthy")
      local first
      for i = 1, 50 do
        local id = assert(publish(a, { data = "e" .. i }))
        first = first or id
      end
      async.wait(function() return #a.got == 50 end, 3, "50 events")
      local r = replay(a, first, {})
      assert.are.equal(49, #r.frames)
      assert.are.equal("e50", frame_datas(r.frames)[49])
      assert.are.equal(50, r.upto)
      close_all(a)
    end)
  end)

  it("fails a publish at once while Redis is unreachable, and within the timeout while it hangs", function()
    async.run(20, function()
      local a = follower({ prefix = fresh_prefix(), port = R.free_port() }) -- nothing listens there
      async.sleep(0.2)
      local ok, err = a:publish({ data = "x" }, nil, function() error("must not be called") end)
      assert.are.same({ nil, "redis: not connected" }, { ok, err })
      assert.is_false(a:status().healthy)
      assert.is_false(a:status().connected)
      assert.matches("cannot connect", a:status().error)
      close_all(a)

      local b = follower({ prefix = fresh_prefix(), timeout = 0.5 })
      async.wait(healthy(b), 3, "healthy")
      srv:pause()
      uv.update_time()
      local t0 = uv.now()
      local id, perr = publish(b, { data = "lost?" })
      local took = (uv.now() - t0) / 1000
      srv:resume()
      assert.is_nil(id)
      assert.are.equal("redis: timeout", perr)
      assert.is_true(took >= 0.4 and took < 1.2, "failed after " .. took .. " s")
      async.wait(healthy(b), 5, "healthy again")
      assert.truthy(publish(b, { data = "after" }))
      close_all(b)
    end)
  end)

  it("resumes from the last id it applied after losing Redis, with nothing lost or doubled", function()
    async.run(20, function()
      local prefix = fresh_prefix()
      local proxy = P.new(srv.port)
      local a = follower({ prefix = prefix, port = proxy.port })
      local b = follower({ prefix = prefix })
      async.wait(function() return healthy(a)() and healthy(b)() end, 3, "both healthy")
      for i = 1, 5 do assert(publish(b, { data = "e" .. i })) end
      async.wait(function() return #a.got == 5 end, 3, "five on a")
      proxy:cut() -- a loses both connections; b keeps publishing
      for i = 6, 20 do assert(publish(b, { data = "e" .. i })) end
      local id, err = a:publish({ data = "during" }, nil, function() end)
      if not id then assert.are.equal("redis: not connected", err) end
      async.wait(function() return #a.got >= 20 end, 5, "a caught up")
      async.sleep(0.1)
      local want = {}
      for i = 1, 20 do want[i] = "e" .. i end
      -- a's own publish may have gone through before the cut was seen
      local got = datas(a.got)
      if #got == 21 then table.remove(got, util.index_of and util.index_of(got, "during") or 21) end
      assert.are.same(want, got)
      assert.are.same({}, a.gaps)
      assert.truthy(a:status().reconnects >= 1)
      async.wait(healthy(a), 3, "a healthy")
      close_all(a, b)
      proxy:close()
    end)
  end)

  it("keeps each event's topic in a catch-up after losing Redis and in a replay", function()
    async.run(20, function()
      local prefix = fresh_prefix()
      local proxy = P.new(srv.port)
      local a = follower({ prefix = prefix, port = proxy.port })
      local b = follower({ prefix = prefix })
      async.wait(function() return healthy(a)() and healthy(b)() end, 3, "both healthy")
      local first = assert(publish(b, { data = "live" }, "t1"))
      async.wait(function() return #a.got == 1 end, 3, "the live event on a")
      proxy:cut() -- what b publishes now reaches a through its catch-up
      local want = {}
      for i = 1, 6 do
        local topic = ({ "t1", "t2", false })[i % 3 + 1]
        assert(publish(b, { data = "c" .. i }, topic or nil))
        want[i] = topic or nil
      end
      async.wait(function() return #a.got >= 7 end, 5, "a caught up")
      local got = {}
      for i = 2, 7 do got[i - 1] = a.got[i].topic end
      assert.are.same(want, got)
      -- a hub gives envelope streams the topic of each replayed frame
      local r = replay(b, first, { "t1", "t2" })
      assert.are.equal(6, #r.frames)
      assert.are.same({ "t2", false, "t1", "t2", false, "t1" }, r.topics)
      local f = replay(b, first, { "t2" })
      assert.are.same({ "c1", "c2", "c4", "c5" }, frame_datas(f.frames))
      assert.are.same({ "t2", false, "t2", false }, f.topics)
      close_all(a, b)
      proxy:close()
    end)
  end)

  it("notices a subscriber connection that went silent within 2 heartbeats, and catches up", function()
    async.run(20, function()
      local prefix = fresh_prefix()
      local proxy = P.new(srv.port)
      local a = follower({ prefix = prefix, port = proxy.port, heartbeat = 0.2 })
      local b = follower({ prefix = prefix })
      async.wait(function() return healthy(a)() and healthy(b)() end, 3, "both healthy")
      assert(publish(b, { data = "before" }))
      async.wait(function() return #a.got == 1 end, 3, "one event")
      proxy:freeze() -- a's connections stop carrying anything, without an error
      uv.update_time()
      local t0 = uv.now()
      assert(publish(b, { data = "while frozen" }))
      async.wait(function() return a:status().stale end, 2, "a marked stale")
      local noticed = (uv.now() - t0) / 1000
      assert.is_true(noticed <= 2 * 0.2 + 0.5 + 0.1, "noticed after " .. noticed .. " s")
      assert.is_false(a:status().healthy)
      async.wait(function() return #a.got == 2 end, 3, "caught up")
      assert.are.same({ "before", "while frozen" }, datas(a.got))
      async.wait(healthy(a), 3, "healthy again")
      assert.truthy(a:status().stale_events >= 1)
      close_all(a, b)
      proxy:close()
    end)
  end)

  it("reconnects after CLIENT KILL TYPE pubsub and delivers what was published meanwhile", function()
    async.run(20, function()
      local prefix = fresh_prefix()
      local a = follower({ prefix = prefix })
      local b = follower({ prefix = prefix })
      async.wait(function() return healthy(a)() and healthy(b)() end, 3, "both healthy")
      srv:cli("CLIENT", "KILL", "TYPE", "pubsub")
      for i = 1, 5 do assert(publish(b, { data = "e" .. i })) end
      async.wait(function() return #a.got == 5 and #b.got == 5 end, 5, "both caught up")
      assert.are.same({ "e1", "e2", "e3", "e4", "e5" }, datas(a.got))
      assert.are.same({ "e1", "e2", "e3", "e4", "e5" }, datas(b.got))
      close_all(a, b)
    end)
  end)

  it("starts a new epoch when Redis is flushed: followers tell their subscribers, old ids are a gap", function()
    async.run(20, function()
      local prefix = fresh_prefix()
      local a = follower({ prefix = prefix })
      async.wait(healthy(a), 3, "healthy")
      local old = assert(publish(a, { data = "old" }))
      async.wait(function() return #a.got == 1 end, 3, "one event")
      srv:cli("FLUSHALL")
      local new = assert(publish(a, { data = "new" }))
      local e_old, e_new = old:match("^(.-)%-"), new:match("^(.-)%-")
      assert.are_not.equal(e_old, e_new)
      assert.are.equal(e_new .. "-1", new)
      async.wait(function() return #a.got == 2 end, 3, "the new event")
      assert.are.same({ { last_event_id = old, latest = new } }, a.gaps)
      local r = replay(a, old, {})
      assert.are.same({ "new" }, frame_datas(r.frames))
      assert.are.same({ oldest = new, latest = new }, r.gap)
      close_all(a)
    end)
  end)

  it("starts a new epoch when Redis lost acknowledged writes (a stale replacement)", function()
    async.run(15, function()
      local prefix = fresh_prefix()
      local a = follower({ prefix = prefix })
      async.wait(healthy(a), 3, "healthy")
      local id
      for i = 1, 5 do id = assert(publish(a, { data = "e" .. i })) end
      async.wait(function() return #a.got == 5 end, 3, "five")
      -- a replica promoted before it got the last three writes
      srv:cli("HSET", prefix .. "meta", "seq", "2")
      local next_id = assert(publish(a, { data = "after" }))
      assert.are_not.equal(id:match("^(.-)%-"), next_id:match("^(.-)%-"))
      assert.matches("%-1$", next_id)
      close_all(a)
    end)
  end)

  it("a replay asked before the follower started waits for it, and is bounded by where it starts", function()
    async.run(10, function()
      local prefix = fresh_prefix()
      local b = follower({ prefix = prefix })
      async.wait(healthy(b), 3, "healthy")
      local ids = {}
      for i = 1, 5 do ids[i] = assert(publish(b, { data = "e" .. i })) end
      local a = follower({ prefix = prefix }) -- not connected yet
      local hub = recorder()
      a:replay_async(hub, "S", ids[2], {})
      assert.are.same({}, hub.answers) -- never from inside the call
      async.wait(function() return #hub.answers == 1 end, 3, "the answer")
      local r = hub.answers[1]
      assert.are.same({ "e3", "e4", "e5" }, frame_datas(r.frames))
      assert.are.equal(5, r.upto)
      assert.are.equal(ids[5], a:last_id()) -- where the follower started
      -- events after it come live, once
      assert(publish(b, { data = "e6" }))
      async.wait(function() return #a.got == 1 end, 3, "e6 live")
      assert.are.same({ "e6" }, datas(a.got))
      close_all(a, b)
    end)
  end)

  it("answers the replays still waiting when it is closed", function()
    async.run(10, function()
      local a = follower({ prefix = fresh_prefix(), port = R.free_port() }) -- never connects
      local hub = recorder()
      a:replay_async(hub, "S", "ep-1", {})
      async.sleep(0.1)
      assert.are.same({}, hub.answers)
      a:close()
      async.wait(function() return #hub.answers == 1 end, 2, "the answer")
      async.sleep(0.05)
      assert.are.same({ "S", nil, "redis: not connected" },
        { hub.answers[1].stream, hub.answers[1].frames, hub.answers[1].upto })
    end)
  end)

  it("does not take a late heartbeat (a busy loop) for a silent channel; an on-time one is judged", function()
    async.run(10, function()
      local a = follower({ prefix = fresh_prefix(), heartbeat = 60 }) -- beats driven by hand
      async.wait(healthy(a), 3, "healthy")
      local f, now = a.follower, uv.now()
      -- a PING is out and this beat comes 10 heartbeats after the last one:
      -- the loop was busy, the answer may be unread: no verdict
      f.ping_out, f.last_beat = true, now - 600000
      f:beat()
      assert.is_false(a:status().stale)
      -- on time, with the PING still unanswered: stale
      f.ping_out, f.last_beat = true, uv.now()
      f:beat()
      assert.are.equal("no answer to PING on the subscriber connection", a:status().stale)
      assert.is_false(a:status().healthy)
      async.wait(healthy(a), 3, "reconnected and caught up")
      close_all(a)
    end)
  end)

  it("reports its state", function()
    async.run(10, function()
      local a = follower({ prefix = fresh_prefix() })
      async.wait(healthy(a), 3, "healthy")
      local id = assert(publish(a, { data = "x" }))
      async.wait(function() return a:last_id() == id end, 3, "applied")
      local st = a:status()
      assert.are.same({ "redis", true, true, false, true, id, 0, 1 },
        { st.backend, st.connected, st.following, st.stale, st.healthy, st.last_id, st.lag, st.published })
      assert.are.equal(("redis://127.0.0.1:%d/0"):format(srv.port), st.url)
      assert.truthy(cjson.encode(st))
      close_all(a)
      assert.are.same({ nil, "closed" }, { a:publish({ data = "x" }) })
    end)
  end)

  it("raises on misuse, naming the argument", function()
    util.raises_arg(1, "field 'url': redis://host[:port][/db] expected", redis.backend, { url = "http://x" })
    util.raises_arg(1, "unknown option 'max_events'", redis.backend, { max_events = 3 })
    util.raises_arg(1, "field 'max_len': number >= 1 expected", redis.backend, { max_len = 0 })
    util.raises_arg(1, "field 'ttl': number >= 0 expected", redis.backend, { ttl = -1 })
    async.run(5, function()
      local a = backend({ prefix = fresh_prefix() })
      util.raises_arg(1, "event must not carry an id (ids are the backend's)", a.publish, a, { id = "1", data = "x" })
      util.raises_arg(1, "field 'event' must not contain a line break (byte 2)", a.publish, a,
        { event = "a\nb", data = "x" })
      util.raises_arg(2, "string expected, got number", a.publish, a, { data = "x" }, 5)
      util.raises_arg(3, "function expected, got string", a.publish, a, { data = "x" }, nil, "cb")
      util.raises_arg(4, "field 'key': string of 1 to 200 bytes expected", a.publish, a, { data = "x" }, nil, nil,
        { key = "" })
      a:close()
    end)
  end)

  it("authenticates and selects the URL's db before any command; a wrong password is a status, not a raise", function()
    local locked = R.start({ "--requirepass", "s3cret" })
    local ok, err = pcall(async.run, 10, function()
      local prefix = fresh_prefix()
      local url = "redis://:s3cret@127.0.0.1:" .. locked.port .. "/2"
      local a = follower({ url = url, prefix = prefix })
      async.wait(healthy(a), 3, "healthy behind AUTH")
      local id = assert(publish(a, { data = "in db 2" }))
      async.wait(function() return #a.got == 1 end, 3, "followed")
      assert.are.equal("in db 2", datas(a.got)[1])
      -- the event is in db 2, and db 0 has nothing of it
      local log = prefix .. "log"
      assert.are.equal("1", locked:cli("-a", "s3cret", "--no-auth-warning", "-n", "2", "XLEN", log):match("%d+"))
      assert.are.equal("0", locked:cli("-a", "s3cret", "--no-auth-warning", "-n", "0", "EXISTS", log):match("%d+"))
      local bad = backend({ url = "redis://:wrong@127.0.0.1:" .. locked.port .. "/2", prefix = prefix })
      async.wait(function() return bad:status().error ~= nil end, 3, "the refusal")
      local st = bad:status()
      assert.is_false(st.connected)
      assert.is_false(st.healthy)
      assert.truthy(tostring(st.error):find("WRONGPASS", 1, true) or tostring(st.error):find("invalid", 1, true),
        tostring(st.error))
      assert.is_nil(bad:publish({ data = "x" }))
      close_all(a, bad)
      assert.truthy(id)
    end)
    locked:stop()
    assert(ok, err)
  end)

  it("parses redis:// URLs", function()
    assert.are.same({ host = "h", port = 6379, db = 0 }, redis.parse_url("redis://h"))
    assert.are.same({ host = "10.0.0.1", port = 7000, db = 3, password = "pw" },
      redis.parse_url("redis://pw@10.0.0.1:7000/3"))
    assert.are.same({ host = "::1", port = 6380, db = 0, username = "u", password = "p:q" },
      redis.parse_url("redis://u:p:q@[::1]:6380"))
    assert.are.same({ nil, "no host in the URL" }, { redis.parse_url("redis://") })
    assert.are.same({ nil, "bad port" }, { redis.parse_url("redis://h:70000") })
  end)
end)
