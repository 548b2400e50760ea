-- The demo hub's publish and token rules (issue 9): JSON data reaches
-- subscribers as the publisher wrote it, bad numbers are a 400, answers have
-- a fixed key order, the bearer token is checked as RFC 7235 says and in
-- time that does not depend on where a wrong token differs, and credentialed
-- CORS can be turned on.
local cjson = require("cjson")
local App = require("sse.app")
local main = require("sse.app.main")
local auth = require("sse.app.auth")
local J = require("sse.app.json")
local ref = require("helpers.ref_parser")
local C = require("helpers.http_client")

local app
local function start(opts)
  opts = opts or {}
  opts.port, opts.log = 0, function() end
  app = App.new(opts)
  assert(app:listen())
  return app
end

local function request(raw)
  local c = C.connect(app.port)
  local res = assert(c:request(raw, 3000))
  c:close()
  return res
end

local function post(body, headers)
  local h = { "Content-Type: application/json\r\n" }
  for _, x in ipairs(headers or {}) do h[#h + 1] = x .. "\r\n" end
  return request(C.post("/publish", body, h))
end

-- A raw subscriber of ?topic=t; events() parses what it got.
local function subscriber(topic)
  local c = C.connect(app.port)
  c:send(C.get("/events?topic=" .. topic))
  assert.is_true(C.wait(function() return app.hub:topic_count(topic) == 1 end, 2000))
  function c.data_events()
    local body = c.buf:match("\r\n\r\n(.*)$") or ""
    local list = {}
    for _, ev in ipairs((ref.parse(body))) do
      if ev.type ~= "sse-join" then list[#list + 1] = ev end
    end
    return list
  end
  return c
end

local function cleanup()
  if app then app:close() end
  app = nil
  C.sleep(20)
end

describe("POST /publish", function()
  after_each(cleanup)

  it("passes JSON data through as written: exact numbers, key order, compact", function()
    start()
    local sub = subscriber("n")
    local cases = {
      { '{"topic":"n","data":9007199254740993}', "9007199254740993" },
      { '{"topic":"n","data":0.1234567890123456789}', "0.1234567890123456789" },
      { '{"topic":"n","data":[1, 2.50, -0, 1E+2, 1e-7]}', "[1,2.50,-0,1E+2,1e-7]" },
      -- pretty-printed: whitespace between tokens goes, strings keep theirs
      { '{\n  "topic": "n",\n  "data": {\n    "z": 1,\n    "a": " two  words ",\n'
        .. '    "esc": "q\\"\\\\ \\u00e9",\n    "deep": [ {"x": [ ]} , true, null ]\n  }\n}',
        '{"z":1,"a":" two  words ","esc":"q\\"\\\\ \\u00e9","deep":[{"x":[]},true,null]}' },
      -- a repeated key: the last one, as cjson decodes it
      { '{"topic":"n","data":1,"data":{"v":12345678901234567890}}', '{"v":12345678901234567890}' },
      -- a string is its decoded text
      { '{"topic":"n","data":"caf\\u00e9 \\"x\\""}', 'café "x"' },
      { '{"data":false,"topic":"n"}', "false" },
    }
    for _, case in ipairs(cases) do
      local res = post(case[1])
      assert.are.equal(200, res.status, res.body)
    end
    assert.is_true(C.wait(function() return #sub.data_events() == #cases end, 2000))
    for i, ev in ipairs(sub.data_events()) do
      assert.are.equal(cases[i][2], ev.data)
    end
    sub:close()
  end)

  it("answers 400 with a message for NaN, Infinity and out-of-range numbers", function()
    start()
    local cases = {
      { '{"data":NaN}', "body is not valid JSON: Expected value but found invalid token at character 9" },
      { '{"data":-Infinity}', "body is not valid JSON: Expected value but found invalid number at character 9" },
      { '{"data":0x10}', "body is not valid JSON: Expected value but found invalid number at character 9" },
      { '{"data":1e400}', "field 'data': number out of range: 1e400" },
      { '{"data":{"deep":[1, -1E400]}}', "field 'data': number out of range: -1E400" },
      { '{"data":"x","retry":1e400}', "field 'retry': number out of range: 1e400" },
      { '{"data":"x","retry":NaN}', "body is not valid JSON: Expected value but found invalid token at character 21" },
      { '[1]', "body must be a JSON object" },
      { '"x"', "body must be a JSON object" },
    }
    for _, case in ipairs(cases) do
      local res = post(case[1])
      assert.are.same({ 400, case[2] }, { res.status, cjson.decode(res.body).error })
    end
    assert.are.equal(0, app.hub.stats.published)
  end)

  it("answers with a fixed key order: id, topic, subscribers", function()
    start()
    local sub = subscriber("news")
    local res = post('{"subscribers":"no","topic":"news","data":"hello"}')
    assert.are.equal(400, res.status) -- an unknown field
    res = post('{"topic":"news","data":"hello"}')
    assert.are.equal(200, res.status)
    assert.are.equal("application/json", res.headers["content-type"])
    assert.truthy(res.body:match('^{"id":"[0-9a-z]+%-1","topic":"news","subscribers":1}$'), res.body)
    sub:close()
  end)
end)

describe("the bearer token", function()
  after_each(cleanup)

  it("compares every byte of the token, wherever the given one differs", function()
    assert.is_true(auth.same("s3cret", "s3cret"))
    for _, given in ipairs({ "", "s", "s3cre", "s3cret!", "x3cret", "s3crex", "S3CRET" }) do
      assert.is_false(auth.same(given, "s3cret"), given)
    end
    -- no early exit: the same number of byte reads for a wrong first byte,
    -- a wrong last byte, a short and a long token
    local real, reads = string.byte, 0
    local counts = {}
    string.byte = function(...) reads = reads + 1 return real(...) end -- luacheck: ignore
    local ok, err = pcall(function()
      for _, given in ipairs({ "Xbcdefgh", "abcdefgX", "abc", "abcdefghijklmnop", "abcdefgh" }) do
        reads = 0
        auth.same(given, "abcdefgh")
        counts[#counts + 1] = reads
      end
    end)
    string.byte = real -- luacheck: ignore
    assert(ok, err)
    assert.are.same({ 16, 16, 16, 16, 16 }, counts)
  end)

  it("takes the Bearer scheme in any case and spaces as RFC 7235 says", function()
    assert.are.equal("tok", auth.credentials("Bearer tok"))
    assert.are.equal("tok", auth.credentials("bearer tok"))
    assert.are.equal("tok", auth.credentials("BEARER    tok"))
    assert.are.equal("a-b._~+/c==", auth.credentials("BeArEr a-b._~+/c=="))
    assert.is_nil(auth.credentials("Bearer\ttok"))  -- 1*SP: a tab does not separate
    assert.is_nil(auth.credentials("Bearertok"))
    assert.is_nil(auth.credentials("Bearer tok more"))
    assert.is_nil(auth.credentials("Basic dG9rOg=="))
    assert.is_nil(auth.credentials(nil))

    start({ token = "s3cret" })
    local function status(header)
      local h = header and { "Authorization: " .. header } or nil
      return post('{"data":"x"}', h).status
    end
    assert.are.equal(401, status(nil))
    assert.are.equal(401, status("Bearer s3cre"))
    assert.are.equal(401, status("Bearer s3cret2"))
    assert.are.equal(401, status("Basic s3cret"))
    assert.are.equal(401, status("Bearer\ts3cret"))
    assert.are.equal(200, status("Bearer s3cret"))
    assert.are.equal(200, status("bearer s3cret"))
    assert.are.equal(200, status("BEARER   s3cret"))
    assert.are.equal(200, status("Bearer s3cret   ")) -- trailing whitespace is not the value's
    -- /admin/disconnect and /stats follow the same rule
    local res = request(C.post("/admin/disconnect", "", { "Authorization: bEaReR s3cret\r\n" }))
    assert.are.equal(200, res.status)
    assert.are.equal('{"closed":0}', res.body)
    assert.are.equal(401, request(C.post("/admin/disconnect", "")).status)
  end)

  it("must be a token68", function()
    for _, bad in ipairs({ "", "two words", "tab\there", "é", "a=b" }) do
      local ok, err = pcall(App.new, { token = bad, port = 0 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("option 'token' must be a bearer token", 1, true), err)
    end
  end)
end)

describe("--cors-credentials", function()
  after_each(cleanup)

  it("is a flag of the command line", function()
    local opts = assert(main.parse({ "--cors", "https://a.example,https://b.example", "--cors-credentials" }))
    assert.are.same({ cors = { "https://a.example", "https://b.example" }, cors_credentials = true }, opts)
    local bad, err = main.parse({ "--cors-credentials=yes" })
    assert.is_nil(bad)
    assert.are.equal("option --cors-credentials takes no value", err)
  end)

  it("lets the listed origins send credentials", function()
    start({ cors = { "https://a.example" }, cors_credentials = true })
    local res = request(C.get("/stats", { "Origin: https://a.example\r\n" }))
    assert.are.equal("https://a.example", res.headers["access-control-allow-origin"])
    assert.are.equal("true", res.headers["access-control-allow-credentials"])
    res = request("OPTIONS /publish HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n"
      .. "Access-Control-Request-Method: POST\r\n\r\n")
    assert.are.equal(204, res.status)
    assert.are.equal("true", res.headers["access-control-allow-credentials"])
    -- another origin gets nothing
    res = request(C.get("/stats", { "Origin: https://evil.example\r\n" }))
    assert.is_nil(res.headers["access-control-allow-origin"])
    assert.is_nil(res.headers["access-control-allow-credentials"])
    cleanup()
    -- without the flag: no credentials
    start({ cors = { "https://a.example" } })
    res = request(C.get("/stats", { "Origin: https://a.example\r\n" }))
    assert.are.equal("https://a.example", res.headers["access-control-allow-origin"])
    assert.is_nil(res.headers["access-control-allow-credentials"])
  end)

  it("needs a list of origins", function()
    for _, case in ipairs({
      { { cors_credentials = true }, "option 'cors_credentials' needs 'cors' (the origins)" },
      { { cors = { "*" }, cors_credentials = true }, "option 'cors_credentials' needs a list of origins, not '*'" },
      { { cors = { "https://a.example" }, cors_credentials = "yes" }, "option 'cors_credentials' must be a boolean" },
    }) do
      local ok, err = pcall(App.new, case[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(case[2], 1, true), err)
    end
  end)
end)

describe("sse.app.json", function()
  it("encodes objects in the given key order, integers in full", function()
    assert.are.equal('{"b":1,"a":[],"c":{"x":null,"y":"q\\"","z":true},"n":9007199254740991,"f":0.5}',
      J.encode(J.obj("b", 1, "a", J.arr({}), "c", J.obj("x", nil, "y", 'q"', "z", true),
        "n", 2 ^ 53 - 1, "f", 0.5)))
  end)
end)
