local sse = require("sse")
local util = require("helpers.util")

describe("sse.Sse builder", function()
  it("builds a body in order", function()
    local body = sse.Sse.new()
      :retry(2000)
      :comment("start")
      :event("token", "Hel")
      :data("lo")
      :push(sse.Event.data("!"):id("3"))
      :push({ event = "done", data = "" })
      :to_string()
    assert.are.equal("retry: 2000\n\n: start\n\nevent: token\ndata: Hel\n\ndata: lo\n\n"
      .. "id: 3\ndata: !\n\nevent: done\ndata: \n\n", body)
  end)

  it("returns a response table with the event-stream headers", function()
    local res = sse.Sse.new():data("x"):into_response()
    assert.are.same({
      status = 200,
      headers = {
        ["Content-Type"] = "text/event-stream; charset=utf-8",
        ["Cache-Control"] = "no-cache",
        ["X-Accel-Buffering"] = "no",
      },
      body = "data: x\n\n",
    }, res)
  end)

  it("keeps what was accepted when a bad event is added", function()
    local b = sse.Sse.new():data("one")
    util.raises_arg(1, "field 'id' must not contain a NUL byte (byte 1)", b.push, b, { id = "\0" })
    util.raises_arg(1, "field 'event' must not contain a line break (byte 2)", b.event, b, "a\nb", "x")
    util.raises_arg(2, "string expected, got nil", b.event, b, "a")
    util.raises_arg(1, "string expected, got number", b.data, b, 5)
    util.raises_arg(1, "field 'retry' must be an integer from 0 to 9007199254740991", b.retry, b, -1)
    util.raises_arg(1, "integer expected, got string", b.retry, b, "5")
    util.raises_arg(1, "unknown event field 'date'", b.push, b, { date = "x" })
    util.raises_arg(1, "field 'data' is not valid UTF-8 (byte 1)", b.data, b, "\xff")
    assert.are.equal("data: one\n\n", b:to_string())
    assert.are.equal(1, b:len())
  end)

  it("raises on a bad self", function()
    local ok, err = pcall(sse.Sse.data, {}, "x")
    assert.is_false(ok)
    assert.truthy(err:find("calling 'data' on bad self", 1, true))
  end)

  describe("sse.event_stream", function()
    it("is the one-call form", function()
      local res = sse.event_stream({ { data = "a" }, sse.Event.data("b"):event_type("t") })
      assert.are.equal(200, res.status)
      assert.are.equal("text/event-stream; charset=utf-8", res.headers["Content-Type"])
      assert.are.equal("data: a\n\nevent: t\ndata: b\n\n", res.body)
    end)
    it("names the bad event", function()
      util.raises_arg(1, "event 2: field 'retry' must be an integer from 0 to 9007199254740991",
        sse.event_stream, { { data = "a" }, { retry = -3 } })
      util.raises_arg(1, "table expected, got nil", sse.event_stream)
    end)
  end)
end)
