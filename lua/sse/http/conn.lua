--- sse.http.conn: one plain connection's state machine and its timeouts.
--
--   head  -> (body) -> dispatch -> idle | head (pipelined) | linger
--                               -> wait (res:later) -> answer -> as above
--   wait: the handler answers later; nothing more is read meanwhile
--   linger: our side shut down after an answer that closes; what the peer
--           still sends is discarded until it closes or the time runs out
-- A connection whose request got res:sse leaves this machinery: adopt()
-- hands it to the stream, which only watches for EOF. The server's sweep
-- timer enforces head_timeout, idle_timeout and the linger time.
local uv = require("luv")
local core = require("sse.core")
local response = require("sse.http.response")

local M = {}

--- Seconds a closing connection may keep sending before it is cut: after an
-- error answer the server shuts its side down and discards what still comes,
-- so the client reads the answer instead of a reset.
M.LINGER = 2
--- Past this many queued response bytes a connection is not read until its
-- client has taken them (pipelining without reading).
M.WRITE_HIGH = 256 * 1024
--- While a handler answers later (res:later), at most this many bytes the
-- client pipelines behind are read ahead (each request handled copies the
-- rest of the buffer, so it is kept small).
M.WAIT_READ = 16 * 1024
--- At most this many refused (503) connections linger at once; more are
-- closed straight after the answer is written.
M.MAX_REFUSED = 256

local HEAD, BODY, IDLE, LINGER, WAIT = "head", "body", "idle", "linger", "wait"

local process

