--- sse.redis.scripts: the server-side Lua scripts of the Redis backend.
--
-- Keys (prefix P, "sse:" by default):
--   P.."meta"    hash {epoch, seq}: the id sequence. A Redis without it (new,
--                flushed, replaced by an empty one) starts a new epoch.
--   P.."log"     the stream of events: entry id "<seq>-0", fields
--                d (wire bytes, id line included), ts (ms, Redis clock),
--                t (topic; absent for an event to everyone)
--   P.."idem:"K  the id a publish with idempotency key K got (expires)
-- Channel P.."events": every stored event, as "<epoch> <seq> <tlen|->\n"
-- followed by the topic bytes and the wire bytes.
--
-- Scripts run atomically, so an id is assigned, stored and announced in one
-- step: two instances can never hand out the same id, and the order of the
-- stream is the order of the ids.
local M = {}

--- PUBLISH: KEYS meta, log [, idem]; ARGV:
--   1 random characters for a new epoch (used when one must start: the
--     epoch is Redis's clock in ms, base36, followed by them)
--   2 the epoch this instance knows ("" when none), 3 the highest seq it saw
--     in it: a Redis holding that epoch with a lower seq lost acknowledged
--     writes (a replica promoted too early, a restored snapshot), so it
--     starts a new epoch rather than hand out ids a second time
--   4 max_len (approximate stream trim), 5 head bytes (comment, event lines),
--   6 tail bytes (retry, data lines, blank line), 7 topic, 8 "1" when there
--   is a topic, 9 (unused), 10 idempotency ttl in s,
--   11 the channel
-- -> {id, 1 (stored) | 0 (an earlier publish with this key), seq, epoch}
M.publish = [=[
local meta, log, idem = KEYS[1], KEYS[2], KEYS[3]
if idem then
  local prev = redis.call('GET', idem)
  if prev then return {prev, 0, 0, ''} end
end
local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36(n)
  local s = ''
  repeat
    local r = n % 36
    s = string.sub(digits, r + 1, r + 1) .. s
    n = (n - r) / 36
  until n == 0
  return s
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local m = redis.call('HMGET', meta, 'epoch', 'seq')
local epoch, seq = m[1], tonumber(m[2] or '0')
if epoch and epoch == ARGV[2] and seq < tonumber(ARGV[3]) then
  epoch = false
end
if not epoch then
  epoch = b36(now) .. ARGV[1]
  redis.call('DEL', log)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 1)
  seq = 1
else
  seq = seq + 1
  redis.call('HSET', meta, 'seq', string.format('%.0f', seq))
end
local id = epoch .. '-' .. b36(seq)
local bytes = ARGV[5] .. 'id: ' .. id .. '\n' .. ARGV[6]
local ms = string.format('%.0f', now)
local sid = string.format('%.0f', seq) .. '-0'
local head
if ARGV[8] == '1' then
  redis.call('XADD', log, 'MAXLEN', '~', ARGV[4], sid, 'd', bytes, 'ts', ms, 't', ARGV[7])
  head = epoch .. ' ' .. string.format('%.0f', seq) .. ' ' .. string.len(ARGV[7]) .. '\n' .. ARGV[7]
else
  redis.call('XADD', log, 'MAXLEN', '~', ARGV[4], sid, 'd', bytes, 'ts', ms)
  head = epoch .. ' ' .. string.format('%.0f', seq) .. ' -\n'
end
if idem then redis.call('SET', idem, id, 'EX', ARGV[10]) end
redis.call('PUBLISH', ARGV[11], head .. bytes)
return {id, 1, seq, epoch}
]=]

--- INIT: KEYS meta, log; ARGV 1 random characters for a new epoch.
-- Makes sure Redis has an epoch (creating one at seq 0), so that a fresh
-- client always gets a join position. -> {epoch, seq}
M.init = [=[
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if m[1] then return {m[1], tonumber(m[2] or '0')} end
local digits, t = '0123456789abcdefghijklmnopqrstuvwxyz', redis.call('TIME')
local n, s = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ''
repeat
  local r = n % 36
  s = string.sub(digits, r + 1, r + 1) .. s
  n = (n - r) / 36
until n == 0
local epoch = s .. ARGV[1]
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
return {epoch, 0}
]=]

