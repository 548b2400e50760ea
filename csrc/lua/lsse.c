/* lsse.c - luaopen_sse_core: the module table of sse.core, assembled from the
 * binding files (one per C object). */
#include "lsse.h"
#include "gzip.h"
#include "lstream.h"
#include "httphead.h"
#include "sse_limits.h"
#include "parse.h"
#include "ring.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>

#ifndef SSE_VERSION
#define SSE_VERSION "0.1.0"
#endif

#if defined(__GNUC__)
#define SSE_EXPORT __attribute__((visibility("default")))
#else
#define SSE_EXPORT
#endif

SSE_EXPORT int luaopen_sse_core(lua_State *L);

int lsse_argerror(lua_State *L, int arg, const char *fname, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  if (!fname) return luaL_argerror(L, arg, msg);
  if (arg == 0) lua_pushfstring(L, "calling '%s' on bad self (%s)", fname, msg);
  else lua_pushfstring(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
  return lua_error(L);
}

/* The metatables of one Lua state (the last one asked on this thread), by
 * the address of their name: a type check compares two pointers instead of
 * looking the name up. A state is told apart by its registry table; the
 * cache is emptied when that state closes (mt_sentinel's __gc), so a later
 * state at the same address cannot meet stale pointers (a state whose
 * sentinel went is never cached again: later type checks of its closing
 * objects look the name up). Names are the
 * registry's (luaL_newmetatable): they stay for the state's life. */
#define MT_CACHE 16
static __thread const void *mt_state;
static __thread const char *mt_name[MT_CACHE];
static __thread const void *mt_ptr[MT_CACHE];
static __thread int mt_n;
static __thread const void *mt_dead; /* a closing state: never cached again */

void *lsse_testudata(lua_State *L, int idx, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  const void *mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  const void *reg = lua_topointer(L, LUA_REGISTRYINDEX);
  if (reg == mt_state) {
    for (int i = 0; i < mt_n; i++)
      if (mt_name[i] == tname) return mt_ptr[i] == mt ? p : NULL;
  }
  luaL_getmetatable(L, tname); /* first check of this name (or of this state) */
  const void *want = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
  lua_pop(L, 1);
  if (!want || reg == mt_dead) return want && want == mt ? p : NULL;
  if (reg != mt_state) {
    mt_state = reg;
    mt_n = 0;
  }
  if (mt_n < MT_CACHE) {
    mt_name[mt_n] = tname;
    mt_ptr[mt_n++] = want;
  }
  return want == mt ? p : NULL;
}

static int mt_sentinel_gc(lua_State *L) {
  const void *reg = lua_topointer(L, LUA_REGISTRYINDEX);
  if (reg == mt_state) {
    mt_state = NULL;
    mt_n = 0;
  }
  mt_dead = reg; /* other __gc of this closing state may still check types */
  return 0;
}

/* Anchors, in the registry, the userdata whose collection (at lua_close)
 * empties the type-check cache of this state. */
static void mt_sentinel(lua_State *L) {
  lua_newuserdata(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, mt_sentinel_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "sse.typecache");
}

/* Lua's collector paces itself on the Lua heap alone. A binding that
 * mallocs state for a Lua object (a connection, a subscriber) reports it here
 * as that much Lua allocation (lua_gc's step of n KB): without it a burst of
 * connections that makes little Lua garbage lets the collector fall behind,
 * and the heap's peak (and so the RSS) runs up towards twice the live data. */
#if LUA_VERSION_NUM >= 504
static __thread size_t gc_unaccounted;
#endif
void lsse_gc_account(lua_State *L, size_t bytes) {
#if LUA_VERSION_NUM >= 504
  gc_unaccounted += bytes;
  if (gc_unaccounted < 1024) return;
  int kb = (int)(gc_unaccounted / 1024);
  gc_unaccounted %= 1024;
  /* 5.4: a step of n KB adds n KB to the collector's debt (it steps only
   * when that is due); not while the program has stopped the collector */
  if (lua_gc(L, LUA_GCISRUNNING, 0)) lua_gc(L, LUA_GCSTEP, kb);
#else
  /* LuaJIT's step of n KB collects until n KB are freed or a cycle ends:
   * not an accounting; nothing is reported there */
  (void)L;
  (void)bytes;
#endif
}

void *lsse_checkudata(lua_State *L, int idx, const char *tname) {
  void *p = lsse_testudata(L, idx, tname);
  return p ? p : luaL_checkudata(L, idx, tname); /* raises the usual error */
}

int lsse_typeerror(lua_State *L, int arg, const char *fname, const char *expected, int idx) {
  return lsse_argerror(L, arg, fname, "%s expected, got %s", expected, luaL_typename(L, idx));
}

int lsse_fail(lua_State *L, int code, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  if (code == 0) return 2;
  lua_pushinteger(L, code);
  return 3;
}

/* A peer that resets its connection makes the next write on that socket
 * raise SIGPIPE, whose default action ends the process; libuv, luv and the
 * Lua interpreter leave it so. Every write in sse (the C hub, sse.http,
 * sse.client) handles EPIPE as an error instead, so the module ignores the
 * signal when it is loaded -- unless the program installed a handler of its
 * own (or ignores it already, as nginx does), which is left alone. Returns
 * the disposition found: "default" (now ignored), "ignored" or "handled". */
static const char *ignore_sigpipe(void) {
#if defined(SIGPIPE)
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) != 0) return "unknown";
  if (old.sa_flags & SA_SIGINFO || old.sa_handler != SIG_DFL)
    return old.sa_handler == SIG_IGN ? "ignored" : "handled";
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGPIPE, &ign, NULL);
  return "default";
