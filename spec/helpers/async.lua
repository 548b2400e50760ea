-- Sequential specs over a real luv loop: the body runs in a coroutine that
-- waits for conditions while the loop keeps running.
--
--   async.run(10, function()
--     async.wait(function() return got == 3 end, 2, "three events")
--     async.sleep(0.1)
--   end)
local uv = require("luv")
local net = require("helpers.net")

local M = {}

local wake

--- Runs fn in a coroutine inside net.run (fails after timeout seconds).
function M.run(timeout, fn)
  net.run(timeout, function(done)
    local co = coroutine.create(fn)
    local function step()
      local ok, err = coroutine.resume(co)
      if not ok then error(debug.traceback(co, err), 0) end
      if coroutine.status(co) == "dead" then done() end
    end
    wake = net.guarded(step)
    wake()
  end)
end

--- Suspends the body for s seconds.
function M.sleep(s)
  local t = uv.new_timer()
  t:start(math.floor(s * 1000), 0, function()
    t:close()
    wake()
  end)
  coroutine.yield()
end

--- Waits until cond() holds (polled every 5 ms); fails after secs.
-- Returns the seconds it took.
function M.wait(cond, secs, what)
  uv.update_time()
  local start = uv.now()
  while not cond() do
    uv.update_time()
    if uv.now() - start > secs * 1000 then
      error(("timed out after %.1f s waiting for %s"):format(secs, what or "a condition"), 2)
    end
    M.sleep(0.005)
  end
  uv.update_time()
  return (uv.now() - start) / 1000
end

--- Calls fn(cb) and waits for cb to be called; returns cb's arguments.
function M.call(fn, secs)
  local res
  fn(function(...) res = table.pack and table.pack(...) or { n = select("#", ...), ... } end)
  M.wait(function() return res ~= nil end, secs or 5, "a callback")
  return (table.unpack or unpack)(res, 1, res.n)
end

return M
