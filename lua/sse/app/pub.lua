--- sse.app.pub: the sse-pub command -- publish one event to a hub's
-- POST /publish (the demo hub's, or any server with the same endpoint).
--
--   sse-pub http://127.0.0.1:8080 news 'hello' --event headline
--   echo '{"n":1}' | SSE_TOKEN=s3cret sse-pub http://hub:8080 news - --json
--
-- main(argv) returns the exit status: 0 when the hub stored the event (its
-- answer, {"id":..,"topic":..,"subscribers":n}, is printed), 1 when it did
-- not (the hub's error or the connection's is printed), 2 on a bad
-- command line.
local uv = require("luv")
local core = require("sse.core")
local cjson = require("cjson")

local M = {}

M.USAGE = [[
usage: %s URL TOPIC DATA [options]

Publishes one event to the hub at URL (its /publish endpoint; a URL whose
path does not end in /publish gets it appended). DATA '-' reads standard
input (one trailing newline removed).

options:
  --event TYPE     the event type (default: message)
  --retry MS       the client reconnection delay to send with it
  --json           DATA is JSON: sent as a JSON value, not as a string
  --token TOKEN    'Authorization: Bearer TOKEN' (default: $SSE_TOKEN)
  --timeout S      seconds to wait for the hub (default 10)
  --help           this text
]]

local VALUE_FLAGS = { event = true, retry = true, token = true, timeout = true }

--- parse(argv) -> opts | nil, message | "help"
function M.parse(argv)
  local o, pos, i = { timeout = 10 }, {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then return "help" end
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if name == "json" and inline == nil then
      o.json = true
    elseif name and VALUE_FLAGS[name] then
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
        if v == nil then return nil, "option --" .. name .. " needs a value" end
      end
      o[name] = v
    elseif name then
      return nil, "unknown option " .. a
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if #pos ~= 3 then return nil, "URL, TOPIC and DATA expected, got " .. #pos .. " argument(s)" end
  o.url, o.topic, o.data = pos[1], pos[2], pos[3]
  if o.retry ~= nil then
    local n = tonumber(o.retry)
    if not n or n < 0 or n ~= math.floor(n) then return nil, "--retry: a non-negative integer expected" end
    o.retry = math.floor(n)
  end
  local t = tonumber(o.timeout)
  if not t or t <= 0 then return nil, "--timeout: a positive number of seconds expected" end
  o.timeout = t
  return o
end

--- target(url) -> host, port, path | nil, message
function M.target(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "URL must start with http://" end
  if scheme:lower() ~= "http" then return nil, ("%s:// is not supported (http:// only)"):format(scheme) end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, "URL has no host" end
  port = port ~= "" and tonumber(port) or 80
  if port < 1 or port > 65535 then return nil, "URL has a bad port" end
  path = path:gsub("#.*$", "")
  if path == "" then path = "/" end
  if not path:match("/publish$") then path = path:gsub("/$", "") .. "/publish" end
  return host, port, path
end

--- body(opts) -> the JSON request body, or nil, message (DATA not JSON).
function M.body(o)
  local data = o.data
  local parts = { '{"topic":', cjson.encode(o.topic) }
  if o.event then parts[#parts + 1] = ',"event":' parts[#parts + 1] = cjson.encode(o.event) end
  if o.retry then parts[#parts + 1] = ',"retry":' parts[#parts + 1] = tostring(o.retry) end
  parts[#parts + 1] = ',"data":'
  if o.json then
    local ok = pcall(cjson.decode, data)
    if not ok then return nil, "DATA is not JSON (--json)" end
    parts[#parts + 1] = data -- as written: the hub keeps its bytes
  else
    parts[#parts + 1] = cjson.encode(data)
  end
  parts[#parts + 1] = "}"
  return table.concat(parts)
end

-- POSTs body to host:port path; calls done(status, body) or done(nil, err).
local function post(host, port, path, body, token, timeout, done)
  local finished = false
  local tcp, timer = nil, uv.new_timer()
  local function finish(a, b)
    if finished then return end
    finished = true
    timer:stop()
    timer:close()
    if tcp and not tcp:is_closing() then tcp:close() end
    done(a, b)
  end
  timer:start(math.floor(timeout * 1000), 0, function() finish(nil, "timed out") end)
  uv.getaddrinfo(host, tostring(port), { socktype = "stream" }, function(gerr, addrs)
    if finished then return end
    if gerr or not addrs or not addrs[1] then
      return finish(nil, "cannot resolve " .. host .. ": " .. tostring(gerr))
    end
    local a = addrs[1]
    tcp = uv.new_tcp()
    tcp:connect(a.addr, a.port, function(cerr)
      if cerr then return finish(nil, ("cannot connect to %s:%d: %s"):format(host, port, cerr)) end
      local head = { "POST ", path, " HTTP/1.1\r\nHost: ", host:find(":", 1, true) and "[" .. host .. "]" or host,
        port ~= 80 and ":" .. port or "", "\r\nContent-Type: application/json\r\nContent-Length: ", #body,
        "\r\nConnection: close\r\nUser-Agent: sse-pub\r\n" }
      if token then head[#head + 1] = "Authorization: Bearer " .. token .. "\r\n" end
      head[#head + 1] = "\r\n"
      tcp:write({ table.concat(head), body })
      local got = {}
      tcp:read_start(function(rerr, chunk)
        if chunk then
          got[#got + 1] = chunk
          local buf = table.concat(got)
          local res = core.http_parse_response(buf)
          local len = res and tonumber(res.headers["content-length"])
          if len and #buf >= res.head_bytes + len then
            return finish(res.status, buf:sub(res.head_bytes + 1, res.head_bytes + len))
          end
          return
        end
        local buf = table.concat(got)
        local res, msg = core.http_parse_response(buf)
        if res then return finish(res.status, buf:sub(res.head_bytes + 1)) end
        finish(nil, rerr and ("read failed: " .. rerr) or msg and ("bad answer: " .. msg)
          or "the hub closed the connection")
      end)
    end)
  end)
end

--- main(argv [, prog]) -> exit status
function M.main(argv, prog)
  prog = prog or "sse-pub"
  local o, err = M.parse(argv or {})
  if o == "help" then
    io.stdout:write(M.USAGE:format(prog))
    return 0
  end
  local function die(msg, status)
    io.stderr:write(prog, ": ", msg, "\n")
    if status == 2 then io.stderr:write(M.USAGE:format(prog)) end
    return status
  end
  if not o then return die(err, 2) end
  local host, port, path = M.target(o.url)
  if not host then return die(port, 2) end
  if o.data == "-" then o.data = (io.stdin:read("*a") or ""):gsub("\n$", "") end
  local body, berr = M.body(o)
  if not body then return die(berr, 2) end
  local token = o.token or os.getenv("SSE_TOKEN")
  if token == "" then token = nil end
  local status, answer
  post(host, port, path, body, token, o.timeout, function(s, a) status, answer = s, a end)
  uv.run()
  if not status then return die(answer, 1) end
  if status >= 200 and status < 300 then
    io.stdout:write(answer, answer:sub(-1) == "\n" and "" or "\n")
    return 0
  end
  local ok, j = pcall(cjson.decode, answer)
  local why = ok and type(j) == "table" and type(j.error) == "string" and j.error or answer
  return die(("%d: %s"):format(status, why), 1)
end

return M
