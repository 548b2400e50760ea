-- bench/ngx_fanout.sh's sse server in nginx: sse.ngx.stream + a worker hub
-- over the shared-dict log (the configuration of examples/openresty/), public
-- API only. GET /sub: an event stream (resumes after Last-Event-ID); POST /pub:
-- body = event data, broadcast to every subscriber; answers the count here.
local ngx = ngx -- luacheck: ignore (the nginx global)
local sse_ngx = require("sse.ngx")

local M = {}
local hub

function M.init_worker()
  hub = sse_ngx.hub({ dict = "sse_log", max_events = 1000 })
end

function M.sub()
  -- abort = "log": a client that leaves is heard in M.log (no ngx.on_abort
  -- coroutine per subscriber), as in examples/openresty/
  hub:attach(sse_ngx.stream({ abort = "log" }))
end

function M.log()
  sse_ngx.finish()
end

function M.pub()
  ngx.req.read_body()
  local n = hub:broadcast({ data = ngx.req.get_body_data() or "" })
  ngx.print(tostring(n))
end

return M
