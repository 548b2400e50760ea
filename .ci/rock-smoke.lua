-- rock-smoke: run by .ci/rock-test.sh with the interpreter a rock was built
-- for, its search path on the rock tree SSE_TREE first. Checks that
-- require("sse") loads the tree's C module, encodes, and (where this Lua
-- has luv) that a Hub delivers to a Stream on a real loopback TCP socket.
-- Prints one line; any failure raises (exit status 1).
local tree = assert(os.getenv("SSE_TREE"), "SSE_TREE not set")
local lua = (rawget(_G, "jit") and jit.version) or _VERSION

-- where a module is found on a search path (Lua 5.1 has no package.searchpath)
local function find(name, path)
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate)
    if f then
      f:close()
      return candidate
    end
  end
end

local sse = require("sse")
local so = find("sse.core", package.cpath)
assert(so and so:sub(1, #tree) == tree, "sse.core loaded from " .. tostring(so) .. ", not from the rock tree " .. tree)
local init = find("sse", package.path)
assert(init and init:sub(1, #tree) == tree, "sse loaded from " .. tostring(init))

local out = sse.encode({ id = "1", event = "e", data = "a\nb" })
assert(out == "event: e\nid: 1\ndata: a\ndata: b\n\n", out)
local ok, err = pcall(sse.encode, { id = "a\nb" })
assert(not ok and tostring(err):find("bad argument #1", 1, true), "bad id: " .. tostring(err))

local done = { "require", "encode" }

local jso = find("sse.jwt_core", package.cpath)
assert(jso and jso:sub(1, #tree) == tree, "sse.jwt_core loaded from " .. tostring(jso))
local jc = require("sse.jwt_core")
local v = jc.verifier({ assert(jc.key_secret(("k"):rep(32))) }, { "HS256" }, 8192, 0, true)
assert(select(2, v:verify("a.b.c", 0)) == "bad base64url in header")
done[#done + 1] = "sse.jwt_core"
if pcall(require, "cjson") then
  assert(sse.Event.json({ n = 1 }):encode() == "data: {\"n\":1}\n\n")
  done[#done + 1] = "Event.json"
end

local has_uv, uv = pcall(require, "luv")
if has_uv then
  -- a server socket whose accepted connection becomes a Stream on a Hub;
  -- a client socket that reads what the hub broadcasts to the topic
  local hub = sse.Hub.new({ replayer = sse.MemoryReplayer.new() })
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  local port = server:getsockname().port
  local got, id, failure = "", nil, nil
  local client = uv.new_tcp()
  local timer = uv.new_timer()
  local function stop(msg)
    failure = failure or msg
    timer:stop()
    for _, h in ipairs({ timer, client, server }) do
      if not h:is_closing() then h:close() end
    end
    hub:close()
  end
  assert(server:listen(8, function()
    local conn = uv.new_tcp()
    server:accept(conn)
    local stream = sse.Stream.new({ handle = conn })
    hub:attach(stream, { topics = { "t" } })
    local n
    n, id = hub:broadcast_to("t", { event = "tick", data = "x\ny" })
    if n ~= 1 then stop("broadcast_to reached " .. tostring(n) .. " streams") end
  end))
  client:connect("127.0.0.1", port, function(cerr)
    if cerr then return stop("connect: " .. cerr) end
    client:read_start(function(rerr, chunk)
      if rerr or not chunk then return stop("read: " .. tostring(rerr or "eof")) end
      got = got .. chunk
      if got:find("data: y\n\n", 1, true) then stop() end
    end)
  end)
  timer:start(5000, 0, function() stop("timed out after 5 s with " .. ("%q"):format(got)) end)
  uv.run()
  assert(not failure, failure)
  local want = "event: tick\nid: " .. tostring(id) .. "\ndata: x\ndata: y\n\n"
  -- (whatever attach sends first, e.g. a join position, may come before it)
  assert(got:sub(-#want) == want, ("got %q, want it to end with %q"):format(got, want))
  done[#done + 1] = "Hub/Stream on luv"
else
  done[#done + 1] = "(no luv for this Lua: no Hub/Stream round trip)"
end
print(("rock-test: %s from %s: %s ok"):format(lua, tree, table.concat(done, ", ")))
