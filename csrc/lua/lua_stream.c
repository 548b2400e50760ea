/* lua_stream.c - "sse.Stream": one client connection, the userdata itself
 * (lstream.h, docs/CORE.md 1-2). The methods written in C are here; the
 * shorthands (send_data, send_json, keep-alive, ...) are added to the same
 * method table by lua/sse/stream.lua.
 *
 * Transports: push (a luv stream handle the core writes), writer (a Lua
 * function drained after each send) and pull (on_ready wakes the host,
 * which calls take()). A stream is in exactly one C hub until finished: a
 * Hub's, or the home hub of its Lua state (lstream.h). */
#include "lstream.h"
#include "gzip.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

#define DEFAULT_WRITE_TIMEOUT 60.0 /* seconds; Stream.DEFAULT_WRITE_TIMEOUT */

/* --- small helpers ---------------------------------------------------------- */

double lsse_now(void) {
  struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void lsse_warn(lua_State *L, const char *what) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "sse: %s: %s\n", what, msg ? msg : "(error object is not a string)");
  lua_pop(L, 1);
}

int lsse_pcall(lua_State *L, int nargs, int nres, const char *what) {
  if (lua_pcall(L, nargs, nres, 0) == 0) return 1;
  lsse_warn(L, what);
  return 0;
}

void lsse_slot_get(lua_State *L, int idx, int n) {
#if LUA_VERSION_NUM >= 504
  lua_getiuservalue(L, idx, n);
#else
  idx = lua_absindex(L, idx);
#if LUA_VERSION_NUM >= 502
  lua_getuservalue(L, idx);
#else
  lua_getfenv(L, idx);
#endif
  lua_rawgeti(L, -1, n);
  lua_remove(L, -2);
#endif
}

void lsse_slot_set(lua_State *L, int idx, int n) {
#if LUA_VERSION_NUM >= 504
  lua_setiuservalue(L, idx, n);
#else
  idx = lua_absindex(L, idx);
#if LUA_VERSION_NUM >= 502
  lua_getuservalue(L, idx);
#else
  lua_getfenv(L, idx);
#endif
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
#endif
}

void *lsse_newudata_slots(lua_State *L, size_t size, int nslots) {
#if LUA_VERSION_NUM >= 504
  return lua_newuserdatauv(L, size, nslots);
#else
  void *p = lua_newuserdata(L, size);
  lua_createtable(L, nslots, 0);
#if LUA_VERSION_NUM >= 502
  lua_setuservalue(L, -2);
#else
  lua_setfenv(L, -2);
#endif
  return p;
#endif
}

lstream *lsse_check_stream(lua_State *L, int idx, int arg, const char *fname) {
  lstream *st = (lstream *)lsse_testudata(L, idx, STREAM_MT);
  if (!st) {
    if (!fname) luaL_checkudata(L, idx, STREAM_MT);
    lsse_argerror(L, arg, fname, "sse.Stream expected, got %s", luaL_typename(L, idx));
  }
  return st;
}

/* The libuv stream inside a luv handle userdata (luv keeps a pointer to the
 * handle in the userdata), or NULL when idx is not a luv stream. */
uv_stream_t *lsse_to_uv_stream(lua_State *L, int idx) {
  static const char *const mts[] = {CONN_MT, "uv_tcp", "uv_pipe", "uv_tty", NULL};
  for (int i = 0; mts[i]; i++) {
    void **ud = (void **)lsse_testudata(L, idx, mts[i]);
    if (ud && *ud) {
      uv_handle_t *h = (uv_handle_t *)*ud;
      uv_handle_type t = h->type;
      if (t == UV_TCP || t == UV_NAMED_PIPE || t == UV_TTY) return (uv_stream_t *)h;
    }
  }
  return NULL;
}

/* Bounds how long sent data may stay unacknowledged before the kernel fails
 * the connection (TCP_USER_TIMEOUT, Linux): a peer that vanished without FIN
 * or RST is noticed at the next write after ms, not after ~15 minutes of
 * retransmissions. Best effort: a no-op elsewhere or for non-TCP handles. */
void lsse_set_user_timeout(uv_stream_t *stream, unsigned ms) {
#if defined(__linux__) && defined(TCP_USER_TIMEOUT)
  uv_os_fd_t fd;
  if (ms == 0 || stream->type != UV_TCP || uv_fileno((uv_handle_t *)stream, &fd) != 0) return;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
#else
  (void)stream;
  (void)ms;
#endif
}

/* --- options (one place for Stream.new and Hub.new: docs/CORE.md 4) -------- */

const char *lsse_show_value(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) return luaL_typename(L, idx);
  lua_Number n = lua_tonumber(L, idx);
  if (n != n) return "nan";
  if (n == HUGE_VAL) return "inf";
  if (n == -HUGE_VAL) return "-inf";
  lua_pushvalue(L, idx);
  return lua_tostring(L, -1); /* anchored on the stack */
}

