/* lua_hub.c - Lua binding of hub.c: "sse.Hub" and "sse.Sub" userdata.
 *
 * The Lua layer (lua/sse/hub.lua, stream.lua) wraps these; they are not the
 * public API. A Sub's userdata holds a pointer to a malloc'd sse_sub (freed
 * through sse_sub_free, which waits for an in-flight write). It does not
 * anchor the luv handle: its owner (the Lua Stream) holds the handle and
 * detaches the sub before closing it; and when both become garbage at once,
 * libuv completes any write in flight (UV_ECANCELED) before luv frees the
 * handle, and the orphaned sub frees itself then. */
#include "lsse.h"
#include "hub.h"
#include "gzip.h"
#include "envelope.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>
#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

#define HUB_MT "sse.Hub"
#define SUB_MT "sse.Sub"

typedef struct {
  sse_hub *h;
  uint32_t next_id;
} lhub;

typedef struct {
  sse_sub *s;
} lsub;

static lhub *check_hub(lua_State *L, int i) {
  lhub *u = (lhub *)luaL_checkudata(L, i, HUB_MT);
  if (!u->h) luaL_argerror(L, i, "hub is closed");
  return u;
}

static lsub *check_sub(lua_State *L, int i) {
  lsub *u = (lsub *)luaL_checkudata(L, i, SUB_MT);
  if (!u->s) luaL_argerror(L, i, "subscriber is closed");
  return u;
}

/* The hub at 1 again after Lua ran (an event's __index, a ring's clock):
 * NULL when that Lua closed it. */
static sse_hub *hub_again(lua_State *L) {
  return ((lhub *)luaL_checkudata(L, 1, HUB_MT))->h;
}

static const char *policy_names[] = {"close", "drop_oldest", NULL};

/* The libuv stream inside a luv handle userdata (luv stores a pointer to
 * the handle in the userdata), or NULL when idx is not a luv stream. */
static uv_stream_t *to_uv_stream(lua_State *L, int idx) {
  static const char *const mts[] = {"uv_tcp", "uv_pipe", "uv_tty", NULL};
  for (int i = 0; mts[i]; i++) {
    void **ud = (void **)luaL_testudata(L, idx, mts[i]);
    if (ud && *ud) {
      uv_handle_t *h = (uv_handle_t *)*ud;
      uv_handle_type t = h->type;
      if (t == UV_TCP || t == UV_NAMED_PIPE || t == UV_TTY) return (uv_stream_t *)h;
    }
  }
  return NULL;
}

/* Bounds how long sent data may stay unacknowledged before the kernel fails
 * the connection (TCP_USER_TIMEOUT, Linux). A peer that vanished without FIN
 * or RST is then noticed at the next write after ms, not after ~15 minutes
 * of retransmissions. Best effort: a no-op elsewhere or for non-TCP handles. */
static void set_user_timeout(uv_stream_t *stream, unsigned ms) {
#if defined(__linux__) && defined(TCP_USER_TIMEOUT)
  uv_os_fd_t fd;
  if (ms == 0 || stream->type != UV_TCP || uv_fileno((uv_handle_t *)stream, &fd) != 0) return;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
#else
  (void)stream;
  (void)ms;
#endif
}

/* core.sub_new(handle | nil, limit, policy [, write_timeout_ms]) */
static int l_sub_new(lua_State *L) {
  uv_stream_t *stream = NULL;
  if (!lua_isnil(L, 1)) {
    stream = to_uv_stream(L, 1);
    if (!stream)
      lsse_argerror(L, 1, "new", "field 'handle': luv stream handle (tcp, pipe or tty) expected");
    if (uv_is_closing((uv_handle_t *)stream)) lsse_argerror(L, 1, "new", "field 'handle': handle is closed");
  }
  /* the values were checked by core.check_options; these guard the casts */
  lua_Number limit = luaL_checknumber(L, 2);
  if (!(limit >= 0 && limit <= SSE_OUTBOX_MAX)) luaL_argerror(L, 2, "limit out of range");
  int policy = luaL_checkoption(L, 3, "close", policy_names);
  lua_Number wt = luaL_optnumber(L, 4, 0);
  if (!(wt >= 0 && wt <= 4294967295.0)) luaL_argerror(L, 4, "write timeout out of range");
  lsub *u = (lsub *)lua_newuserdata(L, sizeof *u); /* no user value: see top */
  u->s = NULL;
  u->s = sse_sub_new(stream, (size_t)limit, policy);
  if (!u->s) return luaL_error(L, "out of memory");
  if (stream) set_user_timeout(stream, (unsigned)wt);
  luaL_setmetatable(L, SUB_MT);
  return 1;
}

static int sub_gc(lua_State *L) {
  lsub *u = (lsub *)luaL_checkudata(L, 1, SUB_MT);
  if (u->s) {
    sse_sub_free(u->s);
    u->s = NULL;
  }
  return 0;
}

static double now_of(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? 0.0 : (double)luaL_checknumber(L, idx);
}

/* Returns nil, reason for a subscriber that is not open. */
static int push_not_open(lua_State *L, const sse_sub *s) {
  lua_pushnil(L);
  if (sse_sub_state(s) == SSE_SUB_CLOSED && sse_sub_reason(s) == SSE_CLOSE_SLOW)
    lua_pushliteral(L, "slow");
  else
    lua_pushliteral(L, "closed");
  return 2;
}

