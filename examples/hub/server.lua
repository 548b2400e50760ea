-- The sse demo hub from a checkout: `make run`, or
--   lua5.4 examples/hub/server.lua [--host H] [--port P] [options]   (--help lists them)
-- It is the installed `sse-hub` command (bin/sse-hub), run from here: it finds
-- the checkout's lua/ and build/<lua>/ itself, no environment variables needed.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "../../bin/sse-hub")