void lsse_outbox_opts(lua_State *L, int idx, const char *fname, outbox_opts *o) {
  int top = lua_gettop(L);
  o->limit = 0;
  o->policy = -1;
  o->write_timeout = -1;
  lua_getfield(L, idx, "outbox_limit");
  if (!lua_isnil(L, -1)) {
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= SSE_OUTBOX_MAX))
      lsse_argerror(L, 1, fname, "field 'outbox_limit': positive number expected, got %s",
                    lsse_show_value(L, -1));
    o->limit = v;
  }
  lua_getfield(L, idx, "slow_policy");
  if (!lua_isnil(L, -1)) {
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (p && strcmp(p, "close") == 0) o->policy = SSE_SLOW_CLOSE;
    else if (p && strcmp(p, "drop_oldest") == 0) o->policy = SSE_SLOW_DROP_OLDEST;
    else
      lsse_argerror(L, 1, fname,
                    "field 'slow_policy': \"close\" or \"drop_oldest\" expected, got %s",
                    p ? p : luaL_typename(L, -1));
  }
  lua_getfield(L, idx, "write_timeout");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    o->write_timeout = 0;
  } else if (!lua_isnil(L, -1)) {
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v > 0 && v <= SSE_WRITE_TIMEOUT_MAX))
      lsse_argerror(L, 1, fname,
                    "field 'write_timeout': positive number of seconds or false expected, got %s",
                    lsse_show_value(L, -1));
    o->write_timeout = v;
  }
  lua_settop(L, top);
}

/* core.check_options(opts, fname): the same checks, for a caller's table. */
static int l_check_options(lua_State *L) {
  const char *fname = luaL_optstring(L, 2, "new");
  luaL_checktype(L, 1, LUA_TTABLE);
  outbox_opts o;
  lsse_outbox_opts(L, 1, fname, &o);
  lua_settop(L, 1);
  return 1;
}

/* --- close and finish --------------------------------------------------------- */

static const char *core_reason(const sse_sub *s) {
  switch (sse_sub_reason(s)) {
  case SSE_CLOSE_SLOW: return "slow";
  case SSE_CLOSE_WRITE: return "write failed";
  case SSE_CLOSE_TIMEOUT: return "drain timeout";
  default: return "closed";
  }
}

/* Pushes the close reason of the stream at idx: once finished, the one its
 * on_close slot keeps (the callbacks ran); before, the core's (a draining
 * stream's "closed", which may yet become "drain timeout"). */
static void push_reason(lua_State *L, int idx, lstream *st) {
  if (st->flags & SF_DONE) {
    lsse_slot_get(L, idx, SLOT_ON_CLOSE);
    if (lua_type(L, -1) == LUA_TSTRING) return;
    lua_pop(L, 1);
  }
  lua_pushstring(L, st->s ? core_reason(st->s) : "closed");
}

static void push_topic(const char *name, size_t len, void *ud);

int lsse_leave_begin(lua_State *L, int idx) {
  lstream *st = (lstream *)lua_touserdata(L, idx);
  if (!st->s || (st->flags & SF_LEFT)) return 0;
  lhub *u = lsse_push_hub_of(L, sse_sub_hub(st->s));
  if (!u || u->home) {
    lua_pop(L, 1);
    return 0;
  }
  st->flags |= SF_LEFT;
  lsse_slot_get(L, -1, HSLOT_LEAVE);
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_newtable(L);
  sse_sub_each_topic(st->s, push_topic, L);
  return 1;
}

void lsse_leave_end(lua_State *L, int idx, int reason_idx) {
  idx = lua_absindex(L, idx);
  reason_idx = lua_absindex(L, reason_idx);
  /* stack: ..., handler, topics */
  lua_pushvalue(L, idx);
  lua_insert(L, -2);
  lua_pushvalue(L, reason_idx);
  lua_insert(L, -2);
  lsse_pcall(L, 3, 0, "hub leave handler");
}

void lsse_stream_finish(lua_State *L, int idx, int reason_idx) {
  lstream *st = (lstream *)lua_touserdata(L, idx);
  if (!st->s || (st->flags & SF_DONE)) return;
  idx = lua_absindex(L, idx);
  if (reason_idx) reason_idx = lua_absindex(L, reason_idx);
  int top = lua_gettop(L);
  if (reason_idx) lua_pushvalue(L, reason_idx); /* top + 1: the reason */
  else push_reason(L, idx, st);
  st->flags |= SF_DONE | SF_CLOSED;
  int leave = lsse_leave_begin(L, idx); /* its topics, before they go */
  sse_sub *s = st->s;
  int drain_watched = sse_sub_drain_watched(s); /* the remove ends the watch: reported below */
  lsse_unwatch(st);
  lsse_unanchor(L, st);
  sse_hub_remove(s);
  sse_sub_close(s, 0, 0, 0);
  if (leave) lsse_leave_end(L, idx, top + 1);
  if (st->kind == K_PUSH) {
    lsse_slot_get(L, idx, SLOT_TRANSPORT);
    uv_stream_t *h = lsse_to_uv_stream(L, -1);
    if (h && !uv_is_closing((uv_handle_t *)h)) {
      lua_getfield(L, -1, "close");
      lua_pushvalue(L, -2);
      lsse_pcall(L, 1, 0, "closing a stream's handle");
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lsse_slot_set(L, idx, SLOT_TRANSPORT);
  }
  /* the callbacks out, the reason in: one slot for both */
  lsse_slot_get(L, idx, SLOT_ON_CLOSE);
  lua_pushvalue(L, top + 1);
  lsse_slot_set(L, idx, SLOT_ON_CLOSE);
  int cbs = lua_gettop(L);
  if (lua_isfunction(L, cbs)) {
    lua_pushvalue(L, cbs);
    lua_pushvalue(L, top + 1);
    lua_pushvalue(L, idx);
    lsse_pcall(L, 2, 0, "on_close callback failed");
  } else if (lua_istable(L, cbs)) {
    int n = (int)lua_rawlen(L, cbs);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, cbs, i);
      lua_pushvalue(L, top + 1);
      lua_pushvalue(L, idx);
      lsse_pcall(L, 2, 0, "on_close callback failed");
    }
  }
  lua_settop(L, top);
  if (drain_watched) lsse_stream_drained(L, idx);
}