/* Encodes the event at idx into a new frame. Raises on misuse and on
 * ENOMEM (nothing allocated then). */
static sse_frame *encode_frame(lua_State *L, int idx, int arg, const char *fname) {
  sse_event ev;
  int check_utf8;
  int top = lua_gettop(L);
  lsse_check_event(L, idx, arg, fname, &ev, &check_utf8);
  sse_frame *f = lsse_event_frame_as(L, &ev, check_utf8, arg, fname, NULL, 0);
  lua_settop(L, top);
  return f;
}

/* Queues f (taking over the caller's reference) and writes it at once
 * (stream transport). Returns true, or nil and why the sub is not open. */
static int push_now(lua_State *L, sse_sub *s, sse_frame *f, int exempt) {
  if (!f) return luaL_error(L, "out of memory");
  f->time = now_of(L, 3);
  int ok;
  if (exempt) {
    /* a replay: exempt from the outbox limit while unsent */
    sse_sub_replay_begin(s);
    ok = sse_sub_replay_frame(s, f) == 0;
    sse_sub_replay_end(s, 0, NULL);
  } else {
    ok = sse_sub_push(s, f, f->time);
  }
  sse_frame_unref(f);
  if (!ok) return push_not_open(L, s);
  sse_sub_flush(s);
  if (sse_sub_state(s) != SSE_SUB_OPEN) return push_not_open(L, s);
  lua_pushboolean(L, 1);
  return 1;
}

/* sub:send(ev [, now]) -> true | nil, "closed" | nil, "slow" */
static int l_sub_send(lua_State *L) {
  lsub *u0 = (lsub *)luaL_checkudata(L, 1, SUB_MT);
  if (!u0->s) return lsse_fail(L, 0, "closed");
  sse_sub *s = u0->s;
  if (sse_sub_state(s) != SSE_SUB_OPEN) return push_not_open(L, s);
  /* reading the event may run Lua (an __index) that closes this sub: look
   * it up again afterwards (no Lua runs while the frame is held) */
  sse_frame *f = encode_frame(L, 2, 1, luaL_optstring(L, 4, NULL));
  lsub *u = (lsub *)luaL_checkudata(L, 1, SUB_MT);
  if (!u->s) {
    sse_frame_unref(f);
    return lsse_fail(L, 0, "closed");
  }
  s = u->s;
  if (sse_sub_state(s) != SSE_SUB_OPEN) {
    sse_frame_unref(f);
    return push_not_open(L, s);
  }
  return push_now(L, s, f, 0);
}

/* sub:send_raw(bytes [, now [, replay]]): pre-encoded wire bytes (trusted).
 * replay = true: a replay the client asked for, exempt from the outbox
 * limit while unsent (see sse_sub_push_exempt). */
static int l_sub_send_raw(lua_State *L) {
  lsub *u0 = (lsub *)luaL_checkudata(L, 1, SUB_MT);
  if (!u0->s) return lsse_fail(L, 0, "closed");
  sse_sub *s = u0->s;
  size_t n;
  const char *b = luaL_checklstring(L, 2, &n);
  int replay = lua_toboolean(L, 4);
  if (sse_sub_state(s) != SSE_SUB_OPEN) return push_not_open(L, s);
  return push_now(L, s, sse_frame_new(b, n, NULL, 0), replay);
}

/* sub:take() -> the queued bytes of a pull subscriber ("" when none). */
static int l_sub_take(lua_State *L) {
  sse_sub *s = check_sub(L, 1)->s;
  size_t n = sse_sub_take_size(s);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  char *buf = (char *)lua_newuserdata(L, n); /* Lua-owned scratch */
  size_t got = sse_sub_take(s, buf);
  lua_pushlstring(L, buf, got);
  return 1;
}

static int l_sub_queued(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sse_sub_queued(check_sub(L, 1)->s));
  return 1;
}

/* sub:state() -> "open" | "closed" | "failed", reason ("slow" | uv error name) */
static int l_sub_state(lua_State *L) {
  lsub *u = (lsub *)luaL_checkudata(L, 1, SUB_MT);
  if (!u->s) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  sse_sub *s = u->s;
  int st = sse_sub_state(s), why = sse_sub_reason(s);
  if (st == SSE_SUB_OPEN && sse_sub_replaying(s)) lua_pushliteral(L, "replaying");
  else if (st == SSE_SUB_OPEN) lua_pushliteral(L, "open");
  else if (st == SSE_SUB_DRAINING) lua_pushliteral(L, "draining");
  else if (why == SSE_CLOSE_OWNER || why == SSE_CLOSE_NONE) lua_pushliteral(L, "closed");
  else {
    lua_pushliteral(L, "failed");
    if (why == SSE_CLOSE_SLOW) lua_pushliteral(L, "slow");
    else lua_pushstring(L, sse_sub_uv_error(s) ? uv_err_name(sse_sub_uv_error(s)) : "write");
    return 2;
  }
  return 1;
}

static int l_sub_stats(lua_State *L) {
  sse_sub_stats st;
  sse_sub_get_stats(check_sub(L, 1)->s, &st);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, (lua_Number)st.bytes_sent);
  lua_setfield(L, -2, "bytes_sent");
  lua_pushnumber(L, (lua_Number)st.dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)st.queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, (lua_Integer)st.topics);
  lua_setfield(L, -2, "topics");
  if (st.gzip_memory) { /* a gzip stream: its compressor's figures */
    lua_pushinteger(L, (lua_Integer)st.gzip_in);
    lua_setfield(L, -2, "gzip_in");
    lua_pushinteger(L, (lua_Integer)st.gzip_out);
    lua_setfield(L, -2, "gzip_out");
    lua_pushinteger(L, (lua_Integer)st.gzip_memory);
    lua_setfield(L, -2, "gzip_memory");
  }
  return 1;
}

