/* lua_hub.c - "sse.Hub" (the C hub behind lua/sse/hub.lua) and the home hub
 * of a Lua state (lstream.h, docs/CORE.md).
 *
 * A hub anchors its streams (user value 1: anchors[id] = stream) and runs on
 * luv's loop through three luv handles of its own (created through luv, so
 * luv's walk and close see ordinary handles): a prepare that flushes once
 * per loop turn and reports what the core closed or made ready, an idle
 * that keeps the loop turning while writes wait for their next share, and
 * a timer that wakes it for drain deadlines. Without a loop ("immediate")
 * the owner calls flush(). */
#include "lstream.h"
#include "envelope.h"

#include <stdlib.h>
#include <string.h>

#define HOME_KEY "sse.home"
#define HUBS_KEY "sse.hubs" /* every hub of the state: a weak-keyed set */

static lhub *check_hub(lua_State *L, int i) {
  lhub *u = (lhub *)lsse_checkudata(L, i, HUB_MT);
  if (!u->h) luaL_argerror(L, i, "hub is closed");
  return u;
}

/* The hub at 1 again after Lua ran (an event's __index, a ring's clock):
 * NULL when that Lua closed it. */
static sse_hub *hub_again(lua_State *L) {
  return ((lhub *)lsse_checkudata(L, 1, HUB_MT))->h;
}

/* --- luv --------------------------------------------------------------------- */

/* The first two fields of luv's luv_ctx_t (luv.h), which luv keeps in the
 * registry under "luv_context": luv_loop(L) reads the first. */
typedef struct luv_ctx_prefix {
  uv_loop_t *loop;
  lua_State *L;
} luv_ctx_prefix;

int lsse_luv_loop(lua_State *L, uv_loop_t **loop, lua_State **main) {
  lua_getfield(L, LUA_REGISTRYINDEX, "luv_context");
  luv_ctx_prefix *ctx = (luv_ctx_prefix *)lua_touserdata(L, -1);
  int ok = ctx && lua_rawlen(L, -1) >= sizeof *ctx && ctx->loop && ctx->L;
  if (ok) {
    *loop = ctx->loop;
    *main = ctx->L;
  }
  lua_pop(L, 1);
  return ok;
}

/* Pushes luv.<fn>() (luv from package.loaded); raises without luv. */
static void luv_new(lua_State *L, const char *fn) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "luv");
  if (!lua_istable(L, -1)) luaL_error(L, "sse: the hub's loop needs luv (require \"luv\")");
  lua_getfield(L, -1, fn);
  lua_call(L, 0, 1);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* handle:method(args on the stack top) for the luv handle in hub slot n,
 * protected (a closed handle must not raise into the core). */
static void luv_method(lua_State *L, int hidx, int n, const char *method, int nargs) {
  lsse_slot_get(L, hidx, n);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1 + nargs);
    return;
  }
  lua_getfield(L, -1, method);
  lua_insert(L, -2 - nargs);
  lua_insert(L, -1 - nargs);
  lsse_pcall(L, 1 + nargs, 0, "hub loop handle");
}

enum { HSLOT_PREPARE = 4, HSLOT_IDLE = 5, HSLOT_TIMER = 6, HUB_ALL_SLOTS = 6 };

/* --- anchors ------------------------------------------------------------------- */

static void pin(lua_State *L, int hidx, lhub *u) {
  if (u->anchored++ == 0 && u->self_ref == LUA_NOREF) {
    lua_pushvalue(L, hidx);
    u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

static void unpin(lua_State *L, lhub *u) {
  if (u->anchored > 0 && --u->anchored == 0 && !u->home && u->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
    u->self_ref = LUA_NOREF;
  }
}

lhub *lsse_push_hub_of(lua_State *L, sse_hub *h) {
  lhub *u = h ? (lhub *)sse_hub_user(h) : NULL;
  if (u && u->self_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->self_ref);
    return u;
  }
  lua_pushnil(L);
  return NULL;
}

/* anchors[id] = value on top (popped), in the hub at hidx; the home hub's
 * draining table too when draining. */
static void set_anchor(lua_State *L, int hidx, uint32_t id, int draining) {
  lsse_slot_get(L, hidx, HSLOT_ANCHORS);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (int)id);
  lua_pop(L, 1);
  lsse_slot_get(L, hidx, HSLOT_DRAINING);
  if (lua_istable(L, -1)) {
    if (draining) lua_pushvalue(L, -2);
    else lua_pushnil(L);
    lua_rawseti(L, -2, (int)id);
  }
  lua_pop(L, 2);
}

