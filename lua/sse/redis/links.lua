--- sse.redis.links: the backend's two connections to Redis -- commands
-- (publish, replay reads, the head check) and the subscriber -- each dialled
-- again on its own with capped exponential backoff and jitter; and how a
-- command goes out on the command link (EVALSHA, EVAL when Redis forgot
-- the script). Installed on sse.redis.Backend by sse.redis.backend.
local core = require("sse.core")
local scripts = require("sse.redis.scripts")

local unpack = table.unpack or unpack

local M = {}

--- install(Backend): adds the connection methods (_dial, _call, _eval, ...).
function M.install(Backend)
  function Backend:_dial(link)
    if self.closed then return end
    local u = self.u
    link.conn = self.env.connect({
      host = u.host, port = u.port, db = u.db, username = u.username, password = u.password,
      timeout = self.timeout, name = self.name .. "-" .. link.name,
      on_close = function(err) self:_lost(link, err) end,
    }, function(conn)
      if not conn then return end -- on_close follows with the reason
      link.attempts = 0
      if link.name == "cmd" then self:_cmd_ready(conn) else self:_sub_ready(conn) end
    end)
  end

  function Backend:_lost(link, err)
    if self.closed then return end
    link.conn, link.ready = nil, false
    link.error = err
    if link.name == "sub" then self.follower:down() end
    self.stats.reconnects = self.stats.reconnects + 1
    -- capped exponential backoff with jitter (half to all of the delay), so a
    -- fleet of instances does not dial a returning Redis at the same instant
    local d = math.min(self.backoff_max, self.backoff_min * 2 ^ link.attempts)
    d = d * (0.5 + math.random() * 0.5)
    link.attempts = math.min(link.attempts + 1, 30)
    link.timer = link.timer or self.env.timer(function() self:_dial(link) end)
    link.timer:start(d * 1000)
  end

  function Backend:_cmd_ready(conn)
    local link = self.links.cmd
    local pending = 3
    local function loaded(name)
      return function(sha, err)
        if not err then self.sha[name] = sha end
        pending = pending - 1
        if pending == 0 and link.conn == conn then
          link.ready, link.error = true, nil
          -- the subscriber may have been waiting for us to catch up
          if self:_subscribed() then self.follower:sync() end
        end
      end
    end
    conn:call(loaded("publish"), "SCRIPT", "LOAD", scripts.publish)
    conn:call(loaded("read"), "SCRIPT", "LOAD", scripts.read)
    conn:call(loaded("init"), "SCRIPT", "LOAD", scripts.init)
  end

  function Backend:_sub_ready(conn)
    local link = self.links.sub
    conn:subscribe(self.channel, function(ch, payload) self.follower:on_message(ch, payload) end,
      function(_, err)
        if err or link.conn ~= conn then return end
        link.ready = true
        self.follower:sync()
      end)
  end

  function Backend:_ready()
    return self.links.cmd.ready == true
  end

  function Backend:_subscribed()
    return self.links.sub.ready == true
  end

  -- The liveness check found the channel silent: drop it and dial again.
  function Backend:_resubscribe()
    local link = self.links.sub
    local conn = link.conn
    if conn then
      conn:close()
      self:_lost(link, "stale")
    end
  end

  function Backend:_ping(cb)
    local c = self.links.sub.conn
    if c then c:call(cb, "PING") end
  end

  function Backend:_call(cb, ...)
    local c = self.links.cmd.conn
    if not (c and self.links.cmd.ready) then return cb(nil, "not connected") end
    local ok, err = c:call(cb, ...)
    if not ok then cb(nil, err) end
  end

  -- EVALSHA the named script (EVAL when Redis forgot it: a restart, SCRIPT FLUSH).
  function Backend:_eval(name, keys, argv, cb)
    local c = self.links.cmd.conn
    if not (c and self.links.cmd.ready) then return nil, "not connected" end
    local n = #keys
    local args = { "EVALSHA", self.sha[name] or "", n }
    for i = 1, n do args[3 + i] = keys[i] end
    for i = 1, #argv do args[3 + n + i] = argv[i] end
    local cmd = core.resp_command(unpack(args))
    local function retry(r, err)
      if err and err:match("^NOSCRIPT") then
        args[1], args[2] = "EVAL", scripts[name]
        local ok, e2 = self:_send_raw(core.resp_command(unpack(args)), cb)
        if not ok then cb(nil, e2) end
        return
      end
      cb(r, err)
    end
    return c:send(cmd, retry)
  end

  function Backend:_send_raw(bytes, cb)
    local c = self.links.cmd.conn
    if not (c and self.links.cmd.ready) then return nil, "not connected" end
    return c:send(bytes, cb)
  end
end

return M
