-- The Lua side of the interop suite (spec/interop/run.sh): builds the byte
-- streams that clients we did not write must read as we do, and records what
-- our own code yields for them.
--
--   lua5.4 spec/interop/gen.lua OUT.json [SEED]
--
-- OUT.json holds (byte strings hex-encoded, so any byte survives JSON):
--   encoded: streams of events written by sse.encode (edge cases, then random
--            corpora); for each, what core.parser yields fed whole, in 1-byte,
--            7-byte and random pieces, what the reference parser
--            (spec/helpers/ref_parser.lua) yields, and what sse.client yields
--            reading it over a real socket (chunked, 7-byte chunks);
--   raw:     byte streams sse.encode would refuse (bad UTF-8, a BOM, CR line
--            ends) with what core.parser and the reference parser yield;
--   utf8:    random byte strings with cut points and the text our parser
--            decodes from "data: " .. bytes (fed cut at those points);
--   heads:   responses (status line, headers, framing) and whether sse.client
--            accepts each (delivers its one event) or what it says.
-- (cjson writes an empty list as {}: the reader takes {} for []; a retry is
-- a decimal string, exact past 2^53.)
-- problems: disagreements found on the Lua side (our parser at different
--           chunkings, against the reference parser); run.sh fails on any.
local uv = require("luv")
local cjson = require("cjson")
local sse = require("sse")
local core = require("sse.core")
local ref = require("helpers.ref_parser")

local out_path = assert(arg[1], "usage: gen.lua OUT.json [SEED]")
local seed = tonumber(arg[2] or os.getenv("INTEROP_SEED") or "") or 20240917
math.randomseed(seed)
local rnd = math.random

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

-- events as plain tables with hex fields, in stream order
local function hex_events(evs)
  local t = {}
  for i, e in ipairs(evs) do t[i] = { type = hex(e.type), data = hex(e.data), id = hex(e.id) } end
  return t
end

-- Feed s to a fresh core.parser in pieces of `step` bytes (0: whole,
-- "rand": 1..64 at random). Returns events, last id, retry (or nil), err.
local function our_parse(s, step)
  local p = core.parser()
  local all, i = {}, 1
  while i <= #s do
    local n = step == 0 and #s or step == "rand" and rnd(64) or step
    local evs, err = p:feed(s:sub(i, i + n - 1))
    if not evs then return all, p:last_event_id(), p:retry(), err end
    for _, e in ipairs(evs) do all[#all + 1] = e end
    i = i + n
  end
  local id, retry = p:last_event_id(), p:retry()
  p:close()
  return all, id, retry
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i].type ~= b[i].type or a[i].data ~= b[i].data or a[i].id ~= b[i].id then return false end
  end
  return true
end

-- Our parser at every chunking and the reference parser must agree; returns
-- the record of the stream.
local function record(name, wire)
  local evs, id, retry, err = our_parse(wire, 0)
  if err then problem("%s: our parser failed: %s", name, err) end
  for _, step in ipairs({ 1, 7, "rand" }) do
    local e2, id2, r2, err2 = our_parse(wire, step)
    if err2 or not same(evs, e2) or id2 ~= id or r2 ~= retry then
      problem("%s: our parser in %s-byte pieces differs from whole", name, tostring(step))
    end
  end
  local rev, rid, rretry = ref.parse(wire)
  if rretry and rretry > 9007199254740991 then rretry = 9007199254740991 end
  if not same(evs, rev) or rid ~= id or rretry ~= retry then
    problem("%s: our parser and the reference parser differ", name)
  end
  return { name = name, wire = hex(wire), events = hex_events(evs), last_id = hex(id),
           retry = retry and ("%d"):format(retry) or cjson.null, _evs = evs }
end

-- ---------------------------------------------------------------------------
-- Event streams written by sse.encode