static void unanchor_at(lua_State *L, sse_sub *s) {
  lhub *u = lsse_push_hub_of(L, sse_sub_hub(s));
  if (!u) {
    lua_pop(L, 1);
    return;
  }
  int hidx = lua_gettop(L);
  lua_pushnil(L);
  set_anchor(L, hidx, sse_sub_id(s), 0);
  unpin(L, u);
  lua_pop(L, 1);
}

void lsse_unanchor(lua_State *L, lstream *st) { unanchor_at(L, st->s); }

int lsse_stream_move(lua_State *L, int idx, int hub_idx) {
  idx = lua_absindex(L, idx);
  hub_idx = lua_absindex(L, hub_idx);
  lstream *st = (lstream *)lua_touserdata(L, idx);
  lhub *to = (lhub *)lua_touserdata(L, hub_idx);
  sse_sub *s = st->s;
  if (sse_sub_hub(s) == to->h) return 0;
  sse_hub *from = sse_sub_hub(s);
  uint32_t old_id = sse_sub_id(s);
  int rc = sse_hub_move(to->h, s);
  if (rc < 0) return rc;
  if (from) {
    lhub *fu = lsse_push_hub_of(L, from);
    if (fu) {
      int fidx = lua_gettop(L);
      lua_pushnil(L);
      set_anchor(L, fidx, old_id, 0);
      unpin(L, fu);
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, idx);
  /* strongly in the home hub too while it drains or its EOF is watched:
   * nothing else may hold it, and it must still close its connection */
  set_anchor(L, hub_idx, sse_sub_id(s),
             (st->flags & SF_WATCHED) || sse_sub_state(s) == SSE_SUB_DRAINING);
  pin(L, hub_idx, to);
  st->flags &= (uint8_t)~SF_LEFT;
  return 0;
}

void lsse_anchor_draining(lua_State *L, int idx, int draining) {
  idx = lua_absindex(L, idx);
  lstream *st = (lstream *)lua_touserdata(L, idx);
  if (!lsse_push_hub_of(L, sse_sub_hub(st->s))) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, idx);
  set_anchor(L, lua_gettop(L) - 1, sse_sub_id(st->s), draining);
  lua_pop(L, 1);
}

/* --- the report ------------------------------------------------------------------ */

/* Flushes (do_flush) and reports what the core closed (finish) or made
 * ready (settle: a writer drained, a pull host woken). Every callback is
 * pcall'd; one that closes the hub ends the report. */
