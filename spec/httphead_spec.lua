-- The strict HTTP/1.1 head parser of sse.core (csrc/core/httphead.c, csrc/lua/lua_http.c).
local core = require("sse.core")

local function crlf(lines) return table.concat(lines, "\r\n") .. "\r\n\r\n" end

-- `n` query parameters topic=t1&topic=t2&...
local function topics(n)
  local t = {}
  for i = 1, n do t[i] = "topic=t" .. i end
  return table.concat(t, "&")
end

local function many_headers(n)
  local lines = { "GET / HTTP/1.1", "Host: a" }
  for i = 2, n do lines[#lines + 1] = "X-H" .. i .. ": " .. i end
  return crlf(lines)
end

describe("http_parse_request", function()
  it("parses a request into the exact table", function()
    local head = crlf({
      "GET /events/%C3%A9t%C3%A9%20x?topic=a&topic=b%20c HTTP/1.1",
      "Host: example.com:8080",
      "Accept:text/event-stream",
      "Last-Event-ID:  42 \t",
      "X-Dup: 1",
      "x-dup: 2",
      "X-Empty:",
    })
    assert.same({
      method = "GET",
      target = "/events/%C3%A9t%C3%A9%20x?topic=a&topic=b%20c",
      path = "/events/\195\169t\195\169 x",
      query = "topic=a&topic=b%20c",
      version = "1.1",
      headers = {
        host = "example.com:8080",
        accept = "text/event-stream",
        ["last-event-id"] = "42",
        ["x-dup"] = "1, 2",
        ["x-empty"] = "",
      },
      keep_alive = true,
      head_bytes = #head,
    }, core.http_parse_request(head .. "trailing body bytes"))
  end)

  it("reports Content-Length, version and keep-alive", function()
    local head = crlf({ "POST /publish HTTP/1.0", "Content-Length: 0017",
                        "Content-Length: 17", "Connection: Keep-Alive" })
    assert.same({
      method = "POST", target = "/publish", path = "/publish", query = "",
      version = "1.0",
      headers = { ["content-length"] = "0017, 17", connection = "Keep-Alive" },
      content_length = 17, keep_alive = true, head_bytes = #head,
    }, core.http_parse_request(head))

    local function ka(lines) return core.http_parse_request(crlf(lines)).keep_alive end
    assert.is_false(ka({ "GET / HTTP/1.0" }))
    assert.is_true(ka({ "GET / HTTP/1.1", "Host: a" }))
    assert.is_false(ka({ "GET / HTTP/1.1", "Host: a", "Connection: upgrade, Close" }))
    assert.is_false(ka({ "GET / HTTP/1.0", "Connection: keep-alive, close" }))
    assert.equal(2 ^ 53, core.http_parse_request(
      crlf({ "POST / HTTP/1.1", "Host: a", "Content-Length: 9007199254740992" })).content_length)
  end)

  it("tolerates bare LF, one leading empty line and OPTIONS *", function()
    local r = core.http_parse_request("\r\nGET /a?b HTTP/1.1\nHost: h\n\n")
    assert.same({ "/a", "b", 29 }, { r.path, r.query, r.head_bytes })
    r = core.http_parse_request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.same({ "OPTIONS", "*", "*", "" }, { r.method, r.target, r.path, r.query })
  end)

  it("accepts raised limits", function()
    local head = "GET /?" .. topics(1000) .. " HTTP/1.1\r\nHost: a\r\n\r\n"
    local r = core.http_parse_request(head, { max_head_bytes = 65536 })
    assert.equal(#head, r.head_bytes)
    assert.same({ nil, 400, "too many query parameters" }, { core.http_parse_query(r.query) })
    assert.equal(1000, #core.http_parse_query(r.query, 1000).topic)
    local h = many_headers(100)
    assert.same({ nil, 431, "too many headers" }, { core.http_parse_request(h) })
    assert.equal("100", core.http_parse_request(h, { max_headers = 100 }).headers["x-h100"])
  end)

  local H = "Host: a\r\n\r\n"
  local bad = {
    { "request line without a version", "GET /\r\n" .. H, 400, "malformed request line" },
    { "two spaces", "GET  / HTTP/1.1\r\n" .. H, 400, "malformed request line" },
    { "space in the target", "GET /a b HTTP/1.1\r\n" .. H, 400, "malformed request line" },
    { "trailing space", "GET / HTTP/1.1 \r\n" .. H, 400, "malformed request line" },
    { "two leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n" .. H, 400, "malformed request line" },
    { "empty head", "\r\n\r\n\r\n", 400, "malformed request line" },
    { "binary garbage", "\22\3\1\0\165\1\0\0\161\3\3\r\n\r\n", 400, "malformed request line" },
    { "method not a token", "GE(T / HTTP/1.1\r\n" .. H, 400, "invalid method" },
    { "absolute-form target", "GET http://a/ HTTP/1.1\r\n" .. H, 400, "invalid request target" },
    { "* without OPTIONS", "GET * HTTP/1.1\r\n" .. H, 400, "invalid request target" },
    { "raw UTF-8 in the target", "GET /\195\169 HTTP/1.1\r\n" .. H, 400, "invalid request target" },
    { "NUL in the target", "GET /a\0b HTTP/1.1\r\n" .. H, 400, "invalid request target" },
    { "lowercase version", "GET / http/1.1\r\n" .. H, 400, "malformed HTTP version" },
    { "garbage version", "GET / HTTP/x.y\r\n" .. H, 400, "malformed HTTP version" },
    { "HTTP/2.0", "GET / HTTP/2.0\r\n" .. H, 505, "HTTP version not supported" },
    { "HTTP/1.2", "GET / HTTP/1.2\r\n" .. H, 505, "HTTP version not supported" },
    { "HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP version not supported" },
    { "header without colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, "header line without a colon" },
    { "space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400,
      "whitespace before colon in header line" },
    { "empty header name", "GET / HTTP/1.1\r\n: a\r\n" .. H, 400, "invalid header name" },
    { "obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400,
      "obsolete line folding in header" },
    { "NUL in a header", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400, "invalid character in header value" },
    { "bare CR in a header", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400,
      "invalid character in header value" },
    { "negative Content-Length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n" .. H, 400,
      "invalid Content-Length" },
    { "Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n" .. H, 400,
      "invalid Content-Length" },
    { "Content-Length over 2^53", "POST / HTTP/1.1\r\nContent-Length: 9007199254740993\r\n" .. H,
      400, "invalid Content-Length" },
    { "Content-Length 0x10", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n" .. H, 400,
      "invalid Content-Length" },
    { "conflicting Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n" .. H,
      400, "conflicting Content-Length headers" },
    { "chunked body", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" .. H, 411,
      "Transfer-Encoding not supported" },
    { "chunked and Content-Length",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n" .. H, 400,
      "both Content-Length and Transfer-Encoding" },
    { "HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing Host header" },
    { "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\n" .. H, 400, "multiple Host headers" },
    { "Host with a path", "GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n", 400, "invalid Host header" },
    { "bad percent escape", "GET /%zz HTTP/1.1\r\n" .. H, 400, "bad percent-escape in path" },
    { "truncated percent escape", "GET /a%2 HTTP/1.1\r\n" .. H, 400, "bad percent-escape in path" },
    { "encoded NUL in the path", "GET /a%00b HTTP/1.1\r\n" .. H, 400, "NUL byte in path" },
    { "non-UTF-8 path", "GET /%FF%FE HTTP/1.1\r\n" .. H, 400, "path is not valid UTF-8" },
    { "overlong UTF-8 path", "GET /%C0%AE HTTP/1.1\r\n" .. H, 400, "path is not valid UTF-8" },
    { "encoded surrogate", "GET /%ED%B0%80 HTTP/1.1\r\n" .. H, 400, "path is not valid UTF-8" },
    { "dot-dot segment", "GET /static/%2e%2e/secret HTTP/1.1\r\n" .. H, 400, "dot segment in path" },
    { "oversize head", "GET / HTTP/1.1\r\nHost: a\r\nX: " .. ("x"):rep(8200) .. "\r\n\r\n",
      431, "request head too large" },
    { "10 KB Last-Event-ID", "GET /events HTTP/1.1\r\nHost: a\r\nLast-Event-ID: " .. ("9"):rep(10240)
      .. "\r\n\r\n", 431, "request head too large" },
    { "oversize head without an end yet", "GET / HTTP/1.1\r\nX: " .. ("x"):rep(9000),
      431, "request head too large" },
    { "too many headers", many_headers(65), 431, "too many headers" },
    { "huge query", "GET /?q=" .. ("a"):rep(100000) .. " HTTP/1.1\r\n" .. H, 414, "request line too long" },
    { "1,000 topics in the query", "GET /events?" .. topics(1000) .. " HTTP/1.1\r\n" .. H,
      414, "request line too long" },
    { "incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n", 400, "incomplete request head" },
  }
  for _, case in ipairs(bad) do
    local name, head, status, msg = case[1], case[2], case[3], case[4]
    it("answers " .. status .. " to " .. name, function()
      assert.same({ nil, status, msg }, { core.http_parse_request(head) })
    end)
  end

  it("takes up to max_headers headers", function()
    assert.equal("64", core.http_parse_request(many_headers(64)).headers["x-h64"])
  end)

  it("takes a head of exactly max_head_bytes", function()
    local head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert.equal(#head, core.http_parse_request(head, { max_head_bytes = #head }).head_bytes)
    assert.same({ nil, 431, "request head too large" },
      { core.http_parse_request(head, { max_head_bytes = #head - 1 }) })
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.http_parse_request(nil) end,
      "bad argument #1 to 'http_parse_request' (string expected, got nil)")
    assert.has_error(function() core.http_parse_request("", 5) end,
      "bad argument #2 to 'http_parse_request' (table expected, got number)")
    assert.has_error(function() core.http_parse_request("", { max_headers = 0 }) end,
      "bad argument #2 to 'http_parse_request' (max_headers must be an integer in 1..10000)")
    assert.has_error(function() core.http_parse_request("", { max_head_bytes = 1.5 }) end,
      "bad argument #2 to 'http_parse_request' (max_head_bytes must be an integer in 1..1073741824)")
    assert.has_error(function() core.http_parse_request("", { max_head = 10 }) end,
      "bad argument #2 to 'http_parse_request' (unknown option 'max_head')")
  end)
end)

describe("http_head_end", function()
  local req = "GET /events HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 7\r\n\r\nnext request"

  it("finds the end of the head, or asks for more", function()
    assert.equal(#req - #"next request", core.http_head_end(req))
    assert.equal(7, core.http_head_end("GET /\n\nx"))
    assert.same({ nil }, { core.http_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r") })
    assert.same({ nil }, { core.http_head_end("") })
  end)

  it("is fed one byte at a time and scans each byte once", function()
    local want = #req - #"next request"
    local buf, got = "", nil
    for i = 1, #req do
      buf = buf .. req:sub(i, i)
      got = core.http_head_end(buf, i)
      if got then
        assert.equal(want, i)
        break
      end
    end
    assert.equal(want, got)
    -- Resuming trusts that the earlier bytes held no end: an end wholly before
    -- from - 2 is not looked at again.
    local two = "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"
    assert.equal(18, core.http_head_end(two, 18))
    assert.equal(36, core.http_head_end(two, 19))
    assert.same({ nil }, { core.http_head_end(two, 37) })
  end)

  it("rejects a slowloris-sized head before its end arrives", function()
    local line = "GET / HTTP/1.1\r\nX: "
    local buf = line .. ("x"):rep(8192 - #line - 1)
    assert.same({ nil }, { core.http_head_end(buf, #buf) })
    buf = buf .. "x"
    assert.same({ nil, 431, "request head too large" }, { core.http_head_end(buf, #buf) })
    local long = "GET /" .. ("a"):rep(8187)
    assert.same({ nil, 414, "request line too long" }, { core.http_head_end(long, #long) })
    assert.same({ nil, 431, "request head too large" },
      { core.http_head_end("GET / HTTP/1.1\r\n", 1, { max_head_bytes = 16 }) })
    assert.same({ nil }, { core.http_head_end("GET / HTTP/1.1\r\n", 1, { max_head_bytes = 17 }) })
    -- a complete head within the limit is found even when more bytes follow
    assert.equal(18, core.http_head_end("GET / HTTP/1.0\r\n\r\n" .. ("b"):rep(20000)))
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.http_head_end({}) end,
      "bad argument #1 to 'http_head_end' (string expected, got table)")
    assert.has_error(function() core.http_head_end("", 0) end,
      "bad argument #2 to 'http_head_end' (positive integer expected)")
    assert.has_error(function() core.http_head_end("", 1, { max_headers = -1 }) end,
      "bad argument #3 to 'http_head_end' (max_headers must be an integer in 1..10000)")
  end)
end)

describe("http_parse_query", function()
  it("decodes pairs, lists repeated keys in order", function()
    assert.same({ a = { "1", "3", "" }, b = "2 x", c = "", ["k y"] = "/&=", [""] = "v" },
      core.http_parse_query("a=1&b=2+x&a=3&&c&k+y=%2F%26%3d&=v&a="))
    assert.same({}, core.http_parse_query(""))
    assert.same({}, core.http_parse_query("&&&"))
    assert.same({ x = "a=b" }, core.http_parse_query("x=a=b"))
    assert.same({ bin = "\0\255" }, core.http_parse_query("bin=%00%ff"))
  end)

  it("returns nil, 400 on bad escapes and too many pairs", function()
    assert.same({ nil, 400, "bad percent-escape in query" }, { core.http_parse_query("a=%2") })
    assert.same({ nil, 400, "bad percent-escape in query" }, { core.http_parse_query("%zz=1") })
    assert.same({ nil, 400, "too many query parameters" }, { core.http_parse_query(topics(257)) })
    assert.equal(256, #core.http_parse_query(topics(256)).topic)
    assert.same({ nil, 400, "too many query parameters" }, { core.http_parse_query("a&b&c", 2) })
    assert.same({ a = "", b = "" }, core.http_parse_query("a&&b", 2))
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.http_parse_query(nil) end,
      "bad argument #1 to 'http_parse_query' (string expected, got nil)")
    assert.has_error(function() core.http_parse_query("", 0) end,
      "bad argument #2 to 'http_parse_query' (max_pairs must be an integer in 1..1000000)")
  end)
end)

describe("http_parse_response", function()
  it("parses a status line and headers", function()
    local head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      .. "X-A: 1\r\nx-a: 2\r\n\r\n"
    assert.same({
      status = 200, reason = "OK", version = "1.1", head_bytes = #head, framing = "close",
      media_type = "text/event-stream",
      headers = { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache",
                  ["x-a"] = "1, 2" },
    }, core.http_parse_response(head .. "data: 1\n\n"))
    assert.same({ status = 204, reason = "", version = "1.0", head_bytes = 16, headers = {}, framing = "none" },
      core.http_parse_response("HTTP/1.0 204\r\n\r\n"))
  end)

  it("says how the body ends and what the media type is", function()
    local function parse(lines) return core.http_parse_response("HTTP/1.1 200 OK\r\n" .. lines .. "\r\n") end
    local r = parse("Content-Length: 42\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\n")
    assert.same({ "length", 42, "text/event-stream" }, { r.framing, r.content_length, r.media_type })
    r = parse("Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\nContent-Type: text/event-stream, */*\r\n")
    assert.same({ "chunked", nil, "text/event-stream" }, { r.framing, r.content_length, r.media_type })
    assert.is_nil(parse("Content-Type: text /event-stream\r\n").media_type)
    assert.same({ nil, "Transfer-Encoding not supported" }, { parse("Transfer-Encoding: gzip, chunked\r\n") })
    assert.same({ nil, "both Content-Length and Transfer-Encoding" },
      { parse("Transfer-Encoding: chunked\r\nContent-Length: 1\r\n") })
    assert.same({ nil, "conflicting Content-Length headers" }, { parse("Content-Length: 1\r\nContent-Length: 2\r\n") })
  end)

  it("returns nil while incomplete and nil, err when malformed", function()
    assert.same({ nil }, { core.http_parse_response("HTTP/1.1 200 OK\r\n") })
    assert.same({ nil, "malformed status line" }, { core.http_parse_response("ICY 200 OK\r\n\r\n") })
    assert.same({ nil, "invalid status code" }, { core.http_parse_response("HTTP/1.1 2x0 OK\r\n\r\n") })
    assert.same({ nil, "HTTP version not supported" },
      { core.http_parse_response("HTTP/2.0 200 OK\r\n\r\n") })
    assert.same({ nil, "header line without a colon" },
      { core.http_parse_response("HTTP/1.1 200 OK\r\nbroken\r\n\r\n") })
    assert.same({ nil, "response head too large" },
      { core.http_parse_response("HTTP/1.1 200 OK\r\nX: " .. ("y"):rep(9000)) })
  end)
end)

describe("http_body", function()
  it("decodes a chunked body in any pieces, and gives what follows it", function()
    local wire = "5;ext=\"a\"\r\nhello\r\n1\r\n \r\n5\nworld\n0\r\nX-T: 1\r\n\r\nNEXT"
    for step = 1, #wire do
      local b, body, rest, done = core.http_body("chunked"), {}, nil, false
      for i = 1, #wire, step do
        assert.is_false(done)
        local data, d, r = b:feed(wire:sub(i, i + step - 1))
        body[#body + 1] = data
        done, rest = d, r
        if done then rest = rest .. wire:sub(i + step) break end
      end
      assert.same({ "hello world", true, "NEXT" }, { table.concat(body), done, rest })
      assert.is_true(b:done())
      assert.same({ "", true, "more" }, { b:feed("more") })
    end
  end)

  it("fails a malformed chunked body for good", function()
    local b = core.http_body("chunked")
    assert.same({ "ab", false }, { b:feed("2\r\nab") })
    assert.same({ nil, "malformed chunked encoding" }, { b:feed("X\r\n") })
    assert.same({ nil, "malformed chunked encoding" }, { b:feed("0\r\n\r\n") })
    assert.is_false(b:done())
  end)

  it("counts a Content-Length body; passes a close-delimited one through", function()
    local b = core.http_body("length", 5)
    assert.same({ "abc", false }, { b:feed("abc") })
    assert.same({ "de", true, "fgh" }, { b:feed("defgh") })
    assert.is_true(core.http_body("length", 0):done())
    assert.is_true(core.http_body("none"):done())
    local c = core.http_body("close")
    assert.same({ "anything", false }, { c:feed("anything") })
    assert.is_false(c:done())
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.http_body("gzip") end,
      "bad argument #1 to 'http_body' (invalid option 'gzip')")
    assert.has_error(function() core.http_body("length") end,
      "bad argument #2 to 'http_body' (length expected (an integer in 0..2^53))")
    assert.has_error(function() core.http_body("chunked"):feed(nil) end,
      "bad argument #1 to 'feed' (string expected, got nil)")
  end)
end)