local LONG = ("0123456789abcdef"):rep(8192) -- a 128 KiB line
local edge = {
  { "one event", { { data = "hello" } } },
  { "empty data", { { data = "" }, { data = "after" } } },
  { "data that is one line end", { { data = "\n" }, { data = "\r\n" }, { data = "\r" } } },
  { "mixed line ends in data", { { data = "a\rb\r\nc\nd\r\r\n\ne" } } },
  { "trailing line end in data", { { data = "x\n" }, { data = "y\r\n" } } },
  { "leading spaces kept", { { data = "  two", event = " sp", id = " id" } } },
  { "colons and lookalikes", { { data = ":not a comment\ndata: inner\nid: 5\n\n" } } },
  { "unicode everywhere", { { data = "\195\169\226\130\172\240\159\152\128 \230\151\165\230\156\172",
                              event = "\195\188n\195\175", id = "\208\184\208\180-1" } } },
  { "a BOM inside data", { { data = "\239\187\191x" }, { data = "y\239\187\191" } } },
  { "NUL in data", { { data = "a\0b\0" } } },
  { "a 128 KiB line", { { data = LONG }, { data = "next" } } },
  { "a thousand lines", { { data = ("line\n"):rep(999) .. "last" } } },
  { "ids persist, an empty id resets", { { data = "a", id = "1" }, { data = "b" }, { data = "c", id = "" },
                                         { data = "d" }, { data = "e", id = 7 } } },
  { "retry", { { retry = 0, data = "r0" }, { retry = 2500, data = "r" }, { retry = 9007199254740991, data = "max" } } },
  { "comments", { { comment = "keep-alive" }, { comment = "two\nlines\r\nthree", data = "x" }, { comment = "" } } },
  { "event names", { { event = "message", data = "1" }, { event = "", data = "2" }, { event = "tick", data = "3" },
                     { event = "a:b c", data = "4" }, { data = "5" } } },
  { "fields only, no data", { { event = "nothing" }, { retry = 100 }, { comment = "c" }, { data = "then" } } },
}

