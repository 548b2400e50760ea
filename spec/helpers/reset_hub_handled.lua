-- The demo hub in a program that handles SIGPIPE itself (a luv signal
-- handle installed before sse is loaded), for spec/reset_spec.lua. sse.core
-- then leaves the disposition alone, so every write after a reset fails
-- with EPIPE *and* raises the signal; the hub must work the same. Prints
-- "sigpipe_was <what sse.core found>", then "sigpipes N" as N grows, then
-- whatever examples/hub/server.lua prints.
local uv = require("luv")
local n, shown = 0, 0
local sig = uv.new_signal()
sig:start("sigpipe", function() n = n + 1 end)
sig:unref()
local function out(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end
out("sigpipe_was " .. require("sse.core").sigpipe_was)
local t = uv.new_timer()
t:start(20, 20, function()
  if n ~= shown then
    shown = n
    out("sigpipes " .. n)
  end
end)
t:unref()
dofile("examples/hub/server.lua")
