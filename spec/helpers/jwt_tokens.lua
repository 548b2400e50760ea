-- Keys (made by the openssl command) and tokens (minted by PyJWT through
-- spec/helpers/jwt_mint.py) for the JWT specs: an implementation sse did
-- not write signs what sse verifies.
local cjson = require("cjson")

local M = {}

-- Debian's interpreter: it has python3-jwt and python3-cryptography (a
-- python3 earlier on PATH, such as a pyenv one, may lack them).
M.python = os.getenv("SSE_PYTHON") or "/usr/bin/python3"

local dir -- the temporary directory of the keys

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok == true or ok == 0, "command failed: " .. cmd)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- keys() -> {rsa = {private, public, cert}, rsa2, ec, ec2 (private, public),
--   rsa1024, p384, ed25519 (public only)}; made once per process.
local cache
function M.keys()
  if cache then return cache end
  local p = io.popen("mktemp -d /tmp/sse-jwt.XXXXXX")
  dir = p:read("l")
  p:close()
  local function gen(name, args)
    sh(("openssl genpkey %s -out %s/%s.key"):format(args, dir, name))
    sh(("openssl pkey -in %s/%s.key -pubout -out %s/%s.pub"):format(dir, name, dir, name))
    return { private = slurp(dir .. "/" .. name .. ".key"), public = slurp(dir .. "/" .. name .. ".pub") }
  end
  cache = {
    rsa = gen("rsa", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"),
    rsa2 = gen("rsa2", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"),
    ec = gen("ec", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
    ec2 = gen("ec2", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
    rsa1024 = gen("rsa1024", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024"),
    p384 = gen("p384", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384"),
    ed25519 = gen("ed25519", "-algorithm ED25519"),
  }
  sh(("openssl req -x509 -new -key %s/rsa.key -subj /CN=sse-test -days 2 -out %s/rsa.crt")
    :format(dir, dir))
  cache.rsa.cert = slurp(dir .. "/rsa.crt")
  return cache
end

--- mint(jobs) -> tokens (see jwt_mint.py for the shape of a job).
function M.mint(jobs)
  local p = io.popen("mktemp /tmp/sse-jwt-jobs.XXXXXX")
  local path = p:read("l")
  p:close()
  spit(path, cjson.encode(jobs))
  local out = io.popen(("%s spec/helpers/jwt_mint.py < %s"):format(M.python, path))
  local text = out:read("a")
  out:close()
  os.remove(path)
  local ok, tokens = pcall(cjson.decode, text)
  assert(ok and type(tokens) == "table" and #tokens == #jobs,
    "jwt_mint.py failed (is python3-jwt installed?): " .. tostring(text))
  return tokens
end

--- mint_one(job) -> token
function M.mint_one(job) return M.mint({ job })[1] end

--- b64url(bytes) -> base64url without padding (for hand-made tokens)
local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
function M.b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local k = c and 4 or b and 3 or 2
    for j = 1, k do
      local v = math.floor(n / 2 ^ (18 - 6 * (j - 1))) % 64
      out[#out + 1] = A:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

--- cleanup(): removes the key directory.
function M.cleanup()
  if dir then sh("rm -rf " .. dir) end
  dir, cache = nil, nil
end

--- hostile(secret, now) -> the tokens both demo hubs' specs (luv and nginx)
-- answer: good (subscribe news and user/42/*, publish user/42/*), expired,
-- wrong_key, none (alg none), swap (HS256 signed with a PEM's text, header
-- RS256), nbf (not valid for 5 minutes), exp_type (exp a string), huge (7 KB).
function M.hostile(secret, now)
  local list = M.mint({
    { alg = "HS256", key = secret, claims = { exp = now + 600, sub = "u42",
      sse = { subscribe = { "news", "user/42/*" }, publish = { "user/42/*" } } } },
    { alg = "HS256", key = secret, claims = { exp = now - 600, sse = { subscribe = { "*" } } } },
    { alg = "HS256", key = ("w"):rep(32), claims = { exp = now + 600, sse = { subscribe = { "*" } } } },
    { raw = true, alg = "none", header = '{"alg":"none"}',
      payload = ('{"exp":%d,"sse":{"subscribe":["*"]}}'):format(now + 600) },
    { raw = true, alg = "HS256", key = "pem-text-as-secret", header = '{"alg":"RS256"}',
      payload = ('{"exp":%d,"sse":{"subscribe":["*"]}}'):format(now + 600) },
    { alg = "HS256", key = secret, claims = { exp = now + 600, nbf = now + 300, sse = { subscribe = { "*" } } } },
    { alg = "HS256", key = secret, claims = { exp = tostring(now + 600), sse = { subscribe = { "*" } } } },
    { alg = "HS256", key = secret, claims = { exp = now + 600, pad = ("p"):rep(7000),
      sse = { subscribe = { "*" } } } },
  })
  return { good = list[1], expired = list[2], wrong_key = list[3], none = list[4], swap = list[5],
           nbf = list[6], exp_type = list[7], huge = list[8] }
end

--- bad_cases(tok) -> {token, the 401's error text} for every bad token of
-- hostile()'s table and three malformed ones: what both hubs answer.
function M.bad_cases(tok)
  return {
    { tok.expired, "token expired" },
    { tok.wrong_key, "bad signature" },
    { tok.none, "alg 'none' refused" },
    { tok.swap, "alg not allowed" },
    { tok.nbf, "token not yet valid" },
    { tok.exp_type, "claim 'exp' must be a number" },
    { tok.huge, "token too large" },
    { tok.good:sub(1, -2) .. "*", "malformed bearer token" },
    { tok.good .. "xx", "bad base64url in signature" },
    { "a.b", "token must have three segments" },
  }
end

return M
