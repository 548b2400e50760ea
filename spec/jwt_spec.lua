-- sse.jwt (csrc/core/jwt.c, json.c through sse.jwt_core): tokens minted by
-- PyJWT (spec/helpers/jwt_mint.py), keys made by the openssl command.
local jwt = require("sse.jwt")
local T = require("helpers.jwt_tokens")
local util = require("helpers.util")

local NOW = 1800000000
local SECRET = "0123456789abcdef0123456789abcdef" -- 32 bytes
local SSE = { subscribe = { "news", "user/42/*" }, publish = { "user/42/*" } }

local function claims(extra)
  local c = { exp = NOW + 600, sse = SSE }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function hs(extra, headers)
  return { alg = "HS256", key = SECRET, claims = claims(extra), headers = headers }
end

local function raw(header, payload, alg, key)
  return { raw = true, alg = alg or "HS256", key = key or SECRET, header = header, payload = payload }
end

local K
setup(function() K = T.keys() end)
teardown(function() T.cleanup() end)

describe("sse.jwt verifier", function()
  it("verifies HS256, RS256 and ES256 tokens minted by PyJWT and returns their claims", function()
    local toks = T.mint({
      hs(),
      { alg = "RS256", key = K.rsa.private, claims = claims() },
      { alg = "ES256", key = K.ec.private, claims = claims() },
    })
    local cases = {
      { jwt.verifier({ secret = SECRET }), "HS256" },
      { jwt.verifier({ public_key_pem = K.rsa.public }), "RS256" },
      { jwt.verifier({ public_key_pem = K.ec.public }), "ES256" },
    }
    for i, c in ipairs(cases) do
      local got, alg = c[1]:verify(toks[i], NOW)
      assert.equal(c[2], alg)
      assert.same({ "news", "user/42/*" }, got.sse.subscribe)
      assert.same({ "user/42/*" }, got.sse.publish)
      assert.equal(NOW + 600, got.exp)
    end
  end)

  it("takes an RSA key from a certificate", function()
    local tok = T.mint_one({ alg = "RS256", key = K.rsa.private, claims = claims() })
    local v = jwt.verifier({ public_key_pem = K.rsa.cert })
    assert.truthy(v:verify(tok, NOW))
  end)

  it("accepts several keys (rotation) and several algorithms", function()
    local other = ("z"):rep(40)
    local toks = T.mint({
      hs(), { alg = "HS256", key = other, claims = claims() },
      { alg = "ES256", key = K.ec2.private, claims = claims() },
      { alg = "RS256", key = K.rsa.private, claims = claims() },
    })
    local v = jwt.verifier({ secret = { SECRET, other }, public_key_pem = { K.ec.public, K.ec2.public } })
    assert.same({ "HS256", "ES256" }, v.algorithms)
    assert.truthy(v:verify(toks[1], NOW))
    assert.truthy(v:verify(toks[2], NOW))
    assert.truthy(v:verify(toks[3], NOW))
    assert.same({ nil, "alg not allowed" }, { v:verify(toks[4], NOW) })
  end)

  it("uses the clock option when no time is given", function()
    local tok = T.mint_one(hs())
    local t = NOW
    local v = jwt.verifier({ secret = SECRET, clock = function() return t end, leeway = 0 })
    assert.truthy(v:verify(tok))
    t = NOW + 600
    assert.same({ nil, "token expired" }, { v:verify(tok) })
  end)

  describe("refuses every bad token with its exact error", function()
    local cases -- {name, token, expected error [, verifier]}

    setup(function()
      local rsa_v = jwt.verifier({ public_key_pem = K.rsa.public })
      local es_v = jwt.verifier({ public_key_pem = K.ec.public })
      local both = jwt.verifier({ secret = SECRET, public_key_pem = K.rsa.public })
      local aud_v = jwt.verifier({ secret = SECRET, audience = "hub", issuer = "auth" })
      local h = T.b64url('{"alg":"HS256","typ":"JWT"}')
      local p = T.b64url('{"exp":1800000600}')
      local good = T.mint_one(hs())
      local ok_hdr = '{"alg":"HS256","typ":"JWT"}'
      local ok_pay = '{"exp":1800000600}'
      local deep = ('{"a":'):rep(17) .. "1" .. ("}"):rep(17)
      local jobs = {
        { "wrong secret", { alg = "HS256", key = ("w"):rep(32), claims = claims() }, "bad signature" },
        { "RS256 by another key", { alg = "RS256", key = K.rsa2.private, claims = claims() },
          "bad signature", rsa_v },
        { "ES256 by another key", { alg = "ES256", key = K.ec2.private, claims = claims() },
          "bad signature", es_v },
        { "ES256 signature in DER", raw('{"alg":"ES256"}', ok_pay, "ES256", K.ec.private),
          "bad signature", es_v, der = true },
        { "alg swap: HS256 signed with the RSA public key", raw('{"alg":"HS256"}', ok_pay,
          "HS256", K.rsa.public), "alg not allowed", rsa_v },
        { "alg swap with a secret configured too", raw('{"alg":"HS256"}', ok_pay, "HS256",
          K.rsa.public), "bad signature", both },
        { "RS256 token to an ES256 verifier", { alg = "RS256", key = K.rsa.private,
          claims = claims() }, "alg not allowed", es_v },
        { "HS512", { alg = "HS512", key = SECRET, claims = claims() }, "unsupported alg" },
        { "alg 'none' from PyJWT", { alg = "none", key = nil, claims = claims() },
          "token must have three segments" },
        { "alg 'none' with a signature", raw('{"alg":"none"}', ok_pay, "none"), "alg 'none' refused" },
        { "alg 'NoNe'", raw('{"alg":"NoNe"}', ok_pay, "none"), "alg 'none' refused" },
        { "alg not a string", raw('{"alg":5}', ok_pay), "header 'alg' must be a string" },
        { "no alg", raw('{"typ":"JWT"}', ok_pay), "header has no 'alg'" },
        { "duplicate alg", raw('{"alg":"HS256","alg":"none"}', ok_pay), "duplicate member in header" },
        { "duplicate alg, escaped", raw('{"alg":"HS256","\\u0061lg":"HS256"}', ok_pay),
          "duplicate member in header" },
        { "typ JWS", raw('{"alg":"HS256","typ":"JWS"}', ok_pay), 'header \'typ\' must be "JWT"' },
        { "kid a number", raw('{"alg":"HS256","kid":1}', ok_pay), "header 'kid' must be a string" },
        { "crit", raw('{"alg":"HS256","crit":["exp"]}', ok_pay), "unsupported header member" },
        { "embedded jwk", raw('{"alg":"HS256","jwk":{"kty":"oct","k":"AA"}}', ok_pay),
          "unsupported header member" },
        { "header an array", raw('["HS256"]', ok_pay), "header must be a JSON object" },
        { "header with trailing garbage", raw(ok_hdr .. "x", ok_pay), "header is not valid JSON" },
        { "header too large", raw('{"alg":"HS256","x":"' .. ("a"):rep(1100) .. '"}', ok_pay),
          "header too large" },
        { "claims with trailing garbage", raw(ok_hdr, ok_pay .. "}"), "claims are not valid JSON" },
        { "claims not an object", raw(ok_hdr, "[1]"), "claims must be a JSON object" },
        { "claims with bad UTF-8", raw(ok_hdr, '{"exp":1800000600,"s":"\255"}'),
          "claims are not valid JSON" },
        { "claims with a lone surrogate", raw(ok_hdr, '{"exp":1800000600,"s":"\\ud800"}'),
          "claims are not valid JSON" },
        { "duplicate exp", raw(ok_hdr, '{"exp":1800000600,"exp":1}'), "duplicate member in claims" },
        { "duplicate in a nested claim", raw(ok_hdr,
          '{"exp":1800000600,"sse":{"subscribe":["a"],"subscribe":["*"]}}'),
          "duplicate member in claims" },
        { "claims nested too deep", raw(ok_hdr, '{"exp":1800000600,"x":' .. deep .. "}"),
          "claims nested too deep" },
        { "exp a string", hs({ exp = tostring(NOW + 600) }), "claim 'exp' must be a number" },
        { "exp beyond a double", raw(ok_hdr, '{"exp":1e400}'), "claim 'exp' must be a number" },
        { "nbf a boolean", hs({ nbf = true }), "claim 'nbf' must be a number" },
        { "iat an object", hs({ iat = { x = 1 } }), "claim 'iat' must be a number" },
        { "iss a number", hs({ iss = 5 }), "claim 'iss' must be a string" },
        { "sub a list", hs({ sub = { "a" } }), "claim 'sub' must be a string" },
        { "jti a number", hs({ jti = 1 }), "claim 'jti' must be a string" },
        { "aud a number", hs({ aud = 5 }), "claim 'aud' must be a string or an array of strings" },
        { "aud with a number", hs({ aud = { "hub", 5 } }),
          "claim 'aud' must be a string or an array of strings" },
        { "no exp", raw(ok_hdr, '{"sse":{}}'), "token has no 'exp'" },
        { "expired past the leeway", hs({ exp = NOW - 31 }), "token expired" },
        { "not yet valid past the leeway", hs({ nbf = NOW + 31 }), "token not yet valid" },
        { "an audience the verifier has none of", hs({ aud = "other" }), "wrong audience" },
        { "wrong audience", hs({ aud = "other", iss = "auth" }), "wrong audience", aud_v },
        { "no audience", hs({ iss = "auth" }), "wrong audience", aud_v },
        { "wrong issuer", hs({ aud = "hub", iss = "evil" }), "wrong issuer", aud_v },
        { "no issuer", hs({ aud = "hub" }), "wrong issuer", aud_v },
      }
      local minted = {}
      for i, j in ipairs(jobs) do
        minted[i] = j[2]
        if j.der then minted[i].der = true end
      end
      local toks = T.mint(minted)
      cases = {}
      for i, j in ipairs(jobs) do cases[#cases + 1] = { j[1], toks[i], j[3], j[4] } end
      -- hand-made shapes
      local sig = good:match("[^.]+$")
      local last = sig:sub(-1)
      -- a 32-byte signature has 43 characters: the last one carries 2 unused bits
      local idx = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):find(last, 1, true)
      local noncanon = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        :sub(idx + 1, idx + 1)
      local tampered = T.b64url('{"exp":1800000600,"sse":{"subscribe":["*"]}}')
      local more = {
        { "empty", "", "empty token" },
        { "huge", ("a"):rep(8193), "token too large" },
        { "two segments", h .. "." .. p, "token must have three segments" },
        { "four segments", good .. ".x", "token must have three segments" },
        { "empty payload", h .. ".." .. sig, "token must have three segments" },
        { "padded header", h .. "=." .. p .. "." .. sig, "bad base64url in header" },
        { "standard base64 payload", h .. "." .. p .. "+." .. sig, "bad base64url in payload" },
        { "base64 of an impossible length", h .. "." .. p .. "." .. sig .. "AA",
          "bad base64url in signature" },
        { "signature one byte longer", good .. "A", "bad signature" },
        { "trailing newline", good .. "\n", "bad base64url in signature" },
        { "trailing space", good .. " ", "bad base64url in signature" },
        { "leading space", " " .. good, "bad base64url in header" },
        { "non-canonical last character", good:sub(1, -2) .. noncanon, "bad base64url in signature" },
        { "payload swapped, signature kept", h .. "." .. tampered .. "." .. sig, "bad signature" },
        { "signature cut", good:sub(1, -4), "bad signature" },
        { "NUL inside", h .. "\0." .. p .. "." .. sig, "bad base64url in header" },
      }
      for _, m in ipairs(more) do cases[#cases + 1] = m end
    end)

    it("(the table)", function()
      local v = jwt.verifier({ secret = SECRET })
      assert.is_true(#cases > 55)
      for _, c in ipairs(cases) do
        local got, err = (c[4] or v):verify(c[2], NOW)
        assert.is_nil(got, c[1])
        assert.equal(c[3], err, c[1])
      end
    end)
  end)

  it("honours exp and nbf with the leeway, at the edges", function()
    local toks = T.mint({ hs({ exp = NOW }), hs({ nbf = NOW + 30 }), hs({ exp = NOW + 0.5 }) })
    local strict = jwt.verifier({ secret = SECRET, leeway = 0 })
    local lenient = jwt.verifier({ secret = SECRET }) -- 30 s
    assert.same({ nil, "token expired" }, { strict:verify(toks[1], NOW) })
    assert.truthy(strict:verify(toks[1], NOW - 0.001))
    assert.truthy(lenient:verify(toks[1], NOW + 29.9))
    assert.same({ nil, "token expired" }, { lenient:verify(toks[1], NOW + 30) })
    assert.same({ nil, "token not yet valid" }, { strict:verify(toks[2], NOW) })
    assert.truthy(strict:verify(toks[2], NOW + 30))
    assert.truthy(lenient:verify(toks[2], NOW))
    assert.truthy(strict:verify(toks[3], NOW + 0.4))
    assert.same({ nil, "token expired" }, { strict:verify(toks[3], NOW + 0.5) })
  end)

  it("accepts what the rules allow: typ any case, kid, unknown members, aud lists", function()
    local toks = T.mint({
      raw('{"alg":"HS256","typ":"jwt","kid":"k1","x5t":"abc"}', '{"exp":1800000600}'),
      raw('{"alg":"HS256"}', '{"exp":1800000600,"aud":["x","hub"],"iss":"auth"}'),
      raw('{"alg":"HS256"}', '{"exp":1800000600,"aud":"hub","iss":"\\u0061uth"}'),
      raw('{"alg":"HS256"}', '{"sse":{"subscribe":["a"]}}'),
      raw('{"alg":"\\u0048S256"}', '{"exp":1.8000006e9," \\ud83d\\ude00":"\\u00e9"}'),
    })
    local v = jwt.verifier({ secret = SECRET })
    local aud_v = jwt.verifier({ secret = SECRET, audience = "hub", issuer = "auth" })
    assert.truthy(v:verify(toks[1], NOW))
    assert.truthy(aud_v:verify(toks[2], NOW))
    assert.truthy(aud_v:verify(toks[3], NOW))
    assert.same({ nil, "token has no 'exp'" }, { v:verify(toks[4], NOW) })
    local c = jwt.verifier({ secret = SECRET, require_exp = false }):verify(toks[4], NOW)
    assert.same({ subscribe = { "a" } }, c.sse)
    c = v:verify(toks[5], NOW)
    assert.equal(1800000600, c.exp)
    assert.equal("\195\169", c[" \240\159\152\128"])
  end)

  it("bounds the token size by max_token_bytes", function()
    local tok = T.mint_one(hs({ pad = ("p"):rep(9000) }))
    assert.is_true(#tok > 12000)
    assert.same({ nil, "token too large" }, { jwt.verifier({ secret = SECRET }):verify(tok, NOW) })
    local big = jwt.verifier({ secret = SECRET, max_token_bytes = 16384 })
    assert.truthy(big:verify(tok, NOW))
    local small = jwt.verifier({ secret = SECRET, max_token_bytes = 100 })
    assert.same({ nil, "token too large" }, { small:verify(T.mint_one(hs()), NOW) })
  end)

  describe("raises on misuse, naming the field", function()
    it("keys", function()
      util.raises_arg(1, "field 'secret': secret shorter than 32 bytes", jwt.verifier, { secret = "short" })
      util.raises_arg(1, "field 'public_key_pem': a private key: give the public key",
        jwt.verifier, { public_key_pem = K.rsa.private })
      util.raises_arg(1, "field 'public_key_pem': not a PEM public key or certificate",
        jwt.verifier, { public_key_pem = "garbage" })
      util.raises_arg(1, "field 'public_key_pem': RSA key not within 2048..8192 bits",
        jwt.verifier, { public_key_pem = K.rsa1024.public })
      util.raises_arg(1, "field 'public_key_pem': EC key not on curve P-256",
        jwt.verifier, { public_key_pem = K.p384.public })
      util.raises_arg(1, "field 'public_key_pem': unsupported key type (RSA or EC P-256)",
        jwt.verifier, { public_key_pem = K.ed25519.public })
      util.raises_arg(1, "a 'secret' or a 'public_key_pem' is required", jwt.verifier, {})
      util.raises_arg(1, "field 'secret' must be a string or a list of strings",
        jwt.verifier, { secret = 5 })
    end)

    it("options", function()
      util.raises_arg(1, "table expected, got nil", jwt.verifier)
      util.raises_arg(1, "unknown option 'leway'", jwt.verifier, { secret = SECRET, leway = 1 })
      util.raises_arg(1, "field 'algorithms': HS256 has no key (give a secret)",
        jwt.verifier, { public_key_pem = K.rsa.public, algorithms = { "HS256" } })
      util.raises_arg(1, "field 'algorithms': RS256 has no key (give a public_key_pem of that type)",
        jwt.verifier, { public_key_pem = K.ec.public, algorithms = { "RS256" } })
      util.raises_arg(1, "field 'algorithms': unsupported algorithm 'none'",
        jwt.verifier, { secret = SECRET, algorithms = { "none" } })
      util.raises_arg(1, "field 'leeway' must be a number of seconds in 0..86400",
        jwt.verifier, { secret = SECRET, leeway = -1 })
      util.raises_arg(1, "field 'max_token_bytes' must be an integer in 1..65536",
        jwt.verifier, { secret = SECRET, max_token_bytes = 65537 })
      util.raises_arg(1, "field 'require_exp' must be a boolean",
        jwt.verifier, { secret = SECRET, require_exp = 1 })
      util.raises_arg(1, "field 'audience' must be a non-empty string",
        jwt.verifier, { secret = SECRET, audience = "" })
      util.raises_arg(1, "field 'clock' must be a function", jwt.verifier, { secret = SECRET, clock = 1 })
      local v = jwt.verifier({ secret = SECRET })
      util.raises_arg(1, "string expected, got nil", v.verify, v, nil)
      util.raises_arg(2, "now must be a finite number of seconds", v.verify, v, "a.b.c", 0 / 0)
    end)
  end)

  it("try_verifier answers nil, message instead of raising, naming fields as asked", function()
    assert.are.same({ nil, "field 'secret': secret shorter than 32 bytes" }, { jwt.try_verifier({ secret = "short" }) })
    assert.are.same({ nil, "table expected, got nil" }, { jwt.try_verifier() })
    local function name(field) return ("setting '%s'"):format(field:upper()) end
    assert.are.same({ nil, "setting 'SECRET': secret shorter than 32 bytes" },
      { jwt.try_verifier({ secret = "short" }, name) })
    assert.are.same({ nil, "setting 'PUBLIC_KEY_PEM': not a PEM public key or certificate" },
      { jwt.try_verifier({ public_key_pem = "garbage" }, name) })
    assert.are.same({ nil, "setting 'LEEWAY' must be a number of seconds in 0..86400" },
      { jwt.try_verifier({ secret = SECRET, leeway = -1 }, name) })
    assert.are.same({ nil, "setting 'ALGORITHMS': unsupported algorithm 'none'" },
      { jwt.try_verifier({ secret = SECRET, algorithms = { "none" } }, name) })
    assert.are.same({ nil, "setting 'SECRET' must be a string or a list of strings" },
      { jwt.try_verifier({ secret = 5 }, name) })
    local v = assert(jwt.try_verifier({ secret = SECRET }, name))
    assert.equal(NOW + 600, v:verify(T.mint_one(hs()), NOW).exp)
  end)

  it("restricts a verifier to the algorithms asked for", function()
    local toks = T.mint({ hs(), { alg = "RS256", key = K.rsa.private, claims = claims() } })
    local v = jwt.verifier({ secret = SECRET, public_key_pem = K.rsa.public, algorithms = { "RS256" } })
    assert.same({ nil, "alg not allowed" }, { v:verify(toks[1], NOW) })
    assert.truthy(v:verify(toks[2], NOW))
  end)

  it("lists its messages", function()
    local m = jwt.messages()
    assert.equal("empty token", m[1])
    assert.equal("token expired", m[32])
  end)
end)