--- READ: the events after a position, for a client's replay or a
-- follower's catch-up. KEYS meta, log; ARGV:
--   1 the epoch of the position ("" for a malformed id), 2 its seq,
--   3 max_len (the window: only the newest max_len ids count as kept),
--   4 ttl in ms (0: none; older entries are gone),
--   5, 6 the epoch and seq of the follower's position ("" : no bound): a
--     replay must not run ahead of the live feed it hands over to,
--   7 most entries to return (a page), 8 "*" for every topic, else the
--     number of topics, then the topics (events without one always match)
-- -> {epoch | false, head seq, oldest kept seq (0: none), gap reason
--    ("" | "evicted" | "epoch" | "future" | "malformed"), upto, more (0|1),
--    seq1, bytes1, seq2, bytes2, ...}
-- upto: every event with seq <= upto the reader should get is in the
-- answer or at or before its position; more = 1: read on from upto.
M.read = [=[
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
local epoch, head = m[1], tonumber(m[2] or '0')
if not epoch then return {false, 0, 0, ARGV[1] == '' and 'malformed' or 'epoch', 0, 0} end
local max_len, ttl, page = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])
local lo = head - max_len + 1
if lo < 1 then lo = 1 end
local gap, from, pos_epoch = '', 0, ARGV[1]
if pos_epoch == '' then
  gap, from = 'malformed', lo
elseif pos_epoch ~= epoch then
  gap, from = 'epoch', lo
else
  local last = tonumber(ARGV[2])
  if last > head then gap, from = 'future', lo
  elseif last + 1 < lo then gap, from = 'evicted', lo
  else from = last + 1 end
end
local upto = head
if ARGV[5] ~= '' then
  if ARGV[5] ~= epoch then upto = 0
  elseif tonumber(ARGV[6]) < upto then upto = tonumber(ARGV[6]) end
end
-- a reader ahead of the follower: covered up to its own position
if gap == '' and from - 1 > upto then upto = from - 1 end
local all, topics = ARGV[8] == '*', {}
if not all then
  for i = 1, tonumber(ARGV[8]) do topics[ARGV[8 + i]] = true end
end
local cutoff = 0
if ttl > 0 then
  local t = redis.call('TIME')
  cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - ttl
end
local out = {epoch, head, 0, gap, upto, 0}
local oldest = 0
if from <= upto then
  local entries = redis.call('XRANGE', KEYS[2], string.format('%.0f', from) .. '-0',
    string.format('%.0f', upto) .. '-0', 'COUNT', page)
  local expect = from
  for _, e in ipairs(entries) do
    local seq = tonumber(string.match(e[1], '^(%d+)'))
    local f, d, ts, topic = e[2], nil, 0, nil
    for i = 1, #f, 2 do
      local k = f[i]
      if k == 'd' then d = f[i + 1]
      elseif k == 'ts' then ts = tonumber(f[i + 1])
      elseif k == 't' then topic = f[i + 1] end
    end
    if seq > expect and gap == '' then gap = 'evicted' end
    if ts < cutoff then
      if gap == '' then gap = 'evicted' end
    else
      if oldest == 0 then oldest = seq end
      if all or not topic or topics[topic] then
        out[#out + 1] = seq
        out[#out + 1] = d
        out[#out + 1] = topic or false -- a null reply: no topic
      end
    end
    expect = seq + 1
  end
  if #entries == page and expect <= upto then
    out[5] = expect - 1
    out[6] = 1
  elseif expect <= upto and gap == '' then
    gap = 'evicted' -- the stream lost its tail (deleted, expired)
  end
end
if gap ~= '' and oldest == 0 and head >= lo then
  local first = redis.call('XRANGE', KEYS[2], string.format('%.0f', lo) .. '-0', '+', 'COUNT', 1)
  if first[1] then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
end
out[3] = oldest
out[4] = gap
return out
]=]

return M
