--- sse.catalogue.schema: the small schema language of event catalogues —
-- compile a declaration, validate a Lua value against it, encode a valid
-- value as JSON guided by it.
--
-- A schema is a type name ("string", "number", "integer", "boolean",
-- "object", "array", "any"; a trailing "?" makes a field optional), a
-- validator function (any value it accepts), or a table:
--
--   { type = "string", optional = true, nullable = true, description = "...",
--     enum = { "a", "b" }, min_length = 1, max_length = 80,   -- strings (code points)
--     min = 0, max = 10,                                       -- number, integer
--     fields = { name = <schema>, ... }, additional = false,   -- object
--     items = <schema>, min_items = 0, max_items = 100,        -- array
--     check = function(v) return true | nil, "why" end }       -- after the rest
--
-- Errors name the path of the value: data.items[2].qty (1-based indices).
local M = {}

local cjson_ok, cjson = pcall(require, "cjson")
local NULL = cjson_ok and cjson.null or nil

local TYPES = { string = true, number = true, integer = true, boolean = true, object = true,
                array = true, any = true }
local KEYS = {
  type = true, optional = true, nullable = true, description = true, enum = true, check = true,
  min_length = true, max_length = true, min = true, max = true,
  fields = true, additional = true, items = true, min_items = true, max_items = true,
}
-- the keys that only apply to some types
local ONLY = {
  min_length = "string", max_length = "string", min = "number", max = "number",
  fields = "object", additional = "object", items = "array", min_items = "array",
  max_items = "array",
}

M.NULL = NULL

-- A path element as it reads in a message: .name, ["odd name"], [3].
local function step(k)
  if type(k) == "number" then return "[" .. k .. "]" end
  if k:match("^[%a_][%w_]*$") then return "." .. k end
  return ('[%q]'):format(k)
end

--- path(root, stack, n) -> "data.items[2].qty"
function M.path(root, stack, n)
  local parts = { root }
  for i = 1, n do parts[#parts + 1] = step(stack[i]) end
  return table.concat(parts)
end

-- --- compiling ------------------------------------------------------------

local compile

local function decl_error(where, msg)
  error({ decl = where .. ": " .. msg }, 0)
end

local function check_count(where, key, v)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0 or v ~= math.floor(v)) then
    decl_error(where, ("'%s' must be a non-negative integer"):format(key))
  end
end

local function check_bound(where, key, v)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge) then
    decl_error(where, ("'%s' must be a finite number"):format(key))
  end
end

-- The type an enum implies when none is given: its values' common type.
local function enum_type(values)
  local t
  for _, v in ipairs(values) do
    local vt = type(v) == "number" and "number" or type(v)
    if t and vt ~= t then return "any" end
    t = vt
  end
  return t or "any"
end

