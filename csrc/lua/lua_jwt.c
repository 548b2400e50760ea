/* lua_jwt.c - sse.jwt_core: the Lua binding of jwt.c (JWT verification with
 * libcrypto). A module of its own, so sse.core never links libcrypto; the
 * public face is lua/sse/jwt.lua, which checks options and decodes claims.
 *
 *   core.key_secret(s) / core.key_pem(pem) -> key | nil, msg
 *   key:alg()                              -> "HS256" | "RS256" | "ES256"
 *   core.verifier(keys, algs, max_token_bytes, leeway, require_exp, iss, aud)
 *                                          -> verifier (raises on misuse)
 *   verifier:verify(token, now)            -> claims_json, alg, exp | nil, err
 *   core.messages                          -> {code = message} (for the docs)
 *   core.limits                            -> the compile-time limits */
#include "compat.h"
#include "jwt.h"

#include <string.h>

#if defined(__GNUC__)
#define SSE_EXPORT __attribute__((visibility("default")))
#else
#define SSE_EXPORT
#endif

SSE_EXPORT int luaopen_sse_jwt_core(lua_State *L);

#define KEY_MT "sse.JwtKey"
#define VERIFIER_MT "sse.JwtVerifier"
#define MAX_KEYS 16

typedef struct lkey {
  sse_jwt_key *k; /* NULL once collected */
} lkey;

typedef struct lverifier {
  sse_jwt_check chk;        /* iss/aud point into strings kept in the user value */
  size_t nkeys;
  lkey *keys[MAX_KEYS];     /* the key userdata, kept in the user value */
  char scratch[1];          /* max_token_bytes bytes */
} lverifier;

static int key_new(lua_State *L, int pem) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lkey *u = sse_newudata(L, sizeof *u);
  u->k = NULL;
  int rc = pem ? sse_jwt_key_pem(s, n, &u->k) : sse_jwt_key_secret(s, n, &u->k);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, sse_jwt_message(rc));
    return 2;
  }
  luaL_setmetatable(L, KEY_MT); /* last: __gc only ever sees a whole key */
  return 1;
}

static int l_key_secret(lua_State *L) { return key_new(L, 0); }
static int l_key_pem(lua_State *L) { return key_new(L, 1); }

static lkey *check_key(lua_State *L, int idx) {
  lkey *u = luaL_checkudata(L, idx, KEY_MT);
  return u;
}

static int l_key_alg(lua_State *L) {
  lkey *u = check_key(L, 1);
  lua_pushstring(L, u->k ? sse_jwt_alg_name(sse_jwt_key_alg(u->k)) : "closed");
  return 1;
}

static int l_key_gc(lua_State *L) {
  lkey *u = check_key(L, 1);
  sse_jwt_key_free(u->k);
  u->k = NULL;
  return 0;
}

/* Argument idx as a number, or raise naming what. */
static double check_num(lua_State *L, int idx, const char *what) {
  if (lua_type(L, idx) != LUA_TNUMBER) {
    lua_pushfstring(L, "%s: number expected, got %s", what, luaL_typename(L, idx));
    luaL_argerror(L, idx, lua_tostring(L, -1));
  }
  return lua_tonumber(L, idx);
}

/* core.verifier(keys, algs, max_token_bytes, leeway, require_exp, iss, aud) */
static int l_verifier(lua_State *L) {
  lua_settop(L, 7); /* iss and aud may be absent */
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  long long max = 0;
  if (!sse_tointeger(L, 3, &max) || max < 1 || max > SSE_JWT_MAX_TOKEN_LIMIT)
    luaL_argerror(L, 3, "max_token_bytes must be an integer in 1..65536");
  double leeway = check_num(L, 4, "leeway");
  if (!(leeway >= 0 && leeway <= 86400)) luaL_argerror(L, 4, "leeway must be in 0..86400");
  luaL_checktype(L, 5, LUA_TBOOLEAN);
  if (!lua_isnil(L, 6)) luaL_checktype(L, 6, LUA_TSTRING);
  if (!lua_isnil(L, 7)) luaL_checktype(L, 7, LUA_TSTRING);

  lkey *keys[MAX_KEYS];
  unsigned have = 0, algs = 0;
  size_t nkeys = lua_rawlen(L, 1);
  if (nkeys < 1 || nkeys > MAX_KEYS) luaL_argerror(L, 1, "1..16 keys expected");
  for (size_t i = 0; i < nkeys; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    lkey *u = luaL_testudata(L, -1, KEY_MT);
    if (!u || !u->k) luaL_argerror(L, 1, "keys must be sse.jwt_core keys");
    keys[i] = u;
    have |= (unsigned)sse_jwt_key_alg(u->k);
    lua_pop(L, 1);
  }
  size_t nalgs = lua_rawlen(L, 2);
  for (size_t i = 0; i < nalgs; i++) {
    lua_rawgeti(L, 2, (int)i + 1);
    size_t n = 0;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    int a = s ? sse_jwt_alg_parse(s, n) : 0;
    if (!a) luaL_argerror(L, 2, "algorithms: HS256, RS256 or ES256 expected");
    if (!(have & (unsigned)a)) {
      lua_pushfstring(L, "algorithm %s has no key", s);
      luaL_argerror(L, 2, lua_tostring(L, -1));
    }
    algs |= (unsigned)a;
    lua_pop(L, 1);
  }
  if (!algs) luaL_argerror(L, 2, "at least one algorithm expected");

  lverifier *v = sse_newudata(L, sizeof *v + (size_t)max);
  memset(v, 0, sizeof *v);
  v->chk.algs = algs;
  v->chk.max_token_bytes = (size_t)max;
  v->chk.leeway = leeway;
  v->chk.require_exp = lua_toboolean(L, 5);
  if (!lua_isnil(L, 6)) v->chk.iss = lua_tolstring(L, 6, &v->chk.iss_len);
  if (!lua_isnil(L, 7)) v->chk.aud = lua_tolstring(L, 7, &v->chk.aud_len);
  v->nkeys = nkeys;
  memcpy(v->keys, keys, nkeys * sizeof keys[0]);
  /* the user value keeps the keys and the iss/aud strings alive */
  sse_getuservalue(L, -1);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "keys");
  lua_pushvalue(L, 6);
  lua_setfield(L, -2, "iss");
  lua_pushvalue(L, 7);
  lua_setfield(L, -2, "aud");
  lua_pop(L, 1);
  luaL_setmetatable(L, VERIFIER_MT);
  return 1;
}

