/* lua_http.c - sse.core bindings of httphead.c: request heads for the luv
 * server, response heads and bodies for the client, query strings.
 *
 * A peer's bad input is a runtime condition: the functions return
 * nil, status, message (requests) or nil, message (responses). They raise
 * only on misuse (wrong argument types, bad options). */
#include "lsse.h"
#include "httphead.h"
#include "lstream.h"

#include <string.h>

/* Body framings by name, indexed by SSE_HTTP_BODY_*. */
static const char *const FRAMINGS[] = {"none", "length", "chunked", "close", NULL};

#define MAX_HEAD_BYTES_LIMIT (1 << 30)
#define MAX_HEADERS_LIMIT 10000
#define MAX_PAIRS_LIMIT 1000000

/* Push v as a Lua integer (a float with an integral value on 5.1). */
static void push_int(lua_State *L, long long v) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)v);
#else
  lua_pushnumber(L, (lua_Number)v);
#endif
}

/* Integer at idx in 1..max, or raise a bad-argument error for arg naming
 * what (e.g. "max_headers"). */
static size_t check_count(lua_State *L, int idx, int arg, const char *what,
                          long long max) {
  long long v = 0;
  if (!sse_tointeger(L, idx, &v) || v < 1 || v > max) {
    lua_pushfstring(L, "%s must be an integer in 1..%d", what, (int)max);
    luaL_argerror(L, arg, lua_tostring(L, -1));
  }
  return (size_t)v;
}

/* Read the optional limits table at arg ({max_head_bytes=, max_headers=});
 * raises on a wrong type, a bad value or an unknown key. */
static void check_limits(lua_State *L, int arg, sse_http_limits *lim) {
  lim->max_head_bytes = SSE_HTTP_MAX_HEAD_BYTES;
  lim->max_headers = SSE_HTTP_MAX_HEADERS;
  if (lua_isnoneornil(L, arg)) return;
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k && strcmp(k, "max_head_bytes") == 0) {
      lim->max_head_bytes = check_count(L, -1, arg, k, MAX_HEAD_BYTES_LIMIT);
    } else if (k && strcmp(k, "max_headers") == 0) {
      lim->max_headers = check_count(L, -1, arg, k, MAX_HEADERS_LIMIT);
    } else {
      if (k) lua_pushfstring(L, "unknown option '%s'", k);
      else lua_pushfstring(L, "unknown option of type %s", luaL_typename(L, -2));
      luaL_argerror(L, arg, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  }
}

/* Header array of lim->max_headers entries: stack storage when small
 * enough, else a Lua-owned userdata left on the stack. */
static sse_http_header *header_array(lua_State *L, const sse_http_limits *lim,
                                     sse_http_header *local, size_t nlocal) {
  if (lim->max_headers <= nlocal) return local;
  return lua_newuserdata(L, lim->max_headers * sizeof(sse_http_header));
}

/* Push nil, status, message for code; returns 3. */
static int push_fail(lua_State *L, int code) {
  lua_pushnil(L);
  lua_pushinteger(L, sse_http_status(code));
  lua_pushstring(L, sse_http_message(code));
  return 3;
}

/* Push a table of the headers: lowercased names, repeats joined by ", ". */
static void push_headers(lua_State *L, const sse_http_header *h, size_t n) {
  lua_createtable(L, 0, (int)(n < 64 ? n : 64));
  int t = lua_gettop(L);
  char low[64]; /* most names are short: lowercased here, no Lua buffer */
  for (size_t i = 0; i < n; i++) {
    const char *name = h[i].name.p;
    size_t nn = h[i].name.n;
    if (nn <= sizeof low) {
      for (size_t j = 0; j < nn; j++) {
        char c = name[j];
        low[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
      }
      lua_pushlstring(L, low, nn);
    } else {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (size_t j = 0; j < nn; j++) {
        char c = name[j];
        luaL_addchar(&b, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
      }
      luaL_pushresult(&b);
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, h[i].value.p, h[i].value.n);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h[i].value.p, h[i].value.n);
      lua_concat(L, 3);
    }
    lua_rawset(L, t);
  }
}

/* Set t[k] = the string s (t at the top of the stack). */
static void set_str(lua_State *L, const char *k, sse_str s) {
  lua_pushlstring(L, s.p, s.n);
  lua_setfield(L, -2, k);
}

