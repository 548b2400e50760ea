--- sse_hub.workers: the demo hub's workers talking to each other through a
-- lua_shared_dict: a mailbox per worker (a list under its pid), read every
-- POLL seconds, for what one worker must tell or ask all the others
-- (presence events, /stats, /metrics, /subscriptions, /admin/disconnect).
--
--   W.init(dict)                      -- once per worker (init_worker_by_lua)
--   W.handle("stats", fn)             -- fn(args) -> answer (what cjson encodes)
--   W.tell("presence", args)          -- to every other live worker
--   W.ask("stats", args) -> answers, missing   -- every live worker's, this one's first
--
-- Keys: "w:<id>" -> the pid of worker <id> (the last one to start under that
-- id: after a reload or a crash, the new one), "mb:<pid>" its mailbox,
-- "a:<n>:<pid>" an answer (kept ASK_TTL seconds), "ask" the request counter.
local cjson = require("cjson.safe")

local ngx = ngx -- luacheck: ignore (the nginx global)

local W = {}

W.POLL = 0.02       -- seconds between two looks at this worker's mailbox
W.ASK_TIMEOUT = 1   -- seconds an ask waits for the others
W.ASK_TTL = 10      -- seconds an answer is kept
W.BATCH = 1000      -- messages read per look, at most

local dict, me
local handlers = {}
local warned = false

local function warn_once(msg)
  if warned then return end
  warned = true
  ngx.log(ngx.WARN, "sse_hub: ", msg)
end

--- The pids of the live workers, this one included: {[id] = pid}.
function W.pids()
  local list = {}
  for id = 0, ngx.worker.count() - 1 do
    local pid = dict:get("w:" .. id)
    if pid then list[id] = pid end
  end
  return list
end

-- Runs the handler of a message; answers it when it was asked.
local function run(msg)
  local m = cjson.decode(msg)
  if type(m) ~= "table" then return end
  local fn = handlers[m.op]
  if not fn then return end
  local ok, res = pcall(fn, m.args)
  if not ok then
    ngx.log(ngx.ERR, "sse_hub: handling '", tostring(m.op), "' failed: ", tostring(res))
    res = nil
  end
  if m.ask then
    local text = cjson.encode({ answer = res }) or '{"answer":null}'
    local sok, err = dict:safe_set("a:" .. m.ask .. ":" .. me, text, W.ASK_TTL)
    if not sok then warn_once("cannot answer another worker (the dict: " .. tostring(err) .. ")") end
  end
end

local function poll(premature)
  if premature then return end
  local key = "mb:" .. me
  for _ = 1, W.BATCH do
    local msg = dict:lpop(key)
    if not msg then break end
    run(msg)
  end
end

--- W.init(dict): registers this worker and starts reading its mailbox.
function W.init(d)
  dict = d
  me = ngx.worker.pid()
  dict:delete("mb:" .. me)
  local ok, err = dict:safe_set("w:" .. ngx.worker.id(), me)
  if not ok then error("sse_hub: cannot register the worker in the dict: " .. tostring(err)) end
  local tok, terr = ngx.timer.every(W.POLL, poll)
  if not tok then error("sse_hub: cannot start the mailbox timer: " .. tostring(terr)) end
end

--- W.handle(op, fn): fn(args) answers op, for this worker.
function W.handle(op, fn)
  handlers[op] = fn
end

-- Posts msg to every other live worker's mailbox; returns their pids.
local function post(msg)
  local sent = {}
  for _, pid in pairs(W.pids()) do
    if pid ~= me then
      local len, err = dict:rpush("mb:" .. pid, msg)
      if len then sent[#sent + 1] = pid else warn_once("a mailbox is full (" .. tostring(err) .. ")") end
    end
  end
  return sent
end

--- W.tell(op, args): every other worker runs op's handler with args soon.
function W.tell(op, args)
  post(cjson.encode({ op = op, args = args }))
end

--- W.ask(op, args [, timeout]) -> answers (this worker's first, then the
-- others' as they come), missing (how many did not answer in time). Waits
-- (ngx.sleep): from a handler or a timer.
function W.ask(op, args, timeout)
  local n = dict:incr("ask", 1, 0)
  local answers = { handlers[op](args) }
  local pending = post(cjson.encode({ op = op, args = args, ask = n }))
  local deadline = ngx.now() + (timeout or W.ASK_TIMEOUT)
  while #pending > 0 do
    local left = {}
    for _, pid in ipairs(pending) do
      local key = "a:" .. n .. ":" .. pid
      local text = dict:get(key)
      if text then
        dict:delete(key)
        local a = cjson.decode(text)
        if type(a) == "table" and a.answer ~= nil then answers[#answers + 1] = a.answer end
      else
        left[#left + 1] = pid
      end
    end
    pending = left
    if #pending == 0 then break end
    ngx.update_time()
    if ngx.now() >= deadline then break end
    ngx.sleep(W.POLL / 2)
  end
  return answers, #pending
end

return W
