--- sse.ngx.counter: counts that every nginx worker shares (open streams per
-- client address, subscribers per topic), in a lua_shared_dict.
--
--   local c = require("sse.ngx").counter{ dict = "sse_hub", prefix = "ip:" }
--   if not c:take(addr, 10) then ... 429 ... end   -- counted at once, or refused
--   c:give(addr)                                   -- when that stream closes
--   c:count(addr)                                  -- every worker's streams from addr
--   c:set(topic, n)  c:add(key, delta)             -- this worker's share, by hand
--
-- Each worker keeps its own share of a key (in Lua, mirrored into the dict
-- under its pid), so only it ever writes that entry and deletes it at 0;
-- count() adds the shares of the workers registered now (prefix .. "w:" ..
-- worker id -> pid, written when the counter is made). A worker that dies
-- (or an old worker of a reload) stops being counted as soon as the worker
-- that takes its id makes its counter; its entries stay in the dict but no
-- longer count. take() writes its share first and reads the others' after,
-- so two workers taking the last place at once cannot both keep it (one
-- may refuse needlessly, neither exceeds max).
local ngx = ngx -- luacheck: ignore (the nginx global)

local M = {}

local C = {}
C.__index = C

local function argerror(fname, msg)
  error(("bad argument #1 to '%s' (%s)"):format(fname, msg), 3)
end

--- new{dict =, prefix = "c:"} -> counter of this worker (call it once per
-- worker per prefix, where init_worker_by_lua* or a handler runs).
function M.new(opts)
  if type(opts) ~= "table" then argerror("counter", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if k ~= "dict" and k ~= "prefix" then argerror("counter", ("unknown option '%s'"):format(tostring(k))) end
  end
  if type(opts.dict) ~= "string" then argerror("counter", "field 'dict': the name of a lua_shared_dict expected") end
  local dict = ngx.shared[opts.dict]
  if not dict then argerror("counter", ("field 'dict': no lua_shared_dict '%s'"):format(opts.dict)) end
  local prefix = opts.prefix or "c:"
  if type(prefix) ~= "string" then argerror("counter", "field 'prefix': string expected") end
  local pid = ngx.worker.pid()
  local self = setmetatable({ dict = dict, prefix = prefix, own = {},
                              mine = prefix .. pid .. ":", warned = false }, C)
  local ok, err = dict:safe_set(prefix .. "w:" .. (ngx.worker.id() or 0), pid)
  if not ok then error("sse.ngx.counter: cannot register this worker in the dict: " .. tostring(err), 2) end
  return self
end

-- This worker's share of key into the dict (deleted at 0).
function C:_write(key, n)
  local ok, err
  if n == 0 then
    ok, err = self.dict:delete(self.mine .. key), nil
  else
    ok, err = self.dict:safe_set(self.mine .. key, n)
  end
  if not ok and not self.warned then
    self.warned = true
    ngx.log(ngx.WARN, "sse.ngx.counter: the dict is full (", tostring(err), "): the other workers ",
      "undercount this one's '", self.prefix, "' counts")
  end
end

--- c:add(key, delta) -> this worker's new share of key.
function C:add(key, delta)
  local n = (self.own[key] or 0) + delta
  if n < 0 then n = 0 end
  self.own[key] = n > 0 and n or nil
  self:_write(key, n)
  return n
end

--- c:set(key, n): this worker's share of key is n (>= 0).
function C:set(key, n)
  self.own[key] = n > 0 and n or nil
  self:_write(key, n)
end

--- c:count(key) -> the sum over every registered worker.
function C:count(key)
  local dict, prefix = self.dict, self.prefix
  local me = ngx.worker.pid()
  local n = self.own[key] or 0
  for id = 0, ngx.worker.count() - 1 do
    local pid = dict:get(prefix .. "w:" .. id)
    if pid and pid ~= me then n = n + (dict:get(prefix .. pid .. ":" .. key) or 0) end
  end
  return n
end

--- c:take(key, max) -> true (counted) | false (max reached). max 0: no limit.
function C:take(key, max)
  self:add(key, 1)
  if max > 0 and self:count(key) > max then
    self:add(key, -1)
    return false
  end
  return true
end

--- c:give(key): one less (what take counted).
function C:give(key)
  self:add(key, -1)
end

return M
