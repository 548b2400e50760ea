/* lua_listen.c - core.http_listen: sse.http's listening socket, accepted
 * connections and their first read, in C.
 *
 * With luv, every connection cost a luv handle (userdata, a malloc'd
 * luv_handle_t, a registry entry), a Lua call for the accept, a Lua closure
 * and a Lua call per read before the server saw a byte. Here the core
 * accepts, reads the first bytes into the one per-thread read buffer and
 * only then calls Lua, once: on_data(conn, bytes). A connection that never
 * sends is closed by listener:expire() without Lua seeing it.
 *
 * A connection is an sse.Conn userdata laid out as luv's handles are (first
 * a pointer to the libuv handle), so the core's writers (Stream, the EOF
 * watch, core.read_start) take it as they take a luv tcp handle. Its
 * methods are the few of luv's that sse.http and its users call (write,
 * shutdown, close, is_closing, read_stop, get_write_queue_size, getpeername,
 * getsockname, nodelay, send_buffer_size, recv_buffer_size, fileno), with
 * luv's results. handle->data points to a record shaped as
 * luv's own (luv/lhandle.h: the registry ref of the userdata, no callbacks,
 * luv's context), because luv reads it for every handle of its loop:
 * uv.walk hands the userdata to its callback, and luv's loop __gc closes
 * what is still open at lua_close (and drops the ref).
 *
 * Ownership: a connection (its libuv handle inside) is malloc'd, outside
 * the Lua heap as luv's handles are: Lua's collector paces itself on that
 * heap, so 10,000 idle connections inside it would raise its peak (and the
 * RSS) by twice their size. The userdata holds a pointer to it; the registry
 * anchors the userdata from accept until libuv's close callback, and the
 * userdata's __gc frees the connection (at lua_close, still open: it closes
 * it and the close callback frees it). Write and shutdown requests are
 * malloc'd and freed by their callbacks. The count of open connections
 * (listener:count) is a small malloc'd block shared by the listener and its
 * connections, freed by the  * last of them. */
#include "compat.h"
#include "lsse.h"
#include "lstream.h"

#include <stdlib.h>
#include <string.h>

#define LISTEN_MT "sse.Listener"

#define CONN_NAME CONN_MT

/* luv_handle_t of luv 1.44 (luv/lhandle.h), which luv's uv.walk and loop
 * __gc read through handle->data. */
typedef struct luv_record {
  int ref;          /* the userdata, in the registry */
  int callbacks[2]; /* LUA_NOREF: luv calls nothing of ours */
  void *ctx;        /* luv's luv_ctx_t (the registry's "luv_context") */
  void *extra;
  void *extra_gc;
} luv_record;

typedef struct counter {
  size_t open; /* connections admitted and not closed (refused ones are not) */
  int refs;    /* the listener + each connection that points here */
} counter;

struct llisten;

typedef struct lconn {
  uv_tcp_t tcp;
  lua_State *L;           /* luv's main thread: callbacks run there */
  luv_record luv;         /* tcp.data; luv.ref anchors the userdata until closed */
  counter *count;         /* NULL once uncounted */
  struct llisten *l;      /* while pending (no byte yet): its listener */
  struct lconn *prev, *next; /* the listener's pending list, oldest first */
  uint64_t born;          /* uv_now at accept */
  int close_ref;          /* close's callback */
  uint8_t closing;  /* uv_close called (by us) */
  uint8_t closed;   /* our close callback ran */
  uint8_t orphan;   /* the userdata went (lua_close): no Lua; the close callback frees */
} lconn;

/* The userdata: luv's layout (first a pointer to the libuv handle). */
typedef struct lconn_ud {
  uv_tcp_t *hp; /* &c->tcp */
  lconn *c;
} lconn_ud;

typedef struct llisten {
  uv_tcp_t *hp; /* &tcp */
  uv_tcp_t tcp;
  lua_State *L;
  luv_record luv;
  counter *count;
  size_t max_conns;
  sse_http_limits lim;    /* the server's parser limits */
  int on_data, on_refuse, keys; /* registry refs (keys: the request's field names) */
  lconn *first, *last;    /* pending connections */
  uint8_t closing, finalized;
  uint8_t accept_retry;   /* a connection waits that memory ran out to take */
} llisten;

