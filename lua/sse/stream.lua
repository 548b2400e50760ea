--- sse.Stream: one client connection receiving events.
--
--   Stream.new{handle = tcp}        -- a luv TCP/pipe handle: the C core writes it
--   Stream.new{writer = fn}         -- any transport: fn(bytes) -> true | nil, err
--
-- The stream owns its handle: it writes to it and closes it. Sends return
-- true, or nil, "closed" once the stream is closed (by close(), a failed
-- write, or the slow-consumer policy). Misuse raises.
local core = require("sse.core")

local Stream = {}
Stream.__index = Stream
Stream.__name = "sse.Stream"

Stream.DEFAULT_OUTBOX_LIMIT = 1024 * 1024
-- seconds sent data may stay unacknowledged before the connection fails
-- (TCP_USER_TIMEOUT): with keep-alive comments flowing, a client that
-- vanished without FIN is closed within keepalive + this
Stream.DEFAULT_WRITE_TIMEOUT = 60
-- how long close() waits for queued bytes to reach a client that stopped reading
Stream.CLOSE_GRACE_MS = 5000

local uv_ok, uv = pcall(require, "luv")
if not uv_ok then uv = nil end

-- Inside nginx luv loads but nothing runs its loop: time, flushes and
-- timers come from nginx there (sse.ngx.host).
local host = require("sse.ngx.host")

local function now()
  if host.active then return host.now() end
  return uv and uv.now() / 1000 or os.clock()
end

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Stream then
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

--- Stream.new(opts): opts.handle (luv tcp/pipe) or opts.writer (function),
-- opts.last_event_id, opts.outbox_limit (bytes, default 1 MiB),
-- opts.slow_policy ("close" | "drop_oldest"), opts.write_timeout (seconds
-- sent data may stay unacknowledged on a TCP handle, default 60; false: the
-- kernel's default of ~15 minutes), opts.compress (a luv handle stream:
-- true or {level, window_bits, mem_level}: what follows opts.head is
-- gzip-compressed, sync-flushed per write; the HTTP layer says so in the
-- head), opts.catalogue (sse.catalogue: sends are typed), opts.envelope
-- (true: envelope mode, every event as `event: sse` with its topic, type
-- and data in JSON; the head is written as it is).
function Stream.new(opts)
  if type(opts) ~= "table" then argerror(1, "new", "table expected, got " .. type(opts)) end
  local handle, writer = opts.handle, opts.writer
  local on_ready = opts.on_ready
  local n = (handle ~= nil and 1 or 0) + (writer ~= nil and 1 or 0) + (on_ready ~= nil and 1 or 0)
  if n ~= 1 then
    argerror(1, "new", "exactly one of 'handle' (luv stream), 'writer' (function) or 'on_ready' (function) expected")
  end
  if writer ~= nil and type(writer) ~= "function" then
    argerror(1, "new", "field 'writer': function expected, got " .. type(writer))
  end
  if on_ready ~= nil and type(on_ready) ~= "function" then
    argerror(1, "new", "field 'on_ready': function expected, got " .. type(on_ready))
  end
  local head = opts.head
  if head ~= nil and type(head) ~= "string" then
    argerror(1, "new", "field 'head': string expected, got " .. type(head))
  end
  core.check_options(opts, "new") -- outbox_limit, slow_policy, write_timeout: in C
  local limit = opts.outbox_limit or Stream.DEFAULT_OUTBOX_LIMIT
  local policy = opts.slow_policy or "close"
  local gz = compress_options(opts.compress, handle)
  local cat = opts.catalogue
  if cat ~= nil and not require("sse.catalogue").is(cat) then
    argerror(1, "new", "field 'catalogue': sse.catalogue expected, got " .. type(cat))
  end
  local lid = opts.last_event_id
  if lid ~= nil and type(lid) ~= "string" then
    argerror(1, "new", "field 'last_event_id': string expected, got " .. type(lid))
  end
  if opts.envelope ~= nil and type(opts.envelope) ~= "boolean" then
    argerror(1, "new", "field 'envelope': boolean expected, got " .. type(opts.envelope))
  end
  local wt = opts.write_timeout
  if wt == nil then wt = Stream.DEFAULT_WRITE_TIMEOUT end
  local sub = core.sub_new(handle, limit, policy, wt and math.floor(wt * 1000) or 0)
  local self = setmetatable({
    _sub = sub,
    _handle = handle,
    _writer = writer,
    _on_ready = on_ready,
    _last_id = lid,
    _catalogue = cat, -- sse.catalogue: sends are typed
    -- a hub's limit and policy apply unless the stream chose its own
    _limit = opts.outbox_limit,
    _policy = opts.slow_policy,
    -- _hub, _on_close, _ka (keep-alive group) are set on demand
  }, Stream)
  -- the response head (sse.http) goes through the same outbox: one writer
  if head then self:_send_raw(head) end
  -- gzip starts after the head: what is queued now goes out as it is
  if gz then self:_gzip(gz) end
  if opts.envelope then sub:set_envelope(true) end
  return self
end