/* sub:set_gzip(level, window_bits, mem_level) -> true | nil, err: what is
 * queued from now on is gzip-compressed (hub.h, sse_sub_set_gzip). The
 * options are checked by the Lua layer, which names them; here a bad one
 * raises. */
static int l_sub_set_gzip(lua_State *L) {
  sse_sub *s = check_sub(L, 1)->s;
  int level = (int)luaL_checkinteger(L, 2), wbits = (int)luaL_checkinteger(L, 3);
  int mem = (int)luaL_checkinteger(L, 4);
  const char *which;
  if (sse_gz_check(level, wbits, mem, &which) != 0)
    return lsse_argerror(L, 1, "new", "field 'compress': %s out of range", which);
  int rc = sse_sub_set_gzip(s, level, wbits, mem);
  if (rc == SSE_HUB_ENOMEM) return lsse_fail(L, 0, "out of memory");
  if (rc != 0) return lsse_fail(L, 0, "gzip needs an open push stream, once");
  lua_pushboolean(L, 1);
  return 1;
}

/* sub:detach(): stop writing (call before closing the handle). */
static int l_sub_detach(lua_State *L) {
  lsub *u = (lsub *)luaL_checkudata(L, 1, SUB_MT);
  if (u->s) {
    sse_hub_remove(u->s);
    sse_sub_close(u->s, 0, 0, 0);
  }
  return 0;
}

typedef struct topic_list {
  lua_State *L;
  int n;
} topic_list;

static void push_topic(const char *name, size_t len, void *ud) {
  topic_list *t = (topic_list *)ud;
  lua_pushlstring(t->L, name, len);
  lua_rawseti(t->L, -2, ++t->n);
}

/* sub:topics() -> the topics the subscriber is in, a list (most recent first). */
static int l_sub_topics(lua_State *L) {
  sse_sub *s = check_sub(L, 1)->s;
  topic_list t = {L, 0};
  lua_newtable(L);
  sse_sub_each_topic(s, push_topic, &t);
  return 1;
}

/* sub:set_envelope(on): envelope mode for what is queued from now on. */
static int l_sub_set_envelope(lua_State *L) {
  sse_sub_set_envelope(check_sub(L, 1)->s, lua_toboolean(L, 2));
  return 0;
}

static int l_sub_envelope(lua_State *L) {
  lua_pushboolean(L, sse_sub_envelope(check_sub(L, 1)->s));
  return 1;
}

/* core.envelope(bytes [, topic]) -> the envelope form of wire bytes (the
 * bytes an envelope subscriber gets for them). */
static int l_envelope(lua_State *L) {
  size_t n, tl = 0;
  const char *b = luaL_checklstring(L, 1, &n);
  const char *topic = luaL_optlstring(L, 2, NULL, &tl);
  size_t len = sse_envelope_write(NULL, b, n, topic, tl);
  char *buf = (char *)lua_newuserdata(L, len ? len : 1); /* Lua-owned scratch */
  sse_envelope_write(buf, b, n, topic, tl);
  lua_pushlstring(L, buf, len);
  return 1;
}

static int l_sub_id(lua_State *L) {
  sse_sub *s = check_sub(L, 1)->s;
  if (!sse_sub_hub(s)) return 0;
  lua_pushinteger(L, (lua_Integer)sse_sub_id(s));
  return 1;
}

/* --- hub ------------------------------------------------------------------ */

static int l_hub_new(lua_State *L) {
  lhub *u = (lhub *)sse_newudata(L, sizeof *u);
  u->next_id = 1;
  u->h = sse_hub_new();
  if (!u->h) return luaL_error(L, "out of memory");
  luaL_setmetatable(L, HUB_MT);
  return 1;
}

static int hub_gc(lua_State *L) {
  lhub *u = (lhub *)luaL_checkudata(L, 1, HUB_MT);
  if (u->h) {
    sse_hub_free(u->h);
    u->h = NULL;
  }
  return 0;
}

