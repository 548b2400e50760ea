-- Issue 9 findings in the core's area: no sequence of Lua calls, internal
-- objects included, may corrupt memory or raise a misleading error.
local sse = require("sse")
local util = require("helpers.util")

local function sink()
  return sse.Stream.new({ writer = function() return true end })
end

describe("re-entry and options", function()
  it("a hub whose MemoryReplayer has its own clock broadcasts", function()
    local t = 100
    local r = sse.MemoryReplayer.new({ epoch = "ep", ttl = 10, clock = function() return t end })
    local hub = sse.Hub.new({ replayer = r, flush = "immediate" })
    local n, id = hub:broadcast({ data = "x" })
    assert.are.equal(0, n)
    assert.are.equal("ep-1", id)
    t = 200 -- the ring reads its clock: the event expired
    hub:broadcast({ data = "y" })
    assert.are.equal(1, r:len())
    hub:close()
  end)

  it("an event whose __index would close the subscriber during send", function()
    local st = sink()
    local called = false
    local ev = setmetatable({}, { __index = function(_, k)
      called = true
      if k == "data" then st:close("gone") return "x" end
    end })
    -- the C core reads an event's fields raw: no Lua runs inside send
    assert.is_true(st:send(ev))
    assert.is_false(called)
    -- and a closed stream answers, not crashes
    st:close("gone")
    assert.are.same({ nil, "closed" }, { st:send({ data = "x" }) })
  end)

  it("an event whose __index closes the hub's core during publish", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    hub:register(sink())
    local ev = setmetatable({}, { __index = function(_, k)
      if k == "data" then hub._core:close() return "x" end
    end })
    local ok, n, err = pcall(hub.broadcast, hub, ev)
    assert.is_true(ok)
    assert.are.same({ nil, "closed" }, { n, err })
  end)

  it("hub:close() inside on_broadcast", function()
    local hub = sse.Hub.new({ flush = "immediate" })
    hub.on_broadcast = function() hub:close() end
    assert.are.same({ nil, "closed" }, { hub:broadcast({ data = "x" }) })
  end)

  it("refuses NaN and infinite outbox_limit and write_timeout, naming the field", function()
    local w = function() return true end
    util.raises_arg(1, "field 'outbox_limit': positive number expected, got nan",
      sse.Stream.new, { writer = w, outbox_limit = 0 / 0 })
    util.raises_arg(1, "field 'outbox_limit': positive number expected, got inf",
      sse.Stream.new, { writer = w, outbox_limit = math.huge })
    util.raises_arg(1, "field 'write_timeout': positive number of seconds or false expected, got nan",
      sse.Stream.new, { writer = w, write_timeout = 0 / 0 })
    util.raises_arg(1, "field 'write_timeout': positive number of seconds or false expected, got inf",
      sse.Stream.new, { writer = w, write_timeout = math.huge })
    util.raises_arg(1, "field 'outbox_limit': positive number expected, got nan",
      sse.Hub.new, { outbox_limit = 0 / 0 })
  end)
end)
