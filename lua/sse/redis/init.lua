--- sse.redis: ids, replay and fan-out shared by several sse instances
-- through one Redis. See README "Several instances (Redis)".
--
--   local backend = require("sse.redis").backend{ url = "redis://127.0.0.1:6379" }
local Backend = require("sse.redis.backend")

local M = {
  Backend = Backend,
  DEFAULTS = Backend.DEFAULTS,
  parse_url = Backend.parse_url,
}

--- sse.redis.backend(opts) -> a backend (see sse.redis.backend).
function M.backend(opts)
  return Backend.new(opts)
end

return M
