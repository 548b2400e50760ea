--- sse.catalogue: a typed event catalogue — the event types a stream or hub
-- may send and the shape of each one's JSON data.
--
--   local cat = sse.catalogue.new{ title = "shop", events = {
--     order = { description = "an order changed", data = { fields = {
--       id = "string", total = { type = "number", min = 0 },
--       status = { enum = { "new", "paid", "shipped" } },
--       items = { type = "array", items = { fields = { sku = "string", qty = "integer" } } },
--       note = "string?" } } },
--     tick = { data = "integer" } } }
--   cat:event("tick", 5)                 --> {event = "tick", data = "5"} (raises when invalid)
--   cat:check({event = "tick", data = "x"})  --> nil, "event 'tick': data: not valid JSON"
--   cat:to_json()                        --> a JSON Schema (2020-12) document
--
-- The schema language is sse.catalogue.schema's. Declaring is misuse-checked
-- (raises); cat:check and cat:validate answer nil, err for data that came
-- from elsewhere; a hub or stream bound to a catalogue raises, since the
-- caller controls what it sends.
local schema = require("sse.catalogue.schema")

local M = {}
local Catalogue = {}
Catalogue.__index = Catalogue
Catalogue.__name = "sse.Catalogue"

-- The events the hub writes itself (docs/CORE.md 3): part of every export,
-- so clients get their types too, and never sent through a catalogue.
local BUILTIN = {
  ["sse-join"] = {
    description = "written by the hub: where a fresh client joined the stream",
    data = { fields = { last_event_id = "string" } },
  },
  ["sse-gap"] = {
    description = "written by the hub: events were lost (outside the replay window, or dropped for a slow client)",
    data = { fields = {
      last_event_id = { type = "string", nullable = true },
      oldest = { type = "string", nullable = true },
      latest = { type = "string", nullable = true },
      dropped = { type = "integer", nullable = true, min = 0 },
    } },
  },
}

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Catalogue then
    error(("calling '%s' on bad self (sse.Catalogue expected, got %s)"):format(fname, type(self)), 3)
  end
end

-- An event declaration: {data = schema, description = "..."}; anything else
-- (a type name, a function, a schema table) is the data's schema alone.
local function declaration(name, d, where)
  if type(d) == "table" and d.data ~= nil then
    for k in pairs(d) do
      if k ~= "data" and k ~= "description" then
        error({ decl = ("%s: unknown key '%s' (data, description)"):format(where, tostring(k)) }, 0)
      end
    end
    if d.description ~= nil and type(d.description) ~= "string" then
      error({ decl = where .. ": 'description' must be a string" }, 0)
    end
    return { name = name, description = d.description, data = schema.compile(d.data, where .. ".data") }
  end
  return { name = name, data = schema.compile(d, where) }
end

local function valid_name(name)
  return type(name) == "string" and name ~= "" and not name:find("[\r\n%z]")
end