#define DRAIN_KEY "sse.drain_handler"

void lsse_stream_drained(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, DRAIN_KEY);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, idx);
  lsse_pcall(L, 1, 0, "on_drain handler failed");
}

/* core.set_drain_handler(fn): fn(stream) is called when a stream's drain
 * watch (stream:_watch_drain) is due. */
static int l_set_drain_handler(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, DRAIN_KEY);
  return 0;
}

/* stream:_watch_drain(low) -> true, or false when the stream is closed: the
 * drain handler is called once the outbox holds low bytes or fewer (the
 * core notices it in its flush or take, no polling) or the stream closes. */
static int l_watch_drain(lua_State *L) {
  lstream *st = lsse_check_stream(L, 1, 0, "_watch_drain");
  lua_Number low = luaL_checknumber(L, 2);
  if ((st->flags & (SF_CLOSED | SF_DONE)) || sse_sub_state(st->s) == SSE_SUB_CLOSED) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lhub *home = lsse_home(L);
  if (sse_sub_hub(st->s) == home->h) lsse_home_loop(L, lua_gettop(L)); /* its report runs on luv */
  size_t mark = low <= 0 ? 0 : low >= (lua_Number)SSE_OUTBOX_MAX ? (size_t)SSE_OUTBOX_MAX : (size_t)low;
  int rc = sse_sub_watch_drain(st->s, mark);
  if (rc == SSE_HUB_ENOMEM) return luaL_error(L, "not enough memory");
  lua_pushboolean(L, rc == 0);
  return 1;
}

/* --- transports after a change ----------------------------------------------- */

/* Pushes everything queued for a pull/writer stream (possibly ""). A take
 * of up to TAKE_STACK bytes (one small event per wake, the common case at a
 * steady rate) is copied through the C stack: no Lua scratch object per
 * delivery, so a fan-out to N pull streams leaves no N userdata for the GC. */
#define TAKE_STACK 2048
static void push_taken(lua_State *L, sse_sub *s) {
  size_t n = sse_sub_take_size(s);
  if (n == 0) {
    lua_pushliteral(L, "");
    return;
  }
  if (n <= TAKE_STACK) {
    char small[TAKE_STACK];
    size_t got = sse_sub_take(s, small);
    lua_pushlstring(L, small, got);
    return;
  }
  char *buf = (char *)lua_newuserdata(L, n); /* Lua-owned scratch */
  size_t got = sse_sub_take(s, buf);
  lua_pushlstring(L, buf, got);
  lua_remove(L, -2);
}

/* Hands what is queued to the writer; closes the stream (reason: the
 * writer's error) when it fails. Returns 1, or 0 when the stream closed. */
static int drain_writer(lua_State *L, int idx, lstream *st) {
  if (sse_sub_take_size(st->s) == 0) return 1;
  int top = lua_gettop(L);
  lsse_slot_get(L, idx, SLOT_TRANSPORT);
  push_taken(L, st->s);
  int ok = lua_pcall(L, 1, 2, 0) == 0;
  if (ok && lua_toboolean(L, top + 1)) {
    lua_settop(L, top);
    return 1;
  }
  if (ok) {
    if (lua_isnil(L, top + 2)) lua_pushliteral(L, "write failed");
    else {
      lua_pushvalue(L, top + 2);
      if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        lua_pushstring(L, luaL_typename(L, top + 2));
      }
    }
  } else {
    const char *m = lua_tostring(L, top + 1);
    lua_pushfstring(L, "writer error: %s", m ? m : luaL_typename(L, top + 1));
  }
  if (!(st->flags & SF_DONE)) {
    st->flags |= SF_CLOSED;
    lsse_stream_finish(L, idx, -1);
  }
  lua_settop(L, top);
  return 0;
}

/* Tells a pull stream's host that bytes wait (once per batch). */
static void announce(lua_State *L, int idx, lstream *st) {
  if (st->flags & SF_ANNOUNCED) return;
  st->flags |= SF_ANNOUNCED;
  lsse_slot_get(L, idx, SLOT_TRANSPORT);
  lua_pushvalue(L, idx);
  lsse_pcall(L, 1, 0, "on_ready callback failed");
}

void lsse_stream_settle(lua_State *L, int idx, int write_now) {
  lstream *st = (lstream *)lua_touserdata(L, idx);
  if (!st->s || (st->flags & SF_DONE)) return;
  idx = lua_absindex(L, idx);
  sse_sub *s = st->s;
  if (sse_sub_state(s) == SSE_SUB_CLOSED) {
    lsse_stream_finish(L, idx, 0);
    return;
  }
  switch (st->kind) {
  case K_WRITER:
    drain_writer(L, idx, st);
    break;
  case K_PULL:
    if (sse_sub_take_size(s) > 0) announce(L, idx, st);
    break;
  default: {
    sse_hub *h = sse_sub_hub(s);
    if (write_now || !h || !sse_hub_turns(h)) {
      sse_sub_flush(s);
      if (sse_sub_state(s) == SSE_SUB_CLOSED) lsse_stream_finish(L, idx, 0);
    }
  }
  }
}

