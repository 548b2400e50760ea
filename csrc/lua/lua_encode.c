/* lua_encode.c - Lua binding of the encoder: core.encode(ev [, opts]),
 * core.encoder(fname, arg [, many]), core.check_event(ev, fname, arg),
 * core.event_valid(ev), core.utf8_valid(s), and the event reader every other binding uses (see
 * lsse.h).
 *
 * The event rule, the same for every API that takes an event: a plain table,
 * or an sse.Event (its fields table at [1]); fields are read raw (no
 * metamethod runs); only id, event, data, comment, retry and check_utf8 may
 * be present. id is a string or an integer 0 .. SSE_ID_INT_MAX (written in
 * decimal); event, data and comment are strings; retry is an integer
 * 0 .. SSE_RETRY_MAX; check_utf8 is a boolean (false: trusted bytes). */
#include "lsse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the module's scratch buffer ---------------------------------------- */

#define SCRATCH_MT "sse.Scratch"

enum { F_ID, F_EVENT, F_DATA, F_COMMENT, F_RETRY, F_UTF8, F_UNKNOWN, NSLOTS };

/* The module state, upvalue 1 of every encoder: a scratch buffer of
 * malloc'd memory owned by the userdata (freed by its __gc), so a raise never
 * leaks it and no call pays for a fresh buffer; and the identity of the six
 * field-name strings. Short strings are interned in every Lua, so a key is
 * the field "data" exactly when it is the same string object as our "data"
 * (anchored in the userdata's user value): one lua_topointer per key
 * instead of a type check, a lua_tolstring and a compare. */
typedef struct scratch {
  char *p;
  size_t cap;
  int by_ptr; /* lua_topointer identifies strings (Lua 5.4, LuaJIT; not PUC 5.1-5.3) */
  const void *key[F_UNKNOWN];
} scratch;

static const char *const field_names[F_UNKNOWN] = {"id",      "event", "data",
                                                   "comment", "retry", "check_utf8"};

static int scratch_gc(lua_State *L) {
  scratch *s = (scratch *)lua_touserdata(L, 1);
  free(s->p);
  s->p = NULL;
  s->cap = 0;
  return 0;
}

/* Makes room for n bytes, keeping the first `keep` bytes. Returns the
 * buffer, or NULL when out of memory (the old buffer is kept). */
static char *scratch_reserve(scratch *s, size_t n, size_t keep) {
  if (n <= s->cap) return s->p;
  size_t cap = s->cap ? s->cap : 4096;
  while (cap < n) cap = cap > (size_t)-1 / 2 ? n : cap * 2;
  char *p;
  if (keep) {
    p = (char *)realloc(s->p, cap);
  } else { /* nothing to copy: no realloc memcpy */
    p = (char *)malloc(cap);
    if (p) free(s->p);
  }
  if (!p) return NULL;
  s->p = p;
  s->cap = cap;
  return p;
}

/* After a call: give back a buffer that grew past SSE_SCRATCH_KEEP. */
static void scratch_trim(scratch *s) {
  if (s->cap > SSE_SCRATCH_KEEP) {
    free(s->p);
    s->p = NULL;
    s->cap = 0;
  }
}

/* --- reading an event --------------------------------------------------- */

/* The field named by the string key at idx, or -1. Byte compares, no
 * memcmp call: this runs for every key of every event. */
static int field_of(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TSTRING) return -1; /* never convert a key in place */
  size_t n;
  const char *k = lua_tolstring(L, idx, &n);
  switch (n) {
  case 2: return k[0] == 'i' && k[1] == 'd' ? F_ID : -1;
  case 4: return k[0] == 'd' && k[1] == 'a' && k[2] == 't' && k[3] == 'a' ? F_DATA : -1;
  case 5:
    if (k[0] == 'e') return memcmp(k, "event", 5) == 0 ? F_EVENT : -1;
    return memcmp(k, "retry", 5) == 0 ? F_RETRY : -1;
  case 7: return memcmp(k, "comment", 7) == 0 ? F_COMMENT : -1;
  case 10: return memcmp(k, "check_utf8", 10) == 0 ? F_UTF8 : -1;
  default: return -1;
  }
}

