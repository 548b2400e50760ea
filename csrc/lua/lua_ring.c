/* lua_ring.c - Lua binding of the replay ring: core.ring_new(opts) returns an
 * "sse.Ring" userdata, the engine of sse.MemoryReplayer (lua/sse/replayer.lua;
 * docs/REPLAY.md documents the behaviour).
 *
 *   r:store(ev [, topic])          -> id      encodes ev once, with its new id
 *   r:replay(last_id, send [, topics]) -> count [, "gap"]
 *   r:last_id() r:first_id() r:len() r:bytes() r:clear() r:close()
 *
 * Misuse raises ("bad argument ..."); a closed ring answers nil, "closed".
 * No malloc'd memory is ever held across a call that may raise: the frame is
 * allocated after the last Lua call of store() and handed to the ring at
 * once, and replay() holds no frame across send(). */
#include "lsse.h"
#include "lstream.h" /* lsse_now */
#include "ring.h"

#include <string.h>

#define RING_MT "sse.Ring"

typedef struct lring {
  sse_ring *ring; /* NULL once closed */
  int has_clock;  /* a Lua clock function is at [1] of the user value */
} lring;

/* The sse.Ring at idx (raises when it is not one); may be closed. */
static lring *check_ring(lua_State *L, int idx) {
  return (lring *)lsse_checkudata(L, idx, RING_MT);
}

static int push_closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* Raise "bad argument #arg (<what> expected, got <type>)". */
static int type_error(lua_State *L, int arg, const char *what) {
  return luaL_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", what,
                                               luaL_typename(L, arg)));
}

/* Monotonic seconds: the ring's clock, or CLOCK_MONOTONIC(_COARSE). A clock that
 * returns anything but a number (or NaN) raises. */
static double ring_now(lua_State *L, int ring_idx, lring *u) {
  if (u->has_clock) {
    sse_getuservalue(L, ring_idx); /* the ring's own slot, whoever called */
    lua_rawgeti(L, -1, 1);
    lua_call(L, 0, 1);
    double t = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || t != t)
      luaL_error(L, "sse.Ring clock must return a number, got %s",
                 lua_type(L, -1) == LUA_TNUMBER ? "nan" : luaL_typename(L, -1));
    lua_pop(L, 2);
    return t;
  }
  return lsse_now(); /* coarse: a few ms of resolution is plenty for a TTL */
}

/* Pop the table on top and make it the user value of the userdata at idx
 * (< 0: counted before the pop). */
static void set_uservalue(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
#if LUA_VERSION_NUM >= 504
  lua_setiuservalue(L, idx, 1);
#elif LUA_VERSION_NUM >= 502
  lua_setuservalue(L, idx);
#else
  lua_setfenv(L, idx);
#endif
}

static void push_id(lua_State *L, const sse_ring *r, uint64_t seq) {
  char id[SSE_RING_ID_CAP];
  size_t n = sse_ring_format_id(r, seq, id, sizeof id);
  lua_pushlstring(L, id, n);
}

/* r:store(ev [, topic]) -> id. Encodes ev (a plain table or sse.Event with no
 * id) once with the next id and stores it; an event larger than max_bytes is
 * numbered but not kept. */
sse_frame *lsse_ring_store(lua_State *L, int ring_idx, int ev_idx, int arg, const char *fname,
                           const char *topic, size_t tlen) {
  lring *u = check_ring(L, ring_idx);
  sse_event ev;
  int check_utf8;
  lsse_check_event(L, ev_idx, arg, fname, &ev, &check_utf8);
  if (ev.id.p)
    lsse_argerror(L, arg, fname, "event must not carry an id: ids are assigned by the replayer");
  if (!u->ring) return NULL;
  double now = ring_now(L, ring_idx, u);
  if (!u->ring) return NULL; /* the clock closed it */

  /* no Lua call from here on until the frame belongs to the ring */
  sse_ring *r = u->ring;
  char id[SSE_RING_ID_CAP];
  ev.id.n = sse_ring_format_id(r, sse_ring_next_seq(r), id, sizeof id);
  ev.id.p = id;
  sse_frame *f = lsse_event_frame_as(L, &ev, check_utf8, arg, fname, topic, tlen);
  sse_frame_ref(f); /* the caller's: the ring may evict it at once */
  int rc = sse_ring_store(r, f, now);
  if (rc != 0) {
    sse_frame_unref(f);
    sse_frame_unref(f);
    luaL_error(L, rc == SSE_RING_EOVERFLOW ? "sse.Ring: sequence numbers exhausted"
                                           : "not enough memory");
    return NULL;
  }
  lua_pushlstring(L, id, ev.id.n);
  return f;
}