static void count_drop(counter **cp) {
  counter *c = *cp;
  if (!c) return;
  *cp = NULL;
  if (--c->refs == 0) free(c);
}

/* --- connections ---------------------------------------------------------------- */

static lconn *conn_of_handle(uv_handle_t *h) {
  return (lconn *)((char *)h - offsetof(lconn, tcp));
}

static void pending_remove(lconn *c) {
  llisten *l = c->l;
  if (!l) return;
  if (c->prev) c->prev->next = c->next;
  else l->first = c->next;
  if (c->next) c->next->prev = c->prev;
  else l->last = c->prev;
  c->prev = c->next = NULL;
  c->l = NULL;
}

static void conn_closed(uv_handle_t *h) {
  lconn *c = conn_of_handle(h);
  c->closed = 1;
  if (c->orphan) {
    free(c);
    return;
  }
  lua_State *L = c->L;
  int cb = c->close_ref;
  c->close_ref = LUA_NOREF;
  int self = c->luv.ref;
  c->luv.ref = LUA_NOREF;
  if (cb != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cb);
    luaL_unref(L, LUA_REGISTRYINDEX, cb);
    lsse_pcall(L, 0, 0, "a connection's close callback");
  }
  luaL_unref(L, LUA_REGISTRYINDEX, self); /* garbage from now on */
}

/* Out of the pending list and the count (at once, so the count is right
 * straight after a close). */
static void conn_forget(lconn *c) {
  pending_remove(c);
  if (c->count) {
    c->count->open--;
    count_drop(&c->count);
  }
}

/* Closed, or closing: by us, or by luv's loop __gc at lua_close. */
static int conn_gone(lconn *c) {
  return c->closing || uv_is_closing((uv_handle_t *)&c->tcp);
}

/* Closes c (once). */
static void conn_close(lconn *c) {
  conn_forget(c);
  if (conn_gone(c)) return;
  c->closing = 1;
  lsse_reader_forget((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static lconn *check_conn(lua_State *L, const char *fname) {
  (void)fname;
  return ((lconn_ud *)lsse_checkudata(L, 1, CONN_NAME))->c; /* raises the usual error */
}

/* nil, name, message: luv's failure triple. */
static int push_uv_fail(lua_State *L, int rc) {
  lua_pushnil(L);
  lua_pushstring(L, uv_err_name(rc));
  lua_pushfstring(L, "%s: %s", uv_err_name(rc), uv_strerror(rc));
  return 3;
}

typedef struct wreq {
  uv_write_t req;
  lconn *c;
  int cb; /* registry ref or LUA_NOREF */
  char data[];
} wreq;

/* A write's or shutdown's callback (registry ref cb, or LUA_NOREF): cb(err),
 * err nil or the error's name; not once the state is closing. */
static void call_done(lconn *c, int cb, int status, const char *what) {
  if (cb == LUA_NOREF || c->orphan) return;
  lua_State *L = c->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, cb);
  luaL_unref(L, LUA_REGISTRYINDEX, cb);
  if (status < 0) lua_pushstring(L, uv_err_name(status));
  else lua_pushnil(L);
  lsse_pcall(L, 1, 0, what);
}

static void write_done(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  lconn *c = w->c;
  int cb = w->cb;
  free(w);
  call_done(c, cb, status, "a connection's write callback");
}

#define WRITE_PARTS 16

/* conn:write(data [, cb]) -> true | nil, name, msg: data a string or a list
 * of strings; cb(err) once written (err nil, or the error's name). What the
 * kernel takes at once is not copied; the rest is, into one request. */
static int c_write(lua_State *L) {
  lconn *c = check_conn(L, "write");
  if (conn_gone(c)) return push_uv_fail(L, UV_EBADF);
  int has_cb = !lua_isnoneornil(L, 3);
  if (has_cb) luaL_checktype(L, 3, LUA_TFUNCTION);
  uv_buf_t parts[WRITE_PARTS];
  size_t nparts = 0, total = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    size_t n = (size_t)lua_rawlen(L, 2);
    if (n > WRITE_PARTS) return lsse_argerror(L, 1, "write", "at most %d strings", WRITE_PARTS);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, 2, (int)i + 1);
      size_t len;
      const char *p = lua_tolstring(L, -1, &len);
      if (!p || lua_type(L, -1) != LUA_TSTRING) return lsse_argerror(L, 1, "write", "list of strings expected");
      lua_pop(L, 1); /* the table keeps it */
      parts[nparts++] = uv_buf_init((char *)p, (unsigned)len);
      total += len;
    }
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len;
    const char *p = lua_tolstring(L, 2, &len);
    parts[nparts++] = uv_buf_init((char *)p, (unsigned)len);
    total = len;
  } else {
    return lsse_typeerror(L, 1, "write", "string or list of strings", 2);
  }
  uv_stream_t *s = (uv_stream_t *)&c->tcp;
  size_t done = 0;
  if (uv_stream_get_write_queue_size(s) == 0 && total > 0) {
    /* an error here comes again from uv_write, in its callback as luv's */
    int rc = uv_try_write(s, parts, (unsigned)nparts);
    if (rc >= 0) done = (size_t)rc;
  }
  if (done == total && !has_cb) {
    lua_pushboolean(L, 1);
    return 1;
  }
  wreq *w = (wreq *)malloc(sizeof *w + (total - done) + 1);
  if (!w) return luaL_error(L, "not enough memory");
  size_t off = 0, skip = done;
  for (size_t i = 0; i < nparts; i++) {
    size_t len = parts[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(w->data + off, parts[i].base + skip, len - skip);
    off += len - skip;
    skip = 0;
  }
  w->c = c;
  w->cb = LUA_NOREF;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)off);
  int rc = uv_write(&w->req, s, &b, 1, write_done);
  if (rc < 0) {
    free(w);
    return push_uv_fail(L, rc);
  }
  if (has_cb) {
    lua_pushvalue(L, 3);
    w->cb = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushboolean(L, 1);
  return 1;
}

