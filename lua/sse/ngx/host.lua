--- sse.ngx.host: is this code running inside nginx (lua-nginx-module), and
-- nginx's clock and timers for the parts of sse that need them there.
--
-- Inside nginx, require("luv") succeeds but nothing runs luv's loop: a luv
-- timer or prepare handle never fires. sse.Hub and sse.Stream ask this
-- module which host they are in and use ngx.now and ngx timers there.
local ngx = ngx -- luacheck: ignore (the nginx global, absent elsewhere)

local M = {}

--- true inside an nginx worker or master running lua-nginx-module.
M.active = type(ngx) == "table" and type(ngx.timer) == "table" and type(ngx.timer.at) == "function"
  and type(ngx.now) == "function"

--- Seconds (nginx's cached clock; ms resolution).
function M.now()
  return ngx.now()
end

--- Can this phase start timers? (not init_by_lua: the master has no event loop)
function M.timers_allowed()
  return ngx.get_phase() ~= "init"
end

--- M.warn(msg): into nginx's error log, level error.
function M.warn(msg)
  ngx.log(ngx.ERR, "sse: ", msg)
end

--- M.defer(fn) -> true | nil, err: fn runs at the end of this turn of the
-- worker's event loop (a 0-delay ngx timer; allowed while the worker exits).
function M.defer(fn)
  return ngx.timer.at(0, fn)
end

--- M.every(seconds, fn) -> handle with handle:stop(). fn() runs every
-- `seconds` in this worker, under pcall, until stopped or the worker exits.
-- Raises in init_by_lua (where nginx cannot start timers).
function M.every(seconds, fn)
  local h = { stopped = false }
  local at = ngx.timer.at
  local function tick(premature)
    if premature or h.stopped then return end
    local ok, err = pcall(fn)
    if not ok then ngx.log(ngx.ERR, "sse: timer callback failed: ", tostring(err)) end
    local tok, terr = at(seconds, tick)
    if not tok then ngx.log(ngx.ERR, "sse: cannot restart a timer: ", tostring(terr)) end
  end
  local ok, err = at(seconds, tick)
  if not ok then error("sse: cannot start an nginx timer: " .. tostring(err), 2) end
  function h.stop() h.stopped = true end
  return h
end

return M