static void report(lua_State *L, int hidx, int do_flush) {
  hidx = lua_absindex(L, hidx);
  lhub *u = (lhub *)lua_touserdata(L, hidx);
  sse_hub *h = u->h;
  if (!h) return;
  int top = lua_gettop(L);
  sse_hub_hold(h);
  if (do_flush) sse_hub_flush(h, lsse_now());
  lsse_slot_get(L, hidx, HSLOT_ANCHORS);
  int a = lua_gettop(L);
  while (u->h) {
    sse_sub *s = sse_hub_next_closed(h);
    int closed = s != NULL;
    if (!s) s = sse_hub_next_ready(h);
    if (!s) break;
    lua_rawgeti(L, a, (int)sse_sub_id(s));
    if (lsse_testudata(L, -1, STREAM_MT)) {
      if (closed) lsse_stream_finish(L, -1, 0);
      else lsse_stream_settle(L, -1, 0);
    } else if (closed) {
      sse_hub_remove(s); /* no stream (cannot be): at least leave the hub */
    }
    lua_settop(L, a);
  }
  /* drain watches: the streams first (a handler may file a new watch that
   * is due at once: it waits for the next report), then their handlers */
  if (u->h) {
    lua_newtable(L);
    int t = lua_gettop(L), n = 0;
    sse_sub *s;
    while ((s = sse_hub_next_drained(h))) {
      lua_rawgeti(L, a, (int)sse_sub_id(s));
      if (lsse_testudata(L, -1, STREAM_MT)) lua_rawseti(L, t, ++n);
      else lua_pop(L, 1);
    }
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, t, i);
      lsse_stream_drained(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  sse_hub_release(h);
}

/* --- the loop ---------------------------------------------------------------------- */

static int l_noop(lua_State *L) {
  (void)L;
  return 0;
}

/* The prepare callback's body, protected: flush, report, and the idle and
 * timer handles on or off for what is left. */
static int turn_protected(lua_State *L) {
  lhub *u = (lhub *)lua_touserdata(L, 1);
  if (!u->h || u->self_ref == LUA_NOREF) return 0;
  int busy = sse_hub_busy(u->h), draining = sse_hub_draining(u->h) > 0;
  if (!busy && !draining && !u->idle_on && !u->timer_on) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->self_ref);
  int hidx = lua_gettop(L);
  if (busy || draining) report(L, hidx, 1);
  if (!u->h) return 0;
  busy = sse_hub_busy(u->h);
  if (busy != u->idle_on) {
    u->idle_on = (uint8_t)busy;
    if (busy) {
      lua_pushcfunction(L, l_noop);
      luv_method(L, hidx, HSLOT_IDLE, "start", 1);
    } else {
      luv_method(L, hidx, HSLOT_IDLE, "stop", 0);
    }
  }
  if (u->timer_on && sse_hub_draining(u->h) == 0) {
    u->timer_on = 0;
    luv_method(L, hidx, HSLOT_TIMER, "stop", 0);
  }
  return 0;
}

/* luv calls this once per loop turn (upvalue: the lhub, which closes its
 * handles before it goes away). luv's own error handler would end the
 * process: nothing raises out of here. */
static int l_turn(lua_State *L) {
  lhub *u = (lhub *)lua_touserdata(L, lua_upvalueindex(1));
  if (!u->h || u->self_ref == LUA_NOREF) return 0;
  if (!sse_hub_busy(u->h) && !sse_hub_draining(u->h) && !u->idle_on && !u->timer_on) return 0;
  lua_pushcfunction(L, turn_protected);
  lua_pushlightuserdata(L, u);
  lsse_pcall(L, 1, 0, "hub flush failed");
  return 0;
}

/* Gives the hub at hidx its luv handles: the prepare runs from now on. */
static void start_loop(lua_State *L, int hidx) {
  hidx = lua_absindex(L, hidx);
  lhub *u = (lhub *)lua_touserdata(L, hidx);
  uv_loop_t *loop;
  lua_State *main;
  if (!lsse_luv_loop(L, &loop, &main)) luaL_error(L, "sse: the hub's loop needs luv (require \"luv\")");
  u->L = main;
  u->idle_on = u->timer_on = 0;
  static const char *const names[] = {"new_prepare", "new_idle", "new_timer"};
  for (int i = 0; i < 3; i++) {
    luv_new(L, names[i]);
    lsse_slot_set(L, hidx, HSLOT_PREPARE + i);
    luv_method(L, hidx, HSLOT_PREPARE + i, "unref", 0); /* the sockets keep the loop alive */
  }
  lua_pushlightuserdata(L, u);
  lua_pushcclosure(L, l_turn, 1);
  luv_method(L, hidx, HSLOT_PREPARE, "start", 1);
  sse_hub_set_turns(u->h, 1);
}

/* 1 when the luv handle in slot n of the hub at hidx is open (someone may
 * have closed it: a uv.walk that closes every handle). luv keeps a pointer
 * to the libuv handle in its userdata. */
static int handle_open(lua_State *L, int hidx, int n) {
  lsse_slot_get(L, hidx, n);
  void **ud = (void **)lua_touserdata(L, -1);
  int open = ud && *ud && !uv_is_closing((uv_handle_t *)*ud);
  lua_pop(L, 1);
  return open;
}

/* A hub that runs on the loop gets new handles when its own were closed
 * behind its back. */
static void ensure_loop(lua_State *L, int hidx) {
  hidx = lua_absindex(L, hidx);
  lhub *u = (lhub *)lua_touserdata(L, hidx);
  if (!u->h || !sse_hub_turns(u->h) || handle_open(L, hidx, HSLOT_PREPARE)) return;
  start_loop(L, hidx);
}

