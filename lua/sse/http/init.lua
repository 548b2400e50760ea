--- sse.http: a small, strict HTTP/1.1 server on luv, made to serve SSE.
-- Split by job: options.lua (options, CORS), router.lua (routes and
-- dispatch), conn.lua (the connection state machine and its timeouts),
-- response.lua (the one response-head writer, Response), server.lua.
--
--   local http = require("sse.http")
--   local app = http.new{ port = 8080 }
--   app:get("/events", function(req, res)
--     local stream = res:sse{ retry = 2000, keepalive = 15 }
--     stream:send_data("hello")
--   end)
--   app:post("/publish", function(req, res) res:json{ ok = true } end)
--   assert(app:listen())
--   require("luv").run()
--
-- http.new(opts) options (all optional; a bad one raises naming it):
--   host             address to bind, default "127.0.0.1" (an IP, not a name)
--   port             0..65535, default 8080; 0 picks a free port
--   max_connections  open connections (SSE streams included), default 10000;
--                    past it a new connection gets 503 and is closed at once
--   head_timeout     seconds a request head may take, default 10; a new
--                    connection must send its head within it too
--                    (slowloris). A body may pause at most this long and
--                    must arrive within it plus 1 ms per byte (1 KB/s).
--   idle_timeout     seconds a keep-alive connection may wait for its next
--                    request, default 60
--   max_head_bytes   request head limit, default 8192 (431, or 414 when the
--                    request line alone is too long)
--   max_headers      header lines per request, default 64 (431)
--   max_body_bytes   request body limit, default 1 MiB (413, answered as soon
--                    as Content-Length is seen)
--   max_query_pairs  query parameters per request, default 256 (400)
--   cors             { origins = { "https://a.example", ... } | { "*" },
--                      max_age = seconds (default 600), credentials = bool }
--   log              function(message) for handler errors and internal
--                    failures, default: a line on stderr
--
-- handler(req, res): req.method, req.path (percent-decoded), req.target (raw),
-- req.query (decoded; a repeated key gives a list), req.headers (lowercased
-- names; any-case lookup works; repeats joined by ", "), req.body ("" when
-- none), req.version ("1.1" | "1.0"), req.last_event_id (Last-Event-ID
-- header, else the lastEventId query parameter, else nil), req.remote (peer
-- IP). A handler answers with exactly one of res:send(body), res:json(value)
-- or res:sse{...} before it returns -- or calls res:later() and answers
-- from a callback. It runs in a coroutine of its own, so it may also wait
-- for something (another service, a file) with http.await(fn [, timeout])
-- without blocking the loop. One that returns without answering gets a 500
-- (and a log line). app:use([prefix,] fn) adds middleware, run before the
-- handler (fn(req, res): answer to stop there). A handler error is caught
-- and logged
-- with its route: 500 if nothing was sent yet, the stream closed otherwise.
--
-- Protocol errors (400, 408, 411, 413, 414, 417, 431, 503, 505) get a short
-- text body naming the problem and close the connection; 404, 405 (with
-- Allow) and the handlers' own answers keep it alive. Requests pipelined in
-- one read are answered in order in the same loop turn. HEAD is served by
-- the GET handler without the body; OPTIONS is answered with 204 + Allow
-- (a CORS preflight when the origin is allowed) unless a route handles it.
--
-- CORS: with opts.cors, a request whose Origin is listed (or any Origin
-- with "*") gets Access-Control-Allow-Origin: <that origin> (and
-- Allow-Credentials when asked); a preflight gets Allow-Methods (the
-- route's), Allow-Headers (Last-Event-ID, Content-Type, Authorization) and
-- Max-Age. Every answer then carries Vary: Origin. Without opts.cors no such
-- header is ever sent.
local options = require("sse.http.options")
local response = require("sse.http.response")
local conn = require("sse.http.conn")
local Server = require("sse.http.server")

local M = {}

M.DEFAULTS = options.DEFAULTS
M.REASONS = response.REASONS
-- read at Server.new; see sse.http.conn
M.LINGER, M.WRITE_HIGH, M.MAX_REFUSED = conn.LINGER, conn.WRITE_HIGH, conn.MAX_REFUSED

--- http.new([opts]) -> app (nothing is bound until app:listen()).
M.new = Server.new
--- http.await(fn [, timeout]) -> the values fn's callback got | nil, "timeout"
M.await = require("sse.http.router").await
M.Server = Server
M.Response = response.Response
return M
