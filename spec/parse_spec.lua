local core = require("sse.core")
local sse = require("sse")
local util = require("helpers.util")
local ref = require("helpers.ref_parser")

local BOM = "\239\187\191"
local R = "\239\191\189" -- U+FFFD

-- Feed `pieces` (a list of strings) to a new parser; returns all events, the
-- error (or nil), the last event id and the retry.
local function run(pieces, opts)
  local p = core.parser(opts)
  local all, err = {}, nil
  for _, piece in ipairs(pieces) do
    local evs, e, before = p:feed(piece)
    if not evs then
      err = e
      evs = before
    end
    for _, ev in ipairs(evs) do all[#all + 1] = ev end
    if err then break end
  end
  local id, retry = p:last_event_id(), p:retry()
  p:close()
  return all, err, id, retry
end

-- Every way of feeding s: whole, split at each boundary, byte by byte.
local function splits(s)
  local ways = { { "whole", { s } } }
  for i = 0, #s do
    ways[#ways + 1] = { "split at " .. i, { s:sub(1, i), s:sub(i + 1) } }
  end
  local bytes = {}
  for i = 1, #s do bytes[i] = s:sub(i, i) end
  ways[#ways + 1] = { "byte by byte", bytes }
  return ways
end

local function ev(type_, data, id) return { type = type_, data = data, id = id or "" } end

describe("core.parser", function()
  describe("WHATWG rules, fed at every split point", function()
    -- { name, stream, events, last_event_id, retry }
    local cases = {
      { "one event", "data: hello\n\n", { ev("message", "hello") } },
      { "no space after colon", "data:hello\n\n", { ev("message", "hello") } },
      { "only one leading space is stripped", "data:  two\n\n", { ev("message", " two") } },
      { "a tab is not stripped", "data:\tx\n\n", { ev("message", "\tx") } },
      { "data lines join with LF", "data: a\ndata: b\ndata\n\n", { ev("message", "a\nb\n") } },
      { "empty data dispatches an empty event", "data\n\n", { ev("message", "") } },
      { "two empty data lines give one LF", "data:\ndata:\n\n", { ev("message", "\n") } },
      { "colon inside the value", "data: a:b: c\n\n", { ev("message", "a:b: c") } },
      { "event type", "event: add\ndata: 1\n\ndata: 2\n\n", { ev("add", "1"), ev("message", "2") } },
      { "empty event type means message", "event:\ndata: x\n\n", { ev("message", "x") } },
      { "a no-data block resets the type", "event: a\n\ndata: x\n\n", { ev("message", "x") } },
      { "comments", ":hi\n: there\ndata: x\n:\n\n", { ev("message", "x") } },
      { "a comment-only block dispatches nothing", ":keep-alive\n\n", {} },
      { "unknown and wrongly cased fields are ignored",
        "foo: bar\nDATA: y\nData: z\nEvent: e\nID: 1\ndata: x\n\n", { ev("message", "x") } },
      { "space before the colon belongs to the name", "data : x\n\n", {} },
      { "a line without colon is a name", "data\ndata: b\n\n", { ev("message", "\nb") } },
      { "NUL in data is kept", "data: a\0b\n\n", { ev("message", "a\0b") } },
      { "UTF-8 passes through", "data: \195\169\226\130\172\n\n", { ev("message", "\195\169\226\130\172") } },
      { "id persists", "id: 1\ndata: a\n\ndata: b\n\n", { ev("message", "a", "1"), ev("message", "b", "1") }, "1" },
      { "id changes and persists", "id: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: c\n\n",
        { ev("message", "a", "1"), ev("message", "b", "2"), ev("message", "c", "2") }, "2" },
      { "empty id resets", "id: 1\ndata: a\n\nid\ndata: b\n\nid:\ndata: c\n\n",
        { ev("message", "a", "1"), ev("message", "b", ""), ev("message", "c", "") }, "" },
      { "id with NUL is ignored", "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n",
        { ev("message", "a", "1"), ev("message", "b", "1") }, "1" },
      { "id after data in the same block", "data: x\nid: 9\n\n", { ev("message", "x", "9") }, "9" },
      { "an id-only block still sets the last id", "id: 7\n\n", {}, "7" },
      { "id is committed only at the blank line", "id: 7\ndata: x\n", {}, "" },
      { "trailing event without blank line is dropped", "data: a\n\ndata: b\n", { ev("message", "a") } },
      { "trailing partial line is dropped", "data: a\n\ndata: b", { ev("message", "a") } },
      { "CRLF", "data: a\r\ndata: b\r\n\r\n", { ev("message", "a\nb") } },
      { "CR", "data: a\rdata: b\r\r", { ev("message", "a\nb") } },
      { "mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n", { ev("message", "a\nb\nc") } },
      { "CR CR LF is two line ends", "data: a\r\r\n", { ev("message", "a") } },
      { "LF CR is two line ends", "data: a\n\rdata: b\n\n", { ev("message", "a"), ev("message", "b") } },
      { "CRLF blocks", "data: a\r\n\r\ndata: b\r\n\r\n", { ev("message", "a"), ev("message", "b") } },
      { "a trailing CR ends the line but not the block", "data: a\r", {} },
      { "empty stream", "", {} },
      { "retry", "retry: 1500\n", {}, "", 1500 },
      { "retry without space, zero", "retry:0\n", {}, "", 0 },
      { "retry with leading zeros", "retry: 007\n", {}, "", 7 },
      { "bogus retry values are ignored",
        "retry: 2000\nretry: 1000x\nretry: x\nretry: -1\nretry: 1.5\nretry\nretry:\nretry:  5\n", {}, "", 2000 },
      { "retry then event", "retry: 1000\ndata: x\n\n", { ev("message", "x") }, "", 1000 },
      { "huge retry saturates", "retry: 99999999999999999999\n", {}, "", 9007199254740991 },
      { "BOM is stripped", BOM .. "data: 1\n\n", { ev("message", "1") } },
      { "only the first BOM is stripped", BOM .. BOM .. "data: 1\n\ndata: 2\n\n", { ev("message", "2") } },
      { "BOM then CRLF", BOM .. "\r\ndata: x\r\n\r\n", { ev("message", "x") } },
      { "a partial BOM is content", "\239\187data: 1\n\ndata: 2\n\n", { ev("message", "2") } },
      { "a BOM later in the stream is content", "data: " .. BOM .. "\n\n", { ev("message", BOM) } },
      -- UTF-8 decode (WHATWG Encoding Standard): one U+FFFD per maximal
      -- ill-formed subpart, as a browser's EventSource shows the text
      { "a lone continuation byte", "data: a\128b\n\n", { ev("message", "a" .. R .. "b") } },
      { "C0/C1 leads and F5..FF", "data: \192\128\193\191\245\255\n\n", { ev("message", R:rep(6)) } },
      { "overlong E0 and F0", "data: \224\128\128|\240\143\191\191\n\n",
        { ev("message", R:rep(3) .. "|" .. R:rep(4)) } },
      { "surrogates", "data: \237\160\128\237\191\191\n\n", { ev("message", R:rep(6)) } },
      { "above U+10FFFF", "data: \244\144\128\128\n\n", { ev("message", R:rep(4)) } },
      { "a truncated sequence is one U+FFFD", "data: \240\159\152x\226\130\n\n", { ev("message", R .. "x" .. R) } },
      { "a truncated sequence then a valid one", "data: \226\195\169\n\n", { ev("message", R .. "\195\169") } },
      { "valid sequences at the edges pass", "data: \194\128\239\191\191\240\144\128\128\244\143\191\191\n\n",
        { ev("message", "\194\128\239\191\191\240\144\128\128\244\143\191\191") } },
      { "bad bytes in event type and id", "event: \255\ndata: x\nid: a\192\n\n",
        { ev(R, "x", "a" .. R) }, "a" .. R },
      { "a bad byte before a field name makes it unknown", "\128data: x\n\ndata: y\n\n", { ev("message", "y") } },
      { "a cut sequence at a CR line end", "data: \226\rdata: \240\159\r\n\n", { ev("message", R .. "\n" .. R) } },
      { "a partial BOM is decoded", "\239\187\ndata: 1\n\n", { ev("message", "1") } },
    }
    for _, c in ipairs(cases) do
      local name, stream, want, want_id, want_retry = c[1], c[2], c[3], c[4] or "", c[5]
      it(name, function()
        for _, way in ipairs(splits(stream)) do
          local got, err, id, retry = run(way[2])
          assert.is_nil(err, way[1])
          assert.same(want, got, way[1])
          assert.equal(want_id, id, way[1])
          assert.equal(want_retry, retry, way[1])
        end
      end)
    end
  end)

  describe("limits", function()
    local lim = { max_line_bytes = 8, max_event_bytes = 10 }
    it("accepts a line of exactly max_line_bytes", function()
      for _, way in ipairs(splits("data:abc\n\n")) do
        local got, err = run(way[2], lim)
        assert.is_nil(err, way[1])
        assert.same({ ev("message", "abc") }, got, way[1])
      end
    end)

    it("fails a longer line, even before its end arrives", function()
      for _, way in ipairs(splits("data:a\n\n:comment!")) do
        local got, err = run(way[2], lim)
        assert.equal("line too long", err, way[1])
        assert.same({ ev("message", "a") }, got, way[1])
      end
    end)

    it("fails an event whose data exceeds max_event_bytes", function()
      -- "abc\nabc\na\n" is 10 bytes: fits; "abc\nabc\nab\n" is 11
      local s = "data:abc\ndata:abc\ndata:a\n\ndata:abc\ndata:abc\ndata:ab\n\n"
      for _, way in ipairs(splits(s)) do
        local got, err = run(way[2], lim)
        assert.equal("event too large", err, way[1])
        assert.same({ ev("message", "abc\nabc\na") }, got, way[1])
      end
    end)

    it("returns the events before the error, then refuses input until reset", function()
      local p = core.parser(lim)
      local evs, err, before = p:feed("id: 1\ndata: a\n\ndata: 123456789\n\n")
      assert.is_nil(evs)
      assert.equal("line too long", err)
      assert.same({ ev("message", "a", "1") }, before)
      local evs2, err2, before2 = p:feed("data: b\n\n")
      assert.is_nil(evs2)
      assert.equal("line too long", err2)
      assert.same({}, before2)
      assert.is_true(p:reset())
      assert.same({ ev("message", "b", "1") }, p:feed("data: b\n\n"))
      p:close()
    end)

    it("defaults to 1 MiB each", function()
      local p = core.parser()
      local big = string.rep("x", 1024 * 1024 - 5)
      assert.same({ ev("message", big) }, p:feed("data:" .. big .. "\n\n"))
      local evs, err = p:feed("data:" .. big .. "x\n")
      assert.is_nil(evs)
      assert.equal("line too long", err)
      local q = core.parser({ max_line_bytes = 4 * 1024 * 1024 })
      local half = string.rep("y", 512 * 1024)
      evs, err = q:feed("data:" .. half .. "\ndata:" .. half .. "\n\n")
      assert.is_nil(evs)
      assert.equal("event too large", err)
    end)
  end)

  describe("object", function()
    it("starts from last_event_id and keeps the id across reset", function()
      local p = core.parser({ last_event_id = "41" })
      assert.equal("41", p:last_event_id())
      assert.same({ ev("message", "x", "41") }, p:feed("data: x\n\n"))
      -- an id line whose block never ended is not committed; reset drops it
      assert.same({}, p:feed("id: 42\ndata: half"))
      assert.is_true(p:reset())
      assert.equal("41", p:last_event_id())
      assert.same({ ev("message", "y", "41") }, p:feed(BOM .. "data: y\n\n"))
      assert.is_true(p:reset("abc"))
      assert.same({ ev("message", "z", "abc") }, p:feed("data: z\n\n"))
      assert.equal("abc", p:last_event_id())
    end)

    it("reset forgets a pending CR, partial lines and the data buffer", function()
      local p = core.parser()
      assert.same({}, p:feed("data: a\r"))
      p:reset()
      assert.same({ ev("message", "w") }, p:feed("\ndata: w\n\n"))
      assert.same({}, p:feed("data: a\ndata: b"))
      p:reset()
      assert.same({ ev("message", "c") }, p:feed("data: c\n\n"))
    end)

    it("retry is nil until a valid retry field arrives", function()
      local p = core.parser()
      assert.is_nil(p:retry())
      p:feed("retry: x\n")
      assert.is_nil(p:retry())
      p:feed("retry: 250\n")
      assert.equal(250, p:retry())
      assert.equal("number", type(p:retry()))
    end)

    it("closes idempotently; later calls return nil, 'closed'", function()
      local p = core.parser()
      assert.is_true(p:close())
      assert.is_true(p:close())
      assert.same({ nil, "closed" }, { p:feed("data: x\n\n") })
      assert.same({ nil, "closed" }, { p:retry() })
      assert.same({ nil, "closed" }, { p:last_event_id() })
      assert.same({ nil, "closed" }, { p:reset() })
      assert.equal("sse.Parser (closed)", tostring(p))
    end)

    it("has a named metatable", function()
      local p = core.parser()
      assert.matches("^sse%.Parser %(", tostring(p))
      assert.equal("sse.Parser", getmetatable(p).__name)
    end)

    if _VERSION == "Lua 5.4" then
      it("closes as a to-be-closed variable", function()
        local f = load([[
          local core = ...
          local keep
          do
            local p <close> = core.parser()
            keep = p
          end
          return keep
        ]])
        local p = f(core)
        assert.same({ nil, "closed" }, { p:feed("x") })
      end)
    end

    it("names the bad argument", function()
      util.raises_arg(1, "table expected, got number", core.parser, 5)
      util.raises_arg(1, "field 'max_line_bytes' must be a positive integer", core.parser, { max_line_bytes = 0 })
      util.raises_arg(1, "field 'max_event_bytes' must be a positive integer", core.parser, { max_event_bytes = 1.5 })
      util.raises_arg(1, "field 'max_line_bytes': integer expected, got string", core.parser,
        { max_line_bytes = "8" })
      util.raises_arg(1, "field 'last_event_id': string expected, got number", core.parser, { last_event_id = 5 })
      local p = core.parser()
      util.raises_arg(2, "string expected, got no value", p.feed, p)
      util.raises_arg(2, "string expected, got table", p.feed, p, {})
      util.raises_arg(1, "sse.Parser expected, got table", p.feed, {}, "x")
      util.raises_arg(2, "string expected, got table", p.reset, p, {})
    end)
  end)

  describe("properties", function()
    -- deterministic pseudo-random numbers, the same on every Lua
    local seed = 20240601
    local function rnd(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    local pool = { "a", "b", " ", ":", "\n", "\r", "\r\n", "\195\169", "\226\130\172", "0", "9", "x y" }
    local function rstr(maxlen, no_newline)
      local t = {}
      for i = 1, rnd(maxlen + 1) - 1 do
        local c = pool[rnd(#pool)]
        if no_newline and (c == "\n" or c == "\r" or c == "\r\n") then c = "-" end
        t[i] = c
      end
      return table.concat(t)
    end

    it("round-trips a few hundred random events through sse.encode", function()
      for round = 1, 4 do
        local wire, want, last_id, last_retry = {}, {}, "", nil
        for i = 1, 100 do
          local e = {}
          local kind = rnd(10)
          if kind ~= 1 then e.data = rstr(12) end -- some events carry no data
          if rnd(3) == 1 then e.event = rstr(6, true) end
          if rnd(2) == 1 then e.id = rstr(5, true) end
          if rnd(8) == 1 then e.retry = rnd(100000) - 1 end
          if rnd(6) == 1 then e.comment = rstr(8) end
          wire[i] = sse.encode(e)
          if e.id then last_id = e.id end
          if e.retry then last_retry = e.retry end
          if e.data then
            want[#want + 1] = {
              type = (e.event and e.event ~= "") and e.event or "message",
              data = util.lf(e.data),
              id = last_id,
            }
          end
        end
        local s = table.concat(wire)
        -- whole, and in random pieces
        local got, err, id, retry = run({ s })
        assert.is_nil(err)
        assert.same(want, got)
        assert.equal(last_id, id)
        assert.equal(last_retry, retry)
        local pieces, i = {}, 1
        while i <= #s do
          local n = rnd(2 * round * round + 1)
          pieces[#pieces + 1] = s:sub(i, i + n - 1)
          i = i + n
        end
        got, err, id = run(pieces)
        assert.is_nil(err)
        assert.same(want, got)
        assert.equal(last_id, id)
      end
    end)

    it("agrees with the reference parser on random streams", function()
      local bits = { "data", "data:", "data: ", "event: ", "id: ", "id:", "retry: ", "retry:", ":", "x", " ",
        "1", "\n", "\r", "\r\n", "\n\n", "\0", "ev", "\195\169", "\128", "\195", "\226\130", "\240\159",
        "\237\160\128", "\244\144", "\255", BOM }
      for _ = 1, 300 do
        local t = {}
        for i = 1, rnd(40) do t[i] = bits[rnd(#bits)] end
        local s = table.concat(t)
        if rnd(5) == 1 then s = BOM .. s end
        local want, _, want_retry = ref.parse(s)
        if want_retry and want_retry > 9007199254740991 then want_retry = 9007199254740991 end
        local cut = rnd(#s + 1) - 1
        local got, err, _, retry = run({ s:sub(1, cut), s:sub(cut + 1) })
        assert.is_nil(err)
        assert.same(want, got, ("stream %q"):format(s))
        assert.equal(want_retry, retry, ("stream %q"):format(s))
      end
    end)

    it("decodes random bytes the same at any chunking, into valid UTF-8", function()
      for _ = 1, 300 do
        local t = {}
        for i = 1, rnd(60) do
          local r = rnd(4)
          t[i] = r == 1 and "\n" or r == 2 and string.char(rnd(256) - 1) or string.char(0x7F + rnd(0x76))
        end
        local s = "data: " .. table.concat(t) .. "\n\n"
        local whole = run({ s })
        for _, e in ipairs(whole) do assert.is_true(core.utf8_valid(e.data)) end
        assert.same(ref.parse(s), whole, ("stream %q"):format(s))
        local pieces, i = {}, 1
        while i <= #s do
          local k = rnd(5)
          pieces[#pieces + 1] = s:sub(i, i + k - 1)
          i = i + k
        end
        assert.same(whole, (run(pieces)), ("stream %q"):format(s))
      end
    end)
  end)
end)
