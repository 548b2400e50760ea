-- A small reference parser of text/event-stream, written from the WHATWG
-- rules (HTML "event stream interpretation"), independent of the C parser.
-- parse(bytes) -> list of dispatched events {type=, data=, id=}, last id, retry
local M = {}

function M.parse(s)
  local events, etype, last_id, retry = {}, "", "", nil
  local buf = {}
  if s:sub(1, 3) == "\239\187\191" then s = s:sub(4) end
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