/* verifier:verify(token, now) -> claims_json, alg, exp | nil, err */
static int l_verify(lua_State *L) {
  lverifier *v = luaL_checkudata(L, 1, VERIFIER_MT);
  size_t n;
  const char *tok = luaL_checklstring(L, 2, &n);
  double now = check_num(L, 3, "now");
  if (now != now || now - now != 0) luaL_argerror(L, 3, "now must be finite");
  sse_jwt_check chk = v->chk;
  chk.now = now;
  /* a key whose __gc was called by hand is skipped, never used after free */
  sse_jwt_key *keys[MAX_KEYS];
  size_t nk = 0;
  for (size_t i = 0; i < v->nkeys; i++)
    if (v->keys[i]->k) keys[nk++] = v->keys[i]->k;
  sse_jwt_claims c;
  /* a token longer than the scratch is refused for its size before any use */
  int rc = n > chk.max_token_bytes
             ? SSE_JWT_E_TOO_LARGE
             : sse_jwt_verify(tok, n, keys, nk, &chk, v->scratch, chk.max_token_bytes,
                              &c);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, sse_jwt_message(rc));
    return 2;
  }
  lua_pushlstring(L, c.json, c.json_len);
  lua_pushstring(L, sse_jwt_alg_name(c.alg));
  if (c.has_exp) lua_pushnumber(L, c.exp);
  else lua_pushnil(L);
  return 3;
}

static void push_limits(lua_State *L) {
  lua_newtable(L);
  lua_pushinteger(L, SSE_JWT_MAX_TOKEN_BYTES);
  lua_setfield(L, -2, "max_token_bytes");
  lua_pushinteger(L, SSE_JWT_MAX_TOKEN_LIMIT);
  lua_setfield(L, -2, "max_token_limit");
  lua_pushinteger(L, SSE_JWT_MAX_HEADER_BYTES);
  lua_setfield(L, -2, "max_header_bytes");
  lua_pushinteger(L, SSE_JWT_MAX_DEPTH);
  lua_setfield(L, -2, "max_depth");
  lua_pushinteger(L, SSE_JWT_MIN_SECRET_BYTES);
  lua_setfield(L, -2, "min_secret_bytes");
  lua_pushinteger(L, SSE_JWT_MIN_RSA_BITS);
  lua_setfield(L, -2, "min_rsa_bits");
  lua_pushinteger(L, MAX_KEYS);
  lua_setfield(L, -2, "max_keys");
}

SSE_EXPORT int luaopen_sse_jwt_core(lua_State *L) {
  static const luaL_Reg key_methods[] = {{"alg", l_key_alg}, {NULL, NULL}};
  static const luaL_Reg verifier_methods[] = {{"verify", l_verify}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"key_secret", l_key_secret}, {"key_pem", l_key_pem}, {"verifier", l_verifier},
    {NULL, NULL}};

  luaL_newmetatable(L, KEY_MT);
  lua_pushcfunction(L, l_key_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, key_methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "sse.JwtKey");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);

  luaL_newmetatable(L, VERIFIER_MT);
  luaL_newlib(L, verifier_methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "sse.JwtVerifier");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);

  luaL_newlib(L, funcs);
  lua_newtable(L);
  for (int c = -1; c >= SSE_JWT_E_LAST_; c--) {
    lua_pushstring(L, sse_jwt_message(c));
    lua_rawseti(L, -2, -c);
  }
  lua_setfield(L, -2, "messages");
  push_limits(L);
  lua_setfield(L, -2, "limits");
  return 1;
}
