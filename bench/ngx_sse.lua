-- bench/ngx_fanout.sh's sse server in nginx: sse.ngx.stream + a worker hub
-- over the shared-dict log (the configuration of examples/openresty/), public
-- API only. GET /sub: an event stream (resumes after Last-Event-ID); POST /pub:
-- body = event data, broadcast to every subscriber; answers the count here.
-- server(abort) makes the same server with another abort option of
-- sse.ngx.stream (bench/ngx_onabort.lua, the A/B of abort = "log").
local ngx = ngx -- luacheck: ignore (the nginx global)
local sse_ngx = require("sse.ngx")

local function server(abort)
  local M, hub = {}, nil

  function M.init_worker()
    hub = sse_ngx.hub({ dict = "sse_log", max_events = 1000 })
  end

  function M.sub()
    hub:attach(sse_ngx.stream({ abort = abort }))
  end

  -- the location's log handler: with abort = "log", a client that left is
  -- heard here (no ngx.on_abort coroutine per subscriber)
  function M.log()
    if abort == "log" then sse_ngx.finish() end
  end

  function M.pub()
    ngx.req.read_body()
    local n = hub:broadcast({ data = ngx.req.get_body_data() or "" })
    ngx.print(tostring(n))
  end

  return M
end

local M = server("log") -- as examples/openresty/ does
M.server = server
return M
