-- A real nginx for specs: Debian's nginx with lua-nginx-module, started from
-- a temporary prefix on a free loopback port, with the project's module built
-- for LuaJIT (make LUA=luajit) and its Lua files; stopped by its PID.
--
--   local N = require("helpers.nginx")
--   local srv = assert(N.start{ workers = 2, http = "lua_shared_dict d 1m;",
--                               server = "location / { content_by_lua_block { ngx.say(1) } }" })
--   srv.port  srv.pid  srv.prefix  srv:workers()  srv:reload()  srv:log()  srv:stop()
--   N.start{ example = true, edit = fn }   -- examples/openresty/nginx.conf itself
--
-- Clients (luv, loopback, every wait bounded): N.connect(port) -> conn;
-- conn:request(method, path [, {headers =, body =}]) -> {status, headers,
-- body} on a keep-alive connection (chunked or Content-Length bodies);
-- conn:stream(path [, headers]) turns it into an event-stream reader:
-- conn.head, conn.events ({type, data, id}), conn.body (decoded bytes),
-- conn.ended (the server ended the stream: the last chunk, or EOF for
-- HTTP/1.0), conn.eof. N.wait(pred, ms) runs the loop until pred() holds.
--
-- The processes run outside any luv loop (started through sh), so a spec's
-- loop can close every handle without touching them. Everything waits with
-- a bound; nothing signals a process other than the ones started here.
local uv = require("luv")
local core = require("sse.core")

local M = {}

local MODULES = "/usr/lib/nginx/modules/"
M.ROOT = os.getenv("SSE_ROOT") or (os.getenv("PWD") or ".")
-- the LuaJIT build of sse.core (nginx embeds LuaJIT whatever runs busted)
M.BUILD = os.getenv("SSE_NGX_BUILD") or (M.ROOT .. "/build/luajit")

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function sleep(s)
  -- outside any loop: a blocking sleep is what we want here
  uv.sleep(math.floor(s * 1000))
end

--- Why nginx cannot run here, or nil.
function M.missing()
  if sh("command -v nginx 2>/dev/null") == "" then return "nginx is not installed" end
  for _, m in ipairs({ "ndk_http_module.so", "ngx_http_lua_module.so" }) do
    if not read(MODULES .. m) then return "libnginx-mod-http-lua is not installed (" .. m .. ")" end
  end
  if not read(M.BUILD .. "/sse/core.so") then
    return M.BUILD .. "/sse/core.so is missing: run make LUA=luajit"
  end
  return nil
end

--- A free loopback TCP port (bound, read, released).
function M.free_port()
  local t = uv.new_tcp()
  assert(t:bind("127.0.0.1", 0))
  local port = t:getsockname().port
  t:close()
  uv.run("nowait")
  return port
end

--- Is pid a live process (not a zombie)?
function M.alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- The PIDs of pid's children, sorted.
local function children(pid)
  local out = sh("pgrep -P " .. pid .. " 2>/dev/null")
  local list = {}
  for p in out:gmatch("%d+") do
    if M.alive(tonumber(p)) then list[#list + 1] = tonumber(p) end
  end
  table.sort(list)
  return list
end

local TEMPLATE = [[
load_module ${modules}ndk_http_module.so;
load_module ${modules}ngx_http_lua_module.so;
${main}
daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile 8192;
worker_shutdown_timeout ${shutdown_timeout};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log ${log_level};

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path ${prefix}/tmp/body;
    proxy_temp_path ${prefix}/tmp/proxy;
    fastcgi_temp_path ${prefix}/tmp/fastcgi;
    uwsgi_temp_path ${prefix}/tmp/uwsgi;
    scgi_temp_path ${prefix}/tmp/scgi;
    # the project's Lua files first; ';;' keeps the default path (resty.core)
    lua_package_path "${root}/lua/?.lua;${root}/lua/?/init.lua;${root}/spec/?.lua;${lua_path};;";
    lua_package_cpath "${build}/?.so;;";
${http}
    server {
        listen 127.0.0.1:${port};
${server}
    }
}
]]

local function expand(template, vars)
  return (template:gsub("%${([%w_]+)}", function(k)
    local v = vars[k]
    if v == nil then error("nginx template: no value for ${" .. k .. "}", 0) end
    return tostring(v)
  end))
end

local Server = {}
Server.__index = Server