typedef struct sreq {
  uv_shutdown_t req;
  lconn *c;
  int cb;
} sreq;

static void shutdown_done(uv_shutdown_t *req, int status) {
  sreq *r = (sreq *)req;
  lconn *c = r->c;
  int cb = r->cb;
  free(r);
  call_done(c, cb, status, "a connection's shutdown callback");
}

/* conn:shutdown([cb]) -> true | nil, name, msg: our side ends after what is
 * queued; cb(err) then. */
static int c_shutdown(lua_State *L) {
  lconn *c = check_conn(L, "shutdown");
  if (conn_gone(c)) return push_uv_fail(L, UV_EBADF);
  int has_cb = !lua_isnoneornil(L, 2);
  if (has_cb) luaL_checktype(L, 2, LUA_TFUNCTION);
  sreq *r = (sreq *)malloc(sizeof *r);
  if (!r) return luaL_error(L, "not enough memory");
  r->c = c;
  r->cb = LUA_NOREF;
  int rc = uv_shutdown(&r->req, (uv_stream_t *)&c->tcp, shutdown_done);
  if (rc < 0) {
    free(r);
    return push_uv_fail(L, rc);
  }
  if (has_cb) {
    lua_pushvalue(L, 2);
    r->cb = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* conn:close([cb]): closes it (queued writes are cancelled); cb() once
 * closed. A second close does nothing. */
static int c_close(lua_State *L) {
  lconn *c = check_conn(L, "close");
  if (conn_gone(c)) return 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    c->close_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  conn_close(c);
  return 0;
}

static int c_is_closing(lua_State *L) {
  lconn *c = check_conn(L, "is_closing");
  lua_pushboolean(L, conn_gone(c));
  return 1;
}

static int c_read_stop(lua_State *L) {
  lconn *c = check_conn(L, "read_stop");
  if (!conn_gone(c)) uv_read_stop((uv_stream_t *)&c->tcp);
  lua_pushboolean(L, 1);
  return 1;
}

static int c_write_queue_size(lua_State *L) {
  lconn *c = check_conn(L, "get_write_queue_size");
  lua_pushinteger(L, conn_gone(c) ? 0 : (lua_Integer)uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp));
  return 1;
}

static int c_nodelay(lua_State *L) {
  lconn *c = check_conn(L, "nodelay");
  int rc = conn_gone(c) ? UV_EBADF : uv_tcp_nodelay(&c->tcp, lua_toboolean(L, 2));
  if (rc < 0) return push_uv_fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* handle:send_buffer_size([n]) / recv_buffer_size([n]), as luv's: without n
 * (or 0) the size; with n, sets it and returns 0. */
static int buffer_size(lua_State *L, uv_handle_t *h, int gone, int send) {
  int v = (int)luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, v >= 0, 2, "size >= 0 expected");
  int set = v != 0;
  int rc = gone ? UV_EBADF : send ? uv_send_buffer_size(h, &v) : uv_recv_buffer_size(h, &v);
  if (rc < 0) return push_uv_fail(L, rc);
  lua_pushinteger(L, set ? 0 : v);
  return 1;
}

static int c_send_buffer_size(lua_State *L) {
  lconn *c = check_conn(L, "send_buffer_size");
  return buffer_size(L, (uv_handle_t *)&c->tcp, conn_gone(c), 1);
}

static int c_recv_buffer_size(lua_State *L) {
  lconn *c = check_conn(L, "recv_buffer_size");
  return buffer_size(L, (uv_handle_t *)&c->tcp, conn_gone(c), 0);
}

static int c_fileno(lua_State *L) {
  lconn *c = check_conn(L, "fileno");
  uv_os_fd_t fd;
  int rc = conn_gone(c) ? UV_EBADF : uv_fileno((uv_handle_t *)&c->tcp, &fd);
  if (rc < 0) return push_uv_fail(L, rc);
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

/* {ip =, family =, port =}, as luv's getpeername / getsockname. */
static int push_addr(lua_State *L, const struct sockaddr_storage *ss) {
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  const char *family = "unknown";
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
    family = "inet";
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    family = "inet6";
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ip);
  lua_setfield(L, -2, "ip");
  lua_pushstring(L, family);
  lua_setfield(L, -2, "family");
  lua_pushinteger(L, port);
  lua_setfield(L, -2, "port");
  return 1;
}

/* The peer's (peer) or our own address of t, or luv's failure triple. */
static int push_name(lua_State *L, uv_tcp_t *t, int gone, int peer) {
  if (gone) return push_uv_fail(L, UV_EBADF);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc = peer ? uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len)
                : uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
  if (rc < 0) return push_uv_fail(L, rc);
  return push_addr(L, &ss);
}

