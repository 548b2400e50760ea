/* lsse.c - luaopen_sse_core: the module table of sse.core, assembled from the
 * binding files (one per C object). */
#include "lsse.h"

#ifndef SSE_VERSION
#define SSE_VERSION "0.1.0"
#endif

#if defined(__GNUC__)
#define SSE_EXPORT __attribute__((visibility("default")))
#else
#define SSE_EXPORT
#endif

SSE_EXPORT int luaopen_sse_core(lua_State *L);

SSE_EXPORT int luaopen_sse_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, SSE_VERSION);
  lua_setfield(L, -2, "version");
  lsse_open_encode(L);
  lsse_open_hub(L);
  lsse_open_ring(L);
  lsse_open_parse(L);
  lsse_open_http(L);
  /* one line per binding file, in the order of the Makefile CORE_SRCS */
  return 1;
}
