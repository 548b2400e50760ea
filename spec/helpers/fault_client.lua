-- A client process for spec/fault_spec.lua (run by helpers.fault_proc; the
-- spec reads its stdout and kills it by PID). Two modes:
--
--   fault_client.lua subscribe PORT N EVENTS TOPIC SECONDS
--     N sse.client subscribers of /events?topic=TOPIC. Each expects the
--     event data "1", "2", ... "EVENTS" exactly once and in order, across
--     every reconnection (the client sends Last-Event-ID itself). Prints
--     "open K" (K subscribers connected once) and "first K" (K subscribers
--     got their first event) as they change, then one line "result <json>"
--     when all N have every event, or when SECONDS pass, and exits.
--
--   fault_client.lua hold PORT N PATH
--     N raw connections that send "GET PATH" with a 4 KB receive buffer,
--     print "ready N" once every one got a 200 head, then read and discard
--     whatever comes (the spec stops or kills this process).
local uv = require("luv")

local mode, port = arg[1], tonumber(arg[2])
local n = tonumber(arg[3])

local function out(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

-- luv's default handler exits on an error in a callback: report it first.
local function guarded(fn)
  return function(...)
    local ok, err = pcall(fn, ...)
    if not ok then
      out("error " .. tostring(err):gsub("\n", " "))
      os.exit(3)
    end
  end
end

if mode == "subscribe" then
  local client = require("sse.client")
  local cjson = require("cjson")
  local total, topic, seconds = tonumber(arg[4]), arg[5], tonumber(arg[6])
  local url = ("http://127.0.0.1:%d/events?topic=%s"):format(port, topic)
  local subs, done, opened, first = {}, 0, 0, 0
  local stats = { dups = 0, lost = 0, gaps = 0, foreign = 0, opens = 0, errors = 0, unopened = 0,
                  reasons = {} }
  local sample -- the first problem seen, for the report

  local function finish(complete)
    local min_next = math.huge
    for _, s in ipairs(subs) do
      min_next = math.min(min_next, s.next)
      s.client:close()
    end
    stats.clients, stats.complete = n, done
    stats.all_complete = complete
    stats.min_received = min_next - 1
    stats.sample = sample
    out("result " .. cjson.encode(stats))
    uv.stop()
  end

  for i = 1, n do
    local s = { next = 1, opens = 0 }
    subs[i] = s
    s.client = client.connect(url, {
      retry = 10 + (i % 7) * 5, -- reconnections spread over 10..40 ms
      on_open = function()
        s.is_open = true
        s.opens = s.opens + 1
        stats.opens = stats.opens + 1
        if s.opens == 1 then opened = opened + 1 end
      end,
      on_error = function(err, info)
        stats.errors = stats.errors + 1
        -- a connection that ended before its response head (the server
        -- closed the stream in the loop turn that opened it)
        if not s.is_open then stats.unopened = stats.unopened + 1 end
        s.is_open = false
        local why = tostring(err):gsub("^%u+: ", "") .. (info.closed and " (closed)" or "")
        stats.reasons[why] = (stats.reasons[why] or 0) + 1
      end,
      on_event = function(ev)
        if ev.type == "sse-join" then return end -- the join position, not an event
        if ev.type == "sse-gap" then
          stats.gaps = stats.gaps + 1
          sample = sample or ("client %d: gap event %s"):format(i, ev.data)
          return
        end
        local k = tonumber(ev.data)
        if k == s.next then
          s.next = k + 1
          if k == 1 then first = first + 1 end
          if k == total then
            done = done + 1
            if done == n then finish(true) end
          end
        elseif not k then
          stats.foreign = stats.foreign + 1
          sample = sample or ("client %d: unexpected data %q"):format(i, ev.data:sub(1, 40))
        elseif k < s.next then
          stats.dups = stats.dups + 1
          sample = sample or ("client %d: %d again after %d"):format(i, k, s.next - 1)
        else
          stats.lost = stats.lost + (k - s.next)
          sample = sample or ("client %d: %d after %d"):format(i, k, s.next - 1)
          s.next = k + 1
        end
      end,
    })
  end

  local report, last_open, last_first = uv.new_timer(), -1, -1
  report:start(20, 20, guarded(function()
    if opened ~= last_open then
      last_open = opened
      out("open " .. opened)
    end
    if first ~= last_first then
      last_first = first
      out("first " .. first)
    end
  end))
  report:unref()
  local deadline = uv.new_timer()
  deadline:start(math.floor(seconds * 1000), 0, guarded(function() finish(false) end))
  deadline:unref()
  uv.run()
  os.exit(0)
elseif mode == "hold" then
  local path = arg[4]
  local ready = 0
  for _ = 1, n do
    local tcp = uv.new_tcp()
    tcp:recv_buffer_size(4096)
    local head = ""
    tcp:connect("127.0.0.1", port, guarded(function(err)
      if err then
        out("error connect " .. err)
        return
      end
      tcp:write("GET " .. path .. " HTTP/1.1\r\nHost: fault\r\nAccept: text/event-stream\r\n\r\n")
      tcp:read_start(guarded(function(rerr, data)
        if rerr or not data then
          if not tcp:is_closing() then tcp:close() end
          return
        end
        if head then
          head = head .. data
          if head:find("\r\n\r\n", 1, true) then
            if not head:find("^HTTP/1%.1 200 ") then out("error head " .. head:sub(1, 40)) end
            head = nil
            ready = ready + 1
            if ready == n then out("ready " .. n) end
          end
        end
      end))
    end))
  end
  uv.run()
  os.exit(0)
else
  out("error usage: fault_client.lua subscribe|hold ...")
  os.exit(2)
end
