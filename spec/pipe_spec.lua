-- stream:pipe and stream:on_drain (issue 14): a producer faster than its
-- reader is paused by backpressure -- with a client that stops reading, the
-- outbox stays within the high-water mark (plus one chunk) and the producer
-- stops being asked -- and everything arrives, in order, once it reads.
local uv = require("luv")
local sse = require("sse")
local C = require("helpers.http_client")
local util = require("helpers.util")

-- A server whose GET /pipe pipes make_producer()'s chunks to the client.
local function serve(make_producer, opts)
  local app = sse.http.new({ port = 0, log = function() end })
  local state = {}
  app:get("/pipe", function(_, res)
    local stream = res:sse({ outbox_limit = 8 * 1024 * 1024 })
    state.stream = stream
    opts = opts or {}
    opts.on_done = function(err) state.done, state.err = true, err end
    stream:pipe(make_producer(state), opts)
  end)
  app.port = assert(app:listen())
  return app, state
end

describe("stream:pipe", function()
  it("keeps the outbox bounded for a reader that stops, and delivers everything in order once it reads", function()
    local CHUNK, N = 1000, 25000 -- 25 MB in all, far past what the socket buffers hold
    local app, state = serve(function(st)
      st.produced = 0
      return function()
        if st.produced == N then return nil end
        st.produced = st.produced + 1
        return ("%06d"):format(st.produced) .. ("x"):rep(CHUNK - 6)
      end
    end, { high = 32 * 1024, low = 8 * 1024 })
    local c = C.connect(app.port)
    c:pause()
    c:send(C.get("/pipe"))
    assert.is_true(C.wait(function() return state.stream ~= nil end, 3000))
    -- while the client reads nothing: sample the outbox every loop turn
    local max_queued, samples = 0, 0
    local probe = uv.new_prepare()
    probe:start(function()
      samples = samples + 1
      local q = state.stream:queued_bytes()
      if q > max_queued then max_queued = q end
    end)
    C.sleep(600)
    local produced_paused = state.produced
    C.sleep(300)
    assert.are.equal(produced_paused, state.produced) -- the producer is not asked while paused
    assert.is_true(state.produced < N, "everything was produced: the test proves nothing")
    assert.is_true(max_queued <= 32 * 1024 + CHUNK + 64, "outbox reached " .. max_queued)
    assert.is_true(samples > 0)
    -- the client reads: the pipe resumes and ends; the stream closes
    c:resume()
    assert.is_true(C.wait(function() return c.eof end, 20000), "stream did not end")
    probe:stop()
    probe:close()
    assert.are.equal(N, state.produced)
    assert.is_true(state.done)
    assert.is_nil(state.err)
    assert.is_true(max_queued <= 32 * 1024 + CHUNK + 64, "outbox reached " .. max_queued)
    local body = c.buf
    local n = 0
    for seq in body:gmatch("\ndata: (%d%d%d%d%d%d)x") do
      n = n + 1
      assert.are.equal(n, tonumber(seq))
    end
    assert.are.equal(N, n)
    c:close()
    app:close()
    C.sleep(20)
  end)

  it("pipes a coroutine's yields, tables as events, and reports a producer's error", function()
    local app, state = serve(function()
      return coroutine.create(function()
        coroutine.yield("one")
        coroutine.yield({ event = "two", data = "2" })
        error("boom", 0)
      end)
    end)
    local c = C.connect(app.port)
    c:send(C.get("/pipe"))
    assert.is_true(C.wait(function() return state.done end, 3000))
    assert.are.equal("boom", state.err)
    assert.is_true(c:wait_closed(3000))
    assert.truthy(c.buf:find("data: one\n\nevent: two\ndata: 2\n\n", 1, true), c.buf)
    local reason
    state.stream:on_close(function(r) reason = r end) -- closed already: runs at once
    assert.are.equal("pipe error", reason)
    app:close()
    C.sleep(20)
  end)

  it("stops when the client goes away", function()
    local app, state = serve(function(st)
      st.produced = 0
      return function()
        st.produced = st.produced + 1
        return ("y"):rep(4000)
      end
    end, { high = 16 * 1024, low = 4 * 1024 })
    local c = C.connect(app.port)
    c:send(C.get("/pipe"))
    assert.is_true(C.wait(function() return (state.produced or 0) > 10 end, 3000))
    c:close()
    assert.is_true(C.wait(function() return state.done end, 5000))
    assert.are.equal("closed", state.err)
    app:close()
    C.sleep(20)
  end)

  it("checks its arguments", function()
    local s = sse.Stream.new({ writer = function() return true end })
    util.raises_arg(1, "function or coroutine expected, got string", s.pipe, s, "x")
    util.raises_arg(2, "unknown option 'hi'", s.pipe, s, function() end, { hi = 1 })
    util.raises_arg(2, "field 'low' must not exceed 'high'", s.pipe, s, function() end, { high = 1, low = 2 })
    util.raises_arg(1, "function expected, got nil", s.on_drain, s)
    util.raises_arg(2, "non-negative number of bytes expected, got -1", s.on_drain, s, function() end, -1)
    s:close()
  end)
end)