sse_ring *lsse_ring_get(lua_State *L, int ring_idx, double *now) {
  lring *u = check_ring(L, ring_idx);
  if (!u->ring) return NULL;
  *now = ring_now(L, ring_idx, u);
  return u->ring; /* NULL when the clock closed it */
}

static int l_store(lua_State *L) {
  check_ring(L, 1);
  const char *topic = NULL;
  size_t tlen = 0;
  int tt = lua_type(L, 3);
  if (tt == LUA_TSTRING) topic = lua_tolstring(L, 3, &tlen);
  else if (tt != LUA_TNIL && tt != LUA_TNONE) type_error(L, 3, "string");
  sse_frame *f = lsse_ring_store(L, 1, 2, 1, "store", topic, tlen);
  if (!f) return push_closed(L);
  sse_frame_unref(f); /* the id is on the stack top */
  return 1;
}

/* Topic filter of a replay: the strings of a list, anchored by a private
 * copy of the list so send() cannot pull them away. */
typedef struct topic_set {
  size_t n;
  sse_str *t; /* NULL when there is no filter */
} topic_set;

static void check_topics(lua_State *L, int arg, topic_set *ts) {
  ts->n = 0;
  ts->t = NULL;
  if (lua_isnoneornil(L, arg)) return;
  if (lua_type(L, arg) != LUA_TTABLE) type_error(L, arg, "table");
  size_t n = lua_rawlen(L, arg);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, arg, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, arg, lua_pushfstring(L, "topics[%d] must be a string, got %s",
                                            (int)i, luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  lua_createtable(L, (int)n, 0); /* the anchor */
  int anchor = lua_gettop(L);
  ts->t = (sse_str *)lua_newuserdata(L, (n ? n : 1) * sizeof(sse_str));
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, arg, (int)i);
    ts->t[i - 1].p = lua_tolstring(L, -1, &ts->t[i - 1].n);
    lua_rawseti(L, anchor, (int)i);
  }
  ts->n = n;
  /* both stay on the stack until replay returns */
}

/* 1 when a frame with this topic goes to a reader of ts. */
static int topic_match(const topic_set *ts, const sse_frame *f) {
  if (!ts->t || !f->topic) return 1;
  for (size_t i = 0; i < ts->n; i++)
    if (ts->t[i].n == f->topic_len && memcmp(ts->t[i].p, f->topic, f->topic_len) == 0)
      return 1;
  return 0;
}

/* r:replay(last_id, send [, topics]) -> count [, "gap"]. Calls
 * send(bytes, topic | nil) for each held frame after last_id, oldest first, skipping frames whose
 * topic is not in topics. send may store, clear, close or raise: the loop
 * walks sequence numbers and looks each frame up again, holding nothing. */
