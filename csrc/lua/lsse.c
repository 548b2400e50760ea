/* lsse.c - luaopen_sse_core: the module table of sse.core, assembled from the
 * binding files (one per C object). */
#include "lsse.h"

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

SSE_EXPORT int luaopen_sse_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, SSE_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, ignore_sigpipe());
  lua_setfield(L, -2, "sigpipe_was");
  lsse_open_encode(L);
  lsse_open_hub(L);
  lsse_open_ring(L);
  lsse_open_parse(L);
  lsse_open_http(L);
  lsse_open_resp(L);
  /* one line per binding file, in the order of the Makefile CORE_SRCS */
  return 1;
}