-- examples/openresty/nginx.conf with its @NAME@ placeholders filled in.
local function example_conf(vars)
  local text = assert(read(M.ROOT .. "/examples/openresty/nginx.conf"), "no examples/openresty/nginx.conf")
  local fill = {
    PREFIX = vars.prefix, WORKERS = vars.workers, LISTEN = "127.0.0.1:" .. vars.port .. " reuseport",
    LUA_PATH = vars.root .. "/lua/?.lua;" .. vars.root .. "/lua/?/init.lua;" .. vars.root
      .. "/examples/openresty/?.lua;" .. vars.root .. "/spec/?.lua",
    LUA_CPATH = vars.build .. "/?.so",
  }
  return (text:gsub("@([%u_]+)@", function(k)
    return assert(fill[k], "example nginx.conf: unknown placeholder @" .. k .. "@")
  end))
end

--- N.start(opts) -> server | nil, why. opts: workers (2), http, server, main
-- (text of those blocks), lua_path (more templates), log_level ("info"),
-- shutdown_timeout ("10s": old workers of a reload never linger longer),
-- conf (a whole nginx.conf template instead; ${port} ${prefix} ... expanded),
-- example = true (examples/openresty/nginx.conf, listening with reuseport so
-- connections spread over the workers), edit (a function(text) -> text
-- applied to the config last).
function M.start(opts)
  opts = opts or {}
  local why = M.missing()
  if why then return nil, why end
  local prefix = sh("mktemp -d /tmp/sse-nginx.XXXXXX"):gsub("%s+$", "")
  assert(prefix ~= "", "mktemp failed")
  sh("mkdir -p " .. quote(prefix .. "/conf") .. " " .. quote(prefix .. "/logs") .. " "
    .. quote(prefix .. "/tmp") .. " && chmod -R 755 " .. quote(prefix))
  local last
  for _ = 1, 3 do -- a port taken between free_port() and nginx's bind: try another
    local srv = setmetatable({ prefix = prefix, port = M.free_port(), opts = opts }, Server)
    local ok, err = srv:_launch()
    if ok then return srv end
    last = err
    if not tostring(err):find("Address already in use", 1, true) then break end
  end
  sh("rm -rf " .. quote(prefix))
  return nil, last
end

function Server:_conf()
  local o = self.opts
  local vars = {
    modules = MODULES, prefix = self.prefix, port = self.port, root = M.ROOT, build = M.BUILD,
    workers = o.workers or 2, main = o.main or "", http = o.http or "", server = o.server or "",
    lua_path = o.lua_path or "", log_level = o.log_level or "info",
    shutdown_timeout = o.shutdown_timeout or "10s",
  }
  local text = o.example and example_conf(vars) or expand(o.conf or TEMPLATE, vars)
  if o.edit then text = o.edit(text) end
  return text
end

function Server:_launch()
  write(self.prefix .. "/conf/nginx.conf", self:_conf())
  local out = sh("cd " .. quote(self.prefix) .. " && nginx -p " .. quote(self.prefix .. "/")
    .. " -c conf/nginx.conf > logs/stderr.log 2>&1 & echo $!")
  self.pid = tonumber(out:match("%d+"))
  assert(self.pid, "could not start nginx")
  local want = self.opts.workers or 2
  for _ = 1, 200 do -- at most 10 s
    if not M.alive(self.pid) then
      return nil, (read(self.prefix .. "/logs/stderr.log") or "") .. (read(self.prefix .. "/logs/error.log") or "")
    end
    if #children(self.pid) >= want and self:_accepts() then return true end
    sleep(0.05)
  end
  self:stop()
  return nil, "nginx did not start within 10 s:\n" .. self:log()
end

-- Does the port accept a connection? (a blocking check on a private loop turn)
function Server:_accepts()
  local t, done, ok = uv.new_tcp(), false, false
  t:connect("127.0.0.1", self.port, function(err)
    ok = err == nil
    done = true
  end)
  for _ = 1, 100 do
    if done then break end
    uv.run("nowait")
    sleep(0.002)
  end
  if not t:is_closing() then t:close() end
  uv.run("nowait")
  return ok
end

--- The worker PIDs (children of the master), sorted.
function Server:workers()
  return children(self.pid)
end

--- error.log (and what nginx printed on stderr) so far.
function Server:log()
  return (read(self.prefix .. "/logs/stderr.log") or "") .. (read(self.prefix .. "/logs/error.log") or "")
end