/* core.http_head_end(buf [, from [, opts]]) -> n | nil | nil, status, msg */
static int l_head_end(lua_State *L) {
  size_t len;
  const char *buf = luaL_checklstring(L, 1, &len);
  long long from = 1;
  if (!lua_isnoneornil(L, 2) && (!sse_tointeger(L, 2, &from) || from < 1))
    luaL_argerror(L, 2, "positive integer expected");
  sse_http_limits lim;
  check_limits(L, 3, &lim);
  size_t scanned = (unsigned long long)(from - 1) > len ? len : (size_t)(from - 1);
  size_t head;
  int rc = sse_http_head_check(buf, len, scanned, lim.max_head_bytes, &head);
  if (rc) return push_fail(L, rc);
  if (head == 0) {
    lua_pushnil(L);
    return 1;
  }
  push_int(L, (long long)head);
  return 1;
}

/* The field names of a parsed request, in one table (l_parse_request's
 * upvalue; the listener's too): getting a key from it costs less than
 * interning a C string per field. */
static const char *const REQ_KEYS[] = {"method", "target", "path", "query", "version",
                                       "headers", "content_length", "keep_alive",
                                       "head_bytes", "1.1", "1.0"};
enum { K_METHOD = 1, K_TARGET, K_PATH, K_QUERY, K_VERSION, K_HEADERS, K_CLEN, K_KEEP,
       K_HEAD_BYTES, K_V11, K_V10, K_COUNT = K_V10 };

/* t[keys[k]] = the value at the top (t at the top once it is popped). */
static void set_key(lua_State *L, int keys, int k) {
  lua_rawgeti(L, keys, k);
  lua_insert(L, -2);
  lua_rawset(L, -3);
}

