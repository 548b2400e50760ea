--- sse.Stream: one client connection receiving events.
--
--   Stream.new{handle = tcp}        -- a luv TCP/pipe handle: the C core writes it
--   Stream.new{writer = fn}         -- any transport: fn(bytes) -> true | nil, err
--   Stream.new{on_ready = fn}       -- pull: fn(stream) wakes the host, which calls take()
--
-- A stream is a userdata of the C core (csrc/lua/lua_stream.c): its state,
-- outbox and transport live there, and so do send, take, close, on_close,
-- stats. This file adds the shorthands and the keep-alive timers to the same
-- method table. The stream owns its handle: it writes to it and closes it.
-- Sends return true, or nil, "closed" once the stream is closed (by close(),
-- a failed write, or the slow-consumer policy). Misuse raises.
local core = require("sse.core")

local MT = core.stream_metatable
local Stream = core.stream_methods

Stream.DEFAULT_OUTBOX_LIMIT = core.limits.stream_outbox_limit
-- seconds sent data may stay unacknowledged before the connection fails
-- (TCP_USER_TIMEOUT): with keep-alive comments flowing, a client that
-- vanished without FIN is closed within keepalive + this
Stream.DEFAULT_WRITE_TIMEOUT = 60
-- how long close() waits for queued bytes to reach a client that stopped reading
Stream.CLOSE_GRACE_MS = core.limits.close_grace_ms

local uv_ok, uv = pcall(require, "luv")
if not uv_ok then uv = nil end

-- Inside nginx luv loads but nothing runs its loop: timers come from nginx
-- there (sse.ngx.host).
local host = require("sse.ngx.host")

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

local function check_self(self, fname)
  if getmetatable(self) ~= MT then
    error(("calling '%s' on bad self (sse.Stream expected, got %s)"):format(fname, type(self)), 3)
  end
end

local function warn(msg)
  if host.active then return host.warn(msg) end -- nginx's error log
  io.stderr:write("sse: ", msg, "\n")
end

local limits = core.limits
local GZ_FIELDS = {
  { "level", 0, 9, limits.gzip_level_default },
  { "window_bits", limits.gzip_window_min, limits.gzip_window_max, limits.gzip_window_default },
  { "mem_level", limits.gzip_mem_level_min, limits.gzip_mem_level_max, limits.gzip_mem_level_default },
}

-- opts.compress: nil/false (none), true (the defaults) or {level =,
-- window_bits =, mem_level =}; a push (luv handle) stream only. Returns
-- {level, window_bits, mem_level} or nil; raises naming the field.
local function compress_options(c, handle, fname)
  if c == nil or c == false then return nil end
  local field = fname and "compress" or "field 'compress'"
  fname = fname or "new"
  if c ~= true and type(c) ~= "table" then
    argerror(1, fname, field .. ": true or a table {level, window_bits, mem_level} expected, got "
      .. type(c), 3)
  end
  if handle == nil then argerror(1, fname, field .. ": only a luv handle stream is compressed", 3) end
  local t = c == true and {} or c
  for k in pairs(t) do
    local known = false
    for _, f in ipairs(GZ_FIELDS) do known = known or f[1] == k end
    if not known then argerror(1, fname, ("%s: unknown field '%s'"):format(field, tostring(k)), 3) end
  end
  local out = {}
  for i, f in ipairs(GZ_FIELDS) do
    local v = t[f[1]]
    if v == nil then v = f[4] end
    if type(v) ~= "number" or v ~= math.floor(v) or v < f[2] or v > f[3] then
      argerror(1, fname, ("%s: '%s' must be an integer in %d..%d, got %s"):format(
        field, f[1], f[2], f[3], tostring(v)), 3)
    end
    out[i] = v
  end
  return out
end

-- stream -> its sse.catalogue (typed streams only)
local catalogue_of = setmetatable({}, { __mode = "k" })