/* Starts the drain deadline ticks of the hub at hidx. */
static void drain_timer(lua_State *L, int hidx) {
  lhub *u = (lhub *)lua_touserdata(L, hidx);
  if (!sse_hub_turns(u->h)) return;
  if (u->timer_on && handle_open(L, hidx, HSLOT_TIMER)) return;
  ensure_loop(L, hidx);
  u->timer_on = 1;
  lua_pushinteger(L, 100);
  lua_pushinteger(L, 100);
  lua_pushcfunction(L, l_noop); /* waking the loop is enough: the prepare does the rest */
  luv_method(L, hidx, HSLOT_TIMER, "start", 3);
}

static void close_loop(lua_State *L, int hidx) {
  for (int i = 0; i < 3; i++) {
    lsse_slot_get(L, hidx, HSLOT_PREPARE + i);
    int has = !lua_isnil(L, -1);
    if (has) {
      lua_getfield(L, -1, "is_closing");
      lua_pushvalue(L, -2);
      int closing = lua_pcall(L, 1, 1, 0) != 0 || lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (!closing) luv_method(L, hidx, HSLOT_PREPARE + i, "close", 0);
      lua_pushnil(L);
      lsse_slot_set(L, hidx, HSLOT_PREPARE + i);
    }
    lua_pop(L, 1);
  }
}

/* --- creation ------------------------------------------------------------------------ */

/* Pushes a new lhub (home: the state's home hub, whose anchors are weak). */
static lhub *hub_create(lua_State *L, int home, size_t limit, int policy) {
  lhub *u = (lhub *)lsse_newudata_slots(L, sizeof *u, HUB_ALL_SLOTS);
  memset(u, 0, sizeof *u);
  u->self_ref = LUA_NOREF;
  u->home = (uint8_t)home;
  {
    uv_loop_t *lp;
    lua_State *main = NULL;
    if (lsse_luv_loop(L, &lp, &main)) u->L = main; /* libuv callbacks run Lua there */
  }
  u->limit = limit;
  u->policy = (uint8_t)policy;
  int hidx = lua_gettop(L);
  lua_newtable(L);
  if (home) {
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  lsse_slot_set(L, hidx, HSLOT_ANCHORS);
  if (home) {
    lua_newtable(L);
    lsse_slot_set(L, hidx, HSLOT_DRAINING);
  }
  luaL_setmetatable(L, HUB_MT);
  u->h = sse_hub_new();
  if (!u->h) luaL_error(L, "not enough memory");
  sse_hub_set_user(u->h, u);
  lua_getfield(L, LUA_REGISTRYINDEX, HUBS_KEY);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HUBS_KEY);
  }
  lua_pushvalue(L, hidx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return u;
}

void lsse_push_tagged(lua_State *L, int tag) {
  lua_newtable(L);
  int list = lua_gettop(L), n = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, HUBS_KEY);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  int hubs = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, hubs)) {
    lua_pop(L, 1);
    lhub *u = (lhub *)lsse_testudata(L, -1, HUB_MT);
    if (u && u->h) {
      lsse_slot_get(L, -1, HSLOT_ANCHORS);
      int a = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, a)) {
        lstream *st = (lstream *)lsse_testudata(L, -1, STREAM_MT);
        if (st && st->tag == tag && !(st->flags & SF_DONE)) {
          lua_pushvalue(L, -1);
          lua_rawseti(L, list, ++n);
        }
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

lhub *lsse_home(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, HOME_KEY);
  lhub *u = (lhub *)lsse_testudata(L, -1, HUB_MT);
  if (u && u->h) return u;
  lua_pop(L, 1);
  u = hub_create(L, 1, SSE_STREAM_OUTBOX_DEFAULT, SSE_SLOW_CLOSE);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, HOME_KEY);
  lua_pushvalue(L, -1);
  u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* always reachable */
  return u;
}

void lsse_home_loop(lua_State *L, int home_idx) {
  lhub *u = (lhub *)lua_touserdata(L, home_idx);
  if (sse_hub_turns(u->h)) ensure_loop(L, home_idx);
  else start_loop(L, home_idx);
}

