-- examples/sse-hub.service (issue 14): systemd reads the unit without a
-- complaint, its hardening rates "OK" (systemd-analyze security), its
-- ExecStart flags are sse-hub's, and sse-hub takes the token from
-- SSE_TOKEN (the unit's EnvironmentFile) without printing it.
local uv = require("luv")
local main = require("sse.app.main")
local C = require("helpers.http_client")

local LUA = os.getenv("SSE_LUA") or "lua5.4"
local UNIT = "examples/sse-hub.service"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- ExecStart's words (continuation lines joined).
local function exec_start(text)
  local line = text:gsub("\\\n", " "):match("\nExecStart=([^\n]*)")
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  return words
end

local function shell(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), (out:gsub("rc=%d+%s*$", ""))
end

local function have(cmd)
  local p = assert(io.popen("command -v " .. cmd))
  local found = p:read("*a")
  p:close()
  return found ~= ""
end

describe("examples/sse-hub.service", function()
  local text = read(UNIT)

  it("starts sse-hub with flags sse-hub knows", function()
    local words = exec_start(text)
    assert.are.equal("/usr/local/bin/sse-hub", words[1])
    local args = { (table.unpack or unpack)(words, 2) }
    local opts, err = main.parse(args)
    assert.is_table(opts, err)
    assert.are.equal("127.0.0.1", opts.host)
    assert.is_nil(text:find("--token", 1, true)) -- the token is in the environment, not on a command line
  end)

  it("is accepted by systemd-analyze verify and rated OK by systemd-analyze security", function()
    assert.is_true(have("systemd-analyze"), "systemd-analyze is not installed (Debian: systemd; .ci/deps.sh)")
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local root = io.popen("pwd"):read("*l")
    -- the same unit, starting this checkout's command (verify wants an executable)
    local unit = text:gsub("/usr/local/bin/sse%-hub", root .. "/bin/sse-hub")
    local f = assert(io.open(dir .. "/sse-hub.service", "wb"))
    f:write(unit)
    f:close()
    local rc, out = shell("systemd-analyze verify " .. dir .. "/sse-hub.service")
    assert.are.equal(0, rc, out)
    assert.are.equal("", out)
    rc, out = shell("systemd-analyze security --offline=yes " .. dir .. "/sse-hub.service")
    os.execute("rm -rf " .. dir)
    assert.are.equal(0, rc, out)
    local level = tonumber(out:match("Overall exposure level for sse%-hub%.service: ([%d.]+)"))
    assert.is_number(level, out)
    assert.is_true(level <= 2.0, out:sub(-300))
  end)
end)

describe("sse-hub and SSE_TOKEN", function()
  it("requires the token from the environment and keeps it out of its banner", function()
    local out, code = {}, nil
    local so = uv.new_pipe(false)
    local env = { "PATH=" .. os.getenv("PATH"), "SSE_TOKEN=env-s3cret" }
    for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
      if os.getenv(k) then env[#env + 1] = k .. "=" .. os.getenv(k) end
    end
    local h, pid = uv.spawn(LUA, { args = { "bin/sse-hub", "--port", "0" }, env = env, stdio = { nil, so, nil } },
      function(c) code = c end)
    assert(h, tostring(pid))
    so:read_start(function(_, d) if d then out[#out + 1] = d end end)
    assert.is_true(C.wait(function() return table.concat(out):find("stats", 1, true) ~= nil end, 5000))
    local banner = table.concat(out)
    local port = tonumber(banner:match("127%.0%.0%.1:(%d+)/"))
    assert.is_nil(banner:find("env-s3cret", 1, true), banner)
    assert.truthy(banner:find("Authorization: Bearer \"$SSE_TOKEN\"", 1, true), banner)
    local function get(path, auth)
      local c = C.connect(port)
      local res = assert(c:request(C.get(path, auth and { "Authorization: Bearer " .. auth .. "\r\n" }), 3000))
      c:close()
      return res.status
    end
    assert.are.equal(401, get("/metrics"))
    assert.are.equal(200, get("/metrics", "env-s3cret"))
    uv.kill(pid, "sigterm")
    assert.is_true(C.wait(function() return code ~= nil end, 8000))
    assert.are.equal(0, code)
    so:close()
    h:close()
    uv.run("nowait")
  end)
end)
