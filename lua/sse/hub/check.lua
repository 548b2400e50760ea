--- sse.hub.check: the argument checks shared by sse.Hub's parts (sse.hub,
-- sse.hub.publish, sse.hub.attach) and Hub.new's options, in one place.
-- Each raises "bad argument #N to 'fname' (...)" at the caller of the
-- public method that called it, as the README's error contract says.
local core = require("sse.core")
local Stream = require("sse.stream")
local Event = require("sse.event")
local host = require("sse.ngx.host")

local M = {}

local uv_ok = pcall(require, "luv")

-- The in-memory replayer's type: the hub hands it to the C core, which
-- stores and fans out one and the same frame.
M.RING_MT = core.ring_metatable

-- An asynchronous backend (docs/CORE.md 3) answers replays later.
local ASYNC = { "publish", "replay_async", "last_id" }
local SYNC = { "store", "replay", "last_id" }

function M.is_async(r)
  return type(r) == "table" and type(r.replay_async) == "function"
end

-- level: 3 (the default) when the public method called argerror itself.
function M.argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end
local argerror = M.argerror

--- check.self_of(Hub) -> check_self(self, fname): raises unless self is an
-- open hub of that class.
function M.self_of(Hub)
  return function(self, fname)
    if getmetatable(self) ~= Hub then
      error(("calling '%s' on bad self (sse.Hub expected, got %s)"):format(fname, type(self)), 3)
    end
    if self._closed then error(("calling '%s' on a closed hub"):format(fname), 3) end
  end
end

function M.stream(s, n, fname)
  if not Stream.is(s) then argerror(n, fname, "sse.Stream expected, got " .. type(s)) end
end

function M.topic(t, n, fname)
  if type(t) ~= "string" then argerror(n, fname, "topic (string) expected, got " .. type(t)) end
end

--- The event's fields as a plain table (copied, so an id can be added).
function M.fields_of(ev, n, fname)
  if type(ev) ~= "table" then argerror(n, fname, "event (table or sse.Event) expected, got " .. type(ev)) end
  local src = Event.is(ev) and ev[1] or ev
  return { id = src.id, event = src.event, data = src.data, retry = src.retry,
           comment = src.comment, check_utf8 = src.check_utf8 }
end

-- Raised from options(), at the caller of Hub.new.
local function bad(msg)
  argerror(1, "new", msg, 5)
end

--- check.options(opts, default_limit) -> {replayer, catalogue, limit,
-- policy, keepalive, flush, envelope}: Hub.new's options, checked and with
-- their defaults (see Hub.new).
function M.options(opts, default_limit)
  if type(opts) ~= "table" then bad("table expected, got " .. type(opts)) end
  local r = opts.replayer
  if r ~= nil then
    for _, m in ipairs(M.is_async(r) and ASYNC or SYNC) do
      if type(r) ~= "table" and type(r) ~= "userdata" or type(r[m]) ~= "function" then
        bad(("field 'replayer' must have a '%s' method"):format(m))
      end
    end
  end
  core.check_options(opts, "new") -- outbox_limit, slow_policy: one rule, in C
  local cat = opts.catalogue
  if cat ~= nil and not require("sse.catalogue").is(cat) then
    bad("field 'catalogue': sse.catalogue expected, got " .. type(cat))
  end
  local ka = opts.keepalive
  if ka ~= nil and (type(ka) ~= "number" or ka <= 0) then
    bad("field 'keepalive': positive number of seconds expected")
  end
  local flush = opts.flush or (host.active and "ngx" or uv_ok and "loop" or "immediate")
  if flush ~= "loop" and flush ~= "immediate" and flush ~= "ngx" then
    bad("field 'flush': \"loop\", \"ngx\" or \"immediate\" expected, got " .. tostring(flush))
  end
  if flush == "loop" and not uv_ok then bad("flush = \"loop\" needs luv") end
  if flush == "loop" and host.active then
    bad("field 'flush': \"loop\" cannot work inside nginx (nothing runs the luv loop there); "
      .. "use \"ngx\" (the default there) or \"immediate\"")
  end
  if flush == "ngx" and not host.active then bad("flush = \"ngx\" works inside nginx only") end
  if ka and host.active and not host.timers_allowed() then
    bad("field 'keepalive': nginx cannot start timers in init_by_lua; create the hub in "
      .. "init_worker_by_lua* or in a handler (each worker has its own)")
  end
  if opts.envelope ~= nil and type(opts.envelope) ~= "boolean" then
    bad("field 'envelope': boolean expected, got " .. type(opts.envelope))
  end
  return { replayer = r, catalogue = cat, limit = opts.outbox_limit or default_limit,
           policy = opts.slow_policy or "close", keepalive = ka, flush = flush,
           envelope = opts.envelope or false }
end

return M