/* hub:add(sub) -> id (a small integer the Lua side maps to its Stream) */
static int l_hub_add(lua_State *L) {
  lhub *u = check_hub(L, 1);
  sse_sub *s = check_sub(L, 2)->s;
  uint32_t id;
  int rc = sse_hub_add(u->h, s, &id);
  if (rc == SSE_HUB_EOTHER) luaL_argerror(L, 2, "subscriber belongs to another hub");
  if (rc < 0) return lsse_fail(L, rc, "closed");
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int l_hub_remove(lua_State *L) {
  lhub *u = check_hub(L, 1);
  sse_sub *s = check_sub(L, 2)->s;
  int was = sse_sub_hub(s) == u->h;
  if (was) sse_hub_remove(s);
  lua_pushboolean(L, was);
  return 1;
}

static sse_sub *member_arg(lua_State *L, lhub *u, int i) {
  sse_sub *s = check_sub(L, i)->s;
  if (sse_sub_hub(s) != u->h) luaL_argerror(L, i, "stream is not registered with this hub");
  return s;
}

/* The (hub, stream, topic) arguments of the topic methods. */
static sse_sub *topic_args(lua_State *L, const char **topic, size_t *len) {
  lhub *u = check_hub(L, 1);
  sse_sub *s = member_arg(L, u, 2);
  *topic = luaL_checklstring(L, 3, len);
  return s;
}

static int l_hub_subscribe(lua_State *L) {
  const char *t;
  size_t n;
  sse_sub *s = topic_args(L, &t, &n);
  int r = sse_hub_subscribe(s, t, n);
  if (r < 0) return luaL_error(L, "out of memory");
  lua_pushboolean(L, r);
  return 1;
}

static int l_hub_unsubscribe(lua_State *L) {
  const char *t;
  size_t n;
  sse_sub *s = topic_args(L, &t, &n);
  lua_pushboolean(L, sse_hub_unsubscribe(s, t, n));
  return 1;
}

static int l_hub_subscribed(lua_State *L) {
  const char *t;
  size_t n;
  sse_sub *s = topic_args(L, &t, &n);
  lua_pushboolean(L, sse_sub_is_subscribed(s, t, n));
  return 1;
}

/* hub:publish(ev, topic | nil, now [, ring]) -> count [, id]
 * ev is an event table/sse.Event, or a string of pre-encoded wire bytes.
 * With ring (an sse.Ring), the event is stored there first under the next
 * id and the ring's frame itself is what every subscriber gets: one encode,
 * one copy of the bytes. Returns nil, "closed" when the ring is closed. */
static int l_hub_publish(lua_State *L) {
  lhub *u = check_hub(L, 1);
  size_t tlen = 0;
  const char *topic = lua_isnil(L, 3) ? NULL : luaL_checklstring(L, 3, &tlen);
  double now = now_of(L, 4);
  sse_frame *f;
  int id_idx = 0;
  const char *fname = luaL_optstring(L, 6, NULL);
  int arg = (int)luaL_optinteger(L, 7, 1);
  if (!lua_isnoneornil(L, 5)) {
    f = lsse_ring_store(L, 5, 2, arg, fname, topic, tlen);
    if (!f) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    id_idx = lua_gettop(L);
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    size_t n;
    const char *b = lua_tolstring(L, 2, &n);
    f = sse_frame_new(b, n, NULL, 0);
  } else {
    f = encode_frame(L, 2, arg, fname);
  }
  if (!f) return luaL_error(L, "out of memory");
  (void)u;
  sse_hub *h = hub_again(L);
  if (!h) {
    sse_frame_unref(f);
    return lsse_fail(L, 0, "closed");
  }
  size_t n = sse_hub_publish(h, f, topic, tlen, now);
  sse_frame_unref(f);
  lua_pushinteger(L, (lua_Integer)n);
  if (!id_idx) return 1;
  lua_pushvalue(L, id_idx);
  return 2;
}



/* sub:flush(): writes what is queued (a push subscriber). */
static int l_sub_flush(lua_State *L) {
  sse_sub_flush(check_sub(L, 1)->s);
  return 0;
}

/* sub:set_limits(limit, policy): the outbox bound and slow policy (a hub
 * hands its own to the streams that did not choose theirs). Trusted values
 * from the Lua layer (already checked by core.check_options). */
static int l_sub_set_limits(lua_State *L) {
  sse_sub *s = check_sub(L, 1)->s;
  lua_Number limit = luaL_checknumber(L, 2);
  int policy = luaL_checkoption(L, 3, "close", policy_names);
  sse_sub_set_limits(s, limit >= 1 ? (size_t)limit : 0, policy);
  return 0;
}

/* How a bad option value is shown. */
static const char *show_value(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) return luaL_typename(L, idx);
  lua_Number n = lua_tonumber(L, idx);
  if (n != n) return "nan";
  if (n == HUGE_VAL) return "inf";
  if (n == -HUGE_VAL) return "-inf";
  lua_pushvalue(L, idx);
  const char *t = lua_tostring(L, -1); /* anchored on the stack */
  return t;
}

/* core.check_options(opts, fname): validates the outbox_limit, slow_policy
 * and write_timeout fields of a Stream.new / Hub.new options table, naming
 * fname and the field. One place for these rules (docs/CORE.md 4). */
static int l_check_options(lua_State *L) {
  const char *fname = luaL_optstring(L, 2, "new");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "outbox_limit");
  if (!lua_isnil(L, -1)) {
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= SSE_OUTBOX_MAX))
      lsse_argerror(L, 1, fname, "field 'outbox_limit': positive number expected, got %s",
                    show_value(L, -1));
  }
  lua_getfield(L, 1, "slow_policy");
  if (!lua_isnil(L, -1)) {
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!p || (strcmp(p, "close") != 0 && strcmp(p, "drop_oldest") != 0))
      lsse_argerror(L, 1, fname,
                    "field 'slow_policy': \"close\" or \"drop_oldest\" expected, got %s",
                    p ? p : luaL_typename(L, -1));
  }
  lua_getfield(L, 1, "write_timeout");
  if (!lua_isnil(L, -1) && !(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v > 0 && v <= SSE_WRITE_TIMEOUT_MAX))
      lsse_argerror(L, 1, fname,
                    "field 'write_timeout': positive number of seconds or false expected, got %s",
                    show_value(L, -1));
  }
  lua_settop(L, 1);
  return 1;
}