local encoded = {}
for _, c in ipairs(edge) do
  local parts = {}
  for i, ev in ipairs(c[2]) do parts[i] = sse.encode(ev) end
  encoded[#encoded + 1] = record(c[1], table.concat(parts))
end

-- Random corpora: 100 events each, every field drawn from a pool of edge bits.
local pool = { "a", "b", " ", "  ", ":", "\n", "\r", "\r\n", "\n\n", "\195\169", "\226\130\172",
               "\240\159\152\128", "0", "9", "data: ", "id:", "\239\187\191", "\t", "x y" }
local function rstr(maxlen, one_line)
  local t = {}
  for i = 1, rnd(maxlen + 1) - 1 do
    local c = pool[rnd(#pool)]
    if one_line and c:find("[\r\n]") then c = "-" end
    t[i] = c
  end
  return table.concat(t)
end
for k = 1, 4 do
  local parts = {}
  for i = 1, 100 do
    local ev = {}
    if rnd(10) > 1 then ev.data = rstr(20) end
    if rnd(3) == 1 then ev.event = rstr(6, true) end
    -- an id only on blocks with data: eventsource-parser drops data-less
    -- blocks whole, id included (the "id-only block" divergence, checked
    -- separately by the suite)
    if ev.data and rnd(2) == 1 then ev.id = rstr(5, true) end
    if rnd(8) == 1 then ev.retry = rnd(100000) - 1 end
    if rnd(6) == 1 then ev.comment = rstr(8) end
    if rnd(40) == 1 then ev.data = (ev.data or "") .. LONG:sub(1, rnd(20000)) end
    parts[i] = sse.encode(ev)
  end
  encoded[#encoded + 1] = record("random corpus " .. k, table.concat(parts))
end
-- The id-only block: WHATWG keeps its id (Chromium does); eventsource-parser
-- drops the block, id included. Reported, never a failure of ours.
local idonly = record("an id-only block", sse.encode({ data = "a", id = "1" }) .. sse.encode({ id = "2" })
  .. sse.encode({ data = "b" }))
idonly.divergence = "id-only block"
encoded[#encoded + 1] = idonly

-- ---------------------------------------------------------------------------
-- Raw byte streams (what a foreign server may send): bad UTF-8, a BOM, CR

local BOM = "\239\187\191"
local bad_bits = { "\128", "\191", "\192\128", "\193", "\194", "\195\169", "\224\128\128", "\224\160",
                   "\237\160\128", "\237\159\191", "\240\159\152", "\240\159\152\128", "\244\144\128\128",
                   "\244\143\191\191", "\245", "\255", "a", " ", ":", "\0" }
local function rbad(maxlen)
  local t = {}
  for i = 1, rnd(maxlen + 1) - 1 do t[i] = bad_bits[rnd(#bad_bits)] end
  return table.concat(t)
end
local raw = {}
for k = 1, 24 do
  local eol = ({ "\n", "\r\n", "\n", "\r" })[k % 4 + 1]
  local t = { (k % 3 == 0) and BOM or "", (k % 6 == 0) and BOM or "" }
  for _ = 1, rnd(8) do
    if rnd(3) == 1 then t[#t + 1] = "event: " .. rbad(4) .. eol end
    if rnd(3) == 1 then t[#t + 1] = "id: " .. rbad(4) .. eol end
    if rnd(5) == 1 then t[#t + 1] = rbad(3) .. "data: x" .. eol end -- a field name with bad bytes
    for _ = 1, rnd(3) do t[#t + 1] = "data: " .. rbad(12) .. eol end
    t[#t + 1] = eol
  end
  -- bare CR streams end with one more line end: eventsource-parser holds a
  -- final CR back until the next byte (it cannot know whether LF follows)
  t[#t + 1] = ":end" .. eol
  raw[#raw + 1] = record("raw stream " .. k .. " (" .. (eol == "\r" and "CR" or eol == "\n" and "LF" or "CRLF") .. ")",
    table.concat(t))
end

-- ---------------------------------------------------------------------------
-- UTF-8 decoding at random cut points

local utf8_cases = {}
for _ = 1, 800 do
  local t = {}
  for i = 1, rnd(48) - 1 do
    local r = rnd(6)
    if r == 1 then t[i] = bad_bits[rnd(#bad_bits)]
    elseif r == 2 then t[i] = string.char(0x80 + rnd(64) - 1)
    elseif r == 3 then t[i] = string.char(0xC0 + rnd(64) - 1)
    else
      local b = rnd(256) - 1
      if b == 10 or b == 13 then b = 32 end
      t[i] = string.char(b)
    end
  end
  local bytes = table.concat(t):gsub("[\r\n]", " ")
  local cuts = {}
  for i = 1, rnd(4) - 1 do cuts[i] = rnd(#bytes + 1) - 1 end
  table.sort(cuts)
  -- our parser, fed "data: " .. bytes .. "\n\n" cut at the same points
  local wire, p, got, prev = "data: " .. bytes .. "\n\n", core.parser(), {}, 0
  local points = {}
  for i, c in ipairs(cuts) do points[i] = c + 6 end
  points[#points + 1] = #wire
  for _, c in ipairs(points) do
    for _, e in ipairs(assert(p:feed(wire:sub(prev + 1, c)))) do got[#got + 1] = e.data end
    prev = c
  end
  p:close()
  if #got ~= 1 then problem("utf8 case %s: %d events", hex(bytes), #got) end
  if got[1] ~= ref.utf8_decode(bytes) then problem("utf8 case %s: differs from the reference decoder", hex(bytes)) end
  utf8_cases[#utf8_cases + 1] = { bytes = hex(bytes), cuts = cuts, text = hex(got[1] or "") }
end

-- ---------------------------------------------------------------------------
-- Response heads a browser accepts or refuses; sse.client must agree

local EV = "data: ok\n\n"
local CHUNKED_EV = ("%x\r\n%s\r\n0\r\n\r\n"):format(#EV, EV)
local function head(status, lines, body)
  return status .. "\r\n" .. table.concat(lines, "\r\n") .. (#lines > 0 and "\r\n" or "") .. "\r\n" .. (body or EV)
end
local CT = "Content-Type: text/event-stream"
local heads = {
  { "plain", head("HTTP/1.1 200 OK", { CT }) },
  { "HTTP/1.0", head("HTTP/1.0 200 OK", { CT }) },
  { "no reason phrase", head("HTTP/1.1 200", { CT }) },
  { "bare LF line ends", "HTTP/1.1 200 OK\n" .. CT .. "\n\n" .. EV },
  { "interim 100 and 103 first", head("HTTP/1.1 100 Continue", {}, head("HTTP/1.1 103 Early Hints",
    { "Link: </x>" }, head("HTTP/1.1 200 OK", { CT }))) },
  { "chunked", head("HTTP/1.1 200 OK", { CT, "Transfer-Encoding: chunked" }, CHUNKED_EV) },
  { "Content-Length", head("HTTP/1.1 200 OK", { CT, "Content-Length: " .. #EV }) },
  { "media type parameters and spaces",
    head("HTTP/1.1 200 OK", { "content-type:   Text/Event-Stream ;  charset=utf-8" }) },
  { "media type with an empty parameter", head("HTTP/1.1 200 OK", { "Content-Type: text/event-stream;" }) },
  { "two Content-Types, the right one last", head("HTTP/1.1 200 OK", { "Content-Type: text/plain", CT }) },
  { "two Content-Types, the right one first", head("HTTP/1.1 200 OK", { CT, "Content-Type: text/plain" }) },
  { "a list of media types", head("HTTP/1.1 200 OK", { "Content-Type: text/plain, text/event-stream" }) },
  { "a wildcard after the type", head("HTTP/1.1 200 OK", { "Content-Type: text/event-stream, */*" }) },
  { "a quoted comma in a parameter", head("HTTP/1.1 200 OK", { 'Content-Type: text/event-stream;x="a,text/plain"' }) },
  { "no Content-Type", head("HTTP/1.1 200 OK", {}) },
  { "text/plain", head("HTTP/1.1 200 OK", { "Content-Type: text/plain" }) },
  { "a space inside the media type", head("HTTP/1.1 200 OK", { "Content-Type: text /event-stream" }) },
  { "status 201", head("HTTP/1.1 201 Created", { CT }) },
  { "status 204", head("HTTP/1.1 204 No Content", { CT }, "") },
  { "status 500", head("HTTP/1.1 500 Oops", { CT }) },
}

-- ---------------------------------------------------------------------------
-- sse.client reads every encoded and raw stream over a real socket: a luv
-- server answers GET /s/<n> with the stream, chunked in 7-byte chunks, then
-- the last chunk; each client closes itself at the end of its body.

local streams = {}
for _, c in ipairs(encoded) do streams[#streams + 1] = c end
for _, c in ipairs(raw) do streams[#streams + 1] = c end
local wires = {}
for i, c in ipairs(streams) do wires[i] = c.wire:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end) end

local function chunked(s)
  local t = {}
  for i = 1, #s, 7 do
    local piece = s:sub(i, i + 6)
    t[#t + 1] = ("%x\r\n%s\r\n"):format(#piece, piece)
  end
  t[#t + 1] = "0\r\n\r\n"
  return table.concat(t)
end

local srv = uv.new_tcp()
assert(srv:bind("127.0.0.1", 0))
local port = srv:getsockname().port
local socks = {}
srv:listen(64, function(err)
  assert(not err, err)
  local sock = uv.new_tcp()
  socks[#socks + 1] = sock
  srv:accept(sock)
  local buf = ""
  sock:read_start(function(rerr, chunk)
    if rerr or not chunk then
      if not sock:is_closing() then sock:close() end
      return
    end
    buf = buf .. chunk
    if not buf:find("\r\n\r\n", 1, true) then return end
    local kind, n = buf:match("^GET /(%a)/(%d+) ")
    n = tonumber(n)
    buf = ""
    if kind == "h" then
      sock:write(heads[n][2], function() sock:shutdown() end)
      return
    end
    sock:write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock:write(chunked(wires[n] or ""))
  end)
end)

local pending = #streams + #heads
local results, head_results = {}, {}
local function finished()
  pending = pending - 1
  if pending == 0 then
    srv:close()
    for _, s in ipairs(socks) do if not s:is_closing() then s:close() end end
  end
end
for i = 1, #heads do
  local r, cl = { events = {} }, nil
  head_results[i] = r
  cl = sse.client.connect(("http://127.0.0.1:%d/h/%d"):format(port, i), {
    retry = 60000,
    on_event = function(ev) r.events[#r.events + 1] = ev.data end,
    on_error = function(e, info)
      if r.err then return end
      r.err, r.closed = e, info.closed
      if cl:ready_state() ~= "closed" then cl:close() end
      finished()
    end,
  })
end
for i = 1, #streams do
  local got, cl = {}, nil
  results[i] = got
  cl = sse.client.connect(("http://127.0.0.1:%d/s/%d"):format(port, i), {
    retry = 60000,
    on_event = function(ev) got[#got + 1] = ev end,
    on_error = function(e)
      if cl:ready_state() ~= "closed" then cl:close() end
      results[i].err = e
      finished()
    end,
  })
end
local guard = uv.new_timer()
guard:start(20000, 0, function()
  problem("sse.client: %d streams unfinished after 20 s", pending)
  uv.walk(function(h) if not h:is_closing() then h:close() end end)
end)
guard:unref()
uv.run()
if not guard:is_closing() then guard:close() end
uv.run()

for i, c in ipairs(streams) do
  local got = results[i]
  if got.err ~= "end of response body" then
    problem("%s: sse.client ended with %q, not the end of the body", c.name, tostring(got.err))
  end
  if not same(got, c._evs) then problem("%s: sse.client and core.parser differ", c.name) end
  c._evs = nil
end

local head_cases = {}
for i, h in ipairs(heads) do
  local r = head_results[i]
  head_cases[i] = { name = h[1], wire = hex(h[2]), accepted = r.events[1] == "ok",
                    client_error = r.err or cjson.null, closed = r.closed or false }
end

local f = assert(io.open(out_path, "wb"))
f:write(cjson.encode({ seed = seed, encoded = encoded, raw = raw, utf8 = utf8_cases, heads = head_cases,
                       problems = problems }))
f:close()
io.write(("gen: seed %d, %d encoded streams, %d raw streams, %d utf8 strings, %d heads, %d problems\n"):format(
  seed, #encoded, #raw, #utf8_cases, #heads, #problems))
for i = 1, math.min(#problems, 10) do io.write("gen: PROBLEM ", problems[i], "\n") end
if #problems > 10 then io.write(("gen: ... and %d more problems\n"):format(#problems - 10)) end
