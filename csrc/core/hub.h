/* hub.h - subscribers, topics, attach/replay and coalesced writes. Plain C +
 * libuv, no Lua. docs/CORE.md is the contract this header implements.
 *
 * A subscriber (sse_sub) has a bounded outbox of frame references.
 * Publishing appends one reference per matching subscriber (no copy, no Lua)
 * and marks it dirty; sse_hub_flush() then writes each dirty push subscriber
 * (a share per call: SSE_TURN_BYTES, doubling while a backlog lasts, so
 * large backlogs interleave and still go in few writes), moves pull
 * subscribers with data to the ready list and reports closed ones.
 *
 * Attach registers a subscriber, subscribes its topics and replays through
 * the hub's replayer (sse_replayer_ops) by frame reference into its outbox.
 * A replayer may answer later: the subscriber is then "replaying" and live
 * frames queue behind the pending replay until sse_sub_replay_end().
 *
 * Ownership: the hub owns its topic table and membership nodes; each sub is
 * malloc'd by sse_sub_new and freed by sse_sub_free, which defers the free
 * while a uv_write is in flight (libuv always completes it). The hub's own
 * libuv handles (sse_hub_set_loop) are freed in their close callbacks.
 * Single-threaded: one loop. */
#ifndef SSE_HUB_H
#define SSE_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "encode.h"
#include "frame.h"

/* --- limits (one place; exported to Lua as core.limits) ------------------ */
#ifndef SSE_BATCH_FRAMES
/* A memory-ring replay of at most this many bytes goes as one joined frame
 * (sse_ring_joined: one write segment, one copy shared by the clients that
 * resume from the same place) rather than one reference per event. */
#define SSE_REPLAY_JOIN_MAX (64u * 1024u)
#define SSE_BATCH_FRAMES 256           /* frames per writev (a replay goes in one) */
#endif
#ifndef SSE_EARLY_WRITE_FRAMES
#define SSE_EARLY_WRITE_FRAMES 64      /* unsent live frames that make a push write at once */
#endif
#ifndef SSE_TURN_BYTES
#define SSE_TURN_BYTES 65536           /* a subscriber's first share of a flush */
#endif
#ifndef SSE_TURN_GROW
#define SSE_TURN_GROW 4                /* a backlog's share doubles up to 16x (1 MiB) */
#endif
#ifndef SSE_CLOSE_GRACE_MS
#define SSE_CLOSE_GRACE_MS 5000        /* a draining stream's grace time */
#endif
#define SSE_STREAM_OUTBOX_DEFAULT (1024 * 1024)
#define SSE_HUB_OUTBOX_DEFAULT (256 * 1024)
#define SSE_OUTBOX_MAX 9007199254740991.0 /* 2^53 - 1 bytes */
#define SSE_WRITE_TIMEOUT_MAX 4294967.0   /* seconds: ms fit 32 bits */
#define SSE_ID_CAP 64                     /* room for any replayer's id */

typedef struct sse_hub sse_hub;
typedef struct sse_sub sse_sub;

enum sse_slow_policy { SSE_SLOW_CLOSE = 0, SSE_SLOW_DROP_OLDEST = 1 };

enum sse_sub_state {
  SSE_SUB_OPEN = 0,     /* live (or replaying: sse_sub_replaying) */
  SSE_SUB_DRAINING = 1, /* closed for new frames; writing what is queued */
  SSE_SUB_CLOSED = 2    /* done */
};

enum sse_close_reason {
  SSE_CLOSE_NONE = 0,
  SSE_CLOSE_OWNER = 1,  /* sse_sub_close by its owner */
  SSE_CLOSE_SLOW = 2,   /* outbox overflow under the close policy */
  SSE_CLOSE_WRITE = 3,  /* a write failed (sse_sub_uv_error) */
  SSE_CLOSE_TIMEOUT = 4 /* a drain did not finish within its grace time */
};

/* Error codes (negative) of the functions that change things. */
enum {
  SSE_HUB_EINVAL = -1,  /* bad argument (an encode error is in *err) */
  SSE_HUB_ENOMEM = -2,  /* out of memory; nothing changed */
  SSE_HUB_ECLOSED = -3, /* the subscriber (or hub) is closed */
  SSE_HUB_EOTHER = -4,  /* the subscriber belongs to another hub */
  SSE_HUB_ESTORE = -5   /* the replayer refused to store */
};

