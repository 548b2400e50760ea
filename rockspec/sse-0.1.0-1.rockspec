package = "sse"
version = "0.1.0-1"
source = {
  url = "git+https://example.invalid/sse.git",
  tag = "v0.1.0",
}
description = {
  summary = "Server-Sent Events for Lua: C encoder, replay ring and fan-out hub",
  detailed = [[
    Exact SSE wire encoding, a replay ring buffer keyed by Last-Event-ID and a
    fan-out hub in C, with Event/Sse builders, Hub and Stream objects for luv
    and OpenResty-style handlers.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  -- sse.jwt_core only (JWT signatures); Debian: libssl-dev
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["sse.core"] = {
      -- keep in step with CORE_SRCS and BIND_SRCS in the Makefile (checked by .ci/rock-test.sh)
      sources = {
        "csrc/core/utf8.c", "csrc/core/encode.c", "csrc/core/frame.c", "csrc/core/parse.c",
        "csrc/core/httphead.c", "csrc/core/ring.c", "csrc/core/hub.c",
        "csrc/core/gap.c", "csrc/core/attach.c", "csrc/core/resp.c",
        "csrc/lua/lsse.c", "csrc/lua/lua_encode.c", "csrc/lua/lua_parse.c",
        "csrc/lua/lua_http.c", "csrc/lua/lua_ring.c", "csrc/lua/lua_hub.c",
        "csrc/lua/lua_resp.c",
      },
      incdirs = { "csrc/core", "csrc/lua", "$(LIBUV_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)" },
      libraries = { "uv" },
      defines = { "SSE_VERSION=\"0.1.0\"" },
    },
    -- JWT verification: a module of its own, so sse.core never links libcrypto
    -- (keep in step with JWT_SRCS in mk/auth.mk)
    ["sse.jwt_core"] = {
      sources = { "csrc/core/jwt.c", "csrc/core/json.c", "csrc/core/utf8.c", "csrc/lua/lua_jwt.c" },
      incdirs = { "csrc/core", "csrc/lua", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)" },
      libraries = { "crypto", "m" },
    },
    ["sse"] = "lua/sse/init.lua",
    ["sse.event"] = "lua/sse/event.lua",
    ["sse.builder"] = "lua/sse/builder.lua",
    ["sse.replayer"] = "lua/sse/replayer.lua",
    ["sse.gap"] = "lua/sse/gap.lua",
    ["sse.stream"] = "lua/sse/stream.lua",
    ["sse.hub"] = "lua/sse/hub.lua",
    ["sse.client"] = "lua/sse/client.lua",
    ["sse.http"] = "lua/sse/http/init.lua",
    ["sse.http.options"] = "lua/sse/http/options.lua",
    ["sse.http.router"] = "lua/sse/http/router.lua",
    ["sse.http.conn"] = "lua/sse/http/conn.lua",
    ["sse.http.response"] = "lua/sse/http/response.lua",
    ["sse.http.server"] = "lua/sse/http/server.lua",
    ["sse.app"] = "lua/sse/app/init.lua",
    ["sse.app.main"] = "lua/sse/app/main.lua",
    ["sse.redis"] = "lua/sse/redis/init.lua",
    ["sse.redis.backend"] = "lua/sse/redis/backend.lua",
    ["sse.redis.conn"] = "lua/sse/redis/conn.lua",
    ["sse.redis.follower"] = "lua/sse/redis/follower.lua",
    ["sse.redis.scripts"] = "lua/sse/redis/scripts.lua",
    ["sse.jwt"] = "lua/sse/jwt.lua",
    ["sse.auth"] = "lua/sse/auth.lua",
    ["sse.deadlines"] = "lua/sse/deadlines.lua",
    ["sse.app.json"] = "lua/sse/app/json.lua",
    ["sse.app.auth"] = "lua/sse/app/auth.lua",
  },
  install = {
    -- the demo hub's page, found beside sse.app on the Lua search path
    lua = { ["sse.app.dashboard"] = "lua/sse/app/dashboard.html" },
  },
}