local new_stream = core.stream_new

--- Stream.new(opts): exactly one of opts.handle (luv tcp/pipe/tty),
-- opts.writer (function) or opts.on_ready (function); opts.head (bytes
-- queued first: an HTTP response head), opts.last_event_id,
-- opts.outbox_limit (bytes, default 1 MiB), opts.slow_policy ("close" |
-- "drop_oldest"), opts.write_timeout (seconds sent data may stay
-- unacknowledged on a TCP handle, default 60; false: the kernel's ~15
-- minutes): checked in C, naming 'new' and the field. opts.compress (a luv
-- handle stream: true or {level, window_bits, mem_level}: what follows
-- opts.head is gzip-compressed, sync-flushed per write; the HTTP layer says
-- so in the head), opts.catalogue (sse.catalogue: sends are typed),
-- opts.envelope (true: envelope mode, every event as `event: sse` with its
-- topic, type and data in JSON; the head is written as it is).
function Stream.new(opts)
  local gz, cat
  if type(opts) == "table" then
    gz = compress_options(opts.compress, opts.handle)
    cat = opts.catalogue
    if cat ~= nil and not require("sse.catalogue").is(cat) then
      argerror(1, "new", "field 'catalogue': sse.catalogue expected, got " .. type(cat))
    end
  end
  local self = new_stream(opts)
  -- gzip starts after the head: what is queued now goes out as it is
  if gz then self:_gzip(gz) end
  if cat then catalogue_of[self] = cat end
  return self
end

-- compress's value checked (internal, for res:sse): {level, window_bits,
-- mem_level}; raises "bad argument #1 to 'fname' (compress: ...)".
Stream._compress_options = compress_options

-- Compresses what is sent from now on (internal: Stream.new's compress,
-- and res:sse once it has queued the response head). gz: checked options.
function Stream:_gzip(gz)
  local ok, err = self:_set_gzip(gz[1], gz[2], gz[3])
  if not ok then error("sse.Stream: gzip: " .. tostring(err), 2) end
  return true
end

--- Is v an sse.Stream?
function Stream.is(v)
  return getmetatable(v) == MT
end

local csend = Stream._send