void lsse_push_request_keys(lua_State *L) {
  lua_pushlightuserdata(L, (void *)REQ_KEYS);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

int lsse_push_request(lua_State *L, const char *buf, size_t len, const sse_http_limits *lim,
                      int keys, size_t *head_bytes) {
  keys = lua_absindex(L, keys);
  int top = lua_gettop(L);
  sse_http_header local[SSE_HTTP_MAX_HEADERS];
  sse_http_header *hdrs = header_array(L, lim, local, SSE_HTTP_MAX_HEADERS);
  sse_http_request r;
  int rc = sse_http_parse_request(buf, len, lim, hdrs, &r);
  if (rc) {
    lua_settop(L, top);
    return rc;
  }
  lua_createtable(L, 0, 9);
  lua_pushlstring(L, r.method.p, r.method.n);
  set_key(L, keys, K_METHOD);
  lua_pushlstring(L, r.target.p, r.target.n);
  set_key(L, keys, K_TARGET);
  if (r.path_len == r.path.n) {
    lua_pushlstring(L, r.path.p, r.path.n); /* nothing was escaped */
  } else {
    char *out = lua_newuserdata(L, r.path.n);
    size_t n = 0;
    sse_http_decode_path(r.path.p, r.path.n, out, &n); /* validated: cannot fail */
    lua_pushlstring(L, out, n);
    lua_remove(L, -2);
  }
  set_key(L, keys, K_PATH);
  lua_pushlstring(L, r.query.p, r.query.n);
  set_key(L, keys, K_QUERY);
  lua_rawgeti(L, keys, r.minor ? K_V11 : K_V10);
  set_key(L, keys, K_VERSION);
  push_headers(L, r.headers, r.nheaders);
  set_key(L, keys, K_HEADERS);
  if (r.content_length >= 0) {
    push_int(L, r.content_length);
    set_key(L, keys, K_CLEN);
  }
  lua_pushboolean(L, r.keep_alive);
  set_key(L, keys, K_KEEP);
  push_int(L, (long long)r.head_bytes);
  set_key(L, keys, K_HEAD_BYTES);
  if (lua_gettop(L) != top + 1) { /* the header array's userdata below it */
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
  }
  if (head_bytes) *head_bytes = r.head_bytes;
  return 0;
}

/* core.http_parse_request(buf [, opts]) -> req | nil, status, msg */
static int l_parse_request(lua_State *L) {
  size_t len;
  const char *buf = luaL_checklstring(L, 1, &len);
  sse_http_limits lim;
  check_limits(L, 2, &lim);
  int rc = lsse_push_request(L, buf, len, &lim, lua_upvalueindex(1), NULL);
  if (rc) return push_fail(L, rc);
  return 1;
}

/* Decode the query component s into the scratch buffer and push it. */
static void push_form(lua_State *L, sse_str s, char *scratch) {
  size_t n = 0;
  sse_http_decode_form(s.p, s.n, scratch, &n); /* validated: cannot fail */
  lua_pushlstring(L, scratch, n);
}

/* core.http_parse_query(qs [, max_pairs]) -> table | nil, 400, msg */
static int l_parse_query(lua_State *L) {
  size_t len;
  const char *qs = luaL_checklstring(L, 1, &len);
  size_t max = SSE_HTTP_MAX_QUERY_PAIRS;
  if (!lua_isnoneornil(L, 2)) max = check_count(L, 2, 2, "max_pairs", MAX_PAIRS_LIMIT);
  size_t npairs;
  int rc = sse_http_query_check(qs, len, max, &npairs);
  if (rc) return push_fail(L, rc);

  char *scratch = lua_newuserdata(L, len ? len : 1);
  lua_createtable(L, 0, (int)(npairs < 64 ? npairs : 64));
  int t = lua_gettop(L);
  size_t pos = 0;
  sse_str k, v;
  while (sse_http_query_next(qs, len, &pos, &k, &v)) {
    push_form(L, k, scratch);
    lua_pushvalue(L, -1);
    lua_rawget(L, t);                 /* t, key, old */
    int old = lua_type(L, -1);
    if (old == LUA_TNIL) {
      lua_pop(L, 1);
      push_form(L, v, scratch);
      lua_rawset(L, t);
    } else if (old == LUA_TSTRING) {
      lua_createtable(L, 4, 0);       /* t, key, old, list */
      lua_insert(L, -2);              /* t, key, list, old */
      lua_rawseti(L, -2, 1);
      push_form(L, v, scratch);
      lua_rawseti(L, -2, 2);
      lua_rawset(L, t);
    } else {                          /* t, key, list */
      push_form(L, v, scratch);
      lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
      lua_pop(L, 2);
    }
  }
  return 1;
}

/* core.http_parse_response(buf [, opts]) -> res | nil | nil, msg */
static int l_parse_response(lua_State *L) {
  size_t len;
  const char *buf = luaL_checklstring(L, 1, &len);
  sse_http_limits lim;
  check_limits(L, 2, &lim);
  sse_http_header local[SSE_HTTP_MAX_HEADERS];
  sse_http_header *hdrs = header_array(L, &lim, local, SSE_HTTP_MAX_HEADERS);
  sse_http_response r;
  int rc = sse_http_parse_response(buf, len, &lim, hdrs, &r);
  if (rc == SSE_HTTP_INCOMPLETE) {
    lua_pushnil(L);
    return 1;
  }
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, sse_http_message(rc));
    return 2;
  }
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, r.status);
  lua_setfield(L, -2, "status");
  set_str(L, "reason", r.reason);
  lua_pushstring(L, r.minor ? "1.1" : "1.0");
  lua_setfield(L, -2, "version");
  push_headers(L, r.headers, r.nheaders);
  lua_setfield(L, -2, "headers");
  lua_pushstring(L, FRAMINGS[r.framing]);
  lua_setfield(L, -2, "framing");
  if (r.content_length >= 0) {
    push_int(L, r.content_length);
    lua_setfield(L, -2, "content_length");
  }
  if (r.media_type.p) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < r.media_type.n; i++) {
      char c = r.media_type.p[i];
      luaL_addchar(&b, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, "media_type");
  }
  push_int(L, (long long)r.head_bytes);
  lua_setfield(L, -2, "head_bytes");
  return 1;
}

/* --- response bodies ---------------------------------------------------- */

#define BODY_MT "sse.HttpBody"

typedef struct lbody {
  int framing;
  int done;
  int failed;
  unsigned long long left; /* SSE_HTTP_BODY_LENGTH */
  sse_http_chunked ch;     /* SSE_HTTP_BODY_CHUNKED */
} lbody;

/* core.http_body(framing [, length]) -> sse.HttpBody: decodes the body of a
 * response whose framing (and Content-Length) http_parse_response gave. */
