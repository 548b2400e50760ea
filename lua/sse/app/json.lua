--- sse.app.json: the demo hub's JSON, both ways.
--
-- In: decode_object(body) reads a publish body (a JSON object) with
-- lua-cjson, strictly (no NaN, Infinity or hex numbers), and keeps, for each
-- top-level member, the text of its value as the publisher wrote it, so a
-- non-string `data` reaches subscribers byte for byte: numbers, strings and
-- key order untouched (9007199254740993 stays 9007199254740993); only the
-- insignificant whitespace between tokens is removed, so the event is one
-- line of compact JSON whatever the layout of the body.
--
-- Out: encode(v) with obj(...) and arr(list) gives answers whose key order
-- is fixed (the README shows them), integers written in full.
local cjson = require("cjson")

local M = {}

local strict = cjson.new()
strict.decode_invalid_numbers(false)

local WS = "[ \t\r\n]"

-- Index just past the JSON string that starts at i (s[i] == '"').
local function string_end(s, i)
  local j = i + 1
  while true do
    j = s:find('["\\]', j)
    if s:byte(j) == 92 then -- backslash: skip the escaped character
      j = j + 2
    else
      return j + 1
    end
  end
end

-- Index just past the JSON value that starts at i. The text is known to be
-- valid JSON (cjson read it first).
local function value_end(s, i)
  local c = s:byte(i)
  if c == 34 then return string_end(s, i) end
  if c ~= 123 and c ~= 91 then -- a number or a literal
    return s:find("[,}%] \t\r\n]", i) or #s + 1
  end
  local depth, j = 0, i
  while true do
    j = s:find('[][{}"]', j)
    c = s:byte(j)
    if c == 34 then
      j = string_end(s, j)
    else
      depth = depth + ((c == 123 or c == 91) and 1 or -1)
      j = j + 1
      if depth == 0 then return j end
    end
  end
end

local function skip_ws(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

-- JSON text without the whitespace between tokens; nil, number when a
-- number in it is out of the range of a double (1e400).
local function compact(text)
  local out, i, n = {}, 1, #text
  while i <= n do
    local q = text:find('"', i, true) or n + 1
    local plain = text:sub(i, q - 1):gsub(WS, "")
    for num in plain:gmatch("[-+.%deE]+") do
      local v = tonumber(num)
      if v and (v == math.huge or v == -math.huge) then return nil, num end
    end
    out[#out + 1] = plain
    if q > n then break end
    local e = string_end(text, q)
    out[#out + 1] = text:sub(q, e - 1)
    i = e
  end
  return table.concat(out)
end

--- decode_object(body) -> fields, texts | nil, message. fields: the object
-- decoded by cjson; texts[key]: the compact text of that member's value as
-- written (the last one when a key repeats, as cjson keeps). A number out
-- of range anywhere in a value's text is an error naming the key.
function M.decode_object(body)
  local ok, v = pcall(strict.decode, body)
  if not ok then
    return nil, "body is not valid JSON: " .. tostring(v)
  end
  local i = skip_ws(body, 1)
  if type(v) ~= "table" or body:byte(i) ~= 123 then return nil, "body must be a JSON object" end
  local texts = {}
  i = skip_ws(body, i + 1)
  while body:byte(i) ~= 125 do
    local ke = string_end(body, i)
    local key = strict.decode(body:sub(i, ke - 1))
    i = skip_ws(body, skip_ws(body, ke) + 1) -- past ':'
    local ve = value_end(body, i)
    local text, bad = compact(body:sub(i, ve - 1))
    if not text then return nil, ("field '%s': number out of range: %s"):format(key, bad) end
    texts[key] = text
    i = skip_ws(body, ve)
    if body:byte(i) == 44 then i = skip_ws(body, i + 1) end -- ','
  end
  return v, texts
end

-- Output ---------------------------------------------------------------

local OBJ, ARR = {}, {}

--- obj(k1, v1, k2, v2, ...): an object encoded with its keys in this order
-- (a nil value is written as null).
function M.obj(...)
  return setmetatable({ n = select("#", ...), ... }, OBJ)
end

--- arr(list): an array ({} is [] here, not {}).
function M.arr(list)
  return setmetatable({ list = list }, ARR)
end

M.null = cjson.null

local function number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return ("%d"):format(v) end
  return ("%.14g"):format(v)
end

local function encode(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = cjson.encode(v)
  elseif t == "number" then
    out[#out + 1] = number(v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif getmetatable(v) == OBJ then
    out[#out + 1] = "{"
    for i = 1, v.n, 2 do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = cjson.encode(v[i])
      out[#out + 1] = ":"
      encode(v[i + 1], out)
    end
    out[#out + 1] = "}"
  elseif getmetatable(v) == ARR then
    out[#out + 1] = "["
    for i, x in ipairs(v.list) do
      if i > 1 then out[#out + 1] = "," end
      encode(x, out)
    end
    out[#out + 1] = "]"
  else
    error("sse.app.json: cannot encode a " .. t, 2)
  end
end

--- encode(v) -> JSON text of v (strings, numbers, booleans, null, obj, arr).
function M.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

return M