/* sse_hub_attach / replay op answers. */
enum { SSE_REPLAY_DONE = 0, SSE_REPLAY_PENDING = 1 };

/* The replayer behind a hub (docs/CORE.md 3). Every entry is synchronous
 * and calls no Lua. */
typedef struct sse_replayer_ops {
  size_t (*next_id)(void *self, char *buf, size_t cap);
  int (*store)(void *self, sse_frame *f, double now);
  int (*replay)(void *self, sse_sub *s, const char *last_id, size_t len, double now,
                uint64_t *upto, int *gap);
  size_t (*last_id)(void *self, char *buf, size_t cap);
  size_t (*first_id)(void *self, char *buf, size_t cap);
} sse_replayer_ops;

/* --- hub ------------------------------------------------------------------ */

/* Creates an empty hub with the null replayer; NULL when out of memory. */
sse_hub *sse_hub_new(void);

/* Closes every subscriber's membership (they stay allocated: their owners
 * free them) and frees the hub; while a flush is running the free happens
 * when it ends. NULL is a no-op. */
void sse_hub_free(sse_hub *h);

/* Runs the hub on loop: a prepare handle calls on_turn(h, ud) once per loop
 * turn in which there is work (dirty, ready or closed subscribers, a drain
 * deadline). on_turn should call sse_hub_flush and empty the ready and
 * closed lists. Returns 0 or SSE_HUB_ENOMEM. Once only. */
int sse_hub_set_loop(sse_hub *h, uv_loop_t *loop, void (*on_turn)(sse_hub *, void *), void *ud);

/* While held, sse_hub_free only marks the hub; the last release frees it
 * and returns 1 (the caller must not touch h then). For code that calls out
 * (to Lua) with the hub in use. */
void sse_hub_hold(sse_hub *h);
int sse_hub_release(sse_hub *h);

/* Installs the replayer (ops NULL: the null one). The hub does not own self. */
void sse_hub_set_replayer(sse_hub *h, const sse_replayer_ops *ops, void *self);
int sse_hub_has_replayer(const sse_hub *h);
const sse_replayer_ops *sse_hub_replayer(const sse_hub *h, void **self);

/* An opaque pointer for the owner of the hub (the binding's object). */
void sse_hub_set_user(sse_hub *h, void *user);
void *sse_hub_user(const sse_hub *h);

/* --- subscribers ------------------------------------------------------------ */

/* A new, unregistered open subscriber writing to stream (NULL: pull), with an
 * outbox bound of limit bytes (0: unbounded) and a slow policy. NULL when out
 * of memory. The owner keeps stream alive until the sub is closed. */
sse_sub *sse_sub_new(uv_stream_t *stream, size_t limit, int policy);
/* What sse_sub_new mallocs (the binding reports it to Lua's collector). */
size_t sse_sub_size(void);

/* Changes the outbox bound (0: unbounded) and the slow policy. */
void sse_sub_set_limits(sse_sub *s, size_t limit, int policy);
/* The outbox bound (SIZE_MAX: unbounded) and the slow policy. */
size_t sse_sub_limit(const sse_sub *s);
int sse_sub_policy(const sse_sub *s);

/* Unregisters, closes and frees s; the free is deferred while a uv_write is
 * in flight. NULL is a no-op. */
void sse_sub_free(sse_sub *s);

/* Adds s to h; *id gets the hub's id for it (small, reused after removal,
 * never 0). Returns 0 (also when already in h), SSE_HUB_EOTHER when s is in
 * another hub, SSE_HUB_ECLOSED when s is not open. */
int sse_hub_add(sse_hub *h, sse_sub *s, uint32_t *id);

/* Removes s from its hub and every topic; its outbox is kept. */
void sse_hub_remove(sse_sub *s);

/* Moves s from its hub (if any) into to, whatever its state (open, draining,
 * or closed and not yet reported): its outbox, drain deadline and pending
 * report (dirty, ready or closed list) go with it; its topics are left
 * behind (an open s is registered in to, with no topic). Returns 0, or
 * SSE_HUB_ECLOSED for a closed s already reported (nothing changed). */
int sse_hub_move(sse_hub *to, sse_sub *s);

/* Some subscriber of h (registered or not), or NULL: for emptying a hub. */
sse_sub *sse_hub_any_sub(const sse_hub *h);