static int c_getpeername(lua_State *L) {
  lconn *c = check_conn(L, "getpeername");
  return push_name(L, &c->tcp, conn_gone(c), 1);
}

static int c_getsockname(lua_State *L) {
  lconn *c = check_conn(L, "getsockname");
  return push_name(L, &c->tcp, conn_gone(c), 0);
}

/* The userdata goes: after the close callback (the registry anchored it
 * until then), or at lua_close with the connection open or closing (luv's
 * loop __gc, a later finalizer in Lua 5.4, runs the loop: the close
 * callback then frees it; under LuaJIT luv may have closed it with its own
 * callback, which frees nothing: left to the process's exit). */
static int c_gc(lua_State *L) {
  lconn_ud *u = (lconn_ud *)lua_touserdata(L, 1);
  lconn *c = u->c;
  if (!c) return 0;
  u->c = NULL;
  u->hp = NULL;
  conn_forget(c);
  if (c->closed) {
    free(c);
    return 0;
  }
  c->orphan = 1;
  if (!conn_gone(c)) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
  }
  return 0;
}

static int c_tostring(lua_State *L) {
  lconn *c = check_conn(L, "__tostring");
  lua_pushfstring(L, "sse.Conn (%p)%s", (void *)c, conn_gone(c) ? " closed" : "");
  return 1;
}

/* --- the listener ---------------------------------------------------------------- */

static llisten *listener_of_handle(uv_handle_t *h) {
  return (llisten *)((char *)h - offsetof(llisten, tcp));
}

static int listener_gone(llisten *l) {
  return l->closing || uv_is_closing((uv_handle_t *)&l->tcp);
}

static void first_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  size_t n;
  char *p = lsse_read_buffer(&n);
  *buf = uv_buf_init(p, (unsigned)n);
}

/* The first bytes of a pending connection: Lua has it from now on, as
 * on_data(conn, rest, req) when they hold a whole request head the parser
 * takes (rest: the bytes after it), else on_data(conn, bytes) (sse.http reads
 * on, or answers the parser's error). */
