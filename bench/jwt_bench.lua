-- The cost of verifying one token, per algorithm, measured side by side in
-- one run (make bench-jwt; BENCH_SECONDS=s per figure, default 0.5).
--   core       sse.jwt_core's verify: base64url, header, signature, claims in C
--   verify     sse.jwt verifier:verify: the same plus the claims as a Lua table
--   authorize  sse.auth.jwt: Bearer header, verify, topic grants (2 topics)
--   forged     a token whose signature is wrong (the cost of refusing one)
-- Keys come from the openssl command, tokens from PyJWT (spec/helpers).
package.path = "spec/?.lua;" .. package.path
local jwt = require("sse.jwt")
local auth = require("sse.auth")
local T = require("helpers.jwt_tokens")

local SECONDS = tonumber(os.getenv("BENCH_SECONDS")) or 0.5
local SECRET = "0123456789abcdef0123456789abcdef"
local NOW = os.time()

-- Calls fn repeatedly for about SECONDS of CPU time; returns microseconds per call.
local function measure(fn)
  local n, batch = 0, 16
  local t0 = os.clock()
  local t
  repeat
    for _ = 1, batch do fn() end
    n = n + batch
    t = os.clock() - t0
    if t < SECONDS / 10 then batch = batch * 2 end
  until t >= SECONDS
  return t / n * 1e6
end

local K = T.keys()
local claims = { exp = NOW + 3600, sub = "user-42",
  sse = { subscribe = { "news", "user/42/*" }, publish = { "user/42/*" } } }
local toks = T.mint({
  { alg = "HS256", key = SECRET, claims = claims },
  { alg = "RS256", key = K.rsa.private, claims = claims },
  { alg = "ES256", key = K.ec.private, claims = claims },
})
local rows = {
  { "HS256", { secret = SECRET }, toks[1] },
  { "RS256 (2048-bit)", { public_key_pem = K.rsa.public }, toks[2] },
  { "ES256 (P-256)", { public_key_pem = K.ec.public }, toks[3] },
}

print(("jwt_bench: microseconds of CPU per token (%s s per figure), token %d bytes"):format(
  SECONDS, #toks[1]))
print(("%-18s %10s %10s %10s %10s %12s"):format("algorithm", "core", "verify", "authorize",
  "forged", "tokens/s"))
for _, r in ipairs(rows) do
  local v = jwt.verifier(r[2])
  local authorize = auth.jwt(r[2])
  local tok = r[3]
  local forged = tok:sub(1, -6) .. (tok:sub(-5, -5) == "A" and "B" or "A") .. tok:sub(-4)
  assert(v:verify(tok, NOW), "token does not verify")
  assert(not v:verify(forged, NOW), "forged token verifies")
  local req = { headers = { authorization = "Bearer " .. tok }, query = {} }
  local topics = { "news", "user/42/inbox" }
  assert(authorize(req, "subscribe", topics))
  local core_v = v._v
  local c = measure(function() core_v:verify(tok, NOW) end)
  local l = measure(function() v:verify(tok, NOW) end)
  local a = measure(function() authorize(req, "subscribe", topics) end)
  local f = measure(function() v:verify(forged, NOW) end)
  print(("%-18s %10.2f %10.2f %10.2f %10.2f %12.0f"):format(r[1], c, l, a, f, 1e6 / a))
end
T.cleanup()

-- Closing streams when their tokens expire: one heap (sse.deadlines) for all.
local deadlines = require("sse.deadlines")
local N = 10000
local keys = {}
for i = 1, N do keys[i] = {} end -- stand-ins for streams
collectgarbage()
collectgarbage()
local before = collectgarbage("count")
local d = deadlines.new({ on_due = function() end })
local t0 = os.clock()
for i = 1, N do d:set(keys[i], NOW + 60 + (i * 7919) % 3600) end
local set_us = (os.clock() - t0) / N * 1e6
collectgarbage()
collectgarbage()
local bytes = (collectgarbage("count") - before) * 1024 / N
t0 = os.clock()
for i = 1, N do d:set(keys[i], NOW + 120 + (i * 104729) % 3600) end
local move_us = (os.clock() - t0) / N * 1e6
t0 = os.clock()
local due = d:run(NOW + 7200)
local run_us = (os.clock() - t0) / N * 1e6
assert(due == N)
print(("expiry (sse.deadlines, %d streams): set %.2f us, move %.2f us, fire %.2f us each; %.0f bytes each")
  :format(N, set_us, move_us, run_us, bytes))