/* hub:replay_begin(sub): sub is "replaying" from now on (docs/CORE.md 3). */
static int l_hub_replay_begin(lua_State *L) {
  lhub *u = check_hub(L, 1);
  sse_sub *s = member_arg(L, u, 2);
  sse_sub_replay_begin(s);
  lua_pushboolean(L, sse_sub_replaying(s));
  return 1;
}

/* An optional string field of the table at idx (NULL when nil); anchored by
 * the table. */
static const char *opt_field(lua_State *L, int idx, const char *name, size_t *len,
                             int arg, const char *fname) {
  lua_getfield(L, idx, name);
  const char *v = NULL;
  *len = 0;
  if (lua_type(L, -1) == LUA_TSTRING) v = lua_tolstring(L, -1, len);
  else if (!lua_isnil(L, -1))
    lsse_argerror(L, arg, fname, "field '%s': string or nil expected, got %s", name,
                  luaL_typename(L, -1));
  lua_pop(L, 1); /* still anchored by the table */
  return v;
}

/* hub:resume(sub, frames, upto, gap | nil, last_event_id | nil, fname
 * [, topics]) -> count | nil, "closed". frames: a list of wire-byte strings
 * or event tables (with their ids), oldest first; upto: the seq the replay
 * covers; gap: nil or {oldest =, latest =}; topics: nil or a list whose
 * i-th item is frames[i]'s topic (a string, or false/nil: none), which an
 * envelope subscriber sees. Every item is checked before anything changes. */
