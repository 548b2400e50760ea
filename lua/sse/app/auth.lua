--- sse.app.auth: the demo hub's bearer token check (RFC 6750 over RFC 7235).
--
-- `Authorization: <scheme> 1*SP <token68>`: the scheme is matched without
-- regard to case ("Bearer", "bearer", "BEARER"), one or more spaces may
-- separate it from the credentials (a tab may not), and the surrounding
-- whitespace of the field value is not part of it. The credentials are
-- compared with the token in time that depends only on the token's length.
local M = {}

--- A token68 (RFC 7235 2.1): what a bearer token may be made of.
M.TOKEN68 = "^[%w%-%._~%+/]+=*$"

--- same(given, secret): given == secret, looking at every byte of secret
-- whatever given is (no early exit; given's length only changes the result).
function M.same(given, secret)
  local diff = #given == #secret and 0 or 1
  local byte = string.byte
  for i = 1, #secret do
    diff = diff + math.abs((byte(given, i) or 256) - byte(secret, i))
  end
  return diff == 0
end

--- credentials(header) -> the bearer credentials of an Authorization
-- value, or nil when it is absent or another scheme.
function M.credentials(header)
  if type(header) ~= "string" then return nil end
  local scheme, cred = header:match("^[ \t]*(%S+) +([^ \t]+)[ \t]*$")
  if not scheme or scheme:lower() ~= "bearer" then return nil end
  return cred
end

--- check(header, token) -> true when the header carries exactly token.
function M.check(header, token)
  local cred = M.credentials(header)
  -- compare even when there is none, so a missing header costs the same
  return M.same(cred or "", token) and cred ~= nil
end

return M