static void first_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread == 0) return;
  lconn *c = conn_of_handle((uv_handle_t *)s);
  llisten *l = c->l;
  if (nread < 0 || !l || c->orphan) {
    conn_close(c); /* gone before it said anything */
    return;
  }
  pending_remove(c);
  lua_State *L = l->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, l->on_data);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->luv.ref);
  size_t n = (size_t)nread, head = 0;
  int nargs = 2;
  if (sse_http_head_check(buf->base, n, 0, l->lim.max_head_bytes, &head) == 0 && head > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, l->keys);
    int keys = lua_gettop(L);
    size_t hb = 0;
    if (lsse_push_request(L, buf->base, n, &l->lim, keys, &hb) == 0) {
      lua_pushlstring(L, buf->base + hb, n - hb); /* often "" */
      lua_replace(L, keys); /* conn, rest, req */
      nargs = 3;
    } else {
      lua_pop(L, 1);
    }
  }
  if (nargs == 2) lua_pushlstring(L, buf->base, n);
  if (!lsse_pcall(L, nargs, 0, "a new connection")) conn_close(c);
  lua_settop(L, top);
  /* nobody took the reading over (a reader, the EOF watch, a close) */
  if (!conn_gone(c) && s->read_cb == first_read) uv_read_stop(s);
}

int lsse_listen_reading(uv_stream_t *h) {
  return h->read_cb == first_read;
}

static void on_connection(uv_stream_t *server, int status) {
  llisten *l = listener_of_handle((uv_handle_t *)server);
  if (status < 0 || listener_gone(l) || l->finalized) return;
  lua_State *L = l->L;
  lconn *c = (lconn *)calloc(1, sizeof *c);
  if (!c) {
    /* out of memory: libuv holds the connection and stops accepting until
     * it is taken, so the listener's sweep (listener:expire) tries again */
    l->accept_retry = 1;
    return;
  }
  l->accept_retry = 0;
  lconn_ud *u = (lconn_ud *)lua_newuserdata(L, sizeof *u);
  u->hp = &c->tcp;
  u->c = c;
  luaL_setmetatable(L, CONN_NAME); /* its __gc frees c from now on */
  c->L = L;
  c->close_ref = LUA_NOREF;
  c->luv.ref = LUA_NOREF;
  c->luv.callbacks[0] = c->luv.callbacks[1] = LUA_NOREF;
  c->luv.ctx = l->luv.ctx;
  if (uv_tcp_init(server->loop, &c->tcp) < 0) {
    c->closing = c->closed = 1; /* no handle: __gc frees it */
    lua_pop(L, 1);
    l->accept_retry = 1; /* as for calloc above */
    return;
  }
  c->luv.ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops it; anchored until closed */
  lsse_gc_account(L, sizeof *c);
  c->tcp.data = &c->luv;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    conn_close(c); /* nothing to tell */
    return;
  }
  if (l->count->open >= l->max_conns) {
    /* refused: Lua answers 503 and lingers; not counted */
    lua_rawgeti(L, LUA_REGISTRYINDEX, l->on_refuse);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->luv.ref);
    if (!lsse_pcall(L, 1, 0, "refusing a connection")) conn_close(c);
    return;
  }
  c->count = l->count;
  c->count->refs++;
  c->count->open++;
  c->born = uv_now(server->loop);
  c->l = l;
  c->prev = l->last;
  if (l->last) l->last->next = c;
  else l->first = c;
  l->last = c;
  int rc = uv_read_start((uv_stream_t *)&c->tcp, first_alloc, first_read);
  if (rc < 0) conn_close(c);
}

static llisten *check_listener(lua_State *L, const char *fname) {
  llisten *l = (llisten *)lsse_checkudata(L, 1, LISTEN_MT);
  (void)fname;
  return l;
}

/* Closes every pending connection of l older than ms (all when ms < 0). */
static size_t expire(llisten *l, long long ms) {
  uint64_t now = uv_now(l->tcp.loop);
  size_t n = 0;
  while (l->first && (ms < 0 || l->first->born + (uint64_t)ms <= now)) {
    conn_close(l->first); /* removes it from the list */
    n++;
  }
  return n;
}

/* listener:expire(ms) -> n: closes the connections that sent nothing in ms
 * milliseconds (the head timeout of a connection with no byte yet), and
 * takes the connection that memory ran out for, if one waits. */
