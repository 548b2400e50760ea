-- A bare sse.Stream server for spec/reset_spec.lua, run as a child process
-- (it may die: the spec reads its exit status). Every connection that sends
-- a request head gets a response head, then becomes Stream.new{handle = tcp}:
-- one event at once, then one every millisecond to every open stream. Prints "port N",
-- then "streams K" whenever the number of open streams changes. The spec
-- stops it by PID.
--
--   lua reset_stream_server.lua
local uv = require("luv")
local Stream = require("sse.stream")

local function out(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

-- luv's default handler exits on an error in a callback: report it first.
local function guarded(fn)
  return function(...)
    local ok, err = pcall(fn, ...)
    if not ok then
      out("error " .. tostring(err):gsub("\n", " "))
      os.exit(3)
    end
  end
end

local streams, nopen, seq = {}, 0, 0

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
-- The head is written with luv's own tcp:write, as a program that speaks
-- HTTP itself would; from then on the Stream's C core writes the handle.
local HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"

assert(server:listen(1024, guarded(function(err)
  if err then return end
  local tcp = uv.new_tcp()
  if not server:accept(tcp) then tcp:close() return end
  local stream, got = nil, ""
  tcp:read_start(guarded(function(rerr, data)
    if not data then
      if stream then stream:close(rerr or "eof") elseif not tcp:is_closing() then tcp:close() end
      return
    end
    if stream then return end -- the request is all we read
    got = got .. data
    if not got:find("\r\n\r\n", 1, true) then return end
    tcp:write(HEAD)
    stream = Stream.new({ handle = tcp })
    streams[stream] = true
    nopen = nopen + 1
    stream:on_close(function()
      streams[stream] = nil
      nopen = nopen - 1
    end)
    stream:send({ event = "hello", data = "first" })
  end))
end)))

local tick = uv.new_timer()
tick:start(1, 1, guarded(function()
  seq = seq + 1
  local ev = { data = "tick " .. seq }
  for s in pairs(streams) do s:send(ev) end
end))

-- the open stream count, whenever it changes (checked every 50 ms)
local shown = -1
local report = uv.new_timer()
report:start(50, 50, guarded(function()
  if nopen ~= shown then
    shown = nopen
    out("streams " .. nopen)
  end
end))

out("port " .. server:getsockname().port)
uv.run()
