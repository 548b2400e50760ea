--- sse.Sse: a buffered event-stream response for a sequence known up front.
--   local res = sse.Sse.new():event("token", "hi"):data("done"):into_response()
-- Each call encodes at once: a bad event raises at the call that added it and
-- leaves what was already accepted untouched.
local core = require("sse.core")

local Sse = {}
Sse.__index = Sse
Sse.__name = "sse.Sse"

--- The response headers of every event stream.
local function stream_headers()
  return {
    ["Content-Type"] = "text/event-stream; charset=utf-8",
    ["Cache-Control"] = "no-cache",
    ["X-Accel-Buffering"] = "no",
  }
end
Sse.headers = stream_headers

local function check_self(self, name)
  if getmetatable(self) ~= Sse then
    error(("calling '%s' on bad self (sse.Sse expected, got %s)"):format(name, type(self)), 3)
  end
end

function Sse.new()
  return setmetatable({ parts = {}, n = 0 }, Sse)
end

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- Encode ev and append it; an encoding error is raised as an error of method
-- `fname` (argument `argn`), and nothing is appended.
local function append(self, fname, argn, ev)
  local ok, bytes = pcall(core.encode, ev)
  if not ok then
    local why = tostring(bytes):match("^bad argument #%d+ to '[^']*' %((.*)%)$") or tostring(bytes)
    argerror(argn, fname, why)
  end
  self.n = self.n + 1
  self.parts[self.n] = bytes
  return self
end

local function check_string(v, n, fname)
  if type(v) ~= "string" then argerror(n, fname, "string expected, got " .. type(v)) end
end

--- :event(type, data): a named event.
function Sse:event(etype, data)
  check_self(self, "event")
  check_string(etype, 1, "event")
  check_string(data, 2, "event")
  return append(self, "event", 1, { event = etype, data = data })
end

--- :data(data): an unnamed ("message") event.
function Sse:data(data)
  check_self(self, "data")
  check_string(data, 1, "data")
  return append(self, "data", 1, { data = data })
end

--- :push(ev): an sse.Event or plain event table.
function Sse:push(ev)
  check_self(self, "push")
  return append(self, "push", 1, ev)
end

--- :retry(ms): tell the client how long to wait before reconnecting.
function Sse:retry(ms)
  check_self(self, "retry")
  if type(ms) ~= "number" or ms < 0 or ms ~= math.floor(ms) then
    argerror(1, "retry", "non-negative integer expected, got "
      .. (type(ms) == "number" and tostring(ms) or type(ms)))
  end
  return append(self, "retry", 1, { retry = ms })
end

--- :comment(text): a comment line (ignored by clients; keeps proxies awake).
function Sse:comment(text)
  check_self(self, "comment")
  check_string(text, 1, "comment")
  return append(self, "comment", 1, { comment = text })
end

--- The body: every event's wire bytes, in order.
function Sse:to_string()
  check_self(self, "to_string")
  return table.concat(self.parts, "", 1, self.n)
end

--- {status = 200, headers = {...}, body = ...}
function Sse:into_response()
  check_self(self, "into_response")
  return { status = 200, headers = stream_headers(), body = self:to_string() }
end

--- Number of events added.
function Sse:len()
  return self.n
end

return Sse