/* Is the table at idx an sse.Event (metatable __name "sse.Event")? */
static int is_event_object(lua_State *L, int idx) {
  if (!luaL_getmetafield(L, idx, "__name")) return 0;
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  int yes = s && n == 9 && memcmp(s, "sse.Event", 9) == 0;
  lua_pop(L, 1);
  return yes;
}

/* Should the unknown key at idx be reported instead of the one in slot?
 * Yes when the slot is empty, or for the smaller string key, so the error
 * does not depend on the table's iteration order. */
static int report_first(lua_State *L, int idx, int slot) {
  int t = lua_type(L, slot);
  if (t == LUA_TNIL) return 1;
  if (lua_type(L, idx) != LUA_TSTRING) return t != LUA_TSTRING && lua_type(L, idx) < t;
  if (t != LUA_TSTRING) return 1;
  size_t a, b;
  const char *x = lua_tolstring(L, idx, &a), *y = lua_tolstring(L, slot, &b);
  int c = memcmp(x, y, a < b ? a : b);
  return c < 0 || (c == 0 && a < b);
}

/* An integer 0 .. max in the number at idx? */
static int check_uint(lua_State *L, int idx, long long max, long long *out) {
  long long v;
  if (!sse_tointeger(L, idx, &v) || v < 0 || v > max) return 0;
  *out = v;
  return 1;
}

/* Pushes "<what> expected, got <type of idx>" for field f and returns -1. */
static int field_type_error(lua_State *L, const char *field, const char *what, int idx) {
  lua_pushfstring(L, "field '%s': %s expected, got %s", field, what, luaL_typename(L, idx));
  return -1;
}

static const sse_str none = {NULL, 0};

/* The slow, deterministic reading of a fields table at idx that read_event
 * found bad: the same rule, checked in a fixed order whatever order the
 * table yields its keys in, so the error is the same on every run and Lua.
 * Returns -1 with the reason pushed (0 if it finds nothing wrong). */
static int explain_event(lua_State *L, int idx) {
  /* one stack slot per field, in a fixed order */
  int base = lua_gettop(L) + 1;
  lua_settop(L, base + NSLOTS - 1);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int f = field_of(L, -2);
    if (f >= 0) {
      lua_replace(L, base + f);
    } else {
      lua_pop(L, 1);
      if (report_first(L, -1, base + F_UNKNOWN)) {
        lua_pushvalue(L, -1);
        lua_replace(L, base + F_UNKNOWN);
      }
    }
  }

  int s = base + F_UNKNOWN;
  if (lua_type(L, s) == LUA_TSTRING) {
    lua_pushfstring(L, "unknown event field '%s'", lua_tostring(L, s));
    return -1;
  }
  if (!lua_isnil(L, s)) {
    lua_pushfstring(L, "event fields are named by strings, got a %s key", luaL_typename(L, s));
    return -1;
  }

  long long v;
  s = base + F_ID;
  int t = lua_type(L, s);
  if (t == LUA_TNUMBER && !check_uint(L, s, SSE_ID_INT_MAX, &v)) {
    char max[24];
    snprintf(max, sizeof max, "%lld", (long long)SSE_ID_INT_MAX);
    lua_pushfstring(L, "field 'id' must be a string or an integer from 0 to %s", max);
    return -1;
  }
  if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TNUMBER)
    return field_type_error(L, "id", "string or integer", s);

  static const char *const names[] = {"event", "data", "comment"};
  for (int k = 0; k < 3; k++) {
    s = base + F_EVENT + k;
    t = lua_type(L, s);
    if (t == LUA_TNIL || t == LUA_TSTRING) continue;
    if (k == 1) {
      lua_pushfstring(L, "field 'data': string expected, got %s (use sse.Event.json for other values)",
                      luaL_typename(L, s));
      return -1;
    }
    return field_type_error(L, names[k], "string", s);
  }

  s = base + F_RETRY;
  t = lua_type(L, s);
  if (t == LUA_TNUMBER && !check_uint(L, s, SSE_RETRY_MAX, &v)) {
    char msg[96];
    sse_encode_err err = {SSE_E_RETRY, "retry", 0};
    sse_encode_errmsg(&err, msg, sizeof msg);
    lua_pushstring(L, msg);
    return -1;
  }
  if (t != LUA_TNIL && t != LUA_TNUMBER) return field_type_error(L, "retry", "integer", s);

  s = base + F_UTF8;
  t = lua_type(L, s);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) return field_type_error(L, "check_utf8", "boolean", s);
  return 0;
}