--- compile(decl, where) -> a normalized schema table; raises {decl = msg}
-- naming where in the declaration.
function compile(decl, where)
  if type(decl) == "function" then
    return { type = "any", check = decl }
  end
  if type(decl) == "string" then
    local name, q = decl:match("^(%a+)(%??)$")
    if not name or not TYPES[name] then
      decl_error(where, ("unknown type '%s'"):format(decl))
    end
    return { type = name, optional = q == "?" }
  end
  if type(decl) ~= "table" then
    decl_error(where, "schema (type name, table or function) expected, got " .. type(decl))
  end
  for k in pairs(decl) do
    if not KEYS[k] then decl_error(where, ("unknown schema key '%s'"):format(tostring(k))) end
  end
  local s = { optional = decl.optional, nullable = decl.nullable, description = decl.description,
              check = decl.check }
  for _, k in ipairs({ "optional", "nullable" }) do
    if s[k] ~= nil and type(s[k]) ~= "boolean" then decl_error(where, ("'%s' must be a boolean"):format(k)) end
  end
  if s.description ~= nil and type(s.description) ~= "string" then
    decl_error(where, "'description' must be a string")
  end
  if s.check ~= nil and type(s.check) ~= "function" then decl_error(where, "'check' must be a function") end
  local t = decl.type
  if decl.enum ~= nil then
    local e = decl.enum
    if type(e) ~= "table" or #e == 0 then decl_error(where, "'enum' must be a non-empty list") end
    s.enum, s.enum_set = {}, {}
    for i, v in ipairs(e) do
      if type(v) ~= "string" and type(v) ~= "boolean" and (type(v) ~= "number" or v ~= v) then
        decl_error(where, ("enum[%d] must be a string, number or boolean"):format(i))
      end
      s.enum[i] = v
      s.enum_set[v] = true
    end
    if t == nil then t = enum_type(e) end
  end
  if t == nil then
    if decl.fields ~= nil then t = "object" elseif decl.items ~= nil then t = "array" else t = "any" end
  end
  if type(t) ~= "string" or not TYPES[t] then decl_error(where, ("unknown type '%s'"):format(tostring(t))) end
  s.type = t
  for k, need in pairs(ONLY) do
    if decl[k] ~= nil and need ~= t and not (need == "number" and t == "integer") then
      decl_error(where, ("'%s' applies to %s, not %s"):format(k, need == "number" and "numbers" or need .. "s", t))
    end
  end
  for _, k in ipairs({ "min_length", "max_length", "min_items", "max_items" }) do
    check_count(where, k, decl[k])
    s[k] = decl[k]
  end
  check_bound(where, "min", decl.min)
  check_bound(where, "max", decl.max)
  s.min, s.max = decl.min, decl.max
  if t == "object" then
    local fields = decl.fields
    if fields ~= nil and type(fields) ~= "table" then decl_error(where, "'fields' must be a table") end
    if decl.additional ~= nil and type(decl.additional) ~= "boolean" then
      decl_error(where, "'additional' must be a boolean")
    end
    s.fields, s.names = {}, {}
    for name, f in pairs(fields or {}) do
      if type(name) ~= "string" then decl_error(where, "field names must be strings") end
      s.fields[name] = compile(f, where .. ".fields" .. step(name))
      s.names[#s.names + 1] = name
    end
    table.sort(s.names)
    -- declared fields: strict by default (a typo is an error); none: any object
    if decl.additional == nil then s.additional = fields == nil else s.additional = decl.additional end
  elseif t == "array" and decl.items ~= nil then
    s.items = compile(decl.items, where .. ".items")
  end
  return s
end
M.compile = compile

-- --- validating -------------------------------------------------------------

-- A finite number as JSON writes it: integers in full, others in the
-- fewest digits that read back the same.
local function number(v)
  if v == math.floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return ("%d"):format(v) end
  for p = 15, 17 do
    local s = ("%." .. p .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
end
M.number = number

local function describe(v)
  if v == NULL and NULL ~= nil then return "null" end
  local t = type(v)
  if t == "string" then
    if #v > 40 then return ("string %q…"):format(v:sub(1, 40)) end
    return ("%q"):format(v)
  end
  if t == "number" then return v == v and v ~= math.huge and v ~= -math.huge and number(v) or tostring(v) end
  if t == "boolean" then return tostring(v) end
  return t
end

-- code points of a (UTF-8) string: the bytes that do not continue one
local function length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

-- Is t a JSON array (keys exactly 1..n)? An empty table is both.
local function is_array(t)
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then return false end
  end
  return true
end

local function is_object(t)
  for k in pairs(t) do
    if type(k) ~= "string" then return false end
  end
  return true
end

local function is_json(v, depth)
  local t = type(v)
  if t == "string" or t == "boolean" then return true end
  if t == "number" then return v == v and v ~= math.huge and v ~= -math.huge end
  if v == NULL and NULL ~= nil then return true end
  if t ~= "table" or depth > 64 then return false end
  local arr, obj = is_array(v), is_object(v)
  if not arr and not obj then return false end
  for _, x in pairs(v) do
    if not is_json(x, depth + 1) then return false end
  end
  return true
end

local validate

-- The type check of s for v (non-nil, non-null): nil or a message.
local function check_type(s, v)
  local t, vt = s.type, type(v)
  if t == "any" then
    if not is_json(v, 0) then return "JSON value expected, got " .. describe(v) end
  elseif t == "integer" or t == "number" then
    if vt ~= "number" then return t .. " expected, got " .. describe(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "finite number expected, got " .. tostring(v) end
    if t == "integer" and v ~= math.floor(v) then return "integer expected, got " .. number(v) end
  elseif t == "object" then
    if vt ~= "table" or not is_object(v) then
      return "object expected, got " .. (vt == "table" and "array" or describe(v))
    end
  elseif t == "array" then
    if vt ~= "table" or not is_array(v) then
      return "array expected, got " .. (vt == "table" and "object" or describe(v))
    end
  elseif vt ~= t then
    return t .. " expected, got " .. describe(v)
  end
end

-- "at least 2 items expected, got 1"
local function at(which, bound, what, n)
  return ("at %s %d %s%s expected, got %d"):format(which, bound, what, bound == 1 and "" or "s", n)
end

-- Constraints beyond the type: nil or a message (children checked by validate).
local function check_bounds(s, v)
  if s.enum and not s.enum_set[v] then
    local list = {}
    for i, e in ipairs(s.enum) do list[i] = describe(e) end
    return ("one of %s expected, got %s"):format(table.concat(list, ", "), describe(v))
  end
  local t = s.type
  if t == "string" then
    local n = (s.min_length or s.max_length) and length(v)
    if s.min_length and n < s.min_length then return at("least", s.min_length, "character", n) end
    if s.max_length and n > s.max_length then return at("most", s.max_length, "character", n) end
  elseif t == "number" or t == "integer" then
    if s.min and v < s.min then return ("at least %s expected, got %s"):format(number(s.min), number(v)) end
    if s.max and v > s.max then return ("at most %s expected, got %s"):format(number(s.max), number(v)) end
  elseif t == "array" then
    local n = #v
    if s.min_items and n < s.min_items then return at("least", s.min_items, "item", n) end
    if s.max_items and n > s.max_items then return at("most", s.max_items, "item", n) end
  end
end

-- validate(s, v, stack, n) -> nil, or message, depth of the path in stack
function validate(s, v, stack, n)
  if v == nil then return "required field missing", n end
  if v == NULL and NULL ~= nil then
    if s.nullable or s.type == "any" and not s.enum then return nil end
    return "null not allowed", n
  end
  local err = check_type(s, v) or check_bounds(s, v)
  if err then return err, n end
  if s.type == "object" then
    local fields = s.fields
    for _, name in ipairs(s.names) do
      local f, x = fields[name], v[name]
      if x ~= nil or not f.optional then
        stack[n + 1] = name
        local e, d = validate(f, x, stack, n + 1)
        if e then return e, d end
      end
    end
    if not s.additional then
      -- report the first unknown field in a stable order
      local extra
      for k in pairs(v) do
        if not fields[k] and (extra == nil or k < extra) then extra = k end
      end
      if extra then
        stack[n + 1] = extra
        return "unknown field", n + 1
      end
    end
  elseif s.type == "array" and s.items then
    for i = 1, #v do
      stack[n + 1] = i
      local e, d = validate(s.items, v[i], stack, n + 1)
      if e then return e, d end
    end
  end
  if s.check then
    local ok, res, why = pcall(s.check, v)
    if not ok then return "check failed: " .. tostring(res), n end
    if not res then return why ~= nil and tostring(why) or "rejected by its check", n end
  end
  return nil
end

--- check(s, v, root) -> true | nil, "root.path: message"
function M.check(s, v, root)
  local stack = {}
  local err, n = validate(s, v, stack, 0)
  if not err then return true end
  return nil, M.path(root, stack, n) .. ": " .. err
end

-- --- encoding ---------------------------------------------------------------

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
              ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end
M.quote = quote


-- Appends the JSON of v (valid for s, or any JSON value when s is nil) to out.
local function encode(s, v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = quote(v)
  elseif t == "number" then
    out[#out + 1] = number(v)
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t ~= "table" then
    out[#out + 1] = "null"
  else
    local st = s and s.type
    if st == "array" or st ~= "object" and next(v) ~= nil and is_array(v) then
      local items = s and s.items
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(items, v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      local fields = s and s.fields
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(k)
        out[#out + 1] = ":"
        encode(fields and fields[k], v[k], out)
      end
      out[#out + 1] = "}"
    end
  end
end

--- encode(s, v) -> compact JSON text of v (already valid for s); object
-- keys sorted, so the same value always gives the same bytes.
function M.encode(s, v)
  local out = {}
  encode(s, v, out)
  return table.concat(out)
end

return M
