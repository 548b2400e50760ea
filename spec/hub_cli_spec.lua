-- The demo hub as a newcomer starts it (issue 9): `lua5.4
-- examples/hub/server.lua --help` from a checkout, and bin/sse-hub, the
-- installed command, each spawned with a clean environment (PATH only: no
-- LUA_PATH, no LUA_CPATH). They find the checkout's lua/ and build/<lua>/,
-- or the installed modules and dashboard on Lua's search path, and name
-- `make` when the C module is not built.
local uv = require("luv")
local C = require("helpers.http_client")

local LUA = os.getenv("SSE_LUA") or "lua5.4"
local BUILD = os.getenv("SSE_BUILD") or "build/" .. LUA
local ROOT = (function()
  local p = io.popen("pwd")
  local d = p:read("*l")
  p:close()
  return d
end)()

-- PATH, plus the sanitizer runtimes a spec-san run preloads.
local function clean_env(extra)
  local env = { "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin") }
  for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then env[#env + 1] = k .. "=" .. os.getenv(k) end
  end
  for _, e in ipairs(extra or {}) do env[#env + 1] = e end
  return env
end

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, "failed: " .. cmd)
end

-- Spawns the interpreter on args in cwd; returns a process record whose
-- out/err fill as it runs.
local function start(args, cwd, env)
  local p = { out = {}, err = {} }
  local so, se = uv.new_pipe(false), uv.new_pipe(false)
  local h, pid = uv.spawn(LUA, { args = args, cwd = cwd, env = env or clean_env(), stdio = { nil, so, se } },
    function(code, sig) p.code, p.sig = code, sig end)
  assert(h, tostring(pid))
  p.handle, p.pid = h, pid
  so:read_start(function(_, d) if d then p.out[#p.out + 1] = d end end)
  se:read_start(function(_, d) if d then p.err[#p.err + 1] = d end end)
  function p.stdout() return table.concat(p.out) end
  function p.stderr() return table.concat(p.err) end
  function p.wait(ms) return C.wait(function() return p.code ~= nil end, ms or 5000) end
  function p.finish()
    if p.code == nil then uv.kill(pid, "sigkill") end
    p.wait(3000)
    for _, x in ipairs({ so, se, h }) do if not x:is_closing() then x:close() end end
    uv.run("nowait") -- let the close callbacks run (LuaJIT crashes at exit otherwise)
  end
  return p
end

-- Runs to the end; returns code, stdout, stderr.
local function run(args, cwd, env)
  local p = start(args, cwd, env)
  local ok = p.wait(10000)
  p.finish()
  assert(ok, "did not exit: " .. table.concat(args, " "))
  return p.code, p.stdout(), p.stderr()
end

local function get(port, path)
  local c = C.connect(port)
  local res = c:request(C.get(path), 3000)
  c:close()
  return res
end

-- Starts the hub (args after the script), checks it serves its dashboard
-- and stats, stops it with SIGTERM: exit 0.
local function serves(args, cwd, env)
  local p = start(args, cwd, env)
  assert.is_true(C.wait(function() return p.stdout():find("listening on", 1, true) ~= nil or p.code ~= nil end,
    5000), p.stderr())
  local port = tonumber(p.stdout():match("http://127%.0%.0%.1:(%d+)/"))
  assert.truthy(port, p.stdout() .. p.stderr())
  local page = get(port, "/")
  assert.are.equal(200, page.status)
  assert.truthy(page.headers["content-type"]:find("text/html", 1, true))
  assert.truthy(page.body:find("sse-subscriber.js", 1, true))
  -- the browser module the page loads, found beside the dashboard
  local js = get(port, "/sse-subscriber.js")
  assert.are.equal(200, js.status)
  assert.truthy(js.body:find("new this._ES(", 1, true), "not sse-subscriber.js")
  assert.are.equal(200, get(port, "/stats").status)
  uv.kill(p.pid, "sigterm")
  assert.is_true(p.wait(5000))
  p.finish()
  assert.are.equal(0, p.code, p.stderr())
  return p
end

describe("the demo hub command (newcomer)", function()
  local tmp
  before_each(function()
    tmp = os.tmpname()
    os.remove(tmp)
    sh("mkdir -p " .. tmp)
  end)
  after_each(function()
    sh("rm -rf " .. tmp)
  end)

  it("examples/hub/server.lua --help works from a clean environment, here and from elsewhere", function()
    local code, out, err = run({ "examples/hub/server.lua", "--help" }, ROOT)
    assert.are.equal(0, code, err)
    assert.truthy(out:find("^usage: " .. LUA .. " examples/hub/server.lua %[options%]"), out)
    assert.truthy(out:find("--replay-events INT", 1, true))
    code, out, err = run({ ROOT .. "/examples/hub/server.lua", "--help" }, tmp)
    assert.are.equal(0, code, err)
    assert.truthy(out:find("usage: ", 1, true))
    code, out = run({ "bin/sse-hub", "--help" }, ROOT)
    assert.are.equal(0, code)
    assert.truthy(out:find("^usage: sse%-hub %[options%]"), out)
    -- a bad flag: status 2, the flag named
    local _
    code, _, err = run({ "bin/sse-hub", "--bogus" }, ROOT)
    assert.are.equal(2, code)
    assert.truthy(err:find("sse-hub: unknown option --bogus", 1, true), err)
    -- a bad value of the hub's own: the message alone, no "bad argument" around it
    code, _, err = run({ "bin/sse-hub", "--port", "0", "--jwt-secret", "short" }, ROOT)
    assert.are.equal(2, code)
    assert.are.equal("sse-hub: option 'jwt_secret': secret shorter than 32 bytes\n", err:match("^[^\n]*\n"))
    code, _, err = run({ "bin/sse-hub", "--port", "0", "--token", "two words" }, ROOT)
    assert.are.equal(2, code)
    assert.truthy(err:find("^sse%-hub: option 'token' must be a bearer token"), err)
  end)

  it("both start from a clean environment and serve the dashboard", function()
    -- the checkout's own build for this interpreter (spec-san: the ASan one)
    local env = clean_env({ "LUA_CPATH=" .. ROOT .. "/" .. BUILD .. "/?.so;;" })
    serves({ "examples/hub/server.lua", "--port", "0" }, ROOT, env)
    serves({ ROOT .. "/bin/sse-hub", "--port", "0" }, tmp, env)
    if BUILD == "build/" .. LUA then
      -- and with no LUA_CPATH at all: build/<lua>/ is found by itself
      serves({ ROOT .. "/examples/hub/server.lua", "--port", "0" }, tmp)
    end
  end)

  it("names `make` when the C module is not built", function()
    -- a checkout without build/
    sh(("cp -r %s/lua %s/bin %s/"):format(ROOT, ROOT, tmp))
    sh(("mkdir -p %s/examples && cp -r %s/examples/hub %s/examples/"):format(tmp, ROOT, tmp))
    local code, out, err = run({ "examples/hub/server.lua", "--help" }, tmp)
    assert.are.equal(1, code, out)
    local want = LUA:find("luajit") and "luajit" or LUA
    assert.truthy(err:find("the C module sse.core is not built", 1, true), err)
    assert.truthy(err:find("build/" .. want .. "/sse/core.so", 1, true), err)
    assert.truthy(err:find("run `make", 1, true), err)
  end)

  it("installed (make install), bin/sse-hub finds the modules and its dashboard on the search path", function()
    local dest = tmp .. "/root"
    sh(("make -s install LUA=%s BUILD=%s DESTDIR=%s PREFIX=/usr/local >/dev/null"):format(LUA, BUILD, dest))
    local ver = LUA:find("luajit") and "5.1" or LUA:match("%d+%.%d+")
    local share, lib = dest .. "/usr/local/share/lua/" .. ver, dest .. "/usr/local/lib/lua/" .. ver
    local f = io.open(share .. "/sse/app/dashboard.html")
    assert.truthy(f, "dashboard not installed in " .. share .. "/sse/app/")
    f:close()
    -- the command alone, outside any checkout, on the installed tree
    sh(("mkdir -p %s/bin && cp %s/bin/sse-hub %s/bin/"):format(tmp, ROOT, tmp))
    serves({ tmp .. "/bin/sse-hub", "--port", "0" }, tmp, clean_env({
      "LUA_PATH=" .. share .. "/?.lua;" .. share .. "/?/init.lua;;",
      "LUA_CPATH=" .. lib .. "/?.so;;",
    }))
  end)
end)
