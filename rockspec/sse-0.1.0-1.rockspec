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
    and OpenResty-style handlers, a strict HTTP/1.1 server, an EventSource
    client, and the demo hub as the command sse-hub.

    Built and tested for Lua 5.4, PUC Lua 5.1 and LuaJIT 2.1 (for LuaJIT:
    luarocks --lua-version=5.1 make LUA_INCDIR=/usr/include/luajit-2.1).
    Needs libuv (shared) and libcrypto (sse.jwt_core, JWT signatures, a
    module of its own so sse.core does not link it). Optional, found at run time: luv (Stream and Hub on
    luv handles, sse.http, sse.client, sse-hub), which must use the same
    shared libuv as this module (Debian's lua-luv does; the luv rock only
    when built with WITH_SHARED_LIBUV=ON), and lua-cjson (Event.json,
    res:json, sse-hub). They are not listed as dependencies so that the rock
    installs beside the system's packages of them.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  -- sse.jwt_core only (JWT signatures); Debian: libssl-dev
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  -- compressed streams (csrc/core/gzip.c); Debian: zlib1g-dev
  ZLIB = { header = "zlib.h", library = "z" },
}
-- The Makefile builds (under build/rock-<headers dir>/, never in the source
-- tree) and installs: one list of sources and files, the Makefile's.
build = {
  type = "make",
  variables = {
    LUA = "$(LUA)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    UV_CFLAGS = "-I$(LIBUV_INCDIR)",
    UV_LIBS = "-L$(LIBUV_LIBDIR) -luv",
    CRYPTO_CFLAGS = "-I$(OPENSSL_INCDIR)",
    CRYPTO_LIBS = "-L$(OPENSSL_LIBDIR) -lcrypto",
    Z_CFLAGS = "-I$(ZLIB_INCDIR)",
    Z_LIBS = "-L$(ZLIB_LIBDIR) -lz",
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_SHAREDIR = "$(LUADIR)",
    -- luarocks wraps bin/ scripts with the tree's search path itself
    HUB_PATHS = "no",
  },
}
