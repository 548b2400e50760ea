-- sse.catalogue (issue 14): declared event types and the shape of their JSON
-- data; the error table (every refusal names the field's path); the
-- JSON Schema export, checked by an independent validator (python3-jsonschema).
local cjson = require("cjson")
local catalogue = require("sse.catalogue")
local schema = require("sse.catalogue.schema")
local util = require("helpers.util")

local function shop()
  return catalogue.new({
    title = "shop",
    description = "the shop's events",
    events = {
      order = { description = "an order changed", data = { fields = {
        id = { type = "string", min_length = 1, max_length = 8 },
        total = { type = "number", min = 0, max = 1e6 },
        status = { enum = { "new", "paid", "shipped" } },
        items = { type = "array", min_items = 1, max_items = 3, items = { fields = {
          sku = "string",
          qty = { type = "integer", min = 1 },
        } } },
        note = "string?",
        coupon = { type = "string", optional = true, nullable = true },
        meta = { type = "object", optional = true },  -- any object
        tags = { type = "array", optional = true, items = "string" },
      } } },
      tick = { data = "integer" },
      message = "string",
      flag = "boolean",
      anything = "any",
      even = { data = { type = "integer", check = function(v)
        if v % 2 ~= 0 then return nil, "even number expected" end
        return true
      end } },
      ["odd name"] = { data = { fields = { ["a b"] = "integer" } } },
    },
  })
end

local ORDER = { id = "o1", total = 12.5, status = "new", items = { { sku = "a", qty = 1 } } }

local function with(patch)
  local v = {}
  for k, x in pairs(ORDER) do v[k] = x end
  for k, x in pairs(patch) do v[k] = x end
  return v
end

-- The error table: what is refused and the message, path first.
local REFUSALS = {
  { "undeclared type", "ordr", ORDER, "event 'ordr' is not in the catalogue" },
  { "the hub's own gap event", "sse-gap", {}, "event 'sse-gap' is written by the hub itself" },
  { "the hub's own join event", "sse-join", {}, "event 'sse-join' is written by the hub itself" },
  { "data missing", "tick", nil, "event 'tick': data: required field missing" },
  { "wrong top-level type", "tick", "5", "event 'tick': data: integer expected, got \"5\"" },
  { "fraction for an integer", "tick", 1.5, "event 'tick': data: integer expected, got 1.5" },
  { "NaN", "tick", 0 / 0, "event 'tick': data: finite number expected, got " .. tostring(0 / 0) },
  { "infinity", "anything", math.huge, "event 'anything': data: JSON value expected, got " .. tostring(math.huge) },
  { "a function for any", "anything", print, "event 'anything': data: JSON value expected, got function" },
  { "a mixed table for any", "anything", { 1, x = 2 }, "event 'anything': data: JSON value expected, got table" },
  { "null without nullable", "tick", cjson.null, "event 'tick': data: null not allowed" },
  { "boolean for a string", "message", true, "event 'message': data: string expected, got true" },
  { "array for an object", "order", { 1, 2 }, "event 'order': data: object expected, got array" },
  { "required field missing", "order", { id = "o1", total = 1, items = { { sku = "a", qty = 1 } } },
    "event 'order': data.status: required field missing" },
  { "unknown field", "order", with({ colour = "red" }), "event 'order': data.colour: unknown field" },
  { "first unknown field by name", "order", with({ zz = 1, colour = "red" }),
    "event 'order': data.colour: unknown field" },
  { "enum", "order", with({ status = "lost" }),
    "event 'order': data.status: one of \"new\", \"paid\", \"shipped\" expected, got \"lost\"" },
  { "below min", "order", with({ total = -1 }), "event 'order': data.total: at least 0 expected, got -1" },
  { "above max", "order", with({ total = 2e6 }), "event 'order': data.total: at most 1000000 expected, got 2000000" },
  { "string too short", "order", with({ id = "" }), "event 'order': data.id: at least 1 character expected, got 0" },
  { "string too long (code points)", "order", with({ id = "ééééééééé" }),
    "event 'order': data.id: at most 8 characters expected, got 9" },
  { "too few items", "order", with({ items = {} }), "event 'order': data.items: at least 1 item expected, got 0" },
  { "too many items", "order", with({ items = { { sku = "a", qty = 1 }, { sku = "a", qty = 1 },
      { sku = "a", qty = 1 }, { sku = "a", qty = 1 } } }),
    "event 'order': data.items: at most 3 items expected, got 4" },
  { "object for an array", "order", with({ items = { sku = "a" } }),
    "event 'order': data.items: array expected, got object" },
  { "nested field", "order", with({ items = { { sku = "a", qty = 1 }, { sku = "b", qty = 0 } } }),
    "event 'order': data.items[2].qty: at least 1 expected, got 0" },
  { "nested type", "order", with({ items = { { sku = 7, qty = 1 } } }),
    "event 'order': data.items[1].sku: string expected, got 7" },
  { "array item type", "order", with({ tags = { "a", 2 } }), "event 'order': data.tags[2]: string expected, got 2" },
  { "optional but wrong", "order", with({ note = 5 }), "event 'order': data.note: string expected, got 5" },
  { "optional, null not allowed", "order", with({ note = cjson.null }),
    "event 'order': data.note: null not allowed" },
  { "a field name that is no identifier", "odd name", { ["a b"] = "x" },
    "event 'odd name': data[\"a b\"]: integer expected, got \"x\"" },
  { "validator function", "even", 3, "event 'even': data: even number expected" },
  { "validator before the type", "even", "x", "event 'even': data: integer expected, got \"x\"" },
}

describe("sse.catalogue", function()
  local cat = shop()

  it("accepts valid data of every declared type", function()
    assert.is_true(cat:validate("order", ORDER))
    assert.is_true(cat:validate("order", with({ note = "x", coupon = cjson.null, meta = { a = 1 }, tags = {} })))
    assert.is_true(cat:validate("tick", 3))
    assert.is_true(cat:validate("tick", 3.0))
    assert.is_true(cat:validate("message", "hello"))
    assert.is_true(cat:validate("flag", false))
    assert.is_true(cat:validate("anything", { 1, { x = cjson.null }, "s" }))
    assert.is_true(cat:validate("even", 4))
    assert.is_true(cat:validate("odd name", { ["a b"] = 1 }))
    assert.is_true(cat:validate("order", with({ id = "ééééé" }))) -- 5 code points, 10 bytes
  end)

  for _, row in ipairs(REFUSALS) do
    it("refuses " .. row[1], function()
      local ok, err = cat:validate(row[2], row[3])
      assert.is_nil(ok)
      assert.are.equal(row[4], err)
    end)
  end

  it("says why a validator function failed when it raised", function()
    local c = catalogue.new({ events = { x = { data = function() error("boom", 0) end } } })
    assert.are.same({ nil, "event 'x': data: check failed: boom" }, { c:validate("x", 1) })
    local c2 = catalogue.new({ events = { x = function(v) return v == 1 end } })
    assert.is_true(c2:validate("x", 1))
    assert.are.same({ nil, "event 'x': data: rejected by its check" }, { c2:validate("x", 2) })
  end)

  describe("check(ev): events whose data is JSON text or a value", function()
    it("decodes JSON text, checks it and sends it as written", function()
      local ev = assert(cat:check({ event = "tick", data = "42", id = "7" }))
      assert.are.same({ event = "tick", data = "42", id = "7" }, ev)
      local text = '{ "id":"o1", "total":1e1, "status":"new", "items":[{"qty":1,"sku":"a"}] }'
      assert.are.equal(text, assert(cat:check({ event = "order", data = text })).data)
    end)

    it("encodes a Lua value guided by the schema (keys sorted; an empty array is [])", function()
      local ev = assert(cat:check({ event = "order", data = with({ tags = {} }) }))
      assert.are.equal('{"id":"o1","items":[{"qty":1,"sku":"a"}],"status":"new","tags":[],"total":12.5}', ev.data)
      assert.are.equal("0.1", assert(cat:check({ event = "anything", data = 0.1 })).data)
      assert.are.equal('"a\\"\\n\\u0001/é"', schema.encode(nil, "a\"\n\1/é"))
      assert.are.equal('"a\\"\\n\\u0001/é"', cat:event("message", "a\"\n\1/é").data)
      assert.are.equal("a\"\n\1/é", cjson.decode(cat:event("message", "a\"\n\1/é").data))
    end)

    it("types an event without a type as 'message'", function()
      assert.are.same({ data = '"hi"' }, assert(cat:check({ data = '"hi"' })))
      assert.are.same({ nil, "event 'message': data: not valid JSON" }, { cat:check({ data = "hi" }) })
      assert.are.same({ event = "", data = '"hi"' }, assert(cat:check({ event = "", data = '"hi"' })))
    end)

    it("refuses text that is not JSON, or not strict JSON", function()
      for _, text in ipairs({ "x", "{", "NaN", "Infinity", "0x10", "1 2" }) do
        assert.are.same({ nil, "event 'anything': data: not valid JSON" },
          { cat:check({ event = "anything", data = text }) }, text)
      end
    end)

    it("lets comments and retry-only frames through untyped", function()
      assert.are.same({ comment = "hi" }, assert(cat:check({ comment = "hi" })))
      assert.are.same({ retry = 10 }, assert(cat:check({ retry = 10 })))
    end)

    it("reads an sse.Event", function()
      local sse = require("sse")
      local ev = assert(cat:check(sse.Event.json(5):event_type("tick")))
      assert.are.same({ event = "tick", data = "5" }, ev)
      assert.are.same({ nil, "event 'tick': data: integer expected, got true" },
        { cat:check(sse.Event.json(true):event_type("tick")) })
    end)

    it("raises for what is not an event", function()
      util.raises_arg(1, "event (table or sse.Event) expected, got string", cat.check, cat, "x")
    end)
  end)

  describe("event(name, value [, extra])", function()
    it("builds the typed event", function()
      assert.are.same({ event = "tick", data = "5", id = "1", retry = 100 },
        cat:event("tick", 5, { id = "1", retry = 100 }))
      assert.are.same({ data = '"x"' }, cat:event("message", "x"))
      local sse = require("sse")
      assert.are.equal("event: tick\ndata: 5\n\n", sse.encode(cat:event("tick", 5)))
    end)

    it("raises naming the argument and the path", function()
      util.raises_arg(1, "event 'nope' is not in the catalogue", cat.event, cat, "nope", 1)
      util.raises_arg(1, "string expected, got nil", cat.event, cat, nil, 1)
      util.raises_arg(2, "data.items[1].qty: integer expected, got 0.5", cat.event, cat, "order",
        with({ items = { { sku = "a", qty = 0.5 } } }))
      util.raises_arg(3, "unknown field 'event' (id, retry, comment, check_utf8)", cat.event, cat, "tick", 1,
        { event = "x" })
      util.raises_arg(3, "table expected, got string", cat.event, cat, "tick", 1, "x")
    end)
  end)

  describe("declarations", function()
    local bad = {
      { { events = { x = "strin" } }, "events.x: unknown type 'strin'" },
      { { events = { x = { data = "string", colour = 1 } } }, "events.x: unknown key 'colour' (data, description)" },
      { { events = { x = { type = "string", minimum = 1 } } }, "events.x: unknown schema key 'minimum'" },
      { { events = { x = { data = { fields = { a = { type = "integer", max_length = 2 } } } } } },
        "events.x.data.fields.a: 'max_length' applies to strings, not integer" },
      { { events = { x = { data = { items = "string", min = 1 } } } },
        "events.x.data: 'min' applies to numbers, not array" },
      { { events = { x = { enum = {} } } }, "events.x: 'enum' must be a non-empty list" },
      { { events = { x = { enum = { {} } } } }, "events.x: enum[1] must be a string, number or boolean" },
      { { events = { x = { type = "number", min = 1 / 0 } } }, "events.x: 'min' must be a finite number" },
      { { events = { x = { type = "string", max_length = 1.5 } } },
        "events.x: 'max_length' must be a non-negative integer" },
      { { events = { x = { type = "string", optional = "yes" } } }, "events.x: 'optional' must be a boolean" },
      { { events = { x = { check = 1 } } }, "events.x: 'check' must be a function" },
      { { events = { x = { data = 5 } } },
        "events.x.data: schema (type name, table or function) expected, got number" },
      { { events = { ["a b"] = { data = { fields = { [1] = "string" } } } } },
        'events["a b"].data: field names must be strings' },
      { { events = { ["sse-x"] = "string" } }, "events: 'sse-x': names starting with 'sse-' are the hub's own" },
      { { events = { ["a\nb"] = "string" } },
        'events: event name must be a non-empty string without CR, LF or NUL, got "a\\\nb"' },
      { { events = { [""] = "string" } },
        'events: event name must be a non-empty string without CR, LF or NUL, got ""' },
      { { events = "x" }, "field 'events': table expected, got string" },
      { { events = {}, colour = 1 }, "unknown option 'colour' (events, title, description)" },
      { { events = {}, title = 1 }, "'title' must be a string" },
    }
    for _, row in ipairs(bad) do
      it("raises for " .. row[2], function()
        util.raises_arg(1, row[2], catalogue.new, row[1])
      end)
    end

    it("infers the type of an enum and of fields/items", function()
      local c = catalogue.new({ events = { e = { enum = { 1, 2 } }, o = { fields = { a = "string" } },
                                           a = { items = "integer" } } })
      assert.are.same({ nil, "event 'e': data: one of 1, 2 expected, got 3" }, { c:validate("e", 3) })
      assert.are.same({ nil, "event 'o': data: object expected, got 1" }, { c:validate("o", 1) })
      assert.are.same({ nil, "event 'a': data[1]: integer expected, got \"x\"" }, { c:validate("a", { "x" }) })
    end)

    it("lists and loads", function()
      assert.are.same({ "anything", "even", "flag", "message", "odd name", "order", "tick" }, cat:names())
      assert.is_true(cat:has("tick"))
      assert.is_false(cat:has("sse-gap"))
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('return { events = { tick = "integer" } }')
      f:close()
      local c = assert(catalogue.load(path))
      assert.is_true(c:validate("tick", 1))
      f = assert(io.open(path, "w"))
      f:write('return { events = { tick = "int" } }')
      f:close()
      assert.are.same({ nil, path .. ": events.tick: unknown type 'int'" }, { catalogue.load(path) })
      os.remove(path)
    end)
  end)

  describe("the JSON Schema export", function()
    it("is the same bytes every time, and JSON", function()
      local a, b = cat:to_json(), shop():to_json()
      assert.are.equal(a, b)
      local doc = cjson.decode(a)
      assert.are.equal("https://json-schema.org/draft/2020-12/schema", doc["$schema"])
      assert.are.equal(1, doc["x-sse-catalogue"])
      assert.are.equal("shop", doc.title)
      local titles = {}
      for i, alt in ipairs(doc.oneOf) do titles[i] = alt.title end
      assert.are.same({ "anything", "even", "flag", "message", "odd name", "order", "sse-gap", "sse-join", "tick" },
        titles)
      assert.is_true(doc["$defs"].even["x-sse-check"])
      assert.are.same({ "id", "items", "status", "total" }, doc["$defs"].order.required)
      assert.are.same({ "string", "null" }, doc["$defs"].order.properties.coupon.type)
    end)

    -- the same verdict from this catalogue and from an independent validator
    -- reading the export, on JSON samples (valid and not)
    it("agrees with python3-jsonschema on every sample", function()
      local samples = {
        { "order", '{"id":"o1","total":12.5,"status":"new","items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"o1","total":12.5,"status":"new","items":[{"sku":"a","qty":1}],"coupon":null}' },
        { "order", '{"id":"o1","total":12.5,"status":"new","items":[{"sku":"a","qty":1}],"note":null}' },
        { "order", '{"id":"o1","total":12.5,"status":"new","items":[{"sku":"a","qty":1}],"meta":{"x":[1]}}' },
        { "order", '{"id":"o1","total":12.5,"status":"lost","items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"o1","total":-1,"status":"new","items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"","total":1,"status":"new","items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9","total":1,"status":"new",'
          .. '"items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9","total":1,"status":"new",'
          .. '"items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"o1","total":1,"status":"new","items":[{"sku":"a","qty":1.5}]}' },
        { "order", '{"id":"o1","total":1,"status":"new","items":[{"sku":"a","qty":2.0}]}' },
        { "order", '{"id":"o1","total":1,"status":"new","items":[{"sku":"a","qty":1}],"x":1}' },
        { "order", '{"id":"o1","total":1,"items":[{"sku":"a","qty":1}]}' },
        { "order", '{"id":"o1","total":1,"status":"new","items":[{"sku":"a","qty":1}],"tags":["a",1]}' },
        { "tick", "1" }, { "tick", "1.5" }, { "tick", '"1"' }, { "tick", "null" },
        { "message", '"hi"' }, { "message", "1" },
        { "flag", "true" }, { "flag", "0" },
        { "anything", "null" }, { "anything", '[1,{"a":null}]' },
        { "odd name", '{"a b":1}' }, { "odd name", '{"a b":"x"}' },
        { "nope", "1" },
      }
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      local f = assert(io.open(dir .. "/doc.json", "w"))
      f:write(cat:to_json())
      f:close()
      f = assert(io.open(dir .. "/samples.txt", "w"))
      local ours = {}
      for i, s in ipairs(samples) do
        f:write(s[1], "\t", s[2], "\n")
        ours[i] = cat:check({ event = s[1], data = s[2] }) and "ok" or "bad"
      end
      f:close()
      -- python is not ours: no sanitizer runtime preloaded into it
      local p = assert(io.popen("env -u LD_PRELOAD /usr/bin/python3 spec/helpers/jsonschema_check.py "
        .. dir .. "/doc.json " .. dir .. "/samples.txt 2>&1"))
      local out = p:read("a")
      p:close()
      os.execute("rm -rf " .. dir)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.are.equal("schema ok", lines[1], out)
      table.remove(lines, 1)
      assert.are.same(ours, lines)
      -- and the samples are not all one verdict
      local seen = {}
      for _, v in ipairs(ours) do seen[v] = true end
      assert.is_true(seen.ok and seen.bad)
    end)
  end)
end)

describe("a hub or stream bound to a catalogue", function()
  local sse = require("sse")
  local cat = shop()

  local function typed_hub()
    local got = {}
    local ring = sse.MemoryReplayer.new()
    local hub = sse.Hub.new({ flush = "immediate", replayer = ring, catalogue = cat })
    local s = sse.Stream.new({ writer = function(b) got[#got + 1] = b return true end })
    hub:attach(s, { topics = { "shop" } })
    got[1] = nil -- the sse-join event
    return hub, ring, got
  end

  it("sends valid events, Lua values encoded, JSON text as written", function()
    local hub, ring, got = typed_hub()
    assert.are.equal(1, (hub:broadcast_to("shop", { event = "order", data = ORDER })))
    assert.are.equal(1, (hub:broadcast_to("shop", { event = "tick", data = "7" })))
    assert.are.equal(1, (hub:broadcast({ data = '"hi"' })))
    local wire = table.concat(got)
    assert.truthy(wire:find('event: order\nid: [^\n]+\ndata: {"id":"o1","items":%[{"qty":1,"sku":"a"}%],'
      .. '"status":"new","total":12.5}\n\n'), wire)
    assert.truthy(wire:find("event: tick\nid: [^\n]+\ndata: 7\n\n"), wire)
    assert.truthy(wire:find('id: [^\n]+\ndata: "hi"\n\n'), wire)
    assert.are.equal(3, ring:len())
    hub:close()
  end)

  -- every row of the error table raises from the bound hub with the same
  -- message, and nothing is stored or sent
  for _, row in ipairs(REFUSALS) do
    it("refuses " .. row[1] .. " (broadcast_to raises, nothing stored or sent)", function()
      local hub, ring, got = typed_hub()
      -- a string is JSON text to a bound hub: the same value, as JSON
      local data = type(row[3]) == "string" and schema.encode(nil, row[3]) or row[3]
      util.raises_arg(2, row[4], hub.broadcast_to, hub, "shop", { event = row[2], data = data })
      assert.are.equal(0, ring:len())
      assert.are.same({}, got)
      hub:close()
    end)
  end

  it("types a stream's sends, naming the argument", function()
    local got = {}
    local s = sse.Stream.new({ writer = function(b) got[#got + 1] = b return true end, catalogue = cat })
    assert.is_true(s:send({ event = "tick", data = 5 }))
    assert.is_true(s:send_json(6, { event = "tick" }))
    assert.is_true(s:send_comment("untyped"))
    assert.is_true(s:set_retry(100))
    assert.is_true(s:send_data('"a message"'))
    util.raises_arg(2, "event 'tick': data: not valid JSON", s.send_event, s, "tick", "x")
    util.raises_arg(1, "event 'tick': data: integer expected, got 1.5", s.send, s, { event = "tick", data = 1.5 })
    util.raises_arg(1, "event 'nope' is not in the catalogue", s.send, s, { event = "nope", data = "1" })
    assert.are.equal('event: tick\ndata: 5\n\nevent: tick\ndata: 6\n\n: untyped\n\nretry: 100\n\n'
      .. 'data: "a message"\n\n', table.concat(got))
    s:close()
  end)

  it("hands the hub's catalogue to the streams it makes, and checks the option", function()
    local hub = sse.Hub.new({ flush = "immediate", catalogue = cat })
    local s = hub:new_stream({ writer = function() return true end })
    util.raises_arg(1, "event 'nope' is not in the catalogue", s.send, s, { event = "nope", data = "1" })
    util.raises_arg(1, "field 'catalogue': sse.catalogue expected, got table", sse.Hub.new, { catalogue = {} })
    util.raises_arg(1, "field 'catalogue': sse.catalogue expected, got string", sse.Stream.new,
      { writer = function() return true end, catalogue = "x" })
    s:close()
    hub:close()
  end)
end)

describe("the demo hub with --catalogue", function()
  local App = require("sse.app")
  local C = require("helpers.http_client")
  local app, sub
  after_each(function()
    if sub then sub:close() end
    if app then app:close() end
    app, sub = nil, nil
    C.sleep(20)
  end)

  local function start(opts)
    opts.port, opts.log = 0, function() end
    app = App.new(opts)
    assert(app:listen())
    sub = C.connect(app.port)
    sub:send(C.get("/events?topic=t"))
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
  end

  local function request(raw)
    local c = C.connect(app.port)
    local res = assert(c:request(raw, 3000))
    c:close()
    return res
  end

  local function publish_json(body)
    return request(C.post("/publish", body, { "Content-Type: application/json\r\n" }))
  end

  it("serves the catalogue it was started with and types publishes", function()
    start({ catalogue = "examples/catalogue.lua" })
    local res = request(C.get("/catalogue"))
    assert.are.equal(200, res.status)
    assert.are.equal("application/schema+json", res.headers["content-type"])
    assert.are.equal(assert(catalogue.load("examples/catalogue.lua")):to_json(), res.body)
    res = publish_json('{"topic":"t","event":"price","data":{"symbol":"ABC","price":1.5,"time":1700000000}}')
    assert.are.equal(200, res.status, res.body)
    res = publish_json('{"topic":"t","data":"plain \\"text\\""}') -- a string value goes out as JSON
    assert.are.equal(200, res.status, res.body)
    res = publish_json('{"topic":"t","event":"price","data":{"symbol":"ABC","price":-1,"time":1}}')
    assert.are.equal(400, res.status)
    assert.are.equal("event 'price': data.price: at least 0 expected, got -1", cjson.decode(res.body).error)
    res = publish_json('{"topic":"t","event":"nope","data":1}')
    assert.are.equal(400, res.status)
    assert.are.equal("event 'nope' is not in the catalogue", cjson.decode(res.body).error)
    -- a form's data is JSON text
    res = request(C.post("/publish", "topic=t&event=progress&data=" .. '{"job":"j","done":0.5}',
      { "Content-Type: application/x-www-form-urlencoded\r\n" }))
    assert.are.equal(200, res.status, res.body)
    res = request(C.post("/publish", "topic=t&event=progress&data=half",
      { "Content-Type: application/x-www-form-urlencoded\r\n" }))
    assert.are.equal(400, res.status)
    assert.are.equal("event 'progress': data: not valid JSON", cjson.decode(res.body).error)
    assert.is_true(C.wait(function() return sub.buf:find('"done":0.5', 1, true) ~= nil end, 2000))
    local wire = sub.buf
    assert.truthy(wire:find('event: price\nid: [^\n]+\ndata: {"symbol":"ABC","price":1.5,"time":1700000000}\n\n'), wire)
    assert.truthy(wire:find('id: [^\n]+\ndata: "plain \\"text\\""\n\n'), wire)
    assert.truthy(wire:find('event: progress\nid: [^\n]+\ndata: {"job":"j","done":0.5}\n\n'), wire)
    assert.is_nil(wire:find("\"price\":-1", 1, true))
    assert.are.equal(3, app.hub:counters().published)
  end)

  it("answers 404 for /catalogue without one, and refuses a bad catalogue file", function()
    start({})
    assert.are.equal(404, request(C.get("/catalogue")).status)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('return { events = { x = "strng" } }')
    f:close()
    util.raises_arg(1, "option 'catalogue': " .. path .. ": events.x: unknown type 'strng'", App.new,
      { catalogue = path, port = 0 })
    os.remove(path)
    local opts = require("sse.app.main").parse({ "--catalogue", "examples/catalogue.lua" })
    assert.are.equal("examples/catalogue.lua", opts.catalogue)
  end)
end)
