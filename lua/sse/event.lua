--- sse.Event: one event, built by chaining.
--   sse.Event.data("hi"):id("42"):event_type("token"):retry(3000)
--   sse.Event.json({ n = 1 })
-- An Event keeps its wire fields in a plain table at self[1] (the C encoder
-- reads it there), so the setter names never collide with field names.
local core = require("sse.core")

local Event = {}
Event.__index = Event
Event.__name = "sse.Event"

local limits = core.limits
local check_event = core.check_event -- the event rule, in C (lua_encode.c)

local cjson_ok, cjson = pcall(require, "cjson")
local json_codec
if cjson_ok then
  json_codec = cjson.new()
  json_codec.encode_sparse_array(false)   -- sparse arrays are an error, not a surprise
  json_codec.encode_number_precision(14)  -- numbers as tostring writes them
end

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function new(fields)
  return setmetatable({ fields }, Event)
end

--- Is v an sse.Event?
function Event.is(v)
  return getmetatable(v) == Event
end

--- Event.new([t]): an event from a plain table {id=, event=, data=, retry=, comment=,
-- check_utf8=}, checked by the rule every API applies (unknown fields are an error).
function Event.new(t)
  if t == nil then return new({}) end
  if type(t) ~= "table" then argerror(1, "new", "table expected, got " .. type(t)) end
  if Event.is(t) then t = t[1] end
  check_event(t, "new", 1)
  local f = {}
  for k, v in pairs(t) do f[k] = v end
  return new(f)
end

--- Event.data(payload): an event carrying a string payload.
function Event.data(payload)
  if type(payload) ~= "string" then
    argerror(1, "data", "string expected, got " .. type(payload)
      .. (payload ~= nil and " (use sse.Event.json for other values)" or ""))
  end
  return new({ data = payload })
end

--- Event.json(value): an event whose data is the compact JSON text of value.
function Event.json(value)
  if not json_codec then error("sse.Event.json needs lua-cjson (apt-get install lua-cjson)", 2) end
  local ok, text = pcall(json_codec.encode, value)
  if not ok then argerror(1, "json", "cannot encode as JSON: " .. tostring(text)) end
  return new({ data = text })
end

--- Encode any value as compact JSON text (the codec Event.json uses).
function Event.to_json(value)
  if not json_codec then error("sse needs lua-cjson for JSON (apt-get install lua-cjson)", 2) end
  return json_codec.encode(value)
end

--- Event.json_text(value) -> text | nil, err: Event.to_json without
-- raising; err is lua-cjson's message, the same on every Lua (the codec is
-- called straight from pcall, so no Lua position is put in front of it).
function Event.json_text(value)
  if not json_codec then error("sse needs lua-cjson for JSON (apt-get install lua-cjson)", 2) end
  local ok, text = pcall(json_codec.encode, value)
  if not ok then return nil, tostring(text) end
  return text
end

local function setter(name, field, check)
  Event[name] = function(self, v)
    if getmetatable(self) ~= Event then
      error(("calling '%s' on bad self (sse.Event expected, got %s)"):format(name, type(self)), 2)
    end
    local ok, expected, got = check(v)
    if not ok then argerror(1, name, expected .. " expected, got " .. (got or type(v))) end
    self[1][field] = v
    return self
  end
end

-- How a bad number reads in an error, the same on every Lua.
local function num_text(v)
  if v ~= v then return "nan" end
  return ("%.14g"):format(v)
end

-- An integer 0 .. max (floats with an integral value included)?
local function is_uint(v, max)
  return type(v) == "number" and v >= 0 and v <= max and v == math.floor(v)
end

local function is_string(v) return type(v) == "string", "string" end
local function is_id(v)
  if type(v) == "number" and not is_uint(v, limits.id_int_max) then
    return false, ("string or integer from 0 to %d"):format(limits.id_int_max), num_text(v)
  end
  return type(v) == "string" or type(v) == "number", "string or integer"
end
local function is_retry(v)
  if type(v) ~= "number" then return false, "integer" end
  return is_uint(v, limits.retry_max), ("integer from 0 to %d"):format(limits.retry_max), num_text(v)
end
local function is_bool(v) return type(v) == "boolean", "boolean" end

setter("id", "id", is_id)
setter("event_type", "event", is_string)
setter("retry", "retry", is_retry)
setter("comment", "comment", is_string)
--- ev:check_utf8(false) marks the payload as trusted bytes: no UTF-8 check.
setter("check_utf8", "check_utf8", is_bool)

--- The wire bytes of this event (raises naming the bad field).
function Event:encode()
  return core.encode(self)
end

--- A copy of the wire fields as a plain table.
function Event:fields()
  local t = {}
  for k, v in pairs(self[1]) do t[k] = v end
  return t
end

function Event:__tostring()
  local f = self[1]
  return ("sse.Event(id=%s, event=%s, %d data bytes)"):format(
    tostring(f.id), tostring(f.event), f.data and #f.data or 0)
end

return Event
