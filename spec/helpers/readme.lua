-- Helpers of spec/readme_spec.lua: README.md's fenced code blocks, their
-- markers, and child processes run with a bounded wait.
--
-- A marker is an HTML comment on the line just above a fence (GitHub does
-- not show it):   <!-- readme-test: KIND ARGS -->
-- Kinds are listed in spec/readme_spec.lua.
local uv = require("luv")
local C = require("helpers.http_client")

local M = {}

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- blocks(text) -> list of {lang, body, line, kind, args}: every fenced
-- block; kind/args from the marker just above it (nil when there is none).
function M.blocks(text)
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = l end
  local out, i = {}, 1
  while i <= #lines do
    local fence, lang = lines[i]:match("^(```+)%s*([%w_+-]*)%s*$")
    if fence then
      local start, body = i, {}
      i = i + 1
      while i <= #lines and lines[i] ~= fence do
        body[#body + 1] = lines[i]
        i = i + 1
      end
      assert(i <= #lines, "README.md: the block at line " .. start .. " is not closed")
      local b = { lang = lang, body = table.concat(body, "\n") .. "\n", line = start }
      local marker = start > 1 and lines[start - 1]:match("^<!%-%-%s*readme%-test:%s*(.-)%s*%-%->$")
      if marker then
        b.kind, b.args = marker:match("^(%S+)%s*(.*)$")
      end
      out[#out + 1] = b
    end
    i = i + 1
  end
  return out
end

--- section(text, title) -> the text under the heading whose title starts
-- with title, up to the next heading of the same or a higher level.
function M.section(text, title)
  local out, level
  for l in (text .. "\n"):gmatch("(.-)\n") do
    local hashes, t = l:match("^(#+)%s+(.*)$")
    if level and hashes and #hashes <= level then break end
    if out then out[#out + 1] = l end
    if not level and hashes and t:sub(1, #title) == title then
      level, out = #hashes, {}
    end
  end
  return out and table.concat(out, "\n")
end

--- expected(body) -> list of {n, want}: the n-th print of the block (by
-- its place in the text) writes the line want. `print(...)  --> want` on
-- one line, or a `--> want` line right under a print; a ` -- ` comment
-- after want is not part of it.
function M.expected(body)
  local out, n, waiting = {}, 0, nil
  for l in body:gmatch("[^\n]+") do
    local want
    if l:find("^%s*print%(") then
      n = n + 1
      want = l:match("^%s*print%b()%s*%-%->%s*(.-)%s*$")
      waiting = not want -- its output may be on the next line
    elseif waiting then
      want = l:match("^%s*%-%->%s*(.-)%s*$")
      waiting = false
    end
    if want then out[#out + 1] = { n = n, want = (want:gsub("%s+%-%- .*$", "")) } end
  end
  return out
end

local function squeeze(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

--- same_output(got_line, want) -> true when equal up to runs of white space
-- (print separates values with tabs; the README aligns with spaces); `…`
-- in want matches any text.
function M.same_output(got, want)
  got, want = squeeze(got), squeeze(want)
  local pattern = "^" .. want:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("…", ".-") .. "$"
  return got:find(pattern) ~= nil
end

--- spawn(cmd, args, opts) -> a process record: out()/err() fill as it runs,
-- wait(ms), kill(), finish(). opts: cwd, env (list of "K=V"), stdin (text).
function M.spawn(cmd, args, opts)
  opts = opts or {}
  local p = { o = {}, e = {} }
  local si, so, se = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local h, pid = uv.spawn(cmd, { args = args, cwd = opts.cwd, env = opts.env, stdio = { si, so, se } },
    function(code, sig) p.code, p.sig = code, sig end)
  assert(h, "cannot start " .. cmd .. ": " .. tostring(pid))
  p.pid = pid
  so:read_start(function(_, d) if d then p.o[#p.o + 1] = d end end)
  se:read_start(function(_, d) if d then p.e[#p.e + 1] = d end end)
  if opts.stdin then si:write(opts.stdin) end
  si:shutdown()
  function p.out() return table.concat(p.o) end
  function p.err() return table.concat(p.e) end
  function p.wait(ms) return C.wait(function() return p.code ~= nil end, ms or 10000) end
  function p.kill(sig)
    if p.code == nil then uv.kill(pid, sig or "sigterm") end
  end
  function p.finish()
    p.kill("sigkill")
    p.wait(3000)
    for _, x in ipairs({ si, so, se, h }) do if not x:is_closing() then x:close() end end
    uv.run("nowait")
  end
  return p
end

--- run(cmd, args, opts) -> code, stdout, stderr (killed after opts.ms, 20 s).
function M.run(cmd, args, opts)
  local p = M.spawn(cmd, args, opts)
  local done = p.wait((opts and opts.ms) or 20000)
  p.finish()
  assert(done, "did not finish: " .. cmd .. " " .. table.concat(args, " ") .. "\n" .. p.out() .. p.err())
  return p.code, p.out(), p.err()
end

--- The environment of a Lua child: PATH, the spec's search paths, and the
-- sanitizer runtime a spec-san run preloads (M.env_plain: PATH and HOME,
-- for curl and sh, which are not to run under ASan).
function M.env(extra)
  local env = {}
  for _, k in ipairs({ "PATH", "HOME", "LUA_PATH", "LUA_CPATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then env[#env + 1] = k .. "=" .. os.getenv(k) end
  end
  for _, e in ipairs(extra or {}) do env[#env + 1] = e end
  return env
end

function M.env_plain(extra)
  local env = {}
  for _, k in ipairs({ "PATH", "HOME" }) do
    if os.getenv(k) then env[#env + 1] = k .. "=" .. os.getenv(k) end
  end
  for _, e in ipairs(extra or {}) do env[#env + 1] = e end
  return env
end

--- tmpfile(text) -> path of a new file holding text (removed by the caller).
function M.tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

return M