#else
  return "none";
#endif
}

/* sse.core.limits: the fixed limits of the core (csrc/core/sse_limits.h and the
 * headers of each part), read by the Lua layer and the docs. */
static void open_limits(lua_State *L) {
  static const struct {
    const char *name;
    double value; /* every limit is an integer exact in a double */
  } limits[] = {
      {"int_exact_max", (double)SSE_INT_EXACT_MAX},
      {"retry_max", (double)SSE_RETRY_MAX},
      {"id_int_max", (double)SSE_ID_INT_MAX},
      {"encode_scratch_keep", (double)SSE_SCRATCH_KEEP},
      {"ring_max_events", (double)SSE_RING_MAX_EVENTS},
      {"ring_epoch_max", (double)SSE_RING_EPOCH_MAX},
      {"parse_default_max_line", (double)SSE_PARSE_DEFAULT_MAX_LINE},
      {"parse_default_max_event", (double)SSE_PARSE_DEFAULT_MAX_EVENT},
      {"http_max_head_bytes", (double)SSE_HTTP_MAX_HEAD_BYTES},
      {"http_max_headers", (double)SSE_HTTP_MAX_HEADERS},
      {"http_max_query_pairs", (double)SSE_HTTP_MAX_QUERY_PAIRS},
      {"http_max_content_length", (double)SSE_HTTP_MAX_CONTENT_LENGTH},
      {"gzip_level_default", (double)SSE_GZ_LEVEL_DEFAULT},
      {"gzip_window_default", (double)SSE_GZ_WINDOW_DEFAULT},
      {"gzip_window_min", (double)SSE_GZ_WINDOW_MIN},
      {"gzip_window_max", (double)SSE_GZ_WINDOW_MAX},
      {"gzip_mem_level_default", (double)SSE_GZ_MEMLEVEL_DEFAULT},
      {"gzip_mem_level_min", (double)SSE_GZ_MEMLEVEL_MIN},
      {"gzip_mem_level_max", (double)SSE_GZ_MEMLEVEL_MAX},
      {"stream_outbox_limit", (double)SSE_STREAM_OUTBOX_DEFAULT},
      {"hub_outbox_limit", (double)SSE_HUB_OUTBOX_DEFAULT},
      {"outbox_max", SSE_OUTBOX_MAX},
      {"write_timeout_max", SSE_WRITE_TIMEOUT_MAX},
      {"batch_frames", (double)SSE_BATCH_FRAMES},
      {"early_write_frames", (double)SSE_EARLY_WRITE_FRAMES},
      {"turn_bytes", (double)SSE_TURN_BYTES},
      {"close_grace_ms", (double)SSE_CLOSE_GRACE_MS},
  };
  lua_newtable(L);
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    lua_pushinteger(L, (lua_Integer)limits[i].value);
    lua_setfield(L, -2, limits[i].name);
  }
  lua_setfield(L, -2, "limits");
}

SSE_EXPORT int luaopen_sse_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, SSE_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, ignore_sigpipe());
  lua_setfield(L, -2, "sigpipe_was");
  open_limits(L);
  lsse_open_encode(L);
  mt_sentinel(L);
  lsse_open_stream(L);
  lsse_open_reader(L);
  lsse_open_listen(L);
  lsse_open_hub(L);
  lsse_open_ring(L);
  lsse_open_parse(L);
  lsse_open_http(L);
  lsse_open_resp(L);
  /* one line per binding file, in the order of the Makefile CORE_SRCS */
  return 1;
}