/* --- construction -------------------------------------------------------------- */

/* Stream.new{handle = | writer = | on_ready =, head =, last_event_id =,
 * outbox_limit =, slow_policy =, write_timeout =}: every field checked here,
 * naming 'new' and the field. */
static int l_stream_new(lua_State *L) {
  const char *fname = "new";
  if (lua_type(L, 1) != LUA_TTABLE) lsse_typeerror(L, 1, fname, "table", 1);
  lua_settop(L, 1);
  /* a caller that builds the options (sse.http's res:sse) names itself */
  lua_getfield(L, 1, "_fname");
  if (lua_type(L, -1) == LUA_TSTRING) fname = lua_tostring(L, -1); /* anchored: the table holds it */
  lua_pop(L, 1);
  lua_getfield(L, 1, "handle");   /* 2 */
  lua_getfield(L, 1, "writer");   /* 3 */
  lua_getfield(L, 1, "on_ready"); /* 4 */
  int given = !lua_isnil(L, 2) + !lua_isnil(L, 3) + !lua_isnil(L, 4);
  if (given != 1)
    lsse_argerror(L, 1, fname, "exactly one of 'handle' (luv stream), 'writer' (function) or "
                               "'on_ready' (function) expected");
  uv_stream_t *stream = NULL;
  int kind, tidx;
  if (!lua_isnil(L, 2)) {
    stream = lsse_to_uv_stream(L, 2);
    if (!stream)
      lsse_argerror(L, 1, fname, "field 'handle': luv stream handle (tcp, pipe or tty) expected, got %s",
                    luaL_typename(L, 2));
    if (uv_is_closing((uv_handle_t *)stream)) lsse_argerror(L, 1, fname, "field 'handle': handle is closed");
    kind = K_PUSH;
    tidx = 2;
  } else if (!lua_isnil(L, 3)) {
    if (!lua_isfunction(L, 3)) lsse_typeerror(L, 1, fname, "field 'writer': function", 3);
    kind = K_WRITER;
    tidx = 3;
  } else {
    if (!lua_isfunction(L, 4)) lsse_typeerror(L, 1, fname, "field 'on_ready': function", 4);
    kind = K_PULL;
    tidx = 4;
  }
  lua_getfield(L, 1, "head"); /* 5 */
  if (!lua_isnil(L, 5) && lua_type(L, 5) != LUA_TSTRING)
    lsse_typeerror(L, 1, fname, "field 'head': string", 5);
  lua_getfield(L, 1, "last_event_id"); /* 6 */
  if (!lua_isnil(L, 6) && lua_type(L, 6) != LUA_TSTRING)
    lsse_typeerror(L, 1, fname, "field 'last_event_id': string", 6);
  lua_getfield(L, 1, "envelope");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
    lsse_typeerror(L, 1, fname, "field 'envelope': boolean", -1);
  int envelope = lua_toboolean(L, -1);
  lua_pop(L, 1);
  outbox_opts o;
  lsse_outbox_opts(L, 1, fname, &o);
  double wt = o.write_timeout < 0 ? DEFAULT_WRITE_TIMEOUT : o.write_timeout;
  /* sse.http set the default on its listener; accepted sockets have it */
  lua_getfield(L, 1, "_inherits_write_timeout");
  if (lua_toboolean(L, -1) && o.write_timeout < 0) wt = 0;
  lua_pop(L, 1);

  lhub *home = lsse_home(L); /* 7 */
  /* a push stream: the home hub runs on luv's loop (from the first one on) */
  if (kind == K_PUSH) lsse_home_loop(L, 7);
  (void)home;
  lstream *st = (lstream *)lsse_newudata_slots(L, sizeof *st, STREAM_SLOTS); /* 8 */
  st->s = NULL;
  st->tag = 0;
  st->wfd = -1;
  st->kind = (uint8_t)kind;
  st->flags = (uint8_t)((o.limit > 0 ? SF_OWN_LIMIT : 0) | (o.policy >= 0 ? SF_OWN_POLICY : 0));
  lua_pushvalue(L, tidx);
  lsse_slot_set(L, 8, SLOT_TRANSPORT);
  lua_pushvalue(L, 6);
  lsse_slot_set(L, 8, SLOT_LAST_ID);
  luaL_setmetatable(L, STREAM_MT);
  /* last, so that no Lua error can strand it (and __gc frees it) */
  st->s = sse_sub_new(stream, o.limit > 0 ? (size_t)o.limit : SSE_STREAM_OUTBOX_DEFAULT,
                      o.policy >= 0 ? o.policy : SSE_SLOW_CLOSE);
  if (!st->s) return luaL_error(L, "not enough memory");
  lsse_gc_account(L, sse_sub_size());
  if (stream) lsse_set_user_timeout(stream, (unsigned)(wt * 1000));
  if (lsse_stream_move(L, 8, 7) != 0) return luaL_error(L, "not enough memory");
  if (!lua_isnil(L, 5)) {
    /* the response head: the first bytes this stream's transport gets */
    size_t n;
    const char *b = lua_tolstring(L, 5, &n);
    sse_frame *f = sse_frame_new(b, n, NULL, 0);
    if (!f) return luaL_error(L, "not enough memory");
    int rc = sse_sub_push_head(st->s, f); /* exempt: never dropped */
    sse_frame_unref(f);
    if (rc != 0) return luaL_error(L, "not enough memory");
  }
  /* envelope mode: what follows the head comes as `event: sse` + JSON */
  if (envelope) sse_sub_set_envelope(st->s, 1);
  if (!lua_isnil(L, 5)) lsse_stream_settle(L, 8, 0);
  lua_settop(L, 8);
  return 1;
}