static int l_body(lua_State *L) {
  int framing = luaL_checkoption(L, 1, NULL, FRAMINGS);
  long long len = 0;
  if (framing == SSE_HTTP_BODY_LENGTH &&
      (!sse_tointeger(L, 2, &len) || len < 0 || len > SSE_HTTP_MAX_CONTENT_LENGTH))
    luaL_argerror(L, 2, "length expected (an integer in 0..2^53)");
  lbody *b = (lbody *)sse_newudata(L, sizeof *b);
  memset(b, 0, sizeof *b);
  b->framing = framing;
  b->left = (unsigned long long)len;
  b->done = framing == SSE_HTTP_BODY_NONE || (framing == SSE_HTTP_BODY_LENGTH && len == 0);
  sse_http_chunked_init(&b->ch);
  luaL_setmetatable(L, BODY_MT);
  return 1;
}

/* b:feed(bytes) -> data, done [, rest] | nil, err
 * data: the body bytes in bytes ("" when none); done: true once the body is
 * complete (rest: what followed it). A framing error is sticky. */
static int l_body_feed(lua_State *L) {
  lbody *b = (lbody *)lsse_checkudata(L, 1, BODY_MT);
  size_t n, pos = 0;
  const char *s = luaL_checklstring(L, 2, &n);
  if (b->failed) {
    lua_pushnil(L);
    lua_pushstring(L, sse_http_message(SSE_HTTP_E_CHUNKED));
    return 2;
  }
  if (b->done) {
    lua_pushliteral(L, "");
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 2);
    return 3;
  }
  if (b->framing == SSE_HTTP_BODY_CLOSE) {
    lua_pushvalue(L, 2);
    lua_pushboolean(L, 0);
    return 2;
  }
  if (b->framing == SSE_HTTP_BODY_LENGTH) {
    size_t take = (unsigned long long)n > b->left ? (size_t)b->left : n;
    b->left -= take;
    b->done = b->left == 0;
    lua_pushlstring(L, s, take);
    lua_pushboolean(L, b->done);
    if (!b->done) return 2;
    lua_pushlstring(L, s + take, n - take);
    return 3;
  }
  /* chunked: the state advances before each push, so a memory error leaves
   * b consistent (the bytes of this call are then lost with the error) */
  luaL_Buffer buf;
  luaL_buffinit(L, &buf);
  for (;;) {
    const char *d;
    size_t dn;
    int rc = sse_http_chunked_next(&b->ch, s, n, &pos, &d, &dn);
    if (rc == SSE_HTTP_CHUNK_DATA) {
      luaL_addlstring(&buf, d, dn);
      continue;
    }
    if (rc < 0) {
      b->failed = 1;
      lua_pushnil(L);
      lua_pushstring(L, sse_http_message(rc));
      return 2;
    }
    luaL_pushresult(&buf);
    if (rc == SSE_HTTP_CHUNK_MORE) {
      lua_pushboolean(L, 0);
      return 2;
    }
    b->done = 1;
    lua_pushboolean(L, 1);
    lua_pushlstring(L, s + pos, n - pos);
    return 3;
  }
}

/* b:done() -> true once the whole body was fed */
static int l_body_done(lua_State *L) {
  lbody *b = (lbody *)lsse_checkudata(L, 1, BODY_MT);
  lua_pushboolean(L, b->done);
  return 1;
}

static const luaL_Reg http_funcs[] = {
  {"http_head_end", l_head_end},
  {"http_parse_query", l_parse_query},
  {"http_parse_response", l_parse_response},
  {"http_body", l_body},
  {NULL, NULL}
};

void lsse_open_http(lua_State *L) {
  static const luaL_Reg body_methods[] = {
    {"feed", l_body_feed},
    {"done", l_body_done},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, BODY_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, body_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, BODY_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, http_funcs, 0);
  lua_createtable(L, K_COUNT, 0);
  for (int k = 0; k < K_COUNT; k++) {
    lua_pushstring(L, REQ_KEYS[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_pushlightuserdata(L, (void *)REQ_KEYS); /* lsse_push_request_keys */
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushcclosure(L, l_parse_request, 1);
  lua_setfield(L, -2, "http_parse_request");
}
