--- sse.http.router: routes (exact paths and '*' prefixes), and the dispatch
-- of a parsed request to its handler: 404, 405 with Allow, OPTIONS and CORS
-- preflights, HEAD through GET, and the handler-error policy.
local core = require("sse.core")
local options = require("sse.http.options")
local response = require("sse.http.response")

local argerror, show = options.argerror, options.show

local CORS_HEADERS = "Last-Event-ID, Content-Type, Authorization"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local Router = {}
Router.__index = Router

function Router.new()
  return setmetatable({
    exact = {},     -- path -> { methods = {GET = fn, ...}, path = }
    prefixes = {},  -- routes whose path ends in '*', longest prefix first
    _middleware = {}, -- { prefix =, fn = } in the order of app:use
  }, Router)
end

--- router:add(fname, method, path, handler, n): n is the argument number
-- of `method` in fname's call (0 when fname has no method argument).
-- Raises naming the bad argument, at the level of fname's caller.
function Router:add(fname, method, path, handler, n)
  if type(method) ~= "string" or not method:find(options.TOKEN) or method ~= method:upper() then
    argerror(n, fname, "method must be an uppercase token like \"GET\", got " .. show(method), 3)
  end
  n = n + 1
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" or path:find("[%c ]") then
    argerror(n, fname, "path must start with '/' and hold no spaces or control characters, got "
      .. show(path), 3)
  end
  if path:find("*", 1, true) and path:find("*", 1, true) ~= #path then
    argerror(n, fname, "'*' is only allowed at the end of a path, got " .. show(path), 3)
  end
  if type(handler) ~= "function" then
    argerror(n + 1, fname, "function expected, got " .. type(handler), 3)
  end
  local prefix = path:sub(-1) == "*"
  local key = prefix and path:sub(1, -2) or path
  local route
  if prefix then
    for _, r in ipairs(self.prefixes) do
      if r.prefix == key then route = r break end
    end
  else
    route = self.exact[key]
  end
  if not route then
    route = { methods = {}, path = path, prefix = prefix and key or nil }
    if prefix then
      local list = self.prefixes
      list[#list + 1] = route
      table.sort(list, function(a, b) return #a.prefix > #b.prefix end)
    else
      self.exact[key] = route
    end
  end
  if route.methods[method] then
    argerror(n, fname, ("%s %s is already routed"):format(method, path), 3)
  end
  route.methods[method] = handler
  route.allow = nil
end

--- The route of a path: the exact one, else the longest prefix; or nil.
function Router:find(path)
  local r = self.exact[path]
  if r then return r end
  for _, p in ipairs(self.prefixes) do
    if path:sub(1, #p.prefix) == p.prefix then return p end
  end
  return nil
end

-- "GET, HEAD, OPTIONS, POST": the methods a route answers, sorted.
local function allow_list(route)
  if route.allow then return route.allow end
  local seen, list = { OPTIONS = true }, { "OPTIONS" }
  for m in pairs(route.methods) do
    if not seen[m] then seen[m] = true list[#list + 1] = m end
  end
  if seen.GET and not seen.HEAD then list[#list + 1] = "HEAD" end
  table.sort(list)
  route.allow = table.concat(list, ", ")
  return route.allow
end

-- Every method of every route (OPTIONS *).
function Router:_all()
  local all = { methods = {} }
  for _, r in pairs(self.exact) do
    for m, h in pairs(r.methods) do all.methods[m] = h end
  end
  for _, r in ipairs(self.prefixes) do
    for m, h in pairs(r.methods) do all.methods[m] = h end
  end
  return all
end

-- Lowercasing lookup for req.headers: h["Content-Type"] finds "content-type".
local headers_mt = {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local lk = k:lower()
    if lk == k then return nil end
    return rawget(t, lk)
  end,
}

-- req.remote, the peer's address, is asked of the socket when it is first
-- read (a system call most requests do without)
local peer_of = setmetatable({}, { __mode = "k" }) -- req -> its luv handle
local req_mt = {
  __index = function(t, k)
    if k ~= "remote" then return nil end
    local tcp = peer_of[t]
    if not tcp then return nil end
    peer_of[t] = nil
    local ok, peer = pcall(tcp.getpeername, tcp)
    local ip = ok and type(peer) == "table" and peer.ip or nil
    rawset(t, "remote", ip)
    return ip
  end,
}

local function first(v)
  if type(v) == "table" then return v[1] end
  return v
end

-- A request coroutine -> its driver (await resumes through it).
local drivers = setmetatable({}, { __mode = "k" })

-- The body of a request's coroutine: the middleware that applies, in order
-- (each may answer, which ends the chain), then the route's handler.
local function chain(middleware, handler, req, res)
  for i = 1, #middleware do
    local m = middleware[i]
    if not m.prefix or req.path:sub(1, #m.prefix) == m.prefix then
      m.fn(req, res)
      if res._done then return end
    end
  end
  return handler(req, res)
end

-- Request coroutines are reused: one that ran its request to the end (no
-- error) yields FINISHED and waits for the next request, so a request does
-- not cost a new Lua thread and stack.
local FINISHED = setmetatable({}, { __name = "sse.http request finished" })
local idle_cos, n_idle = {}, 0
local MAX_IDLE = 64

local function worker(middleware, handler, req, res)
  while true do
    chain(middleware, handler, req, res)
    req, res = nil, nil -- luacheck: ignore 311 (not kept alive by an idle coroutine)
    middleware, handler, req, res = coroutine.yield(FINISHED)
  end
end

local function take_co()
  if n_idle == 0 then return coroutine.create(worker) end
  local co = idle_cos[n_idle]
  idle_cos[n_idle] = nil
  n_idle = n_idle - 1
  return co
end

-- Each request coroutine's driver and context, made once per coroutine and
-- reused with it (a request makes no closure): ctx = {server, conn, res,
-- method, route} of the request it runs.
local ctx_of = setmetatable({}, { __mode = "k" })

local function what(ctx) return ctx[4] .. " " .. ctx[5].path end

-- Runs the request's coroutine co until it ends or waits (then "pending");
-- when it ends, applies the policy: an error is logged (500 if nothing was
-- sent, the stream closed otherwise), no answer (and no res:later()) is a
-- 500. The late answer hands the connection back (sse.http.conn.answered).
local function drive(ctx, co, ...)
  local ok, err = coroutine.resume(co, ...)
  local finished = ok and err == FINISHED
  local server, res = ctx[1], ctx[3]
  if not finished and coroutine.status(co) ~= "dead" then
    -- waiting in await: the connection waits for the answer as for
    -- res:later() (sse.http.conn: pipelined requests after it; 503 past
    -- idle_timeout)
    if not res._done then ctx[2].waiting = true end
    return "pending"
  end
  local label = (not ok or (not res._done and not res._later)) and what(ctx) or nil
  ctx[1], ctx[2], ctx[3], ctx[4], ctx[5] = nil, nil, nil, nil, nil -- holds no request
  if finished and n_idle < MAX_IDLE then
    n_idle = n_idle + 1
    idle_cos[n_idle] = co
  end
  if not ok then
    pcall(server.log, ("handler error in %s: %s"):format(label, debug.traceback(co, tostring(err))))
    if res._stream then
      res._stream:close()
    elseif not res._done then
      res:_answer(500, "internal server error\n")
    end
  elseif not res._done and not res._later then
    pcall(server.log, ("handler of %s returned without a response"):format(label))
    res:_answer(500, "internal server error\n")
  end
end

-- Starts the request on co: its context filled, its driver made once.
local function start(server, conn, res, co, method, route, ...)
  local ctx = ctx_of[co]
  if not ctx then
    ctx = {}
    ctx_of[co] = ctx
    drivers[co] = function(...) -- await's done, from a luv callback: nothing may escape
      local srv = ctx[1]
      local ok, err = pcall(drive, ctx, co, ...)
      if not ok and srv then pcall(srv.log, "internal error after await: " .. tostring(err)) end
    end
  end
  ctx[1], ctx[2], ctx[3], ctx[4], ctx[5] = server, conn, res, method, route
  return drive(ctx, co, ...)
end

--- router:use(prefix, fn): middleware fn(req, res) for every routed request
-- (prefix nil: all; else the paths that start with it), in the order added,
-- before the handler. It answers to stop the request there (a 401, a 429),
-- or returns to let it go on; it may wait with sse.http.await.
function Router:use(prefix, fn)
  local list = self._middleware
  list[#list + 1] = { prefix = prefix, fn = fn }
end

--- dispatch(server, conn, req): completes req (query, headers, Last-Event-ID,
-- remote) and answers it through its route's handler. A bad query is a
-- protocol error (server:_fail).
function Router:dispatch(server, conn, req)
  local q, status, msg = core.http_parse_query(req.query, server.max_query_pairs)
  if not q then return server:_fail(conn, status, msg) end
  req.query = q
  local headers = setmetatable(req.headers, headers_mt)
  req.last_event_id = headers["last-event-id"] or first(q.lastEventId)
  peer_of[req] = conn.tcp
  setmetatable(req, req_mt)
  req.content_length, req.head_bytes = nil, nil
  local keep = req.keep_alive
  req.keep_alive = nil

  local res = response.Response.new(server, conn, req, keep)
  local cors = server.cors
  if cors then
    local origin = headers.origin
    if origin and (cors.any or cors.set[origin]) then res._origin = origin end
  end

  local method = req.method
  local route = self:find(req.path)
  if not route then
    if method == "OPTIONS" and req.target == "*" then
      return res:_answer(204, nil, { "Allow", allow_list(self:_all()) })
    end
    return res:_answer(404, "not found\n")
  end
  local handler = route.methods[method]
  if not handler and method == "HEAD" then handler = route.methods.GET end
  if not handler then
    local allow = allow_list(route)
    if method == "OPTIONS" then
      if res._origin and headers["access-control-request-method"] then
        return res:_answer(204, nil, {
          "Allow", allow,
          "Access-Control-Allow-Methods", allow,
          "Access-Control-Allow-Headers", CORS_HEADERS,
          "Access-Control-Max-Age", tostring(cors.max_age),
        })
      end
      return res:_answer(204, nil, { "Allow", allow })
    end
    return res:_answer(405, "method not allowed\n", { "Allow", allow })
  end

  start(server, conn, res, take_co(), method, route, self._middleware, handler, req, res)
end

--- await(fn [, timeout]) -> what fn's callback was given | nil, "timeout".
-- Inside a handler or middleware (they run in a coroutine per request):
-- calls fn(done) and waits, without blocking the loop, until done(...) is
-- called -- at once or from a later luv callback -- then returns done's
-- arguments. With timeout (seconds), gives nil, "timeout" if done has not
-- been called by then (a later call is ignored). The connection waits too:
-- requests pipelined behind are answered after this one.
function Router.await(fn, timeout)
  if type(fn) ~= "function" then
    argerror(1, "await", "function expected, got " .. type(fn), 2)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout > 0 and timeout < 1e9)) then
    argerror(2, "await", "timeout must be a positive number of seconds, got " .. show(timeout), 2)
  end
  local co = coroutine.running()
  local resume = co and drivers[co]
  if not resume then
    error("'await' called outside an sse.http handler", 2)
  end
  local state, results, timer = "calling", nil, nil
  local function done(...)
    if state == "done" then return end
    local was = state
    state = "done"
    if timer then
      timer:close()
      timer = nil
    end
    if was == "calling" then
      results = { n = select("#", ...), ... } -- answered at once: no yield
    else
      resume(...)
    end
  end
  fn(done)
  if state == "done" then return unpack(results, 1, results.n) end
  state = "waiting"
  if timeout then
    local uv = require("luv")
    timer = uv.new_timer()
    timer:start(math.max(1, math.floor(timeout * 1000)), 0, function() done(nil, "timeout") end)
  end
  return coroutine.yield()
end

return Router
