-- Reset storm (issue 9): a peer that resets its connection (SO_LINGER {1, 0},
-- so the kernel sends RST) must never kill the process. A write after the
-- reset was noticed raises SIGPIPE, whose default action ends the process
-- (exit status 141); sse.core ignores the signal when it is loaded (see
-- "Signals" in README.md). Here a thousand connections are reset at random
-- points by python's socket module (spec/helpers/reset_attack.py, nothing
-- of ours) against the demo hub and against a bare sse.Stream, each in a
-- child process; the process must live and serve afterwards.
--
-- SSE_RESET_COUNT (default 1000) and SSE_RESET_SEED repeat a run.
local uv = require("luv")
local cjson = require("cjson")
local proc = require("helpers.fault_proc")
local C = require("helpers.http_client")

local COUNT = tonumber(os.getenv("SSE_RESET_COUNT") or "1000")
local SEED = tonumber(os.getenv("SSE_RESET_SEED") or "") or (os.time() % 100000)
local ATTACK = "spec/helpers/reset_attack.py"

-- Runs the attacker to its end (bounded); returns its summary table.
local function attack(port, target)
  local out, err, code = {}, {}, nil
  local so, se = uv.new_pipe(false), uv.new_pipe(false)
  local handle, pid = uv.spawn("python3", {
    args = { ATTACK, tostring(port), target, tostring(COUNT), tostring(SEED) },
    stdio = { nil, so, se },
    -- not the sanitizer runtimes a spec-san run preloads: python is not ours
    env = { "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin") },
  }, function(c) code = c end)
  assert(handle, "cannot run python3 (apt-get install python3): " .. tostring(pid))
  so:read_start(function(_, d) if d then out[#out + 1] = d end end)
  se:read_start(function(_, d) if d then err[#err + 1] = d end end)
  local finished = C.wait(function() return code ~= nil end, 60000)
  if not finished then uv.kill(pid, "sigkill") end
  C.wait(function() return code ~= nil end, 2000)
  for _, h in ipairs({ so, se, handle }) do if not h:is_closing() then h:close() end end
  uv.run("nowait") -- let the close callbacks run
  assert(finished, "the attacker did not finish in 60 s")
  local text = table.concat(out)
  local ok, summary = pcall(cjson.decode, text:match("[^\n]*") or "")
  assert(ok, ("attacker output: %s %s"):format(text, table.concat(err)))
  summary.code = code
  return summary
end

-- The child's fate, for messages.
local function fate(p)
  return ("exited=%s code=%s signal=%s stderr=%s"):format(tostring(p.exited), tostring(p.code),
    tostring(p.signal), p:stderr_text())
end

local function stop(p)
  proc.kill_all()
  C.wait(function() return p.exited end, 3000)
end

describe("reset storm (SIGPIPE)", function()
  after_each(function()
    proc.kill_all()
    C.wait(proc.all_reaped, 3000)
  end)

  -- The demo hub (script: its command, or a wrapper that runs it) against
  -- the storm; returns the lines it printed.
  local function hub_storm(script)
    local port
    local hub = proc.spawn(script, { "--port", 0, "--keepalive", "0.005" },
      function(line) port = port or tonumber(line:match("listening on http://127%.0%.0%.1:(%d+)/")) end)
    assert.is_true(C.wait(function() return port ~= nil or hub.exited end, 5000), fate(hub))
    assert.truthy(port, fate(hub))

    local s = attack(port, "hub")
    C.sleep(50)
    assert.is_false(hub.exited, "the hub died (seed " .. SEED .. "): " .. fate(hub))
    -- every mode was tried, and the hub accepted every connection
    for _, m in ipairs({ "request", "head", "stream", "pipelined", "body_in", "body_out" }) do
      assert.truthy((s.modes[m] or 0) > 0, "mode " .. m .. " never ran (seed " .. SEED .. ")")
    end
    assert.are.equal(COUNT, s.done, cjson.encode(s) .. " " .. fate(hub))
    assert.are.equal(0, s.refused)
    assert.is_true(s.published > 0)

    -- it answers a request, every reset stream is gone, and a new stream gets an event
    local stats
    assert.is_true(C.wait(function()
      local c = C.connect(port)
      local res = c:request(C.get("/stats"), 2000)
      c:close()
      stats = res and res.status == 200 and cjson.decode(res.body)
      return stats and stats.connections == 0
    end, 5000), "connections left: " .. cjson.encode(stats or {}))
    local sub = C.connect(port)
    sub:send(C.get("/events?topic=x"))
    assert.is_true(sub:wait_bytes(1, 2000))
    local pub = C.connect(port)
    local res = pub:request(C.post("/publish", '{"topic":"x","event":"after","data":"alive"}',
      { "Content-Type: application/json\r\n" }))
    pub:close()
    assert.are.equal(200, res.status)
    assert.is_true(C.wait(function() return sub.buf:find("event: after\n", 1, true) ~= nil end, 2000))
    assert.truthy(sub.buf:find("data: alive\n\n", 1, true))
    sub:close()

    -- and it still stops cleanly
    hub:signal("sigterm")
    assert.is_true(C.wait(function() return hub.exited end, 5000))
    assert.are.equal(0, hub.code, fate(hub))
    return hub
  end

  it("the demo hub lives through " .. COUNT .. " resets at random points and serves afterwards", function()
    hub_storm("examples/hub/server.lua")
  end)

  it("the demo hub works the same when the program handles SIGPIPE itself", function()
    -- sse.core leaves a handler alone: every write after a reset now fails
    -- with EPIPE and raises the signal, and nothing may depend on it
    local hub = hub_storm("spec/helpers/reset_hub_handled.lua")
    assert.are.equal("handled", hub:last("sigpipe_was "))
    assert.truthy(tonumber(hub:last("sigpipes ") or "0") > 0, "no write after a reset was tried")
  end)

  it("a bare sse.Stream server lives through " .. COUNT .. " resets and serves afterwards", function()
    local port, open
    local srv = proc.spawn("spec/helpers/reset_stream_server.lua", {}, function(line)
      port = port or tonumber(line:match("^port (%d+)"))
      open = tonumber(line:match("^streams (%d+)")) or open
    end)
    assert.is_true(C.wait(function() return port ~= nil or srv.exited end, 5000), fate(srv))
    assert.truthy(port, fate(srv))

    local s = attack(port, "stream")
    C.sleep(50)
    assert.is_false(srv.exited, "the server died (seed " .. SEED .. "): " .. fate(srv))
    for _, m in ipairs({ "request", "head", "stream" }) do
      assert.truthy((s.modes[m] or 0) > 0, "mode " .. m .. " never ran (seed " .. SEED .. ")")
    end
    assert.are.equal(COUNT, s.done, cjson.encode(s) .. " " .. fate(srv))
    assert.are.equal(0, s.refused)
    assert.is_nil(srv.failure)

    -- every reset stream was closed, and a new connection gets its events
    assert.is_true(C.wait(function() return open == 0 end, 3000), "streams open: " .. tostring(open))
    local c = C.connect(port)
    c:send(C.get("/"))
    assert.is_true(C.wait(function() return c.buf:find("data: tick", 1, true) ~= nil end, 2000), c.buf)
    assert.truthy(c.buf:find("^HTTP/1.1 200 OK\r\n"))
    assert.truthy(c.buf:find("\r\n\r\nevent: hello\ndata: first\n\n", 1, true))
    c:close()
    assert.is_false(srv.exited, fate(srv))
    stop(srv)
  end)
end)