-- Builds a catalogue from opts (see M.new); nil, message when opts is bad.
local function build(opts)
  if type(opts) ~= "table" then return nil, "table expected, got " .. type(opts) end
  for k in pairs(opts) do
    if k ~= "events" and k ~= "title" and k ~= "description" then
      return nil, ("unknown option '%s' (events, title, description)"):format(tostring(k))
    end
  end
  for _, k in ipairs({ "title", "description" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then return nil, ("'%s' must be a string"):format(k) end
  end
  if type(opts.events) ~= "table" then
    return nil, "field 'events': table expected, got " .. type(opts.events)
  end
  local events, names = {}, {}
  local ok, err = pcall(function()
    for name, d in pairs(opts.events) do
      if not valid_name(name) then
        error({ decl = ("events: event name must be a non-empty string without CR, LF or NUL, got %s")
          :format(type(name) == "string" and ("%q"):format(name) or type(name)) }, 0)
      end
      if name:sub(1, 4) == "sse-" then
        error({ decl = ("events: '%s': names starting with 'sse-' are the hub's own"):format(name) }, 0)
      end
      events[name] = declaration(name, d, "events" .. ((name:match("^[%a_][%w_]*$") and "." .. name)
        or ("[%q]"):format(name)))
      names[#names + 1] = name
    end
    for name, d in pairs(BUILTIN) do
      events[name] = declaration(name, d, name)
      events[name].builtin = true
    end
  end)
  if not ok then
    if type(err) == "table" and err.decl then return nil, err.decl end
    error(err, 0)
  end
  table.sort(names)
  return setmetatable({ title = opts.title, description = opts.description, _events = events,
                        _names = names }, Catalogue)
end

--- catalogue.new{events = {name = declaration, ...}, title =, description =}
-- Raises "bad argument #1 to 'new' (events.order.data.fields.qty: ...)" for
-- a bad declaration.
function M.new(opts)
  local cat, msg = build(opts)
  if not cat then argerror(1, "new", msg) end
  return cat
end

--- Is v an sse.Catalogue?
function M.is(v)
  return getmetatable(v) == Catalogue
end

--- cat:names() -> the declared event types, sorted (the hub's own not included).
function Catalogue:names()
  check_self(self, "names")
  local list = {}
  for i, n in ipairs(self._names) do list[i] = n end
  return list
end

--- cat:has(name) -> true when name is a declared event type.
function Catalogue:has(name)
  check_self(self, "has")
  local d = self._events[name]
  return d ~= nil and not d.builtin
end

-- The declaration of a sendable event type, or nil, message.
local function lookup(self, name)
  local d = self._events[name]
  if not d then return nil, ("event '%s' is not in the catalogue"):format(tostring(name)) end
  if d.builtin then return nil, ("event '%s' is written by the hub itself"):format(name) end
  return d
end

--- cat:validate(name, value) -> true | nil, err. value is the event's data
-- as a Lua value (tables, strings, numbers, booleans, cjson.null).
function Catalogue:validate(name, value)
  check_self(self, "validate")
  local d, err = lookup(self, name)
  if not d then return nil, err end
  local ok, why = schema.check(d.data, value, "data")
  if not ok then return nil, ("event '%s': %s"):format(name, why) end
  return true
end

local decode
local function json_decode(text)
  if not decode then
    local codec = require("cjson").new()
    codec.decode_invalid_numbers(false) -- no NaN, Infinity or hex: not JSON
    decode = codec.decode
  end
  return pcall(decode, text)
end

--- cat:check(ev) -> a plain event table with the data as JSON text, or
-- nil, err. ev is an event (plain table or sse.Event) whose data is JSON
-- text (a string, decoded to be checked, sent as it is) or a Lua value
-- (checked, then encoded). The type is ev.event, "message" when absent. An
-- event with neither event nor data (a comment, a retry) is not typed and
-- passes unchanged.
function Catalogue:check(ev)
  check_self(self, "check")
  if type(ev) ~= "table" then argerror(1, "check", "event (table or sse.Event) expected, got " .. type(ev)) end
  if require("sse.event").is(ev) then ev = ev[1] end
  local out = {}
  for k, v in pairs(ev) do out[k] = v end
  local name, data = ev.event, ev.data
  if name == nil and data == nil then return out end
  if name ~= nil and type(name) ~= "string" then return out end -- the encoder names this misuse
  if name == nil or name == "" then name = "message" end -- what a client dispatches
  local d, err = lookup(self, name)
  if not d then return nil, err end
  local value = data
  if type(data) == "string" then
    local ok, v = json_decode(data)
    if not ok then return nil, ("event '%s': data: not valid JSON"):format(name) end
    value = v
  end
  local ok, why = schema.check(d.data, value, "data")
  if not ok then return nil, ("event '%s': %s"):format(name, why) end
  if type(data) ~= "string" then out.data = schema.encode(d.data, data) end
  return out
end

--- cat:event(name, value [, extra]) -> {event = name, data = JSON, ...}
-- the typed event, ready for any API that takes an event; extra may add
-- id, retry, comment. Raises when the type is unknown or value invalid.
function Catalogue:event(name, value, extra)
  check_self(self, "event")
  if type(name) ~= "string" then argerror(1, "event", "string expected, got " .. type(name)) end
  local d, err = lookup(self, name)
  if not d then argerror(1, "event", err) end
  local ok, why = schema.check(d.data, value, "data")
  if not ok then argerror(2, "event", why) end
  local ev = {}
  if extra ~= nil then
    if type(extra) ~= "table" then argerror(3, "event", "table expected, got " .. type(extra)) end
    for k, v in pairs(extra) do
      if k ~= "id" and k ~= "retry" and k ~= "comment" and k ~= "check_utf8" then
        argerror(3, "event", ("unknown field '%s' (id, retry, comment, check_utf8)"):format(tostring(k)))
      end
      ev[k] = v
    end
  end
  if name ~= "message" then ev.event = name end
  ev.data = schema.encode(d.data, value)
  return ev
end

--- cat:to_json() -> the catalogue as a JSON Schema (draft 2020-12)
-- document (see sse.catalogue.export and the README).
function Catalogue:to_json()
  check_self(self, "to_json")
  return require("sse.catalogue.export").document(self)
end

function Catalogue:__tostring()
  return ("sse.Catalogue(%d events)"):format(#self._names)
end

--- catalogue.load(path) -> a catalogue from a Lua file that returns one or
-- the options of catalogue.new; nil, err when the file cannot be run.
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, res = pcall(chunk)
  if not ok then return nil, tostring(res) end
  if M.is(res) then return res end
  local cat, why = build(res)
  if not cat then return nil, path .. ": " .. why end
  return cat
end

return M
