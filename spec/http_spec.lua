-- End-to-end specs of sse.http over real loopback sockets (port 0). Every
-- wait is bounded by a guard timer (helpers.http_client.wait).
local http = require("sse.http")
local C = require("helpers.http_client")
local util = require("helpers.util")
local cjson = require("cjson")
local uv = require("luv")

local get, post = C.get, C.post

-- Start an app with opts (port 0) after setup(app); returns app, port, logs.
local apps = {}
local function serve(opts, setup)
  local logs = {}
  opts = opts or {}
  opts.port = 0
  opts.log = function(msg) logs[#logs + 1] = msg end
  local app = http.new(opts)
  if setup then setup(app) end
  local port = assert(app:listen())
  apps[#apps + 1] = app
  return app, port, logs
end

local clients = {}
local function connect(port)
  local c = C.connect(port)
  assert.is_true(c.connected, "connect failed: " .. tostring(c.err))
  clients[#clients + 1] = c
  return c
end

-- An app with a few routes used by many tests.
local function basic(opts)
  return serve(opts, function(app)
    app:get("/hello", function(_, res) res:send("hello world") end)
    app:get("/echo", function(req, res)
      res:json({ method = req.method, path = req.path, query = req.query, body = req.body,
                 target = req.target, remote = req.remote, version = req.version,
                 lei = req.last_event_id or cjson.null })
    end)
    app:post("/echo", function(req, res)
      res:status(201):header("X-Len", #req.body):send(req.body)
    end)
    app:get("/static/*", function(req, res) res:send("static " .. req.path) end)
    app:get("/static/exact", function(_, res) res:send("exact") end)
  end)
end

after_each(function()
  for _, c in ipairs(clients) do c:close() end
  for _, a in ipairs(apps) do a:close() end
  clients, apps = {}, {}
  C.sleep(5)
end)

describe("sse.http options", function()
  it("has the documented defaults", function()
    local app = http.new()
    assert.are.same(
      { "127.0.0.1", 8080, 10000, 10, 60, 8192, 64, 1048576, 256 },
      { app.host, app.port, app.max_connections, app.head_timeout, app.idle_timeout,
        app.max_head_bytes, app.max_headers, app.max_body_bytes, app.max_query_pairs })
    assert.is_nil(app.cors)
    assert.are.equal(0, app:connection_count())
  end)

  it("rejects bad options naming them", function()
    util.raises_arg(1, "table expected, got string", http.new, "x")
    util.raises_arg(1, "unknown option 'prot'", http.new, { prot = 1 })
    util.raises_arg(1, "port must be an integer in 0..65535, got 70000", http.new, { port = 70000 })
    util.raises_arg(1, "max_connections must be an integer >= 1, got 0", http.new, { max_connections = 0 })
    util.raises_arg(1, "head_timeout must be a positive number of seconds, got 0", http.new,
      { head_timeout = 0 })
    util.raises_arg(1, "idle_timeout must be a positive number of seconds, got \"5\"", http.new,
      { idle_timeout = "5" })
    util.raises_arg(1, "max_head_bytes must be an integer in 64..2^30, got 1.5", http.new,
      { max_head_bytes = 1.5 })
    util.raises_arg(1, "max_body_bytes must be an integer in 0..2^53, got -1", http.new,
      { max_body_bytes = -1 })
    util.raises_arg(1, "host must be an IP address string, got number", http.new, { host = 1 })
    util.raises_arg(1, "cors must be a table, got boolean", http.new, { cors = true })
    util.raises_arg(1, "cors.origins must be a list of strings, got nil", http.new, { cors = {} })
    util.raises_arg(1, 'cors.origins[2] must be an origin like "https://example.com" or "*", got ""',
      http.new, { cors = { origins = { "http://a", "" } } })
    util.raises_arg(1, "cors.maxage is not a known option", http.new,
      { cors = { origins = {}, maxage = 1 } })
    util.raises_arg(1, "log must be a function, got string", http.new, { log = "x" })
  end)

  it("rejects bad routes naming the argument", function()
    local app = http.new()
    util.raises_arg(1, 'path must start with \'/\' and hold no spaces or control characters, got "x"',
      app.get, app, "x", function() end)
    util.raises_arg(2, "function expected, got nil", app.post, app, "/x")
    util.raises_arg(1, 'method must be an uppercase token like "GET", got "get"',
      app.route, app, "get", "/x", function() end)
    util.raises_arg(2, "'*' is only allowed at the end of a path, got \"/a*b\"",
      app.route, app, "PUT", "/a*b", function() end)
    app:get("/x", function() end)
    util.raises_arg(1, "GET /x is already routed", app.get, app, "/x", function() end)
  end)

  it("listen returns nil, err for an address it cannot bind", function()
    local a = http.new{ host = "not-an-ip", port = 0 }
    local port, err = a:listen()
    assert.is_nil(port)
    assert.are.equal("Invalid IP address or port [not-an-ip:0]", err)
    local app, p = serve()
    local b = http.new{ port = p }
    local port2, err2 = b:listen()
    assert.is_nil(port2)
    assert.are.equal("EADDRINUSE: address already in use", err2)
    assert.are.equal(p, app.bound_port)
  end)
end)

describe("sse.http requests", function()
  it("routes exact paths, prefixes and 404", function()
    local _, port = basic()
    local c = connect(port)
    local r = c:request(get("/hello"))
    assert.are.equal(200, r.status)
    assert.are.equal("hello world", r.body)
    assert.are.equal("11", r.headers["content-length"])
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
    assert.truthy(r.headers.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    assert.are.equal("static /static/a/b.css", c:request(get("/static/a/b.css")).body)
    assert.are.equal("exact", c:request(get("/static/exact")).body)
    assert.are.equal("static /static/", c:request(get("/static/")).body)
    r = c:request(get("/nothing"))
    assert.are.equal(404, r.status)
    assert.are.equal("not found\n", r.body)
    assert.is_nil(r.headers.connection)
    -- still alive after a 404
    assert.are.equal("hello world", c:request(get("/hello")).body)
  end)

  it("decodes the path and the query, repeated keys as lists", function()
    local _, port = basic()
    local c = connect(port)
    local r = c:request(get("/e%63ho?a=1&b=x+y%21&a=2&a=3&empty&lastEventId=7"))
    assert.are.equal(200, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    local v = cjson.decode(r.body)
    assert.are.same({ a = { "1", "2", "3" }, b = "x y!", empty = "", lastEventId = "7" }, v.query)
    assert.are.equal("/echo", v.path)
    assert.are.equal("/e%63ho?a=1&b=x+y%21&a=2&a=3&empty&lastEventId=7", v.target)
    assert.are.equal("GET", v.method)
    assert.are.equal("", v.body)
    assert.are.equal("127.0.0.1", v.remote)
    assert.are.equal("1.1", v.version)
    assert.are.equal("7", v.lei)
  end)

  it("takes Last-Event-ID from the header before the query", function()
    local _, port = basic()
    local c = connect(port)
    local v = cjson.decode(c:request(get("/echo?lastEventId=7", { "last-event-id: 42\r\n" })).body)
    assert.are.equal("42", v.lei)
    v = cjson.decode(c:request(get("/echo")).body)
    assert.are.equal(cjson.null, v.lei)
  end)

  it("looks headers up in any case", function()
    local seen
    local _, port = serve(nil, function(app)
      app:get("/h", function(req, res)
        seen = { req.headers["X-Custom-Thing"], req.headers["x-custom-thing"], req.headers.X_NOPE,
                 req.headers["ACCEPT"], req.headers[1] }
        res:send("ok")
      end)
    end)
    local c = connect(port)
    local r = c:request(get("/h", { "X-CUSTOM-thing: v1\r\n", "Accept: a\r\n", "accept: b\r\n" }))
    assert.are.equal(200, r.status)
    assert.are.same({ "v1", "v1", nil, "a, b", nil }, seen)
  end)

  it("reads request bodies by Content-Length, also split across reads", function()
    local _, port = basic()
    local c = connect(port)
    local r = c:request(post("/echo", "some body\r\n\r\nwith blank lines"))
    assert.are.equal(201, r.status)
    assert.are.equal("some body\r\n\r\nwith blank lines", r.body)
    assert.are.equal("29", r.headers["x-len"])
    local raw = post("/echo", ("x"):rep(5000))
    c:send(raw:sub(1, 40))
    C.sleep(30)
    c:send(raw:sub(41, 3000))
    C.sleep(30)
    c:send(raw:sub(3001))
    r = c:response()
    assert.are.equal(("x"):rep(5000), r.body)
    r = c:request(post("/echo", ""))
    assert.are.equal(201, r.status)
    assert.are.equal("", r.body)
  end)

  it("keeps a connection alive for several requests, and honours Connection: close", function()
    local app, port = basic()
    local c = connect(port)
    assert.are.equal("hello world", c:request(get("/hello")).body)
    assert.are.equal(201, c:request(post("/echo", "abc")).status)
    assert.are.equal(1, app:connection_count())
    local r = c:request(get("/hello", { "Connection: close\r\n" }))
    assert.are.equal("close", r.headers.connection)
    assert.are.equal("hello world", r.body)
    assert.is_true(c:wait_closed(1000))
    assert.is_true(C.wait(function() return app:connection_count() == 0 end, 1000))
  end)

  it("closes HTTP/1.0 connections unless keep-alive is asked", function()
    local _, port = basic()
    local c = connect(port)
    local r = c:request("GET /hello HTTP/1.0\r\n\r\n")
    assert.are.equal("hello world", r.body)
    assert.are.equal("close", r.headers.connection)
    assert.is_true(c:wait_closed(1000))
    c = connect(port)
    r = c:request("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert.are.equal("keep-alive", r.headers.connection)
    r = c:request("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert.are.equal("hello world", r.body)
  end)

  it("answers pipelined requests in order, in one loop turn", function()
    local order, turns = {}, {}
    local counter = uv.now
    local _, port = serve(nil, function(app)
      app:post("/p", function(req, res)
        order[#order + 1] = req.body
        turns[#turns + 1] = counter()
        res:send("got " .. req.body)
      end)
      app:get("/g", function(req, res) res:send("g" .. req.query.n) end)
    end)
    local c = connect(port)
    c:send(get("/g?n=1") .. post("/p", "two") .. get("/g?n=3"))
    local a, b, d = c:response(), c:response(), c:response()
    assert.are.same({ "g1", "got two", "g3" }, { a.body, b.body, d.body })
    -- 100 pipelined POSTs in one write: all handled in the same loop turn
    -- (a check handle counts loop iterations)
    order, turns = {}, {}
    local t = {}
    for i = 1, 100 do t[i] = post("/p", "e" .. i) end
    local iter = 0
    local check = uv.new_check()
    check:start(function() iter = iter + 1 end)
    counter = function() return iter end
    c:send(table.concat(t))
    for i = 1, 100 do
      local r = c:response()
      assert.are.equal("got e" .. i, r.body)
    end
    check:stop()
    check:close()
    assert.are.equal(100, #order)
    for i = 1, 100 do assert.are.equal("e" .. i, order[i]) end
    assert.are.equal(100, #turns)
    assert.are.equal(turns[1], turns[100])
  end)

  it("stops reading a pipelining client that does not read its answers", function()
    local big = ("b"):rep(1024 * 1024)
    local handled = 0
    local _, port = serve({ head_timeout = 0.4 }, function(app)
      app:get("/big", function(_, res) handled = handled + 1 res:send(big) end)
    end)
    local c = connect(port)
    c:pause()
    c:send(get("/big"):rep(10))
    assert.is_true(C.wait(function() return handled == 10 end, 1000))
    c:send(get("/big"):rep(10))
    C.sleep(200)
    assert.are.equal(10, handled) -- not read while 10 MB wait for the client
    c:resume()
    for i = 1, 20 do
      local r = c:response(3000)
      assert.is_truthy(r, "response " .. i)
      assert.are.equal(#big, #r.body)
    end
    assert.are.equal(20, handled)
  end)

  it("serves HEAD with the GET handler and no body", function()
    local _, port = basic()
    local c = connect(port)
    local r = c:request("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(200, r.status)
    assert.are.equal("11", r.headers["content-length"])
    assert.are.equal("", r.body)
    assert.are.equal("hello world", c:request(get("/hello")).body)
  end)

  it("answers 405 with Allow, and OPTIONS with 204 + Allow", function()
    local _, port = basic()
    local c = connect(port)
    local r = c:request("DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(405, r.status)
    assert.are.equal("GET, HEAD, OPTIONS, POST", r.headers.allow)
    assert.are.equal("method not allowed\n", r.body)
    r = c:request(post("/hello", "x"))
    assert.are.equal(405, r.status)
    assert.are.equal("GET, HEAD, OPTIONS", r.headers.allow)
    r = c:request("OPTIONS /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(204, r.status)
    assert.are.equal("GET, HEAD, OPTIONS, POST", r.headers.allow)
    assert.is_nil(r.headers["content-length"])
    assert.is_nil(r.headers["access-control-allow-origin"])
    r = c:request("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(204, r.status)
    assert.are.equal("GET, HEAD, OPTIONS, POST", r.headers.allow)
    -- the connection is still usable
    assert.are.equal("hello world", c:request(get("/hello")).body)
  end)
end)

describe("sse.http responses", function()
  it("res:header rejects CR/LF and server-owned headers, naming the argument", function()
    local errs = {}
    local _, port = serve(nil, function(app)
      app:get("/x", function(_, res)
        for _, args in ipairs({
          { "X-A\r\nEvil", "v" }, { "X-A", "v\r\nSet-Cookie: a=b" }, { "X-A", "v\nw" },
          { "Bad Name", "v" }, { "X-A", {} }, { "Content-Length", "5" }, { "X-A", "a\0b" },
        }) do
          local ok, err = pcall(res.header, res, args[1], args[2])
          errs[#errs + 1] = ok and "no error" or err:gsub("^[^:]*:%d+: ", "")
        end
        res:status(200):header("X-Good", "yes"):header("X-Num", 5):send("fine")
      end)
    end)
    local c = connect(port)
    local r = c:request(get("/x"))
    assert.are.equal("fine", r.body)
    assert.are.equal("yes", r.headers["x-good"])
    assert.are.equal("5", r.headers["x-num"])
    assert.are.same({
      "bad argument #1 to 'header' (header name must not contain CR or LF)",
      "bad argument #2 to 'header' (header value must not contain CR or LF)",
      "bad argument #2 to 'header' (header value must not contain CR or LF)",
      'bad argument #1 to \'header\' (header name must be a token, got "Bad Name")',
      "bad argument #2 to 'header' (string expected, got table)",
      "bad argument #1 to 'header' (Content-Length is set by the server)",
      "bad argument #2 to 'header' (header value must not contain control characters)",
    }, errs)
    assert.is_nil(r.raw:find("Evil", 1, true))
  end)

  it("res:send once, res:status checked, res:json encodes", function()
    local errs = {}
    local _, port = serve(nil, function(app)
      app:get("/j", function(_, res)
        local _, err = pcall(res.status, res, 99)
        errs[1] = err:gsub("^[^:]*:%d+: ", "")
        _, err = pcall(res.json, res, { f = function() end })
        errs[2] = err:gsub("^[^:]*:%d+: ", "")
        res:status(202):json({ list = { 1, 2 }, s = "x" })
        _, err = pcall(res.send, res, "again")
        errs[3] = err:gsub("^[^:]*:%d+: ", "")
      end)
      app:get("/nc", function(_, res)
        local _, err = pcall(res.status(res, 204).send, res, "body")
        errs[4] = err:gsub("^[^:]*:%d+: ", "")
        res:send()
      end)
    end)
    local c = connect(port)
    local r = c:request(get("/j"))
    assert.are.equal(202, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.same({ list = { 1, 2 }, s = "x" }, cjson.decode(r.body))
    r = c:request(get("/nc"))
    assert.are.equal(204, r.status)
    assert.is_nil(r.headers["content-length"])
    assert.are.equal("bad argument #1 to 'status' (integer in 200..599 expected, got 99)", errs[1])
    assert.are.equal("bad argument #1 to 'json' (cannot encode as JSON: "
      .. "Cannot serialise function: type not supported)", errs[2])
    assert.are.equal("'send': the response was already sent", errs[3])
    assert.are.equal("bad argument #1 to 'send' (status 204 has no body, got 4 bytes)", errs[4])
  end)

  it("a handler error gives 500, is logged with its route, and the server keeps serving", function()
    local _, port, logs = serve(nil, function(app)
      app:get("/boom", function() error("kaboom") end)
      app:get("/silent", function() end)
      app:get("/ok", function(_, res) res:send("ok") end)
    end)
    local c = connect(port)
    local r = c:request(get("/boom"))
    assert.are.equal(500, r.status)
    assert.are.equal("internal server error\n", r.body)
    assert.are.equal(1, #logs)
    assert.truthy(logs[1]:find("^handler error in GET /boom: [^\n]*kaboom\nstack traceback:"))
    assert.are.equal("ok", c:request(get("/ok")).body)
    r = c:request(get("/silent"))
    assert.are.equal(500, r.status)
    assert.are.equal("handler of GET /silent returned without a response", logs[2])
    assert.are.equal("ok", connect(port):request(get("/ok")).body)
  end)
end)

-- Send raw bytes on a fresh connection; expect status and body, then a close.
local function expect_error(port, raw, status, body)
  local c = connect(port)
  local r = c:request(raw)
  assert.is_truthy(r, "no response to " .. ("%q"):format(raw:sub(1, 60)))
  assert.are.equal(status, r.status)
  assert.are.equal(body, r.body)
  assert.are.equal("close", r.headers.connection)
  assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
  assert.is_true(c:wait_closed(1500), "connection not closed after " .. status)
  return r
end

describe("sse.http protocol errors", function()
  it("answers each malformed request with its status, closes, and keeps serving", function()
    local app, port = basic({ max_body_bytes = 100 })
    local cases = {
      { "GARBAGE\r\n\r\n", 400, "malformed request line\n" },
      { "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed request line\n" },
      { "GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "header line without a colon\n" },
      { "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 400, "invalid character in header value\n" },
      { "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil },
      { "GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil },
      { "GET /hello?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad percent-escape in query\n" },
      { "GET / HTTP/1.1\r\n\r\n", 400, "missing Host header\n" },
      { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, nil },
      { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version not supported\n" },
      { "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        411, "Transfer-Encoding not supported\n" },
      { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413, "request body over 100 bytes\n" },
      { get("/hello", { "X-Big: " .. ("a"):rep(10 * 1024) .. "\r\n" }), 431, "request head too large\n" },
      { get("/hello?lastEventId=" .. ("1"):rep(10 * 1024)), 414, "request line too long\n" },
      { get("/hello", { "Last-Event-ID: " .. ("1"):rep(10 * 1024) .. "\r\n" }), 431, "request head too large\n" },
      { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: magic\r\n\r\nabc", 417,
        "unsupported Expect header\n" },
    }
    for _, case in ipairs(cases) do
      local r = expect_error(port, case[1], case[2], case[3] or select(3,
        require("sse.core").http_parse_request(case[1])) .. "\n")
      assert.are.equal(case[2], r.status)
    end
    local q = {}
    for i = 1, 1000 do q[i] = "t=" .. i % 10 end
    expect_error(port, get("/echo?" .. table.concat(q, "&")), 400, "too many query parameters\n")
    assert.are.equal("hello world", connect(port):request(get("/hello")).body)
    assert.is_true(C.wait(function() return app:connection_count() == 1 end, 1000))
  end)

  it("answers 413 from Content-Length alone, before the body arrives", function()
    local _, port = basic({ max_body_bytes = 1000 })
    local c = connect(port)
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n" .. ("x"):rep(100))
    local r = c:response(1000)
    assert.are.equal(413, r.status)
    assert.are.equal("request body over 1000 bytes\n", r.body)
  end)

  it("answers 431 before the end of an oversized head arrives", function()
    local _, port = basic()
    local c = connect(port)
    c:send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(9000)) -- no end of head
    local r = c:response(1000)
    assert.are.equal(431, r.status)
    assert.is_true(c:wait_closed(1000))
  end)

  it("sends 100 Continue when a client expects it", function()
    local _, port = basic()
    local c = connect(port)
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    local r = c:response(1000)
    assert.are.equal(100, r.status)
    c:send("abc")
    r = c:response(1000)
    assert.are.equal(201, r.status)
    assert.are.equal("abc", r.body)
  end)

  it("answers 503 past max_connections while existing connections keep working", function()
    local app, port = basic({ max_connections = 2 })
    local a, b = connect(port), connect(port)
    assert.are.equal("hello world", a:request(get("/hello")).body)
    assert.are.equal("hello world", b:request(get("/hello")).body)
    for _ = 1, 5 do
      local c = connect(port)
      c:send(get("/hello"))
      local r = c:response(1000)
      assert.are.equal(503, r.status)
      assert.are.equal("too many connections\n", r.body)
      assert.are.equal("close", r.headers.connection)
      assert.are.equal("1", r.headers["retry-after"])
      assert.is_true(c:wait_closed(1000))
      assert.are.equal(2, app:connection_count())
    end
    assert.are.equal("hello world", a:request(get("/hello")).body)
    assert.are.equal("hello world", b:request(get("/hello")).body)
    -- a place freed is taken again
    a:close()
    assert.is_true(C.wait(function() return app:connection_count() == 1 end, 1000))
    assert.are.equal("hello world", connect(port):request(get("/hello")).body)
  end)
end)

describe("sse.http timeouts", function()
  it("closes a head sent one byte at a time after head_timeout, with 408", function()
    local app, port = basic({ head_timeout = 0.2 })
    local c = connect(port)
    local raw = get("/hello", { "X-Slow: " .. ("s"):rep(200) .. "\r\n" })
    local t0 = uv.now()
    local i = 0
    local drip = uv.new_timer()
    drip:start(20, 20, function()
      i = i + 1
      if i <= #raw and not c.eof then c:send(raw:sub(i, i)) end
    end)
    local closed = c:wait_closed(2000)
    local elapsed = uv.now() - t0
    drip:stop()
    drip:close()
    assert.is_true(closed)
    assert.is_true(elapsed >= 190 and elapsed < 600, "closed after " .. elapsed .. " ms")
    assert.is_true(i < #raw)
    local r = c:response(100)
    assert.are.equal(408, r.status)
    assert.are.equal("request head not received in time\n", r.body)
    assert.is_true(C.wait(function() return app:connection_count() == 0 end, 1000))
  end)

  it("closes a request whose body stalls, with 408", function()
    local app, port = basic({ head_timeout = 0.2 })
    local c = connect(port)
    c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    local t0 = uv.now()
    assert.is_true(c:wait_closed(2000))
    local elapsed = uv.now() - t0
    assert.is_true(elapsed >= 190 and elapsed < 600, "closed after " .. elapsed .. " ms")
    local r = c:response(100)
    assert.are.equal(408, r.status)
    assert.are.equal("request body not received in time\n", r.body)
    assert.is_true(C.wait(function() return app:connection_count() == 0 end, 1000))
  end)

  it("closes a connection that sends nothing after head_timeout, silently", function()
    local app, port = basic({ head_timeout = 0.2 })
    local c = connect(port)
    local t0 = uv.now()
    assert.is_true(c:wait_closed(2000))
    local elapsed = uv.now() - t0
    assert.is_true(elapsed >= 190 and elapsed < 600, "closed after " .. elapsed .. " ms")
    assert.are.equal("", c.buf)
    assert.are.equal(0, app:connection_count())
  end)

  it("closes an idle keep-alive connection after idle_timeout", function()
    local app, port = basic({ idle_timeout = 0.2 })
    local c = connect(port)
    assert.are.equal("hello world", c:request(get("/hello")).body)
    local t0 = uv.now()
    assert.is_true(c:wait_closed(2000))
    local elapsed = uv.now() - t0
    assert.is_true(elapsed >= 190 and elapsed < 600, "closed after " .. elapsed .. " ms")
    assert.are.equal("", c.buf)
    assert.are.equal(0, app:connection_count())
  end)
end)

describe("sse.http CORS", function()
  local function cors_app(cors)
    return serve({ cors = cors }, function(app)
      app:get("/x", function(_, res) res:send("x") end)
      app:post("/x", function(_, res) res:send("y") end)
      app:get("/events", function(_, res) res:sse() end)
    end)
  end

  it("adds no CORS headers when none are configured", function()
    local _, port = cors_app(nil)
    local c = connect(port)
    local r = c:request(get("/x", { "Origin: https://a.example\r\n" }))
    assert.are.equal("x", r.body)
    assert.is_nil(r.raw:lower():find("access-control", 1, true))
    assert.is_nil(r.headers.vary)
    r = c:request("OPTIONS /x HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
      .. "Access-Control-Request-Method: POST\r\n\r\n")
    assert.are.equal(204, r.status)
    assert.is_nil(r.raw:lower():find("access-control", 1, true))
  end)

  it("allows only the configured origins, and answers preflights", function()
    local _, port = cors_app({ origins = { "https://a.example" }, max_age = 60 })
    local c = connect(port)
    local r = c:request(get("/x", { "Origin: https://a.example\r\n" }))
    assert.are.equal("https://a.example", r.headers["access-control-allow-origin"])
    assert.are.equal("Origin", r.headers.vary)
    r = c:request(get("/x", { "Origin: https://evil.example\r\n" }))
    assert.are.equal("x", r.body)
    assert.is_nil(r.raw:lower():find("access-control", 1, true))
    r = c:request(get("/x"))
    assert.is_nil(r.headers["access-control-allow-origin"])
    r = c:request("OPTIONS /x HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
      .. "Access-Control-Request-Method: POST\r\n\r\n")
    assert.are.equal(204, r.status)
    assert.are.equal("https://a.example", r.headers["access-control-allow-origin"])
    assert.are.equal("GET, HEAD, OPTIONS, POST", r.headers["access-control-allow-methods"])
    assert.are.equal("Last-Event-ID, Content-Type, Authorization", r.headers["access-control-allow-headers"])
    assert.are.equal("60", r.headers["access-control-max-age"])
    r = c:request("OPTIONS /x HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
      .. "Access-Control-Request-Method: POST\r\n\r\n")
    assert.are.equal(204, r.status)
    assert.is_nil(r.raw:lower():find("access-control", 1, true))
    -- the event stream gets it too
    c:send(get("/events", { "Origin: https://a.example\r\n" }))
    assert.is_true(C.wait(function() return c.buf:find("\r\n\r\n", 1, true) ~= nil end, 1000))
    assert.truthy(c.buf:find("\r\nAccess-Control-Allow-Origin: https://a.example\r\n", 1, true))
  end)

  it("echoes any origin with \"*\"", function()
    local _, port = cors_app({ origins = { "*" }, credentials = true })
    local r = connect(port):request(get("/x", { "Origin: http://localhost:3000\r\n" }))
    assert.are.equal("http://localhost:3000", r.headers["access-control-allow-origin"])
    assert.are.equal("true", r.headers["access-control-allow-credentials"])
  end)
end)

describe("sse.http res:sse", function()
  it("streams events and cleans up when the client goes away", function()
    local stream, closes, lei = nil, {}, nil
    local app, port = serve(nil, function(a)
      a:get("/events", function(req, res)
        lei = req.last_event_id
        stream = res:sse{ retry = 1500 }
        stream:on_close(function(reason) closes[#closes + 1] = reason end)
        stream:send({ id = "1", data = "first" })
      end)
      a:get("/hello", function(_, res) res:send("hi") end)
    end)
    local c = connect(port)
    c:send(get("/events", { "Last-Event-ID: 41\r\n" }))
    local want_head = "HTTP/1.1 200 OK\r\n"
    assert.is_true(C.wait(function() return c.buf:find("data: first\n\n", 1, true) ~= nil end, 1000))
    local head, body = c.buf:match("^(.-\r\n\r\n)(.*)$")
    assert.are.equal(want_head, head:sub(1, #want_head))
    local res = require("sse.core").http_parse_response(head)
    assert.are.same({
      ["cache-control"] = "no-cache",
      ["connection"] = "keep-alive",
      ["content-type"] = "text/event-stream; charset=utf-8",
      ["x-accel-buffering"] = "no",
      date = res.headers.date,
    }, res.headers)
    assert.are.equal("retry: 1500\n\nid: 1\ndata: first\n\n", body)
    assert.are.equal("41", lei)
    assert.are.equal("41", stream:last_event_id())
    assert.are.equal(1, app:connection_count())
    -- bytes from the client are ignored; the stream goes on
    c:send("ignored bytes\r\n\r\n")
    C.sleep(20)
    assert.is_true(stream:send({ data = "second" }))
    assert.is_true(C.wait(function() return c.buf:find("data: second\n\n", 1, true) ~= nil end, 1000))
    -- the server still serves others meanwhile
    assert.are.equal("hi", connect(port):request(get("/hello")).body)
    c:close()
    assert.is_true(C.wait(function() return #closes > 0 and app:connection_count() == 1 end, 1000))
    C.sleep(20)
    assert.are.same({ "eof" }, closes)
    assert.is_true(stream:is_closed())
    assert.are.same({ nil, "closed" }, { stream:send({ data = "late" }) })
    C.wait(function() return app:connection_count() == 0 end, 1000)
  end)

  it("counts streams as connections and drops them to 0 on disconnect", function()
    local streams = {}
    local app, port = serve(nil, function(a)
      a:get("/events", function(_, res) streams[#streams + 1] = res:sse() end)
    end)
    local cs = {}
    for i = 1, 20 do
      cs[i] = connect(port)
      cs[i]:send(get("/events"))
    end
    assert.is_true(C.wait(function() return #streams == 20 end, 2000))
    assert.are.equal(20, app:connection_count())
    for i = 1, 20 do cs[i]:close() end
    assert.is_true(C.wait(function() return app:connection_count() == 0 end, 2000))
    for i = 1, 20 do assert.is_true(streams[i]:is_closed()) end
  end)

  it("answers HEAD on an event stream with the head only", function()
    local stream
    local app, port = serve(nil, function(a)
      a:get("/events", function(_, res) stream = res:sse{ retry = 10 } end)
    end)
    local c = connect(port)
    local r = c:request("HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(200, r.status)
    assert.are.equal("text/event-stream; charset=utf-8", r.headers["content-type"])
    assert.is_true(c:wait_closed(1000))
    assert.are.equal("", c.buf)
    assert.is_true(stream:is_closed())
    assert.are.same({ nil, "closed" }, { stream:send({ data = "x" }) })
    assert.is_true(C.wait(function() return app:connection_count() == 0 end, 1000))
  end)

  it("a handler error after res:sse closes the stream", function()
    local stream
    local app, port, logs = serve(nil, function(a)
      a:get("/events", function(_, res)
        stream = res:sse()
        stream:send({ data = "one" })
        error("late failure")
      end)
    end)
    local c = connect(port)
    c:send(get("/events"))
    assert.is_true(c:wait_closed(1000))
    assert.truthy(c.buf:find("\r\n\r\ndata: one\n\n$"))
    assert.is_true(stream:is_closed())
    assert.truthy(logs[1]:find("^handler error in GET /events: [^\n]*late failure"))
    assert.is_true(C.wait(function() return app:connection_count() == 0 end, 1000))
  end)

  it("sends keep-alive comments and validates its options", function()
    local errs = {}
    local _, port = serve(nil, function(a)
      a:get("/events", function(_, res)
        local _, err = pcall(res.sse, res, { retry = -1 })
        errs[1] = err:gsub("^[^:]*:%d+: ", "")
        _, err = pcall(res.sse, res, { keepalve = 1 })
        errs[2] = err:gsub("^[^:]*:%d+: ", "")
        _, err = pcall(res.sse, res, { slow_policy = "ignore" })
        errs[3] = err:gsub("^[^:]*:%d+: ", "")
        res:sse{ keepalive = 0.05 }
      end)
    end)
    local c = connect(port)
    c:send(get("/events"))
    assert.is_true(C.wait(function() return c.buf:find(": keep-alive\n\n", 1, true) ~= nil end, 1000))
    assert.are.same({
      "bad argument #1 to 'sse' (retry must be an integer >= 0, got -1)",
      "bad argument #1 to 'sse' (unknown option 'keepalve')",
      "bad argument #1 to 'sse' (field 'slow_policy': \"close\" or \"drop_oldest\" expected, got ignore)",
    }, errs)
  end)

  it("app:close() closes listener, connections and streams", function()
    local stream
    local app, port = serve(nil, function(a)
      a:get("/events", function(_, res) stream = res:sse() end)
    end)
    local s, k = connect(port), connect(port)
    s:send(get("/events"))
    assert.is_true(C.wait(function() return stream ~= nil end, 1000))
    assert.are.equal(2, app:connection_count())
    app:close()
    app:close()
    assert.is_true(s:wait_closed(1000))
    assert.is_true(k:wait_closed(1000))
    assert.is_true(stream:is_closed())
    assert.are.equal(0, app:connection_count())
    local late = C.connect(port)
    C.wait(function() return late.eof end, 500)
    assert.is_false(late.connected)
    late:close()
  end)
end)

describe("sse.http (issue 9)", function()
  it("ends an HTTP/1.0 stream with the connection, and says so: Connection: close", function()
    local _, port = serve(nil, function(app)
      app:get("/events", function(_, res) res:sse():send_data("one") end)
    end)
    for _, v in ipairs({ "1.0", "1.1" }) do
      local c = connect(port)
      c:send("GET /events HTTP/" .. v .. "\r\nHost: x\r\n\r\n")
      assert.is_true(C.wait(function() return c.buf:find("data: one\n\n", 1, true) ~= nil end, 1000))
      local head = c.buf:match("^(.-\r\n)\r\n")
      assert.are.equal(v == "1.0" and "close" or "keep-alive", head:match("\r\nConnection: ([^\r]*)\r\n"), head)
      c:close()
    end
  end)

  it("buffers a request body in time linear in its size, whatever the size of the pieces", function()
    -- The server's CPU time for bodies of 512 KiB and 2 MiB read in small
    -- pieces (a 4 KB receive buffer on the server's sockets): linear work
    -- gives a ratio near 4, joining the pieces by repeated concatenation
    -- near 16.
    local got = {}
    local app, port = serve({ max_body_bytes = 4 * 1024 * 1024 }, function(a)
      a:post("/body", function(req, res)
        got[#got + 1] = req.body
        res:send("ok")
      end)
    end)
    app._tcp:recv_buffer_size(4096) -- accepted sockets inherit it
    local function cpu(size)
      local body = ("x"):rep(size)
      local c = connect(port)
      local t0 = os.clock()
      local r = c:request(C.post("/body", body), 20000)
      local used = os.clock() - t0
      c:close()
      assert.are.equal(200, r.status)
      assert.are.equal(body, got[#got])
      return used
    end
    cpu(64 * 1024) -- warm up
    local small, large = cpu(512 * 1024), cpu(2048 * 1024)
    assert.is_true(large / small < 8, ("CPU %.3f s for 512 KiB, %.3f s for 2 MiB: ratio %.1f"):format(
      small, large, large / small))
  end)
end)

describe("sse.http: one writer per handle", function()
  it("the response head of res:sse is the first bytes the stream's C transport writes", function()
    local stream
    local _, port = serve(nil, function(app)
      app:get("/events", function(_, res) stream = res:sse() end)
    end)
    local c = connect(port)
    c:send(get("/events"))
    assert.is_true(C.wait(function() return c.buf:find("\r\n\r\n", 1, true) ~= nil end, 1000))
    local head = c.buf
    assert.truthy(head:find("^HTTP/1.1 200 OK\r\n"))
    -- every byte the client got was counted by the stream's writer
    local stats = stream:stats()
    assert.are.equal(#head, stats.bytes_sent)
    stream:send_data("x")
    assert.is_true(C.wait(function() return c.buf:find("data: x\n\n", 1, true) ~= nil end, 1000))
    stats = stream:stats()
    assert.are.equal(#c.buf, stats.bytes_sent)
  end)
end)

describe("sse.http res:later", function()
  it("answers after the handler returned; requests pipelined behind wait, in order", function()
    local late = {}
    local _, port = serve(nil, function(app)
      app:post("/slow", function(req, res)
        res:later()
        late[#late + 1] = uv.new_timer()
        late[#late]:start(50, 0, function() res:status(202):send("late " .. req.body) end)
      end)
      app:get("/g", function(req, res) res:send("g" .. req.query.n) end)
    end)
    local c = connect(port)
    c:send(post("/slow", "a") .. get("/g?n=2") .. post("/slow", "b") .. get("/g?n=4"))
    local r1, r2, r3, r4 = c:response(), c:response(), c:response(), c:response()
    assert.are.same({ 202, "late a", 200, "g2", 202, "late b", "g4" },
      { r1.status, r1.body, r2.status, r2.body, r3.status, r3.body, r4.body })
    -- the connection is still good for more
    c:send(get("/g?n=5"))
    assert.are.equal("g5", c:response().body)
    for _, t in ipairs(late) do t:close() end
  end)

  it("answers 503 when the handler does not answer within idle_timeout", function()
    local held
    local _, port = serve({ idle_timeout = 0.2 }, function(app)
      app:get("/never", function(_, res) held = res:later() end)
    end)
    local c = connect(port)
    c:send(get("/never"))
    local r = c:response()
    assert.are.equal(503, r.status)
    assert.matches("no answer in time", r.body)
    -- a late answer to a connection that is gone changes nothing
    assert.are.same({ nil, "closed" }, { held:send("too late") })
  end)

  it("a late answer whose client left returns nil, \"closed\"", function()
    local held
    local _, port = serve(nil, function(app)
      app:get("/hold", function(_, res) held = res:later() end)
    end)
    local c = connect(port)
    c:send(get("/hold"))
    C.wait(function() return held ~= nil end, 1000)
    c:close()
    C.sleep(50)
    local ok, err = held:send("x")
    assert.is_nil(ok)
    assert.are.equal("closed", err)
  end)
end)
