-- The cross-worker delay of sse.ngx (bench/ngx_fanout.sh, last phase): an
-- nginx with two workers (bench/ngx_sse.lua, listen ... reuseport). Each
-- subscriber asks GET /pid on a keep-alive connection, so it knows which
-- worker serves it, then GET /sub on that same connection. One publisher,
-- pinned the same way to worker A, POSTs events at a fixed rate; the data is
-- "<seq> <send time, us>". A delivery to a subscriber of worker B went through
-- the shared-dict log and B's follower (publish in A -> delivery in B); one of
-- A is the same-worker path. Prints both latencies' p50/p99/max.
--
--   luajit bench/ngx_xworker.lua --port P [--subs 200] [--events 200] [--rate 20]
-- (LUA_PATH must reach lua/ and spec/ (helpers.nginx), LUA_CPATH build/luajit.)
local uv = require("luv")
local N = require("helpers.nginx")

local o = { port = nil, subs = 200, events = 200, rate = 20 }
for i = 1, #arg, 2 do
  local k = arg[i]:match("^%-%-(%w+)$")
  if not k or o[k] == nil and k ~= "port" then error("usage: --port P [--subs N] [--events N] [--rate R]") end
  o[k] = tonumber(arg[i + 1])
end
assert(o.port, "--port is required")

local function pid_of(c)
  local res = assert(c:request("GET", "/pid"))
  return tonumber(res.body)
end

-- the publisher on worker A
local pub = assert(N.connect(o.port))
local a = pid_of(pub)

local sent, lat = {}, { same = {}, cross = {} }
local subs, on = {}, { same = 0, cross = 0 }
local function now_us()
  return uv.hrtime() / 1000
end
for i = 1, o.subs do
  local c = assert(N.connect(o.port))
  local kind = pid_of(c) == a and "same" or "cross"
  on[kind] = on[kind] + 1
  c.kind = kind
  c.seen = 0
  -- stamp each event when its bytes are read (the read callback parses them)
  local pump = c._pump
  c._pump = function(self)
    pump(self)
    local t = now_us()
    for j = self.seen + 1, #self.events do
      local seq = tonumber((self.events[j].data or ""):match("^(%d+) "))
      if seq and sent[seq] then
        local l = lat[self.kind]
        l[#l + 1] = t - sent[seq]
      end
    end
    self.seen = #self.events
  end
  c:stream("/sub")
  subs[i] = c
end
assert(N.wait(function()
  for _, c in ipairs(subs) do if not c.head then return false end end
  return true
end, 10000), "not every subscriber got its response head")
N.sleep(200)

local period = 1000 / o.rate
for seq = 1, o.events do
  sent[seq] = now_us()
  local res = pub:request("POST", "/pub", { body = ("%d %d xxxxxxxxxxxxxxxxxxxx"):format(seq, sent[seq]) })
  assert(res and res.status == 200, "publish failed")
  local deadline = sent[seq] + period * 1000
  -- the loop sleeps until bytes arrive or the timer ends the period
  local t = uv.new_timer()
  t:start(math.max(1, math.floor((deadline - now_us()) / 1000)), 1, function() end)
  while now_us() < deadline do uv.run("once") end
  t:close()
end
N.wait(function() return #lat.same + #lat.cross >= o.events * o.subs end, 3000)

local function pct(list, p)
  if #list == 0 then return -1 end
  table.sort(list)
  return list[math.max(1, math.ceil(#list * p))]
end

local expect = { same = o.events * on.same, cross = o.events * on.cross }
print(("cross-worker delay: %d subscribers (%d on the publisher's worker, %d on the other),"
  .. " %d events at %g/s"):format(o.subs, on.same, on.cross, o.events, o.rate))
print("| path | deliveries | p50 ms | p99 ms | max ms |")
print("|---|---:|---:|---:|---:|")
for _, k in ipairs({ "same", "cross" }) do
  local l = lat[k]
  print(("| %s | %d of %d | %.2f | %.2f | %.2f |"):format(
    k == "same" and "same worker (publish in A, deliver in A)" or "cross-worker (publish in A, deliver in B)",
    #l, expect[k], pct(l, 0.5) / 1000, pct(l, 0.99) / 1000, pct(l, 1) / 1000))
end
for _, c in ipairs(subs) do c:close() end
pub:close()
N.settle()