-- Runs fn(...); logs an error instead of letting it reach luv.
local function guard(server, what, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    pcall(server.log, ("internal error in %s: %s"):format(what, tostring(err)))
  end
end
M.guard = guard

--- Forget a plain connection and close its handle now.
function M.close(server, conn)
  if conn.closed then return end
  conn.closed = true
  conn.buf, conn.req, conn.parts = nil, nil, nil
  server._conns[conn] = nil
  if conn.refused then server._nrefused = server._nrefused - 1 end
  local tcp = conn.tcp
  core.read_release(tcp)
  if not tcp:is_closing() then tcp:close() end
end
local close = M.close

-- Shut our side down after what is queued and discard what the peer still
-- sends, until it closes or the linger time runs out.
local function linger(server, conn)
  if conn.closed or conn.state == LINGER then return end
  conn.state = LINGER
  conn.buf, conn.req, conn.parts = nil, nil, nil
  -- the client gets idle_timeout to take a long answer, then M.LINGER
  conn.deadline = uv.now() + server._idle_ms
  if conn.paused then
    conn.paused = nil
    core.read_start(conn.tcp, conn.reader)
  end
  local ok, res = pcall(conn.tcp.shutdown, conn.tcp, function()
    if not conn.closed then conn.deadline = uv.now() + server._linger_ms end
  end)
  if not ok or not res then close(server, conn) end
end

--- After an ordinary answer: close when the request asked for it; after a
-- late one (res:later), go on with what the client pipelined meanwhile.
function M.answered(server, conn, keep)
  conn.waiting = nil
  if not keep then return linger(server, conn) end
  if conn.state ~= WAIT or conn.closed then return end
  conn.state = conn.buf == "" and IDLE or HEAD
  conn.deadline = uv.now() + (conn.state == IDLE and server._idle_ms or server._head_ms)
  if conn.buf ~= "" then guard(server, "pipelined requests", process, server, conn) end
  -- read on only once what was read ahead is (nearly) used up
  if conn.wait_paused and not conn.closed and not conn.stream and conn.state ~= LINGER
     and (conn.state ~= WAIT or #conn.buf < M.WAIT_READ) then
    conn.wait_paused = nil
    core.read_start(conn.tcp, conn.reader)
  end
end

local function text_answer(status, msg, extra)
  local body = msg .. "\n"
  local lines = { "Content-Type", "text/plain; charset=utf-8", "Content-Length", tostring(#body) }
  for _, v in ipairs(extra or {}) do lines[#lines + 1] = v end
  lines[#lines + 1] = "Connection"
  lines[#lines + 1] = "close"
  return response.head(status, lines) .. body
end

--- Answer a protocol error and close: status, short text body naming it.
function M.fail(server, conn, status, msg)
  if conn.closed or conn.state == LINGER then return end
  server:_count(status)
  conn.tcp:write(text_answer(status, msg))
  linger(server, conn)
end
local fail = M.fail

--- A new client past max_connections (the listener counts): 503, then close.
function M.refuse(server, tcp)
  server:_count(503)
  tcp:write(text_answer(503, "too many connections", { "Retry-After", "1" }))
  if server._nrefused >= M.MAX_REFUSED then
    -- too many already lingering: the answer is queued; close after it
    tcp:shutdown(function() pcall(function() if not tcp:is_closing() then tcp:close() end end) end)
    return
  end
  server._nrefused = server._nrefused + 1
  local conn = { tcp = tcp, refused = true, state = LINGER, deadline = uv.now() + server._linger_ms }
  conn.reader = function(err, data)
    if err or not data then guard(server, "read", close, server, conn) end
  end
  server._conns[conn] = true
  core.read_start(tcp, conn.reader)
  tcp:shutdown()
end

-- A client pipelining without reading its answers is not read further.
local function pause_if_backlogged(server, conn)
  if conn.tcp:get_write_queue_size() > M.WRITE_HIGH then
    conn.tcp:read_stop()
    conn.paused = true
    conn.deadline = uv.now() + server._idle_ms
  end
end

local function on_read(server, conn, err, data)
  if conn.closed then return end
  if err or not data then return close(server, conn) end
  local st = conn.state
  if st == LINGER then return end -- discarded
  if st == WAIT then
    -- kept for after the answer (reading goes on, so a client that leaves
    -- is noticed); a client that piles up more stops being read
    conn.buf = conn.buf .. data
    if #conn.buf > M.WAIT_READ then
      conn.tcp:read_stop()
      conn.wait_paused = true
    end
    return
  end
  if st == IDLE then
    conn.state = HEAD
    conn.deadline = uv.now() + server._head_ms
  elseif st == BODY then
    -- a body must keep moving, and at 1 KB/s at least past head_timeout
    conn.deadline = math.min(uv.now() + server._head_ms, conn.body_deadline)
  end
  if st == BODY then
    -- body bytes are kept as a list of chunks, joined once (linear time)
    local parts = conn.parts
    parts[#parts + 1] = data
    conn.have = conn.have + #data
  else
    local buf = conn.buf
    conn.buf = buf == "" and data or buf .. data -- a head: at most max_head_bytes
  end
  process(server, conn)
  if conn.closed or conn.state == LINGER or conn.stream then return end
  pause_if_backlogged(server, conn)
end

-- Reads the connection on through the core (core.read_start).
local function start_reading(server, conn)
  conn.reader = function(rerr, data)
    local rok, e = pcall(on_read, server, conn, rerr, data)
    if not rok then
      pcall(server.log, "internal error in read: " .. tostring(e))
      pcall(close, server, conn)
    end
  end
  local rok, rerr = core.read_start(conn.tcp, conn.reader)
  if not rok then
    pcall(server.log, "read_start failed: " .. tostring(rerr))
    close(server, conn)
  end
end

--- The listener's callback: a connection's first bytes (the core accepted
-- it and read until now), with req when they held a whole head the core
-- parsed (data is then what followed it). It is read on through
-- core.read_start unless the request made it a stream's or closed it.
function M.start(server, tcp, data, req)
  if not core.accepted_inherit then tcp:nodelay(true) end -- else the listener's (server.lua)
  local conn = {
    tcp = tcp, buf = data, scanned = 0, state = HEAD,
    deadline = uv.now() + server._head_ms,
  }
  server._conns[conn] = true
  process(server, conn, req)
  if conn.closed or conn.stream then return end
  start_reading(server, conn)
  if conn.closed or conn.state == LINGER then return end
  pause_if_backlogged(server, conn)
end

-- A request head of n bytes at the start of buf, parsed into req: checks
-- it and takes its body (all here, or to come in state BODY). False: stop
-- (an answer was failed, or the body is still coming).
local function took_head(server, conn, req, buf, n)
  local len = req.content_length or 0
  if len > server.max_body_bytes then
    fail(server, conn, 413, ("request body over %d bytes"):format(server.max_body_bytes))
    return false
  end
  local expect = req.headers.expect
  if expect then
    if expect:lower() ~= "100-continue" then
      fail(server, conn, 417, "unsupported Expect header")
      return false
    end
    if req.version == "1.1" and len > 0 and #buf < n + len then
      conn.tcp:write(response.head(100, {}))
    end
  end
  conn.req, conn.need, conn.scanned = req, len, 0
  if len == 0 then
    conn.buf = #buf > n and buf:sub(n + 1) or ""
  elseif #buf >= n + len then
    -- the whole body is here: one copy of what follows it, not three
    -- (pipelined requests behind would be copied once per request)
    req.body = buf:sub(n + 1, n + len)
    conn.buf = #buf > n + len and buf:sub(n + len + 1) or ""
    conn.need = 0
  else
    local rest = #buf > n and buf:sub(n + 1) or ""
    conn.buf, conn.parts, conn.have = "", { rest }, #rest
    conn.state = BODY
    if #rest < len then
      conn.body_deadline = uv.now() + server._head_ms + len
      conn.deadline = math.min(uv.now() + server._head_ms, conn.body_deadline)
      return false
    end
  end
  return true
end

-- Answer every complete request in conn.buf, in order; parsed: the first
-- one's head, parsed by the core already (conn.buf is what followed it).
function process(server, conn, parsed)
  while true do
    if parsed then
      local req = parsed
      parsed = nil
      if not took_head(server, conn, req, conn.buf, 0) then return end
    elseif conn.state == HEAD then
      local buf = conn.buf
      local n, status, msg = core.http_head_end(buf, conn.scanned + 1, server._limits)
      if not n then
        if status then return fail(server, conn, status, msg) end
        conn.scanned = #buf
        return
      end
      local req
      req, status, msg = core.http_parse_request(buf, server._limits)
      if not req then return fail(server, conn, status, msg) end
      if not took_head(server, conn, req, buf, n) then return end
    end
    local req, need = conn.req, conn.need
    if need == 0 then
      req.body = req.body or ""
    else
      -- BODY: complete once `need` bytes are in conn.parts
      if conn.have < need then return end
      local all = table.concat(conn.parts)
      conn.parts, conn.have = nil, nil
      req.body = #all > need and all:sub(1, need) or all
      conn.buf = #all > need and all:sub(need + 1) or ""
    end
    conn.req = nil
    server._router:dispatch(server, conn, req)
    if conn.closed or conn.state == LINGER or conn.stream then return end
    if conn.waiting then
      -- res:later(): handle nothing more until the answer is written
      conn.state = WAIT
      conn.deadline = uv.now() + server._idle_ms
      return
    end
    if conn.buf == "" then
      conn.state = IDLE
      conn.deadline = uv.now() + server._idle_ms
      return
    end
    conn.state = HEAD
    conn.deadline = uv.now() + server._head_ms
  end
end

--- The connection is the stream's from now on: only EOF is watched for
-- (bytes from the client are ignored; requests pipelined behind are dropped).
function M.adopt(server, conn, stream)
  server._conns[conn] = nil
  conn.stream = true
  conn.buf, conn.req, conn.parts, conn.reader = nil, nil, nil, nil
  stream:_set_tag(server._tag) -- app:close() finds it (the listener counts it)
  -- from now on the core reads the connection for its end (bytes the
  -- client sends are dropped): no Lua runs per stream until it closes
  if not stream:_watch_eof() then stream:close("read failed") end
end

--- Sweep: time out heads, idle connections and lingering closes; resume
-- paused readers whose client caught up.
function M.sweep(server)
  local now = uv.now()
  -- connections that sent nothing in head_timeout: closed by the core
  if server._tcp then server._tcp:expire(server._head_ms) end
  for conn in pairs(server._conns) do
    if conn.paused and not conn.closed and conn.state ~= WAIT
       and conn.tcp:get_write_queue_size() <= M.WRITE_HIGH / 2 then
      conn.paused = nil
      core.read_start(conn.tcp, conn.reader)
      local st = conn.state
      conn.deadline = st == IDLE and now + server._idle_ms
        or st == BODY and math.min(now + server._head_ms, conn.body_deadline)
        or now + server._head_ms
    end
    if not conn.closed and now >= conn.deadline then
      local st = conn.state
      if st == WAIT then
        fail(server, conn, 503, "no answer in time")
        if not conn.closed then conn.deadline = now + server._linger_ms end
      elseif st == LINGER or st == IDLE or conn.paused or (st == HEAD and conn.buf == "") then
        close(server, conn)
      else
        fail(server, conn, 408, st == HEAD and "request head not received in time"
          or "request body not received in time")
        -- the 408 gets one linger period, not idle_timeout
        if not conn.closed then conn.deadline = now + server._linger_ms end
      end
    end
  end
end

return M