static int l_hub_resume(lua_State *L) {
  const char *fname = luaL_optstring(L, 7, "resume");
  lhub *u = check_hub(L, 1);
  lsub *su = (lsub *)luaL_checkudata(L, 2, SUB_MT);
  if (lua_type(L, 3) != LUA_TTABLE) lsse_typeerror(L, 2, fname, "table", 3);
  long long upto = 0;
  if (!lua_isnoneornil(L, 4) && (!sse_tointeger(L, 4, &upto) || upto < 0))
    lsse_argerror(L, 3, fname, "upto: integer >= 0 expected, got %s", show_value(L, 4));
  int has_gap = !lua_isnoneornil(L, 5);
  if (has_gap && lua_type(L, 5) != LUA_TTABLE) lsse_typeerror(L, 4, fname, "table or nil", 5);
  int has_topics = !lua_isnoneornil(L, 8);
  if (has_topics && lua_type(L, 8) != LUA_TTABLE) lsse_typeerror(L, 5, fname, "table or nil", 8);
  size_t n = lua_rawlen(L, 3);
  int top = lua_gettop(L);
  /* validate: strings, or events whose fields are right (this may run Lua) */
  for (size_t i = 1; i <= n; i++) {
    if (has_topics) {
      lua_rawgeti(L, 8, (int)i);
      int tt = lua_type(L, -1);
      if (tt != LUA_TSTRING && tt != LUA_TNIL && !(tt == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
        lsse_argerror(L, 5, fname, "topics[%d]: string or false expected, got %s", (int)i,
                      luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    lua_rawgeti(L, 3, (int)i);
    int t = lua_type(L, -1);
    if (t == LUA_TTABLE) {
      sse_event ev;
      int cu;
      size_t len;
      sse_encode_err err;
      lsse_check_event(L, -1, 2, fname, &ev, &cu);
      if (sse_encode_check(&ev, cu, &len, &err) != SSE_OK) lsse_encode_error(L, 2, fname, &err);
    } else if (t != LUA_TSTRING) {
      lsse_argerror(L, 2, fname, "frames[%d]: string or event table expected, got %s", (int)i,
                    luaL_typename(L, -1));
    }
    lua_settop(L, top);
  }
  size_t ol = 0, ll = 0, il = 0;
  const char *oldest = NULL, *latest = NULL;
  if (has_gap) {
    oldest = opt_field(L, 5, "oldest", &ol, 4, fname);
    latest = opt_field(L, 5, "latest", &ll, 4, fname);
  }
  const char *lid = lua_type(L, 6) == LUA_TSTRING ? lua_tolstring(L, 6, &il) : NULL;
  if (!u->h || !su->s || !sse_sub_replaying(su->s)) return lsse_fail(L, 0, "closed");
  sse_sub *s = su->s;
  /* mutate: no Lua from here on */
  size_t count = 0;
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, (int)i);
    sse_event ev;
    int cu = 0, is_str = lua_type(L, -1) == LUA_TSTRING;
    if (!is_str) lsse_check_event(L, -1, 2, fname, &ev, &cu); /* checked above: plain reads now */
    size_t tl = 0;
    const char *topic = NULL;
    if (has_topics) {
      lua_rawgeti(L, 8, (int)i); /* stays on the stack until lua_settop below */
      if (lua_type(L, -1) == LUA_TSTRING) topic = lua_tolstring(L, -1, &tl);
    }
    sse_frame *f;
    if (is_str) {
      size_t len;
      const char *b = lua_tolstring(L, top + 1, &len);
      f = sse_frame_new(b, len, topic, tl);
    } else {
      f = lsse_event_frame_as(L, &ev, cu, 2, fname, topic, tl);
    }
    lua_settop(L, top);
    if (!su->s || !u->h) { /* an event's __index closed them */
      sse_frame_unref(f);
      return lsse_fail(L, 0, "closed");
    }
    if (!f || sse_sub_replay_frame(s, f) != 0) {
      sse_frame_unref(f);
      break; /* out of memory: what was queued still goes out */
    }
    sse_frame_unref(f);
    count++;
  }
  sse_frame *gap = NULL;
  if (has_gap) gap = sse_gap_frame(lid, il, oldest, ol, latest, ll, -1);
  sse_sub_replay_end(s, (uint64_t)upto, gap);
  if (has_gap && count == 0 && latest) {
    sse_frame *j = sse_join_frame(latest, ll);
    if (j) {
      sse_sub_push(s, j, 0);
      sse_frame_unref(j);
    }
  }
  lua_pushinteger(L, (lua_Integer)count);
  return 1;
}

/* The topics list at idx (nil: none) as n spans into its strings, which the
 * table anchors (no Lua may run while they are used). Small lists use
 * stack, larger ones a Lua-owned scratch block. Raises naming fname's
 * argument arg and the field. */
#define TOPICS_ON_STACK 8
static sse_str *topics_arg(lua_State *L, int idx, int arg, const char *fname,
                           sse_str *stack, size_t *n) {
  *n = 0;
  if (lua_isnoneornil(L, idx)) return stack;
  if (lua_type(L, idx) != LUA_TTABLE)
    lsse_argerror(L, arg, fname, "field 'topics': table expected, got %s", luaL_typename(L, idx));
  size_t len = lua_rawlen(L, idx);
  sse_str *t = len <= TOPICS_ON_STACK ? stack : (sse_str *)lua_newuserdata(L, len * sizeof *t);
  for (size_t i = 0; i < len; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      lsse_argerror(L, arg, fname, "field 'topics': topics[%d] must be a string, got %s",
                    (int)i + 1, luaL_typename(L, -1));
    t[i].p = lua_tolstring(L, -1, &t[i].n);
    lua_pop(L, 1); /* anchored by the table */
  }
  *n = len;
  return t;
}

/* hub:attach(sub, topics | nil, last_id | nil, ring, fname) -> count [, "gap"]
 * | nil, "closed": one C call with the memory ring as the hub's replayer:
 * register, subscribe, replay by frame reference into the outbox (or the
 * sse-join event of a fresh client), live. */
static int l_hub_attach(lua_State *L) {
  const char *fname = luaL_optstring(L, 6, "attach");
  check_hub(L, 1);
  luaL_checkudata(L, 2, SUB_MT);
  double now = 0;
  sse_ring *r = lsse_ring_get(L, 5, &now); /* its clock may run Lua: look up the rest after */
  sse_str stack[TOPICS_ON_STACK];
  size_t nt;
  sse_str *topics = topics_arg(L, 3, 2, fname, stack, &nt);
  size_t idlen = 0;
  const char *last_id = NULL;
  if (!lua_isnoneornil(L, 4)) {
    if (lua_type(L, 4) != LUA_TSTRING)
      lsse_argerror(L, 2, fname, "field 'last_event_id': string expected, got %s", luaL_typename(L, 4));
    last_id = lua_tolstring(L, 4, &idlen);
  }
  sse_hub *h = hub_again(L);
  lsub *su = (lsub *)lua_touserdata(L, 2);
  if (!r || !h || !su->s) return lsse_fail(L, 0, "closed");
  /* no Lua from here on: the ring is the hub's replayer for this one call,
   * so a ring closed later never leaves the hub a dangling pointer */
  size_t count = 0;
  int gap = 0;
  sse_hub_set_replayer(h, &sse_ring_replayer_ops, r);
  int rc = sse_hub_attach(h, su->s, topics, nt, last_id, idlen, now, &count, &gap);
  sse_hub_set_replayer(h, NULL, NULL);
  if (rc == SSE_HUB_EOTHER) return lsse_argerror(L, 1, fname, "stream is registered with another hub");
  if (rc == SSE_HUB_ECLOSED) return lsse_fail(L, 0, "closed");
  if (rc < 0) return luaL_error(L, "not enough memory");
  lua_pushinteger(L, (lua_Integer)count);
  if (!gap) return 1;
  lua_pushliteral(L, "gap");
  return 2;
}

/* hub:join_event(id) -> the wire bytes of the sse-join event of id. */
static int l_join_event(lua_State *L) {
  size_t n;
  const char *id = luaL_checklstring(L, 1, &n);
  sse_frame *f = sse_join_frame(id, n);
  if (!f) return luaL_error(L, "not enough memory");
  lua_pushlstring(L, f->bytes, f->len);
  sse_frame_unref(f);
  return 1;
}

/* core.gap_data(last_event_id, oldest, latest [, dropped]) -> the JSON data
 * of the sse-gap event (strings or nil; dropped an integer or nil). */
static int l_gap_data(lua_State *L) {
  size_t n[3] = {0, 0, 0};
  const char *v[3];
  for (int i = 0; i < 3; i++)
    v[i] = lua_type(L, i + 1) == LUA_TSTRING ? lua_tolstring(L, i + 1, &n[i]) : NULL;
  long long dropped = -1;
  if (!lua_isnoneornil(L, 4) && (!sse_tointeger(L, 4, &dropped) || dropped < 0)) dropped = -1;
  size_t len = sse_gap_data(NULL, v[0], n[0], v[1], n[1], v[2], n[2], dropped);
  char *buf = (char *)lua_newuserdata(L, len ? len : 1);
  sse_gap_data(buf, v[0], n[0], v[1], n[1], v[2], n[2], dropped);
  lua_pushlstring(L, buf, len);
  return 1;
}

/* hub:deliver(ev | bytes, topic | nil, seq, now, fname) -> count: an event
 * that already has its id (a backend's follower): one encode, then the
 * fan-out, with frame->seq = seq for the replay hand-off. */
static int l_hub_deliver(lua_State *L) {
  const char *fname = luaL_optstring(L, 6, "deliver");
  check_hub(L, 1);
  size_t tlen = 0;
  const char *topic = NULL;
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TSTRING) lsse_typeerror(L, 2, fname, "string or nil", 3);
    topic = lua_tolstring(L, 3, &tlen);
  }
  long long seq = 0;
  if (!sse_tointeger(L, 4, &seq) || seq < 1)
    lsse_argerror(L, 3, fname, "seq: integer >= 1 expected, got %s", show_value(L, 4));
  double now = now_of(L, 5);
  sse_frame *f;
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t n;
    const char *b = lua_tolstring(L, 2, &n);
    f = sse_frame_new(b, n, topic, tlen);
  } else {
    sse_event ev;
    int cu;
    int top = lua_gettop(L);
    lsse_check_event(L, 2, 1, fname, &ev, &cu);
    f = lsse_event_frame_as(L, &ev, cu, 1, fname, topic, tlen);
    lua_settop(L, top);
  }
  if (!f) return luaL_error(L, "not enough memory");
  f->seq = (uint64_t)seq;
  f->time = now;
  sse_hub *h = hub_again(L);
  if (!h) {
    sse_frame_unref(f);
    return lsse_fail(L, 0, "closed");
  }
  size_t c = sse_hub_publish(h, f, topic, tlen, now);
  sse_frame_unref(f);
  lua_pushinteger(L, (lua_Integer)c);
  return 1;
}

