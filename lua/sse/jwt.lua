--- sse.jwt: JSON Web Token verification (HS256, RS256, ES256), done in C with
-- libcrypto (csrc/core/jwt.c through the sse.jwt_core module).
--
--   local v = require("sse.jwt").verifier({ secret = "...32 bytes or more..." })
--   local claims, err = v:verify(token)        -- err: "token expired", ...
--
-- The header, the signature and the registered claims (exp, nbf, iat, iss,
-- aud, sub, jti) are checked in C by strict rules (jwt.h); only a token that
-- passed them is decoded into a Lua table by lua-cjson.
local cjson_ok, cjson = pcall(require, "cjson")
local json = cjson_ok and cjson.new() -- a private instance: nobody else's settings

local M = {}

local core -- sse.jwt_core, loaded by the first verifier

local function load_core()
  if core then return core end
  local ok, mod = pcall(require, "sse.jwt_core")
  if not ok then
    error("sse.jwt needs the sse.jwt_core module (built with libcrypto): " .. tostring(mod), 3)
  end
  core = mod
  return core
end

-- A bad option inside try_verifier: raised as an object, answered as nil, msg.
local Bad = {}
local function bad(msg)
  error(setmetatable({ msg = msg }, Bad), 0)
end

local function field_name(f)
  return ("field '%s'"):format(f)
end

local OPTIONS = {
  secret = true, public_key_pem = true, algorithms = true, leeway = true,
  audience = true, issuer = true, require_exp = true, max_token_bytes = true,
  clock = true,
}

--- The defaults of the verifier options.
M.DEFAULTS = {
  leeway = 30,             -- seconds of clock skew allowed on exp and nbf
  require_exp = true,      -- a token without exp never expires: refused
  max_token_bytes = 8192,  -- longer tokens are refused before any work
}

-- A string or a non-empty list of strings, as a list. name(field) is how
-- the error names it.
local function strings(v, field, name)
  if type(v) == "string" then return { v } end
  local ok = type(v) == "table" and #v > 0
  for i = 1, ok and #v or 0 do ok = ok and type(v[i]) == "string" end
  if not ok then bad(name(field) .. " must be a string or a list of strings") end
  return v
end

local Verifier = {}
Verifier.__index = Verifier

-- Builds the verifier of opts (see M.verifier); raises bad(msg) for a bad
-- option, naming options by name(field).
local function build(opts, name)
  if type(opts) ~= "table" then bad("table expected, got " .. type(opts)) end
  if not json then error("sse.jwt needs lua-cjson (apt-get install lua-cjson)", 0) end
  for k in pairs(opts) do
    if not OPTIONS[k] then bad(("unknown option '%s'"):format(tostring(k))) end
  end
  local c = load_core()
  local keys, algs, seen = {}, {}, {}
  local function add(list, field, make)
    for _, material in ipairs(strings(list, field, name)) do
      local key, err = make(material)
      if not key then bad(("%s: %s"):format(name(field), err)) end
      keys[#keys + 1] = key
      local alg = key:alg()
      if not seen[alg] then
        seen[alg] = true
        algs[#algs + 1] = alg
      end
    end
  end
  if opts.secret ~= nil then add(opts.secret, "secret", c.key_secret) end
  if opts.public_key_pem ~= nil then add(opts.public_key_pem, "public_key_pem", c.key_pem) end
  if #keys == 0 then bad("a 'secret' or a 'public_key_pem' is required") end
  if #keys > c.limits.max_keys then
    bad(("at most %d keys"):format(c.limits.max_keys))
  end
  if opts.algorithms ~= nil then
    algs = strings(opts.algorithms, "algorithms", name)
    for _, a in ipairs(algs) do
      if a ~= "HS256" and a ~= "RS256" and a ~= "ES256" then
        bad(("%s: unsupported algorithm '%s'"):format(name("algorithms"), a))
      end
      if not seen[a] then
        bad(("%s: %s has no key (%s)"):format(name("algorithms"), a,
          a == "HS256" and "give a secret" or "give a public_key_pem of that type"))
      end
    end
  end
  local leeway = opts.leeway
  if leeway == nil then leeway = M.DEFAULTS.leeway end
  if type(leeway) ~= "number" or not (leeway >= 0 and leeway <= 86400) then
    bad(name("leeway") .. " must be a number of seconds in 0..86400")
  end
  local max = opts.max_token_bytes
  if max == nil then max = M.DEFAULTS.max_token_bytes end
  if math.type and math.type(max) ~= "integer" or type(max) ~= "number" or max % 1 ~= 0
      or max < 1 or max > c.limits.max_token_limit then
    bad(("%s must be an integer in 1..%d"):format(name("max_token_bytes"), c.limits.max_token_limit))
  end
  local require_exp = opts.require_exp
  if require_exp == nil then require_exp = M.DEFAULTS.require_exp end
  if type(require_exp) ~= "boolean" then bad(name("require_exp") .. " must be a boolean") end
  for _, f in ipairs({ "audience", "issuer" }) do
    if opts[f] ~= nil and (type(opts[f]) ~= "string" or opts[f] == "") then
      bad(name(f) .. " must be a non-empty string")
    end
  end
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    bad(name("clock") .. " must be a function")
  end
  return setmetatable({
    _v = c.verifier(keys, algs, max, leeway, require_exp, opts.issuer, opts.audience),
    clock = opts.clock or os.time,
    algorithms = algs,
  }, Verifier)
end

--- try_verifier(opts [, name]) -> verifier | nil, msg: M.verifier without
-- raising on a bad option; msg names an option by name(field) (default
-- "field 'secret'"), so a program can name its own settings.
function M.try_verifier(opts, name)
  local ok, v = pcall(build, opts, name or field_name)
  if ok then return v end
  if getmetatable(v) == Bad then return nil, v.msg end
  error(v, 0) -- not a bad option (no sse.jwt_core, no lua-cjson)
end

--- verifier(opts) -> verifier. opts: secret (HS256: a string of 32 bytes or
-- more, or a list of them for rotation), public_key_pem (RS256 or ES256, by
-- the key's type: a PEM public key or certificate, or a list), algorithms
-- (default: those of the keys given), leeway, require_exp, max_token_bytes,
-- audience, issuer, clock (function -> seconds, default os.time). Raises
-- "bad argument #1 to 'verifier' (...)" on a bad option.
function M.verifier(opts)
  local v, msg = M.try_verifier(opts)
  if not v then error(("bad argument #1 to 'verifier' (%s)"):format(msg), 2) end
  return v
end

--- v:verify(token [, now]) -> claims, alg | nil, err. now: seconds since the
-- epoch (default: the verifier's clock). err is one of the messages of
-- sse.jwt_core.messages ("bad signature", "token expired", ...).
function Verifier:verify(token, now)
  if type(token) ~= "string" then
    error(("bad argument #1 to 'verify' (string expected, got %s)"):format(type(token)), 2)
  end
  if now == nil then now = self.clock() end
  if type(now) ~= "number" or now ~= now or now == math.huge or now == -math.huge then
    error("bad argument #2 to 'verify' (now must be a finite number of seconds)", 2)
  end
  local claims_json, alg_or_err = self._v:verify(token, now)
  if not claims_json then return nil, alg_or_err end
  local ok, claims = pcall(json.decode, claims_json)
  if not ok or type(claims) ~= "table" then return nil, "claims are not valid JSON" end
  return claims, alg_or_err
end

--- The messages a verification may return (for documentation and tests).
function M.messages()
  local c = load_core()
  local t = {}
  for i, m in ipairs(c.messages) do t[i] = m end
  return t
end

return M