/* The owner flushes h once per loop turn (with its own loop handles, not
 * sse_hub_set_loop's): a push subscriber is written at most its share
 * (SSE_TURN_BYTES, doubled for each flush that left it a backlog, up to
 * SSE_TURN_BYTES << SSE_TURN_GROW)
 * per flush, and the rest of a write waits for the next flush. */
void sse_hub_set_turns(sse_hub *h, int on);
int sse_hub_turns(const sse_hub *h);
/* Subscribers draining in h. */
size_t sse_hub_draining(const sse_hub *h);
/* 1 when a flush has work: dirty, ready or closed subscribers. */
int sse_hub_busy(const sse_hub *h);

/* 1 when added, 0 when already subscribed, SSE_HUB_ECLOSED when s is not
 * registered, SSE_HUB_ENOMEM (nothing changed). */
int sse_hub_subscribe(sse_sub *s, const char *topic, size_t len);
/* 1 when removed, 0 when it was not subscribed. */
int sse_hub_unsubscribe(sse_sub *s, const char *topic, size_t len);
int sse_sub_is_subscribed(const sse_sub *s, const char *topic, size_t len);
/* Calls fn(name, len, ud) for every topic s is subscribed to, the most recent
 * first (fn must not change the hub). For presence: what a closing stream left. */
void sse_sub_each_topic(const sse_sub *s, void (*fn)(const char *, size_t, void *), void *ud);

/* Queues a reference to f. Returns 1 when queued, 0 when s is not open or
 * failed now (overflow under the close policy, ENOMEM). Under drop_oldest,
 * unsent live frames are dropped from the head (never a frame a write holds,
 * a replayed one nor the response head) until f fits, and a gap event goes before the next
 * frame. A frame larger than the whole limit is queued when nothing else
 * counts (an oversized event is delivered, not a reason to drop a client). */
int sse_sub_push(sse_sub *s, sse_frame *f, double now);

/* Queues f (a reference) as part of the response head: only before any
 * other frame, and like a replay it is exempt from the outbox limit and
 * never dropped by drop_oldest (the client must get its head whatever
 * overflows after it). 0, SSE_HUB_EINVAL (not first), SSE_HUB_ECLOSED (s is
 * not open) or SSE_HUB_ENOMEM. */
int sse_sub_push_head(sse_sub *s, sse_frame *f);

/* Queues f for every registered open subscriber (topic NULL) or for the
 * subscribers of topic. Returns how many it was queued for. */
size_t sse_hub_publish(sse_hub *h, sse_frame *f, const char *topic, size_t len, double now);

/* Store, then fan out: the replayer's next id goes into the event (which
 * must have none), the event is encoded once, stored and published. *count
 * gets the number of subscribers; id_out (cap >= SSE_ID_CAP) the id (*id_len
 * 0 with the null replayer). Returns 0, SSE_HUB_EINVAL with *err for a bad
 * event (nothing stored), SSE_HUB_ENOMEM or SSE_HUB_ESTORE. */
int sse_hub_broadcast(sse_hub *h, const sse_event *ev, int check_utf8, const char *topic,
                      size_t tlen, double now, size_t *count, char *id_out, size_t *id_len,
                      sse_encode_err *err);

/* Registers s (if needed), subscribes it to topics and replays: with
 * last_id NULL (a fresh client) it queues the sse-join event of the
 * replayer's last id (if it has ids); otherwise the replay of what it missed
 * after last_id. Returns SSE_REPLAY_DONE (*count frames replayed, *gap the
 * gap reason or 0) or SSE_REPLAY_PENDING (s is replaying until
 * sse_sub_replay_end), or a negative code: SSE_HUB_EOTHER/ECLOSED (nothing
 * changed), SSE_HUB_ENOMEM (s may be registered and partly subscribed). */
int sse_hub_attach(sse_hub *h, sse_sub *s, const sse_str *topics, size_t ntopics,
                   const char *last_id, size_t len, double now, size_t *count, int *gap);

/* The replaying state (for replayers driven from outside the core).
 * begin: frames queued from now on wait behind the replay (what is already
 * queued may still be written). frame: queues a reference to f ahead of
 * them (exempt from the outbox limit); 0, SSE_HUB_ECLOSED, SSE_HUB_ENOMEM.
 * end: drops the waiting live frames with 0 < seq <= upto, puts gap (a
 * frame: one reference taken over; NULL for none) before the replayed
 * frames and makes s live. A closed s just releases what it is given. */
