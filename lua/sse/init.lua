--- sse: Server-Sent Events for Lua.
-- require("sse") loads only the encoder and builders; the luv-based parts
-- (Hub, Stream, http, client) load on first use, so OpenResty code that
-- never touches them does not need luv.
local core = require("sse.core")

local M = {
  core = core,
  version = core.version,
  --- sse.encode(ev [, opts]) -> wire bytes of one event.
  encode = core.encode,
  --- sse.event_valid(ev) -> true | nil, err: the same rule, without raising.
  event_valid = core.event_valid,
  Event = require("sse.event"),
  Sse = require("sse.builder"),
}

local encode_all = core.encoder("event_stream", 1, true)

--- sse.event_stream(events) -> {status = 200, headers = {...}, body = ...}
-- A bad event raises "bad argument #1 to 'event_stream' (event <i>: ...)".
function M.event_stream(events)
  return { status = 200, headers = M.Sse.headers(), body = encode_all(events) }
end

-- Modules loaded on first use: name -> module path.
local lazy = {
  MemoryReplayer = { "sse.replayer", "MemoryReplayer" },
  gap = { "sse.gap" },
  Hub = { "sse.hub" },
  Stream = { "sse.stream" },
  http = { "sse.http" },
  client = { "sse.client" },
  metrics = { "sse.metrics" },
  catalogue = { "sse.catalogue" },
  ngx = { "sse.ngx" },           -- OpenResty (inside nginx only)
}

return setmetatable(M, {
  __index = function(t, k)
    local spec = lazy[k]
    if not spec then return nil end
    local mod = require(spec[1])
    local v = spec[2] and mod[spec[2]] or mod
    rawset(t, k, v)
    return v
  end,
})
