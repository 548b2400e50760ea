/* lstream.h - what the Stream binding (lua_stream.c) and the Hub binding
 * (lua_hub.c) share: the two userdata, where each stream is anchored, and
 * the close path both take. docs/CORE.md describes the behaviour.
 *
 * A Stream ("sse.Stream" userdata) owns one malloc'd sse_sub. It is always
 * in exactly one C hub until it is finished: a Hub it was registered with,
 * or the Lua state's home hub (hidden; the one that writes and reports the
 * streams no Hub holds). The hub's anchor table (its first user value)
 * holds anchors[id] = stream: strongly in a Hub, weakly in the home hub
 * (a stream nobody holds may be collected), strongly again while a stream
 * drains there after close(). The core reports what it closed through its
 * closed list; the binding then finishes the stream (lsse_stream_finish). */
#ifndef SSE_LSTREAM_H
#define SSE_LSTREAM_H

#include "lsse.h"
#include "hub.h"
#include "httphead.h"

#define STREAM_MT "sse.Stream"
#define HUB_MT "sse.Hub"

/* Stream kinds (the transport). */
enum { K_PUSH = 1, K_WRITER = 2, K_PULL = 3 };

/* Stream flags. */
enum {
  SF_CLOSED = 1,     /* close() was called, or the core closed it */
  SF_DONE = 2,       /* finished: out of its hub, transport closed, on_close ran */
  SF_ANNOUNCED = 4,  /* pull: on_ready ran since the last take() */
  SF_OWN_LIMIT = 8,  /* outbox_limit chosen by the stream (a Hub's does not apply) */
  SF_OWN_POLICY = 16,
  SF_LEFT = 32,      /* its Hub's leave handler ran */
  SF_ENDED = 64,     /* pull: take() answered nil once */
  SF_WATCHED = 128   /* push: the core reads its connection for EOF (anchored strongly) */
};

/* User value slots of a Stream (5.4: user values; 5.1: its env table).
 * SLOT_ON_CLOSE: the on_close callbacks (a function or a list) until the
 * stream is finished, then its close reason (a string). */
enum { SLOT_TRANSPORT = 1, SLOT_ON_CLOSE = 2, SLOT_LAST_ID = 3, STREAM_SLOTS = 3 };

typedef struct lstream {
  sse_sub *s;        /* owned: sse_sub_free in __gc */
  uint8_t kind, flags;
  uint16_t tag;      /* its owner's mark (sse.http: the server), 0: none */
  int32_t wfd;       /* SF_WATCHED: the fd its EOF watch is filed under */
} lstream;

/* User value slots of a Hub. */
enum { HSLOT_ANCHORS = 1, HSLOT_LEAVE = 2, HSLOT_DRAINING = 3, HUB_SLOTS = 3 };

typedef struct lhub {
  sse_hub *h;        /* owned; NULL once closed */
  lua_State *L;      /* the main thread: loop callbacks run Lua there */
  int self_ref;      /* registry ref of this userdata while it anchors streams */
  size_t anchored;   /* streams in anchors */
  size_t limit;      /* outbox limit and slow policy of the streams that chose none */
  uint8_t policy;
  uint8_t home;      /* the Lua state's home hub */
  uint8_t idle_on, timer_on; /* its luv idle / drain timer are started */
} lhub;

/* The Stream at idx (raises "bad argument #arg to 'fname'" naming an
 * sse.Stream when it is not one; fname NULL: luaL_checkudata's message). */
lstream *lsse_check_stream(lua_State *L, int idx, int arg, const char *fname);

/* Pushes user value slot n of the userdata at idx / pops the top into it. */
void lsse_slot_get(lua_State *L, int idx, int n);
void lsse_slot_set(lua_State *L, int idx, int n);

/* The home hub of this Lua state (created on first use), pushed; its lhub. */
lhub *lsse_home(lua_State *L);

/* Pushes the userdata of the lhub holding h (NULL h or no anchor: nil);
 * returns the lhub or NULL. */
lhub *lsse_push_hub_of(lua_State *L, sse_hub *h);

/* Moves the stream at idx into the hub at hub_idx: the C sub moves (state,
 * outbox and pending report go with it; topics are left behind), and its
 * anchor with it. Returns 0 or a negative SSE_HUB_ code (nothing changed). */
int lsse_stream_move(lua_State *L, int idx, int hub_idx);

/* Takes the stream's anchor out of its hub (a Hub that anchors nothing
 * more may be collected). */
void lsse_unanchor(lua_State *L, lstream *st);

/* Marks the anchor of the stream at idx in its hub strong (draining) or not. */
void lsse_anchor_draining(lua_State *L, int idx, int draining);

/* Finishes the stream at idx (idempotent): its Hub's leave handler (once),
 * out of its hub, transport closed, on_close callbacks -- each pcall'd --
 * with the reason at reason_idx (0: the core's: "closed", "slow", "write
 * failed", "drain timeout"). */
void lsse_stream_finish(lua_State *L, int idx, int reason_idx);