--- Lines of error.log at or above the error level ([error], [crit], [alert], [emerg]).
function Server:errors()
  local list = {}
  for line in self:log():gmatch("[^\n]+") do
    if line:find("%[error%]") or line:find("%[crit%]") or line:find("%[alert%]") or line:find("%[emerg%]") then
      list[#list + 1] = line
    end
  end
  return list
end

--- srv:reload([opts]): rewrites the config (opts merged into the start
-- options) and sends SIGHUP; returns the new workers once the master has
-- started them (the old ones may still be finishing their requests), or
-- nil, why.
function Server:reload(more)
  for k, v in pairs(more or {}) do self.opts[k] = v end
  write(self.prefix .. "/conf/nginx.conf", self:_conf())
  local old = {}
  for _, p in ipairs(self:workers()) do old[p] = true end
  assert(os.execute("kill -HUP " .. self.pid) ~= false)
  local want = self.opts.workers or 2
  for _ = 1, 200 do
    local fresh = {}
    for _, p in ipairs(self:workers()) do
      if not old[p] then fresh[#fresh + 1] = p end
    end
    if #fresh >= want then return fresh, old end
    sleep(0.05)
  end
  return nil, "no new workers within 10 s:\n" .. self:log()
end

--- N.settle(): closes every luv handle still open and lets their close
-- callbacks run (Debian's luv crashes at exit on a handle closed but not
-- yet run by the loop).
function M.settle()
  uv.walk(function(h) if not h:is_closing() then h:close() end end)
  uv.run("nowait")
end

--- srv:stop(): SIGTERM to the master (fast shutdown), SIGKILL to it and its
-- workers after 5 s; then the prefix is removed (srv.keep: kept). Client
-- connections still open are closed (N.settle).
function Server:stop()
  M.settle()
  if not self.pid then return end
  local procs = self:workers()
  table.insert(procs, 1, self.pid)
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  for _ = 1, 100 do
    local any = false
    for _, p in ipairs(procs) do any = any or M.alive(p) end
    if not any then break end
    sleep(0.05)
  end
  for _, p in ipairs(procs) do
    if M.alive(p) then os.execute("kill -KILL " .. p .. " 2>/dev/null") end
  end
  self.pid = nil
  if not self.keep and not os.getenv("SSE_NGX_KEEP") then sh("rm -rf " .. quote(self.prefix)) end
end

-- ---------------------------------------------------------------------------
-- Clients

--- N.wait(pred, ms): runs the luv loop until pred() holds or ms pass; returns pred().
function M.wait(pred, ms)
  local guard = uv.new_timer()
  guard:start(5, 5, function() end)
  uv.update_time()
  local deadline = uv.now() + (ms or 2000)
  while not pred() do
    uv.update_time()
    if uv.now() >= deadline then break end
    uv.run("once")
  end
  guard:stop()
  guard:close()
  uv.run("nowait")
  return pred()
end

--- N.sleep(ms): runs the loop for ms.
function M.sleep(ms)
  M.wait(function() return false end, ms)
end

local Conn = {}
Conn.__index = Conn

--- N.connect(port) -> conn (connected), or nil, err.
function M.connect(port)
  local c = setmetatable({ buf = "", eof = false, tcp = uv.new_tcp(), events = {}, body = "" }, Conn)
  local done, cerr = false, nil
  c.tcp:connect("127.0.0.1", port, function(err)
    cerr = err
    done = true
    if err then return end
    c.tcp:read_start(function(rerr, data)
      if data then
        c.buf = c.buf .. data
        if c.streaming then c:_pump() end
      else
        c.eof, c.err = true, rerr
        if c.streaming then c:_pump() end
        if not c.tcp:is_closing() then c.tcp:close() end
      end
    end)
  end)
  M.wait(function() return done end, 2000)
  if not done or cerr then
    if not c.tcp:is_closing() then c.tcp:close() end
    return nil, cerr or "connect timeout"
  end
  return c
end

function Conn:send(s)
  if self.tcp:is_closing() then return nil, "closed" end
  return self.tcp:write(s)
end

function Conn:close()
  if not self.tcp:is_closing() then self.tcp:close() end
end

-- Decodes chunked framing from self.buf into out (a list); returns true at
-- the last chunk, nil when more is needed; raises on bad framing.
function Conn:_dechunk(out)
  while true do
    if self._chunk_left and self._chunk_left > 0 then
      local n = math.min(self._chunk_left, #self.buf)
      if n == 0 then return nil end
      out[#out + 1] = self.buf:sub(1, n)
      self.buf = self.buf:sub(n + 1)
      self._chunk_left = self._chunk_left - n
      if self._chunk_left > 0 then return nil end
      self._chunk_left = -1 -- the CRLF after the data
    end
    if self._chunk_left == -1 then
      if #self.buf < 2 then return nil end
      assert(self.buf:sub(1, 2) == "\r\n", "bad chunk end: " .. self.buf:sub(1, 20))
      self.buf = self.buf:sub(3)
      self._chunk_left = nil
    end
    local line_end = self.buf:find("\r\n", 1, true)
    if not line_end then return nil end
    local line = self.buf:sub(1, line_end - 1)
    self.buf = self.buf:sub(line_end + 2)
    if self._chunk_left == -2 then -- after the last chunk: trailer lines, then an empty one
      if line == "" then
        self._chunk_left = nil
        self._last_chunk = true
        return true
      end
    else
      local hex = line:match("^(%x+)")
      assert(hex, "bad chunk size line: " .. line)
      local size = tonumber(hex, 16)
      self._chunk_left = size == 0 and -2 or size
    end
  end
end

-- Parses the response head at the start of self.buf; true once it has one.
function Conn:_head()
  if self.head then return true end
  local head, msg = core.http_parse_response(self.buf)
  if not head then
    assert(not msg, msg)
    return false
  end
  self.head = head
  self.buf = self.buf:sub(head.head_bytes + 1)
  self._chunked = (head.headers["transfer-encoding"] or ""):lower():find("chunked") ~= nil
  return true
end

--- conn:request(method, path [, {headers =, body =}]) -> res | nil, why:
-- one request on this connection and its whole response.
function Conn:request(method, path, o)
  o = o or {}
  local t = { method, " ", path, " HTTP/1.1\r\nHost: test\r\n" }
  for k, v in pairs(o.headers or {}) do t[#t + 1] = k .. ": " .. v .. "\r\n" end
  if o.body then t[#t + 1] = "Content-Length: " .. #o.body .. "\r\n" end
  t[#t + 1] = "\r\n"
  t[#t + 1] = o.body or ""
  self.head, self._chunk_left, self._last_chunk = nil, nil, nil
  self:send(table.concat(t))
  local parts, res = {}, nil
  M.wait(function()
    if not self:_head() then return self.eof end
    local h = self.head
    if method == "HEAD" or h.status == 204 or h.status == 304 then
      res = ""
    elseif self._chunked then
      if self:_dechunk(parts) then
        res = table.concat(parts)
      end
    else
      local len = tonumber(h.headers["content-length"])
      if len and #self.buf >= len then
        res = self.buf:sub(1, len)
        self.buf = self.buf:sub(len + 1)
      elseif not len and self.eof then
        res, self.buf = self.buf, ""
      end
    end
    return res ~= nil or self.eof
  end, o.timeout or 5000)
  if res == nil then return nil, self.eof and "closed" or "timeout" end
  local head = self.head
  self.head = nil
  head.body = res
  return head
end

--- conn:stream(path [, headers [, version]]): sends GET path and reads the
-- response as an event stream from then on (see the top of this file).
function Conn:stream(path, headers, version)
  local t = { "GET ", path, " HTTP/", version or "1.1", "\r\nHost: test\r\nAccept: text/event-stream\r\n" }
  for k, v in pairs(headers or {}) do t[#t + 1] = k .. ": " .. v .. "\r\n" end
  t[#t + 1] = "\r\n"
  self.head, self._chunk_left, self._last_chunk = nil, nil, nil
  self.parser = core.parser()
  self.streaming = true
  self.parts = {}
  self:send(table.concat(t))
  self:_pump()
  return self
end

function Conn:_pump()
  if not self:_head() then return end
  local out = {}
  if self._chunked then
    if self:_dechunk(out) then self.ended = true end
  else
    out[1], self.buf = self.buf, ""
    if self.eof then self.ended = true end
  end
  local data = table.concat(out)
  if data == "" then return end
  self.parts[#self.parts + 1] = data
  self.body = self.body .. data
  local evs = assert(self.parser:feed(data))
  for _, ev in ipairs(evs) do self.events[#self.events + 1] = ev end
end

--- The events of a stream of type t (default: "message").
function Conn:of_type(t)
  local list = {}
  for _, ev in ipairs(self.events) do
    if ev.type == (t or "message") then list[#list + 1] = ev end
  end
  return list
end

--- N.request(port, method, path [, o]) -> res: one request on a new connection.
function M.request(port, method, path, o)
  local c = assert(M.connect(port))
  local res, err = c:request(method, path, o)
  c:close()
  return res, err
end

--- N.connect_worker(port, pid, path) -> conn on a keep-alive connection
-- served by worker pid (path answers the worker's pid), or nil after 64 tries.
function M.connect_worker(port, pid, path)
  for _ = 1, 64 do
    local c = M.connect(port)
    if c then
      local res = c:request("GET", path or "/_pid")
      if res and tonumber(res.body) == pid then return c end
      c:close()
    end
  end
  return nil
end

return M
