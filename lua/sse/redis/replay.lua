--- sse.redis.replay: what a reconnecting stream missed, read from Redis
-- page by page (backend:replay_async, answered with hub:resume), and the
-- waits that hold an answer until the follower has reached the point the
-- read ended at, so the live feed takes over exactly there. Installed on
-- sse.redis.Backend by sse.redis.backend.
local Follower = require("sse.redis.follower")

local M = {}

-- "<epoch>-<base36 seq>" -> epoch, seq; "" , 0 when malformed.
local function parse_id(id)
  local e, s = id:match("^([%w_]+)%-([0-9a-z]+)$")
  if not e or #e > 32 or #s > 11 or (#s > 1 and s:sub(1, 1) == "0") then return "", 0 end
  return e, tonumber(s, 36)
end

--- install(Backend): adds replay_async, parse_id and the waits (_when, ...).
function M.install(Backend)
  Backend.parse_id = parse_id

  -- Reads one page after (epoch, seq); bound = {epoch, seq} or nil; topics a
  -- list or nil (every topic). cb(r) with r = {epoch, head, oldest, gap,
  -- upto, more, seqs, frames, topics} (topics[i]: frames[i]'s topic, nil for
  -- none) or cb(nil, err).
  function Backend:_read(epoch, seq, bound, topics, cb)
    local argv = { epoch or "", seq or 0, self.max_len, math.floor(self.ttl * 1000),
                   bound and bound[1] or "", bound and bound[2] or 0, self.page }
    if topics then
      argv[8] = #topics
      for i = 1, #topics do argv[8 + i] = topics[i] end
    else
      argv[8] = "*"
    end
    local ok, err = self:_eval("read", { self.keys.meta, self.keys.log }, argv, function(r, rerr)
      if rerr or type(r) ~= "table" then return cb(nil, rerr or "bad reply") end
      local out = { epoch = r[1] or nil, head = r[2], oldest = r[3], gap = r[4], upto = r[5],
                    more = r[6] == 1, seqs = {}, frames = {}, topics = {} }
      for i = 7, #r, 3 do
        local n = #out.seqs + 1
        out.seqs[n], out.frames[n], out.topics[n] = r[i], r[i + 1], r[i + 2] or nil
      end
      cb(out)
    end)
    if not ok then cb(nil, err) end
  end


  --- backend:replay_async(hub, stream, last_id, topics): reads what stream
  -- missed after last_id for topics and answers with hub:resume (CORE.md).
  -- The read is bounded by the follower's position, and the answer waits
  -- until the follower has reached the reader's own position, so the live
  -- feed takes over exactly where the replay ends.
  function Backend:replay_async(hub, stream, last_id, topics)
    local f = self.follower
    if not f.epoch and not self.closed then
      -- just started: the read is bounded by where the follower starts
      return self:_when(function() return f.epoch ~= nil end, function()
        if f.epoch then return self:replay_async(hub, stream, last_id, topics) end
        self:_defer(function() hub:resume(stream, nil, "redis: not connected") end)
      end)
    end
    local epoch, seq = parse_id(last_id)
    local bound = f.epoch and { f.epoch, f.pos } or nil
    local frames, tops, gap, first_gap = {}, {}, nil, nil
    local function fail(err)
      -- answered later, never from inside replay_async
      self:_defer(function() hub:resume(stream, nil, "redis: " .. tostring(err)) end)
    end
    local function page(e, s)
      self:_read(e, s, bound, topics or {}, function(r, err)
        if err then return fail(err) end
        if not r.epoch then
          -- an empty Redis: nothing to send; an id is then a gap
          return hub:resume(stream, {}, 0, { oldest = nil, latest = nil })
        end
        if r.gap ~= "" and not first_gap then
          first_gap = r.gap
          gap = { oldest = r.oldest > 0 and Follower.id_of(r.epoch, r.oldest) or nil,
                  latest = Follower.id_of(r.epoch, r.head) }
        end
        for i = 1, #r.frames do
          frames[#frames + 1] = r.frames[i]
          tops[#frames] = r.topics[i] or false -- envelope streams show it
        end
        if r.more then return page(r.epoch, r.upto) end
        self:_when_applied(r.epoch, r.upto, function()
          hub:resume(stream, frames, r.upto, gap, tops)
        end)
      end)
    end
    page(epoch, seq)
  end

  -- Runs fn at the next loop turn.
  function Backend:_defer(fn)
    local t
    t = self.env.timer(function()
      t:close()
      fn()
    end)
    t:start(0)
  end

  -- Runs fn once ready() holds (checked as the follower applies events and at
  -- each heartbeat), or after `timeout`: a follower that lags that long is
  -- not waited for.
  function Backend:_when(ready, fn)
    if ready() then return fn() end
    local w = self.follower.waiting
    w[#w + 1] = { ready = ready, fn = fn, at = self.env.now() }
  end

  -- fn once the follower has applied (epoch, seq).
  function Backend:_when_applied(epoch, seq, fn)
    local f = self.follower
    return self:_when(function() return f.epoch ~= epoch or f.pos >= seq end, fn)
  end

  -- Answers the waits that are ready or timed out.
  function Backend:_progress()
    local f = self.follower
    local list = f.waiting
    if #list == 0 then return end
    f.waiting = {} -- an answer may add waits (or get here again) meanwhile
    local now = self.env.now()
    for _, w in ipairs(list) do
      if self.closed or w.ready() or now - w.at > self.timeout * 1000 then
        local ok, err = pcall(w.fn)
        if not ok then self:_warn("replay answer failed: " .. tostring(err)) end
      else
        f.waiting[#f.waiting + 1] = w
      end
    end
  end
end

return M
