-- sse.auth: topic patterns, grants, where tokens come from, the JWT
-- authorizer (tokens minted by PyJWT through spec/helpers/jwt_tokens.lua).
local auth = require("sse.auth")
local T = require("helpers.jwt_tokens")
local util = require("helpers.util")

local SECRET = "0123456789abcdef0123456789abcdef"

describe("sse.auth", function()
  it("matches exact names, '*' and 'prefix/*'", function()
    local cases = {
      { "news", "news", true }, { "news", "news2", false }, { "news", "new", false },
      { "*", "anything/at/all", true }, { "*", "", true },
      { "user/42/*", "user/42/inbox", true }, { "user/42/*", "user/42/a/b", true },
      { "user/42/*", "user/42/", false }, { "user/42/*", "user/42", false },
      { "user/42/*", "user/420/x", false }, { "user/42/*", "user/4", false },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[3], auth.match(c[1], c[2]), c[1] .. " ~ " .. c[2])
    end
  end)

  describe("allowed(claims, action, topics)", function()
    local claims = { sse = { subscribe = { "news", "user/42/*" }, publish = { "user/42/*" } } }

    it("returns the topics when every one is granted", function()
      assert.same({ "news", "user/42/a" }, auth.allowed(claims, "subscribe", { "news", "user/42/a" }))
      assert.same({ "user/42/a" }, auth.allowed(claims, "publish", { "user/42/a" }))
      assert.same({}, auth.allowed(claims, "subscribe", {}))
    end)

    it("answers 403 naming the first topic not granted", function()
      assert.same({ nil, 403, "not allowed to subscribe to 'sports'" },
        { auth.allowed(claims, "subscribe", { "news", "sports", "x" }) })
      assert.same({ nil, 403, "not allowed to publish to 'news'" },
        { auth.allowed(claims, "publish", { "news" }) })
      assert.same({ nil, 403, "not allowed to subscribe to '" .. ("t"):rep(64) .. "...'" },
        { auth.allowed(claims, "subscribe", { ("t"):rep(100) }) })
      assert.same({ nil, 403, "token grants no topics" }, { auth.allowed({}, "subscribe", { "a" }) })
      assert.same({ nil, 403, "token does not allow publish" },
        { auth.allowed({ sse = { subscribe = { "*" } } }, "publish", { "a" }) })
    end)

    it("answers 401 for a grant of the wrong shape", function()
      local bad = {
        { { sse = "all" }, "claim 'sse' must be an object" },
        { { sse = { "a" } }, "claim 'sse' must be an object" },
        { { sse = { subscribe = "a" } }, "claim 'sse.subscribe' must be an array of strings" },
        { { sse = { subscribe = { "a", 1 } } }, "claim 'sse.subscribe' must be an array of strings" },
        { { sse = { subscribe = { a = "b" } } }, "claim 'sse.subscribe' must be an array of strings" },
        { { sse = { subscribe = { "a*" } } }, "claim 'sse.subscribe' has a bad pattern" },
        { { sse = { subscribe = { "*/x" } } }, "claim 'sse.subscribe' has a bad pattern" },
        { { sse = { subscribe = { "a/**" } } }, "claim 'sse.subscribe' has a bad pattern" },
        { { sse = { subscribe = { "" } } }, "claim 'sse.subscribe' has a bad pattern" },
      }
      for _, b in ipairs(bad) do
        assert.same({ nil, 401, b[2] }, { auth.allowed(b[1], "subscribe", { "a" }) })
      end
    end)

    it("raises on misuse", function()
      util.raises_arg(2, 'action must be "subscribe" or "publish", got read', auth.allowed, claims, "read", {})
      util.raises_arg(3, "topics must be a list of strings", auth.allowed, claims, "publish", { 1 })
      util.raises_arg(3, "topics must be a list of strings", auth.allowed, claims, "publish", "a")
      util.raises_arg(1, "table expected, got nil", auth.allowed, nil, "publish", {})
    end)
  end)

  describe("token(req, action, opts)", function()
    local function req(headers, query) return { headers = headers or {}, query = query or {} } end

    it("takes a Bearer token, scheme in any case", function()
      assert.equal("abc.def.ghi", auth.token(req({ authorization = "Bearer abc.def.ghi" }), "publish"))
      assert.equal("abc.def.ghi", auth.token(req({ authorization = "bearer   abc.def.ghi " }), "publish"))
      assert.equal("abc.def.ghi", auth.token(req({ authorization = "BEARER abc.def.ghi" }), "subscribe"))
      assert.is_nil(auth.token(req({ authorization = "Basic dXNlcjpwYXNz" }), "publish"))
      assert.same({ nil, 401, "malformed bearer token" },
        { auth.token(req({ authorization = "Bearer" }), "publish") })
      assert.same({ nil, 401, "malformed bearer token" },
        { auth.token(req({ authorization = "Bearer a b" }), "publish") })
      assert.same({ nil, 401, "malformed bearer token" },
        { auth.token(req({ authorization = "Bearer a\"b" }), "publish") })
      assert.same({ nil, 401, "malformed bearer token" },
        { auth.token(req({ authorization = "Bearer\tabc.def.ghi" }), "publish") })
      assert.equal("abc.def.ghi", auth.token(req({ authorization = "\tBearer abc.def.ghi\t" }), "publish"))
    end)

    it("takes the token cookie for subscribe only", function()
      local r = req({ cookie = "theme=dark; sse_token=abc.def.ghi; x=1" })
      assert.equal("abc.def.ghi", auth.token(r, "subscribe"))
      assert.is_nil(auth.token(r, "publish"))
      assert.equal("q.r.s", auth.token(req({ cookie = 'mine="q.r.s"' }), "subscribe", { cookie = "mine" }))
      assert.is_nil(auth.token(r, "subscribe", { cookie = false }))
      assert.same({ nil, 401, "malformed token cookie" },
        { auth.token(req({ cookie = "sse_token=a<b" }), "subscribe") })
      -- the header wins over the cookie
      r.headers.authorization = "Bearer h.e.ad"
      assert.equal("h.e.ad", auth.token(r, "subscribe"))
    end)

    it("takes ?token= only when asked to", function()
      local r = req({}, { token = "q.u.ery" })
      assert.is_nil(auth.token(r, "subscribe"))
      assert.equal("q.u.ery", auth.token(r, "subscribe", { query = true }))
      assert.equal("q.u.ery", auth.token(r, "publish", { query = true }))
      assert.equal("x.y.z", auth.token(req({}, { jwt = "x.y.z" }), "subscribe", { query = "jwt" }))
      assert.same({ nil, 401, "malformed token parameter" },
        { auth.token(req({}, { token = { "a", "b" } }), "subscribe", { query = true }) })
      assert.same({ nil, 401, "malformed token parameter" },
        { auth.token(req({}, { token = "" }), "subscribe", { query = true }) })
    end)
  end)

  describe("jwt(opts): the built-in authorizer", function()
    local now = os.time()
    local toks
    setup(function()
      toks = T.mint({
        { alg = "HS256", key = SECRET, claims = { exp = now + 600,
          sse = { subscribe = { "news", "user/42/*" }, publish = { "user/42/*" } } } },
        { alg = "HS256", key = SECRET, claims = { exp = now - 600, sse = { subscribe = { "*" } } } },
        { alg = "HS256", key = ("x"):rep(32), claims = { exp = now + 600, sse = { subscribe = { "*" } } } },
        { alg = "HS256", key = SECRET, claims = { exp = now + 600, sse = { subscribe = "*" } } },
      })
    end)

    local function bearer(t) return { headers = { authorization = "Bearer " .. t }, query = {} } end

    it("allows what the token grants, with its claims", function()
      local authorize = auth.jwt({ secret = SECRET })
      local topics, claims = authorize(bearer(toks[1]), "subscribe", { "news", "user/42/x" })
      assert.same({ "news", "user/42/x" }, topics)
      assert.equal(now + 600, claims.exp)
      assert.same({ "user/42/x" }, (authorize(bearer(toks[1]), "publish", { "user/42/x" })))
    end)

    it("answers 401 for no, bad, expired or ill-shaped tokens and 403 for topics not granted", function()
      local authorize = auth.jwt({ secret = SECRET, query = true })
      assert.same({ nil, 401, "missing token" }, { authorize({ headers = {}, query = {} }, "subscribe", { "a" }) })
      assert.same({ nil, 401, "token expired" }, { authorize(bearer(toks[2]), "subscribe", { "a" }) })
      assert.same({ nil, 401, "bad signature" }, { authorize(bearer(toks[3]), "subscribe", { "a" }) })
      assert.same({ nil, 401, "claim 'sse.subscribe' must be an array of strings" },
        { authorize(bearer(toks[4]), "subscribe", { "a" }) })
      assert.same({ nil, 401, "malformed bearer token" },
        { authorize({ headers = { authorization = "Bearer " }, query = {} }, "subscribe", { "a" }) })
      assert.same({ nil, 403, "not allowed to subscribe to 'sports'" },
        { authorize(bearer(toks[1]), "subscribe", { "news", "sports" }) })
      assert.same({ nil, 403, "not allowed to publish to 'news'" },
        { authorize(bearer(toks[1]), "publish", { "news" }) })
      assert.same({ "news" }, (authorize({ headers = {}, query = { token = toks[1] } }, "subscribe", { "news" })))
    end)

    it("grants anonymous requests the anonymous claims, but a bad token is still refused", function()
      local authorize = auth.jwt({ secret = SECRET, anonymous = { sse = { subscribe = { "public/*" } } } })
      local anon = { headers = {}, query = {} }
      assert.same({ "public/a" }, (authorize(anon, "subscribe", { "public/a" })))
      assert.same({ nil, 403, "not allowed to subscribe to 'news'" }, { authorize(anon, "subscribe", { "news" }) })
      assert.same({ nil, 403, "token does not allow publish" }, { authorize(anon, "publish", { "public/a" }) })
      assert.same({ nil, 401, "token expired" }, { authorize(bearer(toks[2]), "subscribe", { "public/a" }) })
    end)

    it("try_jwt answers nil, message, naming the options as asked (the verifier's too)", function()
      assert.are.same({ nil, "table expected, got string" }, { auth.try_jwt("s") })
      assert.are.same({ nil, "field 'cookie' must be a cookie name or false" },
        { auth.try_jwt({ secret = SECRET, cookie = 1 }) })
      local function name(field) return ("--%s"):format(field:gsub("_", "-")) end
      assert.are.same({ nil, "--query must be a boolean or a parameter name" },
        { auth.try_jwt({ secret = SECRET, query = 1 }, name) })
      assert.are.same({ nil, "--anonymous must be a claims table" },
        { auth.try_jwt({ secret = SECRET, anonymous = true }, name) })
      assert.are.same({ nil, "--secret: secret shorter than 32 bytes" }, { auth.try_jwt({ secret = "s" }, name) })
      assert.are.same({ nil, "--leeway must be a number of seconds in 0..86400" },
        { auth.try_jwt({ secret = SECRET, leeway = 1e9 }, name) })
      local authorize, verifier = auth.try_jwt({ secret = SECRET }, name)
      assert.are.equal("function", type(authorize))
      assert.truthy(verifier.verify)
      assert.same({ "news" }, (authorize(bearer(toks[1]), "subscribe", { "news" })))
    end)

    it("raises on misuse, naming 'jwt'", function()
      util.raises_arg(1, "table expected, got string", auth.jwt, "s")
      util.raises_arg(1, "field 'secret': secret shorter than 32 bytes", auth.jwt, { secret = "s" })
      util.raises_arg(1, "field 'cookie' must be a cookie name or false", auth.jwt, { secret = SECRET, cookie = 1 })
      util.raises_arg(1, "field 'anonymous' must be a claims table", auth.jwt, { secret = SECRET, anonymous = true })
    end)
  end)
end)
