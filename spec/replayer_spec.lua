local core = require("sse.core")
local replayer = require("sse.replayer")
local Event = require("sse.event")

local MemoryReplayer = replayer.MemoryReplayer

-- The error message of fn(...) without its "file:line: " position.
local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

-- A replayer with epoch "ep" and a clock the test moves (clock.now).
local function new(opts)
  local clock = { now = 0 }
  local o = { epoch = "ep", clock = function() return clock.now end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return MemoryReplayer.new(o), clock
end

-- replay into a list: returns the list of bytes, then what replay returned.
local function collect(r, last_id, topics)
  local out = {}
  local n, err = r:replay(last_id, function(b) out[#out + 1] = b end, topics)
  return out, n, err
end

-- The wire bytes the replayer stores for {data = data} with this id.
local function wire(id, data)
  return "id: " .. id .. "\ndata: " .. data .. "\n\n"
end

describe("sse.MemoryReplayer", function()
  describe("store", function()
    it("assigns monotonic base36 ids and encodes each event once, with its id", function()
      local r = new()
      assert.are.equal("ep-0", r:last_id())
      assert.are.equal("ep-1", r:store({ data = "hello" }))
      assert.are.equal("ep-2", r:store({ event = "tick", data = "a\nb", retry = 10, comment = "c" }))
      local out, n, err = collect(r, "ep-0")
      assert.are.same({
        "id: ep-1\ndata: hello\n\n",
        ": c\nevent: tick\nid: ep-2\nretry: 10\ndata: a\ndata: b\n\n",
      }, out)
      assert.are.equal(2, n)
      assert.is_nil(err)
      for i = 3, 35 do assert.are.equal("ep-" .. ("0123456789abcdefghijklmnopqrstuvwxyz"):sub(i + 1, i + 1),
        r:store({ data = "x" })) end
      assert.are.equal("ep-10", r:store({ data = "x" }))
      assert.are.equal("ep-11", r:store({ data = "x" }))
      assert.are.equal("ep-11", r:last_id())
      r:close()
    end)

    it("accepts an sse.Event without an id", function()
      local r = new()
      assert.are.equal("ep-1", r:store(Event.data("hi"):event_type("greet")))
      assert.are.same({ "event: greet\nid: ep-1\ndata: hi\n\n" }, (collect(r, "ep-0")))
    end)

    it("counts len and the encoded bytes", function()
      local r = new()
      assert.are.equal(0, r:len())
      assert.are.equal(0, r:bytes())
      r:store({ data = "12345" })
      r:store({ data = "" }, "topic")
      assert.are.equal(2, r:len())
      assert.are.equal(#wire("ep-1", "12345") + #wire("ep-2", ""), r:bytes())
    end)

    it("gives a fresh epoch to each replayer by default", function()
      local a, b = MemoryReplayer.new(), MemoryReplayer.new()
      local ea = a:store({ data = "x" }):match("^(%w+)%-1$")
      local eb = b:store({ data = "x" }):match("^(%w+)%-1$")
      assert.truthy(ea and #ea >= 11 and #ea <= 13)
      assert.truthy(eb and eb:match("^[0-9a-z]+$"))
      assert.are_not.equal(ea, eb)
      local out, n, err = collect(b, a:last_id())
      assert.are.same({ wire(eb .. "-1", "x") }, out)
      assert.are.same({ 1, "gap" }, { n, err })
    end)
  end)

  describe("replay", function()
    local r
    before_each(function()
      r = new()
      for i = 1, 5 do r:store({ data = "e" .. i }) end
    end)
    after_each(function() r:close() end)

    it("sends every event after last_id, oldest first", function()
      local out, n, err = collect(r, "ep-2")
      assert.are.same({ wire("ep-3", "e3"), wire("ep-4", "e4"), wire("ep-5", "e5") }, out)
      assert.are.equal(3, n)
      assert.is_nil(err)
    end)

    it("sends nothing to a client that is up to date", function()
      local out, n, err = collect(r, "ep-5")
      assert.are.same({}, out)
      assert.are.equal(0, n)
      assert.is_nil(err)
      -- exactly one value: no trailing nil
      assert.are.equal(1, select("#", r:replay("ep-5", function() end)))
    end)

    it("sends everything after the start id ep-0", function()
      local out, n = collect(r, "ep-0")
      assert.are.equal(5, #out)
      assert.are.equal(5, n)
      assert.are.equal(wire("ep-1", "e1"), out[1])
    end)

    it("can replay the same window many times", function()
      local a = collect(r, "ep-1")
      local b = collect(r, "ep-1")
      assert.are.same(a, b)
      assert.are.equal(5, r:len())
    end)
  end)

  describe("eviction", function()
    it("keeps at most max_events", function()
      local r = new({ max_events = 3 })
      for i = 1, 5 do r:store({ data = "e" .. i }) end
      assert.are.equal(3, r:len())
      assert.are.equal("ep-3", r:first_id())
      assert.are.equal("ep-5", r:last_id())
      local out, n, err = collect(r, "ep-2")
      assert.are.same({ wire("ep-3", "e3"), wire("ep-4", "e4"), wire("ep-5", "e5") }, out)
      assert.are.same({ 3, nil }, { n, err })
    end)

    it("keeps at most max_bytes of encoded events", function()
      local one = #wire("ep-1", "abcde") -- 21 bytes, as every id here has 1 digit
      local r = new({ max_bytes = 2 * one + 1 })
      for _ = 1, 4 do r:store({ data = "abcde" }) end
      assert.are.equal(2, r:len())
      assert.are.equal(2 * one, r:bytes())
      assert.are.equal("ep-3", r:first_id())
      local out, n, err = collect(r, "ep-1")
      assert.are.same({ wire("ep-3", "abcde"), wire("ep-4", "abcde") }, out)
      assert.are.same({ 2, "gap" }, { n, err })
    end)

    it("numbers an event larger than max_bytes but cannot keep it", function()
      local r = new({ max_bytes = 30 })
      r:store({ data = "small" })
      assert.are.equal("ep-2", r:store({ data = ("x"):rep(30) }))
      assert.are.equal(0, r:len())
      assert.are.equal(0, r:bytes())
      assert.is_nil(r:first_id())
      assert.are.equal("ep-2", r:last_id())
      -- a client that saw ep-1 missed ep-2: gap; one that saw ep-2 missed nothing
      assert.are.same({ 0, "gap" }, { r:replay("ep-1", error) })
      assert.are.same({ 0 }, { r:replay("ep-2", error) })
      assert.are.equal("ep-3", r:store({ data = "ok" }))
      assert.are.same({ { wire("ep-3", "ok") }, 1 }, { collect(r, "ep-2") })
    end)

    it("drops events aged ttl or more, lazily, on store and replay", function()
      local r, clock = new({ ttl = 10 })
      r:store({ data = "a" })
      clock.now = 5
      r:store({ data = "b" })
      clock.now = 9.999
      assert.are.same({ 2, nil }, { select(2, collect(r, "ep-0")) })
      clock.now = 10
      assert.are.equal(2, r:len()) -- nothing happens until a replay or store
      local out, n, err = collect(r, "ep-0")
      assert.are.same({ wire("ep-2", "b") }, out)
      assert.are.same({ 1, "gap" }, { n, err })
      assert.are.equal(1, r:len())
      assert.are.same({ 1, nil }, { select(2, collect(r, "ep-1")) })
      clock.now = 100
      r:store({ data = "c" }) -- expires b
      assert.are.equal(1, r:len())
      assert.are.equal("ep-3", r:first_id())
      assert.are.same({ 1, "gap" }, { select(2, collect(r, "ep-1")) })
      clock.now = 110
      assert.are.same({ 0, nil }, { select(2, collect(r, "ep-3")) })
      assert.are.equal(0, r:len())
      assert.are.equal("ep-3", r:last_id())
    end)

    it("never expires with ttl = math.huge", function()
      local r, clock = new({ ttl = math.huge })
      r:store({ data = "a" })
      clock.now = 1e300
      assert.are.same({ 1, nil }, { select(2, collect(r, "ep-0")) })
    end)

    it("clear drops everything and ids continue", function()
      local r = new()
      r:store({ data = "a" })
      r:store({ data = "b" })
      assert.is_true(r:clear())
      assert.are.equal(0, r:len())
      assert.are.equal(0, r:bytes())
      assert.are.equal("ep-2", r:last_id())
      assert.are.same({ 0, "gap" }, { r:replay("ep-1", error) })
      assert.are.same({ 0 }, { r:replay("ep-2", error) })
      assert.are.equal("ep-3", r:store({ data = "c" }))
    end)
  end)

  describe("gaps: replays what it still has and says \"gap\"", function()
    local r
    before_each(function()
      r = new({ max_events = 3 })
      for i = 1, 6 do r:store({ data = "e" .. i }) end -- holds ep-4 .. ep-6
    end)
    local held = { wire("ep-4", "e4"), wire("ep-5", "e5"), wire("ep-6", "e6") }

    local function gap(id)
      local out, n, err = collect(r, id)
      assert.are.same(held, out)
      assert.are.equal(3, n)
      assert.are.equal("gap", err)
    end

    it("for an evicted id", function() gap("ep-2") end)
    it("for the start id once the first event is gone", function() gap("ep-0") end)
    it("for an id of an earlier run (another epoch)", function()
      gap("old-5")
      gap("EP-5") -- epochs are case-sensitive
      gap("e-5")
    end)
    it("for an id never issued (future seq)", function()
      gap("ep-7")
      gap("ep-zzz")
      gap("ep-3w5e11264sgsf") -- 2^64 - 1
    end)
    it("for malformed ids", function()
      for _, id in ipairs({ "", "5", "ep", "ep-", "-5", "ep-05", "ep-00", "ep-A", "ep-5-5", "ep-5 ",
                            " ep-5", "ep-5\n", "ep_5", "ep-5.0", "e p-5", "ep-\0", "ep-3w5e11264sgsg",
                            "ep-10000000000000", ("a"):rep(33) .. "-1", ("x"):rep(10000) }) do
        gap(id)
      end
    end)
    it("is not a gap right before the oldest held event", function()
      local out, n, err = collect(r, "ep-3")
      assert.are.same(held, out)
      assert.are.same({ 3, nil }, { n, err })
    end)
  end)

  describe("topics", function()
    local r
    before_each(function()
      r = new()
      r:store({ data = "a1" }, "a")
      r:store({ data = "all" })
      r:store({ data = "b1" }, "b")
      r:store({ data = "a2" }, "a")
      r:store({ data = "c1" }, "c")
    end)

    it("sends everything without a topic list", function()
      assert.are.equal(5, select(2, collect(r, "ep-0")))
    end)
    it("sends the listed topics and the events stored with no topic", function()
      local out, n, err = collect(r, "ep-0", { "a" })
      assert.are.same({ wire("ep-1", "a1"), wire("ep-2", "all"), wire("ep-4", "a2") }, out)
      assert.are.same({ 3, nil }, { n, err })
      out, n = collect(r, "ep-1", { "c", "b" })
      assert.are.same({ wire("ep-2", "all"), wire("ep-3", "b1"), wire("ep-5", "c1") }, out)
      assert.are.equal(3, n)
    end)
    it("sends only untopiced events to an empty topic list", function()
      local out, n = collect(r, "ep-0", {})
      assert.are.same({ wire("ep-2", "all") }, out)
      assert.are.equal(1, n)
    end)
    it("compares topics as whole byte strings", function()
      assert.are.equal(1, select(2, collect(r, "ep-0", { "", "A", "a\0", "ab" })))
    end)
    it("reports a gap independently of the filter", function()
      local rr = new({ max_events = 2 })
      rr:store({ data = "x" }, "x")
      rr:store({ data = "y" }, "y")
      rr:store({ data = "z" }, "y")
      local out, n, err = collect(rr, "ep-0", { "x" })
      assert.are.same({}, out)
      assert.are.same({ 0, "gap" }, { n, err })
    end)
  end)

  describe("ids across a restart", function()
    it("never mistakes an id of the previous run for one of this run", function()
      local run1 = new({ epoch = "run1" })
      for i = 1, 3 do run1:store({ data = "old" .. i }) end
      local client_id = run1:last_id()
      assert.are.equal("run1-3", client_id)
      run1:close()

      local run2 = new({ epoch = "run2" })
      for i = 1, 5 do run2:store({ data = "new" .. i }) end
      -- same sequence number, other epoch: everything held, and a gap
      local out, n, err = collect(run2, client_id)
      assert.are.equal(5, #out)
      assert.are.equal(wire("run2-1", "new1"), out[1])
      assert.are.same({ 5, "gap" }, { n, err })
      -- this run's ids work as usual
      assert.are.same({ 2, nil }, { select(2, collect(run2, "run2-3")) })
    end)
  end)

  describe("send callbacks", function()
    it("sees nothing stored during the replay", function()
      local r = new()
      r:store({ data = "a" })
      r:store({ data = "b" })
      local seen = {}
      local n, err = r:replay("ep-0", function(b)
        seen[#seen + 1] = b
        r:store({ data = "during" })
      end)
      assert.are.same({ wire("ep-1", "a"), wire("ep-2", "b") }, seen)
      assert.are.same({ 2, nil }, { n, err })
      assert.are.equal("ep-4", r:last_id())
    end)

    it("reports a gap when a send makes the ring drop unsent events", function()
      local r = new({ max_events = 3 })
      for i = 1, 3 do r:store({ data = "e" .. i }) end
      local seen = {}
      local n, err = r:replay("ep-0", function(b)
        seen[#seen + 1] = b
        if #seen == 1 then
          r:store({ data = "x" }) -- evicts e1 (sent)
          r:store({ data = "y" }) -- evicts e2 (not sent yet)
        end
      end)
      assert.are.same({ wire("ep-1", "e1"), wire("ep-3", "e3") }, seen)
      assert.are.same({ 2, "gap" }, { n, err })
    end)

    it("stops with a gap when a send clears", function()
      local r = new()
      for i = 1, 3 do r:store({ data = "e" .. i }) end
      local calls = 0
      local n, err = r:replay("ep-0", function() calls = calls + 1; r:clear() end)
      assert.are.equal(1, calls)
      assert.are.same({ 1, "gap" }, { n, err })
    end)

    it("stops with nil, \"closed\" when a send closes", function()
      local r = new()
      for i = 1, 3 do r:store({ data = "e" .. i }) end
      local calls = 0
      local n, err = r:replay("ep-0", function() calls = calls + 1; r:close() end)
      assert.are.equal(1, calls)
      assert.are.same({ nil, "closed" }, { n, err })
    end)

    it("lets a send raise and leaves the replayer intact", function()
      local r = new()
      for i = 1, 3 do r:store({ data = "e" .. i }) end
      local calls = 0
      local ok, e = pcall(r.replay, r, "ep-0", function()
        calls = calls + 1
        if calls == 2 then error("boom", 0) end
      end)
      assert.is_false(ok)
      assert.are.equal("boom", e)
      assert.are.equal(3, r:len())
      assert.are.equal(3, select(2, collect(r, "ep-0")))
    end)
  end)

  describe("close", function()
    it("is idempotent and makes every method answer nil, \"closed\"", function()
      local r = new()
      r:store({ data = "x" })
      assert.is_true(r:close())
      assert.is_true(r:close())
      for _, call in ipairs({
        function() local a, b = r:store({ data = "y" }); return a, b end,
        function() local a, b = r:replay("ep-0", error); return a, b end,
        function() local a, b = r:last_id(); return a, b end,
        function() local a, b = r:first_id(); return a, b end,
        function() local a, b = r:len(); return a, b end,
        function() local a, b = r:bytes(); return a, b end,
        function() local a, b = r:clear(); return a, b end,
      }) do
        assert.are.same({ nil, "closed" }, { call() })
      end
      assert.are.equal("sse.Ring (closed)", tostring(r))
    end)

    it("still raises on misuse after close", function()
      local r = new()
      r:close()
      assert.are.equal("bad argument #1 to 'store' (event must not carry an id: ids are assigned by the replayer)",
        err_of(function() r:store({ id = "1" }) end))
    end)

    it("closes at the end of a <close> block (Lua 5.4)", function()
      if _VERSION ~= "Lua 5.4" or type(jit) == "table" then return end
      local chunk = assert(load([[
        local new = ...
        local kept
        do
          local r <close> = new()
          kept = r
          r:store({ data = "x" })
        end
        return kept
      ]]))
      local kept = chunk(new)
      assert.are.same({ nil, "closed" }, { kept:len() })
    end)

    it("shows its state in tostring", function()
      local r = new()
      r:store({ data = "x" })
      assert.are.equal("sse.Ring (ep: 1 events, 18 bytes)", tostring(r))
    end)
  end)

  describe("bad arguments", function()
    local r
    before_each(function() r = new() end)

    local unpack = table.unpack or unpack
    local function store_err(...)
      local args = { n = select("#", ...), ... }
      return err_of(function() r:store(unpack(args, 1, args.n)) end)
    end

    it("store refuses an event that carries an id", function()
      local msg = "bad argument #1 to 'store' (event must not carry an id: ids are assigned by the replayer)"
      assert.are.equal(msg, store_err({ id = "7", data = "x" }))
      assert.are.equal(msg, store_err({ id = 7, data = "x" }))
      assert.are.equal(msg, store_err({ id = "", data = "x" }))
      assert.are.equal(msg, store_err(Event.data("x"):id("7")))
      assert.are.equal(0, r:len())
      assert.are.equal("ep-0", r:last_id())
    end)

    it("store checks the event and the topic", function()
      assert.are.equal("bad argument #1 to 'store' (event (table or sse.Event) expected, got no value)",
        store_err())
      assert.are.equal("bad argument #1 to 'store' (event (table or sse.Event) expected, got nil)",
        store_err(nil))
      assert.are.equal("bad argument #1 to 'store' (event (table or sse.Event) expected, got string)",
        store_err("data"))
      assert.are.equal("bad argument #1 to 'store' (field 'data': string expected, got number "
        .. "(use sse.Event.json for other values))", store_err({ data = 5 }))
      assert.are.equal("bad argument #1 to 'store' (field 'event' must not contain a line break (byte 2))",
        store_err({ event = "a\nb", data = "x" }))
      assert.are.equal("bad argument #1 to 'store' (field 'data' is not valid UTF-8 (byte 1))",
        store_err({ data = "\xff" }))
      assert.are.equal("bad argument #2 to 'store' (string expected, got number)",
        store_err({ data = "x" }, 5))
      assert.are.equal("bad argument #2 to 'store' (string expected, got table)",
        store_err({ data = "x" }, {}))
      assert.are.equal("calling 'store' on bad self (sse.Ring expected, got table)",
        err_of(function() local t = { store = r.store }; t:store({}) end))
      -- nothing was stored, no id was used
      assert.are.equal(0, r:len())
      assert.are.equal("ep-1", r:store({ data = "ok" }))
    end)

    it("store with check_utf8 = false keeps raw bytes", function()
      assert.are.equal("ep-1", r:store({ data = "\xff", check_utf8 = false }))
      assert.are.same({ wire("ep-1", "\xff") }, (collect(r, "ep-0")))
    end)

    it("replay checks last_id, send and topics", function()
      local function replay_err(...)
        local args = { n = select("#", ...), ... }
        return err_of(function() r:replay(unpack(args, 1, args.n)) end)
      end
      assert.are.equal("bad argument #1 to 'replay' (string expected, got no value)", replay_err())
      assert.are.equal("bad argument #1 to 'replay' (string expected, got nil)", replay_err(nil, print))
      assert.are.equal("bad argument #1 to 'replay' (string expected, got number)", replay_err(5, print))
      assert.are.equal("bad argument #2 to 'replay' (function expected, got no value)", replay_err("ep-0"))
      assert.are.equal("bad argument #2 to 'replay' (function expected, got nil)", replay_err("ep-0", nil))
      assert.are.equal("bad argument #2 to 'replay' (function expected, got table)",
        replay_err("ep-0", setmetatable({}, { __call = print })))
      assert.are.equal("bad argument #3 to 'replay' (table expected, got string)",
        replay_err("ep-0", print, "a"))
      assert.are.equal("bad argument #3 to 'replay' (topics[2] must be a string, got number)",
        replay_err("ep-0", print, { "a", 2 }))
    end)

    it("a clock that returns no number is an error", function()
      local rr = MemoryReplayer.new({ clock = function() return "soon" end })
      assert.are.equal("sse.Ring clock must return a number, got string",
        err_of(rr.store, rr, { data = "x" }))
      local rn = MemoryReplayer.new({ clock = function() return 0 / 0 end })
      assert.are.equal("sse.Ring clock must return a number, got nan", err_of(rn.replay, rn, "x", print))
      local rf = MemoryReplayer.new({ clock = function() error("no clock", 0) end })
      assert.are.equal("no clock", err_of(rf.store, rf, { data = "x" }))
      assert.are.equal(0, rf:len())
    end)

    it("new validates each option, naming it", function()
      local cases = {
        { "x", "table expected, got string" },
        { { max_event = 5 }, "unknown option 'max_event'" },
        { { [1] = 5 }, "unknown option '1'" },
        { { max_events = 0 }, "max_events must be an integer from 1 to 1073741824, got 0" },
        { { max_events = 1.5 }, "max_events must be an integer from 1 to 1073741824, got 1.5" },
        { { max_events = 1073741825 }, "max_events must be an integer from 1 to 1073741824, got 1073741825" },
        { { max_events = "10" }, "max_events must be an integer from 1 to 1073741824, got string" },
        { { max_bytes = -1 }, "max_bytes must be an integer from 1 to 9007199254740991, got -1" },
        { { max_bytes = math.huge }, "max_bytes must be an integer from 1 to 9007199254740991, got inf" },
        { { ttl = 0 }, "ttl must be a number > 0 (seconds), got 0" },
        { { ttl = -5 }, "ttl must be a number > 0 (seconds), got -5" },
        { { ttl = 0 / 0 }, "ttl must be a number > 0 (seconds), got nan" },
        { { ttl = "1h" }, "ttl must be a number > 0 (seconds), got string" },
        { { epoch = "" }, "epoch must be 1 to 32 characters of [0-9A-Za-z_]" },
        { { epoch = "a-b" }, "epoch must be 1 to 32 characters of [0-9A-Za-z_]" },
        { { epoch = ("a"):rep(33) }, "epoch must be 1 to 32 characters of [0-9A-Za-z_]" },
        { { epoch = 12 }, "epoch must be 1 to 32 characters of [0-9A-Za-z_]" },
        { { clock = 5 }, "clock must be a function, got number" },
      }
      for _, c in ipairs(cases) do
        assert.are.equal("bad argument #1 to 'new' (" .. c[2] .. ")", err_of(MemoryReplayer.new, c[1]))
      end
      local ok, err = pcall(function() MemoryReplayer.new({ ttl = 0 }) end)
      assert.is_false(ok)
      assert.truthy(err:find("^[^:]*replayer_spec%.lua:%d+: bad argument #1 to 'new'"))
    end)

    it("new accepts the limits and the defaults", function()
      assert.are.same({ max_events = 1000, max_bytes = 4194304, ttl = 3600 }, replayer.DEFAULTS)
      local big = MemoryReplayer.new({ max_events = 1073741824, max_bytes = 9007199254740991,
                                       ttl = math.huge, epoch = ("Z_9"):rep(10) .. "ab" })
      assert.are.equal(("Z_9"):rep(10) .. "ab-1", big:store({ data = "x" }))
      local r1 = MemoryReplayer.new({ max_events = 1, max_bytes = 1, ttl = 1e-9, epoch = "e" })
      assert.are.equal("e-1", r1:store({ data = "x" }))
      assert.are.equal(0, r1:len()) -- larger than max_bytes
      assert.are.equal(getmetatable(big), getmetatable(MemoryReplayer.new()))
    end)

    it("core.ring_new validates too, and requires every limit", function()
      assert.are.equal("bad argument #1 to 'ring_new' (max_events must be an integer from 1 to "
        .. "1073741824, got nil)", err_of(function() core.ring_new({}) end))
      assert.are.equal("bad argument #1 to 'ring_new' (ttl must be a number > 0 (seconds), got nil)",
        err_of(function() core.ring_new({ max_events = 1, max_bytes = 1 }) end))
      assert.are.equal("bad argument #1 to 'ring_new' (epoch must be 1 to 32 characters of [0-9A-Za-z_])",
        err_of(function() core.ring_new({ max_events = 1, max_bytes = 1, ttl = 1, epoch = "-" }) end))
    end)
  end)

  describe("the replayer interface", function()
    it("is satisfied by MemoryReplayer and checkable for others", function()
      assert.are.same({ "store", "replay", "last_id" }, replayer.INTERFACE)
      assert.is_true(replayer.conforms(new()))
      assert.is_true(replayer.conforms({ store = 1, replay = 1, last_id = 1 }))
      assert.are.same({ false, "has no method 'replay'" },
        { replayer.conforms({ store = print, last_id = print }) })
      assert.are.same({ false, "must be a table or userdata, got nil" }, { replayer.conforms(nil) })
    end)
  end)

  describe("against a reference model", function()
    -- A plain-Lua model of the replayer: the same rules, written the obvious way.
    local function model_new(o)
      return { epoch = o.epoch, max_events = o.max_events, max_bytes = o.max_bytes, ttl = o.ttl,
               list = {}, next = 1 }
    end
    local DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
    local function b36(n)
      local s = ""
      repeat
        local d = n % 36
        s = DIGITS:sub(d + 1, d + 1) .. s
        n = (n - d) / 36
      until n == 0
      return s
    end
    local function encode(id, ev)
      local t = {}
      if ev.event then t[#t + 1] = "event: " .. ev.event .. "\n" end
      t[#t + 1] = "id: " .. id .. "\n"
      for line in (ev.data .. "\n"):gmatch("(.-)\n") do t[#t + 1] = "data: " .. line .. "\n" end
      t[#t + 1] = "\n"
      return table.concat(t)
    end
    local function expire(m, now)
      while m.list[1] and now - m.list[1].t >= m.ttl do table.remove(m.list, 1) end
    end
    local function total(m)
      local b = 0
      for _, e in ipairs(m.list) do b = b + #e.bytes end
      return b
    end
    local function model_store(m, ev, topic, now)
      local id = m.epoch .. "-" .. b36(m.next)
      local bytes = encode(id, ev)
      expire(m, now)
      if #bytes > m.max_bytes then
        m.list = {}
      else
        while #m.list > 0 and (#m.list >= m.max_events or total(m) + #bytes > m.max_bytes) do
          table.remove(m.list, 1)
        end
        m.list[#m.list + 1] = { seq = m.next, bytes = bytes, topic = topic, t = now }
      end
      m.next = m.next + 1
      return id
    end
    local function parse(m, id)
      local e, digits = id:match("^([%w_]+)%-([0-9a-z]+)$")
      if not e or #e > 32 or #digits > 13 or (#digits > 1 and digits:sub(1, 1) == "0") then return nil end
      if e ~= m.epoch then return nil end
      return tonumber(digits, 36) -- only small numbers are generated here
    end
    local function model_replay(m, id, topics, now)
      expire(m, now)
      local seq = parse(m, id)
      local first = m.list[1] and m.list[1].seq or m.next
      local found = seq and seq >= first - 1 and seq <= m.next - 1
      local want = {}
      local allowed
      if topics then
        allowed = {}
        for _, t in ipairs(topics) do allowed[t] = true end
      end
      for _, e in ipairs(m.list) do
        if (not found or e.seq > seq) and (not allowed or not e.topic or allowed[e.topic]) then
          want[#want + 1] = e.bytes
        end
      end
      return want, not found
    end

    it("agrees on thousands of random operations", function()
      math.randomseed(20240607)
      local TOPICS = { "a", "b", "c" }
      local ops = 0
      for round = 1, 8 do
        local o = { epoch = "m" .. round, max_events = math.random(1, 30),
                    max_bytes = math.random(20, 600), ttl = math.random(1, 40) }
        local clock = { now = 0 }
        local r = MemoryReplayer.new({ epoch = o.epoch, max_events = o.max_events, max_bytes = o.max_bytes,
                                       ttl = o.ttl, clock = function() return clock.now end })
        local m = model_new(o)
        local issued = {}
        for _ = 1, 1500 do
          ops = ops + 1
          local k = math.random(100)
          if k <= 45 then
            local lines = {}
            for i = 1, math.random(1, 3) do lines[i] = ("x"):rep(math.random(0, 40)) end
            local ev = { data = table.concat(lines, "\n") }
            if math.random(3) == 1 then ev.event = "t" .. math.random(9) end
            local topic = math.random(3) > 1 and TOPICS[math.random(3)] or nil
            local id = r:store(ev, topic)
            assert.are.equal(model_store(m, ev, topic, clock.now), id)
            issued[#issued + 1] = id
          elseif k <= 60 then
            clock.now = clock.now + math.random(0, 6) + (math.random(2) == 1 and 0.5 or 0)
          elseif k <= 62 then
            r:clear()
            m.list = {}
          else
            local id
            local pick = math.random(10)
            if pick <= 6 and #issued > 0 then
              id = issued[#issued - math.random(0, math.min(#issued - 1, o.max_events + 3))]
            elseif pick == 7 then
              id = o.epoch .. "-0"
            elseif pick == 8 then
              id = o.epoch .. "-" .. b36(m.next + math.random(0, 3)) -- the next one is future too
            elseif pick == 9 then
              id = "other-" .. b36(math.random(1, m.next))
            else
              id = ({ "", "junk", o.epoch .. "-", o.epoch .. "-01", o.epoch .. "-Z" })[math.random(5)]
            end
            local topics
            if math.random(2) == 1 then
              topics = {}
              for _, t in ipairs(TOPICS) do if math.random(2) == 1 then topics[#topics + 1] = t end end
            end
            local out, n, err = collect(r, id, topics)
            local want, is_gap = model_replay(m, id, topics, clock.now)
            assert.are.same(want, out)
            assert.are.equal(#want, n)
            assert.are.equal(is_gap and "gap" or nil, err)
          end
          assert.are.equal(#m.list, r:len())
          assert.are.equal(total(m), r:bytes())
          assert.are.equal(m.epoch .. "-" .. b36(m.next - 1), r:last_id())
          assert.are.equal(m.list[1] and m.epoch .. "-" .. b36(m.list[1].seq) or nil, r:first_id())
        end
        r:close()
      end
      assert.are.equal(12000, ops)
    end)
  end)
end)