void sse_sub_replay_begin(sse_sub *s);
int sse_sub_replay_frame(sse_sub *s, sse_frame *f);
/* Like sse_sub_replay_frame for a frame that holds nevents (>= 1) replayed
 * events back to back (sse_ring_joined): the replay count grows by nevents. */
int sse_sub_replay_joined(sse_sub *s, sse_frame *f, size_t nevents);
/* Room for about n replayed frames at once (a hint: one allocation instead
 * of one per doubling); 0 or SSE_HUB_ENOMEM (nothing changed). */
int sse_sub_replay_reserve(sse_sub *s, size_t n);
void sse_sub_replay_end(sse_sub *s, uint64_t upto, sse_frame *gap);
int sse_sub_replaying(const sse_sub *s);
/* Events replayed since sse_sub_replay_begin (frames handed to
 * sse_sub_replay_frame, plus the events of joined ones). */
size_t sse_sub_replay_count(const sse_sub *s);

/* The memory ring (ring.h) as a replayer: self is the sse_ring. */
extern const sse_replayer_ops sse_ring_replayer_ops;

/* 1 when a graceful close of s has something to write: queued bytes, or
 * the end of its gzip member (gzip's trailer). */
int sse_sub_has_rest(const sse_sub *s);

/* Closes s. graceful and something to write (sse_sub_has_rest): DRAINING (no new frames; the
 * flush writes the rest and reports it closed when done or at now + grace
 * seconds), returns 1. Otherwise CLOSED at once (unsent frames released),
 * returns 0. s leaves its hub's fan-out either way. Idempotent. A close
 * while replaying drops the live frames waiting behind the replay; what
 * was replayed so far (a prefix, in order) still drains. */
int sse_sub_close(sse_sub *s, int graceful, double now, double grace);

/* Writes every dirty push subscriber (at most its share each), moves
 * pull subscribers with data to the ready list, closes drains past their
 * deadline. Returns the number of subscribers written to. A nested call
 * (from a callback run by the flush's owner) only writes. */
size_t sse_hub_flush(sse_hub *h, double now);

/* Compresses what s sends from now on with gzip (gzip.h): the frames
 * already queued (the response head) go out as they are, every later frame
 * through s's own compressor, sync-flushed after each batch (each flush of
 * the hub), so every event can be decoded at once. A push subscriber only.
 * Returns 0, SSE_HUB_EINVAL (a pull sub, gzip already on, not open, or an
 * option out of range: gzip.h) or SSE_HUB_ENOMEM (nothing changed). */
int sse_sub_set_gzip(sse_sub *s, int level, int window_bits, int mem_level);

/* Writes one push subscriber now (at most its share). */
void sse_sub_flush(sse_sub *s);

/* Drain watches (stream:on_drain, pipe's backpressure): once s's outbox
 * holds low bytes or fewer (sse_sub_queued, after a write or a take), or s
 * is closed, its hub reports it once through sse_hub_next_drained (and is
 * busy until then: a loop turn's flush reports it). Filing it again changes
 * the mark. 0, SSE_HUB_ECLOSED (closed, or in no hub) or SSE_HUB_ENOMEM.
 * A watch goes with sse_hub_move (lost only when out of memory there) and
 * ends with sse_hub_remove (an owner finishing a watched sub reports it
 * itself: sse_sub_drain_watched before the remove). */
int sse_sub_watch_drain(sse_sub *s, size_t low);
void sse_sub_unwatch_drain(sse_sub *s);
int sse_sub_drain_watched(const sse_sub *s);
/* Pops (and ends) the next due drain watch of h, or NULL. */
sse_sub *sse_hub_next_drained(sse_hub *h);

/* Pops the next pull subscriber whose data has not been announced, or NULL. */
sse_sub *sse_hub_next_ready(sse_hub *h);
/* Pops the next subscriber the core closed (slow, write failure, drain end
 * or timeout), or NULL. Its owner finishes it (closes the transport). */
sse_sub *sse_hub_next_closed(sse_hub *h);