static int l_replay(lua_State *L) {
  lring *u = check_ring(L, 1);
  size_t idlen;
  if (lua_type(L, 2) != LUA_TSTRING) type_error(L, 2, "string");
  const char *id = lua_tolstring(L, 2, &idlen);
  if (lua_type(L, 3) != LUA_TFUNCTION) type_error(L, 3, "function");
  topic_set ts;
  check_topics(L, 4, &ts);
  if (!u->ring) return push_closed(L);
  double now = ring_now(L, 1, u);
  if (!u->ring) return push_closed(L);
  sse_ring_expire(u->ring, now);

  size_t index;
  int gap = sse_ring_locate(u->ring, id, idlen, &index) != SSE_RING_FOUND;
  uint64_t seq = sse_ring_first_seq(u->ring) + index;
  uint64_t end = sse_ring_last_seq(u->ring); /* events stored by send wait */
  lua_Integer count = 0;
  while (seq <= end) {
    if (!u->ring) return push_closed(L);
    uint64_t first = sse_ring_first_seq(u->ring);
    if (seq < first) { /* send made the ring drop frames not yet replayed */
      gap = 1;
      seq = first;
      if (seq > end) break;
    }
    const sse_frame *f = sse_ring_frame_at(u->ring, (size_t)(seq - first));
    seq++;
    if (!f || !topic_match(&ts, f)) continue;
    lua_pushvalue(L, 3);
    lua_pushlstring(L, f->bytes, f->len);
    if (f->topic) lua_pushlstring(L, f->topic, f->topic_len);
    else lua_pushnil(L);
    lua_call(L, 2, 0);
    count++;
  }
  lua_pushinteger(L, count);
  if (!gap) return 1;
  lua_pushliteral(L, "gap");
  return 2;
}

/* r:last_id() -> the id of the newest event stored (held or not); before the
 * first store, "<epoch>-0", the position before the first event. */
static int l_last_id(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) return push_closed(L);
  push_id(L, u->ring, sse_ring_last_seq(u->ring));
  return 1;
}

/* r:first_id() -> the id of the oldest event still held, or nil when empty.
 * Does not expire (a replay would, first). */
static int l_first_id(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) return push_closed(L);
  if (sse_ring_len(u->ring) == 0) lua_pushnil(L);
  else push_id(L, u->ring, sse_ring_first_seq(u->ring));
  return 1;
}

static int l_len(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) return push_closed(L);
  lua_pushinteger(L, (lua_Integer)sse_ring_len(u->ring));
  return 1;
}

static int l_bytes(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) return push_closed(L);
  lua_pushinteger(L, (lua_Integer)sse_ring_bytes(u->ring));
  return 1;
}

/* r:oldest_age() -> seconds since the oldest held event was stored (by the
 * ring's clock, after dropping what the TTL expired), or nil when empty. */
static int l_oldest_age(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) return push_closed(L);
  double now = ring_now(L, 1, u);
  sse_ring_expire(u->ring, now);
  if (sse_ring_len(u->ring) == 0) {
    lua_pushnil(L);
  } else {
    double age = now - sse_ring_frame_at(u->ring, 0)->time;
    lua_pushnumber(L, age > 0 ? age : 0);
  }
  return 1;
}

/* r:clear() -> true. Drops every event; ids continue. */
static int l_clear(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) return push_closed(L);
  sse_ring_clear(u->ring);
  lua_pushboolean(L, 1);
  return 1;
}

/* r:close(), __gc and __close -> true. Idempotent: frees the ring and drops
 * the clock. */
