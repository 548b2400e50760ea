-- Shared spec helpers.
local M = {}

--- Assert that fn(...) raises "bad argument #n to '<any name>' (<why>)".
-- The function name varies between Lua 5.4 (which may say 'sse.encode') and
-- LuaJIT; the argument number and the reason are checked exactly.
function M.raises_arg(n, why, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, got success")
  err = tostring(err):gsub("^[^:]*:%d+: ", "")
  local num, reason = err:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
  assert(num, "not a 'bad argument' error: " .. err)
  assert(tonumber(num) == n and reason == why,
    ("expected bad argument #%d (%s)\n     got %s"):format(n, why, err))
end

--- Normalise CRLF and CR to LF, as a client would see the text.
function M.lf(s)
  return (s:gsub("\r\n", "\n"):gsub("\r", "\n"))
end

return M
