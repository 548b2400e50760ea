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

-- One encoder per method: the C encoder names the method in its errors.
local encoders = {}
for _, name in ipairs({ "event", "data", "push", "retry", "comment" }) do
  encoders[name] = core.encoder(name, 1)
end

-- Encode ev with method fname's encoder and append it; a bad event raises
-- (naming fname) and nothing is appended.
local function append(self, fname, ev)
  local bytes = encoders[fname](ev)
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
  return append(self, "event", { event = etype, data = data })
end

--- :data(data): an unnamed ("message") event.
function Sse:data(data)
  check_self(self, "data")
  check_string(data, 1, "data")
  return append(self, "data", { data = data })
end

--- :push(ev): an sse.Event or plain event table.
function Sse:push(ev)
  check_self(self, "push")
  return append(self, "push", ev)
end

--- :retry(ms): tell the client how long to wait before reconnecting.
function Sse:retry(ms)
  check_self(self, "retry")
  if type(ms) ~= "number" then argerror(1, "retry", "integer expected, got " .. type(ms)) end
  return append(self, "retry", { retry = ms })
end

--- :comment(text): a comment line (ignored by clients; keeps proxies awake).
function Sse:comment(text)
  check_self(self, "comment")
  check_string(text, 1, "comment")
  return append(self, "comment", { comment = text })
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
