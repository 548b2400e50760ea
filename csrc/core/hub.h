/* hub.h - fan-out of shared frames to many subscribers. Plain C + libuv, no Lua.
 *
 * A subscriber (sse_sub) has a bounded outbox of frame references. Publishing
 * appends one reference per matching subscriber (no copy, no Lua) and marks
 * it dirty; sse_hub_flush() then writes each dirty subscriber's whole backlog
 * with one uv_try_write (a writev), queuing the rest with one uv_write, so a
 * burst published in one loop turn costs one system call per subscriber.
 *
 * Transports: a libuv stream (the hub writes it itself) or "pull" (the owner
 * drains the outbox with sse_sub_take and writes it some other way).
 *
 * Ownership: the hub owns its topic table and membership nodes; each sub is
 * malloc'd by sse_sub_new and freed by sse_sub_free, which defers the free
 * while a uv_write is in flight (libuv always completes it, if only with
 * UV_ECANCELED when the handle closes). Single-threaded: one loop. */
#ifndef SSE_HUB_H
#define SSE_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "frame.h"

typedef struct sse_hub sse_hub;
typedef struct sse_sub sse_sub;

enum sse_slow_policy { SSE_SLOW_CLOSE = 0, SSE_SLOW_DROP_OLDEST = 1 };

enum sse_sub_state {
  SSE_SUB_OPEN = 0,
  SSE_SUB_FAILED = 1, /* write error or overflow under the close policy */
  SSE_SUB_CLOSED = 2  /* closed by its owner */
};

/* Why a subscriber failed (sse_sub_failure). */
enum sse_sub_fail { SSE_FAIL_NONE = 0, SSE_FAIL_WRITE = 1, SSE_FAIL_SLOW = 2 };

/* Double-linked intrusive list node. */
typedef struct sse_link {
  struct sse_link *prev, *next;
} sse_link;

struct sse_membership; /* (sub, topic) pair, in both lists */

struct sse_sub {
  sse_hub *hub;               /* NULL when not registered */
  uint32_t id;                /* the owner's handle for this sub (never 0) */
  uint8_t state, fail, policy, dirty;
  uint8_t writing;            /* a uv_write is in flight */
  uint8_t orphaned;           /* freed by its owner; free when the write ends */
  uint8_t gap_pending;        /* drop_oldest dropped frames: send a gap event */
  uint8_t in_ready;           /* pull sub is in the hub's ready list */
  int uv_err;                 /* the libuv error that failed it, if any */
  uv_stream_t *stream;        /* NULL for pull subscribers */
  sse_link node;              /* in hub->subs */
  sse_link dirty_node;        /* in hub->dirty or hub->dead */
  struct sse_membership *topics; /* singly linked through next_of_sub */
  uint32_t ntopics;
  /* outbox: circular array of frame references */
  sse_frame **q;
  uint32_t qhead, qlen, qcap;
  uint32_t inflight;          /* frames at the head owned by the pending write */
  size_t qoff;                /* bytes of q[qhead] already written */
  size_t queued;              /* bytes in the outbox not yet written */
  size_t limit;               /* outbox bound in bytes */
  uint64_t dropped;           /* frames dropped under drop_oldest (total) */
  uint64_t gap_dropped;       /* frames dropped since the last gap event */
  uint64_t bytes_sent;        /* bytes accepted by the transport */
  double last_active;         /* when a frame was last queued (keep-alive) */
  uv_write_t *wreq;           /* the write in flight, malloc'd per write so an
                                 idle subscriber does not carry one */
  sse_frame *exempt;          /* a queued replay (one reference held): its
                                 unsent bytes do not count against limit */
};

/* Creates an empty hub; NULL when out of memory. */
sse_hub *sse_hub_new(void);

/* Unregisters every subscriber (their outboxes are cleared) and frees the
 * hub. Subscribers stay allocated: their owners free them. */
void sse_hub_free(sse_hub *h);

/* A new, unregistered subscriber writing to stream (NULL: pull transport),
 * with an outbox bound of limit bytes (0: unbounded) and a slow policy.
 * NULL when out of memory. The owner must keep stream alive until
 * sse_sub_detach or sse_sub_free. */
sse_sub *sse_sub_new(uv_stream_t *stream, size_t limit, int policy);

