--- sse.catalogue.export: a catalogue as a JSON Schema (draft 2020-12)
-- document, for clients to generate types from (README: "The catalogue
-- document").
--
--   {"$schema": "https://json-schema.org/draft/2020-12/schema",
--    "title": ..., "description": ...,
--    "x-sse-catalogue": 1,
--    "$defs": {"<event type>": <schema of its data>, ...},
--    "oneOf": [{"title": "<event type>", "description": ..., "type": "object",
--               "properties": {"event": {"const": "<event type>"},
--                              "data": {"$ref": "#/$defs/<event type>"}},
--               "required": ["event", "data"], "additionalProperties": false}, ...]}
--
-- One alternative of oneOf is one SSE event as a client sees it: `event` its
-- type (MessageEvent.type), `data` JSON.parse of its data. The hub's own
-- events (sse-join, sse-gap) are included with "x-sse-builtin": true; a
-- schema with a check function carries "x-sse-check": true (the function
-- runs on the server only). Keys are written in a fixed order, so the same
-- catalogue always gives the same bytes.
local schema = require("sse.catalogue.schema")

local M = {}

local quote, number = schema.quote, schema.number

-- An ordered object: obj(k1, v1, k2, v2, ...) with nil values left out;
-- values are already JSON text.
local function obj(...)
  local parts, n = {}, select("#", ...)
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v ~= nil then parts[#parts + 1] = quote(k) .. ":" .. v end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function arr(list)
  return "[" .. table.concat(list, ",") .. "]"
end

local function scalar(v)
  if type(v) == "string" then return quote(v) end
  if type(v) == "number" then return number(v) end
  return tostring(v)
end

local JSON_TYPE = { string = "string", number = "number", integer = "integer", boolean = "boolean",
                    object = "object", array = "array" }

-- The JSON Schema of a compiled schema s.
local function convert(s)
  local t = JSON_TYPE[s.type]
  local jtype
  if t then
    jtype = s.nullable and arr({ quote(t), quote("null") }) or quote(t)
  end
  local enum
  if s.enum then
    local list = {}
    for i, v in ipairs(s.enum) do list[i] = scalar(v) end
    if s.nullable then list[#list + 1] = "null" end
    enum = arr(list)
  end
  local props, required, additional, items
  if s.type == "object" then
    local p, r = {}, {}
    for _, name in ipairs(s.names) do
      local f = s.fields[name]
      p[#p + 1] = quote(name) .. ":" .. convert(f)
      if not f.optional then r[#r + 1] = quote(name) end
    end
    if #s.names > 0 then props = "{" .. table.concat(p, ",") .. "}" end
    if #r > 0 then required = arr(r) end
    if not s.additional then additional = "false" end
  elseif s.type == "array" and s.items then
    items = convert(s.items)
  end
  local function n(v) return v ~= nil and number(v) or nil end
  return obj(
    "description", s.description and quote(s.description),
    "type", jtype,
    "enum", enum,
    "minimum", n(s.min), "maximum", n(s.max),
    "minLength", n(s.min_length), "maxLength", n(s.max_length),
    "properties", props, "required", required, "additionalProperties", additional,
    "items", items, "minItems", n(s.min_items), "maxItems", n(s.max_items),
    "x-sse-check", s.check and "true" or nil)
end
M.convert = convert

-- A JSON Pointer token in a URI fragment (RFC 6901 5): ~ and / escaped,
-- then what a fragment may not hold percent-encoded.
local function ref(name)
  local token = name:gsub("~", "~0"):gsub("/", "~1")
  token = token:gsub("[^%w%-%._~!%$&'%(%)%*%+,;=:@/]", function(c) return ("%%%02X"):format(c:byte()) end)
  return "#/$defs/" .. token
end

--- document(cat) -> the JSON text of the catalogue cat.
function M.document(cat)
  local names = {}
  for name in pairs(cat._events) do names[#names + 1] = name end
  table.sort(names)
  local defs, alts = {}, {}
  for _, name in ipairs(names) do
    local d = cat._events[name]
    defs[#defs + 1] = quote(name) .. ":" .. convert(d.data)
    alts[#alts + 1] = obj(
      "title", quote(name),
      "description", d.description and quote(d.description),
      "type", quote("object"),
      "properties", obj("event", obj("const", quote(name)), "data", obj("$ref", quote(ref(name)))),
      "required", arr({ quote("event"), quote("data") }),
      "additionalProperties", "false",
      "x-sse-builtin", d.builtin and "true" or nil)
  end
  return obj(
    "$schema", quote("https://json-schema.org/draft/2020-12/schema"),
    "title", cat.title and quote(cat.title),
    "description", cat.description and quote(cat.description),
    "x-sse-catalogue", "1",
    "$defs", "{" .. table.concat(defs, ",") .. "}",
    "oneOf", arr(alts))
end

return M
