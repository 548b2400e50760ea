-- hub:top_topics / hub:topic_total, and the demo hub's GET /stats (issue 9):
-- bounded output (counts, and the busiest topics up to ?top=N), protected by
-- the token when one is configured.
local cjson = require("cjson")
local sse = require("sse")
local App = require("sse.app")
local C = require("helpers.http_client")

local function writer_stream()
  return sse.Stream.new({ writer = function() return true end })
end

describe("hub:top_topics", function()
  it("agrees with a model on random topics, ties broken by name", function()
    math.randomseed(7)
    local hub = sse.Hub.new()
    local streams = {}
    for i = 1, 40 do
      streams[i] = writer_stream()
      hub:register(streams[i])
    end
    local model = {}
    for _ = 1, 300 do
      local name = ("t%03d"):format(math.random(1, 999))
      if not model[name] then
        local k = math.random(1, 12) -- many equal counts: ties matter
        model[name] = k
        for i = 1, k do hub:subscribe(streams[i], name) end
      end
    end
    local list = {}
    for name, k in pairs(model) do list[#list + 1] = { topic = name, subscribers = k } end
    table.sort(list, function(a, b)
      if a.subscribers ~= b.subscribers then return a.subscribers > b.subscribers end
      return a.topic < b.topic
    end)
    assert.are.equal(#list, hub:topic_total())
    for _, n in ipairs({ 0, 1, 2, 7, 20, 100, #list, #list + 5 }) do
      local want = {}
      for i = 1, math.min(n, #list) do want[i] = list[i] end
      assert.are.same(want, hub:top_topics(n))
    end
    -- an unsubscribed topic is gone
    local top = list[1]
    for i = 1, top.subscribers do hub:unsubscribe(streams[i], top.topic) end
    assert.are.equal(#list - 1, hub:topic_total())
    assert.are.same(list[2], hub:top_topics(1)[1])
    hub:close()
  end)

  it("refuses a bad count, naming it", function()
    local hub = sse.Hub.new()
    for _, bad in ipairs({ -1, 1.5, 10001, "3" }) do
      local ok, err = pcall(hub.top_topics, hub, bad)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument #1 to 'top_topics' (integer in 0..10000 expected", 1, true),
        tostring(err))
    end
    hub:close()
  end)
end)

describe("GET /stats", function()
  local app
  local function start(opts)
    opts = opts or {}
    opts.port, opts.log = 0, function() end
    app = App.new(opts)
    assert(app:listen())
    return app
  end
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

  -- n topics, topic i with (i % 5) + 1 subscribers, on writer streams
  local function populate(n)
    local hub, streams = app.hub, {}
    for i = 1, 5 do
      streams[i] = writer_stream()
      hub:register(streams[i])
    end
    for i = 1, n do
      for k = 1, (i % 5) + 1 do hub:subscribe(streams[k], "topic-" .. i) end
    end
  end

  it("answers counts and the busiest topics, bounded whatever the number of topics", function()
    start()
    populate(3000)
    local res = get("/stats")
    assert.are.equal(200, res.status)
    local s = cjson.decode(res.body)
    assert.are.equal(5, s.connections)
    assert.are.equal(3000, s.topics)
    assert.are.equal(20, #s.top_topics)
    assert.are.same({ topic = "topic-1004", subscribers = 5 }, s.top_topics[1]) -- ties by name
    for _, e in ipairs(s.top_topics) do assert.are.equal(5, e.subscribers) end
    assert.is_true(#res.body < 3000, #res.body .. " bytes")
    -- ?top=N: 0..100
    s = cjson.decode(get("/stats?top=3").body)
    assert.are.equal(3, #s.top_topics)
    s = cjson.decode(get("/stats?top=0").body)
    assert.are.same({}, s.top_topics)
    assert.are.equal("[]", get("/stats?top=0").body:match('"top_topics":(%b[])'))
    s = cjson.decode(get("/stats?top=100").body)
    assert.are.equal(100, #s.top_topics)
    for _, bad in ipairs({ "101", "-1", "x", "2.5", "1&top=2" }) do
      local r = get("/stats?top=" .. bad)
      assert.are.equal(400, r.status, bad)
      assert.are.equal("query 'top' must be an integer in 0..100", cjson.decode(r.body).error)
    end
  end)

  it("has a fixed key order, as the README shows it", function()
    start()
    local body = get("/stats").body
    local keys = {}
    for k in body:gmatch('"([%w_]+)":') do keys[#keys + 1] = k end
    assert.are.same({ "connections", "topics", "top_topics", "published", "deliveries", "bytes_sent",
      "slow_closed", "event_types", "replay", "first_id", "last_id", "length", "bytes", "max_events", "ttl",
      "uptime" }, keys)
  end)

  it("needs the token when one is configured", function()
    start({ token = "s3cret" })
    local res = get("/stats")
    assert.are.equal(401, res.status)
    assert.are.equal('Bearer realm="sse"', res.headers["www-authenticate"])
    assert.is_nil(res.body:find("connections", 1, true))
    res = get("/stats", { "Authorization: Bearer s3cret\r\n" })
    assert.are.equal(200, res.status)
    assert.are.equal(0, cjson.decode(res.body).connections)
  end)
end)
