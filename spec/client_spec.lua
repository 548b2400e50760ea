-- End-to-end specs of sse.client over real loopback sockets, against a small
-- raw luv TCP server written here. Every loop run is bounded by a guard timer.
local uv = require("luv")
local client = require("sse.client")

local OK_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"

-- Run the loop until nothing is alive, at most ms. Returns true when the
-- loop ran dry by itself (so nothing leaked); false when the guard fired
-- (everything left is then closed so later specs start clean).
local function run_loop(ms)
  local timed_out = false
  local guard = uv.new_timer()
  guard:start(ms or 5000, 0, function()
    timed_out = true
    uv.stop()
  end)
  guard:unref()
  uv.run()
  if timed_out then
    uv.walk(function(h) if not h:is_closing() then h:close() end end)
  else
    guard:close()
  end
  uv.run()
  return not timed_out
end

local function now() return uv.hrtime() / 1e6 end

-- A scripted HTTP server on 127.0.0.1, port 0. handler(req, c, n) runs for
-- the n-th request; req = {method, target, headers (lowercase names)}; c has
-- write(s), close(), after(ms, fn).
local function server(handler)
  local s = { requests = {}, errors = {}, times = {} }
  local srv = uv.new_tcp()
  assert(srv:bind("127.0.0.1", 0))
  s.port = srv:getsockname().port
  local handles = {}
  local function track(h) handles[#handles + 1] = h; return h end
  srv:listen(16, function(err)
    if err then return end
    local sock = track(uv.new_tcp())
    srv:accept(sock)
    local buf = ""
    local c = {}
    function c.write(data) if not sock:is_closing() then sock:write(data) end end
    function c.close() if not sock:is_closing() then sock:shutdown(function() sock:close() end) end end
    function c.after(ms, fn)
      local t = track(uv.new_timer())
      t:start(ms, 0, function()
        t:close()
        local ok, e = pcall(fn)
        if not ok then s.errors[#s.errors + 1] = e end
      end)
    end
    sock:read_start(function(rerr, chunk)
      if rerr or not chunk then
        if not sock:is_closing() then sock:close() end
        return
      end
      if not buf then return end
      buf = buf .. chunk
      local e = buf:find("\r\n\r\n", 1, true)
      if not e then return end
      local head = buf:sub(1, e - 1)
      buf = nil
      local method, target = head:match("^(%u+) (%S+) HTTP/1%.1\r\n")
      local req = { method = method, target = target, headers = {}, head = head }
      for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
        req.headers[name:lower()] = value
      end
      s.requests[#s.requests + 1] = req
      s.times[#s.times + 1] = now()
      local ok, herr = pcall(handler, req, c, #s.requests)
      if not ok then s.errors[#s.errors + 1] = herr end
    end)
  end)
  function s.stop_listening()
    if not srv:is_closing() then srv:close() end
  end
  function s.close()
    if not srv:is_closing() then srv:close() end
    for _, h in ipairs(handles) do
      if not h:is_closing() then h:close() end
    end
  end
  s.url = "http://127.0.0.1:" .. s.port
  return s
end

-- chunked(pieces) -> body with one chunk per piece, then the last chunk.
local function chunked(pieces)
  local t = {}
  for i, p in ipairs(pieces) do
    t[#t + 1] = ("%x%s\r\n%s\r\n"):format(#p, i == 2 and ";ext=1" or "", p)
  end
  t[#t + 1] = "0\r\n\r\n"
  return table.concat(t)
end

describe("sse.client", function()
  it("receives events and sends the EventSource request headers", function()
    local srv = server(function(_, c)
      c.write(OK_HEAD .. ": hi\n\ndata: one\n\nevent: tick\ndata: two\ndata: 2\n\nid: 9\ndata: three\n\n")
    end)
    local got, opens, states = {}, 0, {}
    local cl
    cl = client.connect(srv.url .. "/events?x=1", {
      on = {
        message = function(ev)
          got[#got + 1] = ev
          if ev.data == "three" then
            cl:close()
            srv.close()
          end
        end,
        tick = function(ev) got[#got + 1] = ev end,
      },
      on_open = function(c)
        opens = opens + 1
        states[#states + 1] = c:ready_state()
      end,
    })
    states[#states + 1] = cl:ready_state()
    assert.is_true(run_loop())
    local origin = "http://127.0.0.1:" .. srv.port
    assert.same({
      { type = "message", data = "one", id = "", origin = origin },
      { type = "tick", data = "two\n2", id = "", origin = origin },
      { type = "message", data = "three", id = "9", origin = origin },
    }, got)
    assert.equal(1, opens)
    assert.same({ "connecting", "open" }, states)
    assert.equal("closed", cl:ready_state())
    assert.equal("9", cl:last_event_id())
    assert.equal(1, #srv.requests)
    local req = srv.requests[1]
    assert.equal("GET", req.method)
    assert.equal("/events?x=1", req.target)
    assert.equal("text/event-stream", req.headers["accept"])
    assert.equal("no-cache", req.headers["cache-control"])
    assert.equal("127.0.0.1:" .. srv.port, req.headers["host"])
    assert.is_nil(req.headers["last-event-id"])
    assert.same({}, srv.errors)
  end)

  it("reconnects after the server drops, with Last-Event-ID and the server's retry", function()
    local closed_at
    local srv = server(function(_, c, n)
      if n == 1 then
        c.write(OK_HEAD .. "retry: 40\n\nid: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\nid: 4\ndata: lost")
        c.after(10, function()
          closed_at = now()
          c.close()
        end)
      else
        c.write(OK_HEAD .. "id: 4\ndata: d\n\ndata: e\n\n")
      end
    end)
    local got, errors = {}, {}
    local cl
    cl = client.connect(srv.url .. "/", {
      retry = 4000,
      on = {
        message = function(ev)
          got[#got + 1] = ev.id .. "=" .. ev.data
          if ev.data == "e" then
            cl:close()
            srv.close()
          end
        end,
      },
      on_error = function(err, info) errors[#errors + 1] = { err, info } end,
    })
    assert.is_true(run_loop())
    assert.same({ "1=a", "2=b", "3=c", "4=d", "4=e" }, got)
    assert.same({ { "connection closed", { closed = false, delay = 40 } } }, errors)
    assert.equal(2, #srv.requests)
    assert.is_nil(srv.requests[1].headers["last-event-id"])
    assert.equal("3", srv.requests[2].headers["last-event-id"])
    local waited = srv.times[2] - closed_at
    assert.is_true(waited >= 35 and waited < 1000, "waited " .. waited .. " ms")
    assert.same({}, srv.errors)
  end)

  it("stops for good on 204, without reconnecting", function()
    local srv = server(function(_, c) c.write("HTTP/1.1 204 No Content\r\n\r\n") end)
    local errors, cl = {}, nil
    cl = client.connect(srv.url, {
      retry = 10,
      on_error = function(err, info)
        errors[#errors + 1] = { err, info, cl:ready_state() }
        srv.close()
      end,
    })
    assert.is_true(run_loop())
    assert.same({ { "http status 204", { closed = true, status = 204 }, "closed" } }, errors)
    assert.equal(1, #srv.requests)
    assert.equal("closed", cl:ready_state())
  end)

  it("stops for good on another status and on a wrong content type", function()
    local heads = {
      { "HTTP/1.1 500 Oops\r\nContent-Type: text/event-stream\r\n\r\n", "http status 500", 500 },
      { "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\ndata: x\n\n",
        "content type 'text/plain' is not text/event-stream", 200 },
      { "HTTP/1.1 200 OK\r\n\r\ndata: x\n\n", "content type '' is not text/event-stream", 200 },
    }
    for _, h in ipairs(heads) do
      local srv = server(function(_, c) c.write(h[1]) end)
      local errors, got = {}, 0
      client.connect(srv.url, {
        retry = 10,
        on = { message = function() got = got + 1 end },
        on_error = function(err, info)
          errors[#errors + 1] = { err, info }
          srv.close()
        end,
      })
      assert.is_true(run_loop())
      assert.same({ { h[2], { closed = true, status = h[3] } } }, errors)
      assert.equal(0, got)
      assert.equal(1, #srv.requests)
    end
  end)

  it("accepts content type parameters and any case", function()
    local srv = server(function(_, c)
      c.write("HTTP/1.0 200 OK\r\ncontent-type:  Text/Event-Stream; charset=utf-8\r\n\r\ndata: x\n\n")
    end)
    local got = {}
    local cl
    cl = client.connect(srv.url, {
      on = { message = function(ev)
        got[#got + 1] = ev.data
        cl:close()
        srv.close()
      end },
    })
    assert.is_true(run_loop())
    assert.same({ "x" }, got)
  end)

  it("decodes chunked bodies split at odd boundaries, then reconnects at the last chunk", function()
    local body = chunked({ "retry: 2", "0\n\nda", "ta: h\195", "\169llo\r", "\n\r\nid: 7\nevent: x\n",
      "data: a\rdata: b\r\n\r\n", "d", "ata: z\n", "\n" })
    local head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    local srv = server(function(_, c, n)
      if n == 2 then return c.write("HTTP/1.1 204 No Content\r\n\r\n") end
      local wire = head .. body
      -- write in pieces of 1..5 bytes, each after a short pause, so the
      -- client reads the framing at odd places (inside sizes, between CR/LF)
      local pos, delay = 1, 0
      while pos <= #wire do
        local len = (pos % 5) + 1
        local piece = wire:sub(pos, pos + len - 1)
        pos = pos + len
        delay = delay + 1
        c.after(delay, function() c.write(piece) end)
      end
    end)
    local got, errors = {}, {}
    client.connect(srv.url, {
      on_event = function(ev) got[#got + 1] = { ev.type, ev.data, ev.id } end,
      on_error = function(err, info)
        errors[#errors + 1] = { err, info }
        if info.closed then srv.close() end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ { "message", "h\195\169llo", "" }, { "x", "a\nb", "7" }, { "message", "z", "7" } }, got)
    assert.same({
      { "end of response body", { closed = false, delay = 20 } },
      { "http status 204", { closed = true, status = 204 } },
    }, errors)
    assert.equal("7", srv.requests[2].headers["last-event-id"])
  end)

  it("hands Lua the text a browser shows: bad UTF-8 becomes U+FFFD, cut sequences decode whole", function()
    local R = "\239\191\189"
    -- one write per piece, each after a pause: the BOM and the sequences arrive cut
    local pieces = { OK_HEAD .. "\239\187", "\191data: caf\195", "\169 \240\159",
      "\152\128 \255\192\128 \237\160\128 \226\130\n", "event: \244\144", "\128\128\nid: \128\n\n" }
    local srv = server(function(_, c)
      for i, p in ipairs(pieces) do c.after(i * 5, function() c.write(p) end) end
    end)
    local got, cl = {}, nil
    cl = client.connect(srv.url, {
      on_event = function(ev)
        got[#got + 1] = ev
        cl:close()
        srv.close()
      end,
    })
    assert.is_true(run_loop())
    assert.same({ { type = R:rep(4), data = "caf\195\169 \240\159\152\128 " .. R:rep(3) .. " " .. R:rep(3) .. " " .. R,
      id = R, origin = srv.url } }, got)
    assert.equal(R, cl:last_event_id())
  end)

  it("reads the head as a browser does: skips 1xx, takes the last valid Content-Type", function()
    -- Chromium accepts each of these (spec/interop checks the same heads there)
    local heads = {
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" .. OK_HEAD,
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Type: text/event-stream\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain, text/event-stream;charset=\"a,b\"\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream, */*\r\n\r\n",
    }
    for _, h in ipairs(heads) do
      local srv = server(function(_, c) c.write(h .. "data: x\n\n") end)
      local got, errors, cl = {}, {}, nil
      cl = client.connect(srv.url, {
        on = { message = function(ev)
          got[#got + 1] = ev.data
          cl:close()
          srv.close()
        end },
        on_error = function(err)
          errors[#errors + 1] = err
          cl:close()
          srv.close()
        end,
      })
      assert.is_true(run_loop())
      assert.same({ { "x" }, {} }, { got, errors }, h)
    end
  end)

  it("refuses what it cannot decode and malformed heads, then tries again", function()
    -- { head, error }: each answers the first request; the second gets 204
    local cases = {
      { "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "Transfer-Encoding not supported" },
      { "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "both Content-Length and Transfer-Encoding" },
      { "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5, 6\r\n\r\n",
        "invalid Content-Length" },
      { "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n folded\r\n\r\n", "obsolete line folding in header" },
      { "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "invalid header name" },
      { "HTTP/2 200\r\n\r\n", "malformed status line" },
      { "HTTP/1.1 20x OK\r\n\r\n", "invalid status code" },
      { "HTTP/1.1 200 OK\r\nX: " .. ("y"):rep(70000) .. "\r\n\r\n", "response head too large" },
      { "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "5\r\ndata:\r\nzz\r\n", "bad chunked encoding" },
    }
    for _, k in ipairs(cases) do
      local srv = server(function(_, c, n)
        c.write(n == 1 and k[1] or "HTTP/1.1 204 No Content\r\n\r\n")
      end)
      local errors = {}
      client.connect(srv.url, {
        retry = 5,
        on_error = function(err, info)
          errors[#errors + 1] = { err, info.closed }
          if info.closed then srv.close() end
        end,
      })
      assert.is_true(run_loop())
      assert.same({ { k[2], false }, { "http status 204", true } }, errors)
    end
  end)

  it("ends a chunked body at its last chunk, trailers and all", function()
    local srv = server(function(_, c, n)
      if n == 2 then return c.write("HTTP/1.1 204 No Content\r\n\r\n") end
      c.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "00b;name=\"v\"\r\ndata: one\n\n\r\n0\r\nX-Trailer: 1\r\nX-More: 2\r\n\r\ndata: after the body\n\n")
    end)
    local got, errors = {}, {}
    client.connect(srv.url, {
      retry = 5,
      on = { message = function(ev) got[#got + 1] = ev.data end },
      on_error = function(err, info)
        errors[#errors + 1] = err
        if info.closed then srv.close() end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ "one" }, got)
    assert.same({ "end of response body", "http status 204" }, errors)
  end)

  it("reads a Content-Length body, then reconnects", function()
    local srv = server(function(_, c, n)
      if n == 1 then
        local body = "retry: 5\nid: 1\ndata: x\n\n"
        c.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " .. #body .. "\r\n\r\n"
          .. body .. "data: beyond the body\n\n")
      else
        c.write("HTTP/1.1 204 No Content\r\n\r\n")
      end
    end)
    local got, errors = {}, {}
    client.connect(srv.url, {
      on = { message = function(ev) got[#got + 1] = ev.data end },
      on_error = function(err, info)
        errors[#errors + 1] = err
        if info.closed then srv.close() end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ "x" }, got)
    assert.same({ "end of response body", "http status 204" }, errors)
    assert.equal("1", srv.requests[2].headers["last-event-id"])
  end)

  it("backs off exponentially while connections fail, capped at max_backoff", function()
    -- a port nobody listens on: bind, read the port, close
    local probe = uv.new_tcp()
    probe:bind("127.0.0.1", 0)
    local port = probe:getsockname().port
    probe:close()
    uv.run()
    local errors, delays, cl = {}, {}, nil
    local t0 = now()
    cl = client.connect("http://127.0.0.1:" .. port .. "/", {
      retry = 10,
      max_backoff = 50,
      on_error = function(err, info)
        errors[#errors + 1] = err
        delays[#delays + 1] = info.delay
        if #delays == 6 then cl:close() end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ 10, 20, 40, 50, 50, 50 }, delays)
    for _, e in ipairs(errors) do assert.matches("^ECONNREFUSED", e) end
    assert.is_true(now() - t0 >= 10 + 20 + 40 + 50 + 50)
  end)

  it("resets the backoff once a response is accepted", function()
    local srv = server(function(_, c, n)
      if n <= 3 then
        c.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 0\r\n\r\n")
      else
        c.write("HTTP/1.1 204 No Content\r\n\r\n")
      end
    end)
    local delays = {}
    client.connect(srv.url, {
      retry = 5,
      on_error = function(_, info)
        delays[#delays + 1] = info.delay or "closed"
        if info.closed then srv.close() end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ 5, 5, 5, "closed" }, delays)
  end)

  it("starts the backoff over after an accepted response", function()
    local srv
    srv = server(function(_, c)
      c.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 0\r\n\r\n")
      srv.stop_listening() -- later attempts are refused
    end)
    local got, cl = {}, nil
    cl = client.connect(srv.url, {
      retry = 5,
      on_error = function(err, info)
        got[#got + 1] = { err:match("^[%w ]+"), info.delay }
        if #got == 4 then
          cl:close()
          srv.close()
        end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ { "end of response body", 5 }, { "ECONNREFUSED", 5 }, { "ECONNREFUSED", 10 },
      { "ECONNREFUSED", 20 } }, got)
  end)

  it("counts a silent server as a failed attempt after timeout", function()
    local srv = server(function() end)
    local errors, cl = {}, nil
    cl = client.connect(srv.url, {
      timeout = 150, -- room for the server to take each request first on a loaded machine
      retry = 5,
      on_error = function(err, info)
        errors[#errors + 1] = { err, info.delay }
        if #errors == 2 then
          cl:close()
          srv.close()
        end
      end,
    })
    assert.is_true(run_loop())
    assert.same({ { "timeout", 5 }, { "timeout", 10 } }, errors)
    assert.equal(2, #srv.requests)
  end)

  it("survives errors in user callbacks and reports them", function()
    local srv = server(function(_, c) c.write(OK_HEAD .. "data: 1\n\ndata: 2\n\n") end)
    local got, errors, cl = {}, {}, nil
    cl = client.connect(srv.url, {
      on_open = function() error("open boom", 0) end,
      on = {
        message = function(ev)
          got[#got + 1] = ev.data
          if ev.data == "1" then error("boom", 0) end
          cl:close()
          srv.close()
        end,
      },
      on_error = function(err, info) errors[#errors + 1] = { err, info } end,
    })
    assert.is_true(run_loop())
    assert.same({ "1", "2" }, got)
    assert.same({
      { "error in on_open: open boom", { closed = false } },
      { "error in on.message handler: boom", { closed = false } },
    }, errors)
  end)

  it("sends the initial last_event_id and extra headers; resolves localhost", function()
    local srv = server(function(_, c) c.write(OK_HEAD .. "data: x\n\n") end)
    local got, cl = {}, nil
    cl = client.connect("http://localhost:" .. srv.port .. "/s", {
      last_event_id = "abc",
      headers = { ["X-Token"] = "t1", Accept = "text/event-stream, */*" },
      on = { message = function(ev)
        got[#got + 1] = ev
        cl:close()
        srv.close()
      end },
    })
    assert.equal("abc", cl:last_event_id())
    assert.is_true(run_loop())
    assert.same({ { type = "message", data = "x", id = "abc", origin = "http://localhost:" .. srv.port } }, got)
    local h = srv.requests[1].headers
    assert.equal("abc", h["last-event-id"])
    assert.equal("t1", h["x-token"])
    assert.equal("text/event-stream, */*", h["accept"])
    assert.equal("localhost:" .. srv.port, h["host"])
  end)

  it("follows redirects", function()
    local srv = server(function(req, c)
      if req.target == "/old" then
        c.write("HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n")
      else
        c.write(OK_HEAD .. "data: moved\n\n")
      end
    end)
    local got, cl = {}, nil
    cl = client.connect(srv.url .. "/old", {
      on = { message = function(ev)
        got[#got + 1] = ev.data
        cl:close()
        srv.close()
      end },
    })
    assert.is_true(run_loop())
    assert.same({ "moved" }, got)
    assert.same({ "/old", "/new" }, { srv.requests[1].target, srv.requests[2].target })
  end)

  it("stops for good when an event exceeds max_event_bytes", function()
    local srv = server(function(_, c) c.write(OK_HEAD .. "data: ok\n\ndata: 0123456789\n\n") end)
    local got, errors = {}, {}
    client.connect(srv.url, {
      max_event_bytes = 8,
      on = { message = function(ev) got[#got + 1] = ev.data end },
      on_error = function(err, info)
        errors[#errors + 1] = { err, info }
        srv.close()
      end,
    })
    assert.is_true(run_loop())
    assert.same({ "ok" }, got)
    assert.same({ { "event too large", { closed = true } } }, errors)
  end)

  it("close() at any point leaves no handle alive", function()
    -- while resolving / connecting
    local cl = client.connect("http://127.0.0.1:1/")
    assert.is_true(cl:close())
    assert.is_true(cl:close())
    assert.equal("closed", cl:ready_state())
    assert.is_true(run_loop(2000))
    -- while open, from on_open; and while waiting to reconnect
    local srv = server(function(req, c)
      c.write(OK_HEAD .. "retry: 10000\n\n")
      if req.target == "/c2" then c.close() end
    end)
    local c1, c2
    c1 = client.connect(srv.url .. "/c1", { on_open = function(c) c:close() end })
    c2 = client.connect(srv.url .. "/c2", {
      on_error = function(_, info)
        if info.delay == 10000 then
          c2:close()
          srv.close()
        end
      end,
    })
    assert.is_true(run_loop())
    assert.equal("closed", c1:ready_state())
    assert.equal("closed", c2:ready_state())
  end)

  it("names bad arguments", function()
    local function raises(n, why, ...)
      local ok, err = pcall(client.connect, ...)
      assert.is_false(ok)
      assert.equal(("bad argument #%d to 'connect' (%s)"):format(n, why), err:gsub("^[^:]*:%d+: ", ""))
    end
    raises(1, "string expected, got number", 5)
    raises(1, "http:// URL expected", "https://example.com/")
    raises(1, "URL contains whitespace or control characters", "http://a b/")
    raises(1, "bad port in URL", "http://127.0.0.1:70000/")
    raises(2, "table expected, got string", "http://x/", "y")
    raises(2, "field 'on.message': function expected, got string", "http://x/", { on = { message = "f" } })
    raises(2, "field 'on_error': function expected, got number", "http://x/", { on_error = 1 })
    raises(2, "field 'retry' must be an integer from 0 to 2147483647", "http://x/", { retry = -1 })
    raises(2, "field 'timeout' must be an integer from 1 to 2147483647", "http://x/", { timeout = 0.5 })
    raises(2, "field 'max_event_bytes' must be an integer from 1 to 2147483647", "http://x/",
      { max_event_bytes = 0 })
    raises(2, "field 'retry': number expected, got string", "http://x/", { retry = "1" })
    raises(2, "field 'headers.X-A': control characters in value", "http://x/", { headers = { ["X-A"] = "a\r\nb" } })
    raises(2, "field 'headers': bad header name \"a b\"", "http://x/", { headers = { ["a b"] = "1" } })
    raises(2, "field 'headers': Host is set by the client", "http://x/", { headers = { Host = "h" } })
    raises(2, "field 'last_event_id' must not contain NUL, CR or LF", "http://x/", { last_event_id = "a\nb" })
    uv.run() -- nothing was started
  end)

  describe("helpers", function()
    it("parses URLs", function()
      local u = client._parse_url("http://Example.COM:8080/a/b?q=1#frag")
      assert.same({ host = "Example.COM", port = 8080, path = "/a/b?q=1", authority = "Example.COM:8080",
        origin = "http://example.com:8080" }, u)
      u = client._parse_url("HTTP://[::1]?x")
      assert.same({ host = "::1", port = 80, path = "/?x", authority = "[::1]", origin = "http://[::1]" }, u)
      assert.same({ nil, "bad host in URL" }, { client._parse_url("http:///x") })
      assert.equal("http://h:1/c/d", client._resolve_location(client._parse_url("http://h:1/a/b"), "/c/d"))
      assert.equal("http://h:1/a/d", client._resolve_location(client._parse_url("http://h:1/a/b?x"), "d"))
      assert.equal("http://o/x", client._resolve_location(client._parse_url("http://h:1/a/b"), "//o/x"))
    end)
  end)
end)