void lsse_home_drain_timer(lua_State *L) {
  lsse_home(L);
  drain_timer(L, lua_gettop(L));
  lua_pop(L, 1);
}

/* core.hub_new(outbox_limit, slow_policy, immediate) */
static int l_hub_new(lua_State *L) {
  lua_Number limit = luaL_checknumber(L, 1);
  int policy = luaL_checkoption(L, 2, "close", (const char *const[]){"close", "drop_oldest", NULL});
  int immediate = lua_toboolean(L, 3);
  if (!(limit >= 1 && limit <= SSE_OUTBOX_MAX)) luaL_argerror(L, 1, "limit out of range");
  hub_create(L, 0, (size_t)limit, policy);
  if (!immediate) start_loop(L, -1);
  return 1;
}

/* Moves every stream left in the hub at hidx to the home hub (a draining
 * one drains there, a closed one is reported there), then reports home. */
static void hub_empty(lua_State *L, int hidx) {
  hidx = lua_absindex(L, hidx);
  lhub *u = (lhub *)lua_touserdata(L, hidx);
  lsse_home(L);
  int home = lua_gettop(L);
  lsse_slot_get(L, hidx, HSLOT_ANCHORS);
  int a = lua_gettop(L);
  sse_sub *s;
  while (u->h && (s = sse_hub_any_sub(u->h)) != NULL) {
    lua_rawgeti(L, a, (int)sse_sub_id(s));
    int draining = sse_sub_state(s) == SSE_SUB_DRAINING;
    if (!lsse_testudata(L, -1, STREAM_MT) || lsse_stream_move(L, -1, home) != 0) {
      unanchor_at(L, s);
      sse_hub_remove(s);
    } else if (draining) {
      lsse_anchor_draining(L, -1, 1);
      drain_timer(L, home);
    }
    lua_settop(L, a);
  }
  report(L, home, 0);
  lua_settop(L, home - 1);
}

/* hub:close(): the streams still in it go on in the home hub; the C hub
 * and its handles go. Idempotent. */
static int l_hub_close(lua_State *L) {
  lhub *u = (lhub *)lsse_checkudata(L, 1, HUB_MT);
  if (!u->h || u->home) return 0;
  hub_empty(L, 1);
  close_loop(L, 1);
  if (u->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
    u->self_ref = LUA_NOREF;
  }
  sse_hub *h = u->h;
  u->h = NULL;
  sse_hub_free(h);
  return 0;
}

/* __gc: nothing anchors a hub that holds streams (it pins itself), so this
 * is an empty hub, or the end of the Lua state. */
static int hub_gc(lua_State *L) {
  lhub *u = (lhub *)lsse_checkudata(L, 1, HUB_MT);
  if (!u->h) return 0;
  close_loop(L, 1);
  sse_hub *h = u->h;
  u->h = NULL;
  sse_hub_free(h); /* its subscribers leave it */
  return 0;
}

/* --- streams in and out ----------------------------------------------------------- */

/* Registers the stream at sidx with the hub at 1 (fname's argument arg):
 * returns 1, or 0 (pushing nil, "closed") for a closed stream. Raises for
 * a stream of another Hub. */
static int add_stream(lua_State *L, int sidx, int arg, const char *fname) {
  lhub *u = check_hub(L, 1);
  lstream *st = lsse_check_stream(L, sidx, arg, fname);
  if (st->flags & SF_CLOSED) {
    lsse_fail(L, 0, "closed");
    return 0;
  }
  sse_sub *s = st->s;
  sse_hub *cur = sse_sub_hub(s);
  if (cur == u->h) return 1;
  ensure_loop(L, 1);
  if (cur && !((lhub *)sse_hub_user(cur))->home)
    lsse_argerror(L, arg, fname, "stream is registered with another hub");
  if (lsse_stream_move(L, sidx, 1) != 0) {
    lsse_fail(L, 0, "closed");
    return 0;
  }
  /* a stream follows its hub's outbox limit and policy unless it chose its own */
  sse_sub_set_limits(s, (st->flags & SF_OWN_LIMIT) ? sse_sub_limit(s) : u->limit,
                     (st->flags & SF_OWN_POLICY) ? sse_sub_policy(s) : u->policy);
  return 1;
}

