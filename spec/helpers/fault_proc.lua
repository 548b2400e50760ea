-- Child processes for the fault specs: a Lua program started with the
-- interpreter the specs run on (SSE_LUA), its stdout read line by line, and
-- every child killed by its PID when the spec is done with it (kill_all).
local uv = require("luv")

local M = {}

local unpack = table.unpack or unpack -- luacheck: ignore

-- pid -> proc, for every child not yet reaped
local live = {}

--- The interpreter of the spec run (make sets SSE_LUA).
function M.lua_bin()
  return os.getenv("SSE_LUA") or "lua5.4"
end

local Proc = {}
Proc.__index = Proc

--- spawn(script, args [, on_line]) -> proc. on_line(line, proc) runs for
-- each line the child writes to stdout (also kept in proc.lines); stderr
-- is kept in proc.stderr. proc.exited, proc.code and proc.signal are set
-- when it ends. Callbacks never raise: a failing on_line is recorded in
-- proc.failure.
function M.spawn(script, args, on_line)
  local out, err = uv.new_pipe(false), uv.new_pipe(false)
  local p = setmetatable({ lines = {}, stderr = {}, exited = false }, Proc)
  local argv = { script }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = tostring(a) end
  local handle, pid = uv.spawn(M.lua_bin(), { args = argv, stdio = { nil, out, err } },
    function(code, sig)
      p.exited, p.code, p.signal = true, code, sig
      live[p.pid] = nil
      if not p.handle:is_closing() then p.handle:close() end
    end)
  if not handle then
    out:close()
    err:close()
    error("cannot start " .. M.lua_bin() .. " " .. script .. ": " .. tostring(pid))
  end
  p.handle, p.pid = handle, pid
  live[pid] = p
  local partial = ""
  out:read_start(function(rerr, data)
    if rerr or not data then
      if not out:is_closing() then out:close() end
      return
    end
    partial = partial .. data
    for line in partial:gmatch("([^\n]*)\n") do
      p.lines[#p.lines + 1] = line
      if on_line then
        local ok, e = pcall(on_line, line, p)
        if not ok then p.failure = p.failure or tostring(e) end
      end
    end
    partial = partial:match("[^\n]*$")
  end)
  err:read_start(function(rerr, data)
    if rerr or not data then
      if not err:is_closing() then err:close() end
      return
    end
    p.stderr[#p.stderr + 1] = data
  end)
  return p
end

--- Sends a signal ("sigstop", "sigcont", "sigkill", ...) to this child's
-- PID. Returns true, or false once it has been reaped.
function Proc:signal(sig)
  if self.exited then return false end
  uv.kill(self.pid, sig)
  return true
end

--- The last stdout line starting with prefix (without it), or nil.
function Proc:last(prefix)
  for i = #self.lines, 1, -1 do
    local l = self.lines[i]
    if l:sub(1, #prefix) == prefix then return l:sub(#prefix + 1) end
  end
  return nil
end

function Proc:stderr_text()
  return table.concat(self.stderr)
end

--- SIGKILL every child still running, each by its PID; a stopped child
-- dies too. The caller then runs the loop until they are reaped
-- (M.all_reaped()).
function M.kill_all()
  for pid, p in pairs(live) do
    if not p.exited then uv.kill(pid, "sigkill") end
  end
end

function M.all_reaped()
  return next(live) == nil
end

return M
