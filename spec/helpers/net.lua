-- Real-socket helpers for end-to-end specs: a luv loop with a guard timer,
-- and loopback TCP pairs whose server side becomes an sse.Stream.
local uv = require("luv")
local ref = require("helpers.ref_parser")

local M = {}

-- The failure of the run in progress: an error inside a luv callback must
-- fail the spec, not reach luv's handler (which exits the process).
local current_failure

local function guarded(fn)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then
      current_failure = current_failure or err
      uv.stop()
    end
  end
end
M.guarded = guarded

--- Runs body(done) inside uv.run(); fails if done() is not called within
-- timeout seconds. Every handle still open afterwards is closed.
function M.run(timeout, body)
  local finished, failure = false, nil
  current_failure = nil
  -- the loop's clock is as old as its last turn: a spec that worked for
  -- seconds without running the loop (subprocesses, a long test) would
  -- otherwise see this guard fire at once, before any I/O
  uv.update_time()
  local guard = uv.new_timer()
  local function done()
    finished = true
    guard:stop()
    uv.stop()
  end
  guard:start(math.floor(timeout * 1000), 0, function()
    failure = "timed out after " .. timeout .. " s"
    uv.stop()
  end)
  local ok, err = xpcall(body, debug.traceback, done)
  if not ok then failure = err else uv.run() end
  failure = current_failure or failure
  if not guard:is_closing() then guard:close() end
  uv.walk(function(h) if not h:is_closing() then h:close() end end)
  uv.run() -- let the close callbacks run
  assert(failure == nil and finished, failure or "body did not finish")
end

--- Calls fn after ms milliseconds (a one-shot timer).
function M.after(ms, fn)
  local t = uv.new_timer()
  t:start(ms, 0, guarded(function()
    t:close()
    fn()
  end))
  return t
end

--- Polls cond() every 5 ms; calls fn once it holds.
function M.when(cond, fn)
  local t = uv.new_timer()
  t:start(5, 5, guarded(function()
    if cond() then
      t:stop()
      t:close()
      fn()
    end
  end))
  return t
end

--- A client connection: collects what it receives.
-- opts.read = false: connect but never read (a slow consumer).
function M.client(port, opts)
  opts = opts or {}
  local c = { buf = {}, eof = false, tcp = uv.new_tcp(), n = 0, last = "" }
  if opts.rcvbuf then c.tcp:recv_buffer_size(opts.rcvbuf) end
  c.tcp:connect("127.0.0.1", port, function(err)
    if err then c.error = err return end
    c.connected = true
    if opts.read ~= false then c:start() end
  end)
  function c:start()
    self.tcp:read_start(function(err, data)
      if err or not data then
        self.eof = true
        if not self.tcp:is_closing() then self.tcp:close() end
      else
        self.buf[#self.buf + 1] = data
        -- count blank lines (event ends) without reparsing everything
        local s2 = self.last .. data
        local _, k = s2:gsub("\n\n", "")
        self.n = self.n + k
        self.last = s2:sub(-1)
        if self.last == "\n" and s2:sub(-2) == "\n\n" then self.last = "" end
      end
    end)
  end
  function c:text() return table.concat(self.buf) end
  function c:events() return (ref.parse(self:text())) end
  function c:close() if not self.tcp:is_closing() then self.tcp:close() end end
  return c
end

--- A listening server; on_conn(tcp) gets each accepted connection.
function M.server(on_conn, sndbuf)
  local s = uv.new_tcp()
  assert(s:bind("127.0.0.1", 0))
  assert(s:listen(512, guarded(function(err)
    if err then return end
    local c = uv.new_tcp()
    s:accept(c)
    if sndbuf then c:send_buffer_size(sndbuf) end
    on_conn(c)
  end)))
  return s, s:getsockname().port
end

return M