-- Sends the event built from fields, naming fname in errors (argn: the
-- argument a typed stream's catalogue blames).
local function send(self, fields, fname, argn)
  local cat = catalogue_of[self]
  if cat and not self:is_closed() then -- a typed stream: undeclared or invalid events are misuse
    local typed, err = cat:check(fields)
    if not typed then argerror(argn or 1, fname, err, 2) end
    fields = typed
  end
  return csend(self, fields, fname)
end

--- stream:send(ev) -> true | nil, "closed"
function Stream:send(ev)
  if catalogue_of[self] then
    check_self(self, "send")
    return send(self, ev, "send")
  end
  return csend(self, ev, "send")
end

--- stream:send_data(data): an unnamed ("message") event.
function Stream:send_data(data)
  check_self(self, "send_data")
  if type(data) ~= "string" then argerror(1, "send_data", "string expected, got " .. type(data)) end
  return send(self, { data = data }, "send_data")
end

--- stream:send_event(name, data): a named event.
function Stream:send_event(name, data)
  check_self(self, "send_event")
  if type(name) ~= "string" then argerror(1, "send_event", "string expected, got " .. type(name)) end
  if type(data) ~= "string" then argerror(2, "send_event", "string expected, got " .. type(data)) end
  return send(self, { event = name, data = data }, "send_event", 2)
end

--- stream:send_json(value [, ev]): data is the JSON of value; ev may add
-- id / event / retry / comment.
function Stream:send_json(value, ev)
  check_self(self, "send_json")
  local Event = require("sse.event")
  local text, why = Event.json_text(value) -- cjson's own message: no position to strip
  if not text then argerror(1, "send_json", "cannot encode as JSON: " .. why) end
  local fields = { data = text }
  if ev ~= nil then
    if type(ev) ~= "table" then argerror(2, "send_json", "table expected, got " .. type(ev)) end
    local src = Event.is(ev) and ev[1] or ev
    fields.id, fields.event, fields.retry, fields.comment = src.id, src.event, src.retry, src.comment
  end
  return send(self, fields, "send_json")
end

--- stream:send_comment(text): a comment line (clients ignore it).
function Stream:send_comment(text)
  check_self(self, "send_comment")
  if type(text) ~= "string" then argerror(1, "send_comment", "string expected, got " .. type(text)) end
  return send(self, { comment = text }, "send_comment")
end

--- stream:set_retry(ms): the client's reconnection delay.
function Stream:set_retry(ms)
  check_self(self, "set_retry")
  if type(ms) ~= "number" or ms < 0 or ms ~= math.floor(ms) then
    argerror(1, "set_retry", "non-negative integer expected, got "
      .. (type(ms) == "number" and tostring(ms) or type(ms)))
  end
  return send(self, { retry = ms }, "set_retry")
end

-- Keep-alive: one timer per interval, shared by every stream using it. A
-- group forgets a stream that closed at its next beat.
local groups = {}
local ka_of = setmetatable({}, { __mode = "k" }) -- stream -> its interval

local function stop_group(seconds, g)
  if host.active then
    g.timer.stop()
  else
    g.timer:stop()
    g.timer:close()
  end
  groups[seconds] = nil
end

local function leave_group(stream, seconds)
  local g = groups[seconds]
  if not g or not g.streams[stream] then return end
  g.streams[stream] = nil
  g.n = g.n - 1
  if g.n == 0 then stop_group(seconds, g) end
end

local function ka_group(seconds)
  local g = groups[seconds]
  if g then return g end
  local function beat()
    local gone
    for s in pairs(g.streams) do
      if s:is_closed() then
        gone = gone or {}
        gone[#gone + 1] = s
      else
        s:_send_raw(": keep-alive\n\n")
      end
    end
    for _, s in ipairs(gone or {}) do
      ka_of[s] = nil
      leave_group(s, seconds)
    end
  end
  if host.active then
    -- nginx: an ngx timer of this worker (luv's would never fire there)
    if not host.timers_allowed() then error("start_keepalive: nginx cannot start timers in init_by_lua", 3) end
    g = { streams = {}, n = 0 }
    g.timer = host.every(seconds, beat)
    groups[seconds] = g
    return g
  end
  if not uv then error("start_keepalive needs luv (apt-get install lua-luv)", 3) end
  g = { streams = {}, n = 0, timer = uv.new_timer() }
  local ms = math.floor(seconds * 1000)
  g.timer:start(ms, ms, function()
    local ok, err = pcall(beat)
    if not ok then warn("keep-alive failed: " .. tostring(err)) end
  end)
  g.timer:unref() -- keep-alive alone must not keep a loop running
  groups[seconds] = g
  return g
end

--- stream:start_keepalive(seconds): a comment every `seconds`, so proxies
-- keep the connection and a vanished client is noticed by a failed write.
function Stream:start_keepalive(seconds)
  check_self(self, "start_keepalive")
  if type(seconds) ~= "number" or seconds <= 0 then
    argerror(1, "start_keepalive", "positive number expected, got " .. tostring(seconds))
  end
  if self:is_closed() then return nil, "closed" end
  self:stop_keepalive()
  local g = ka_group(seconds)
  g.streams[self] = true
  g.n = g.n + 1
  ka_of[self] = seconds
  return true
end

function Stream:stop_keepalive()
  check_self(self, "stop_keepalive")
  local seconds = ka_of[self]
  if not seconds then return end
  ka_of[self] = nil
  leave_group(self, seconds)
end

-- stream:pipe(producer) and stream:on_drain(fn): sse.pipe
require("sse.pipe").install(Stream, MT)

return Stream
