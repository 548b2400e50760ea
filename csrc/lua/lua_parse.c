/* lua_parse.c - Lua binding of the event-stream parser: core.parser([opts])
 * returns an "sse.Parser" userdata (see parse.h for the rules it follows).
 *
 *   p:feed(chunk)        -> array of {type=, data=, id=} dispatched by chunk;
 *                           nil, err, events after a limit error (events =
 *                           those dispatched before it); nil, "closed"
 *   p:retry()            -> last valid retry in ms, or nil
 *   p:last_event_id()    -> last event ID string ("" when none)
 *   p:reset([id])        -> true; starts a new stream (keeps the last id or
 *                           sets it to id), clears a failure
 *   p:close()            -> frees the buffers; later calls return nil, "closed"
 *
 * The parser lives inside the userdata (Lua-owned); only its buffers are
 * malloc'd, and they stay consistent whenever a Lua call may raise (the
 * parser calls back only at a consistent state), so __gc always frees them. */
#include "lsse.h"
#include "parse.h"

#include <string.h>

#define PARSER_MT "sse.Parser"

typedef struct lparser {
  sse_parser p;
  int closed;
  int has_retry;
  unsigned long long retry;
} lparser;

/* Argument i as an sse.Parser (raises a bad-argument error otherwise). */
static lparser *check_parser(lua_State *L, int i) {
  return (lparser *)lsse_checkudata(L, i, PARSER_MT);
}

static void push_ms(lua_State *L, unsigned long long ms) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)ms);
#else
  lua_pushnumber(L, (lua_Number)ms);
#endif
}

/* Read optional positive integer option `name` from the table at idx into
 * *out (unchanged when absent). Raises on a bad value. */
static void opt_size(lua_State *L, int idx, int arg, const char *name, size_t *out) {
  long long v = 0;
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_argerror(L, arg, lua_pushfstring(L, "field '%s': integer expected, got %s", name,
                                            luaL_typename(L, -1)));
    if (!sse_tointeger(L, -1, &v) || v < 1)
      luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be a positive integer", name));
    *out = (unsigned long long)v > (unsigned long long)(size_t)-1 ? (size_t)-1 : (size_t)v;
  }
  lua_pop(L, 1);
}

/* core.parser([opts]) -> sse.Parser.
 * opts: max_line_bytes, max_event_bytes (default 1 MiB each), last_event_id. */
static int l_parser(lua_State *L) {
  sse_parse_limits lim = {0, 0};
  const char *id = NULL;
  size_t idn = 0;
  lparser *lp;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    opt_size(L, 1, 1, "max_line_bytes", &lim.max_line);
    opt_size(L, 1, 1, "max_event_bytes", &lim.max_event);
    lua_getfield(L, 1, "last_event_id");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 1, lua_pushfstring(L, "field 'last_event_id': string expected, got %s",
                                            luaL_typename(L, -1)));
      id = lua_tolstring(L, -1, &idn); /* anchored by opts */
    }
    lua_pop(L, 1);
  }
  lp = (lparser *)sse_newudata(L, sizeof *lp);
  memset(lp, 0, sizeof *lp);
  sse_parser_init(&lp->p, &lim);
  luaL_setmetatable(L, PARSER_MT); /* fully built: __gc may run from here on */
  if (id && sse_parser_set_last_event_id(&lp->p, id, idn) != 0)
    return luaL_error(L, "not enough memory");
  return 1;
}

typedef struct feed_ctx {
  lua_State *L;
  int tidx;      /* stack index of the result array */
  int count;
  lparser *lp;
} feed_ctx;

/* Parser callback: append an event table to the result array or record the
 * retry. May raise on memory errors only; the parser is consistent then. */
static void on_msg(void *ud, const sse_parse_msg *m) {
  feed_ctx *c = (feed_ctx *)ud;
  lua_State *L = c->L;
  if (m->kind == SSE_PARSE_MSG_RETRY) {
    c->lp->has_retry = 1;
    c->lp->retry = m->retry;
    return;
  }
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, m->type, m->type_len);
  lua_setfield(L, -2, "type");
  lua_pushlstring(L, m->data, m->data_len);
  lua_setfield(L, -2, "data");
  lua_pushlstring(L, m->id, m->id_len);
  lua_setfield(L, -2, "id");
  lua_rawseti(L, c->tidx, ++c->count);
}

/* p:feed(chunk) -> events | nil, err, events */
static int l_feed(lua_State *L) {
  lparser *lp = check_parser(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  feed_ctx c;
  int rc;
  if (lp->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_settop(L, 2);
  lua_newtable(L);
  c.L = L;
  c.tidx = 3;
  c.count = 0;
  c.lp = lp;
  rc = sse_parser_feed(&lp->p, s, n, on_msg, &c);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, sse_parse_strerror(rc));
    lua_pushvalue(L, 3);
    return 3;
  }
  return 1;
}

/* p:retry() -> ms | nil */
static int l_retry(lua_State *L) {
  lparser *lp = check_parser(L, 1);
  if (lp->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (!lp->has_retry) lua_pushnil(L);
  else push_ms(L, lp->retry);
  return 1;
}

/* p:last_event_id() -> string */
static int l_last_event_id(lua_State *L) {
  lparser *lp = check_parser(L, 1);
  size_t n;
  const char *id;
  if (lp->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  id = sse_parser_last_event_id(&lp->p, &n);
  lua_pushlstring(L, id, n);
  return 1;
}

/* p:reset([last_event_id]) -> true */
static int l_reset(lua_State *L) {
  lparser *lp = check_parser(L, 1);
  size_t n = 0;
  const char *id = luaL_optlstring(L, 2, NULL, &n);
  if (lp->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  sse_parser_reset(&lp->p);
  if (id && sse_parser_set_last_event_id(&lp->p, id, n) != 0)
    return luaL_error(L, "not enough memory");
  lua_pushboolean(L, 1);
  return 1;
}

/* p:close() / __gc / __close: free the buffers once. Returns true. */
static int l_close(lua_State *L) {
  lparser *lp = check_parser(L, 1);
  if (!lp->closed) {
    lp->closed = 1;
    sse_parser_free(&lp->p);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lparser *lp = check_parser(L, 1);
  if (lp->closed) lua_pushliteral(L, "sse.Parser (closed)");
  else lua_pushfstring(L, "sse.Parser (%p)", (void *)lp);
  return 1;
}

void lsse_open_parse(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"feed", l_feed},
      {"retry", l_retry},
      {"last_event_id", l_last_event_id},
      {"reset", l_reset},
      {"close", l_close},
      {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
      {"__gc", l_close},
      {"__close", l_close},
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, PARSER_MT)) {
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, PARSER_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_parser);
  lua_setfield(L, -2, "parser");
}
