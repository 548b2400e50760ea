-- sse.redis inside nginx (cosockets, sse.redis.ngx_env): two real nginx on
-- one real redis-server share ids, replay and fan-out, and a luv instance
-- on the same Redis takes part too. Runs under `make spec-ngx`
-- (SSE_NGX_SPEC=1, the LuaJIT build); elsewhere it is pending.
local N = require("helpers.nginx")
local R = require("helpers.redis_server")
local cjson = require("cjson")

if not os.getenv("SSE_NGX_SPEC") then
  describe("sse.redis in nginx", function()
    pending("runs under `make spec-ngx` (SSE_NGX_SPEC=1, the LuaJIT build)")
  end)
  return
end

-- One worker's backend and hub, made in init_worker; a publish location
-- that answers once Redis stored the event; the backend's status.
local HTTP = [==[
    lua_check_client_abort on;
    init_worker_by_lua_block {
      local state = {}
      package.loaded["spec_redis_state"] = state
      state.backend = require("sse.redis").backend({ url = "${url}", prefix = "ngxspec:",
        heartbeat = 0.1, timeout = 0.5, backoff_min = 0.01, backoff_max = 0.1 })
      state.hub = require("sse.ngx").hub({ backend = state.backend })
    }
]==]

local SERVER = [==[
        location = /events {
            content_by_lua_block {
                local state = require("spec_redis_state")
                local stream = require("sse.ngx").stream()
                state.hub:attach(stream, { topics = { "all" } })
            }
        }
        location = /pub {
            content_by_lua_block {
                local state = require("spec_redis_state")
                ngx.req.read_body()
                local sema = require("ngx.semaphore").new()
                local res
                local ok, err = state.backend:publish({ data = ngx.req.get_body_data() or "" }, "all",
                  function(id, perr) res = { id, perr }; sema:post(1) end)
                if not ok then ngx.status = 503; return ngx.print(err) end
                sema:wait(3)
                if res and res[1] then return ngx.print(res[1]) end
                ngx.status = 503
                ngx.print(res and res[2] or "no answer")
            }
        }
        location = /status {
            content_by_lua_block {
                ngx.print(require("cjson").encode(require("spec_redis_state").backend:status()))
            }
        }
]==]

local function start(url)
  local srv = assert(N.start({ workers = 1, http = HTTP:gsub("%${url}", url), server = SERVER }))
  return srv
end

local function get(srv, path, o)
  local c = N.connect(srv.port)
  local res = c:request(o and o.method or "GET", path, o)
  c:close()
  return res
end

local function status(srv)
  local res = get(srv, "/status")
  return res and res.status == 200 and cjson.decode(res.body) or {}
end

