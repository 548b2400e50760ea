--- sse.ngx: Server-Sent Events from OpenResty / lua-nginx-module handlers.
--
--   # nginx.conf, http{}
--   lua_shared_dict sse_log 16m;      # the log every worker shares
--   lua_check_client_abort on;        # notice clients that go away
--   lua_http10_buffering off;
--
--   -- a module of yours, required by the handlers: one hub per worker
--   local sse_ngx = require("sse.ngx")
--   local hub = sse_ngx.hub{ dict = "sse_log", keepalive = 15 }
--
--   -- content_by_lua_block (GET /events)
--   local stream = sse_ngx.stream{ retry = 2000 }
--   hub:attach(stream, { topics = { "news" } })     -- then return: it lives on
--
--   -- any handler or timer of any worker
--   hub:broadcast_to("news", { event = "headline", data = "..." })
--
-- sse_ngx.stream answers with the event-stream headers and returns an
-- sse.Stream (sse.ngx.stream). sse_ngx.hub returns an sse.Hub whose replayer
-- is the shared-dict log (sse.ngx.log): ids are assigned once for all
-- workers, every worker fans out each event in the same order, and a client
-- resumes by Last-Event-ID in whichever worker it reconnects to.
local ngx = ngx -- luacheck: ignore (the nginx global)

local M = {}

M.stream = require("sse.ngx.stream").new
M.request_last_event_id = require("sse.ngx.stream").request_last_event_id
--- sse_ngx.finish(): in log_by_lua* of an event-stream location whose
-- streams use abort = "log" (sse.ngx.stream.finish).
M.finish = require("sse.ngx.stream").finish

--- sse_ngx.counter{dict =, prefix =}: counts every worker shares
-- (sse.ngx.counter): open streams per address for a limit, and the like.
function M.counter(opts)
  return require("sse.ngx.counter").new(opts)
end

--- sse_ngx.request() -> the current request as sse.auth (and the demo
-- hub's sse.app rules) read a request: {method =, path =, headers =
-- {[lowercase name] = value, or a list when repeated}, query = {[name] =
-- value or list; "" for a name without '='}, remote = the client address,
-- last_event_id =}. From a handler (rewrite, access, content phases).
function M.request()
  local headers = ngx.req.get_headers(100)
  local query = ngx.req.get_uri_args(100)
  for k, v in pairs(query) do
    if v == true then query[k] = "" end
  end
  return { method = ngx.req.get_method(), path = ngx.var.uri, headers = headers, query = query,
           remote = ngx.var.remote_addr, last_event_id = M.request_last_event_id() }
end

local LOG_OPTIONS = { max_events = true, ttl = true, poll = true, hole_wait = true, stats_every = true }
local HUB_OPTIONS = { outbox_limit = true, slow_policy = true, keepalive = true }

--- sse_ngx.log(opts): the shared-dict log (sse.ngx.log.new).
function M.log(opts)
  return require("sse.ngx.log").new(opts)
end

--- sse_ngx.hub{dict =, max_events =, ttl =, poll =, hole_wait =,
-- outbox_limit =, slow_policy =, keepalive =} -> sse.Hub of this worker.
-- With dict (a lua_shared_dict's name) the hub's replayer is the log shared
-- by all workers; without it, a memory ring of this worker alone
-- (max_events, ttl), whose ids mean nothing to the other workers: use it
-- with worker_processes 1. Call it once per worker (at module level of a
-- module the handlers require, or in init_worker_by_lua*), not in
-- init_by_lua (the master has no timers). backend = an asynchronous backend
-- (sse.redis.backend{url = ...}, made in the same worker) instead of dict:
-- ids, replay and fan-out shared with other nginx through Redis.
function M.hub(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'hub' (table expected, got " .. type(opts) .. ")", 2) end
  local lopts, hopts = {}, {}
  local backend = opts.backend
  for k, v in pairs(opts) do
    if k == "backend" then
      if opts.dict ~= nil then
        error("bad argument #1 to 'hub' (options 'backend' and 'dict' exclude each other)", 2)
      end
    elseif k == "dict" or LOG_OPTIONS[k] then
      lopts[k] = v
    elseif HUB_OPTIONS[k] then
      hopts[k] = v
    else
      error(("bad argument #1 to 'hub' (unknown option '%s')"):format(tostring(k)), 2)
    end
  end
  local sse = require("sse")
  -- what Hub.new would refuse, refused here naming 'hub'
  require("sse.core").check_options(hopts, "hub")
  local ka = hopts.keepalive
  if ka ~= nil and (type(ka) ~= "number" or ka <= 0) then
    error("bad argument #1 to 'hub' (field 'keepalive': positive number of seconds expected)", 2)
  end
  if ka and not require("sse.ngx.host").timers_allowed() then
    error("bad argument #1 to 'hub' (field 'keepalive': nginx cannot start timers in init_by_lua; create "
      .. "the hub in init_worker_by_lua* or in a handler (each worker has its own))", 2)
  end
  if backend ~= nil then
    -- an asynchronous backend shared by several nginx (sse.redis.backend)
    hopts.replayer = backend
  elseif lopts.dict ~= nil then
    hopts.replayer = require("sse.ngx.log").new(lopts, "hub", 3)
  else
    for k in pairs(lopts) do
      if k ~= "max_events" and k ~= "ttl" then
        error(("bad argument #1 to 'hub' (option '%s' needs 'dict')"):format(k), 2)
      end
    end
    hopts.replayer = sse.MemoryReplayer.new({ max_events = lopts.max_events, ttl = lopts.ttl })
  end
  return sse.Hub.new(hopts)
end

return M
