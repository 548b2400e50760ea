--- sse.gap: the in-band signal that a reconnecting client missed events.
--
-- The SSE standard has no way to say "your Last-Event-ID is too old". When a
-- replayer answers count, "gap", the stream sends this event:
--
--   event: sse-gap
--   data: {"last_event_id":"<what the client sent>","oldest":<id|null>,"latest":<id|null>}
--
-- It carries no `id:` line, so the client's Last-Event-ID is left alone. The
-- keys are always in this order; the data is one line of JSON (control
-- characters escaped, invalid UTF-8 replaced by U+FFFD). A client handles it
-- with es.addEventListener("sse-gap", ...) and refetches its full state.
--   last_event_id  the Last-Event-ID the client reconnected with
--   oldest         the oldest id the replayer still holds, null when empty
--   latest         the newest id the replayer issued, null when unknown
local core = require("sse.core")

local M = {}

--- The event type of the gap signal.
M.EVENT = "sse-gap"

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function esc_char(c)
  return ESC[c] or ("\\u%04x"):format(c:byte())
end

-- Byte length of the UTF-8 sequence a lead byte announces (0: never valid).
local function seq_len(c)
  if c < 0x80 then return 1 end
  if c >= 0xC2 and c <= 0xDF then return 2 end
  if c >= 0xE0 and c <= 0xEF then return 3 end
  if c >= 0xF0 and c <= 0xF4 then return 4 end
  return 0
end

-- s with each byte that is not part of a valid UTF-8 sequence replaced by
-- U+FFFD (one pass; the C validator judges each candidate sequence).
local function utf8_clean(s)
  if core.utf8_valid(s) then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local len = seq_len(s:byte(i))
    local seg = len > 0 and s:sub(i, i + len - 1) or ""
    if len > 0 and #seg == len and (len == 1 or core.utf8_valid(seg)) then
      out[#out + 1] = seg
      i = i + len
    else
      out[#out + 1] = "\239\191\189"
      i = i + 1
    end
  end
  return table.concat(out)
end

-- A JSON string literal of s: control characters (and DEL), quote and
-- backslash escaped; invalid UTF-8 bytes replaced by U+FFFD.
local function json_string(s)
  return '"' .. utf8_clean(s):gsub('[%c"\\]', esc_char) .. '"'
end

local function json_value(v)
  if v == nil then return "null" end
  return json_string(v)
end

local function check_field(info, fname, name)
  local v = info[name]
  if v ~= nil and type(v) ~= "string" then
    error(("bad argument #1 to '%s' (info.%s must be a string or nil, got %s)")
      :format(fname, name, type(v)), 4)
  end
  return v
end

local function build(info, fname)
  if type(info) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(fname, type(info)), 3)
  end
  local last = check_field(info, fname, "last_event_id")
  local oldest = check_field(info, fname, "oldest")
  local latest = check_field(info, fname, "latest")
  return table.concat({
    '{"last_event_id":', json_value(last),
    ',"oldest":', json_value(oldest),
    ',"latest":', json_value(latest), "}",
  })
end

--- gap.data(info) -> the JSON text of the gap event's data.
function M.data(info)
  return build(info, "data")
end

--- gap.event(info) -> {event = "sse-gap", data = <json>}, a plain event table
-- (no id) for sse.encode, a Stream or sse.Event.new.
-- info = {last_event_id = string?, oldest = string?, latest = string?}
function M.event(info)
  return { event = M.EVENT, data = build(info, "event") }
end

--- gap.info(replayer, last_event_id) -> the info table for gap.event, read
-- from a replayer right after its replay() answered "gap".
function M.info(replayer, last_event_id)
  local oldest = replayer.first_id and replayer:first_id() or nil
  local latest = replayer:last_id()
  return { last_event_id = last_event_id, oldest = oldest, latest = latest }
end

return M
