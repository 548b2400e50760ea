--- sse.app.presence: the demo hub's --presence -- subscription changes as
-- `presence` events on the hub's own topic `$presence` -- and the listing
-- of GET /subscriptions.
--
--   event: presence
--   data: {"topic":"news","subscribers":3,"joined":true}
--
-- The events go out with hub:notify_to: at once, without an id, not kept
-- for replay (a join storm must not push real events out of the replay
-- window; a client that reconnects reads the present from /subscriptions
-- or the next change). Topics starting with '$' are not reported.
local J = require("sse.app.json")

local M = {}

M.TOPIC = "$presence"
M.LIST_DEFAULT, M.LIST_MAX = 100, 1000

--- enable(hub [, opts]): sets the hub's on_subscribe / on_unsubscribe
-- hooks. opts (a host with several hubs: nginx workers): count(topic,
-- joined) -> the topic's subscribers (default: this hub's), relay(ev) to
-- hand each presence event to the other hubs as well.
function M.enable(hub, opts)
  local count = opts and opts.count or function(topic) return hub:topic_count(topic) end
  local relay = opts and opts.relay
  local function report(topic, joined)
    if topic:sub(1, 1) == "$" then return end
    local ev = { event = "presence", data = J.encode(J.obj(
      "topic", topic, "subscribers", count(topic, joined), "joined", joined)) }
    hub:notify_to(M.TOPIC, ev)
    if relay then relay(ev) end
  end
  hub.on_subscribe = function(_, topic) report(topic, true) end
  hub.on_unsubscribe = function(_, topic) report(topic, false) end
end

--- limit(q) -> n | nil, message: ?limit=N, default LIST_DEFAULT, at most LIST_MAX.
function M.limit(q)
  local v = q.limit
  if v == nil then return M.LIST_DEFAULT end
  local n = type(v) == "string" and v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > M.LIST_MAX then
    return nil, ("query 'limit' must be an integer in 1..%d"):format(M.LIST_MAX)
  end
  return n
end

--- listing(hub, access, topic, limit) -> the /subscriptions answer (a J.obj).
-- Without a topic: the topics with the most subscribers. With one: its
-- streams (hub id, address, the token's sub, since when), at most limit;
-- "more" says whether some were left out. O(streams) for a topic: an
-- operator's page, authorized like /stats.
function M.listing(hub, access, topic, limit)
  if topic == nil then
    local list = {}
    for i, e in ipairs(hub:top_topics(limit)) do
      list[i] = J.obj("topic", e.topic, "subscribers", e.subscribers)
    end
    return J.obj("topics", hub:topic_total(), "subscriptions", J.arr(list))
  end
  local list, more = {}, false
  for _, st in ipairs(hub:streams()) do
    if hub:is_subscribed(st, topic) then
      if #list == limit then
        more = true
        break
      end
      local m = access:meta(st)
      list[#list + 1] = J.obj("id", st:stats().id, "remote", m.ip, "user", m.user, "since", m.since)
    end
  end
  table.sort(list, function(a, b) return a[2] < b[2] end) -- by id
  return J.obj("topic", topic, "subscribers", hub:topic_count(topic), "streams", J.arr(list),
    "more", more)
end

return M
