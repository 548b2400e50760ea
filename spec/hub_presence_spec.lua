-- sse.Hub presence hooks (issue 13): on_subscribe(stream, topic) and
-- on_unsubscribe(stream, topic, reason), with writer streams (what each
-- stream was written is kept) and a real slow client over loopback.
local sse = require("sse")

-- A stream writing into a list; `out(stream)` is what it got.
local written = setmetatable({}, { __mode = "k" })
local function new_stream(hub, opts)
  local chunks = {}
  opts = opts or {}
  opts.writer = function(bytes) chunks[#chunks + 1] = bytes return true end
  local st = hub and hub:new_stream(opts) or sse.Stream.new(opts)
  written[st] = chunks
  return st
end
local function out(st) return table.concat(written[st]) end

local function recorder(hub)
  local log = {}
  hub.on_subscribe = function(st, topic) log[#log + 1] = { "join", st, topic } end
  hub.on_unsubscribe = function(st, topic, reason) log[#log + 1] = { "leave", st, topic, reason } end
  return log
end

local function names(log, st)
  local t = {}
  for _, e in ipairs(log) do
    if e[2] == st then t[#t + 1] = e[1] .. " " .. e[3] .. (e[4] and (" " .. e[4]) or "") end
  end
  table.sort(t)
  return t
end

describe("sse.Hub presence hooks", function()
  it("hears every join and leave: attach, subscribe, unsubscribe, close with its reason, unregister", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    local log = recorder(hub)
    local a, b, c = new_stream(hub), new_stream(hub), new_stream(hub)
    hub:attach(a, { topics = { "news", "sport", "news" } })
    assert.same({ "join news", "join sport" }, names(log, a))
    hub:subscribe(a, "news") -- already in: no hook
    hub:subscribe(a, "tech")
    assert.is_true(hub:unsubscribe(a, "sport"))
    assert.is_false(hub:unsubscribe(a, "sport"))
    assert.same({ "join news", "join sport", "join tech", "leave sport unsubscribed" }, names(log, a))
    hub:attach(b, { topics = { "news" } })
    hub:attach(c, { topics = { "x", "y" } })
    a:close()
    b:close("eof")
    hub:unregister(c)
    assert.same({ "join news", "join sport", "join tech", "leave news closed", "leave sport unsubscribed",
                  "leave tech closed" }, names(log, a))
    assert.same({ "join news", "leave news eof" }, names(log, b))
    assert.same({ "join x", "join y", "leave x unregistered", "leave y unregistered" }, names(log, c))
    -- the counts are already the new ones when a hook runs
    local seen
    hub.on_unsubscribe = function(_, topic) seen = hub:topic_count(topic) end
    local d = new_stream(hub)
    hub:attach(d, { topics = { "solo" } })
    d:close()
    assert.equal(0, seen)
    hub:close()
  end)

  it("runs on_subscribe after the replay: what it publishes comes after the replayed events", function()
    local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new(), flush = "immediate" })
    local _, first = hub:broadcast_to("news", { data = "old-1" })
    hub:broadcast_to("news", { data = "old-2" })
    hub.on_subscribe = function(_, topic)
      hub:broadcast_to(topic, { event = "presence", data = "joined " .. topic })
    end
    local st = new_stream(hub)
    hub:attach(st, { topics = { "news" }, last_event_id = first })
    local text = out(st)
    local replayed = text:find("data: old-2\n", 1, true)
    local joined = text:find("data: joined news\n", 1, true)
    assert.truthy(replayed and joined)
    assert.is_true(replayed < joined, text)
    hub:close()
  end)

  it("notify_to: the topic's streams get it at once, not stored, without an id", function()
    local r = sse.MemoryReplayer.new()
    local hub = sse.Hub.new({ replayer = r, flush = "immediate" })
    local a, b = new_stream(hub), new_stream(hub)
    hub:attach(a, { topics = { "$presence" } })
    hub:attach(b, { topics = { "news" } })
    assert.equal(1, hub:notify_to("$presence", { event = "presence", data = "x" }))
    assert.truthy(out(a):find("event: presence\ndata: x\n\n", 1, true))
    assert.falsy(out(b):find("presence", 1, true))
    assert.equal(0, r:len())
    local ok, err = pcall(hub.notify_to, hub, "t", { data = 5 })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad argument #2 to 'notify_to'", 1, true))
    hub:close()
  end)

  it("reports a hook's error and goes on", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    local warned = {}
    local real = io.stderr
    io.stderr = { write = function(_, ...) warned[#warned + 1] = table.concat({ ... }) end } -- luacheck: ignore
    local ok, err = pcall(function()
      hub.on_subscribe = function() error("join hook broke") end
      hub.on_unsubscribe = function() error("leave hook broke") end
      local st = new_stream(hub)
      assert.equal(0, hub:attach(st, { topics = { "a" } }))
      assert.is_true(hub:is_subscribed(st, "a"))
      st:close()
      assert.equal(0, hub:connection_count())
    end)
    io.stderr = real -- luacheck: ignore
    assert(ok, err)
    local all = table.concat(warned)
    assert.truthy(all:find("join hook broke", 1, true))
    assert.truthy(all:find("leave hook broke", 1, true))
    hub:close()
  end)

  it("gives a slow client's leave the reason \"slow\"", function()
    local hub = sse.Hub.new({ outbox_limit = 1024, flush = "immediate" })
    local log = recorder(hub)
    local st = sse.Stream.new({ on_ready = function() end }) -- a pull stream nobody takes from
    hub:attach(st, { topics = { "t" } })
    for i = 1, 40 do hub:broadcast_to("t", { data = ("x"):rep(100) .. i }) end
    hub:flush()
    assert.is_true(st:is_closed())
    assert.same({ "join t", "leave t slow" }, names(log, st))
    hub:close()
  end)
end)
