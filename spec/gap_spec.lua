local core = require("sse.core")
local gap = require("sse.gap")
local replayer = require("sse.replayer")

-- The error message of fn(...) without its "file:line: " position.
local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("sse.gap", function()
  it("names the event type", function()
    assert.are.equal("sse-gap", gap.EVENT)
  end)

  it("builds a plain event table with no id", function()
    local ev = gap.event({ last_event_id = "ep-1", oldest = "ep-5", latest = "ep-9" })
    assert.are.same({
      event = "sse-gap",
      data = '{"last_event_id":"ep-1","oldest":"ep-5","latest":"ep-9"}',
    }, ev)
    assert.is_nil(ev.id)
  end)

  it("encodes to these exact bytes", function()
    local bytes = core.encode(gap.event({ last_event_id = "ep-1", oldest = "ep-5", latest = "ep-9" }))
    assert.are.equal('event: sse-gap\ndata: {"last_event_id":"ep-1","oldest":"ep-5","latest":"ep-9"}\n\n',
      bytes)
  end)

  it("writes null for what is unknown", function()
    assert.are.equal('{"last_event_id":"x-3","oldest":null,"latest":"x-7"}',
      gap.data({ last_event_id = "x-3", latest = "x-7" }))
    assert.are.equal('{"last_event_id":null,"oldest":null,"latest":null}', gap.data({}))
    assert.are.equal('event: sse-gap\ndata: {"last_event_id":null,"oldest":null,"latest":null}\n\n',
      core.encode(gap.event({})))
  end)

  it("escapes whatever the client sent as Last-Event-ID", function()
    assert.are.equal([[{"last_event_id":"a\"b\\c","oldest":null,"latest":null}]],
      gap.data({ last_event_id = 'a"b\\c' }))
    assert.are.equal([[{"last_event_id":"\n\r\t\b\f\u0000\u001f\u007f","oldest":null,"latest":null}]],
      gap.data({ last_event_id = "\n\r\t\b\f\0\31\127" }))
    -- valid UTF-8 is kept as is; each invalid byte becomes U+FFFD
    assert.are.equal('{"last_event_id":"é😀","oldest":null,"latest":null}',
      gap.data({ last_event_id = "é😀" }))
    local R = "\xEF\xBF\xBD"
    assert.are.equal('{"last_event_id":"a' .. R .. 'b' .. R .. '(c' .. R .. R .. '","oldest":null,"latest":null}',
      gap.data({ last_event_id = "a\xffb\xc3\x28c\xe2\x82" }))
    -- so the event always encodes (the encoder checks UTF-8) as one data line
    local bytes = core.encode(gap.event({ last_event_id = "\xff\n\xc0\xaf" }))
    assert.are.equal('event: sse-gap\ndata: {"last_event_id":"\xEF\xBF\xBD\\n\xEF\xBF\xBD\xEF\xBF\xBD",'
      .. '"oldest":null,"latest":null}\n\n', bytes)
  end)

  it("is linear on a long invalid Last-Event-ID", function()
    local s = ("\xff"):rep(100000)
    local t0 = os.clock()
    local data = gap.data({ last_event_id = s })
    assert.is_true(os.clock() - t0 < 2)
    assert.are.equal('{"last_event_id":"' .. ("\xEF\xBF\xBD"):rep(100000) .. '","oldest":null,"latest":null}',
      data)
  end)

  it("rejects bad info with exact errors", function()
    assert.are.equal("bad argument #1 to 'event' (table expected, got nil)", err_of(gap.event))
    assert.are.equal("bad argument #1 to 'data' (table expected, got string)", err_of(gap.data, "x"))
    assert.are.equal("bad argument #1 to 'event' (info.last_event_id must be a string or nil, got number)",
      err_of(gap.event, { last_event_id = 5 }))
    assert.are.equal("bad argument #1 to 'event' (info.oldest must be a string or nil, got boolean)",
      err_of(gap.event, { oldest = true }))
    assert.are.equal("bad argument #1 to 'data' (info.latest must be a string or nil, got table)",
      err_of(gap.data, { latest = {} }))
  end)

  it("reports the caller's position", function()
    local ok, err = pcall(function() gap.event({ oldest = 1 }) end)
    assert.is_false(ok)
    assert.truthy(err:find("^[^:]*gap_spec%.lua:%d+: bad argument"))
  end)

  describe("gap.info", function()
    it("reads the window of a replayer", function()
      local r = replayer.MemoryReplayer.new({ epoch = "ep", max_events = 2 })
      assert.are.same({ last_event_id = "old-1", latest = "ep-0" }, gap.info(r, "old-1"))
      for i = 1, 3 do r:store({ data = tostring(i) }) end
      local n, err = r:replay("ep-0", function() end)
      assert.are.equal(2, n)
      assert.are.equal("gap", err)
      local info = gap.info(r, "ep-0")
      assert.are.same({ last_event_id = "ep-0", oldest = "ep-2", latest = "ep-3" }, info)
      assert.are.equal('{"last_event_id":"ep-0","oldest":"ep-2","latest":"ep-3"}', gap.data(info))
      r:close()
    end)

    it("works with a replayer that has no first_id", function()
      local r = { last_id = function() return "z-9" end }
      assert.are.same({ last_event_id = "a", latest = "z-9" }, gap.info(r, "a"))
    end)
  end)
end)