-- compress's value checked (internal, for res:sse): {level, window_bits,
-- mem_level}; raises "bad argument #1 to 'fname' (compress: ...)".
Stream._compress_options = compress_options

-- Compresses what is sent from now on (internal: Stream.new's compress,
-- and res:sse once it has queued the response head). gz: checked options.
function Stream:_gzip(gz)
  local ok, err = self._sub:set_gzip(gz[1], gz[2], gz[3])
  if not ok then error("sse.Stream: gzip: " .. tostring(err), 2) end
  return true
end

--- Is v an sse.Stream?
function Stream.is(v)
  return getmetatable(v) == Stream
end

-- After a send: drain a writer transport, or notice a failed one.
local function after_send(self, ok, why)
  if ok then
    if self._writer then return self:_drain() end
    if self._on_ready then
      -- in a hub, its flush announces the bytes (nothing else would, where
      -- no luv loop runs the hub)
      if self._hub then self._hub:_schedule() else self:_ready() end
    end
    return true
  end
  if why == "slow" or why == "closed" then
    self:close(why == "slow" and "slow" or "write failed")
  end
  return nil, "closed"
end

-- Hands what is queued to the writer function. Returns true or nil, "closed".
function Stream:_drain()
  local bytes = self._sub:take()
  if bytes == "" then return true end
  local ok, res, err = pcall(self._writer, bytes)
  if ok and res then return true end
  self:close(ok and tostring(err or "write failed") or ("writer error: " .. tostring(res)))
  return nil, "closed"
end

-- Bytes were queued behind the stream's back (a replay's hand-off): write,
-- drain or announce them now.
function Stream:_kick()
  if self._closed then return end
  if self._writer then return self:_drain() end
  if self._on_ready then return self:_ready() end
  self._sub:flush()
end

-- A pull transport has bytes: tell the host (once per batch).
function Stream:_ready()
  if self._announced then return end
  self._announced = true
  local ok, err = pcall(self._on_ready, self)
  if not ok then warn("on_ready callback failed: " .. tostring(err)) end
end

--- stream:take() -> the bytes queued for a pull transport ("" when none),
-- or nil, reason once the stream is closed and nothing is left.
function Stream:take()
  check_self(self, "take")
  self._announced = nil
  if self._finished then return nil, self._close_reason end
  local bytes = self._sub:take()
  if bytes == "" and self._closed then
    self._finished = true
    Stream._finish(self) -- drained: close for good, run on_close
    return nil, self._close_reason
  end
  return bytes
end

-- The core's state of the stream: "open", "replaying", "draining", "closed"
-- (internal: for specs and the hub).
function Stream:_state()
  if self._done then return "closed" end
  return (self._sub:state())
end

--- stream:stats() -> {bytes_sent, dropped, queued, topics}
function Stream:stats()
  check_self(self, "stats")
  return self._sub:stats()
end

-- Sends the event built from fields, naming fname in errors.
local function send_fields(self, fname, fields, argn)
  if self._closed then return nil, "closed" end
  local cat = self._catalogue
  if cat then -- a typed stream: undeclared or invalid events are misuse
    local typed, err = cat:check(fields)
    if not typed then argerror(argn or 1, fname, err, 2) end
    fields = typed
  end
  local res, why = self._sub:send(fields, now(), fname)
  return after_send(self, res, why)
end

--- stream:send(ev) -> true | nil, "closed"
function Stream:send(ev)
  check_self(self, "send")
  return send_fields(self, "send", ev)
end

--- stream:send_data(data): an unnamed ("message") event.
function Stream:send_data(data)
  check_self(self, "send_data")
  if type(data) ~= "string" then argerror(1, "send_data", "string expected, got " .. type(data)) end
  return send_fields(self, "send_data", { data = data })
end

--- stream:send_event(name, data): a named event.
function Stream:send_event(name, data)
  check_self(self, "send_event")
  if type(name) ~= "string" then argerror(1, "send_event", "string expected, got " .. type(name)) end
  if type(data) ~= "string" then argerror(2, "send_event", "string expected, got " .. type(data)) end
  return send_fields(self, "send_event", { event = name, data = data }, 2)
end

--- stream:send_json(value [, ev]): data is the JSON of value; ev may add
-- id / event / retry / comment.
function Stream:send_json(value, ev)
  check_self(self, "send_json")
  local Event = require("sse.event")
  local ok, text = pcall(Event.to_json, value)
  if not ok then argerror(1, "send_json", "cannot encode as JSON: " .. tostring(text):gsub("^[^:]*:%d+: ", "")) end
  local fields = { data = text }
  if ev ~= nil then
    if type(ev) ~= "table" then argerror(2, "send_json", "table expected, got " .. type(ev)) end
    local src = Event.is(ev) and ev[1] or ev
    fields.id, fields.event, fields.retry, fields.comment = src.id, src.event, src.retry, src.comment
  end
  return send_fields(self, "send_json", fields)
end

--- stream:send_comment(text): a comment line (clients ignore it).
function Stream:send_comment(text)
  check_self(self, "send_comment")
  if type(text) ~= "string" then argerror(1, "send_comment", "string expected, got " .. type(text)) end
  return send_fields(self, "send_comment", { comment = text })
