-- A client that vanishes without FIN or RST (half-open): it runs in a
-- network namespace of its own, joined to this one by a veth pair; cutting
-- the link drops every packet silently. The server must notice through its
-- keep-alive writes going unacknowledged (write_timeout, TCP_USER_TIMEOUT)
-- and close the stream. Needs root and `ip netns` (CI has both).
local uv = require("luv")
local sse = require("sse")
local C = require("helpers.http_client")

local id = tostring(uv.os_getpid() % 100000)
local NS = "sse-ho-" .. id
local HOST_IF, NS_IF = "sseh" .. id, "ssec" .. id
local octet = 16 + uv.os_getpid() % 200
local SERVER_IP, CLIENT_IP = ("10.77.%d.1"):format(octet), ("10.77.%d.2"):format(octet)

local function sh(cmd)
  return os.execute(cmd .. " >/dev/null 2>&1")
end

local function setup_net()
  sh("ip netns del " .. NS)
  return sh("ip netns add " .. NS)
    and sh(("ip link add %s type veth peer name %s"):format(HOST_IF, NS_IF))
    and sh(("ip link set %s netns %s"):format(NS_IF, NS))
    and sh(("ip addr add %s/30 dev %s && ip link set %s up"):format(SERVER_IP, HOST_IF, HOST_IF))
    and sh(("ip netns exec %s ip addr add %s/30 dev %s"):format(NS, CLIENT_IP, NS_IF))
    and sh(("ip netns exec %s ip link set %s up && ip netns exec %s ip link set lo up"):format(NS, NS_IF, NS))
end

local function teardown_net()
  sh("ip netns del " .. NS) -- removes the veth pair with it
  sh("ip link del " .. HOST_IF)
end

local available = setup_net()
teardown_net()

-- Starts a hub on SERVER_IP, a client in the namespace, waits until it is
-- live, cuts the link, and returns the seconds until the server closed the
-- stream (or nil if it did not within `wait`).
local function vanish(write_timeout, wait)
  assert(setup_net(), "network namespace setup failed")
  local hub = sse.Hub.new({ keepalive = 0.2 })
  local app = sse.http.new({ host = SERVER_IP, port = 0, log = function() end })
  local closed_at
  app:get("/events", function(_, res)
    local st = res:sse({ write_timeout = write_timeout })
    st:on_close(function() closed_at = uv.hrtime() end)
    hub:attach(st)
  end)
  local port = assert(app:listen())
  local out = {}
  local stdout = uv.new_pipe()
  local proc = uv.spawn("ip", {
    args = { "netns", "exec", NS, os.getenv("SSE_LUA") or "lua5.4", "spec/helpers/halfopen_client.lua",
             SERVER_IP, tostring(port) },
    stdio = { nil, stdout, 2 },
  }, function() end)
  assert(proc, "could not start the client")
  stdout:read_start(function(_, data) if data then out[#out + 1] = data end end)
  -- 10 s: a sanitizer build on a busy machine
  local ok = C.wait(function() return table.concat(out):find("open", 1, true) ~= nil end, 10000)
  local result
  if ok and hub:connection_count() == 1 then
    sh(("ip netns exec %s ip link set %s down"):format(NS, NS_IF)) -- silence: no FIN, no RST
    local cut = uv.hrtime()
    C.wait(function() return closed_at ~= nil end, wait * 1000)
    result = closed_at and (closed_at - cut) / 1e9
  end
  proc:kill("sigkill")
  C.wait(function() return false end, 50)
  app:close()
  hub:close()
  if not stdout:is_closing() then stdout:close() end
  if not proc:is_closing() then proc:close() end
  C.wait(function() return false end, 50)
  teardown_net()
  assert(ok, "the client never saw its stream open: " .. table.concat(out))
  return result
end

describe("a client that vanishes without FIN (half-open)", function()
  if not available then
    pending("needs root and `ip netns` to cut a link silently")
    return
  end

  it("is closed by the server within keep-alive + write_timeout", function()
    local took = vanish(1, 6)
    assert.is_not_nil(took, "the server never noticed the vanished client")
    -- 0.2 s keep-alive, 1 s write timeout, the kernel's retransmission timer
    assert.is_true(took >= 0.9 and took < 4, ("closed after %.2f s"):format(took))
    io.stdout:write(("\n  [half-open] cut link noticed, stream closed after %.2f s"
      .. " (keep-alive 0.2 s, write_timeout 1 s)\n"):format(took))
  end)

  it("stays open without a write timeout (the kernel would wait ~15 minutes)", function()
    local took = vanish(false, 3)
    assert.is_nil(took, "closed after " .. tostring(took) .. " s without a write timeout")
  end)
end)
