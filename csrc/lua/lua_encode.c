/* lua_encode.c - Lua binding of the encoder: core.encode(ev [, opts]) and the
 * event-reading helpers every other binding uses (see lsse.h). */
#include "lsse.h"

#include <string.h>

/* Outputs up to this size are built on the C stack; larger ones in a
 * Lua-owned scratch userdata, so no malloc'd memory is ever held across a
 * call that may raise. */
#define STACK_OUT 1024

static int field_error(lua_State *L, int arg, const char *fname, const char *field,
                       const char *expected, int got_idx) {
  return lsse_argerror(L, arg, fname, "field '%s': %s expected, got %s", field, expected,
                       luaL_typename(L, got_idx));
}

/* Reads an optional string field (top of stack) into s; numbers are allowed
 * for 'id' only (written as tostring would). Leaves the value on the stack,
 * anchored by the event table, so s->p stays valid. */
static void read_str(lua_State *L, int arg, const char *fname, const char *field, sse_str *s,
                     int allow_number) {
  int t = lua_type(L, -1);
  if (t == LUA_TNIL) { s->p = NULL; s->n = 0; return; }
  if (t == LUA_TSTRING || (allow_number && t == LUA_TNUMBER)) {
    /* lua_tolstring converts only this stack slot, never the table field */
    s->p = lua_tolstring(L, -1, &s->n);
    return;
  }
  if (allow_number) field_error(L, arg, fname, field, "string or number", -1);
  else if (strcmp(field, "data") == 0)
    lsse_argerror(L, arg, fname,
                  "field 'data': string expected, got %s (use sse.Event.json for other values)",
                  luaL_typename(L, -1));
  else field_error(L, arg, fname, field, "string", -1);
}

void lsse_check_event(lua_State *L, int idx, int arg, const char *fname, sse_event *ev,
                      int *check_utf8) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) lsse_typeerror(L, arg, fname, "event (table or sse.Event)", idx);
  /* An sse.Event keeps its fields in a plain table at [1]. */
  lua_rawgeti(L, idx, 1);
  if (lua_type(L, -1) == LUA_TTABLE) idx = lua_gettop(L); /* stays pushed */
  else lua_pop(L, 1);

  lua_getfield(L, idx, "id");
  read_str(L, arg, fname, "id", &ev->id, 1);
  lua_getfield(L, idx, "event");
  read_str(L, arg, fname, "event", &ev->event, 0);
  lua_getfield(L, idx, "data");
  read_str(L, arg, fname, "data", &ev->data, 0);
  lua_getfield(L, idx, "comment");
  read_str(L, arg, fname, "comment", &ev->comment, 0);

  lua_getfield(L, idx, "retry");
  ev->retry = -1;
  if (!lua_isnil(L, -1)) {
    long long r = 0;
    if (lua_type(L, -1) != LUA_TNUMBER) field_error(L, arg, fname, "retry", "integer", -1);
    if (!sse_tointeger(L, -1, &r) || r < 0 || r > SSE_RETRY_MAX) {
      sse_encode_err err = {SSE_E_RETRY, "retry", 0};
      lsse_encode_error(L, arg, fname, &err);
    }
    ev->retry = r;
  }
  lua_pop(L, 1);

  lua_getfield(L, idx, "check_utf8");
  *check_utf8 = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  /* the string values stay on the stack: they anchor ev's pointers */
}

int lsse_encode_error(lua_State *L, int arg, const char *fname, const sse_encode_err *err) {
  char msg[160];
  sse_encode_errmsg(err, msg, sizeof msg);
  return lsse_argerror(L, arg, fname, "%s", msg);
}

sse_frame *lsse_event_frame(lua_State *L, const sse_event *ev, int check_utf8, int arg,
                            const char *topic, size_t tlen) {
  return lsse_event_frame_as(L, ev, check_utf8, arg, NULL, topic, tlen);
}

sse_frame *lsse_event_frame_as(lua_State *L, const sse_event *ev, int check_utf8, int arg,
                               const char *fname, const char *topic, size_t tlen) {
  size_t len;
  sse_encode_err err;
  if (sse_encode_check(ev, check_utf8, &len, &err) != SSE_OK) {
    lsse_encode_error(L, arg, fname, &err);
    return NULL;
  }
  sse_frame *f = sse_frame_alloc(len, topic, tlen);
  if (!f) {
    luaL_error(L, "not enough memory");
    return NULL;
  }
  sse_encode_write(ev, f->bytes);
  return f;
}

/* core.encode(ev [, opts]) -> wire bytes of one event.
 * opts.check_utf8 = false skips UTF-8 validation (trusted bytes). */
static int l_encode(lua_State *L) {
  sse_event ev;
  int check_utf8;
  int opt_check = -1; /* -1: the options do not say */
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2)) lsse_typeerror(L, 2, "encode", "table", 2);
    lua_getfield(L, 2, "check_utf8");
    if (!lua_isnil(L, -1)) opt_check = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lsse_check_event(L, 1, 1, "encode", &ev, &check_utf8);
  if (opt_check != -1) check_utf8 = opt_check;

  size_t len;
  sse_encode_err err;
  if (sse_encode_check(&ev, check_utf8, &len, &err) != SSE_OK)
    return lsse_encode_error(L, 1, "encode", &err);

  char stack_buf[STACK_OUT];
  char *buf = len <= STACK_OUT ? stack_buf : (char *)lua_newuserdata(L, len);
  size_t n = sse_encode_write(&ev, buf);
  lua_pushlstring(L, buf, n);
  return 1;
}

/* core.utf8_valid(s) -> true, or false and the 1-based offset of the first
 * invalid byte. */
static int l_utf8_valid(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  size_t ok = sse_utf8_valid_prefix(s, n);
  if (ok == n) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushinteger(L, (lua_Integer)ok + 1);
  return 2;
}

void lsse_open_encode(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"encode", l_encode},
      {"utf8_valid", l_utf8_valid},
      {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
}