end

--- stream:set_retry(ms): the client's reconnection delay.
function Stream:set_retry(ms)
  check_self(self, "set_retry")
  if type(ms) ~= "number" or ms < 0 or ms ~= math.floor(ms) then
    argerror(1, "set_retry", "non-negative integer expected, got "
      .. (type(ms) == "number" and tostring(ms) or type(ms)))
  end
  return send_fields(self, "set_retry", { retry = ms })
end

-- Sends pre-encoded wire bytes (from a replayer). Internal. replay = true:
-- the replay the client asked for, which does not count against the outbox
-- limit while it is being written.
function Stream:_send_raw(bytes, replay)
  if self._closed then return nil, "closed" end
  local ok, why = self._sub:send_raw(bytes, now(), replay)
  return after_send(self, ok, why)
end

--- Bytes queued for this client and not yet accepted by its transport.
function Stream:queued_bytes()
  check_self(self, "queued_bytes")
  if self._closed then return 0 end
  return self._sub:queued()
end

function Stream:last_event_id()
  check_self(self, "last_event_id")
  return self._last_id
end

function Stream:is_closed()
  check_self(self, "is_closed")
  return self._closed == true
end

--- stream:on_close(fn): fn(reason, stream) runs once when the stream closes
-- (at once if it is already closed). Passing the stream lets one function
-- serve many streams, instead of a closure per stream.
function Stream:on_close(fn)
  check_self(self, "on_close")
  if type(fn) ~= "function" then argerror(1, "on_close", "function expected, got " .. type(fn)) end
  if self._closed then
    local ok, err = pcall(fn, self._close_reason, self)
    if not ok then warn("on_close callback failed: " .. tostring(err)) end
    return
  end
  local list = self._on_close
  if not list then
    self._on_close = fn
  elseif type(list) == "function" then
    self._on_close = { list, fn }
  else
    list[#list + 1] = fn
  end
end

-- Keep-alive: one timer per interval, shared by every stream using it.
local groups = {}

local function ka_group(seconds)
  local g = groups[seconds]
  if g then return g end
  local function beat()
    for s in pairs(g.streams) do
      if not s._closed then s:_send_raw(": keep-alive\n\n") end
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
  if self._closed then return nil, "closed" end
  self:stop_keepalive()
  local g = ka_group(seconds)
  g.streams[self] = true
  g.n = g.n + 1
  self._ka = seconds
  return true
end

function Stream:stop_keepalive()
  check_self(self, "stop_keepalive")
  local seconds = self._ka
  if not seconds then return end
  self._ka = nil
  local g = groups[seconds]
  g.streams[self] = nil
  g.n = g.n - 1
  if g.n == 0 then
    if host.active then
      g.timer.stop()
    else
      g.timer:stop()
      g.timer:close()
    end
    groups[seconds] = nil
  end
end

-- Detaches from the C core, closes the transport, runs on_close once.
local function finish(self)
  if self._done then return end
  self._done = true
  self._sub:detach()
  local h = self._handle
  if h and not h:is_closing() then h:close() end
  local cbs = self._on_close
  self._on_close = nil
  if type(cbs) == "function" then cbs = { cbs } end
  for _, fn in ipairs(cbs or {}) do
    local ok, err = pcall(fn, self._close_reason, self)
    if not ok then warn("on_close callback failed: " .. tostring(err)) end
  end
end

Stream._finish = function(self)
  if self._finished_once then return end
  self._finished_once = true
  return finish(self)
end

--- stream:close([reason]): stop sending, let what is queued reach the client
-- (at most CLOSE_GRACE_MS for one that stopped reading), close the
-- transport and run the on_close callbacks once. Idempotent. A reason
-- (e.g. "eof", "slow") means the client is gone: nothing more is written.
function Stream:close(reason)
  check_self(self, "close")
  if self._closed then return end
  self._closed = true
  self._close_reason = reason or "closed"
  self:stop_keepalive()
  if self._hub then self._hub:_forget(self) end
  if self._writer then
    if reason == nil then self:_drain() end
    return finish(self)
  end
  local sub = self._sub
  if self._on_ready and reason == nil and sub:queued() > 0 then
    -- a pull transport drains through take(); it finishes when empty
    self._announced = nil
    return self:_ready()
  end
  if reason ~= nil or not uv or sub:state() ~= "open" or sub:queued() == 0 then
    return finish(self)
  end
  -- The C core keeps writing what is queued; poll until it is done.
  local t, waited = uv.new_timer(), 0
  t:start(10, 10, function()
    waited = waited + 10
    if sub:queued() == 0 or sub:state() ~= "open" or waited >= Stream.CLOSE_GRACE_MS then
      t:stop()
      t:close()
      local ok, err = pcall(finish, self)
      if not ok then warn("close failed: " .. tostring(err)) end
    end
  end)
end
Stream.__close = function(self) self:close() end

function Stream:__tostring()
  return ("sse.Stream(%s)"):format(self._closed and "closed" or "open")
end

-- stream:pipe(producer) and stream:on_drain(fn): sse.pipe
require("sse.pipe").install(Stream)

return Stream
