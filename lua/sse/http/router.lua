--- sse.http.router: routes (exact paths and '*' prefixes), and the dispatch
-- of a parsed request to its handler: 404, 405 with Allow, OPTIONS and CORS
-- preflights, HEAD through GET, and the handler-error policy.
local core = require("sse.core")
local options = require("sse.http.options")
local response = require("sse.http.response")

local argerror, show = options.argerror, options.show

local CORS_HEADERS = "Last-Event-ID, Content-Type, Authorization"

local Router = {}
Router.__index = Router

function Router.new()
  return setmetatable({
    exact = {},     -- path -> { methods = {GET = fn, ...}, path = }
    prefixes = {},  -- routes whose path ends in '*', longest prefix first
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

local function first(v)
  if type(v) == "table" then return v[1] end
  return v
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
  req.remote = conn.remote
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

  local ok, err = xpcall(function() return handler(req, res) end, debug.traceback)
  if not ok then
    pcall(server.log, ("handler error in %s %s: %s"):format(method, route.path, tostring(err)))
    if res._stream then
      res._stream:close()
    elseif not res._done then
      res:_answer(500, "internal server error\n")
    end
  elseif not res._done and not res._later then
    pcall(server.log, ("handler of %s %s returned without a response"):format(method, route.path))
    res:_answer(500, "internal server error\n")
  end
end

return Router