-- A stream whose client does not read (paused), its outbox filled to 256
-- KiB once the socket is full (the kernel takes megabytes first): app, the
-- client, the stream.
local function stalled_stream()
  local app = sse.http.new({ port = 0, log = function() end })
  local stream
  app:get("/s", function(_, res)
    stream = res:sse({ outbox_limit = 16 * 1024 * 1024 })
    local n = 0
    while stream:queued_bytes() < 256 * 1024 and n < 1500 do
      stream:send_data(("z"):rep(10000))
      n = n + 1
    end
  end)
  app.port = assert(app:listen())
  local c = C.connect(app.port)
  c:pause()
  c:send(C.get("/s"))
  assert.is_true(C.wait(function() return stream ~= nil end, 3000))
  C.sleep(100)
  return app, c, stream
end

describe("stream:on_drain", function()
  it("calls back once the client has read the outbox down to the mark", function()
    local drained
    local app, c, stream = stalled_stream()
    assert.is_true(stream:queued_bytes() > 64 * 1024)
    stream:on_drain(function(s) drained = s:queued_bytes() end, 1024)
    C.sleep(300)
    assert.is_nil(drained) -- nobody read
    c:resume()
    assert.is_true(C.wait(function() return drained ~= nil end, 10000))
    assert.is_true(drained <= 1024)
    c:close()
    app:close()
    C.sleep(20)
  end)

  it("is told of the drain by the C core's flush: nothing polls a waiting stream", function()
    local drained, closed_seen
    local app, c, stream = stalled_stream()
    -- count what Lua asks of the stream while it waits (a polling watcher
    -- reads queued_bytes or is_closed every loop turn)
    local methods = getmetatable(stream).__index
    local calls = 0
    local qb, ic = methods.queued_bytes, methods.is_closed
    -- (this stream's calls only: another test's pipe may still run)
    methods.queued_bytes = function(s, ...) if s == stream then calls = calls + 1 end return qb(s, ...) end
    methods.is_closed = function(s, ...) if s == stream then calls = calls + 1 end return ic(s, ...) end
    local ok, err = pcall(function()
      stream:on_drain(function(s) drained = qb(s) end, 1024)
      local turns = 0
      local t = uv.new_timer() -- the loop turns every millisecond meanwhile
      t:start(1, 1, function() turns = turns + 1 end)
      C.sleep(300)
      assert.is_nil(drained)
      assert.is_true(turns > 50, "the loop did not turn: " .. turns)
      assert.are.equal(0, calls)
      c:resume()
      assert.is_true(C.wait(function() return drained ~= nil end, 10000))
      t:stop()
      t:close()
      assert.is_true(drained <= 1024)
      -- a stream that closes while waited for: its waiters are called
      stream:send_data("more")
      c:pause()
      for _ = 1, 200 do stream:send_data(("z"):rep(10000)) end
      stream:on_drain(function(s) closed_seen = ic(s) end, 0)
      stream:close("gone")
      assert.is_true(C.wait(function() return closed_seen ~= nil end, 3000))
      assert.is_true(closed_seen)
    end)
    methods.queued_bytes, methods.is_closed = qb, ic
    c:close()
    app:close()
    C.sleep(20)
    assert(ok, err)
  end)
end)
