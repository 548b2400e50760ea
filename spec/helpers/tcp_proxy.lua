-- A loopback TCP proxy on luv, to break connections the way networks do:
--
--   local P = require("helpers.tcp_proxy")
--   local p = P.new(upstream_port)   -- p.port: connect here instead
--   p:freeze()   -- the connections open now stop carrying bytes, without
--                -- an error on either side (a silently dead path)
--   p:cut()      -- closes every open connection (both sides see EOF)
--   p:close()
-- New connections made after freeze() or cut() work normally.
local uv = require("luv")

local M = {}
local Proxy = {}
Proxy.__index = Proxy

local function close(h)
  if h and not h:is_closing() then h:close() end
end

function M.new(upstream_port)
  local self = setmetatable({ pairs = {}, upstream = upstream_port, accepted = 0 }, Proxy)
  local srv = uv.new_tcp()
  assert(srv:bind("127.0.0.1", 0))
  self.server, self.port = srv, srv:getsockname().port
  assert(srv:listen(128, function(err)
    if err then return end
    local down = uv.new_tcp()
    if not srv:accept(down) then return close(down) end
    self.accepted = self.accepted + 1
    local up = uv.new_tcp()
    local pair = { down = down, up = up }
    self.pairs[pair] = true
    local function drop()
      self.pairs[pair] = nil
      close(down)
      close(up)
    end
    local function pipe(from, to)
      from:read_start(function(rerr, data)
        if rerr or not data then return drop() end
        if pair.frozen then return end -- swallowed: nothing arrives
        to:write(data)
      end)
    end
    up:connect("127.0.0.1", self.upstream, function(cerr)
      if cerr then return drop() end
      pipe(down, up)
      pipe(up, down)
    end)
  end))
  return self
end

function Proxy:freeze()
  for pair in pairs(self.pairs) do pair.frozen = true end
end

function Proxy:cut()
  for pair in pairs(self.pairs) do
    close(pair.down)
    close(pair.up)
  end
  self.pairs = {}
end

function Proxy:count()
  local n = 0
  for _ in pairs(self.pairs) do n = n + 1 end
  return n
end

function Proxy:close()
  self:cut()
  close(self.server)
end

return M
