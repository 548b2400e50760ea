-- A small reference parser of text/event-stream, written from the WHATWG
-- rules (HTML "event stream interpretation"), independent of the C parser.
-- parse(bytes) -> list of dispatched events {type=, data=, id=}, last id, retry
local M = {}

local FFFD = "\239\191\189"

--- The WHATWG Encoding Standard's UTF-8 decoder, byte by byte as the spec
-- writes it (bytes needed/seen, lower/upper boundary), re-encoded as UTF-8:
-- one U+FFFD per error, the byte that caused it processed again. No BOM
-- handling (parse strips it first).
function M.utf8_decode(s)
  local out, needed, seen, lower, upper, start = {}, 0, 0, 0x80, 0xBF, 0
  local i, n = 1, #s
  while i <= n do
    local b = s:byte(i)
    if needed == 0 then
      if b <= 0x7F then
        out[#out + 1] = string.char(b)
      elseif b >= 0xC2 and b <= 0xDF then
        needed, start = 1, i
      elseif b >= 0xE0 and b <= 0xEF then
        if b == 0xE0 then lower = 0xA0 elseif b == 0xED then upper = 0x9F end
        needed, start = 2, i
      elseif b >= 0xF0 and b <= 0xF4 then
        if b == 0xF0 then lower = 0x90 elseif b == 0xF4 then upper = 0x8F end
        needed, start = 3, i
      else
        out[#out + 1] = FFFD
      end
      i = i + 1
    elseif b < lower or b > upper then
      needed, seen, lower, upper = 0, 0, 0x80, 0xBF
      out[#out + 1] = FFFD -- and b is processed again
    else
      lower, upper, seen = 0x80, 0xBF, seen + 1
      i = i + 1
      if seen == needed then
        out[#out + 1] = s:sub(start, i - 1)
        needed, seen = 0, 0
      end
    end
  end
  if needed > 0 then out[#out + 1] = FFFD end
  return table.concat(out)
end

function M.parse(s)
  local events, etype, last_id, retry = {}, "", "", nil
  local buf = {}
  if s:sub(1, 3) == "\239\187\191" then s = s:sub(4) end
  s = M.utf8_decode(s)
  local i, n = 1, #s
  while i <= n do
    -- find the next line end: CRLF, LF or CR
    local j = i
    while j <= n do
      local c = s:byte(j)
      if c == 10 or c == 13 then break end
      j = j + 1
    end
    if j > n then break end -- an unterminated line is never processed
    local line = s:sub(i, j - 1)
    if s:byte(j) == 13 and s:byte(j + 1) == 10 then i = j + 2 else i = j + 1 end

    if line == "" then
      if #buf > 0 then
        events[#events + 1] = { type = etype ~= "" and etype or "message", data = table.concat(buf, "\n"),
                                id = last_id }
      end
      buf, etype = {}, ""
    elseif line:sub(1, 1) ~= ":" then
      local name, value = line:match("^([^:]*):(.*)$")
      if not name then name, value = line, "" end
      if value:sub(1, 1) == " " then value = value:sub(2) end
      if name == "event" then etype = value
      elseif name == "data" then buf[#buf + 1] = value
      elseif name == "id" then
        if not value:find("\0", 1, true) then last_id = value end
      elseif name == "retry" then
        if value:match("^%d+$") then retry = tonumber(value) end
      end
    end
  end
  return events, last_id, retry
end

return M