/* hub:add(stream [, fname]) -> true | nil, "closed" */
static int l_hub_add(lua_State *L) {
  if (!add_stream(L, 2, 1, luaL_optstring(L, 3, "register"))) return 2;
  lua_pushboolean(L, 1);
  return 1;
}

/* hub:remove(stream) -> true when it was registered here (it goes on in no
 * Hub, out of its topics). */
static int l_hub_remove(lua_State *L) {
  lhub *u = check_hub(L, 1);
  lstream *st = lsse_check_stream(L, 2, 1, "unregister");
  if ((st->flags & SF_DONE) || sse_sub_hub(st->s) != u->h) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lsse_home(L);
  int ok = lsse_stream_move(L, 2, -1) == 0;
  lua_pushboolean(L, ok);
  return 1;
}

/* hub:owns(stream) -> is it registered with this hub? */
static int l_hub_owns(lua_State *L) {
  lhub *u = check_hub(L, 1);
  lstream *st = lsse_check_stream(L, 2, 1, NULL);
  lua_pushboolean(L, !(st->flags & SF_DONE) && sse_sub_hub(st->s) == u->h);
  return 1;
}

static sse_sub *member_arg(lua_State *L, lhub *u, int i, const char *fname) {
  lstream *st = lsse_check_stream(L, i, i - 1, fname);
  if ((st->flags & SF_DONE) || sse_sub_hub(st->s) != u->h)
    lsse_argerror(L, i - 1, fname, "stream is not registered with this hub");
  return st->s;
}

/* The (hub, stream, topic) arguments of the topic methods. */
static sse_sub *topic_args(lua_State *L, const char **topic, size_t *len, const char *fname) {
  lhub *u = check_hub(L, 1);
  sse_sub *s = member_arg(L, u, 2, fname);
  *topic = luaL_checklstring(L, 3, len);
  return s;
}

static int l_hub_subscribe(lua_State *L) {
  const char *t;
  size_t n;
  sse_sub *s = topic_args(L, &t, &n, "subscribe");
  int r = sse_hub_subscribe(s, t, n);
  if (r < 0) return luaL_error(L, "not enough memory");
  lua_pushboolean(L, r);
  return 1;
}

static int l_hub_unsubscribe(lua_State *L) {
  const char *t;
  size_t n;
  sse_sub *s = topic_args(L, &t, &n, "unsubscribe");
  lua_pushboolean(L, sse_hub_unsubscribe(s, t, n));
  return 1;
}

static int l_hub_subscribed(lua_State *L) {
  const char *t;
  size_t n;
  sse_sub *s = topic_args(L, &t, &n, "is_subscribed");
  lua_pushboolean(L, sse_sub_is_subscribed(s, t, n));
  return 1;
}

/* hub:set_leave(fn): fn(stream, reason) when a registered stream closes
 * (before its topics go: presence reads them). */
