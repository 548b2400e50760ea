/* lua_resp.c - Lua binding of resp.c: "sse.RespReader" and resp_command.
 *
 * Used by lua/sse/redis/conn.lua (the RESP client on luv); not public API.
 * A reader owns one malloc'd buffer of received bytes (freed by __gc/close);
 * replies come out as Lua values: status and bulk strings as strings,
 * integers as integers, a null bulk string or array as false, an array as a
 * list, an error reply as a table {err = "ERR ..."}. */
#include "lsse.h"
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READER_MT "sse.RespReader"

typedef struct {
  char *buf;          /* received bytes; buf[off..len) not read yet */
  size_t off, len, cap;
  sse_resp_scanner scan; /* progress on the reply at buf[off] */
  size_t max_bytes;
  int closed;
} lreader;

static lreader *check_reader(lua_State *L, int i) {
  lreader *u = (lreader *)lsse_checkudata(L, i, READER_MT);
  if (u->closed) luaL_argerror(L, i, "reader is closed");
  return u;
}

/* core.resp_reader([max_bytes]) -> a reader; max_bytes bounds one reply
 * (default 512 MiB, Redis's own bulk limit). */
static int l_reader_new(lua_State *L) {
  long long max = SSE_RESP_DEFAULT_MAX_BYTES;
  if (!lua_isnoneornil(L, 1) && (!sse_tointeger(L, 1, &max) || max < 16))
    luaL_argerror(L, 1, "max_bytes must be an integer >= 16");
  lreader *u = (lreader *)lua_newuserdata(L, sizeof *u);
  memset(u, 0, sizeof *u);
  u->max_bytes = (size_t)max;
  sse_resp_scan_init(&u->scan, u->max_bytes);
  luaL_setmetatable(L, READER_MT);
  return 1;
}

/* r:feed(bytes): appends received bytes. Raises only when out of memory
 * (the buffer is unchanged then). */
static int l_feed(lua_State *L) {
  lreader *u = check_reader(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  if (n == 0) return 0;
  if (u->off > 0 && (u->off == u->len || u->len + n > u->cap)) {
    /* drop what was read before growing */
    memmove(u->buf, u->buf + u->off, u->len - u->off);
    u->len -= u->off;
    u->off = 0;
  }
  if (u->len + n > u->cap) {
    size_t cap = u->cap ? u->cap : 4096;
    while (cap < u->len + n) cap *= 2;
    char *nb = (char *)realloc(u->buf, cap);
    if (!nb) return luaL_error(L, "not enough memory");
    u->buf = nb;
    u->cap = cap;
  }
  memcpy(u->buf + u->len, s, n);
  u->len += n;
  return 0;
}

/* Pushes the element at b[*pos] (of a reply the scanner accepted). Returns
 * 0, or -1 (nothing pushed) on bytes that do not parse. */
static int push_value(lua_State *L, const char *b, size_t len, size_t *pos) {
  sse_resp_tok t;
  if (sse_resp_next(b, len, pos, &t) != 0) return -1;
  switch (t.type) {
  case '+':
    lua_pushlstring(L, t.p, t.len);
    return 0;
  case '-':
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, t.p, t.len);
    lua_setfield(L, -2, "err");
    return 0;
  case ':':
    lua_pushinteger(L, (lua_Integer)t.n);
    return 0;
  case '$':
    if (t.p) lua_pushlstring(L, t.p, t.len);
    else lua_pushboolean(L, 0);
    return 0;
  default: /* '*' */
    if (t.n < 0) {
      lua_pushboolean(L, 0);
      return 0;
    }
    /* the scanner bounded both the count (by the bytes present) and the
     * depth (SSE_RESP_MAX_DEPTH levels, a few slots each) */
    luaL_checkstack(L, 4, "reply nested too deeply");
    lua_createtable(L, t.n > 1024 ? 1024 : (int)t.n, 0);
    for (int64_t i = 1; i <= t.n; i++) {
      if (push_value(L, b, len, pos) != 0) {
        lua_pop(L, 1);
        return -1;
      }
      lua_rawseti(L, -2, (int)i);
    }
    return 0;
  }
}

