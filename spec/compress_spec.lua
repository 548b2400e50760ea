-- Compressed streams (issue 14): res:sse{compress = true} and the demo hub's
-- --compress gzip a stream for a client that accepts it, sync-flushed per
-- write, so events still arrive one by one: curl --compressed reads each
-- event before the next one is published. The Accept-Encoding rule, the
-- options' errors, the compressor's memory and the metrics counters.
local uv = require("luv")
local cjson = require("cjson")
local sse = require("sse")
local App = require("sse.app")
local response = require("sse.http.response")
local metrics = require("sse.metrics")
local C = require("helpers.http_client")
local util = require("helpers.util")

-- curl as a child: its stdout fills as events arrive.
local function curl(args)
  local p = { out = {} }
  local so = uv.new_pipe(false)
  local env = { "PATH=" .. os.getenv("PATH") } -- no sanitizer runtime in curl
  local h, pid = uv.spawn("curl", { args = args, env = env, stdio = { nil, so, nil } },
    function(code) p.code = code end)
  assert(h, "cannot run curl: " .. tostring(pid))
  so:read_start(function(_, d) if d then p.out[#p.out + 1] = d end end)
  function p.text() return table.concat(p.out) end
  function p.stop()
    if p.code == nil then uv.kill(pid, "sigterm") end
    C.wait(function() return p.code ~= nil end, 3000)
    for _, x in ipairs({ so, h }) do if not x:is_closing() then x:close() end end
    uv.run("nowait")
  end
  return p
end

describe("compressed streams", function()
  local app
  after_each(function()
    if app then app:close() end
    app = nil
    C.sleep(20)
  end)

  local function start(opts)
    opts = opts or {}
    opts.port, opts.log = 0, function() end
    app = App.new(opts)
    assert(app:listen())
    return "http://127.0.0.1:" .. app.port
  end

  local function publish(n)
    local c = C.connect(app.port)
    local body = cjson.encode({ topic = "t", event = "tick",
                                data = { n = n, text = ("hello %d "):format(n):rep(8) } })
    local res = assert(c:request(C.post("/publish", body, { "Content-Type: application/json\r\n" }), 3000))
    c:close()
    assert.are.equal(200, res.status, res.body)
    return cjson.decode(res.body).id
  end

  it("reaches curl --compressed event by event", function()
    local base = start({ compress = true })
    local client = curl({ "-sN", "--compressed", "-D", "-", base .. "/events?topic=t" })
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 5000))
    local ids = {}
    for n = 1, 5 do
      ids[n] = publish(n)
      -- this event is decoded by curl before the next one is published
      assert.is_true(C.wait(function() return client.text():find("id: " .. ids[n] .. "\n", 1, true) ~= nil end,
        3000), "event " .. n .. " did not arrive alone:\n" .. client.text())
      assert.is_nil(client.text():find('"n":' .. (n + 1), 1, true))
      C.sleep(50)
    end
    local text = client.text()
    assert.truthy(text:lower():find("content%-encoding: gzip\r\n"), text)
    assert.truthy(text:lower():find("vary: accept%-encoding\r\n"), text)
    for n = 1, 5 do
      assert.truthy(text:find(("event: tick\nid: %s\ndata: {"):format(ids[n]), 1, true), text)
    end
    -- what went over the wire is smaller than what curl decoded
    local st = app.hub:streams()[1]:stats()
    assert.is_true(st.gzip_out < st.gzip_in * 0.6, st.gzip_out .. " of " .. st.gzip_in)
    assert.is_true(st.gzip_memory > 0 and st.gzip_memory < 64 * 1024, tostring(st.gzip_memory))
    local s = {}
    for k, v in metrics.render(app.hub):gmatch("\n(sse_compressed_[%w_]+) (%d+)") do s[k] = tonumber(v) end
    assert.are.equal(st.gzip_in, s.sse_compressed_input_bytes_total)
    assert.are.equal(st.gzip_out, s.sse_compressed_output_bytes_total)
    client.stop()
  end)

  it("sends a plain stream to a client that does not accept gzip, and to any without --compress", function()
    local base = start({ compress = true })
    local plain = curl({ "-sN", "-D", "-", "-H", "Accept-Encoding: identity", base .. "/events?topic=t" })
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 5000))
    local id = publish(1)
    assert.is_true(C.wait(function() return plain.text():find("id: " .. id, 1, true) ~= nil end, 3000))
    assert.is_nil(plain.text():lower():find("content-encoding", 1, true))
    assert.truthy(plain.text():lower():find("vary: accept%-encoding"))
    assert.is_nil(app.hub:streams()[1]:stats().gzip_memory)
    plain.stop()
    app:close()
    start({})
    local c = C.connect(app.port)
    c:send(C.get("/events?topic=t", { "Accept-Encoding: gzip\r\n" }))
    assert.is_true(C.wait(function() return c.buf:find("\r\n\r\n", 1, true) ~= nil end, 3000))
    assert.is_nil(c.buf:lower():find("content-encoding", 1, true))
    assert.is_nil(c.buf:lower():find("vary", 1, true))
    c:close()
  end)

  -- gzip -t / gzip -dc on a file, without the sanitizer runtime
  local function gzip(args, path)
    local h = io.popen(("env -i PATH=%q gzip %s %q 2>&1; echo rc=$?"):format(os.getenv("PATH"), args, path))
    local out = h:read("a")
    h:close()
    return out:match("rc=(%d+)\n$") == "0", out:gsub("rc=%d+\n$", "")
  end

  -- curl writes the raw body (no --compressed) to a file; how is a function
  -- that ends the stream gracefully
  local function closed_body(how)
    local base = start({ compress = true })
    local path = os.tmpname()
    local client = curl({ "-sN", "-H", "Accept-Encoding: gzip", "-o", path, base .. "/events?topic=t" })
    assert.is_true(C.wait(function() return app.hub:connection_count() == 1 end, 5000))
    local ids = { publish(1), publish(2) }
    assert.is_true(C.wait(function()
      return app.hub:streams()[1] and app.hub:streams()[1]:stats().bytes_sent > 0
    end, 3000))
    C.sleep(30)
    how()
    assert.is_true(C.wait(function() return client.code ~= nil end, 5000), "curl did not end")
    client.stop()
    local ok, out = gzip("-t", path)
    local _, text = gzip("-dc", path)
    os.remove(path)
    return ok, out, text, ids
  end

  it("ends the gzip member (trailer, CRC and length) when a stream closes gracefully", function()
    local closes = {
      ["stream:close()"] = function() app.hub:streams()[1]:close() end,
      ["hub close"] = function() app:close(); app = nil end,
      ["disconnect_all"] = function() app:disconnect_all() end,
    }
    for what, how in pairs(closes) do
      local ok, out, text, ids = closed_body(how)
      assert.is_true(ok, what .. ": gzip -t: " .. out)
      for _, id in ipairs(ids) do
        assert.truthy(text:find(("event: tick\nid: %s\n"):format(id), 1, true), what .. ": " .. text)
      end
      if app then app:close() end
      app = nil
    end
  end)

  it("follows Accept-Encoding's rules", function()
    local yes = { "gzip", "GZIP", "deflate, gzip", "gzip;q=0.5", "x-gzip", "*", "br;q=1, *;q=0.1",
                  " gzip , br", "gzip; q=1.0" }
    local no = { "", "identity", "br", "gzip;q=0", "gzip; q=0.0", "*;q=0", "gzip;q=0, *", "deflate" }
    for _, v in ipairs(yes) do assert.is_true(response.accepts_gzip(v), v) end
    for _, v in ipairs(no) do assert.is_false(response.accepts_gzip(v), v) end
    assert.is_false(response.accepts_gzip(nil))
  end)

  it("checks the options, naming the field", function()
    local function writer() return true end
    util.raises_arg(1, "field 'compress': only a luv handle stream is compressed", sse.Stream.new,
      { writer = writer, compress = true })
    local tcp = uv.new_tcp()
    util.raises_arg(1, "field 'compress': 'window_bits' must be an integer in 9..15, got 8", sse.Stream.new,
      { handle = tcp, compress = { window_bits = 8 } })
    util.raises_arg(1, "field 'compress': 'level' must be an integer in 0..9, got 1.5", sse.Stream.new,
      { handle = tcp, compress = { level = 1.5 } })
    util.raises_arg(1, "field 'compress': unknown field 'window'", sse.Stream.new,
      { handle = tcp, compress = { window = 10 } })
    util.raises_arg(1, "field 'compress': true or a table {level, window_bits, mem_level} expected, got string",
      sse.Stream.new, { handle = tcp, compress = "gzip" })
    local s = sse.Stream.new({ handle = tcp, compress = { level = 1, window_bits = 9, mem_level = 1 } })
    assert.is_true(s:stats().gzip_memory < 16 * 1024, tostring(s:stats().gzip_memory)) -- the smallest settings
    s:close("eof")
    uv.run("nowait")
  end)
end)
