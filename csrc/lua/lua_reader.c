/* lua_reader.c - core.read_start / core.read_release: a luv stream handle
 * read by the core, for sse.http's plain connections.
 *
 * luv's own reading mallocs a buffer per read (libuv's suggested 64 KiB),
 * keeps the callback in its handle and makes an error string for each
 * failure. Here libuv's read callbacks (uv_stream_t's public alloc_cb and
 * read_cb) are the core's: every read lands in one per-thread buffer, is
 * copied once into a Lua string and handed to the handle's Lua function as
 * fn(err, data) — luv's shape: (nil, bytes), (nil, nil) at the end,
 * ("ECONNRESET", nil) on an error. luv holds no callback for the handle, so
 * when the connection becomes a stream (the EOF watch, lua_stream.c) there
 * is nothing of luv's to replace. The functions are found through the fd
 * (unique in the process; the map is per thread, the loop's thread) and
 * checked against the handle, like the EOF watch's subscribers. */
#include "compat.h"
#include "lsse.h"
#include "lstream.h"

#include <stdlib.h>
#include <string.h>

typedef struct reader {
  uv_stream_t *h; /* NULL: free */
  lua_State *L;   /* luv's main thread: where the function runs */
  int ref;        /* the function, in the registry */
} reader;

static __thread reader *readers;
static __thread size_t readers_cap;
static __thread char read_buf[64 * 1024];

static int fd_of(uv_stream_t *h) {
  uv_os_fd_t fd;
  return uv_fileno((uv_handle_t *)h, &fd) == 0 && fd >= 0 ? (int)fd : -1;
}

static reader *reader_of(uv_stream_t *h) {
  int fd = fd_of(h);
  if (fd < 0 || (size_t)fd >= readers_cap || readers[fd].h != h) return NULL;
  return &readers[fd];
}

static void release(reader *r) {
  if (!r->h) return;
  luaL_unref(r->L, LUA_REGISTRYINDEX, r->ref);
  r->h = NULL;
  r->ref = LUA_NOREF;
}

char *lsse_read_buffer(size_t *len) {
  *len = sizeof read_buf;
  return read_buf;
}

static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  if (nread == 0) return; /* EAGAIN */
  reader *r = reader_of(h);
  if (!r) {
    uv_read_stop(h); /* released: nobody to tell */
    return;
  }
  lua_State *L = r->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
  if (nread > 0) {
    lua_pushnil(L);
    lua_pushlstring(L, buf->base, (size_t)nread); /* the copy: read_buf is free again */
  } else {
    if (nread == UV_EOF) lua_pushnil(L);
    else lua_pushstring(L, uv_err_name((int)nread));
    lua_pushnil(L);
  }
  lsse_pcall(L, 2, 0, "reading a connection");
}

/* core.read_start(handle, fn) -> true | nil, err: the luv stream handle is
 * read by the core from now on, each read given to fn(err, data); again
 * after handle:read_stop() to resume. */
static int l_read_start(lua_State *L) {
  uv_stream_t *h = lsse_to_uv_stream(L, 1);
  if (!h) return lsse_typeerror(L, 1, "read_start", "luv stream handle", 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  uv_loop_t *loop;
  lua_State *main;
  if (!lsse_luv_loop(L, &loop, &main)) return luaL_error(L, "sse: read_start needs luv");
  int fd = fd_of(h);
  if (fd < 0 || uv_is_closing((uv_handle_t *)h)) return lsse_fail(L, 0, "closed");
  if (lsse_fd_table_fit((void **)&readers, &readers_cap, (size_t)fd, sizeof *readers) != 0)
    return luaL_error(L, "not enough memory"); /* zeroed entries: h NULL, free */
  reader *r = &readers[fd];
  if (r->h) release(r); /* an earlier handle of this fd, or this one's old function */
  if (h->read_cb) {
    /* reading already (luv's callbacks; libuv clears read_cb when reading
     * stops): take them over */
    h->alloc_cb = read_alloc;
    h->read_cb = read_cb;
  } else {
    int rc = uv_read_start(h, read_alloc, read_cb);
    if (rc < 0) return lsse_fail(L, 0, uv_err_name(rc));
  }
  lua_pushvalue(L, 2);
  r->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* one registry for all threads of a state */
  r->L = main;
  r->h = h;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.read_release(handle): forget the handle's function (it is closing,
 * or its connection is a stream's now); reading stops if the core read it. */
static int l_read_release(lua_State *L) {
  uv_stream_t *h = lsse_to_uv_stream(L, 1);
  if (!h) return lsse_typeerror(L, 1, "read_release", "luv stream handle", 1);
  reader *r = reader_of(h);
  if (r) {
    if (h->read_cb == read_cb && !uv_is_closing((uv_handle_t *)h)) uv_read_stop(h);
    release(r);
  }
  return 0;
}

int lsse_reader_forget(uv_stream_t *h) {
  reader *r = reader_of(h);
  if (!r) return 0;
  release(r);
  return 1;
}

void lsse_open_reader(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"read_start", l_read_start},
    {"read_release", l_read_release},
    {NULL, NULL}
  };
  luaL_setfuncs(L, funcs, 0);
}