/* Pushes an array of the ids of subscribers popped by next(), or nil. */
static void push_ids(lua_State *L, sse_hub *h, sse_sub *(*next)(sse_hub *)) {
  sse_sub *s = next(h);
  if (!s) {
    lua_pushnil(L);
    return;
  }
  lua_newtable(L);
  int i = 0;
  for (; s; s = next(h)) {
    lua_pushinteger(L, (lua_Integer)sse_sub_id(s));
    lua_rawseti(L, -2, ++i);
  }
}

/* hub:flush() -> ready_ids | nil, dead_ids | nil
 * Writes the stream subscribers; returns the pull subscribers with data and
 * the subscribers that failed (the Lua side closes those). */
static int l_hub_flush(lua_State *L) {
  lhub *u = check_hub(L, 1);
  sse_hub_flush(u->h, now_of(L, 2));
  push_ids(L, u->h, sse_hub_next_ready);
  push_ids(L, u->h, sse_hub_next_closed);
  return 2;
}

/* hub:keepalive(bytes, now, idle) -> count */
static int l_hub_keepalive(lua_State *L) {
  lhub *u = check_hub(L, 1);
  size_t n;
  const char *b = luaL_checklstring(L, 2, &n);
  double now = luaL_checknumber(L, 3), idle = luaL_checknumber(L, 4);
  sse_frame *f = sse_frame_new(b, n, NULL, 0);
  if (!f) return luaL_error(L, "out of memory");
  f->time = now;
  size_t c = sse_hub_keepalive(u->h, f, now, idle);
  sse_frame_unref(f);
  lua_pushinteger(L, (lua_Integer)c);
  return 1;
}

/* hub:counters() -> {bytes_sent, dropped, gaps_replay, gaps_dropped,
 * closed_slow, closed_write, closed_timeout}: the C hub's cumulative
 * counters (hub.h, sse_hub_counters). */
static int l_hub_counters(lua_State *L) {
  sse_hub_counters c;
  sse_hub_get_counters(check_hub(L, 1)->h, &c);
  const struct { const char *name; uint64_t v; } f[] = {
      {"bytes_sent", c.bytes_sent},   {"dropped", c.dropped},
      {"gaps_replay", c.gaps_replay}, {"gaps_dropped", c.gaps_dropped},
      {"closed_slow", c.closed_slow}, {"closed_write", c.closed_write},
      {"closed_timeout", c.closed_timeout},
      {"gzip_in", c.gzip_in},         {"gzip_out", c.gzip_out},
  };
  lua_createtable(L, 0, (int)(sizeof f / sizeof f[0]));
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    lua_pushinteger(L, (lua_Integer)f[i].v); /* < 2^63 in any run */
    lua_setfield(L, -2, f[i].name);
  }
  return 1;
}

static int l_hub_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sse_hub_count(check_hub(L, 1)->h));
  return 1;
}

static int l_hub_topic_count(lua_State *L) {
  lhub *u = check_hub(L, 1);
  size_t n;
  const char *t = luaL_checklstring(L, 2, &n);
  lua_pushinteger(L, (lua_Integer)sse_hub_topic_count(u->h, t, n));
  return 1;
}

static void add_topic(const char *name, size_t len, size_t count, void *ud) {
  lua_State *L = (lua_State *)ud;
  lua_pushlstring(L, name, len);
  lua_pushinteger(L, (lua_Integer)count);
  lua_rawset(L, -3);
}

/* hub:topics() -> { [topic] = subscriber count } */
static int l_hub_topics(lua_State *L) {
  lhub *u = check_hub(L, 1);
  lua_createtable(L, 0, (int)sse_hub_topics(u->h));
  sse_hub_each_topic(u->h, add_topic, L);
  return 1;
}

/* The n busiest topics, kept in a min-heap whose root is the least busy of
 * them (fewest subscribers; among equals, the greatest name). */
