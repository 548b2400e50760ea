--- sse.replayer: replay of missed events by Last-Event-ID.
--
-- A replayer keeps the recent events of a stream so that a client that
-- reconnects with Last-Event-ID gets exactly the events it missed, once, in
-- order -- or learns that it cannot (a "gap"). See docs/REPLAY.md.
--
-- The interface every replayer satisfies (the Hub and Stream use only this):
--   r:store(ev [, topic])             -> id
--   r:replay(last_id, send [, topics]) -> count [, "gap"]
--   r:last_id()                        -> id
-- and, used for the gap event when present:
--   r:first_id()                       -> id or nil
--
-- MemoryReplayer is the in-process implementation: a C ring buffer
-- (csrc/core/ring.c) behind an "sse.Ring" userdata.
local core = require("sse.core")

local M = {}

--- Defaults of MemoryReplayer.new: bounded in count, bytes and age.
M.DEFAULTS = {
  max_events = 1000,            -- events kept
  max_bytes = 4 * 1024 * 1024,  -- sum of the encoded (wire) bytes kept
  ttl = 3600,                   -- seconds an event is kept
}

--- The methods a replayer must have.
M.INTERFACE = { "store", "replay", "last_id" }

local MAX_EVENTS = 1073741824     -- 2^30
local MAX_BYTES = 9007199254740991 -- 2^53 - 1

local function argerror(msg)
  error("bad argument #1 to 'new' (" .. msg .. ")", 3)
end

-- How a bad option value is shown in a message.
local function show(v)
  if type(v) ~= "number" then return type(v) end
  if v ~= v then return "nan" end
  return tostring(v)
end

local function check_int(opts, name, lo, hi, range)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if type(v) ~= "number" or v ~= math.floor(v) or v < lo or v > hi then
    argerror(("%s must be an integer %s, got %s"):format(name, range, show(v)))
  end
  return v
end

local KNOWN = { max_events = true, max_bytes = true, ttl = true, epoch = true, clock = true }

local MemoryReplayer = {}
M.MemoryReplayer = MemoryReplayer

--- MemoryReplayer.new([opts]) -> replayer (an sse.Ring userdata).
-- opts.max_events  integer 1..2^30, default 1000
-- opts.max_bytes   integer >= 1, default 4 MiB (sum of encoded event bytes)
-- opts.ttl         seconds > 0 (math.huge: no age limit), default 3600
-- opts.epoch       1..32 chars of [0-9A-Za-z_]: the id prefix of this
--                  replayer; default: fresh (ms clock + random bits), so ids
--                  of an earlier run of the process are recognised as such
-- opts.clock       function() -> seconds, a monotonic clock (for tests);
--                  default CLOCK_MONOTONIC_COARSE (ms resolution is plenty)
function MemoryReplayer.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then argerror("table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then argerror(("unknown option '%s'"):format(tostring(k))) end
  end
  local o = {
    max_events = check_int(opts, "max_events", 1, MAX_EVENTS, "from 1 to 1073741824"),
    max_bytes = check_int(opts, "max_bytes", 1, MAX_BYTES, "from 1 to 9007199254740991"),
  }
  local ttl = opts.ttl
  if ttl == nil then
    ttl = M.DEFAULTS.ttl
  elseif type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 then
    argerror("ttl must be a number > 0 (seconds), got " .. show(ttl))
  end
  o.ttl = ttl
  local epoch = opts.epoch
  if epoch ~= nil and (type(epoch) ~= "string" or #epoch > 32 or not epoch:match("^[%w_]+$")) then
    argerror("epoch must be 1 to 32 characters of [0-9A-Za-z_]")
  end
  o.epoch = epoch
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    argerror("clock must be a function, got " .. type(opts.clock))
  end
  o.clock = opts.clock
  return core.ring_new(o)
end

--- replayer.conforms(r) -> true, or false and why not.
-- For code that accepts any replayer (a Redis one, say):
--   local ok, why = replayer.conforms(r)
--   if not ok then error("bad argument #1 to 'new' (replayer " .. why .. ")", 2) end
function M.conforms(r)
  local t = type(r)
  if t ~= "table" and t ~= "userdata" then
    return false, "must be a table or userdata, got " .. t
  end
  for _, name in ipairs(M.INTERFACE) do
    local ok, f = pcall(function() return r[name] end)
    if not ok or f == nil then return false, ("has no method '%s'"):format(name) end
  end
  return true
end

return M