/* --- methods --------------------------------------------------------------------- */

static lstream *self_of(lua_State *L, const char *fname) {
  return lsse_check_stream(L, 1, 0, fname);
}

/* The result of a send: true, or nil, "closed" (finishing a stream the
 * core closed). */
static int sent(lua_State *L, lstream *st, int ok) {
  lsse_stream_settle(L, 1, 1);
  if (!ok || (st->flags & SF_CLOSED)) return lsse_fail(L, 0, "closed");
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:send(ev) and stream:_send(ev, fname) (the shorthands name
 * themselves in errors) -> true | nil, "closed" */
static int l_send(lua_State *L) {
  const char *fname = luaL_optstring(L, 3, "send");
  lstream *st = self_of(L, fname);
  if (st->flags & SF_CLOSED) return lsse_fail(L, 0, "closed");
  sse_event ev;
  int check_utf8;
  lua_settop(L, 2);
  lsse_check_event(L, 2, 1, fname, &ev, &check_utf8); /* reads raw: no Lua runs */
  sse_frame *f = lsse_event_frame_as(L, &ev, check_utf8, 1, fname, NULL, 0);
  lua_settop(L, 2);
  double now = lsse_now();
  f->time = now;
  int ok = sse_sub_push(st->s, f, now);
  sse_frame_unref(f);
  return sent(L, st, ok);
}

/* stream:_send_raw(bytes [, replay]): pre-encoded wire bytes (trusted).
 * replay: the replay a client asked for, exempt from the outbox limit while
 * unsent. */
static int l_send_raw(lua_State *L) {
  lstream *st = self_of(L, "_send_raw");
  size_t n;
  const char *b = luaL_checklstring(L, 2, &n);
  int replay = lua_toboolean(L, 3);
  if (st->flags & SF_CLOSED) return lsse_fail(L, 0, "closed");
  sse_sub *s = st->s;
  sse_frame *f = sse_frame_new(b, n, NULL, 0);
  if (!f) return luaL_error(L, "not enough memory");
  double now = lsse_now();
  f->time = now;
  int ok;
  if (replay) {
    sse_sub_replay_begin(s);
    ok = sse_sub_replay_frame(s, f) == 0;
    sse_sub_replay_end(s, 0, NULL);
  } else {
    ok = sse_sub_push(s, f, now);
  }
  sse_frame_unref(f);
  return sent(L, st, ok);
}

/* stream:take() -> the bytes queued for a pull transport ("" when none), or
 * nil, reason once the stream is closed and nothing is left. */
static int l_take(lua_State *L) {
  lstream *st = self_of(L, "take");
  sse_sub *s = st->s;
  st->flags &= (uint8_t)~SF_ANNOUNCED;
  if (!(st->flags & SF_DONE) && sse_sub_take_size(s) > 0) {
    push_taken(L, s);
    return 1;
  }
  if ((st->flags & SF_CLOSED) || sse_sub_state(s) == SSE_SUB_CLOSED) {
    lsse_stream_finish(L, 1, 0);
    st->flags |= SF_ENDED;
    lua_pushnil(L);
    push_reason(L, 1, st);
    return 2;
  }
  lua_pushliteral(L, "");
  return 1;
}

/* stream:close([reason]): no reason: what is queued still reaches the
 * client (the core drains it, CLOSE_GRACE_MS at most), then the transport
 * closes and on_close runs; a reason means the client is gone: at once. */
static int l_close(lua_State *L) {
  lstream *st = self_of(L, "close");
  int graceful = lua_isnoneornil(L, 2);
  if (!graceful && lua_type(L, 2) != LUA_TSTRING) lsse_typeerror(L, 1, "close", "string or nil", 2);
  lua_settop(L, 2);
  if (st->flags & SF_CLOSED) return 0;
  st->flags |= SF_CLOSED;
  /* 3: what the hub's leave handler and on_close hear (graceful: the
   * core's at the end of the drain) */
  if (graceful) lua_pushliteral(L, "closed");
  else lua_pushvalue(L, 2);
  int leave = lsse_leave_begin(L, 1); /* 4, 5: presence hears its topics */
  sse_sub *s = st->s;
  int drained = 0;
  if (st->kind == K_WRITER) {
    if (!graceful || drain_writer(L, 1, st)) lsse_stream_finish(L, 1, graceful ? 0 : 3);
  } else if (graceful && sse_sub_state(s) == SSE_SUB_OPEN && sse_sub_has_rest(s) &&
             !sse_sub_replaying(s)) {
    int can = st->kind == K_PULL;
    if (st->kind == K_PUSH) {
      lsse_slot_get(L, 1, SLOT_TRANSPORT);
      uv_stream_t *h = lsse_to_uv_stream(L, -1);
      lua_pop(L, 1);
      can = h && !uv_is_closing((uv_handle_t *)h);
    }
    /* the home hub writes (or hands) the rest and reports the end */
    if (can) {
      lsse_home(L);
      if (st->kind == K_PUSH) lsse_home_loop(L, lua_gettop(L));
      drained = lsse_stream_move(L, 1, -1) == 0 &&
                sse_sub_close(s, 1, lsse_now(), SSE_CLOSE_GRACE_MS / 1000.0) == 1;
      lua_pop(L, 1);
    }
    if (drained) {
      lsse_anchor_draining(L, 1, 1);
      if (st->kind == K_PUSH) lsse_home_drain_timer(L);
    }
  }
  if (!drained && st->kind != K_WRITER) lsse_stream_finish(L, 1, graceful ? 0 : 3);
  if (leave) lsse_leave_end(L, 1, 3);
  if (drained && st->kind == K_PULL) {
    st->flags &= (uint8_t)~SF_ANNOUNCED;
    announce(L, 1, st);
  }
  return 0;
}

static int l_noop_cb(lua_State *L) {
  (void)L;
  return 0;
}

/* --- the EOF watch: the core reads a push stream's connection --------------

 * A stream's connection is read for its end only: whatever the client sends
 * is thrown away. The core takes libuv's read callbacks over (uv_stream_t's
 * alloc_cb and read_cb, public fields of uv.h) while the handle reads, so
 * no Lua closure per stream and no epoll change are needed; luv keeps one
 * shared no-op as its callback. The callbacks find the stream's subscriber
 * through its fd (fds are unique in the process; the map is per thread, the
 * thread of the loop), and the Lua state through the subscriber's hub. */
static __thread sse_sub **watch_fd;
static __thread size_t watch_cap;
static __thread char watch_buf[4096];

static sse_sub *watched(int fd) {
  return fd >= 0 && (size_t)fd < watch_cap ? watch_fd[fd] : NULL;
}

void lsse_unwatch(lstream *st) {
  if (!(st->flags & SF_WATCHED)) return;
  st->flags &= (uint8_t)~SF_WATCHED;
  if (watched(st->wfd) == st->s) watch_fd[st->wfd] = NULL;
}

static void watch_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(watch_buf, sizeof watch_buf);
}