/* r:read() -> true, value when a whole reply is buffered; nil when more
 * bytes are needed; nil, err on a protocol error (the reader stays in
 * error: close the connection). */
static int l_read(lua_State *L) {
  lreader *u = check_reader(L, 1);
  if (u->off == u->len) return 0;
  size_t end = 0;
  int r = sse_resp_scan(&u->scan, u->buf + u->off, u->len - u->off, &end);
  if (r == SSE_RESP_MORE) return 0;
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, sse_resp_strerror(r));
    return 2;
  }
  const char *b = u->buf + u->off;
  size_t pos = 0;
  lua_pushboolean(L, 1);
  if (push_value(L, b, end, &pos) != 0 || pos != end) {
    /* cannot happen for a reply the scanner accepted; refuse, do not guess */
    lua_pushnil(L);
    lua_pushliteral(L, "protocol error");
    return 2;
  }
  u->off += end;
  sse_resp_scan_init(&u->scan, u->max_bytes);
  return 2;
}

/* r:buffered() -> bytes received and not yet read as replies. */
static int l_buffered(lua_State *L) {
  lreader *u = check_reader(L, 1);
  lua_pushinteger(L, (lua_Integer)(u->len - u->off));
  return 1;
}

static int l_reader_close(lua_State *L) {
  lreader *u = (lreader *)lsse_checkudata(L, 1, READER_MT);
  free(u->buf);
  u->buf = NULL;
  u->off = u->len = u->cap = 0;
  u->closed = 1;
  return 0;
}

/* The text of argument i of a command: a string, or an integer number
 * (written in decimal). Raises for anything else. */
static const char *arg_text(lua_State *L, int i, size_t *n, char *tmp, size_t cap) {
  int t = lua_type(L, i);
  if (t == LUA_TSTRING) return lua_tolstring(L, i, n);
  long long v;
  if (t == LUA_TNUMBER && sse_tointeger(L, i, &v)) {
    *n = (size_t)snprintf(tmp, cap, "%lld", v);
    return tmp;
  }
  luaL_argerror(L, i, lua_pushfstring(L, "string or integer expected, got %s",
                                      t == LUA_TNUMBER ? "non-integer number"
                                                       : luaL_typename(L, i)));
  return NULL;
}

#define MAX_ARGS 256

/* core.resp_command(arg1, ...) -> the RESP array of bulk strings that sends
 * this command (1 to 256 arguments: strings or integers). */
static int l_command(lua_State *L) {
  int argc = lua_gettop(L);
  if (argc < 1) luaL_argerror(L, 1, "string expected, got no value");
  if (argc > MAX_ARGS) luaL_argerror(L, MAX_ARGS + 1, "too many arguments (at most 256)");
  const char *argv[MAX_ARGS];
  size_t lens[MAX_ARGS];
  char nums[MAX_ARGS][24];
  for (int i = 0; i < argc; i++)
    argv[i] = arg_text(L, i + 1, &lens[i], nums[i], sizeof nums[i]);
  size_t size = sse_resp_command_size(argc, lens);
  char small[4096];
  /* Lua-owned scratch space for a big command: nothing to free if a
   * push raises */
  char *out = size <= sizeof small ? small : (char *)lua_newuserdata(L, size);
  size_t n = sse_resp_command(out, argc, argv, lens);
  lua_pushlstring(L, out, n);
  return 1;
}

void lsse_open_resp(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"feed", l_feed}, {"read", l_read}, {"buffered", l_buffered},
      {"close", l_reader_close}, {NULL, NULL},
  };
  static const luaL_Reg fns[] = {
      {"resp_reader", l_reader_new},
      {"resp_command", l_command},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, READER_MT)) {
    lua_pushcfunction(L, l_reader_close);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, READER_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
