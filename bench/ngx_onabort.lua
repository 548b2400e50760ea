-- bench/ngx_fanout.sh's `ngx-onabort` column: bench/ngx_sse.lua with the
-- default abort of sse.ngx.stream (an ngx.on_abort coroutine per request)
-- instead of abort = "log": the A/B of that option (bench/README.md).
return require("ngx_sse").server("on_abort")
