-- bin/sse-pub (issue 14): the publish command, spawned as a user runs it
-- (a clean environment: no LUA_PATH, no LUA_CPATH) against a demo hub in
-- this process; a real subscriber reads what it published.
local uv = require("luv")
local cjson = require("cjson")
local App = require("sse.app")
local pub = require("sse.app.pub")
local C = require("helpers.http_client")

local LUA = os.getenv("SSE_LUA") or "lua5.4"

local function clean_env(extra)
  local env = { "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin") }
  for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then env[#env + 1] = k .. "=" .. os.getenv(k) end
  end
  for _, e in ipairs(extra or {}) do env[#env + 1] = e end
  return env
end

-- Runs bin/sse-pub with args (and stdin text); returns code, stdout, stderr.
local function run(args, stdin, env)
  local out, err, code = {}, {}, nil
  local si, so, se = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local full = { "bin/sse-pub" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  local h, pid = uv.spawn(LUA, { args = full, env = env or clean_env(), stdio = { si, so, se } },
    function(c) code = c end)
  assert(h, tostring(pid))
  so:read_start(function(_, d) if d then out[#out + 1] = d end end)
  se:read_start(function(_, d) if d then err[#err + 1] = d end end)
  if stdin then si:write(stdin) end
  si:shutdown()
  local done = C.wait(function() return code ~= nil end, 10000)
  if not done then uv.kill(pid, "sigkill") C.wait(function() return code ~= nil end, 2000) end
  for _, x in ipairs({ si, so, se, h }) do if not x:is_closing() then x:close() end end
  C.wait(function() return false end, 30) -- the pipes' last reads
  assert(done, "sse-pub did not finish: " .. table.concat(err))
  return code, table.concat(out), table.concat(err)
end

describe("bin/sse-pub", function()
  local app, sub
  local function start(opts)
    opts = opts or {}
    opts.port, opts.log = 0, function() end
    app = App.new(opts)
    assert(app:listen())
    sub = C.connect(app.port)
    sub:send(C.get("/events?topic=news"))
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 2000))
    return "http://127.0.0.1:" .. app.port
  end
  after_each(function()
    if sub then sub:close() end
    if app then app:close() end
    app, sub = nil, nil
    C.sleep(20)
  end)

  it("publishes an event a subscriber receives, and prints the hub's answer", function()
    local url = start()
    local code, out, err = run({ url, "news", "hello\nworld", "--event", "headline", "--retry", "500" })
    assert.are.equal(0, code, err)
    local answer = cjson.decode(out)
    assert.are.equal("news", answer.topic)
    assert.are.equal(1, answer.subscribers)
    assert.is_true(sub:wait_bytes(1, 2000))
    assert.is_true(C.wait(function() return sub.buf:find("data: world\n\n", 1, true) ~= nil end, 2000))
    assert.truthy(sub.buf:find("event: headline\nid: " .. answer.id .. "\nretry: 500\ndata: hello\ndata: world\n\n",
      1, true), sub.buf)
  end)

  it("sends --json data as written and reads standard input for '-'", function()
    local url = start()
    local code, out, err = run({ url .. "/publish", "news", "-", "--json" }, '{"n":1,"big":9007199254740993}\n')
    assert.are.equal(0, code, err)
    local id = cjson.decode(out).id
    assert.is_true(C.wait(function() return sub.buf:find(id, 1, true) ~= nil end, 2000))
    assert.truthy(sub.buf:find("id: " .. id .. '\ndata: {"n":1,"big":9007199254740993}\n\n', 1, true), sub.buf)
    local _
    code, _, err = run({ url, "news", "{nope", "--json" })
    assert.are.equal(2, code)
    assert.truthy(err:find("sse-pub: DATA is not JSON (--json)", 1, true), err)
  end)

  it("sends the token from --token or SSE_TOKEN, and reports the hub's refusal", function()
    local url = start({ token = "s3cret" })
    local code, _, err = run({ url, "news", "x" })
    assert.are.equal(1, code)
    assert.are.equal("sse-pub: 401: missing or wrong bearer token\n", err)
    code, _, err = run({ url, "news", "x", "--token", "s3cret" })
    assert.are.equal(0, code, err)
    code, _, err = run({ url, "news", "x" }, nil, clean_env({ "SSE_TOKEN=s3cret" }))
    assert.are.equal(0, code, err)
    assert.are.equal(2, app.hub:counters().published)
  end)

  it("reports the hub's 400 naming the field", function()
    local url = start()
    local code, _, err = run({ url, "news", "x", "--event", "a\nb" })
    assert.are.equal(1, code)
    assert.truthy(err:find("^sse%-pub: 400: "), err)
    assert.truthy(err:find("event", 1, true), err)
  end)

  it("exits 1 when the hub cannot be reached, 2 on a bad command line", function()
    local probe = uv.new_tcp()
    assert(probe:bind("127.0.0.1", 0))
    local port = probe:getsockname().port
    probe:close() -- nothing listens there now
    local code, _, err = run({ "http://127.0.0.1:" .. port, "news", "x", "--timeout", "3" })
    assert.are.equal(1, code)
    assert.truthy(err:find("sse-pub: cannot connect to 127.0.0.1:" .. port .. ": ECONNREFUSED", 1, true), err)
    for _, args in ipairs({ { "x" }, { "ftp://h", "t", "d" }, { "http://h", "t", "d", "--retry", "-1" },
                            { "http://h", "t", "d", "--bogus" } }) do
      code, _, err = run(args)
      assert.are.equal(2, code, table.concat(args, " "))
      assert.truthy(err:find("usage: sse-pub", 1, true), err)
    end
    code = run({ "--help" })
    assert.are.equal(0, code)
  end)

  it("finds the /publish endpoint from a URL", function()
    assert.are.same({ "h", 80, "/publish" }, { pub.target("http://h") })
    assert.are.same({ "h", 8080, "/publish" }, { pub.target("http://h:8080/") })
    assert.are.same({ "h", 8080, "/hub/publish" }, { pub.target("http://h:8080/hub") })
    assert.are.same({ "h", 1, "/x/publish" }, { pub.target("http://h:1/x/publish") })
    assert.are.same({ "::1", 9, "/publish" }, { pub.target("http://[::1]:9") })
    assert.are.same({ nil, "https:// is not supported (http:// only)" }, { pub.target("https://h") })
  end)
end)
