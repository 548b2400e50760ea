local sse = require("sse")
local ref = require("helpers.ref_parser")
local util = require("helpers.util")

local encode = sse.encode

describe("sse.encode", function()
  describe("exact wire bytes", function()
    local cases = {
      { "one data line", { data = "hello" }, "data: hello\n\n" },
      { "empty data is one empty data line", { data = "" }, "data: \n\n" },
      { "LF splits lines", { data = "a\nb" }, "data: a\ndata: b\n\n" },
      { "CRLF splits lines", { data = "a\r\nb" }, "data: a\ndata: b\n\n" },
      { "bare CR splits lines", { data = "a\rb" }, "data: a\ndata: b\n\n" },
      { "mixed line ends", { data = "a\r\n\rb\n\nc" }, "data: a\ndata: \ndata: b\ndata: \ndata: c\n\n" },
      { "a trailing line end gives a trailing empty line", { data = "a\n" }, "data: a\ndata: \n\n" },
      { "a trailing CRLF is one line end", { data = "a\r\n" }, "data: a\ndata: \n\n" },
      { "only a line end", { data = "\n" }, "data: \ndata: \n\n" },
      { "leading spaces survive", { data = "  x" }, "data:   x\n\n" },
      { "a colon in data", { data = "k: v" }, "data: k: v\n\n" },
      { "NUL in data is data", { data = "a\0b" }, "data: a\0b\n\n" },
      { "all fields, in order", { id = "7", event = "tick", retry = 1500, comment = "c", data = "d" },
        ": c\nevent: tick\nid: 7\nretry: 1500\ndata: d\n\n" },
      { "integer id", { id = 42, data = "x" }, "id: 42\ndata: x\n\n" },
      { "empty id resets the client's id", { id = "", data = "x" }, "id:\ndata: x\n\n" },
      { "empty event type", { event = "", data = "x" }, "event:\ndata: x\n\n" },
      { "retry alone", { retry = 0 }, "retry: 0\n\n" },
      { "big retry", { retry = 9007199254740991 }, "retry: 9007199254740991\n\n" },
      { "comment alone", { comment = "keep-alive" }, ": keep-alive\n\n" },
      { "empty comment", { comment = "" }, ": \n\n" },
      { "multi-line comment", { comment = "a\r\nb\rc\n" }, ": a\n: b\n: c\n: \n\n" },
      { "no fields: a lone blank line", {}, "\n" },
      { "UTF-8 everywhere", { id = "é", event = "日本", data = "ü\n😀" },
        "event: 日本\nid: é\ndata: ü\ndata: 😀\n\n" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        assert.are.equal(c[3], encode(c[2]))
      end)
    end

    it("reads a float retry with an integral value", function()
      assert.are.equal("retry: 3000\n\n", encode({ retry = 3000.0 }))
    end)
  end)

  describe("bad input gets an error naming the field", function()
    local bad = {
      { "not a table", "x", "event (table or sse.Event) expected, got string" },
      { "nil", nil, "event (table or sse.Event) expected, got nil" },
      { "LF in id", { id = "a\nb" }, "field 'id' must not contain a line break (byte 2)" },
      { "CR in id", { id = "\r" }, "field 'id' must not contain a line break (byte 1)" },
      { "NUL in id", { id = "ab\0" }, "field 'id' must not contain a NUL byte (byte 3)" },
      { "LF in event", { event = "x\n", data = "y" }, "field 'event' must not contain a line break (byte 2)" },
      { "CR in event", { event = "x\ry" }, "field 'event' must not contain a line break (byte 2)" },
      { "NUL in event", { event = "\0" }, "field 'event' must not contain a NUL byte (byte 1)" },
      { "boolean data", { data = true },
        "field 'data': string expected, got boolean (use sse.Event.json for other values)" },
      { "table data", { data = {} },
        "field 'data': string expected, got table (use sse.Event.json for other values)" },
      { "number data", { data = 5 },
        "field 'data': string expected, got number (use sse.Event.json for other values)" },
      { "table id", { id = {} }, "field 'id': string or integer expected, got table" },
      { "boolean event", { event = false }, "field 'event': string expected, got boolean" },
      { "number comment", { comment = 1 }, "field 'comment': string expected, got number" },
      { "string retry", { retry = "100" }, "field 'retry': integer expected, got string" },
      { "negative retry", { retry = -1 }, "field 'retry' must be an integer from 0 to 9007199254740991" },
      { "fractional retry", { retry = 1.5 }, "field 'retry' must be an integer from 0 to 9007199254740991" },
      { "huge retry", { retry = 2 ^ 60 }, "field 'retry' must be an integer from 0 to 9007199254740991" },
      { "invalid UTF-8 in data", { data = "ok\xff" }, "field 'data' is not valid UTF-8 (byte 3)" },
      { "truncated sequence", { data = "ab\xc3" }, "field 'data' is not valid UTF-8 (byte 3)" },
      { "overlong encoding", { data = "\xc0\xaf" }, "field 'data' is not valid UTF-8 (byte 1)" },
      { "overlong 3-byte", { data = "\xe0\x80\xaf" }, "field 'data' is not valid UTF-8 (byte 1)" },
      { "UTF-16 surrogate", { data = "x\xed\xa0\x80" }, "field 'data' is not valid UTF-8 (byte 2)" },
      { "beyond U+10FFFF", { data = "\xf4\x90\x80\x80" }, "field 'data' is not valid UTF-8 (byte 1)" },
      { "lone continuation", { data = "\x80" }, "field 'data' is not valid UTF-8 (byte 1)" },
      { "bad UTF-8 after 40 ASCII bytes", { data = ("a"):rep(40) .. "\xfe" },
        "field 'data' is not valid UTF-8 (byte 41)" },
      { "invalid UTF-8 in id", { id = "\xff" }, "field 'id' is not valid UTF-8 (byte 1)" },
      { "invalid UTF-8 in event", { event = "a\xff" }, "field 'event' is not valid UTF-8 (byte 2)" },
      { "invalid UTF-8 in comment", { comment = "\xc3(" }, "field 'comment' is not valid UTF-8 (byte 1)" },
    }
    for _, c in ipairs(bad) do
      it(c[1], function()
        util.raises_arg(1, c[3], encode, c[2])
      end)
    end

    it("sse.event_valid answers the same message without raising", function()
      for _, c in ipairs(bad) do
        assert.are.same({ nil, c[3] }, { sse.event_valid(c[2]) }, c[1])
      end
      assert.are.same({ nil, "unknown event field 'date'" }, { sse.event_valid({ date = "x" }) })
      assert.are.same({ true }, { sse.event_valid({ id = 7, event = "tick", retry = 0, comment = "c", data = "é" }) })
      assert.are.same({ true }, { sse.event_valid(sse.Event.data("x"):id("1")) })
      assert.are.same({ true }, { sse.event_valid({ data = "ok\xff", check_utf8 = false }) })
      assert.are.same({ nil, "field 'id' must not contain a line break (byte 1)" },
        { sse.event_valid({ id = "\n", check_utf8 = false }) })
    end)

    it("names 'encode' in the error on every Lua, however it is called", function()
      local msg = "bad argument #1 to 'encode' (field 'id' must not contain a line break (byte 2))"
      local ev = { id = "a\nb" }
      assert.are.same({ false, msg }, { pcall(encode, ev) })
      assert.are.same({ false, msg }, { pcall(function() return sse.encode(ev) end) })
      assert.are.same({ false, msg }, { pcall(sse.core.encode, ev) })
      assert.are.same({ false, "bad argument #2 to 'encode' (table expected, got string)" },
        { pcall(encode, {}, "fast") })
    end)

    it("rejects a non-table options argument", function()
      util.raises_arg(2, "table expected, got string", encode, { data = "x" }, "fast")
    end)
  end)

  describe("one event rule (every API that takes an event)", function()
    local ID = "field 'id' must be a string or an integer from 0 to 9007199254740991"
    it("writes integer ids in decimal, the same on every Lua", function()
      assert.are.equal("id: 42\n\n", encode({ id = 42.0 }))
      assert.are.equal("id: 0\n\n", encode({ id = 0 }))
      assert.are.equal("id: 9007199254740991\n\n", encode({ id = 2 ^ 53 - 1 }))
      assert.are.equal("id: 1000000000000000\n\n", encode({ id = 1e15 }))
    end)
    local bad = {
      { "a fractional id", { id = 1.5 }, ID },
      { "a NaN id", { id = 0 / 0 }, ID },
      { "an infinite id", { id = math.huge }, ID },
      { "a negative id", { id = -1 }, ID },
      { "an id past 2^53 - 1", { id = 2 ^ 53 }, ID },
      { "an unknown field", { date = "x" }, "unknown event field 'date'" },
      { "an unknown field beside good ones", { data = "x", Data = "y" }, "unknown event field 'Data'" },
      { "the first of several unknown fields, by name", { zeta = 1, alpha = 2, data = "x", mid = 3 },
        "unknown event field 'alpha'" },
      { "a number key", { data = "x", "y" }, "event fields are named by strings, got a number key" },
      { "a boolean key", { [true] = 1 }, "event fields are named by strings, got a boolean key" },
      { "a plain table wrapping the fields", { { data = "x" } },
        "event fields are named by strings, got a number key" },
      { "a non-boolean check_utf8", { data = "x", check_utf8 = "no" },
        "field 'check_utf8': boolean expected, got string" },
    }
    for _, c in ipairs(bad) do
      it("refuses " .. c[1], function()
        assert.are.same({ false, ("bad argument #1 to 'encode' (%s)"):format(c[3]) },
          { pcall(encode, c[2]) })
      end)
    end
    it("checks the options", function()
      assert.are.same({ false, "bad argument #2 to 'encode' (unknown option 'fast')" },
        { pcall(encode, { data = "x" }, { fast = true }) })
      assert.are.same({ false, "bad argument #2 to 'encode' (option 'check_utf8': boolean expected, got number)" },
        { pcall(encode, { data = "x" }, { check_utf8 = 0 }) })
    end)
    it("reads fields raw: no metamethod runs", function()
      local proxy = setmetatable({}, { __index = function() error("must not run") end })
      assert.are.equal("\n", encode(proxy))
      local ev = setmetatable({ data = "x" }, { __index = function() error("must not run") end })
      assert.are.equal("data: x\n\n", encode(ev))
    end)
    it("is the rule of Event.new, the builder, event_stream and the replayer", function()
      local R = "unknown event field 'date'"
      local function err(fn, ...)
        local ok, e = pcall(fn, ...)
        assert.is_false(ok)
        return e
      end
      assert.are.equal(("bad argument #1 to 'new' (%s)"):format(R), err(sse.Event.new, { date = "x" }))
      assert.are.equal(("bad argument #1 to 'new' (%s)"):format(ID), err(sse.Event.new, { id = 0 / 0 }))
      local b = sse.Sse.new()
      assert.are.equal(("bad argument #1 to 'push' (%s)"):format(R), err(b.push, b, { date = "x" }))
      assert.are.equal(("bad argument #1 to 'push' (%s)"):format(ID), err(b.push, b, { id = 2.5 }))
      assert.are.equal(("bad argument #1 to 'event_stream' (event 2: %s)"):format(R),
        err(sse.event_stream, { { data = "a" }, { date = "x" } }))
      local r = sse.MemoryReplayer.new({ epoch = "ep" })
      assert.matches("%(unknown event field 'date'%)$", err(r.store, r, { date = "x" }))
      assert.are.equal(0, r:len())
    end)
    it("gives the sample errors of the README's error contract, word for word", function()
      local f = assert(io.open("README.md"))
      local readme = f:read("a")
      f:close()
      local section = readme:match("\n## Error contract\n(.-)\n## ")
      local enc = section:match("`(bad argument #1 to 'encode' [^`]*)`")
      local ev = section:match("`(bad argument #2 to 'event' [^`]*)`")
      assert.are.same({ false, enc }, { pcall(encode, { id = "ab\ncd" }) })
      local ok, err = pcall(sse.Sse.event, sse.Sse.new(), "t")
      assert.is_false(ok)
      assert.are.equal(ev, (err:gsub("^[^:]*:%d+: ", "")))
    end)

    it("exports its limits", function()
      assert.are.equal(9007199254740991, sse.core.limits.retry_max)
      assert.are.equal(9007199254740991, sse.core.limits.id_int_max)
    end)
  end)

  describe("UTF-8 opt-out for trusted bytes", function()
    it("through the options argument", function()
      assert.are.equal("data: \xff\n\n", encode({ data = "\xff" }, { check_utf8 = false }))
    end)
    it("through the event's check_utf8 field", function()
      assert.are.equal("data: \xfe\n\n", encode({ data = "\xfe", check_utf8 = false }))
    end)
    it("still rejects line breaks in id", function()
      util.raises_arg(1, "field 'id' must not contain a line break (byte 1)",
        encode, { id = "\n" }, { check_utf8 = false })
    end)
    it("options override the event", function()
      util.raises_arg(1, "field 'data' is not valid UTF-8 (byte 1)",
        encode, { data = "\xff", check_utf8 = false }, { check_utf8 = true })
    end)
  end)

  describe("large payloads", function()
    it("encodes a 1 MB single line exactly", function()
      local data = ("0123456789abcdef"):rep(65536)
      local out = encode({ data = data })
      assert.are.equal(#data + 8, #out)
      assert.are.equal("data: " .. data .. "\n\n", out)
    end)
    it("splits a long multi-line text at every line end", function()
      local lines = {}
      for i = 1, 1000 do lines[i] = ("line %d é"):format(i) end
      local out = encode({ data = table.concat(lines, "\r\n") })
      local events = ref.parse(out)
      assert.are.equal(1, #events)
      assert.are.equal(table.concat(lines, "\n"), events[1].data)
    end)
    it("finds invalid UTF-8 deep in a large payload", function()
      local data = ("x"):rep(100000) .. "\xff" .. ("y"):rep(10)
      util.raises_arg(1, "field 'data' is not valid UTF-8 (byte 100001)", encode, { data = data })
    end)
  end)

  describe("round trip through a WHATWG reference parser", function()
    local pieces = { "a", "b", " ", "  ", ":", "\n", "\r", "\r\n", "é", "😀", "data:", "id: 1", "\0",
                     "x y", "\t", "日本語" }
    local function rand_text(rng, max)
      local t = {}
      for i = 1, rng(0, max) do t[i] = pieces[rng(1, #pieces)] end
      return table.concat(t)
    end
    local function rand_line(rng, max)
      return (rand_text(rng, max):gsub("[\r\n%z]", ""))
    end

    it("returns every field unchanged for 500 random events", function()
      local seed = os.time()
      math.randomseed(seed)
      local rng = math.random
      local stream, expected = {}, {}
      local last_id = ""
      for i = 1, 500 do
        local ev = { data = rand_text(rng, 12) }
        if rng() < 0.5 then ev.event = rand_line(rng, 4) end
        if rng() < 0.5 then ev.id = rand_line(rng, 3) end
        if rng() < 0.2 then ev.retry = rng(0, 100000) end
        if rng() < 0.2 then ev.comment = rand_text(rng, 5) end
        stream[i] = encode(ev)
        if ev.id then last_id = ev.id end
        expected[i] = { type = (ev.event and ev.event ~= "") and ev.event or "message",
                        data = util.lf(ev.data), id = last_id, retry = ev.retry }
      end
      local got = ref.parse(table.concat(stream))
      assert.are.equal(#expected, #got, "seed " .. seed)
      for i = 1, #expected do
        assert.are.same({ expected[i].type, expected[i].data, expected[i].id },
                        { got[i].type, got[i].data, got[i].id }, "event " .. i .. ", seed " .. seed)
      end
    end)

    it("never lets a field start a second event", function()
      local out = encode({ data = "a\n\nevent: evil\ndata: injected", id = "1" })
      local got = ref.parse(out)
      assert.are.equal(1, #got)
      assert.are.equal("message", got[1].type)
      assert.are.equal("a\n\nevent: evil\ndata: injected", got[1].data)
    end)
  end)

  describe("sse.core.utf8_valid", function()
    it("reports the first bad byte", function()
      assert.are.same({ true }, { sse.core.utf8_valid("héllo") })
      assert.are.same({ false, 2 }, { sse.core.utf8_valid("h\xe9llo") })
    end)
  end)
end)