static int l_hub_set_leave(lua_State *L) {
  check_hub(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lsse_slot_set(L, 1, HSLOT_LEAVE);
  return 0;
}

static void push_stream_of(sse_sub *s, void *ud) {
  lua_State *L = (lua_State *)ud;
  lua_rawgeti(L, -2, (int)sse_sub_id(s));
  lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
}

/* hub:streams() -> the registered streams, a list */
static int l_hub_streams(lua_State *L) {
  lhub *u = check_hub(L, 1);
  lsse_slot_get(L, 1, HSLOT_ANCHORS);
  lua_createtable(L, (int)sse_hub_count(u->h), 0);
  sse_hub_each_sub(u->h, push_stream_of, L);
  return 1;
}

/* hub:flush(): writes what is queued, reports closed and ready streams. */
static int l_hub_flush(lua_State *L) {
  check_hub(L, 1);
  report(L, 1, 1);
  return 0;
}

/* --- events ------------------------------------------------------------------------- */

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

/* hub:publish(ev, topic | nil, ring | nil, fname, arg) -> count [, id]
 * ev is an event table/sse.Event, or a string of pre-encoded wire bytes.
 * With ring (an sse.Ring), the event is stored there first under the next
 * id and the ring's frame itself is what every subscriber gets: one encode,
 * one copy of the bytes. Returns nil, "closed" when the ring is closed. */
static int l_hub_publish(lua_State *L) {
  if (!hub_again(L)) return lsse_fail(L, 0, "closed"); /* an event's __index closed it */
  size_t tlen = 0;
  const char *topic = lua_isnil(L, 3) ? NULL : luaL_checklstring(L, 3, &tlen);
  sse_frame *f;
  int id_idx = 0;
  const char *fname = luaL_optstring(L, 5, NULL);
  int arg = (int)luaL_optinteger(L, 6, 1);
  if (!lua_isnoneornil(L, 4)) {
    f = lsse_ring_store(L, 4, 2, arg, fname, topic, tlen);
    if (!f) return lsse_fail(L, 0, "closed");
    id_idx = lua_gettop(L);
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    size_t n;
    const char *b = lua_tolstring(L, 2, &n);
    f = sse_frame_new(b, n, NULL, 0);
  } else {
    f = encode_frame(L, 2, arg, fname);
  }
  if (!f) return luaL_error(L, "not enough memory");
  sse_hub *h = hub_again(L);
  if (!h) {
    sse_frame_unref(f);
    return lsse_fail(L, 0, "closed");
  }
  size_t n = sse_hub_publish(h, f, topic, tlen, lsse_now());
  sse_frame_unref(f);
  lua_pushinteger(L, (lua_Integer)n);
  if (!id_idx) return 1;
  lua_pushvalue(L, id_idx);
  return 2;
}

/* hub:replay_begin(stream): the stream is "replaying" from now on (docs/CORE.md 3). */
static int l_hub_replay_begin(lua_State *L) {
  lhub *u = check_hub(L, 1);
  sse_sub *s = member_arg(L, u, 2, "attach");
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

/* hub:resume(stream, frames, upto, gap | nil, last_event_id | nil, fname
 * [, topics]) -> count | nil, "closed". frames: a list of wire-byte strings
 * or event tables (with their ids), oldest first; upto: the seq the replay
 * covers; gap: nil or {oldest =, latest =}; topics: nil or a list whose
 * i-th item is frames[i]'s topic (a string, or false/nil: none), which an
 * envelope subscriber sees. Every item is checked before anything changes. */
static int l_hub_resume(lua_State *L) {
  const char *fname = luaL_optstring(L, 7, "resume");
  lhub *u = check_hub(L, 1);
  lstream *st = lsse_check_stream(L, 2, 1, fname);
  if (lua_type(L, 3) != LUA_TTABLE) lsse_typeerror(L, 2, fname, "table", 3);
  long long upto = 0;
  if (!lua_isnoneornil(L, 4) && (!sse_tointeger(L, 4, &upto) || upto < 0))
    lsse_argerror(L, 3, fname, "upto: integer >= 0 expected, got %s", lsse_show_value(L, 4));
  int has_gap = !lua_isnoneornil(L, 5);
  if (has_gap && lua_type(L, 5) != LUA_TTABLE) lsse_typeerror(L, 4, fname, "table or nil", 5);
  int has_topics = !lua_isnoneornil(L, 8);
  if (has_topics && lua_type(L, 8) != LUA_TTABLE) lsse_typeerror(L, 5, fname, "table or nil", 8);
  lua_settop(L, 8);
  size_t n = lua_rawlen(L, 3);
  int top = lua_gettop(L);
  /* validate: strings, or events whose fields are right */
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
  sse_sub *s = st->s;
  if (!u->h || (st->flags & SF_CLOSED) || !sse_sub_replaying(s)) return lsse_fail(L, 0, "closed");
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
      sse_sub_push(s, j, lsse_now());
      sse_frame_unref(j);
    }
  }
  lsse_stream_settle(L, 2, 0);
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

/* hub:attach(stream, topics | nil, last_id | nil, ring, fname, envelope)
 * -> count [, "gap"] | nil, "closed": one C call with the memory ring as the
 * hub's replayer: register, (envelope mode), subscribe, replay by frame
 * reference into the outbox (or the sse-join event of a fresh client),
 * live. last_id nil: the stream's own. */
static int l_hub_attach(lua_State *L) {
  const char *fname = luaL_optstring(L, 6, "attach");
  check_hub(L, 1);
  lstream *st = lsse_check_stream(L, 2, 1, fname);
  int envelope = lua_toboolean(L, 7);
  lua_settop(L, 5);
  double now = 0;
  sse_ring *r = lsse_ring_get(L, 5, &now); /* its clock may run Lua: look up the rest after */
  if (!r || !hub_again(L)) return lsse_fail(L, 0, "closed");
  if (lua_isnil(L, 4)) {
    lsse_slot_get(L, 2, SLOT_LAST_ID);
    lua_replace(L, 4);
  } else if (lua_type(L, 4) != LUA_TSTRING) {
    lsse_argerror(L, 2, fname, "field 'last_event_id': string expected, got %s", luaL_typename(L, 4));
  }
  sse_str stack[TOPICS_ON_STACK];
  size_t nt;
  sse_str *topics = topics_arg(L, 3, 2, fname, stack, &nt);
  if (!add_stream(L, 2, 1, fname)) return 2;
  if (envelope) sse_sub_set_envelope(st->s, 1);
  size_t idlen = 0;
  const char *last_id = lua_isnil(L, 4) ? NULL : lua_tolstring(L, 4, &idlen);
  sse_hub *h = hub_again(L);
  /* no Lua from here on: the ring is the hub's replayer for this one call,
   * so a ring closed later never leaves the hub a dangling pointer */
  size_t count = 0;
  int gap = 0;
  sse_hub_set_replayer(h, &sse_ring_replayer_ops, r);
  int rc = sse_hub_attach(h, st->s, topics, nt, last_id, idlen, now, &count, &gap);
  sse_hub_set_replayer(h, NULL, NULL);
  if (rc == SSE_HUB_ECLOSED) return lsse_fail(L, 0, "closed");
  if (rc < 0) return luaL_error(L, "not enough memory");
  lsse_stream_settle(L, 2, 0);
  lua_pushinteger(L, (lua_Integer)count);
  if (!gap) return 1;
  lua_pushliteral(L, "gap");
  return 2;
}

/* hub:deliver(ev | bytes, topic | nil, seq, fname) -> count: an event
 * that already has its id (a backend's follower): one encode, then the
 * fan-out, with frame->seq = seq for the replay hand-off. */
static int l_hub_deliver(lua_State *L) {
  const char *fname = luaL_optstring(L, 5, "deliver");
  if (!hub_again(L)) return lsse_fail(L, 0, "closed");
  size_t tlen = 0;
  const char *topic = NULL;
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TSTRING) lsse_typeerror(L, 2, fname, "string or nil", 3);
    topic = lua_tolstring(L, 3, &tlen);
  }
  long long seq = 0;
  if (!sse_tointeger(L, 4, &seq) || seq < 1)
    lsse_argerror(L, 3, fname, "seq: integer >= 1 expected, got %s", lsse_show_value(L, 4));
  double now = lsse_now();
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

/* hub:keepalive(bytes, idle) -> count */
static int l_hub_keepalive(lua_State *L) {
  lhub *u = check_hub(L, 1);
  size_t n;
  const char *b = luaL_checklstring(L, 2, &n);
  double idle = luaL_checknumber(L, 3), now = lsse_now();
  sse_frame *f = sse_frame_new(b, n, NULL, 0);
  if (!f) return luaL_error(L, "not enough memory");
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


void lsse_open_hub(lua_State *L) {
  static const luaL_Reg hub_methods[] = {
      {"add", l_hub_add},
      {"remove", l_hub_remove},
      {"owns", l_hub_owns},
      {"subscribe", l_hub_subscribe},
      {"unsubscribe", l_hub_unsubscribe},
      {"subscribed", l_hub_subscribed},
      {"set_leave", l_hub_set_leave},
      {"streams", l_hub_streams},
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
      {"close", l_hub_close},
      {NULL, NULL}};
  luaL_newmetatable(L, HUB_MT);
  lua_newtable(L);
  luaL_setfuncs(L, hub_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, hub_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"hub_new", l_hub_new}, {"join_event", l_join_event},
      {"gap_data", l_gap_data}, {"envelope", l_envelope}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