/* Pushes the decimal digits of v >= 0 and returns them (anchored there). */
static const char *push_decimal(lua_State *L, long long v, size_t *n) {
  char digits[24];
  int k = 0;
  do { digits[sizeof digits - 1 - k++] = (char)('0' + v % 10); v /= 10; } while (v);
  lua_pushlstring(L, digits + sizeof digits - k, (size_t)k);
  return lua_tolstring(L, -1, n);
}

/* The field of the key at idx, by string identity (see struct scratch). */
static int field_by_ptr(lua_State *L, int idx, const scratch *st) {
  const void *k = lua_topointer(L, idx);
  for (int f = 0; f < F_UNKNOWN; f++)
    if (k == st->key[f]) return f;
  return -1;
}

/* Reads the event at idx into ev and *check_utf8 (see the rule at the top).
 * Returns 0, or -1 with the reason pushed (the text inside "bad argument
 * ... (...)"); it runs no Lua code. One pass over the table; a bad table is
 * then explained by explain_event. With st NULL it leaves values on the
 * stack that anchor ev's strings (for callers that run Lua code before they
 * use ev); with the module state st, ev points into the event table, which
 * the caller keeps on the stack and uses ev before any Lua code runs. */
static int read_event(lua_State *L, int idx, sse_event *ev, int *check_utf8, const scratch *st) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) {
    lua_pushfstring(L, "event (table or sse.Event) expected, got %s", luaL_typename(L, idx));
    return -1;
  }
  luaL_checkstack(L, NSLOTS + 4, "event fields");
  if (lua_getmetatable(L, idx)) { /* a plain table has none: one cheap call */
    lua_pop(L, 1);
    lua_rawgeti(L, idx, 1);
    if (lua_type(L, -1) == LUA_TTABLE && is_event_object(L, idx)) idx = lua_gettop(L); /* anchored */
    else lua_pop(L, 1);
  }

  int top = lua_gettop(L), bad = 0;
  long long id_num = -1;
  ev->id = ev->event = ev->data = ev->comment = none;
  ev->retry = -1;
  *check_utf8 = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int t = lua_type(L, -1);
    sse_str *str = NULL;
    switch (st && st->by_ptr ? field_by_ptr(L, -2, st) : field_of(L, -2)) {
    case F_ID:
      if (t == LUA_TSTRING) str = &ev->id;
      else bad = t != LUA_TNUMBER || !check_uint(L, -1, SSE_ID_INT_MAX, &id_num);
      break;
    case F_EVENT: str = &ev->event; bad = t != LUA_TSTRING; break;
    case F_DATA: str = &ev->data; bad = t != LUA_TSTRING; break;
    case F_COMMENT: str = &ev->comment; bad = t != LUA_TSTRING; break;
    case F_RETRY: bad = t != LUA_TNUMBER || !check_uint(L, -1, SSE_RETRY_MAX, &ev->retry); break;
    case F_UTF8:
      bad = t != LUA_TBOOLEAN;
      *check_utf8 = lua_toboolean(L, -1);
      break;
    default: bad = 1;
    }
    if (bad) break;
    if (str) str->p = lua_tolstring(L, -1, &str->n);
    if (st) lua_pop(L, 1);
    else lua_insert(L, -2); /* the value stays below the key: it anchors ev's pointer */
  }
  if (bad) {
    lua_settop(L, top);
    if (explain_event(L, idx) == 0) lua_pushliteral(L, "invalid event");
    return -1;
  }
  if (id_num >= 0) ev->id.p = push_decimal(L, id_num, &ev->id.n);
  return 0;
}

