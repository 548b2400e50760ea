local sse = require("sse")
local util = require("helpers.util")
local Event = sse.Event

describe("sse.Event", function()
  it("chains setters and encodes", function()
    local ev = Event.data("hi"):id("42"):event_type("token"):retry(3000)
    assert.are.equal("event: token\nid: 42\nretry: 3000\ndata: hi\n\n", ev:encode())
  end)

  it("lets a setter be called again", function()
    local ev = Event.data("x"):id("1"):id("2"):retry(1):retry(2)
    assert.are.equal("id: 2\nretry: 2\ndata: x\n\n", ev:encode())
  end)

  it("is accepted by sse.encode like a plain table", function()
    assert.are.equal("data: x\n\n", sse.encode(Event.data("x")))
  end)

  it("builds JSON data", function()
    local ev = Event.json({ a = { 1, 2, 3 } }):event_type("update")
    assert.are.equal('event: update\ndata: {"a":[1,2,3]}\n\n', ev:encode())
    assert.are.equal("data: 42\n\n", Event.json(42):encode())
    assert.are.equal('data: "a\\nb"\n\n', Event.json("a\nb"):encode())
  end)

  it("rejects values JSON cannot carry", function()
    local ok, err = pcall(Event.json, { f = print })
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #1 to 'json' (cannot encode as JSON:", 1, true), err)
  end)

  it("json_text answers the JSON text, or nil and lua-cjson's own message", function()
    assert.are.same({ '{"a":[1,2]}' }, { Event.json_text({ a = { 1, 2 } }) })
    -- the same words on Lua 5.4 and LuaJIT, called from Lua or not: no position in front
    local want = { nil, "Cannot serialise function: type not supported" }
    assert.are.same(want, { Event.json_text({ f = print }) })
    assert.are.same(want, { (function(v) return Event.json_text(v) end)({ f = print }) })
    assert.are.same({ false, "bad argument #1 to 'json' (cannot encode as JSON: " .. want[2] .. ")" },
      { pcall(Event.json, { f = print }) })
  end)

  it("carries a comment and the UTF-8 opt-out", function()
    assert.are.equal(": note\ndata: \xff\n\n", Event.data("\xff"):comment("note"):check_utf8(false):encode())
  end)

  it("copies a plain table with Event.new and rejects unknown fields", function()
    assert.are.equal("id: 1\ndata: d\n\n", Event.new({ id = "1", data = "d" }):encode())
    util.raises_arg(1, "unknown event field 'date'", Event.new, { date = "x" })
    util.raises_arg(1, "table expected, got number", Event.new, 5)
  end)

  it("returns its fields", function()
    assert.are.same({ data = "x", id = "3" }, Event.data("x"):id("3"):fields())
  end)

  local bad = {
    { "data of a boolean", function() return Event.data(true) end,
      "string expected, got boolean (use sse.Event.json for other values)" },
    { "data of nil", function() return Event.data() end, "string expected, got nil" },
    { "id of a table", function() return Event.data("x"):id({}) end, "string or integer expected, got table" },
    { "event_type of a number", function() return Event.data("x"):event_type(1) end, "string expected, got number" },
    { "negative retry", function() return Event.data("x"):retry(-5) end,
      "integer from 0 to 9007199254740991 expected, got -5" },
    { "NaN retry", function() return Event.data("x"):retry(0 / 0) end,
      "integer from 0 to 9007199254740991 expected, got nan" },
    { "retry past 2^53 - 1", function() return Event.data("x"):retry(2 ^ 53) end,
      "integer from 0 to 9007199254740991 expected, got 9.007199254741e+15" },
    { "string retry", function() return Event.data("x"):retry("5") end, "integer expected, got string" },
    { "fractional id", function() return Event.data("x"):id(1.5) end,
      "string or integer from 0 to 9007199254740991 expected, got 1.5" },
    { "NaN id", function() return Event.data("x"):id(0 / 0) end,
      "string or integer from 0 to 9007199254740991 expected, got nan" },
    { "a field of the wrong type in Event.new", function() return Event.new({ retry = "5" }) end,
      "field 'retry': integer expected, got string" },
    { "a non-boolean check_utf8 in Event.new", function() return Event.new({ check_utf8 = 1 }) end,
      "field 'check_utf8': boolean expected, got number" },
    { "comment of nil", function() return Event.data("x"):comment() end, "string expected, got nil" },
  }
  for _, c in ipairs(bad) do
    it("raises on " .. c[1], function()
      util.raises_arg(1, c[3], c[2])
    end)
  end

  it("reports bad field contents when encoding", function()
    util.raises_arg(1, "field 'id' must not contain a line break (byte 2)", function()
      return Event.data("x"):id("1\n2"):encode()
    end)
  end)

  it("knows its own kind", function()
    assert.is_true(Event.is(Event.data("x")))
    assert.is_false(Event.is({ data = "x" }))
  end)
end)
