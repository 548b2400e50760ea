-- Envelope mode (README "Envelope mode", csrc/core/envelope.c): every event as
-- `event: sse` with {"topic","event","data"} in JSON and its own id. Checked
-- against the reference WHATWG parser: a client of the envelope sees the same
-- events (type, data, id, retry) as a client of the plain stream, for any event
-- sse.encode writes; and end to end through a hub: live, replay, join, gap,
-- keep-alive, stream sends, a backend's resume.
local sse = require("sse")
local core = require("sse.core")
local cjson = require("cjson")
local ref = require("helpers.ref_parser")
local util = require("helpers.util")

-- What a client of the envelope bytes sees, as plain events {type, data, id}
-- plus the topic.
local function read_envelope(bytes)
  local evs, last, retry = ref.parse(bytes)
  local out = {}
  for i, e in ipairs(evs) do
    assert.are.equal("sse", e.type)
    local env = cjson.decode(e.data)
    out[i] = { topic = env.topic ~= cjson.null and env.topic or nil, type = env.event, data = env.data, id = e.id }
  end
  return out, last, retry
end

local function writer_stream(opts)
  local out = {}
  opts = opts or {}
  opts.writer = function(bytes) out[#out + 1] = bytes return true end
  return sse.Stream.new(opts), out
end

local function plain(out)
  local t = {}
  for _, e in ipairs(ref.parse(table.concat(out))) do t[#t + 1] = { type = e.type, data = e.data, id = e.id } end
  return t
end

local function envelope(out)
  return (read_envelope(table.concat(out)))
end

describe("the envelope form of an encoded event", function()
  it("carries what a client of the plain event sees, for random events", function()
    local pieces = { "a", "b c", " ", "\n", "\r", "\r\n", ":", "data: x", "\"", "\\", "\t", "\1", "\31", "\127",
                     "\195\169", "\226\130\172", "\240\159\152\128", "\255", "\226\130", "\237\160\128", "{\"n\":1}" }
    local types = { false, "", "tick", "caf\195\169", "a:b", "sse", "message", "x\255" }
    local ids = { false, "", "ep-1", "a b", "\226\130\172" }
    math.randomseed(15)
    for n = 1, 400 do
      local parts = {}
      for _ = 1, math.random(0, 8) do parts[#parts + 1] = pieces[math.random(#pieces)] end
      local ev = { data = table.concat(parts), check_utf8 = false }
      if n % 7 == 0 then ev.data = nil end
      local t = types[math.random(#types)]
      if t then ev.event = t end
      local id = ids[math.random(#ids)]
      if id then ev.id = id end
      if n % 5 == 0 then ev.retry = n end
      if n % 9 == 0 then ev.comment = "note\nsecond" end
      if next(ev, next(ev)) == nil and ev.data == nil then ev.data = "" end -- only check_utf8: an empty event
      local wire = sse.encode(ev)
      local topic = n % 3 == 0 and "caf\195\169 \255" or (n % 3 == 1 and "news" or nil)
      local env = core.envelope(wire, topic)
      local want, want_last, want_retry = ref.parse(wire)
      local got, got_last, got_retry = read_envelope(env)
      assert.are.equal(#want, #got, ("event count of %q"):format(wire))
      for i, w in ipairs(want) do
        assert.are.same({ topic = topic and ref.utf8_decode(topic) or nil, type = w.type, data = w.data, id = w.id },
                        got[i], ("envelope of %q"):format(wire))
      end
      assert.are.equal(want_last, got_last, "last id")
      assert.are.equal(want_retry, got_retry, "retry")
      if #want == 0 then assert.are.equal(wire, env, "no data: the bytes as they are") end
    end
  end)

  it("keeps the keys in order and the data a string, JSON or not", function()
    assert.are.equal('event: sse\nid: 1\ndata: {"topic":"t","event":"score","data":"{\\"home\\":2}"}\n\n',
                     core.envelope(sse.encode({ id = "1", event = "score", data = '{"home":2}' }), "t"))
    assert.are.equal(": keep-alive\n\n", core.envelope(": keep-alive\n\n"))
  end)
end)

describe("a hub in envelope mode", function()
  it("sends one stream every topic and type, enveloped, and a plain stream the same events", function()
    local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ epoch = "ep" }), flush = "immediate" })
    local env_st, env_out = writer_stream()
    local plain_st, plain_out = writer_stream()
    hub:attach(env_st, { topics = { "a", "b" }, envelope = true })
    hub:attach(plain_st, { topics = { "a" } })
    hub:broadcast_to("a", { event = "headline", data = "one\ntwo" })
    hub:broadcast_to("b", { event = "brand-new", data = "" })
    hub:broadcast({ data = "to all" })
    assert.is_true(env_st:send({ event = "direct", data = "x" }))
    assert.are.same({
      { topic = nil, type = "sse-join", data = '{"last_event_id":"ep-0"}', id = "ep-0" },
      { topic = "a", type = "headline", data = "one\ntwo", id = "ep-1" },
      { topic = "b", type = "brand-new", data = "", id = "ep-2" },
      { topic = nil, type = "message", data = "to all", id = "ep-3" },
      { topic = nil, type = "direct", data = "x", id = "ep-3" },
    }, envelope(env_out))
    assert.are.same({
      { type = "sse-join", data = '{"last_event_id":"ep-0"}', id = "ep-0" },
      { type = "headline", data = "one\ntwo", id = "ep-1" },
      { type = "message", data = "to all", id = "ep-3" },
    }, plain(plain_out))
    hub:close()
  end)

  it("replays with the topics, and the gap is enveloped", function()
    local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new({ epoch = "ep", max_events = 3 }),
                              flush = "immediate", envelope = true })
    for i = 1, 5 do hub:broadcast_to(i % 2 == 0 and "even" or "odd", { event = "n", data = tostring(i) }) end
    local st, out = writer_stream()
    hub:attach(st, { topics = { "odd", "even" }, last_event_id = "ep-3" })
    assert.are.same({ { topic = "even", type = "n", data = "4", id = "ep-4" },
                      { topic = "odd", type = "n", data = "5", id = "ep-5" } }, envelope(out))
    local old, old_out = writer_stream()
    hub:attach(old, { topics = { "odd" }, last_event_id = "ep-1" })
    local got = envelope(old_out)
    assert.are.equal("sse-gap", got[1].type)
    assert.are.same({ last_event_id = "ep-1", oldest = "ep-3", latest = "ep-5", dropped = cjson.null },
                    cjson.decode(got[1].data))
    assert.are.same({ "3", "5" }, { got[2].data, got[3].data })
    assert.are.same({ "odd", "odd" }, { got[2].topic, got[3].topic })
    -- attach may say otherwise than the hub
    local p, p_out = writer_stream()
    hub:attach(p, { topics = { "odd" }, last_event_id = "ep-4", envelope = false })
    assert.are.same({ { type = "n", data = "5", id = "ep-5" } }, plain(p_out))
    hub:close()
  end)

  it("envelopes the frames of a backend's resume with the topics it names", function()
    local b = { seq = 0, pending = nil }
    function b:bind(h) self.hub = h end
    function b:last_id() return "f-" .. self.seq end
    function b.publish() return true end
    function b:replay_async(h, stream) self.pending = { h, stream } end
    local hub = sse.Hub.new({ replayer = b, flush = "immediate" })
    local st, out = writer_stream()
    local count, state = hub:attach(st, { topics = { "x", "y" }, last_event_id = "f-0", envelope = true })
    assert.are.same({ 0, "pending" }, { count, state })
    hub:deliver(sse.encode({ id = "f-3", event = "live", data = "L" }), "y", 3)
    local frames = { sse.encode({ id = "f-1", data = "R1" }), sse.encode({ id = "f-2", event = "e", data = "R2" }) }
    assert.are.equal(2, hub:resume(st, frames, 2, nil, { "x", false }))
    assert.are.same({ { topic = "x", type = "message", data = "R1", id = "f-1" },
                      { topic = nil, type = "e", data = "R2", id = "f-2" },
                      { topic = "y", type = "live", data = "L", id = "f-3" } }, envelope(out))
    hub:close()
  end)

  it("a Stream made in envelope mode writes its head as it is", function()
    local st, out = writer_stream({ head = "HTTP/1.1 200 OK\r\ndata: not an event\r\n\r\n", envelope = true })
    st:send({ data = "d" })
    assert.are.equal("HTTP/1.1 200 OK\r\ndata: not an event\r\n\r\n"
                     .. 'event: sse\ndata: {"topic":null,"event":"message","data":"d"}\n\n', table.concat(out))
    st:send_comment("kept")
    assert.are.equal(": kept\n\n", out[#out])
  end)

  it("refuses an envelope option that is not a boolean", function()
    util.raises_arg(1, "field 'envelope': boolean expected, got string", sse.Hub.new, { envelope = "yes" })
    util.raises_arg(1, "field 'envelope': boolean expected, got number",
                    sse.Stream.new, { writer = function() return true end, envelope = 1 })
    local hub = sse.Hub.new({ flush = "immediate" })
    local st = writer_stream()
    util.raises_arg(2, "field 'envelope': boolean expected, got string", hub.attach, hub, st, { envelope = "1" })
    assert.are.equal(0, hub:connection_count(), "nothing registered")
    util.raises_arg(5, "topics[1]: string or false expected, got number",
                    hub.resume, hub, st, { "data: x\n\n" }, 0, nil, { 7 })
    hub:close()
  end)
end)
