--- sse.ngx.stream: an event stream answered from an nginx content handler.
--
--   content_by_lua_block {
--     local stream = require("sse.ngx").stream{ retry = 2000, keepalive = 15 }
--     hub:attach(stream, { topics = { "news" } })   -- or stream:send{...} yourself
--   }                                              -- return: the stream lives on
--
-- It answers 200 with the event-stream headers and returns an sse.Stream on
-- the pull transport (docs/CORE.md 2b): a light thread of this request
-- (ngx.thread.spawn) sleeps on an ngx.semaphore, and when the stream has
-- bytes it takes them all and writes them with ngx.print + ngx.flush(true).
-- Only that thread writes this response, whoever sends or broadcasts, from
-- whichever handler or timer of the worker. The request ends when the stream
-- closes: stream:close(), the hub's slow policy, a failed write, or the
-- client going away (ngx.on_abort, with lua_check_client_abort on; or, with
-- abort = "log", the location's log_by_lua handler calling M.finish()).
local Stream = require("sse.stream")
local core = require("sse.core")
local semaphore = require("ngx.semaphore")

local ngx = ngx -- luacheck: ignore

local M = {}

-- How long the writer thread sleeps between two looks when nothing wakes
-- it (it is woken by every batch; this only bounds a lost wake-up).
M.IDLE_WAIT = 60

local KNOWN = { retry = true, keepalive = true, outbox_limit = true, slow_policy = true,
                last_event_id = true, abort = true }

-- How writers sleep. Every writer of the worker starts on ONE shared
-- semaphore: a broadcast that readies all of them wakes them with one post
-- (ngx.semaphore wakes its waiters in order, one resume each), and no stream
-- holds a semaphore of its own. A shared semaphore cannot wake one waiter:
-- waking a stream that sleeps on it wakes them all, and each that finds
-- nothing to take, a stream that does not get what the others get (a topic,
-- a send to it alone, a close), moves to a semaphore of its own, once for
-- good. So a fan-out to everyone costs one post, and any other traffic costs
-- at most one needless wake per stream.
local shared                      -- the worker's shared semaphore (made on first use)
local RUN = {}                    -- sema_of's mark: on the shared one, running
-- stream -> `shared` while its writer waits on it, RUN while that writer
-- runs (it takes before it waits again: nothing to wake), or the writer's
-- own semaphore (weak: never keeps a stream)
local sema_of = setmetatable({}, { __mode = "k" })

local warned_abort = false
-- abort = "log": has M.finish() run in this worker, and since when have
-- such streams ended without it (a location that lacks the log handler)
local finished_any, log_ended_at, warned_log = false, nil, false
local probed = false -- has a stream of this worker registered ngx.on_abort

--- M.sleepers() -> {shared = n, own = n}: this worker's writers on the
-- shared semaphore and on a semaphore of their own (a diagnostic).
function M.sleepers()
  local n, own = 0, 0
  for _, s in pairs(sema_of) do
    if s == shared or s == RUN then n = n + 1 else own = own + 1 end
  end
  return { shared = n, own = own }
end

local function argerror(n, msg)
  error(("bad argument #%d to 'stream' (%s)"):format(n, msg), 3)
end

local function show(v)
  return type(v) == "number" and tostring(v) or type(v)
end

-- One function for every stream (no closure per stream): wakes its writer.
local function wake(stream)
  local s = sema_of[stream]
  if s == shared then
    -- every waiter of the shared semaphore, the ones already posted for
    -- in this turn excepted (count: posts not yet taken - waiters)
    local c = s:count()
    if c < 0 then s:post(-c) end
  elseif s ~= nil and s ~= RUN then
    s:post(1)
  end
end

local function wake_closed(_, stream)
  return wake(stream)
end

-- the request (its address) -> its stream, for the one on_abort callback
-- of every stream (a closure per stream would cost more than the entry)
local get_request = require("resty.core.base").get_request
local ffi = require("ffi")
local aborting = setmetatable({}, { __mode = "v" })

local function request_key()
  return tonumber(ffi.cast("uintptr_t", get_request()))
end

-- The client of this request went away: its stream, if still open, closes
-- without a wake-up that would rouse every writer of the shared semaphore
-- (the request's end stops its writer, wherever it waits).
local function close_gone()
  local key = request_key()
  local stream = aborting[key]
  if stream then
    aborting[key] = nil
    sema_of[stream] = nil
    stream:close("eof")
  end
end

-- ngx.on_abort's callback: the stream closes and the request ends here
-- (ngx.exit from the on_abort thread ends the writer too).
local function on_abort()
  close_gone()
  return ngx.exit(499)
end

--- The Last-Event-ID of the request: the header, else ?lastEventId= (what
-- a new EventSource, which cannot set headers, is given by its page).
function M.request_last_event_id()
  local h = ngx.var.http_last_event_id
  if h ~= nil then return h end
  local q = ngx.var.arg_lastEventId
  if q ~= nil then return ngx.unescape_uri(q) end
  return nil
end

-- upvalues, not locals of the writer: see the writer's note on its stack
local ngx_print, ngx_flush = ngx and ngx.print, ngx and ngx.flush

-- The writer: the only code that writes this response. Takes everything
-- queued, prints and flushes it, sleeps until woken; ends with the stream.
-- It keeps few locals: a C call needs 20 free stack slots above the
-- caller's, and a LuaJIT coroutine starts with 40; two more registers live
-- at the ngx.flush call doubled every writer's stack, and LuaJIT never
-- shrinks a stack of that size back (+430 B of Lua heap per stream,
-- spec/ngx_spec.lua "keeps under 1,000 B of Lua heap per live stream").
-- Its semaphore is read from sema_of when it sleeps, not kept: two spare
-- registers now (two more locals still measured 753 B a stream).
local function writer(stream, log_mode)
  -- first let the handler finish (attach, sends): the headers then go out
  -- with the first bytes (a join event, a retry line) in one write, 1 ms
  -- later. (Not ngx.sleep(0): without OpenResty's delayed-events patch, as
  -- in Debian's nginx, each call logs a warning.)
  shared:wait(0.001)
  sema_of[stream] = RUN
  local head, woken = true, false
  while true do
    local bytes = stream:take()
    if bytes == nil then break end
    if bytes ~= "" then
      head, woken = false, false
      -- flush(true) returns once the bytes are in the socket: meanwhile the
      -- events that follow wait in the outbox, where its limit and the slow
      -- policy see them
      local ok, err = ngx_print(bytes)
      if ok then ok, err = ngx_flush(true) end
      if not ok then stream:close(err == "timeout" and "write timeout" or "write failed") end
    elseif head then
      -- nothing to send yet: the headers alone, so the client's EventSource opens now
      head = false
      if not ngx_flush(true) then stream:close("write failed") end
    else
      -- RUN while it runs on the shared semaphore; its own one once it moved
      -- (read here, not kept in a local: see the note above)
      local own = sema_of[stream]
      if own == nil then
        break -- on_abort or finish() ended it (and closed the stream)
      elseif own ~= RUN then
        own:wait(M.IDLE_WAIT)
      elseif woken then
        -- woken for others: from now on, a semaphore of its own
        sema_of[stream] = semaphore.new(0)
      else
        sema_of[stream] = shared
        woken = shared:wait(M.IDLE_WAIT) -- nil on the timeout: no one woke it
        sema_of[stream] = RUN
      end
    end
  end
  sema_of[stream] = nil
  aborting[request_key()] = nil
  if log_mode and not finished_any and not log_ended_at then log_ended_at = ngx.now() end
  ngx.eof()
end

--- sse.ngx.finish(): from log_by_lua* of a location whose streams were
-- made with abort = "log": closes the request's stream if it is still open
-- (the client went away and lua-nginx-module ended the request; a stream
-- that ended otherwise was closed already). Elsewhere it does nothing.
function M.finish()
  if type(ngx) ~= "table" or not ngx.get_phase or ngx.get_phase() ~= "log" then
    error("sse.ngx.finish: call it from log_by_lua* (the stream's location)", 2)
  end
  finished_any = true
  close_gone()
end

--- sse.ngx.stream([opts]) -> sse.Stream. opts: retry (ms, sent first as
-- "retry:"), keepalive (seconds between comments), outbox_limit and
-- slow_policy (as sse.Stream; a hub's apply otherwise), last_event_id
-- (default: the request's, M.request_last_event_id()), abort (how a client
-- that goes away is heard: "on_abort", the default, registers ngx.on_abort
-- -- a coroutine per request, about 540 B of RSS; "log": the location has
-- `log_by_lua_block { require("sse.ngx").finish() }`, which costs nothing
-- per request). Headers set with
-- ngx.header before the call are kept, but Content-Type and Cache-Control,
-- which are the stream's. On a HEAD request the stream is returned closed.
-- Raises when called outside a content handler or after the response
-- headers were sent.
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then argerror(1, "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then argerror(1, ("unknown option '%s'"):format(tostring(k))) end
  end
  local retry, ka = opts.retry, opts.keepalive
  if retry ~= nil and (type(retry) ~= "number" or retry < 0 or retry ~= math.floor(retry)) then
    argerror(1, "field 'retry': integer >= 0 expected, got " .. show(retry))
  end
  if ka ~= nil and (type(ka) ~= "number" or not (ka > 0 and ka < 1e9)) then
    argerror(1, "field 'keepalive': positive number of seconds expected, got " .. show(ka))
  end
  local abort = opts.abort
  if abort ~= nil and abort ~= "on_abort" and abort ~= "log" then
    argerror(1, "field 'abort': \"on_abort\" or \"log\" expected, got " .. show(abort))
  end
  local log_mode = abort == "log"
  -- what Stream.new would refuse, refused here naming 'stream'
  core.check_options({ outbox_limit = opts.outbox_limit, slow_policy = opts.slow_policy }, "stream")
  if type(ngx) ~= "table" or not ngx.get_phase then
    error("sse.ngx.stream works inside nginx (lua-nginx-module) only", 2)
  end
  local phase = ngx.get_phase()
  if phase ~= "content" then
    error(("sse.ngx.stream: call it from content_by_lua* (this is the %s phase)"):format(phase), 2)
  end
  if ngx.headers_sent then
    error("sse.ngx.stream: the response headers were already sent (call it before ngx.say, "
      .. "ngx.print, ngx.flush or ngx.send_headers)", 2)
  end
  local lid = opts.last_event_id
  if lid == nil then lid = M.request_last_event_id() end
  if lid ~= nil and type(lid) ~= "string" then
    argerror(1, "field 'last_event_id': string expected, got " .. type(lid))
  end
  local stream = Stream.new({ on_ready = wake, last_event_id = lid, outbox_limit = opts.outbox_limit,
                              slow_policy = opts.slow_policy })

  ngx.status = 200
  local h = ngx.header
  h["Content-Type"] = "text/event-stream; charset=utf-8"
  h["Cache-Control"] = "no-cache"
  h["X-Accel-Buffering"] = "no" -- a proxy in front must not buffer it either
  -- Sent now, explicitly (the writer flushes them): an HTTP/1.0 response is
  -- then streamed (lua_http10_buffering applies only while no header was sent).
  ngx.send_headers()
  if ngx.req.get_method() == "HEAD" then
    stream:close()
    return stream
  end

  if not shared then shared = semaphore.new(0) end
  sema_of[stream] = RUN -- until its writer waits
  stream:on_close(wake_closed) -- a closed stream's writer wakes to finish
  aborting[request_key()] = stream
  if log_mode then
    -- streams of this worker ended a second ago and finish() never ran: the
    -- location lacks its log handler, so a client that leaves stays in the hub
    if log_ended_at and not finished_any and not warned_log and ngx.now() - log_ended_at > 1 then
      warned_log = true
      ngx.log(ngx.WARN, "sse.ngx.stream: abort = \"log\" but sse.ngx.finish() has not run: add ",
        "'log_by_lua_block { require(\"sse.ngx\").finish() }' to the event-stream location, or a ",
        "client that goes away is noticed only when a write to it fails")
    end
  end
  -- the first stream of the worker registers ngx.on_abort in either mode:
  -- it tells whether lua_check_client_abort is on (else it warns)
  if not log_mode or not probed then
    probed = true
    local aok, aerr = ngx.on_abort(on_abort)
    if not aok and not warned_abort then
      warned_abort = true
      if tostring(aerr):find("lua_check_client_abort", 1, true) then
        ngx.log(ngx.WARN, "sse.ngx.stream: lua_check_client_abort is off: a client that goes away is ",
          "noticed only when a write to it fails (the next event or keep-alive); set ",
          "'lua_check_client_abort on;' in nginx.conf")
      else
        ngx.log(ngx.WARN, "sse.ngx.stream: ngx.on_abort failed (", tostring(aerr), "): a client that ",
          "goes away is noticed only when a write to it fails")
      end
    end
  end
  if retry then stream:set_retry(retry) end
  if ka then stream:start_keepalive(ka) end
  local tok, terr = ngx.thread.spawn(writer, stream, log_mode)
  if not tok then
    stream:close("no writer thread")
    error("sse.ngx.stream: cannot start the writer thread: " .. tostring(terr), 2)
  end
  return stream
end

return M