describe("sse.redis in nginx", function()
  local redis, a, b
  setup(function()
    redis = R.start()
    a, b = start(redis.url), start(redis.url)
  end)
  teardown(function()
    if a then a:stop() end
    if b then b:stop() end
    if redis then redis:stop() end
  end)

  it("a subscriber of one nginx gets what is published on the other, with one id sequence", function()
    assert.is_true(N.wait(function() return status(a).healthy and status(b).healthy end, 5000),
      "not healthy: " .. cjson.encode(status(a)) .. (a:log() or ""))
    local sub = N.connect(a.port):stream("/events")
    assert.is_true(N.wait(function() return #sub:of_type("sse-join") == 1 end, 3000), sub.body)
    local ids = {}
    for i = 1, 3 do
      local res = get(b, "/pub", { method = "POST", body = "e" .. i })
      assert.are.equal(200, res.status, res.body)
      ids[i] = res.body
    end
    local epoch = ids[1]:match("^(.-)%-1$")
    assert.truthy(epoch, ids[1])
    assert.are.same({ epoch .. "-2", epoch .. "-3" }, { ids[2], ids[3] })
    assert.is_true(N.wait(function() return #sub:of_type() == 3 end, 3000), sub.body)
    local got = {}
    for _, ev in ipairs(sub:of_type()) do got[#got + 1] = ev.data .. "@" .. ev.id end
    assert.are.same({ "e1@" .. ids[1], "e2@" .. ids[2], "e3@" .. ids[3] }, got)
    sub:close()
  end)

  it("a client resuming on the other nginx gets what it missed, once, in order", function()
    local sub = N.connect(a.port):stream("/events")
    assert.is_true(N.wait(function() return #sub:of_type("sse-join") == 1 end, 3000), sub.body)
    local last = sub:of_type("sse-join")[1].id
    sub:close()
    for i = 1, 4 do assert.are.equal(200, get(a, "/pub", { method = "POST", body = "m" .. i }).status) end
    local again = N.connect(b.port):stream("/events", { ["Last-Event-ID"] = last })
    assert.is_true(N.wait(function() return #again:of_type() == 4 end, 3000), again.body)
    N.wait(function() return false end, 200)
    local datas = {}
    for _, ev in ipairs(again:of_type()) do datas[#datas + 1] = ev.data end
    assert.are.same({ "m1", "m2", "m3", "m4" }, datas)
    assert.are.equal(0, #again:of_type("sse-gap"))
    again:close()
  end)

  it("authenticates and selects the URL's db before any command; a wrong password shows in the status", function()
    local locked = R.start({ "--requirepass", "s3cret" })
    local at = "@127.0.0.1:" .. locked.port .. "/2"
    local c, bad = start("redis://:s3cret" .. at), start("redis://:wrong" .. at)
    local ok, err = pcall(function()
      assert.is_true(N.wait(function() return status(c).healthy end, 5000), cjson.encode(status(c)))
      local res = get(c, "/pub", { method = "POST", body = "locked" })
      assert.are.equal(200, res.status, res.body)
      -- the event is in db 2, and db 0 has nothing of it
      local function cli(db, ...) return locked:cli("-a", "s3cret", "--no-auth-warning", "-n", db, ...):match("%d+") end
      assert.are.equal("1", cli("2", "XLEN", "ngxspec:log"))
      assert.are.equal("0", cli("0", "EXISTS", "ngxspec:log"))
      assert.is_true(N.wait(function() return status(bad).error ~= nil end, 3000), cjson.encode(status(bad)))
      assert.matches("WRONGPASS", status(bad).error)
      assert.is_false(status(bad).healthy)
      assert.are.equal(503, get(bad, "/pub", { method = "POST", body = "x" }).status)
    end)
    c:stop()
    bad:stop()
    locked:stop()
    assert(ok, err)
  end)

  it("fails a publish within the timeout while Redis hangs (503)", function()
    local uv = require("luv")
    redis:pause()
    local t0 = uv.hrtime()
    local res = get(a, "/pub", { method = "POST", body = "hung" })
    local took = (uv.hrtime() - t0) / 1e9
    redis:resume()
    assert.are.equal(503, res.status)
    assert.are.equal("redis: timeout", res.body)
    assert.is_true(took < 1.5, "took " .. took .. " s")
    assert.is_true(N.wait(function() return status(a).healthy end, 5000), cjson.encode(status(a)))
  end)

  it("answers 503 at once while Redis is down, and recovers", function()
    redis:kill()
    assert.is_true(N.wait(function() return status(a).connected == false end, 3000))
    local res = get(a, "/pub", { method = "POST", body = "x" })
    assert.are.equal(503, res.status)
    assert.are.equal("redis: not connected", res.body)
    assert.is_false(status(a).healthy)
    redis:restart()
    assert.is_true(N.wait(function() return status(a).healthy and status(b).healthy end, 5000))
    assert.are.equal(200, get(a, "/pub", { method = "POST", body = "y" }).status)
  end)
end)

-- The OpenResty demo hub (examples/openresty/) with SSE_HUB_REDIS: two of
-- them, two workers each, on one Redis.
describe("the OpenResty demo hub on Redis", function()
  local redis, a, b
  local function hub(url)
    return assert(N.start({ example = true, edit = function(text)
      return (text:gsub('os%.getenv%("SSE_HUB_REDIS"%)', ('"%s"'):format(url)))
    end }))
  end
  setup(function()
    redis = R.start()
    a, b = hub(redis.url), hub(redis.url)
  end)
  teardown(function()
    if a then a:stop() end
    if b then b:stop() end
    if redis then redis:stop() end
  end)

  local function stats(srv)
    local res = get(srv, "/stats")
    return res and res.status == 200 and cjson.decode(res.body) or {}
  end

  it("publishes on one, delivers on the other, answers 503 while Redis is down, shows the backend", function()
    assert.is_true(N.wait(function()
      local s = stats(a).backend
      return s and s.healthy and (stats(b).backend or {}).healthy
    end, 5000), cjson.encode(stats(a)))
    local sub = N.connect(b.port):stream("/events?topic=news")
    assert.is_true(N.wait(function() return #sub:of_type("sse-join") == 1 end, 3000), sub.body)
    local res = get(a, "/publish", { method = "POST", body = '{"topic":"news","event":"headline","data":"hello"}',
                                     headers = { ["Content-Type"] = "application/json" } })
    assert.are.equal(200, res.status, res.body)
    local id = cjson.decode(res.body).id
    assert.matches("%-1$", id)
    assert.is_true(N.wait(function() return #sub:of_type("headline") == 1 end, 3000), sub.body)
    assert.are.same({ "hello", id }, { sub:of_type("headline")[1].data, sub:of_type("headline")[1].id })
    assert.are.equal(id, stats(b).replay.last_id)
    sub:close()
    redis:kill()
    assert.is_true(N.wait(function() return (stats(a).backend or {}).connected == false end, 3000))
    res = get(a, "/publish", { method = "POST", body = '{"data":"x"}',
                               headers = { ["Content-Type"] = "application/json" } })
    assert.are.equal(503, res.status)
    assert.are.equal("redis: not connected", cjson.decode(res.body).error)
  end)
end)