/* In the Lua state of its hub, protected: the stream of sub (upvalue-less:
 * the arguments are the sub and the libuv error) closes. */
static int watch_close(lua_State *L) {
  sse_sub *s = (sse_sub *)lua_touserdata(L, 1);
  int err = (int)lua_tointeger(L, 2);
  if (!lsse_push_hub_of(L, sse_sub_hub(s))) return 0;
  lsse_slot_get(L, -1, HSLOT_ANCHORS);
  lua_rawgeti(L, -1, (int)sse_sub_id(s));
  lstream *st = (lstream *)lsse_testudata(L, -1, STREAM_MT);
  if (!st || st->s != s) return 0;
  lua_pushcfunction(L, l_close);
  lua_insert(L, -2);
  lua_pushstring(L, err == UV_EOF ? "eof" : uv_err_name(err));
  lua_call(L, 2, 0);
  return 0;
}

static void watch_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread >= 0) return; /* bytes (or none): ignored */
  uv_os_fd_t fd;
  sse_sub *s = uv_fileno((uv_handle_t *)h, &fd) == 0 ? watched((int)fd) : NULL;
  lhub *u = s && sse_sub_stream(s) == h && sse_sub_hub(s) ? (lhub *)sse_hub_user(sse_sub_hub(s)) : NULL;
  if (!u || !u->L) {
    uv_read_stop(h); /* no stream any more: nothing to tell */
    return;
  }
  lua_State *L = u->L;
  lua_pushcfunction(L, watch_close);
  lua_pushlightuserdata(L, s);
  lua_pushinteger(L, (lua_Integer)nread);
  lsse_pcall(L, 2, 0, "closing a stream at the end of its input");
}

int lsse_fd_table_fit(void **tab, size_t *cap, size_t fd, size_t elem) {
  if (fd < *cap) return 0;
  size_t n = *cap ? *cap : 1024;
  while (n <= fd) n *= 2;
  char *m = (char *)realloc(*tab, n * elem);
  if (!m) return -1;
  memset(m + *cap * elem, 0, (n - *cap) * elem);
  *tab = m;
  *cap = n;
  return 0;
}

/* stream:_watch_eof() -> true | nil, err: from now on the core reads the
 * stream's connection (it must be reading already, or start now) and
 * closes the stream at its end ("eof") or on a read error. */