static int l_expire(lua_State *L) {
  llisten *l = check_listener(L, "expire");
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms >= 0, 2, "milliseconds >= 0 expected");
  lua_pushinteger(L, listener_gone(l) ? 0 : (lua_Integer)expire(l, (long long)ms));
  /* the connection memory ran out for: taken now, and accepting resumes */
  if (l->accept_retry && !listener_gone(l) && !l->finalized) on_connection((uv_stream_t *)&l->tcp, 0);
  return 1;
}

/* listener:count() -> the connections admitted and not closed. */
static int l_count(lua_State *L) {
  llisten *l = check_listener(L, "count");
  lua_pushinteger(L, (lua_Integer)l->count->open);
  return 1;
}

/* listener:pending() -> the connections that sent nothing yet. */
static int l_pending(lua_State *L) {
  llisten *l = check_listener(L, "pending");
  size_t n = 0;
  for (lconn *c = l->first; c; c = c->next) n++;
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static void listener_closed(uv_handle_t *h) {
  llisten *l = listener_of_handle(h);
  if (l->finalized) return;
  lua_State *L = l->L;
  luaL_unref(L, LUA_REGISTRYINDEX, l->on_data);
  luaL_unref(L, LUA_REGISTRYINDEX, l->on_refuse);
  luaL_unref(L, LUA_REGISTRYINDEX, l->luv.ref);
  l->on_data = l->on_refuse = l->keys = l->luv.ref = LUA_NOREF;
}

static void listener_close(llisten *l) {
  expire(l, -1);
  if (listener_gone(l)) return;
  l->closing = 1;
  uv_close((uv_handle_t *)&l->tcp, listener_closed);
}

/* listener:close(): stops accepting and closes the pending connections
 * (those handed to Lua are Lua's to close). */
static int l_close(lua_State *L) {
  listener_close(check_listener(L, "close"));
  return 0;
}

static int l_is_closing(lua_State *L) {
  lua_pushboolean(L, listener_gone(check_listener(L, "is_closing")));
  return 1;
}

static int l_getsockname(lua_State *L) {
  llisten *l = check_listener(L, "getsockname");
  return push_name(L, &l->tcp, listener_gone(l), 0);
}

/* listener:recv_buffer_size([n]) / send_buffer_size([n]), as luv's: the
 * listening socket's, which accepted sockets inherit (Linux). */
static int l_recv_buffer_size(lua_State *L) {
  llisten *l = check_listener(L, "recv_buffer_size");
  return buffer_size(L, (uv_handle_t *)&l->tcp, listener_gone(l), 0);
}

static int l_send_buffer_size(lua_State *L) {
  llisten *l = check_listener(L, "send_buffer_size");
  return buffer_size(L, (uv_handle_t *)&l->tcp, listener_gone(l), 1);
}

/* Only at lua_close, or for a listener that never listened (the registry
 * anchors one that does until it closed). */
static int l_gc(lua_State *L) {
  llisten *l = (llisten *)lua_touserdata(L, 1);
  l->finalized = 1;
  if (l->tcp.loop) listener_close(l);
  count_drop(&l->count);
  return 0;
}

static int l_tostring(lua_State *L) {
  llisten *l = check_listener(L, "__tostring");
  lua_pushfstring(L, "sse.Listener (%p)%s", (void *)l, listener_gone(l) ? " closed" : "");
  return 1;
}

/* core.http_listen(host, port, backlog, max_conns, write_timeout, on_data,
 * on_refuse [, max_head_bytes, max_headers]) -> listener | nil, err. Accepted sockets get TCP_NODELAY and
 * write_timeout seconds of TCP_USER_TIMEOUT (0: none) from the listening
 * socket. on_data(conn, bytes): a connection's first bytes;
 * on_refuse(conn): one more past max_conns open (not counted, not read). */
static int l_http_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  lua_Integer backlog = luaL_checkinteger(L, 3);
  lua_Integer max_conns = luaL_checkinteger(L, 4);
  lua_Number wt = luaL_checknumber(L, 5);
  luaL_checktype(L, 6, LUA_TFUNCTION);
  luaL_checktype(L, 7, LUA_TFUNCTION);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  luaL_argcheck(L, backlog > 0 && backlog <= 65535, 3, "backlog out of range");
  luaL_argcheck(L, max_conns >= 0, 4, "max_conns >= 0 expected");
  luaL_argcheck(L, wt >= 0 && wt <= SSE_WRITE_TIMEOUT_MAX, 5, "write_timeout out of range");
  lua_Integer mhb = luaL_optinteger(L, 8, SSE_HTTP_MAX_HEAD_BYTES);
  lua_Integer mh = luaL_optinteger(L, 9, SSE_HTTP_MAX_HEADERS);
  luaL_argcheck(L, mhb > 0 && mhb <= (1 << 30), 8, "max_head_bytes out of range");
  luaL_argcheck(L, mh > 0 && mh <= 10000, 9, "max_headers out of range");
  uv_loop_t *loop;
  lua_State *main;
  if (!lsse_luv_loop(L, &loop, &main)) return luaL_error(L, "sse: http_listen needs luv");

  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0)
  {
    lua_pushnil(L); /* luv's words for it */
    lua_pushfstring(L, "Invalid IP address or port [%s:%d]", host, (int)port);
    return 2;
  }

  counter *cnt = (counter *)calloc(1, sizeof *cnt);
  if (!cnt) return luaL_error(L, "not enough memory");
  llisten *l = (llisten *)lua_newuserdata(L, sizeof *l);
  memset(l, 0, sizeof *l);
  l->hp = &l->tcp;
  l->L = main;
  l->count = cnt;
  cnt->refs = 1;
  l->max_conns = (size_t)max_conns;
  l->lim.max_head_bytes = (size_t)mhb;
  l->lim.max_headers = (size_t)mh;
  l->on_data = l->on_refuse = l->keys = l->luv.ref = LUA_NOREF;
  l->luv.callbacks[0] = l->luv.callbacks[1] = LUA_NOREF;
  lua_getfield(L, LUA_REGISTRYINDEX, "luv_context");
  l->luv.ctx = lua_touserdata(L, -1);
  lua_pop(L, 1);
  luaL_setmetatable(L, LISTEN_MT);
  int rc = uv_tcp_init(loop, &l->tcp);
  if (rc < 0) return lsse_fail(L, rc, uv_err_name(rc)); /* __gc frees cnt */
  lua_pushvalue(L, -1);
  l->luv.ref = luaL_ref(L, LUA_REGISTRYINDEX); /* anchored until closed */
  l->tcp.data = &l->luv;
  rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_tcp_nodelay(&l->tcp, 1);
  if (rc == 0) lsse_set_user_timeout((uv_stream_t *)&l->tcp, (unsigned)(wt * 1000));
  if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, (int)backlog, on_connection);
  if (rc < 0) {
    listener_close(l); /* garbage once closed */
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(rc), uv_strerror(rc));
    return 2;
  }
  lua_pushvalue(L, 6);
  l->on_data = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 7);
  l->on_refuse = luaL_ref(L, LUA_REGISTRYINDEX);
  lsse_push_request_keys(L);
  l->keys = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

