--- sse.hub.attach: how a stream joins a hub with what it missed -- attach
-- (register, subscribe, replay, then live) and resume (the answer of an
-- asynchronous replay, docs/CORE.md 3). Installed on sse.Hub by sse.hub.
--
-- With the in-memory ring the C core does all of it in one call (replay by
-- frame reference); another replayer's frames are handed to the core in
-- one piece, ahead of the live frames that waited meanwhile.
local core = require("sse.core")
local check = require("sse.hub.check")

local argerror, is_async, RING_MT = check.argerror, check.is_async, check.RING_MT
local check_stream = check.stream

local NO_OPTS = {} -- read only

local M = {}

--- install(Hub): adds attach and resume to sse.Hub.
function M.install(Hub)
  local check_self = check.self_of(Hub)

  --- hub:attach(stream, {topics =, last_event_id =, envelope =}) -> replayed count [, "gap"]
  -- Registers and subscribes the stream, sends what it missed since
  -- last_event_id (default: the stream's own), then it is live: nothing is
  -- lost or sent twice between the replay and the live feed. When the id is
  -- outside the replay window the stream first gets the sse-gap event.
  -- envelope = true (default: the hub's envelope option): every event from
  -- here on, the join and gap events too, comes as `event: sse` with a JSON
  -- envelope of its topic, type and data (README, "Envelope mode").
  function Hub:attach(stream, opts)
    check_self(self, "attach")
    opts = opts or NO_OPTS
    if type(opts) ~= "table" then argerror(2, "attach", "table expected, got " .. type(opts)) end
    local r = self._replayer
    local ring = r ~= nil and getmetatable(r) == RING_MT
    local hook = self.on_subscribe
    local envelope = opts.envelope
    if envelope ~= nil and type(envelope) ~= "boolean" then
      argerror(2, "attach", "field 'envelope': boolean expected, got " .. type(envelope))
    end
    if envelope == nil then envelope = self._envelope end
    if ring and not hook then
      -- one C call: register, subscribe, replay by frame reference (or the
      -- join event), live; every argument checked there
      return self._core:attach(stream, opts.topics, opts.last_event_id, r, "attach", envelope)
    end
    check_stream(stream, 1, "attach")
    local topics = opts.topics
    if topics ~= nil then
      if type(topics) ~= "table" then argerror(2, "attach", "field 'topics': table expected, got " .. type(topics)) end
      for i = 1, #topics do
        if type(topics[i]) ~= "string" then
          argerror(2, "attach", ("field 'topics': topics[%d] must be a string, got %s"):format(i, type(topics[i])))
        end
      end
    end
    local last_id = opts.last_event_id
    if last_id == nil then last_id = stream:last_event_id() end
    if last_id ~= nil and type(last_id) ~= "string" then
      argerror(2, "attach", "field 'last_event_id': string expected, got " .. type(last_id))
    end
    local ok, err = self._core:add(stream, "attach")
    if not ok then return nil, err end
    if envelope then stream:_set_envelope(true) end
    local joined
    if hook then
      joined = {}
      for i = 1, #(topics or {}) do
        if self._core:subscribe(stream, topics[i]) then joined[#joined + 1] = topics[i] end
      end
    elseif not ring then
      for i = 1, #(topics or {}) do self._core:subscribe(stream, topics[i]) end
    end
    -- on_subscribe runs once the stream is set up (after its replay, or with
    -- the replay pending): an event it publishes reaches the stream after the
    -- replay, never before
    local count, state = self:_replay(stream, last_id, topics)
    if hook then
      for _, t in ipairs(joined) do self:_notify(hook, stream, t) end
    end
    return count, state
  end

  -- The replay part of attach: what the stream missed, then live.
  function Hub:_replay(stream, last_id, topics)
    local r = self._replayer
    if r and getmetatable(r) == RING_MT then
      return self._core:attach(stream, topics, last_id, r, "attach")
    end
    if not r then return 0 end
    if last_id == nil then
      -- A first connection: tell the client where it joined, as a named event
      -- with data (clients such as eventsource-parser drop an id-only block),
      -- so if it is cut off before its first event it still resumes from here.
      local joined = r:last_id()
      if joined ~= nil then stream:_send_raw(core.join_event(joined)) end
      return 0
    end
    self._core:replay_begin(stream) -- live frames wait behind the replay
    if is_async(r) then
      self._pending[stream] = last_id
      local aok, aerr = pcall(r.replay_async, r, self, stream, last_id, topics or {})
      if not aok then self:resume(stream, nil, tostring(aerr)) end
      return 0, "pending"
    end
    -- a synchronous replayer: its frames go ahead of whatever was published
    -- meanwhile, in one hand-off
    local frames, tops, n = {}, {}, 0
    local count, gap = r:replay(last_id, function(bytes, topic)
      n = n + 1
      frames[n] = bytes
      tops[n] = type(topic) == "string" and topic -- an envelope names it
    end, topics or {})
    local info
    if gap == "gap" then info = { oldest = r.first_id and r:first_id() or nil, latest = r:last_id() } end
    self._core:resume(stream, frames, 0, info, last_id, "attach", tops)
    return count, gap
  end

  --- hub:resume(stream, frames, upto [, gap [, topics]]) -> count | nil, "closed"
  -- The answer of an asynchronous replay (docs/CORE.md 3): frames (wire
  -- bytes or events with their ids, oldest first) go out ahead of the live
  -- events that waited; those with seq <= upto are dropped (the replay has
  -- them). gap = {oldest =, latest =} sends the sse-gap event first.
  -- topics[i] (optional) is the topic of frames[i], for envelope streams.
  -- hub:resume(stream, nil, err): the replay failed: a gap, then live.
  function Hub:resume(stream, frames, upto, gap, topics)
    check_self(self, "resume")
    check_stream(stream, 1, "resume")
    if frames == nil then
      frames, upto, gap = {}, 0, {}
    end
    local from = self._pending[stream]
    self._pending[stream] = nil
    if stream:is_closed() then return nil, "closed" end
    return self._core:resume(stream, frames, upto, gap, from, "resume", topics)
  end
end

return M