static int l_watch_eof(lua_State *L) {
  lstream *st = self_of(L, "_watch_eof");
  if (st->kind != K_PUSH || (st->flags & SF_DONE)) return lsse_fail(L, 0, "not an open push stream");
  if (st->flags & SF_WATCHED) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lsse_slot_get(L, 1, SLOT_TRANSPORT); /* 2 */
  uv_stream_t *h = lsse_to_uv_stream(L, 2);
  uv_os_fd_t fd;
  if (!h || uv_is_closing((uv_handle_t *)h) || uv_fileno((uv_handle_t *)h, &fd) != 0 || fd < 0)
    return lsse_fail(L, 0, "closed");
  if (lsse_reader_forget(h) || lsse_listen_reading(h)) {
    /* read by the core (core.read_start, or the listener's first read):
     * luv holds no callback; the watch's callbacks come below */
    if (!h->read_cb && uv_read_start(h, watch_alloc, watch_read) < 0)
      return lsse_fail(L, 0, "read failed");
  } else {
    /* luv's callback: one shared no-op (luv takes it before asking libuv,
     * which answers EALREADY when the handle reads already: it goes on) */
    lua_getfield(L, 2, "read_start");
    lua_pushvalue(L, 2);
    lua_pushcfunction(L, l_noop_cb);
    lua_call(L, 2, 3);
    if (!lua_toboolean(L, -3) && !(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "EALREADY") == 0))
      return lsse_fail(L, 0, "read failed");
  }
  if (lsse_fd_table_fit((void **)&watch_fd, &watch_cap, (size_t)fd, sizeof *watch_fd) != 0)
    return luaL_error(L, "not enough memory");
  watch_fd[fd] = st->s;
  st->wfd = (int32_t)fd;
  st->flags |= SF_WATCHED;
  h->alloc_cb = watch_alloc;
  h->read_cb = watch_read;
  lsse_anchor_draining(L, 1, 1); /* strongly anchored while watched */
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:_set_tag(n): its owner's mark (an integer 1..65535); core.tagged(n)
 * -> the unfinished streams with that mark, a list; core.new_tag() -> a
 * fresh mark. (sse.http: a server's streams, without a table of them.) */
static int l_set_tag(lua_State *L) {
  lstream *st = self_of(L, "_set_tag");
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0 && n <= 65535, 2, "tag out of range");
  st->tag = (uint16_t)n;
  return 0;
}

static int l_tagged(lua_State *L) {
  lsse_push_tagged(L, (int)luaL_checkinteger(L, 1));
  return 1;
}

static int l_new_tag(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "sse.tags");
  lua_Integer n = lua_tointeger(L, -1) % 65535 + 1;
  lua_pushinteger(L, n);
  lua_setfield(L, LUA_REGISTRYINDEX, "sse.tags");
  lua_pushinteger(L, n);
  return 1;
}

/* core.set_write_timeout(handle, seconds): TCP_USER_TIMEOUT on a luv TCP
 * handle (a listener's is inherited by the connections it accepts, on
 * Linux). */
static int l_set_write_timeout(lua_State *L) {
  uv_stream_t *h = lsse_to_uv_stream(L, 1);
  if (!h) lsse_typeerror(L, 1, "set_write_timeout", "luv tcp handle", 1);
  lua_Number v = luaL_checknumber(L, 2);
  if (!(v > 0 && v <= SSE_WRITE_TIMEOUT_MAX)) lsse_argerror(L, 2, "set_write_timeout", "seconds out of range");
  lsse_set_user_timeout(h, (unsigned)(v * 1000));
  return 0;
}

static int l_gc(lua_State *L) {
  lstream *st = (lstream *)lua_touserdata(L, 1);
  if (st->s) {
    lsse_unwatch(st);
    sse_sub_free(st->s); /* leaves its hub; an in-flight write frees it later */
    st->s = NULL;
  }
  return 0;
}

/* __close (Lua 5.4 to-be-closed variables): a graceful close. */
static int l_tbc(lua_State *L) {
  lua_settop(L, 1);
  return l_close(L);
}

static int l_tostring(lua_State *L) {
  lstream *st = self_of(L, "__tostring");
  lua_pushstring(L, st->flags & SF_CLOSED ? "sse.Stream(closed)" : "sse.Stream(open)");
  return 1;
}

/* stream:on_close(fn): fn(reason, stream) once, when the stream closes (at
 * once when it is closed already). */
static int l_on_close(lua_State *L) {
  lstream *st = self_of(L, "on_close");
  if (!lua_isfunction(L, 2)) lsse_typeerror(L, 1, "on_close", "function", 2);
  lua_settop(L, 2);
  if (st->flags & SF_CLOSED) {
    lua_pushvalue(L, 2);
    push_reason(L, 1, st);
    lua_pushvalue(L, 1);
    lsse_pcall(L, 2, 0, "on_close callback failed");
    return 0;
  }
  lsse_slot_get(L, 1, SLOT_ON_CLOSE); /* 3 */
  if (lua_isnil(L, 3)) {
    lua_pushvalue(L, 2);
  } else if (lua_isfunction(L, 3)) {
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 2);
  } else {
    lua_pushvalue(L, 2);
    lua_rawseti(L, 3, (int)lua_rawlen(L, 3) + 1);
    return 0;
  }
  lsse_slot_set(L, 1, SLOT_ON_CLOSE);
  return 0;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, (self_of(L, "is_closed")->flags & SF_CLOSED) != 0);
  return 1;
}

static int l_last_event_id(lua_State *L) {
  self_of(L, "last_event_id");
  lsse_slot_get(L, 1, SLOT_LAST_ID);
  return 1;
}

/* Bytes queued for this client and not yet accepted by its transport. */
static int l_queued_bytes(lua_State *L) {
  lstream *st = self_of(L, "queued_bytes");
  lua_pushinteger(L, (st->flags & SF_DONE) ? 0 : (lua_Integer)sse_sub_queued(st->s));
  return 1;
}

/* stream:stats() -> {bytes_sent, dropped, queued, topics, id}; id: the
 * stream's number in its Hub (small, reused once it leaves), nil in none. */