typedef struct {
  const char *name;
  size_t len;
  size_t count;
} top_entry;

typedef struct {
  top_entry *e;
  size_t n, cap;
} top_heap;

/* Does a rank before b (more subscribers, then the smaller name)? */
static int top_before(const top_entry *a, const top_entry *b) {
  if (a->count != b->count) return a->count > b->count;
  size_t m = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->name, b->name, m);
  return c != 0 ? c < 0 : a->len < b->len;
}

static void top_sift_down(top_heap *h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < h->n && top_before(&h->e[w], &h->e[l])) w = l;
    if (r < h->n && top_before(&h->e[w], &h->e[r])) w = r;
    if (w == i) return;
    top_entry t = h->e[i];
    h->e[i] = h->e[w];
    h->e[w] = t;
    i = w;
  }
}

/* sse_hub_each_topic callback: keep the topic if it is among the n best. */
static void top_add(const char *name, size_t len, size_t count, void *ud) {
  top_heap *h = (top_heap *)ud;
  top_entry x = {name, len, count};
  if (h->n < h->cap) {
    size_t i = h->n++;
    h->e[i] = x;
    while (i > 0) { /* sift up: the least busy rises to the root */
      size_t p = (i - 1) / 2;
      if (!top_before(&h->e[p], &h->e[i])) break;
      top_entry t = h->e[p];
      h->e[p] = h->e[i];
      h->e[i] = t;
      i = p;
    }
  } else if (h->cap > 0 && top_before(&x, &h->e[0])) {
    h->e[0] = x;
    top_sift_down(h, 0);
  }
}

static int top_cmp(const void *a, const void *b) {
  const top_entry *x = (const top_entry *)a, *y = (const top_entry *)b;
  return top_before(x, y) ? -1 : top_before(y, x) ? 1 : 0;
}

/* hub:top_topics(n) -> { {topic, count}, ... }: the n topics with the most
 * subscribers, most first (ties by name), in O(topics * log n) without a Lua
 * value per topic. n is an integer in 0..SSE_TOP_TOPICS_MAX (checked by the
 * Lua layer too); the heap is Lua-owned memory, so a raise leaks nothing. */
#define SSE_TOP_TOPICS_MAX 10000
static int l_hub_top_topics(lua_State *L) {
  lhub *u = check_hub(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0 || n > SSE_TOP_TOPICS_MAX)
    return lsse_argerror(L, 1, "top_topics", "integer in 0..%d expected", SSE_TOP_TOPICS_MAX);
  top_heap h = {NULL, 0, (size_t)n};
  h.e = (top_entry *)lua_newuserdata(L, (n > 0 ? (size_t)n : 1) * sizeof(top_entry));
  sse_hub_each_topic(u->h, top_add, &h);
  qsort(h.e, h.n, sizeof *h.e, top_cmp);
  lua_createtable(L, (int)h.n, 0);
  for (size_t i = 0; i < h.n; i++) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, h.e[i].name, h.e[i].len);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)h.e[i].count);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* hub:topic_total() -> number of topics with at least one subscriber */
static int l_hub_topic_total(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sse_hub_topics(check_hub(L, 1)->h));
  return 1;
}

static int l_hub_alive(lua_State *L) {
  lhub *u = (lhub *)luaL_checkudata(L, 1, HUB_MT);
  lua_pushboolean(L, u->h != NULL);
  return 1;
}

static void new_type(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

void lsse_open_hub(lua_State *L) {
  static const luaL_Reg sub_methods[] = {
      {"send", l_sub_send},     {"send_raw", l_sub_send_raw}, {"take", l_sub_take},
      {"queued", l_sub_queued}, {"state", l_sub_state},       {"stats", l_sub_stats},
      {"detach", l_sub_detach}, {"close", sub_gc},            {"id", l_sub_id},
      {"set_limits", l_sub_set_limits}, {"set_gzip", l_sub_set_gzip}, {"flush", l_sub_flush}, {"topics", l_sub_topics},
      {"set_envelope", l_sub_set_envelope}, {"envelope", l_sub_envelope},
      {NULL, NULL}};
  static const luaL_Reg hub_methods[] = {
      {"add", l_hub_add},
      {"remove", l_hub_remove},
      {"subscribe", l_hub_subscribe},
      {"unsubscribe", l_hub_unsubscribe},
      {"subscribed", l_hub_subscribed},
      {"publish", l_hub_publish},
      {"deliver", l_hub_deliver},
      {"replay_begin", l_hub_replay_begin},
      {"attach", l_hub_attach},
      {"resume", l_hub_resume},
      {"flush", l_hub_flush},
      {"keepalive", l_hub_keepalive},
      {"count", l_hub_count},
      {"counters", l_hub_counters},
      {"topic_count", l_hub_topic_count},
      {"topics", l_hub_topics},
      {"top_topics", l_hub_top_topics},
      {"topic_total", l_hub_topic_total},
      {"alive", l_hub_alive},
      {"close", hub_gc},
      {NULL, NULL}};
  new_type(L, SUB_MT, sub_methods, sub_gc);
  new_type(L, HUB_MT, hub_methods, hub_gc);
  static const luaL_Reg fns[] = {{"sub_new", l_sub_new}, {"hub_new", l_hub_new},
      {"check_options", l_check_options}, {"join_event", l_join_event}, {"gap_data", l_gap_data},
      {"envelope", l_envelope}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