void lsse_check_event(lua_State *L, int idx, int arg, const char *fname, sse_event *ev,
                      int *check_utf8) {
  if (read_event(L, idx, ev, check_utf8, NULL) != 0)
    lsse_argerror(L, arg, fname, "%s", lua_tostring(L, -1));
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

/* --- the Lua functions -------------------------------------------------- */

/* Upvalues of an encoder: 1 the scratch, 2 the Lua name, 3 the argument. */
#define UV_SCRATCH lua_upvalueindex(1)
#define UV_NAME lua_upvalueindex(2)
#define UV_ARG lua_upvalueindex(3)

/* The Lua name and argument an encoder reports, read only when it raises. */
#define ENC_NAME(L) lua_tostring((L), UV_NAME)
#define ENC_ARG(L) ((int)lua_tointeger((L), UV_ARG))

/* Reads opts.check_utf8 (a boolean) from the options table at idx: -1 when
 * absent. Raises for anything else in it. */
static int read_opts(lua_State *L, int idx) {
  const char *fname = ENC_NAME(L);
  int check = -1;
  if (lua_isnoneornil(L, idx)) return check;
  if (!lua_istable(L, idx)) lsse_typeerror(L, idx, fname, "table", idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (field_of(L, -2) == F_UTF8) {
      if (!lua_isboolean(L, -1))
        lsse_argerror(L, idx, fname, "option 'check_utf8': boolean expected, got %s",
                      luaL_typename(L, -1));
      check = lua_toboolean(L, -1);
    } else if (lua_type(L, -2) == LUA_TSTRING) {
      lsse_argerror(L, idx, fname, "unknown option '%s'", lua_tostring(L, -2));
    } else {
      lsse_argerror(L, idx, fname, "options are named by strings, got a %s key",
                    luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
  return check;
}

/* encode(ev [, opts]) -> wire bytes of one event; errors name the encoder's
 * function and argument. opts.check_utf8 = false skips UTF-8 validation. */
static int l_encode(lua_State *L) {
  int opt_check = lua_isnoneornil(L, 2) ? -1 : read_opts(L, 2);
  sse_event ev;
  int check_utf8;
  scratch *sc = (scratch *)lua_touserdata(L, UV_SCRATCH);
  if (read_event(L, 1, &ev, &check_utf8, sc) != 0)
    return lsse_argerror(L, ENC_ARG(L), ENC_NAME(L), "%s", lua_tostring(L, -1));
  if (opt_check != -1) check_utf8 = opt_check;

  size_t len;
  sse_encode_err err;
  if (sse_encode_check(&ev, check_utf8, &len, &err) != SSE_OK)
    return lsse_encode_error(L, ENC_ARG(L), ENC_NAME(L), &err);

  if (len <= SSE_ENCODE_STACK_BYTES) {
    char buf[SSE_ENCODE_STACK_BYTES];
    lua_pushlstring(L, buf, sse_encode_write(&ev, buf));
    return 1;
  }
  char *buf = scratch_reserve(sc, len, 0);
  if (!buf) return luaL_error(L, "not enough memory");
  lua_pushlstring(L, buf, sse_encode_write(&ev, buf));
  scratch_trim(sc);
  return 1;
}

/* encode_list(events) -> the wire bytes of every event of the array, in
 * order, as one string. A bad event raises "event <i>: ..." and nothing is
 * returned. */
static int l_encode_list(lua_State *L) {
  const char *fname = lua_tostring(L, UV_NAME);
  int arg = (int)lua_tointeger(L, UV_ARG);
  if (!lua_istable(L, 1)) lsse_typeerror(L, arg, fname, "table", 1);
  scratch *sc = (scratch *)lua_touserdata(L, UV_SCRATCH);
  size_t n = lua_rawlen(L, 1), used = 0;
  int top = lua_gettop(L);
  for (size_t i = 1; i <= n; i++) {
    sse_event ev;
    int check_utf8;
    size_t len;
    sse_encode_err err;
    lua_rawgeti(L, 1, (int)i);
    if (read_event(L, -1, &ev, &check_utf8, sc) != 0)
      lsse_argerror(L, arg, fname, "event %d: %s", (int)i, lua_tostring(L, -1));
    if (sse_encode_check(&ev, check_utf8, &len, &err) != SSE_OK) {
      char msg[160];
      sse_encode_errmsg(&err, msg, sizeof msg);
      lsse_argerror(L, arg, fname, "event %d: %s", (int)i, msg);
    }
    if (len > (size_t)-1 - used || !scratch_reserve(sc, used + len, used))
      return luaL_error(L, "not enough memory");
    used += sse_encode_write(&ev, sc->p + used);
    lua_settop(L, top);
  }
  lua_pushlstring(L, used ? sc->p : "", used);
  scratch_trim(sc);
  return 1;
}

/* Pushes an encoder closure named fname, reporting errors as argument arg. */
static void push_encoder(lua_State *L, int scratch_idx, const char *fname, size_t fnlen, int arg,
                         int many) {
  lua_pushvalue(L, scratch_idx);
  lua_pushlstring(L, fname, fnlen);
  lua_pushinteger(L, arg);
  lua_pushcclosure(L, many ? l_encode_list : l_encode, 3);
}

/* core.encoder(fname, arg [, many]) -> an encoder whose errors read
 * "bad argument #arg to 'fname' (...)": encode(ev [, opts]), or with many
 * an array encoder encode(events) -> one string. For the Lua layer. */
static int l_encoder(lua_State *L) {
  size_t n;
  const char *fname = luaL_checklstring(L, 1, &n);
  int arg = (int)luaL_checkinteger(L, 2);
  push_encoder(L, lua_upvalueindex(1), fname, n, arg, lua_toboolean(L, 3));
  return 1;
}

/* core.check_event(ev, fname, arg): raises as an encoder would when ev
 * breaks the event rule (names, types, ranges; contents are checked when it
 * is encoded). Returns nothing. */
static int l_check_event(lua_State *L) {
  const char *fname = luaL_checkstring(L, 2);
  int arg = (int)luaL_checkinteger(L, 3);
  sse_event ev;
  int check_utf8;
  lua_settop(L, 3);
  lsse_check_event(L, 1, arg, fname, &ev, &check_utf8);
  return 0;
}

/* core.event_valid(ev) -> true, or nil and what is wrong (the text an
 * encoder puts inside "bad argument ... (...)"): the whole rule, names,
 * types, ranges and contents (line breaks, UTF-8), without raising. For a
 * caller that answers bad input from a peer rather than raising (the demo
 * hub's POST /publish). */
static int l_event_valid(lua_State *L) {
  sse_event ev;
  sse_encode_err err;
  int check_utf8;
  size_t len;
  char msg[160];
  lua_settop(L, 1);
  if (read_event(L, 1, &ev, &check_utf8, NULL) != 0) {
    lua_pushnil(L);
    lua_insert(L, -2); /* nil, reason */
    return 2;
  }
  if (sse_encode_check(&ev, check_utf8, &len, &err) != SSE_OK) {
    sse_encode_errmsg(&err, msg, sizeof msg);
    return lsse_fail(L, 0, msg);
  }
  lua_pushboolean(L, 1);
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
  int mod = lua_gettop(L);
  scratch *sc = (scratch *)sse_newudata(L, sizeof *sc);
  sc->p = NULL;
  sc->cap = 0;
  sse_getuservalue(L, -1); /* anchors the field names */
  sc->by_ptr = 1;
  for (int f = 0; f < F_UNKNOWN; f++) {
    char copy[16];
    lua_pushstring(L, field_names[f]);
    sc->key[f] = lua_topointer(L, -1);
    /* the same text made anew must be the same object, and no two alike */
    strcpy(copy, field_names[f]);
    lua_pushstring(L, copy);
    if (!sc->key[f] || lua_topointer(L, -1) != sc->key[f]) sc->by_ptr = 0;
    for (int g = 0; g < f; g++)
      if (sc->key[g] == sc->key[f]) sc->by_ptr = 0;
    lua_pop(L, 1);
    lua_rawseti(L, -2, f + 1);
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SCRATCH_MT)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2); /* last: the userdata is complete */
  int sc_idx = lua_gettop(L);

  push_encoder(L, sc_idx, "encode", 6, 1, 0);
  lua_setfield(L, mod, "encode");
  lua_pushvalue(L, sc_idx);
  lua_pushcclosure(L, l_encoder, 1);
  lua_setfield(L, mod, "encoder");
  lua_pushcfunction(L, l_check_event);
  lua_setfield(L, mod, "check_event");
  lua_pushcfunction(L, l_event_valid);
  lua_setfield(L, mod, "event_valid");
  lua_pushcfunction(L, l_utf8_valid);
  lua_setfield(L, mod, "utf8_valid");
  lua_settop(L, mod);
}