static int l_stats(lua_State *L) {
  lstream *st = self_of(L, "stats");
  sse_sub_stats ss;
  sse_sub_get_stats(st->s, &ss);
  lua_createtable(L, 0, 5);
  lua_pushnumber(L, (lua_Number)ss.bytes_sent);
  lua_setfield(L, -2, "bytes_sent");
  lua_pushnumber(L, (lua_Number)ss.dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)ss.queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, (lua_Integer)ss.topics);
  lua_setfield(L, -2, "topics");
  if (ss.gzip_memory) { /* a gzip stream: its compressor's figures */
    lua_pushinteger(L, (lua_Integer)ss.gzip_in);
    lua_setfield(L, -2, "gzip_in");
    lua_pushinteger(L, (lua_Integer)ss.gzip_out);
    lua_setfield(L, -2, "gzip_out");
    lua_pushinteger(L, (lua_Integer)ss.gzip_memory);
    lua_setfield(L, -2, "gzip_memory");
  }
  sse_hub *h = sse_sub_hub(st->s);
  if (h && !((lhub *)sse_hub_user(h))->home) {
    lua_pushinteger(L, (lua_Integer)sse_sub_id(st->s));
    lua_setfield(L, -2, "id");
  }
  return 1;
}

/* stream:_state() -> "open" | "replaying" | "draining" | "closed" [, reason] */
static int l_state(lua_State *L) {
  lstream *st = self_of(L, "_state");
  int state = sse_sub_state(st->s);
  if ((st->flags & SF_DONE) || state == SSE_SUB_CLOSED) {
    lua_pushliteral(L, "closed");
    push_reason(L, 1, st);
    return 2;
  }
  if (state == SSE_SUB_DRAINING) lua_pushliteral(L, "draining");
  else if (sse_sub_replaying(st->s)) lua_pushliteral(L, "replaying");
  else lua_pushliteral(L, "open");
  return 1;
}

static void push_topic(const char *name, size_t len, void *ud) {
  lua_State *L = (lua_State *)ud;
  lua_pushlstring(L, name, len);
  lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
}

/* stream:_topics() -> the topics the stream is subscribed to (most recent
 * first); for presence. */
static int l_topics(lua_State *L) {
  lstream *st = self_of(L, "_topics");
  lua_newtable(L);
  sse_sub_each_topic(st->s, push_topic, L);
  return 1;
}

/* stream:_gzip(level, window_bits, mem_level) -> true | nil, err: what is
 * queued from now on is gzip-compressed (hub.h, sse_sub_set_gzip). The
 * options are checked by the Lua layer, which names them; here a bad one
 * raises. */
static int l_gzip(lua_State *L) {
  lstream *st = self_of(L, "_gzip");
  int level = (int)luaL_checkinteger(L, 2), wbits = (int)luaL_checkinteger(L, 3);
  int mem = (int)luaL_checkinteger(L, 4);
  const char *which;
  if (sse_gz_check(level, wbits, mem, &which) != 0)
    return lsse_argerror(L, 1, "new", "field 'compress': %s out of range", which);
  int rc = (st->flags & SF_CLOSED) ? SSE_HUB_EINVAL : sse_sub_set_gzip(st->s, level, wbits, mem);
  if (rc == SSE_HUB_ENOMEM) return lsse_fail(L, 0, "out of memory");
  if (rc != 0) return lsse_fail(L, 0, "gzip needs an open push stream, once");
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:_set_envelope(on): envelope mode for what is queued from now on;
 * stream:_envelope() -> is it on? */
static int l_set_envelope(lua_State *L) {
  lstream *st = self_of(L, "_set_envelope");
  sse_sub_set_envelope(st->s, lua_toboolean(L, 2));
  return 0;
}

static int l_envelope(lua_State *L) {
  lua_pushboolean(L, sse_sub_envelope(self_of(L, "_envelope")->s));
  return 1;
}

/* stream:_handle() -> the luv handle of a push stream (nil once closed). */
static int l_handle(lua_State *L) {
  lstream *st = self_of(L, "_handle");
  if (st->kind != K_PUSH) return 0;
  lsse_slot_get(L, 1, SLOT_TRANSPORT);
  return 1;
}

void lsse_open_stream(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"send", l_send},           {"_send", l_send},           {"_send_raw", l_send_raw},
      {"take", l_take},           {"close", l_close},          {"on_close", l_on_close},
      {"is_closed", l_is_closed}, {"last_event_id", l_last_event_id},
      {"queued_bytes", l_queued_bytes}, {"stats", l_stats},   {"_state", l_state},
      {"_topics", l_topics},      {"_handle", l_handle},       {"_set_gzip", l_gzip},
      {"_set_envelope", l_set_envelope}, {"_envelope", l_envelope}, {"_set_tag", l_set_tag},
      {"_watch_eof", l_watch_eof}, {"_watch_drain", l_watch_drain}, {NULL, NULL}};
  luaL_newmetatable(L, STREAM_MT);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "stream_methods"); /* sse.stream adds the Lua ones */
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tbc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, STREAM_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "stream_metatable");
  /* accepted sockets inherit their listener's TCP_NODELAY and
   * TCP_USER_TIMEOUT (Linux): set them once on the listener */
#if defined(__linux__)
  lua_pushboolean(L, 1);
#else
  lua_pushboolean(L, 0);
#endif
  lua_setfield(L, -2, "accepted_inherit");
  static const luaL_Reg fns[] = {
      {"stream_new", l_stream_new}, {"check_options", l_check_options},
      {"set_write_timeout", l_set_write_timeout},
      {"tagged", l_tagged}, {"new_tag", l_new_tag}, {"set_drain_handler", l_set_drain_handler},
      {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