/* The stream at idx has drained to its watch's mark (or closed): calls the
 * drain handler (core.set_drain_handler: sse.pipe's), pcall'd. */
void lsse_stream_drained(lua_State *L, int idx);

/* After the core changed the stream at idx (a send, a flush, the report):
 * finishes it when the core closed it, drains a writer, announces a pull
 * stream's new bytes, writes a push stream now when write_now (a send: one
 * share of it; the rest at the end of the turn) or its hub has no loop
 * (otherwise the hub's flush writes it at the end of the turn, with
 * whatever else was queued: a head, a replay). */
void lsse_stream_settle(lua_State *L, int idx, int write_now);

/* The leave handler of the Hub the stream at idx is registered with runs
 * once (SF_LEFT) as handler(stream, reason, topics), after the stream left
 * its topics: begin (before) pushes the handler and the topics it is in and
 * returns 1 (0, nothing pushed, when there is none); end calls it with the
 * reason at reason_idx. */
int lsse_leave_begin(lua_State *L, int idx);
void lsse_leave_end(lua_State *L, int idx, int reason_idx);

/* Pushes a list of the unfinished streams whose tag is tag, from every hub
 * of this Lua state (the home hub included). */
void lsse_push_tagged(lua_State *L, int tag);

/* The EOF watch of a push stream ends (finish, __gc). */
void lsse_unwatch(lstream *st);

/* Seconds on the monotonic clock the hubs' deadlines use. */
double lsse_now(void);

/* The libuv loop and main thread of luv's context in this state (from the
 * registry, as luv_loop(L) does); 0 when luv is not loaded. */
int lsse_luv_loop(lua_State *L, uv_loop_t **loop, lua_State **main);

/* The home hub's loop handles start (the first push stream); its drain
 * deadline ticks start (a push stream began draining there). */
void lsse_home_loop(lua_State *L, int home_idx);
void lsse_home_drain_timer(lua_State *L);

/* Options shared by Stream.new and Hub.new, checked in one place. */
typedef struct outbox_opts {
  double limit;         /* 0: not given */
  int policy;           /* -1: not given */
  double write_timeout; /* -1: not given; 0: false (the kernel's default) */
} outbox_opts;
/* Reads and checks outbox_limit, slow_policy and write_timeout of the
 * table at idx, raising "bad argument #1 to 'fname' (field '...': ...)". */
void lsse_outbox_opts(lua_State *L, int idx, const char *fname, outbox_opts *o);
/* How a bad option value is shown ("nan", "inf", the number, the type). */
const char *lsse_show_value(lua_State *L, int idx);
/* A new userdata with nslots user value slots (5.1: an env table of its own). */
void *lsse_newudata_slots(lua_State *L, size_t size, int nslots);

/* Warns on stderr: "sse: <what>: <message at the top>", pops it. */
void lsse_warn(lua_State *L, const char *what);

/* lua_pcall that warns instead of raising; returns 1 when it succeeded. */
int lsse_pcall(lua_State *L, int nargs, int nres, const char *what);

/* The libuv stream inside a luv handle userdata (tcp, pipe, tty) or an
 * sse.Conn (lua_listen.c: laid out as luv's), or NULL. */
uv_stream_t *lsse_to_uv_stream(lua_State *L, int idx);

/* lua_reader.c: forgets h's function; 1 when core.read_start read h (luv
 * then holds no read callback of it), 0 when it did not. */
int lsse_reader_forget(uv_stream_t *h);

/* A table indexed by fd (*tab, *cap entries of elem bytes) grown by doubling
 * (from 1024) to hold fd, new entries zeroed: the EOF watch's and the
 * connection reader's. 0, or -1 when out of memory (nothing changed). */
int lsse_fd_table_fit(void **tab, size_t *cap, size_t fd, size_t elem);

/* Bounds how long sent data may stay unacknowledged (TCP_USER_TIMEOUT);
 * ms 0 or a non-TCP handle: nothing. */
void lsse_set_user_timeout(uv_stream_t *stream, unsigned ms);

/* lua_reader.c: the one per-thread buffer every core read lands in. */
char *lsse_read_buffer(size_t *len);

/* lua_http.c: pushes the request parsed from the head at the start of buf
 * (core.http_parse_request's table; keys: the stack index of the field
 * names' table, lsse_push_request_keys) and returns 0, or returns the
 * parser's error code and pushes nothing. *head_bytes: the head's length. */
int lsse_push_request(lua_State *L, const char *buf, size_t len, const sse_http_limits *lim,
                      int keys, size_t *head_bytes);
void lsse_push_request_keys(lua_State *L);

/* lua_listen.c: sse.http's accepted connections (core.http_listen). */
#define CONN_MT "sse.Conn"
/* 1 when h is a connection the listener still reads (its first read). */
int lsse_listen_reading(uv_stream_t *h);

void lsse_open_stream(lua_State *L);
void lsse_open_reader(lua_State *L);
void lsse_open_listen(lua_State *L);

#endif