void lsse_open_listen(lua_State *L) {
  static const luaL_Reg conn_methods[] = {
      {"write", c_write}, {"shutdown", c_shutdown}, {"close", c_close},
      {"is_closing", c_is_closing}, {"read_stop", c_read_stop},
      {"get_write_queue_size", c_write_queue_size}, {"nodelay", c_nodelay},
      {"getpeername", c_getpeername}, {"getsockname", c_getsockname},
      {"send_buffer_size", c_send_buffer_size}, {"recv_buffer_size", c_recv_buffer_size},
      {"fileno", c_fileno}, {NULL, NULL}};
  luaL_newmetatable(L, CONN_NAME);
  lua_newtable(L);
  luaL_setfuncs(L, conn_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, c_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, c_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  static const luaL_Reg listen_methods[] = {
      {"close", l_close}, {"is_closing", l_is_closing}, {"expire", l_expire}, {"count", l_count}, {"pending", l_pending},
      {"getsockname", l_getsockname}, {"recv_buffer_size", l_recv_buffer_size},
      {"send_buffer_size", l_send_buffer_size}, {NULL, NULL}};
  luaL_newmetatable(L, LISTEN_MT);
  lua_newtable(L);
  luaL_setfuncs(L, listen_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_pushcfunction(L, l_http_listen);
  lua_setfield(L, -2, "http_listen");
}
