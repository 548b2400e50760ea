/* compat.h - the few Lua 5.2+ API calls the core uses, for LuaJIT 2.1 and
 * PUC Lua 5.1 (the 5.1 API). Everything else in csrc/ is written against the
 * 5.1 subset plus these. */
#ifndef SSE_COMPAT_H
#define SSE_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* LuaJIT 2.1 has luaL_setfuncs, luaL_newlib, luaL_testudata, luaL_setmetatable. */
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define lua_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
/* No user values in 5.1: keep them in the userdata's environment table. */
#define SSE_NO_UVALUE 1
#endif

#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
/* PUC Lua 5.1 (LuaJIT 2.1 defines luaL_newlib and has the other three). */

/* Set each function of l in the table below the nup upvalues on the stack,
 * each closing over those upvalues; pops the upvalues. */
static inline void sse_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

/* The userdata at ud when its metatable is the registry's tname, else NULL;
 * leaves the stack as it was. */
static inline void *sse_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p == NULL || !lua_getmetatable(L, ud)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}

/* Give the value on top the registry's metatable tname. */
static inline void sse_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}

#define luaL_setfuncs(L, l, n) sse_setfuncs((L), (l), (n))
#define luaL_testudata(L, i, t) sse_testudata((L), (i), (t))
#define luaL_setmetatable(L, t) sse_setmetatable((L), (t))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
#endif

/* A number is an integer when it has no fraction and fits an int64 exactly. */
static inline int sse_tointeger(lua_State *L, int idx, long long *out) {
#if LUA_VERSION_NUM >= 503
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (ok) { *out = (long long)v; return 1; }
  return 0;
#else
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  lua_Number n = lua_tonumber(L, idx);
  if (n != n || n < -9007199254740992.0 || n > 9007199254740992.0) return 0;
  if ((lua_Number)(long long)n != n) return 0;
  *out = (long long)n;
  return 1;
#endif
}

/* Userdata with one user value slot. On 5.1 that is the environment
 * table, which a new userdata shares with the running function: give it a
 * table of its own so no two objects ever share one. */
static inline void *sse_newudata(lua_State *L, size_t size) {
#if LUA_VERSION_NUM >= 504
  return lua_newuserdatauv(L, size, 1);
#else
  void *p = lua_newuserdata(L, size);
#if LUA_VERSION_NUM < 502
  lua_newtable(L);
  lua_setfenv(L, -2);
#endif
  return p;
#endif
}

/* Push the user value of the userdata at idx (a table; created on first use). */
static inline void sse_getuservalue(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
#if LUA_VERSION_NUM >= 504
  if (lua_getiuservalue(L, idx, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
  }
#elif LUA_VERSION_NUM >= 502
  lua_getuservalue(L, idx);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setuservalue(L, idx);
  }
#else
  lua_getfenv(L, idx); /* sse_newudata gave it a table of its own */
#endif
}

#endif
