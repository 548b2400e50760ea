-- bench/ngx_fanout.sh's hand-written OpenResty fan-out, the baseline: one
-- ngx.semaphore and one queue per subscriber; a publish appends the event's
-- bytes to every queue and posts; each subscriber's handler writes its queue
-- one event at a time, ngx.print + ngx.flush(true) per event. Client abort
-- through ngx.on_abort, as a real server needs. No replay, no topics.
local ngx = ngx -- luacheck: ignore (the nginx global)
local semaphore = require("ngx.semaphore")

local M = {}
local subs, seq = {}, 0

function M.init_worker() end

function M.sub()
  ngx.header["Content-Type"] = "text/event-stream"
  ngx.header["Cache-Control"] = "no-cache"
  ngx.send_headers()
  ngx.flush(true)
  local me = { sema = semaphore.new(), q = {} }
  subs[me] = true
  ngx.on_abort(function()
    me.dead = true
    me.sema:post()
  end)
  local print, flush = ngx.print, ngx.flush
  while not me.dead do
    me.sema:wait(60)
    local q = me.q
    me.q = {}
    for i = 1, #q do
      local ok = print(q[i])
      if ok then ok = flush(true) end
      if not ok then
        me.dead = true
        break
      end
    end
  end
  subs[me] = nil
end

function M.pub()
  ngx.req.read_body()
  seq = seq + 1
  local ev = "id: " .. seq .. "\ndata: " .. (ngx.req.get_body_data() or "") .. "\n\n"
  local n = 0
  for s in pairs(subs) do
    local q = s.q
    q[#q + 1] = ev
    s.sema:post()
    n = n + 1
  end
  ngx.print(tostring(n))
end

return M
