-- A real redis-server for specs: on a free loopback port, no persistence
-- (--save '' --appendonly no), in a scratch directory, stopped by its PID.
--
--   local R = require("helpers.redis_server")
--   local srv = R.start()            -- srv.port, srv.pid, srv.url
--   srv:cli("FLUSHALL")              -- redis-cli against it -> output text
--   srv:kill()  srv:restart()  srv:stop()   srv:pause()  srv:resume()
--
-- It runs outside any luv loop (its own process, started through sh), so a
-- spec's loop can close all of its handles without touching it.
local uv = require("luv")

local M = {}

local Server = {}
Server.__index = Server

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A free loopback TCP port (bound, read, released).
function M.free_port()
  local t = uv.new_tcp()
  assert(t:bind("127.0.0.1", 0))
  local port = t:getsockname().port
  t:close() -- libuv closes the socket at once; the handle goes with the loop
  return port
end

function M.available()
  return sh("command -v redis-server 2>/dev/null") ~= ""
end

local function spawn(self)
  local args = {
    "redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "''",
    "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
    "--dir", quote(self.dir), "--logfile", quote(self.dir .. "/redis.log"),
  }
  for _, a in ipairs(self.extra) do args[#args + 1] = quote(a) end
  local pid = sh(table.concat(args, " ") .. " >/dev/null 2>&1 & echo $!"):match("%d+")
  assert(pid, "cannot start redis-server")
  self.pid = tonumber(pid)
  -- ready when it answers PING (at most ~5 s); NOAUTH: it is up, behind a password
  for _ = 1, 500 do
    local pong = self:cli("PING")
    if pong:match("PONG") or pong:match("NOAUTH") then return end
    sh("sleep 0.01")
  end
  error("redis-server did not start on port " .. self.port .. ": " .. sh("cat " .. quote(self.dir .. "/redis.log")))
end

--- M.start([extra_args]) -> server
function M.start(extra)
  local dir = sh("mktemp -d /tmp/sse-redis.XXXXXX"):gsub("%s+$", "")
  local self = setmetatable({ port = M.free_port(), dir = dir, extra = extra or {} }, Server)
  self.url = "redis://127.0.0.1:" .. self.port
  spawn(self)
  return self
end

--- srv:cli(args...) -> what redis-cli printed
function Server:cli(...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = quote(a) end
  return sh(("redis-cli -h 127.0.0.1 -p %d %s 2>&1"):format(self.port, table.concat(args, " ")))
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local function wait_gone(pid)
  for _ = 1, 300 do
    if not alive(pid) then return true end
    sh("sleep 0.01")
  end
  return false
end

--- Kills the server at once (SIGKILL): its data is gone.
function Server:kill()
  if not self.pid then return end
  os.execute("kill -CONT " .. self.pid .. " 2>/dev/null")
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  wait_gone(self.pid)
  self.pid = nil
end

--- Starts it again on the same port (empty: nothing was persisted).
function Server:restart()
  self:kill()
  spawn(self)
end

--- Freezes it (SIGSTOP): connections stay open, nothing is answered.
function Server:pause()
  os.execute("kill -STOP " .. self.pid)
end

function Server:resume()
  os.execute("kill -CONT " .. self.pid)
end

--- Stops it (SIGTERM, then SIGKILL) and removes its directory.
function Server:stop()
  if self.pid then
    os.execute("kill -CONT " .. self.pid .. " 2>/dev/null")
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not wait_gone(self.pid) then self:kill() end
    self.pid = nil
  end
  if self.dir and self.dir:match("^/tmp/sse%-redis%.") then os.execute("rm -rf " .. quote(self.dir)) end
end

return M