/* Copies what a pull subscriber may deliver into buf (sse_sub_take_size
 * bytes) and empties that part of the outbox; a draining sub whose outbox
 * is then empty becomes CLOSED (and goes to its hub's closed list). */
size_t sse_sub_take_size(const sse_sub *s);
size_t sse_sub_take(sse_sub *s, char *buf);

/* Queues the keep-alive frame on every open subscriber idle since now - idle. */
size_t sse_hub_keepalive(sse_hub *h, sse_frame *f, double now, double idle);

/* --- reading ---------------------------------------------------------------- */
size_t sse_hub_count(const sse_hub *h);
size_t sse_hub_topic_count(const sse_hub *h, const char *topic, size_t len);
size_t sse_hub_topics(const sse_hub *h);
void sse_hub_each_topic(const sse_hub *h,
                        void (*fn)(const char *, size_t, size_t, void *), void *ud);
/* Calls fn(sub, ud) for every registered subscriber (fn must not change the hub). */
void sse_hub_each_sub(const sse_hub *h, void (*fn)(sse_sub *, void *), void *ud);

typedef struct sse_sub_stats {
  uint64_t bytes_sent, dropped;
  size_t queued;
  uint32_t topics;
  uint64_t gzip_in, gzip_out; /* a gzip subscriber's compressor input and output */
  size_t gzip_memory;         /* bytes its compressor holds (0 without gzip) */
} sse_sub_stats;

/* What happened to a hub's subscribers, cumulative since sse_hub_new (for
 * metrics): bytes the transports accepted (push written, pull taken) while
 * the subscriber was in this hub, frames drop_oldest dropped, gap events
 * queued (a drop gap that is remade before it is sent counts once), and the
 * subscribers the core closed, by reason. */
typedef struct sse_hub_counters {
  uint64_t bytes_sent, dropped;
  uint64_t gaps_replay, gaps_dropped;
  uint64_t closed_slow, closed_write, closed_timeout;
  uint64_t gzip_in, gzip_out; /* bytes given to gzip subscribers' compressors, and their output */
} sse_hub_counters;

void sse_hub_get_counters(const sse_hub *h, sse_hub_counters *c);

int sse_sub_state(const sse_sub *s);
int sse_sub_reason(const sse_sub *s);
int sse_sub_uv_error(const sse_sub *s);
uint32_t sse_sub_id(const sse_sub *s);
sse_hub *sse_sub_hub(const sse_sub *s);
size_t sse_sub_queued(const sse_sub *s);
void sse_sub_get_stats(const sse_sub *s, sse_sub_stats *st);
/* 1 for a push subscriber (a libuv stream). */
int sse_sub_is_push(const sse_sub *s);
/* The libuv stream a push subscriber writes (NULL for pull). */
uv_stream_t *sse_sub_stream(const sse_sub *s);

/* Envelope mode (envelope.h): from now on every frame queued on s, the
 * hub's gap and join events included, is queued in its envelope form
 * (the frame's twin, made once and shared). What is queued already stays
 * as it is (an HTTP response head). */
void sse_sub_set_envelope(sse_sub *s, int on);
int sse_sub_envelope(const sse_sub *s);

/* The gap and join events (docs/CORE.md 3), as new frames with one
 * reference (NULL when out of memory). NULL strings are JSON null; dropped
 * < 0 is null. */
sse_frame *sse_gap_frame(const char *last_id, size_t last_len, const char *oldest,
                         size_t oldest_len, const char *latest, size_t latest_len,
                         int64_t dropped);
sse_frame *sse_join_frame(const char *id, size_t len);
/* The JSON data of the gap event into buf (NULL: just measure); returns its
 * length. */
size_t sse_gap_data(char *buf, const char *last_id, size_t last_len, const char *oldest,
                    size_t oldest_len, const char *latest, size_t latest_len, int64_t dropped);

/* --- self-check (C tests and the fuzzer) ------------------------------------ */
/* NULL when s's (h's) internal invariants hold, else what is broken: the
 * outbox bytes add up, exempt/held/in-flight counts fit, the gap flag
 * matches the queued gap frame, lists, states and memberships agree. */
const char *sse_sub_check(const sse_sub *s);
const char *sse_hub_check(const sse_hub *h);
/* The i-th queued frame of s (borrowed), or NULL past the end. */
sse_frame *sse_sub_frame_at(const sse_sub *s, size_t i);

#endif
