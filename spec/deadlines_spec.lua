-- sse.deadlines: the heap against a naive model, and the luv timer on a real loop.
local deadlines = require("sse.deadlines")
local util = require("helpers.util")

describe("sse.deadlines", function()
  it("gives the due keys in deadline order and agrees with a naive model", function()
    local fired = {}
    local d = deadlines.new({ on_due = function(key, at) fired[#fired + 1] = { key, at } end })
    local model = {} -- key -> at
    local seed = 12345
    local function rand(n) -- a small LCG: the same sequence on every Lua
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    local now = 0
    for _ = 1, 4000 do
      local op, key = rand(10), "k" .. rand(300)
      if op < 5 then
        local at = now + rand(1000) / 10
        d:set(key, at)
        model[key] = at
      elseif op < 7 then
        assert.equal(model[key] ~= nil, d:clear(key))
        model[key] = nil
      elseif op < 8 then
        assert.equal(model[key], d:get(key))
      else
        now = now + rand(50) / 10
        fired = {}
        local expect = {}
        for k, at in pairs(model) do
          if at <= now then expect[#expect + 1] = { k, at } end
        end
        assert.equal(#expect, d:run(now))
        for i = 2, #fired do assert.is_true(fired[i - 1][2] <= fired[i][2]) end
        table.sort(expect, function(a, b) return a[1] < b[1] end)
        table.sort(fired, function(a, b) return a[1] < b[1] end)
        assert.same(expect, fired)
        for _, e in ipairs(expect) do model[e[1]] = nil end
      end
      local n, min = 0, nil
      for _, at in pairs(model) do
        n = n + 1
        if not min or at < min then min = at end
      end
      assert.equal(n, d:count())
      assert.equal(min, d:next())
    end
  end)

  it("survives an on_due that raises or sets its key again", function()
    local calls, errors = {}, {}
    local d
    d = deadlines.new({ on_error = function(msg, key) errors[#errors + 1] = { msg, key } end,
      on_due = function(key)
      calls[#calls + 1] = key
      if key == "bad" then error("boom") end
      if key == "again" and #calls < 10 then d:set("again", 0) end
    end })
    d:set("bad", 1)
    d:set("again", 2)
    d:set("ok", 3)
    assert.equal(3, d:run(5)) -- "again" set itself to 0: due at the next run, not this one
    assert.same({ "bad", "again", "ok" }, calls)
    assert.equal(1, #errors)
    assert.equal("bad", errors[1][2])
    assert.truthy(errors[1][1]:find("error in on_due: .*boom"))
    assert.equal(1, d:count())
    assert.equal(1, d:run(5))
  end)

  it("fires on a real luv loop, at the deadlines, one timer for all", function()
    local uv = require("luv")
    local fired = {}
    local d = deadlines.new({ loop = true, on_due = function(key, at)
      local s, us = uv.gettimeofday()
      fired[#fired + 1] = { key = key, late = s + us / 1e6 - at }
    end })
    local s, us = uv.gettimeofday()
    local t0 = s + us / 1e6
    d:set("c", t0 + 0.15)
    d:set("a", t0 + 0.05)
    d:set("b", t0 + 0.10)
    d:set("x", t0 + 0.08)
    d:clear("x")
    d:set("a", t0 + 0.02) -- moved earlier
    local guard, check = uv.new_timer(), uv.new_timer()
    local function stop()
      d:close() -- inside the loop: luv needs a loop turn after a close
      if not check:is_closing() then check:close() end
      if not guard:is_closing() then guard:close() end
    end
    guard:start(2000, 0, stop) -- bounded: the loop ends even if nothing fires
    check:start(10, 10, function() if #fired == 3 then stop() end end)
    uv.run()
    assert.same({ "a", "b", "c" }, { fired[1].key, fired[2].key, fired[3].key })
    for _, f in ipairs(fired) do
      assert.is_true(f.late >= 0 and f.late < 0.5, f.key .. " late by " .. f.late)
    end
  end)

  it("raises on misuse", function()
    util.raises_arg(1, "field 'on_due' must be a function", deadlines.new, {})
    util.raises_arg(1, "unknown option 'ondue'", deadlines.new, { ondue = print })
    local d = deadlines.new({ on_due = print })
    util.raises_arg(1, "key expected", d.set, d, nil, 1)
    util.raises_arg(2, "number expected, got string", d.set, d, "k", "1")
  end)
end)
