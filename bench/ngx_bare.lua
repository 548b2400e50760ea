-- bench/ngx_fanout.sh's ngx-bare: the floor of a fan-out written as a
-- lua-nginx handler, to measure what the request, lua-nginx-module's context
-- and one sleeping coroutine cost per subscriber. Each subscriber's handler
-- sends the headers and sleeps on ONE semaphore shared by all; a publish
-- appends its event to one shared list and wakes every sleeper with one
-- post; each writes what it has not seen. Nothing per subscriber (no queue,
-- no semaphore), no abort handling (an aborted client is noticed by the
-- next failed write), no replay, no topics: not a server to copy.
local ngx = ngx -- luacheck: ignore (the nginx global)
local semaphore = require("ngx.semaphore")

local M = {}
local S
local events = {}

function M.init_worker()
  S = semaphore.new(0)
end

function M.sub()
  ngx.header["Content-Type"] = "text/event-stream"
  ngx.header["Cache-Control"] = "no-cache"
  ngx.send_headers()
  ngx.flush(true)
  local print, flush = ngx.print, ngx.flush
  local seen = #events
  while true do
    S:wait(60)
    while seen < #events do
      seen = seen + 1
      local ok = print(events[seen])
      if ok then ok = flush(true) end
      if not ok then return end
    end
  end
end

function M.pub()
  ngx.req.read_body()
  local n = #events + 1
  events[n] = "id: " .. n .. "\ndata: " .. (ngx.req.get_body_data() or "") .. "\n\n"
  local c = S:count() -- minus the sleepers
  if c < 0 then S:post(-c) end
  ngx.print(tostring(c < 0 and -c or 0))
end

return M
