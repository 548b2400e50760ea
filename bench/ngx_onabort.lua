-- bench/ngx_fanout.sh's `ngx-onabort` column: bench/ngx_sse.lua with the
-- default abort of sse.ngx.stream (an ngx.on_abort coroutine per request)
-- instead of abort = "log": the A/B of that option (bench/README.md).
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
  hub:attach(sse_ngx.stream())
end

function M.log()
  -- on_abort: nothing here
end

function M.pub()
  ngx.req.read_body()
  local n = hub:broadcast({ data = ngx.req.get_body_data() or "" })
  ngx.print(tostring(n))
end

return M