static int l_close(lua_State *L) {
  lring *u = check_ring(L, 1);
  sse_ring_free(u->ring);
  u->ring = NULL;
  if (u->has_clock) {
    u->has_clock = 0;
    sse_getuservalue(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, -2, 1);
    lua_pop(L, 1);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lring *u = check_ring(L, 1);
  if (!u->ring) {
    lua_pushliteral(L, "sse.Ring (closed)");
  } else {
    size_t elen;
    const char *epoch = sse_ring_epoch(u->ring, &elen);
    lua_pushfstring(L, "sse.Ring (%s: %d events, %d bytes)", epoch,
                    (int)sse_ring_len(u->ring), (int)sse_ring_bytes(u->ring));
  }
  return 1;
}

/* Integer option opts[name] in lo..hi (required). */
static size_t opt_size(lua_State *L, const char *name, long long lo, long long hi,
                       const char *range) {
  long long v = 0;
  lua_getfield(L, 1, name);
  if (lua_type(L, -1) != LUA_TNUMBER || !sse_tointeger(L, -1, &v) || v < lo || v > hi)
    luaL_argerror(L, 1, lua_pushfstring(L, "%s must be an integer %s, got %s", name, range,
                                        lua_type(L, -1) == LUA_TNUMBER
                                            ? lua_tostring(L, -1)
                                            : luaL_typename(L, -1)));
  lua_pop(L, 1);
  return (size_t)v;
}

/* core.ring_new{max_events=, max_bytes=, ttl= [, epoch=] [, clock=]}: a new
 * empty sse.Ring. The three limits are required here (sse.MemoryReplayer
 * supplies the defaults); epoch defaults to a fresh one; clock (a function
 * returning seconds) defaults to CLOCK_MONOTONIC. */
static int l_ring_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t max_events = opt_size(L, "max_events", 1, SSE_RING_MAX_EVENTS,
                               "from 1 to 1073741824");
  size_t max_bytes = opt_size(L, "max_bytes", 1, 9007199254740991LL,
                              "from 1 to 9007199254740991");
  lua_getfield(L, 1, "ttl");
  double ttl = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(ttl > 0))
    luaL_argerror(L, 1, lua_pushfstring(L, "ttl must be a number > 0 (seconds), got %s",
                                        lua_type(L, -1) == LUA_TNUMBER
                                            ? lua_tostring(L, -1)
                                            : luaL_typename(L, -1)));
  lua_pop(L, 1);

  char epoch_buf[SSE_RING_DEFAULT_EPOCH_CAP];
  const char *epoch;
  size_t elen;
  lua_getfield(L, 1, "epoch"); /* stays on the stack: anchors epoch */
  if (lua_isnil(L, -1)) {
    elen = sse_ring_default_epoch(epoch_buf, sizeof epoch_buf);
    epoch = epoch_buf;
  } else {
    epoch = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &elen) : NULL;
    if (!epoch || !sse_ring_epoch_valid(epoch, elen))
      luaL_argerror(L, 1, "epoch must be 1 to 32 characters of [0-9A-Za-z_]");
  }
  lua_getfield(L, 1, "clock");
  int has_clock = !lua_isnil(L, -1);
  if (has_clock && lua_type(L, -1) != LUA_TFUNCTION)
    luaL_argerror(L, 1, lua_pushfstring(L, "clock must be a function, got %s",
                                        luaL_typename(L, -1)));
  int clock_idx = lua_gettop(L);

  lring *u = (lring *)sse_newudata(L, sizeof *u);
  u->ring = NULL;
  u->has_clock = 0;
  if (has_clock) {
    /* A fresh table, set explicitly: on LuaJIT a new userdata's environment
     * is the creating function's (the globals), which sse_getuservalue would
     * otherwise take for the user value. */
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, clock_idx);
    lua_rawseti(L, -2, 1);
    set_uservalue(L, -2);
    u->has_clock = 1;
  }
  luaL_setmetatable(L, RING_MT);
  /* last, so that no Lua error can strand it: */
  u->ring = sse_ring_new(epoch, elen, max_events, max_bytes, ttl);
  if (!u->ring) return luaL_error(L, "not enough memory");
  return 1;
}

void lsse_open_ring(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"store", l_store},       {"replay", l_replay}, {"last_id", l_last_id},
      {"first_id", l_first_id}, {"len", l_len},       {"bytes", l_bytes},
      {"clear", l_clear},       {"close", l_close},   {"oldest_age", l_oldest_age},
      {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
      {"__gc", l_close},
      {"__close", l_close},
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  static const luaL_Reg fns[] = {
      {"ring_new", l_ring_new},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, RING_MT)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, RING_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_setfield(L, -2, "ring_metatable"); /* how sse.Hub recognises a ring */
  luaL_setfuncs(L, fns, 0);
}