/* Stops using the transport: drops the outbox and marks the sub CLOSED. A
 * write in flight still completes (the frames it holds are released then).
 * Safe to call twice. Call this before closing the stream's handle. */
void sse_sub_detach(sse_sub *s);

/* Detaches, unregisters and frees s; the free is deferred while a uv_write
 * is in flight. NULL is a no-op. */
void sse_sub_free(sse_sub *s);

/* Adds s to h under the owner's id (nonzero). Returns 0, or -1 when s is in
 * another hub, UV_ENOMEM never (no allocation). Registering twice is a no-op. */
int sse_hub_add(sse_hub *h, sse_sub *s, uint32_t id);

/* Removes s from its hub and from every topic; its outbox is kept. */
void sse_hub_remove(sse_sub *s);

/* Subscribes a registered s to topic. Returns 1 when added, 0 when already
 * subscribed, -1 when not registered, UV_ENOMEM when out of memory (nothing
 * changed). */
int sse_hub_subscribe(sse_sub *s, const char *topic, size_t len);

/* Unsubscribes; returns 1 when removed, 0 when it was not subscribed. */
int sse_hub_unsubscribe(sse_sub *s, const char *topic, size_t len);

/* Queues f like sse_sub_push, but while it is unsent its bytes do not count
 * against the outbox limit, and drop_oldest never drops it: the replay a
 * reconnecting client asked for must not get it judged slow (it would
 * reconnect and ask again, forever). One such frame at a time. */
int sse_sub_push_exempt(sse_sub *s, sse_frame *f, double now);

/* Queues a reference to f for every open subscriber (topic == NULL) or for
 * the subscribers of topic; now (the hub's clock) marks them active. Returns the number of subscribers it was queued
 * for. Subscribers that overflow follow their policy (see sse_sub_push). */
size_t sse_hub_publish(sse_hub *h, sse_frame *f, const char *topic, size_t len, double now);

/* Queues a reference to f on one subscriber. Returns 1 when queued, 0 when
 * the sub is not open or failed now (the close policy on overflow). Under
 * drop_oldest, unsent frames are dropped from the head (never a frame a
 * write already holds) until f fits, and a gap event is sent before the
 * next frame. A frame larger than the whole limit is queued when nothing
 * else is (an oversized event is delivered, not a reason to drop a client). */
int sse_sub_push(sse_sub *s, sse_frame *f, double now);

/* Writes every dirty stream subscriber's backlog (try-write, then one
 * queued write for the rest). Pull subscribers with data move to the ready
 * list. Returns the number of subscribers written to. */
size_t sse_hub_flush(sse_hub *h);

/* Writes one stream subscriber's backlog now (the same as a flush of it). */
void sse_sub_flush(sse_sub *s);

/* Pops the next pull subscriber with queued data, or NULL. */
sse_sub *sse_hub_next_ready(sse_hub *h);

/* Pops the next failed subscriber (write error, overflow), or NULL. Its
 * owner should close it; it is no longer in the hub's fan-out. */
sse_sub *sse_hub_next_dead(sse_hub *h);

/* Copies the whole outbox of a pull sub into buf (sse_sub_queued bytes, plus
 * a gap event when one is pending: see sse_sub_take_size) and empties it. */
size_t sse_sub_take_size(const sse_sub *s);
size_t sse_sub_take(sse_sub *s, char *buf);

/* Queues a shared keep-alive frame on every open subscriber whose last
 * activity is older than now - idle. Returns how many got one. */
size_t sse_hub_keepalive(sse_hub *h, sse_frame *f, double now, double idle);

/* Counters. */
size_t sse_hub_count(const sse_hub *h);
size_t sse_hub_topic_count(const sse_hub *h, const char *topic, size_t len);
size_t sse_hub_topics(const sse_hub *h);
/* Calls fn(topic, len, count, ud) for every topic. */
void sse_hub_each_topic(const sse_hub *h,
                        void (*fn)(const char *, size_t, size_t, void *), void *ud);
static inline size_t sse_sub_queued(const sse_sub *s) { return s->queued; }
int sse_sub_is_subscribed(const sse_sub *s, const char *topic, size_t len);

/* Text of the gap event a drop_oldest subscriber gets: writes at most cap
 * bytes into buf and returns the length. */
size_t sse_gap_drop_event(uint64_t dropped, char *buf, size_t cap);

#endif
