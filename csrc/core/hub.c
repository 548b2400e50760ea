/* hub.c - subscribers, topics, bounded outboxes, the replaying state and
 * coalesced, turn-bounded writes (hub.h, docs/CORE.md). */
#include "hub.h"
#include "gzip.h"
#include "envelope.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#include <sys/socket.h>
#include <sys/uio.h>
#endif

#define MIN_QCAP 4
#define SSE_REPLAY_RESERVE_MAX 4096 /* frames reserved ahead of a replay at most */
#define GAP_RESERVE 96      /* room kept for the gap event when dropping */
#define DRAIN_TICK_MS 100   /* how often drain deadlines are looked at */

/* Double-linked intrusive list node. */
typedef struct sse_link {
  struct sse_link *prev, *next;
} sse_link;

typedef struct sse_topic {
  struct sse_topic *next;   /* bucket chain */
  sse_link members;         /* sse_membership.topic_node */
  size_t count;
  uint32_t hash;
  size_t len;
  char name[];
} sse_topic;

typedef struct sse_membership {
  sse_link topic_node;
  struct sse_membership *next_of_sub;
  sse_sub *sub;
  sse_topic *topic;
} sse_membership;

/* sub flags */
enum {
  F_WRITING = 1,     /* a uv_write is in flight */
  F_ORPHANED = 2,    /* freed by its owner; free when the write ends */
  F_DRAIN_WATCH = 4, /* a drain watch is filed in its hub (sse_sub_watch_drain) */
  F_REPLAYING = 8,   /* live frames wait behind a pending replay */
  F_ANNOUNCED = 16,  /* pull: on the ready list since the last take */
  F_NOSOCK = 32,     /* push: the fd is not a socket (no sendmsg) */
  F_ENVELOPE = 64    /* envelope mode: queues each frame's envelope twin */
};

/* Which hub list a sub's lnode is in. */
enum { IN_NONE = 0, IN_DIRTY = 1, IN_READY = 2, IN_CLOSED = 3 };

struct sse_sub {
  sse_hub *hub;               /* NULL when in no hub */
  uv_stream_t *stream;        /* NULL for pull subscribers */
  sse_link node;              /* in hub->subs (registered) or hub->gone */
  sse_link lnode;             /* in hub->dirty, ready or closed */
  sse_membership *topics;     /* singly linked through next_of_sub */
  sse_frame **q;              /* outbox: circular array of references */
  size_t qoff;                /* bytes of q[qhead] already written */
  size_t queued;              /* bytes in the outbox not yet written */
  size_t limit;               /* outbox bound in bytes */
  size_t exempt_bytes;        /* bytes of the exempt_n head frames */
  uint64_t dropped;           /* frames dropped under drop_oldest (total) */
  uint64_t bytes_sent;        /* bytes accepted by the transport */
  union {
    double last_active;       /* open: when a frame was last queued (keep-alive) */
    double deadline;          /* draining: it is closed at this time */
  } t;
  uint32_t id, ntopics;
  uint32_t qhead, qlen, qcap;
  uint32_t inflight;          /* frames at the head owned by the pending write */
  uint32_t hold;              /* replaying: head frames that may be written */
  uint32_t exempt_n;          /* head frames that do not count against limit */
  uint32_t gap_dropped;       /* frames dropped since the last gap event */
  uint32_t replay_extra;      /* replaying: events beyond one per replayed frame (joined) */
  int uv_err;                 /* the libuv error that failed it, if any */
  sse_gz *gz;                 /* gzip: frames are compressed when written */
  uint32_t gz_inflight;       /* compressed bytes the write in flight holds (a share) */
  uint32_t gz_raw_n;          /* head frames queued before gzip: sent as they are */
  uint8_t state, reason, policy, list, flags, registered;
  uint8_t share_shift;        /* consecutive full shares: the next is base << this */
};

typedef struct hub_loop {
  uv_prepare_t prepare;
  uv_idle_t idle;             /* keeps poll from blocking while work remains */
  uv_timer_t timer;           /* drain deadlines */
  int open_handles;
  sse_hub *hub;               /* NULL once the hub is freed */
} hub_loop;

struct sse_hub {
  sse_link subs, gone;        /* registered / left the fan-out, not finished */
  size_t nsubs, ndraining;
  sse_link dirty, ready, closed;
  sse_topic **buckets;
  size_t nbuckets, ntopics;
  uint32_t next_id, nfree, capfree;
  uint32_t *free_ids;
  const sse_replayer_ops *ops;
  void *rself;
  void *user;
  hub_loop *loop;
  void (*on_turn)(sse_hub *, void *);
  void *turn_ud;
  int holds;                  /* sse_hub_hold count: free is deferred */
  int turns;                  /* flushed once per loop turn (own loop or its owner's) */
  int free_pending;
  sse_hub_counters ctr;       /* cumulative, for metrics */
  struct drain_watch *watch;  /* drain watches (few: paused producers) */
  uint32_t nwatch, capwatch, ndue;
};

/* A drain watch: s is reported once its outbox holds low bytes or fewer
 * (or it closed); due: noticed, waiting for sse_hub_next_drained. */
typedef struct drain_watch {
  sse_sub *s;
  size_t low;
  int due;
} drain_watch;

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* --- intrusive lists -------------------------------------------------- */

static void list_init(sse_link *l) { l->prev = l->next = l; }
static int list_empty(const sse_link *l) { return l->next == l; }
static void list_push(sse_link *l, sse_link *n) {
  n->prev = l->prev;
  n->next = l;
  l->prev->next = n;
  l->prev = n;
}
static void list_unlink(sse_link *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}
/* Moves every node of from to the (empty) list to. */
static void list_move_all(sse_link *from, sse_link *to) {
  list_init(to);
  if (list_empty(from)) return;
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  list_init(from);
}

/* --- the null replayer ------------------------------------------------ */

static size_t null_id(void *self, char *buf, size_t cap) {
  (void)self; (void)buf; (void)cap;
  return 0;
}
static int null_store(void *self, sse_frame *f, double now) {
  (void)self; (void)now;
  sse_frame_unref(f); /* "takes one reference": keeps nothing */
  return 0;
}
static int null_replay(void *self, sse_sub *s, const char *id, size_t len, double now,
                       uint64_t *upto, int *gap) {
  (void)self; (void)s; (void)id; (void)len; (void)now;
  *upto = 0;
  *gap = 0;
  return SSE_REPLAY_DONE;
}
static const sse_replayer_ops null_ops = {null_id, null_store, null_replay, null_id, null_id};

/* --- the loop handles ------------------------------------------------- */

static void on_prepare(uv_prepare_t *p);

static void wake(sse_hub *h) {
  if (h->loop && !uv_is_active((uv_handle_t *)&h->loop->prepare))
    uv_prepare_start(&h->loop->prepare, on_prepare);
}

/* --- drain watches ------------------------------------------------------ */

static drain_watch *watch_of(const sse_hub *h, const sse_sub *s) {
  for (uint32_t i = 0; i < h->nwatch; i++)
    if (h->watch[i].s == s) return &h->watch[i];
  return NULL;
}

size_t sse_sub_queued(const sse_sub *s);

/* s's outbox shrank, or s closed: its watch is due when the outbox is at
 * or below the mark (or s is closed). */
static void drain_note(sse_sub *s) {
  if (!(s->flags & F_DRAIN_WATCH) || !s->hub) return;
  drain_watch *w = watch_of(s->hub, s);
  if (!w || w->due) return;
  if (s->state == SSE_SUB_CLOSED || sse_sub_queued(s) <= w->low) {
    w->due = 1;
    s->hub->ndue++;
    wake(s->hub);
  }
}

/* Drops s's watch from h (if any). */
static void watch_drop(sse_hub *h, sse_sub *s) {
  if (!(s->flags & F_DRAIN_WATCH)) return;
  s->flags &= (uint8_t)~F_DRAIN_WATCH;
  for (uint32_t i = 0; h && i < h->nwatch; i++)
    if (h->watch[i].s == s) {
      if (h->watch[i].due) h->ndue--;
      h->watch[i] = h->watch[--h->nwatch];
      return;
    }
}

/* --- topics ----------------------------------------------------------- */

static uint32_t hash_name(const char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
  return h;
}

static sse_topic *topic_find(const sse_hub *h, const char *name, size_t len, uint32_t hash) {
  if (!h->nbuckets) return NULL;
  for (sse_topic *t = h->buckets[hash & (h->nbuckets - 1)]; t; t = t->next)
    if (t->hash == hash && t->len == len && memcmp(t->name, name, len) == 0) return t;
  return NULL;
}

/* Doubles the bucket array; returns 0, or -1 (table unchanged) on ENOMEM. */
static int topic_grow(sse_hub *h) {
  size_t n = h->nbuckets ? h->nbuckets * 2 : 16;
  sse_topic **b = calloc(n, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < h->nbuckets; i++) {
    sse_topic *t = h->buckets[i];
    while (t) {
      sse_topic *next = t->next;
      t->next = b[t->hash & (n - 1)];
      b[t->hash & (n - 1)] = t;
      t = next;
    }
  }
  free(h->buckets);
  h->buckets = b;
  h->nbuckets = n;
  return 0;
}

/* Finds or creates a topic; NULL (nothing changed) on ENOMEM. */
static sse_topic *topic_get(sse_hub *h, const char *name, size_t len) {
  uint32_t hash = hash_name(name, len);
  sse_topic *t = topic_find(h, name, len, hash);
  if (t) return t;
  if (h->ntopics >= h->nbuckets && topic_grow(h) != 0) return NULL;
  t = malloc(sizeof *t + len + 1);
  if (!t) return NULL;
  list_init(&t->members);
  t->count = 0;
  t->hash = hash;
  t->len = len;
  memcpy(t->name, name, len);
  t->name[len] = '\0';
  sse_topic **slot = &h->buckets[hash & (h->nbuckets - 1)];
  t->next = *slot;
  *slot = t;
  h->ntopics++;
  return t;
}

static void topic_drop(sse_hub *h, sse_topic *t) {
  sse_topic **p = &h->buckets[t->hash & (h->nbuckets - 1)];
  while (*p != t) p = &(*p)->next;
  *p = t->next;
  h->ntopics--;
  free(t);
}

/* --- outbox ------------------------------------------------------------ */

static uint32_t q_idx(const sse_sub *s, uint32_t i) { return (s->qhead + i) & (s->qcap - 1); }
static sse_frame *q_at(const sse_sub *s, uint32_t i) { return s->q[q_idx(s, i)]; }

/* Makes room for one more frame; 0, or -1 (outbox unchanged) on ENOMEM. */
static int q_grow(sse_sub *s, uint32_t more);

static int q_reserve(sse_sub *s) {
  if (s->qlen < s->qcap) return 0;
  return q_grow(s, 1);
}

/* Makes room for `more` frames beyond qlen (the capacity doubles until it
 * fits); 0, or -1 (outbox unchanged) on ENOMEM or overflow. */
static int q_grow(sse_sub *s, uint32_t more) {
  if (more > (UINT32_MAX >> 1) - s->qlen) return -1;
  uint32_t want = s->qlen + more;
  if (want <= s->qcap) return 0;
  uint32_t cap = s->qcap ? s->qcap : MIN_QCAP;
  while (cap < want) cap *= 2;
  sse_frame **q = malloc(cap * sizeof *q);
  if (!q) return -1;
  for (uint32_t i = 0; i < s->qlen; i++) q[i] = q_at(s, i);
  free(s->q);
  s->q = q;
  s->qcap = cap;
  s->qhead = 0;
  return 0;
}

/* Inserts f (one reference taken over) at index i, shifting the frames
 * from i on one place towards the tail. Needs a free slot. */
static void q_insert(sse_sub *s, uint32_t i, sse_frame *f) {
  if (i < s->gz_raw_n) s->gz_raw_n++;
  for (uint32_t k = s->qlen; k > i; k--) s->q[q_idx(s, k)] = q_at(s, k - 1);
  s->q[q_idx(s, i)] = f;
  s->qlen++;
  s->queued += f->len;
}

/* Unsent bytes of the exempt head frames (the replay, what preceded it). */
static size_t exempt_unsent(const sse_sub *s) {
  return s->exempt_n ? s->exempt_bytes - s->qoff : 0;
}

/* Queued bytes that count against the limit. */
static size_t counted(const sse_sub *s) { return s->queued - exempt_unsent(s); }

/* The form of f this subscriber gets: f, or its envelope twin (made once
 * per frame, shared by every envelope subscriber). NULL when out of memory. */
static sse_frame *mode_frame(const sse_sub *s, sse_frame *f) {
  return (s->flags & F_ENVELOPE) ? sse_frame_envelope(f) : f;
}

/* A gap frame the hub made (one reference, taken over) in s's form; NULL
 * when out of memory (g released). */
static sse_frame *own_mode_frame(const sse_sub *s, sse_frame *g) {
  sse_frame *m = mode_frame(s, g);
  if (m && m != g) {
    sse_frame_ref(m);
    sse_frame_unref(g);
  } else if (!m) {
    sse_frame_unref(g);
  }
  return m;
}

/* The gap events drop_oldest makes are frames marked by this seq. */
#define GAP_SEQ UINT64_MAX
static int is_gap_frame(const sse_frame *f) { return f->seq == GAP_SEQ; }

/* Frames at the head that may be handed to the transport now. */
static uint32_t writable_n(const sse_sub *s) {
  return (s->flags & F_REPLAYING) ? s->hold : s->qlen;
}

/* Pops the head frame after it was fully written or taken. */
static void q_pop_head(sse_sub *s) {
  sse_frame *f = q_at(s, 0);
  if (s->exempt_n) {
    s->exempt_n--;
    s->exempt_bytes -= f->len;
  }
  if (s->hold) s->hold--;
  if (s->gz_raw_n) s->gz_raw_n--;
  s->qhead = q_idx(s, 1);
  s->qlen--;
  sse_frame_unref(f);
}

static void q_free_array(sse_sub *s) {
  free(s->q);
  s->q = NULL;
  s->qcap = 0;
  s->qhead = 0;
}

/* Releases the frames no write holds; keeps the in-flight ones. Frees an
 * empty array so an idle subscriber costs no outbox memory. */
static void q_release_unsent(sse_sub *s) {
  while (s->qlen > s->inflight) {
    sse_frame_unref(q_at(s, s->qlen - 1));
    s->qlen--;
  }
  if (s->inflight == 0) s->qoff = 0;
  s->queued = 0;
  s->exempt_bytes = 0;
  if (s->exempt_n > s->qlen) s->exempt_n = s->qlen;
  if (s->hold > s->qlen) s->hold = s->qlen;
  for (uint32_t i = 0; i < s->qlen; i++) {
    s->queued += q_at(s, i)->len;
    if (i < s->exempt_n) s->exempt_bytes += q_at(s, i)->len;
  }
  if (s->qlen) s->queued -= s->qoff;
  if (s->gz_raw_n > s->qlen) s->gz_raw_n = s->qlen;
  /* compressed bytes no write holds go too */
  if (s->gz && !(s->flags & F_WRITING)) sse_gz_consume(s->gz, sse_gz_pending(s->gz));
  if (s->qlen == 0 && s->q) q_free_array(s);
}

/* Frees a drained outbox's array. */
static void q_trim(sse_sub *s) {
  /* an idle subscriber holds no array (the next frame allocates one) */
  if (s->qlen == 0 && s->q) q_free_array(s);
}

/* Consumes n written bytes from the head of the outbox. */
static void q_consume(sse_sub *s, size_t n) {
  s->bytes_sent += n;
  if (s->hub) s->hub->ctr.bytes_sent += n;
  s->queued -= n;
  while (n > 0) {
    sse_frame *f = q_at(s, 0);
    size_t left = f->len - s->qoff;
    if (n < left) {
      s->qoff += n;
      break;
    }
    n -= left;
    s->qoff = 0;
    q_pop_head(s);
  }
  if (s->flags & F_DRAIN_WATCH) drain_note(s);
}

/* --- lists and state ---------------------------------------------------- */

static void set_list(sse_sub *s, int which) {
  if (s->list != IN_NONE) list_unlink(&s->lnode);
  s->list = IN_NONE;
  if (!s->hub || which == IN_NONE) return;
  sse_hub *h = s->hub;
  s->list = (uint8_t)which;
  list_push(which == IN_DIRTY ? &h->dirty : which == IN_READY ? &h->ready : &h->closed, &s->lnode);
  wake(h);
}

/* Announces new data: a push sub is written at the next flush, a pull sub
 * goes to the ready list once per batch. */
static void mark_pending(sse_sub *s) {
  if (!s->hub || s->list == IN_CLOSED || writable_n(s) == 0) return;
  if (s->stream) {
    if (s->list == IN_NONE) set_list(s, IN_DIRTY);
  } else if (!(s->flags & F_ANNOUNCED)) {
    s->flags |= F_ANNOUNCED;
    set_list(s, IN_READY);
  }
}

/* Leaves the fan-out: memberships freed, node moved to hub->gone (the
 * owner finishes it later with sse_hub_remove). */
static void leave_fanout(sse_sub *s) {
  sse_hub *h = s->hub;
  if (!h || !s->registered) return;
  while (s->topics) {
    sse_membership *m = s->topics;
    s->topics = m->next_of_sub;
    list_unlink(&m->topic_node);
    if (--m->topic->count == 0) topic_drop(h, m->topic);
    free(m);
  }
  s->ntopics = 0;
  list_unlink(&s->node);
  list_push(&h->gone, &s->node);
  s->registered = 0;
  h->nsubs--;
}

/* The core closes s (slow, write error, drain end or timeout): the owner
 * learns it from the closed list. Memberships stay until then, so a fan-out
 * loop that made it fail is not disturbed. */
static void sub_fail(sse_sub *s, int reason, int uv_err) {
  if (s->state == SSE_SUB_CLOSED) return;
  if (s->state == SSE_SUB_DRAINING && s->hub) s->hub->ndraining--;
  if (s->hub) {
    sse_hub_counters *c = &s->hub->ctr;
    if (reason == SSE_CLOSE_SLOW) c->closed_slow++;
    else if (reason == SSE_CLOSE_WRITE) c->closed_write++;
    else if (reason == SSE_CLOSE_TIMEOUT) c->closed_timeout++;
  }
  s->state = SSE_SUB_CLOSED;
  s->reason = (uint8_t)reason;
  s->uv_err = uv_err;
  s->flags &= (uint8_t)~F_REPLAYING;
  q_release_unsent(s);
  set_list(s, IN_CLOSED);
  drain_note(s);
}

static void gz_write(sse_sub *s);

/* A draining sub whose outbox emptied is done; a gzip sub first ends its
 * gzip member (the trailer: a client can tell a complete stream from a cut
 * one) and writes it. */
static void drain_check(sse_sub *s) {
  if (s->state != SSE_SUB_DRAINING || s->qlen != 0 || (s->flags & F_WRITING)) return;
  if (s->gz && sse_gz_pending(s->gz) > 0) return;
  if (s->gz && !sse_gz_finished(s->gz)) {
    if (sse_gz_finish(s->gz) != 0) sub_fail(s, SSE_CLOSE_WRITE, UV_ENOMEM);
    else gz_write(s); /* comes back here once the trailer is out */
    return;
  }
  sub_fail(s, s->reason, 0);
}

/* --- subscribers ------------------------------------------------------- */

sse_sub *sse_sub_new(uv_stream_t *stream, size_t limit, int policy) {
  sse_sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->stream = stream;
  s->limit = limit ? limit : SIZE_MAX;
  s->policy = (uint8_t)policy;
  s->state = SSE_SUB_OPEN;
  list_init(&s->node);
  list_init(&s->lnode);
  return s;
}

size_t sse_sub_size(void) { return sizeof(struct sse_sub); }

void sse_sub_set_limits(sse_sub *s, size_t limit, int policy) {
  s->limit = limit ? limit : SIZE_MAX;
  s->policy = (uint8_t)policy;
}

size_t sse_sub_limit(const sse_sub *s) { return s->limit; }
int sse_sub_policy(const sse_sub *s) { return s->policy; }

static void sub_destroy(sse_sub *s) {
  while (s->qlen) {
    sse_frame_unref(q_at(s, s->qlen - 1));
    s->qlen--;
  }
  free(s->q);
  sse_gz_free(s->gz);
  free(s);
}

void sse_sub_free(sse_sub *s) {
  if (!s) return;
  sse_hub_remove(s);
  if (s->state != SSE_SUB_CLOSED) {
    s->state = SSE_SUB_CLOSED;
    s->reason = SSE_CLOSE_OWNER;
  }
  q_release_unsent(s);
  if (s->flags & F_WRITING) s->flags |= F_ORPHANED; /* on_write frees it */
  else sub_destroy(s);
}

int sse_sub_state(const sse_sub *s) { return s->state; }
int sse_sub_reason(const sse_sub *s) { return s->reason; }
int sse_sub_uv_error(const sse_sub *s) { return s->uv_err; }
uint32_t sse_sub_id(const sse_sub *s) { return s->hub ? s->id : 0; }
sse_hub *sse_sub_hub(const sse_sub *s) { return s->hub; }
size_t sse_sub_queued(const sse_sub *s) {
  return s->queued + (s->gz ? sse_gz_pending(s->gz) : 0); /* compressed, not yet written */
}
int sse_sub_has_rest(const sse_sub *s) {
  /* a gzip sub drains even when nothing is queued: its member's end */
  return sse_sub_queued(s) > 0 || (s->gz && !sse_gz_finished(s->gz));
}
int sse_sub_replaying(const sse_sub *s) { return (s->flags & F_REPLAYING) != 0; }
int sse_sub_is_push(const sse_sub *s) { return s->stream != NULL; }
uv_stream_t *sse_sub_stream(const sse_sub *s) { return s->stream; }

void sse_sub_set_envelope(sse_sub *s, int on) {
  if (on) s->flags |= F_ENVELOPE;
  else s->flags &= (uint8_t)~F_ENVELOPE;
}
int sse_sub_envelope(const sse_sub *s) { return (s->flags & F_ENVELOPE) != 0; }
size_t sse_sub_replay_count(const sse_sub *s) {
  return (s->flags & F_REPLAYING) ? s->exempt_n - s->hold + s->replay_extra : 0;
}

void sse_sub_get_stats(const sse_sub *s, sse_sub_stats *st) {
  st->bytes_sent = s->bytes_sent;
  st->dropped = s->dropped;
  st->queued = sse_sub_queued(s);
  st->topics = s->ntopics;
  st->gzip_in = st->gzip_out = 0;
  st->gzip_memory = 0;
  if (s->gz) {
    sse_gz_totals(s->gz, &st->gzip_in, &st->gzip_out);
    st->gzip_memory = sse_gz_memory(s->gz);
  }
}

int sse_sub_set_gzip(sse_sub *s, int level, int window_bits, int mem_level) {
  const char *which;
  if (!s->stream || s->gz || s->state != SSE_SUB_OPEN ||
      sse_gz_check(level, window_bits, mem_level, &which) != 0)
    return SSE_HUB_EINVAL;
  s->gz = sse_gz_new(level, window_bits, mem_level);
  if (!s->gz) return SSE_HUB_ENOMEM;
  s->gz_raw_n = s->qlen; /* the response head, already queued, is not compressed */
  return 0;
}

/* --- hub ---------------------------------------------------------------- */

sse_hub *sse_hub_new(void) {
  sse_hub *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  list_init(&h->subs);
  list_init(&h->gone);
  list_init(&h->dirty);
  list_init(&h->ready);
  list_init(&h->closed);
  h->next_id = 1;
  h->ops = &null_ops;
  return h;
}

static void on_handle_closed(uv_handle_t *handle) {
  hub_loop *hl = handle->data;
  if (--hl->open_handles == 0) free(hl);
}

static void hub_destroy(sse_hub *h) {
  sse_link *lists[2] = {&h->subs, &h->gone};
  for (int i = 0; i < 2; i++)
    while (!list_empty(lists[i])) sse_hub_remove(container_of(lists[i]->next, sse_sub, node));
  for (size_t i = 0; i < h->nbuckets; i++) {
    sse_topic *t = h->buckets[i];
    while (t) {
      sse_topic *next = t->next;
      free(t);
      t = next;
    }
  }
  if (h->loop) {
    hub_loop *hl = h->loop;
    hl->hub = NULL;
    uv_close((uv_handle_t *)&hl->prepare, on_handle_closed);
    uv_close((uv_handle_t *)&hl->idle, on_handle_closed);
    uv_close((uv_handle_t *)&hl->timer, on_handle_closed);
  }
  free(h->free_ids);
  free(h->buckets);
  free(h->watch);
  free(h);
}

void sse_hub_free(sse_hub *h) {
  if (!h) return;
  if (h->holds) {
    h->free_pending = 1;
    return;
  }
  hub_destroy(h);
}

void sse_hub_hold(sse_hub *h) { h->holds++; }

int sse_hub_release(sse_hub *h) {
  assert(h->holds > 0);
  if (--h->holds == 0 && h->free_pending) {
    hub_destroy(h);
    return 1;
  }
  return 0;
}

static void on_idle(uv_idle_t *i) { (void)i; /* only keeps poll from blocking */ }

static void on_prepare(uv_prepare_t *p) {
  hub_loop *hl = p->data;
  sse_hub *h = hl->hub;
  if (!h) return;
  if (h->on_turn) h->on_turn(h, h->turn_ud);
  else sse_hub_flush(h, uv_now(p->loop) / 1000.0);
  h = hl->hub; /* on_turn may have freed it */
  if (!h) return;
  int more = sse_hub_busy(h);
  if (!more) {
    uv_prepare_stop(&hl->prepare);
    uv_idle_stop(&hl->idle);
  } else if (!uv_is_active((uv_handle_t *)&hl->idle)) {
    uv_idle_start(&hl->idle, on_idle);
  }
}

static void on_timer(uv_timer_t *t) {
  hub_loop *hl = t->data;
  if (hl->hub) wake(hl->hub);
}

int sse_hub_set_loop(sse_hub *h, uv_loop_t *loop, void (*on_turn)(sse_hub *, void *), void *ud) {
  if (h->loop) return 0;
  hub_loop *hl = calloc(1, sizeof *hl);
  if (!hl) return SSE_HUB_ENOMEM;
  hl->hub = h;
  uv_prepare_init(loop, &hl->prepare);
  uv_idle_init(loop, &hl->idle);
  uv_timer_init(loop, &hl->timer);
  hl->prepare.data = hl->idle.data = hl->timer.data = hl;
  hl->open_handles = 3;
  /* none of them keeps the loop alive: the sockets do */
  uv_unref((uv_handle_t *)&hl->prepare);
  uv_unref((uv_handle_t *)&hl->idle);
  uv_unref((uv_handle_t *)&hl->timer);
  h->loop = hl;
  h->turns = 1;
  h->on_turn = on_turn;
  h->turn_ud = ud;
  return 0;
}

void sse_hub_set_replayer(sse_hub *h, const sse_replayer_ops *ops, void *self) {
  h->ops = ops ? ops : &null_ops;
  h->rself = ops ? self : NULL;
}

int sse_hub_has_replayer(const sse_hub *h) { return h->ops != &null_ops; }

const sse_replayer_ops *sse_hub_replayer(const sse_hub *h, void **self) {
  *self = h->rself;
  return h->ops;
}

void sse_hub_set_user(sse_hub *h, void *user) { h->user = user; }
void *sse_hub_user(const sse_hub *h) { return h->user; }

static uint32_t take_id(sse_hub *h) {
  if (h->nfree) return h->free_ids[--h->nfree];
  uint32_t id = h->next_id++;
  if (h->next_id == 0) h->next_id = 1; /* 2^32 registrations: wraps */
  return id;
}

static void give_id(sse_hub *h, uint32_t id) {
  if (h->nfree == h->capfree) {
    uint32_t cap = h->capfree ? h->capfree * 2 : 64;
    uint32_t *n = realloc(h->free_ids, cap * sizeof *n);
    if (!n) return; /* the id is not reused: harmless */
    h->free_ids = n;
    h->capfree = cap;
  }
  h->free_ids[h->nfree++] = id;
}

int sse_hub_add(sse_hub *h, sse_sub *s, uint32_t *id) {
  if (s->hub && s->hub != h) return SSE_HUB_EOTHER;
  if (s->state != SSE_SUB_OPEN) return SSE_HUB_ECLOSED;
  if (s->hub == h) {
    *id = s->id;
    return 0;
  }
  s->hub = h;
  s->id = take_id(h);
  s->registered = 1;
  list_push(&h->subs, &s->node);
  h->nsubs++;
  mark_pending(s);
  *id = s->id;
  return 0;
}

void sse_hub_remove(sse_sub *s) {
  sse_hub *h = s->hub;
  if (!h) return;
  leave_fanout(s);
  watch_drop(h, s);
  if (s->state == SSE_SUB_DRAINING) h->ndraining--;
  set_list(s, IN_NONE);
  list_unlink(&s->node);
  give_id(h, s->id);
  s->hub = NULL;
  s->id = 0;
  s->flags &= (uint8_t)~F_ANNOUNCED;
}

int sse_hub_move(sse_hub *to, sse_sub *s) {
  sse_hub *from = s->hub;
  if (from == to) return 0;
  /* a closed sub moves only while its report is pending (on the closed list) */
  if (s->state == SSE_SUB_CLOSED && (s->list != IN_CLOSED || list_empty(&s->lnode)))
    return SSE_HUB_ECLOSED;
  int which = s->list;
  int draining = s->state == SSE_SUB_DRAINING;
  uint8_t announced = s->flags & F_ANNOUNCED;
  drain_watch *w = from && (s->flags & F_DRAIN_WATCH) ? watch_of(from, s) : NULL;
  size_t low = w ? w->low : 0;
  int watched = w != NULL;
  if (from) {
    watch_drop(from, s);
    leave_fanout(s);
    if (draining) from->ndraining--;
    set_list(s, IN_NONE);
    list_unlink(&s->node);
    give_id(from, s->id);
  }
  s->hub = to;
  s->id = take_id(to);
  if (s->state == SSE_SUB_OPEN) {
    s->registered = 1;
    list_push(&to->subs, &s->node);
    to->nsubs++;
  } else {
    s->registered = 0;
    list_push(&to->gone, &s->node);
  }
  if (draining) {
    to->ndraining++;
    if (to->loop && !uv_is_active((uv_handle_t *)&to->loop->timer))
      uv_timer_start(&to->loop->timer, on_timer, DRAIN_TICK_MS, DRAIN_TICK_MS);
  }
  s->flags = (uint8_t)((s->flags & ~F_ANNOUNCED) | announced);
  if (which != IN_NONE) set_list(s, which);
  else mark_pending(s);
  if (watched) (void)sse_sub_watch_drain(s, low); /* ENOMEM: the watch is lost (documented) */
  return 0;
}

int sse_sub_watch_drain(sse_sub *s, size_t low) {
  sse_hub *h = s->hub;
  if (!h || s->state == SSE_SUB_CLOSED) return SSE_HUB_ECLOSED;
  drain_watch *w = (s->flags & F_DRAIN_WATCH) ? watch_of(h, s) : NULL;
  if (!w) {
    if (h->nwatch == h->capwatch) {
      uint32_t cap = h->capwatch ? h->capwatch * 2 : 8;
      drain_watch *n = realloc(h->watch, cap * sizeof *n);
      if (!n) return SSE_HUB_ENOMEM;
      h->watch = n;
      h->capwatch = cap;
    }
    w = &h->watch[h->nwatch++];
    w->s = s;
    w->due = 0;
    s->flags |= F_DRAIN_WATCH;
  }
  w->low = low;
  drain_note(s);
  return 0;
}

void sse_sub_unwatch_drain(sse_sub *s) { watch_drop(s->hub, s); }
int sse_sub_drain_watched(const sse_sub *s) { return (s->flags & F_DRAIN_WATCH) != 0; }

sse_sub *sse_hub_next_drained(sse_hub *h) {
  for (uint32_t i = 0; h->ndue && i < h->nwatch; i++)
    if (h->watch[i].due) {
      sse_sub *s = h->watch[i].s;
      watch_drop(h, s);
      return s;
    }
  return NULL;
}

sse_sub *sse_hub_any_sub(const sse_hub *h) {
  if (!list_empty(&h->subs)) return container_of(h->subs.next, sse_sub, node);
  if (!list_empty(&h->gone)) return container_of(h->gone.next, sse_sub, node);
  return NULL;
}

void sse_hub_set_turns(sse_hub *h, int on) { h->turns = on != 0 || h->loop; }
int sse_hub_turns(const sse_hub *h) { return h->turns; }
size_t sse_hub_draining(const sse_hub *h) { return h->ndraining; }
int sse_hub_busy(const sse_hub *h) {
  return !list_empty(&h->dirty) || !list_empty(&h->ready) || !list_empty(&h->closed) || h->ndue;
}

int sse_sub_is_subscribed(const sse_sub *s, const char *topic, size_t len) {
  for (sse_membership *m = s->topics; m; m = m->next_of_sub)
    if (m->topic->len == len && memcmp(m->topic->name, topic, len) == 0) return 1;
  return 0;
}

void sse_sub_each_topic(const sse_sub *s, void (*fn)(const char *, size_t, void *), void *ud) {
  for (sse_membership *m = s->topics; m; m = m->next_of_sub) fn(m->topic->name, m->topic->len, ud);
}

int sse_hub_subscribe(sse_sub *s, const char *topic, size_t len) {
  sse_hub *h = s->hub;
  if (!h || !s->registered) return SSE_HUB_ECLOSED;
  if (sse_sub_is_subscribed(s, topic, len)) return 0;
  sse_membership *m = malloc(sizeof *m);
  if (!m) return SSE_HUB_ENOMEM;
  sse_topic *t = topic_get(h, topic, len);
  if (!t) {
    free(m);
    return SSE_HUB_ENOMEM;
  }
  m->sub = s;
  m->topic = t;
  list_push(&t->members, &m->topic_node);
  t->count++;
  m->next_of_sub = s->topics;
  s->topics = m;
  s->ntopics++;
  return 1;
}

int sse_hub_unsubscribe(sse_sub *s, const char *topic, size_t len) {
  for (sse_membership **p = &s->topics; *p; p = &(*p)->next_of_sub) {
    sse_membership *m = *p;
    if (m->topic->len == len && memcmp(m->topic->name, topic, len) == 0) {
      *p = m->next_of_sub;
      list_unlink(&m->topic_node);
      if (--m->topic->count == 0) topic_drop(s->hub, m->topic);
      free(m);
      s->ntopics--;
      return 1;
    }
  }
  return 0;
}

/* --- queueing ------------------------------------------------------------ */

/* Index of the first frame that may be dropped: not held by a write, not
 * partly written, not replayed (nor queued before the replay). */
static uint32_t first_droppable(const sse_sub *s) {
  uint32_t first = s->inflight;
  if (s->qoff && first < 1) first = 1;
  if (s->exempt_n > first) first = s->exempt_n;
  return first;
}

/* Removes the frame at index i by shifting the frames before it one place
 * towards the tail (i >= first_droppable, so no head state changes). */
static void q_remove_at(sse_sub *s, uint32_t i) {
  sse_frame *f = q_at(s, i);
  if (i < s->gz_raw_n) s->gz_raw_n--;
  for (uint32_t k = i; k > 0; k--) s->q[q_idx(s, k)] = q_at(s, k - 1);
  s->qhead = q_idx(s, 1);
  s->qlen--;
  s->queued -= f->len;
  sse_frame_unref(f);
}

/* Drop-oldest: frees room for need bytes. The gap event is a frame that
 * sits first among the droppable ones and counts every frame dropped since
 * the client last received one; it is replaced, never stacked. Returns 0,
 * or -1 on ENOMEM (the outbox is consistent, maybe with frames dropped). */
static int drop_for(sse_sub *s, size_t need) {
  uint32_t first = first_droppable(s);
  /* a gap frame still unsent stays first: it is removed and remade (one
   * before first is being written, or exempt: the client gets it as is) */
  int remade = s->qlen > first && is_gap_frame(q_at(s, first));
  if (!remade) s->gap_dropped = 0;
  while (counted(s) + need + GAP_RESERVE > s->limit && s->qlen > first) {
    int was_gap = is_gap_frame(q_at(s, first)); /* remade below, not counted */
    q_remove_at(s, first);
    if (was_gap) continue;
    s->gap_dropped++;
    s->dropped++;
    if (s->hub) s->hub->ctr.dropped++;
  }
  if (s->gap_dropped == 0) return 0;
  sse_frame *g = sse_gap_frame(NULL, 0, NULL, 0, NULL, 0, (int64_t)s->gap_dropped);
  if (!g) return -1;
  g->seq = GAP_SEQ; /* before the twin is made: it copies the seq */
  g = own_mode_frame(s, g);
  if (!g) return -1;
  if (q_reserve(s) != 0) {
    sse_frame_unref(g);
    return -1;
  }
  q_insert(s, first, g);
  if (!remade && s->hub) s->hub->ctr.gaps_dropped++;
  return 0;
}

static void sub_write(sse_sub *s);

int sse_sub_push(sse_sub *s, sse_frame *f, double now) {
  if (s->state != SSE_SUB_OPEN) return 0;
  f = mode_frame(s, f);
  if (!f) {
    sub_fail(s, SSE_CLOSE_SLOW, UV_ENOMEM);
    return 0;
  }
  /* A burst that fills the outbox, or SSE_EARLY_WRITE_FRAMES frames, within
   * one loop turn: write now (before judging the subscriber slow), so a burst
   * costs one write per that many frames and the queue stays short. */
  if (s->stream && !(s->flags & (F_WRITING | F_REPLAYING)) &&
      (s->qlen >= SSE_EARLY_WRITE_FRAMES || s->queued + f->len > s->limit)) {
    sub_write(s);
    if (s->state != SSE_SUB_OPEN) return 0;
  }
  size_t held = counted(s);
  if (held > 0 && held + f->len > s->limit) {
    if (s->policy == SSE_SLOW_CLOSE) {
      sub_fail(s, SSE_CLOSE_SLOW, 0);
      return 0;
    }
    if (drop_for(s, f->len) != 0) {
      sub_fail(s, SSE_CLOSE_SLOW, UV_ENOMEM);
      return 0;
    }
  }
  if (q_reserve(s) != 0) {
    sub_fail(s, SSE_CLOSE_SLOW, UV_ENOMEM);
    return 0;
  }
  s->q[q_idx(s, s->qlen)] = sse_frame_ref(f);
  s->qlen++;
  s->queued += f->len;
  s->t.last_active = now;
  mark_pending(s);
  return 1;
}

int sse_sub_push_head(sse_sub *s, sse_frame *f) {
  if (s->state != SSE_SUB_OPEN) return SSE_HUB_ECLOSED;
  if ((s->flags & F_REPLAYING) || s->exempt_n != s->qlen) return SSE_HUB_EINVAL;
  if (q_reserve(s) != 0) return SSE_HUB_ENOMEM;
  s->q[q_idx(s, s->qlen)] = sse_frame_ref(f);
  s->qlen++;
  s->queued += f->len;
  s->exempt_n++; /* like a replay: not counted, never dropped */
  s->exempt_bytes += f->len;
  mark_pending(s);
  return 0;
}

size_t sse_hub_publish(sse_hub *h, sse_frame *f, const char *topic, size_t len, double now) {
  size_t n = 0;
  if (!topic) {
    for (sse_link *l = h->subs.next; l != &h->subs;) {
      sse_sub *s = container_of(l, sse_sub, node);
      l = l->next; /* a push never moves s out of subs */
      n += (size_t)sse_sub_push(s, f, now);
    }
    return n;
  }
  sse_topic *t = topic_find(h, topic, len, hash_name(topic, len));
  if (!t) return 0;
  for (sse_link *l = t->members.next; l != &t->members; l = l->next) {
    sse_membership *m = container_of(l, sse_membership, topic_node);
    n += (size_t)sse_sub_push(m->sub, f, now);
  }
  return n;
}

size_t sse_hub_keepalive(sse_hub *h, sse_frame *f, double now, double idle) {
  size_t n = 0;
  for (sse_link *l = h->subs.next; l != &h->subs; l = l->next) {
    sse_sub *s = container_of(l, sse_sub, node);
    if (s->state == SSE_SUB_OPEN && s->t.last_active <= now - idle)
      n += (size_t)sse_sub_push(s, f, now);
  }
  return n;
}

/* --- replaying ------------------------------------------------------------ */

void sse_sub_replay_begin(sse_sub *s) {
  if (s->state != SSE_SUB_OPEN || (s->flags & F_REPLAYING)) return;
  s->flags |= F_REPLAYING;
  s->hold = s->qlen;
  s->replay_extra = 0;
  /* what is queued already (the response head, a retry line) goes first
   * and, like the replay, does not count against the limit */
  s->exempt_n = s->qlen;
  s->exempt_bytes = 0;
  for (uint32_t i = 0; i < s->qlen; i++) s->exempt_bytes += q_at(s, i)->len;
}

int sse_sub_replay_reserve(sse_sub *s, size_t n) {
  if (!(s->flags & F_REPLAYING) || s->state == SSE_SUB_CLOSED) return 0;
  if (n > SSE_REPLAY_RESERVE_MAX) n = SSE_REPLAY_RESERVE_MAX;
  return q_grow(s, (uint32_t)n) == 0 ? 0 : SSE_HUB_ENOMEM;
}

int sse_sub_replay_frame(sse_sub *s, sse_frame *f) {
  if (s->state == SSE_SUB_CLOSED) return SSE_HUB_ECLOSED;
  if (!(s->flags & F_REPLAYING)) return SSE_HUB_EINVAL;
  f = mode_frame(s, f);
  if (!f || q_reserve(s) != 0) return SSE_HUB_ENOMEM;
  q_insert(s, s->exempt_n, sse_frame_ref(f));
  s->exempt_n++;
  s->exempt_bytes += f->len;
  return 0;
}

int sse_sub_replay_joined(sse_sub *s, sse_frame *f, size_t nevents) {
  if (nevents == 0 || nevents - 1 > UINT32_MAX - s->replay_extra) return SSE_HUB_EINVAL;
  int rc = sse_sub_replay_frame(s, f);
  if (rc == 0) s->replay_extra += (uint32_t)(nevents - 1);
  return rc;
}

void sse_sub_replay_end(sse_sub *s, uint64_t upto, sse_frame *gap) {
  if (!(s->flags & F_REPLAYING) || s->state == SSE_SUB_CLOSED) {
    s->flags &= (uint8_t)~F_REPLAYING;
    sse_frame_unref(gap);
    return;
  }
  /* the live frames that waited: drop those the replay covered */
  uint32_t j = s->exempt_n;
  for (uint32_t i = s->exempt_n; i < s->qlen; i++) {
    sse_frame *f = q_at(s, i);
    if (f->seq && !is_gap_frame(f) && f->seq <= upto) {
      s->queued -= f->len;
      sse_frame_unref(f);
    } else {
      s->q[q_idx(s, j++)] = f;
    }
  }
  s->qlen = j;
  if (s->gz_raw_n > s->qlen) s->gz_raw_n = s->qlen;
  if (gap) gap = own_mode_frame(s, gap);
  if (gap) {
    if (q_reserve(s) == 0) {
      q_insert(s, s->hold, gap);
      s->exempt_n++;
      s->exempt_bytes += gap->len;
      if (s->hub) s->hub->ctr.gaps_replay++;
    } else {
      sse_frame_unref(gap); /* out of memory: the replay still goes out */
    }
  }
  s->flags &= (uint8_t)~F_REPLAYING;
  s->hold = 0;
  mark_pending(s);
}

/* --- closing -------------------------------------------------------------- */

int sse_sub_close(sse_sub *s, int graceful, double now, double grace) {
  if (s->state == SSE_SUB_CLOSED) return 0;
  if (s->state == SSE_SUB_DRAINING) {
    if (graceful) return 1;
    if (s->hub) s->hub->ndraining--;
    s->state = SSE_SUB_CLOSED;
    q_release_unsent(s);
    set_list(s, IN_NONE);
    return 0;
  }
  s->reason = SSE_CLOSE_OWNER;
  if (s->flags & F_REPLAYING) {
    /* the rest of the replay never came: what waited behind it must not go
     * out (the client would resume past the events it did not get); the
     * replayed part (the exempt frames) is a consistent prefix and stays */
    while (s->qlen > s->exempt_n && s->qlen > s->inflight) {
      sse_frame *f = q_at(s, s->qlen - 1);
      s->queued -= f->len;
      sse_frame_unref(f);
      s->qlen--;
    }
    s->flags &= (uint8_t)~F_REPLAYING;
    s->hold = 0;
  }
  leave_fanout(s);
  if (graceful && s->hub && sse_sub_has_rest(s)) {
    s->state = SSE_SUB_DRAINING;
    s->t.deadline = now + grace;
    s->hub->ndraining++;
    if (s->hub->loop && !uv_is_active((uv_handle_t *)&s->hub->loop->timer))
      uv_timer_start(&s->hub->loop->timer, on_timer, DRAIN_TICK_MS, DRAIN_TICK_MS);
    s->flags &= (uint8_t)~F_ANNOUNCED;
    mark_pending(s);
    if (s->gz && s->list == IN_NONE) set_list(s, IN_DIRTY); /* the trailer is written by a flush */
    return 1;
  }
  s->state = SSE_SUB_CLOSED;
  q_release_unsent(s);
  set_list(s, IN_NONE);
  drain_note(s);
  return 0;
}

/* --- writing ------------------------------------------------------------ */

/* Fills bufs with the writable head frames: at most SSE_BATCH_FRAMES and,
 * past the first frame, at most max_bytes. Returns the count; *bytes the
 * sum. */
static uint32_t fill_bufs(const sse_sub *s, uv_buf_t *bufs, size_t max_bytes, size_t *bytes) {
  uint32_t lim = writable_n(s);
  if (s->gz && lim > s->gz_raw_n) lim = s->gz_raw_n; /* the rest goes through gzip */
  if (lim > SSE_BATCH_FRAMES) lim = SSE_BATCH_FRAMES;
  size_t total = 0;
  uint32_t n = 0;
  for (; n < lim; n++) {
    sse_frame *f = q_at(s, n);
    size_t off = n == 0 ? s->qoff : 0;
    size_t len = f->len - off;
    if (n > 0 && total + len > max_bytes) break;
    bufs[n] = uv_buf_init(f->bytes + off, (unsigned int)len);
    total += len;
  }
  *bytes = total;
  return n;
}

/* A try-write that cannot raise SIGPIPE: on a socket whose libuv write
 * queue is empty, sendmsg with MSG_NOSIGNAL; otherwise uv_try_write.
 * Returns bytes written, 0 (would block), or a negative libuv error. */
static int sub_try_write(sse_sub *s, const uv_buf_t *bufs, uint32_t n) {
#if defined(MSG_NOSIGNAL) && !defined(_WIN32)
  uv_os_fd_t fd;
  if (!(s->flags & F_NOSOCK) && uv_stream_get_write_queue_size(s->stream) == 0 &&
      uv_fileno((uv_handle_t *)s->stream, &fd) == 0) {
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *)(void *)bufs; /* uv_buf_t is an iovec on Unix */
    msg.msg_iovlen = n;
    ssize_t r;
    do r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r >= 0) return r > INT32_MAX ? INT32_MAX : (int)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != ENOTSOCK) return -errno; /* libuv's codes are -errno on Unix */
    s->flags |= F_NOSOCK;                 /* a pipe: libuv from now on */
  }
#endif
  int r = uv_try_write(s->stream, bufs, n);
  if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
  return r;
}

static void on_write(uv_write_t *req, int status);

/* A turn's share of a subscriber's writes: at most half the outbox bound
 * (what a write holds cannot be dropped, so drop_oldest can keep the outbox
 * within it) and SSE_TURN_BYTES, doubled for each consecutive turn that
 * ended with a backlog left (up to SSE_TURN_BYTES << SSE_TURN_GROW): the
 * first share of a burst is small, so every subscriber gets its first
 * events early; a long backlog then goes in fewer, larger writes. */
static size_t turn_share(const sse_sub *s) {
  size_t share = (size_t)SSE_TURN_BYTES << s->share_shift;
  return s->limit / 2 < share ? s->limit / 2 : share;
}

/* After a write the socket took whole: 1 when s is done for this turn (its
 * outbox is empty: the share starts small again; or, one_share, its share
 * is used: the next is larger and the rest waits for the next flush), 0 to
 * write on. */
static int turn_done(sse_sub *s, int one_share) {
  if (writable_n(s) == 0) {
    s->share_shift = 0;
    q_trim(s);
    drain_check(s);
    return 1;
  }
  if (!one_share) return 0;
  if (s->share_shift < SSE_TURN_GROW) s->share_shift++;
  mark_pending(s);
  return 1;
}

/* n compressed bytes were written (or taken by a write that completed). */
static void gz_sent(sse_sub *s, size_t n) {
  sse_gz_consume(s->gz, n);
  s->bytes_sent += n;
  if (s->hub) s->hub->ctr.bytes_sent += n;
  if (s->flags & F_DRAIN_WATCH) drain_note(s);
}

/* Compresses the next batch of writable frames (at most SSE_BATCH_FRAMES,
 * a turn's share of input past the first) with one sync flush, and takes
 * them out of the outbox: their bytes are now the compressor's output.
 * 0, or -1 when zlib failed (out of memory). */
static int gz_fill(sse_sub *s, uint32_t n) {
  const char *p[SSE_BATCH_FRAMES] = {NULL};
  size_t len[SSE_BATCH_FRAMES] = {0};
  size_t total = 0, max = turn_share(s);
  uint32_t k = 0;
  assert(s->qoff == 0 && s->inflight == 0); /* no frame is half written: raw ones went first */
  if (n > SSE_BATCH_FRAMES) n = SSE_BATCH_FRAMES;
  for (; k < n; k++) {
    sse_frame *f = q_at(s, k);
    if (k > 0 && total + f->len > max) break;
    p[k] = f->bytes;
    len[k] = f->len;
    total += f->len;
  }
  const char *out;
  size_t olen;
  if (sse_gz_write(s->gz, p, len, k, &out, &olen) != 0) return -1;
  for (uint32_t i = 0; i < k; i++) {
    s->queued -= q_at(s, 0)->len;
    q_pop_head(s);
  }
  if (s->hub) {
    s->hub->ctr.gzip_in += total;
    s->hub->ctr.gzip_out += olen;
  }
  return 0;
}

/* sub_write for a gzip subscriber past its raw head: compress a batch when
 * the previous one is out, write the compressed bytes (try, then one
 * uv_write for the rest). Frames queued in one loop turn are compressed
 * together, so the sync flush happens once per flush of the hub. */
static void gz_write(sse_sub *s) {
  if (uv_is_closing((uv_handle_t *)s->stream)) {
    sub_fail(s, SSE_CLOSE_WRITE, UV_ECANCELED);
    return;
  }
  int one_share = s->hub && s->hub->turns;
  uv_buf_t b;
  for (;;) {
    if (sse_gz_pending(s->gz) == 0) {
      uint32_t n = writable_n(s);
      if (n == 0) {
        q_trim(s);
        drain_check(s);
        return;
      }
      if (gz_fill(s, n) != 0) {
        sub_fail(s, SSE_CLOSE_WRITE, UV_ENOMEM);
        return;
      }
    }
    b = uv_buf_init((char *)sse_gz_data(s->gz), (unsigned int)sse_gz_pending(s->gz));
    int r = sub_try_write(s, &b, 1);
    if (r < 0) {
      sub_fail(s, SSE_CLOSE_WRITE, r);
      return;
    }
    if (r > 0) gz_sent(s, (size_t)r);
    if (sse_gz_pending(s->gz) > 0) break; /* the socket is full */
    if (turn_done(s, one_share)) return;
  }
  b = uv_buf_init((char *)sse_gz_data(s->gz), (unsigned int)sse_gz_pending(s->gz));
  uv_write_t *req = malloc(sizeof *req);
  if (!req) {
    sub_fail(s, SSE_CLOSE_WRITE, UV_ENOMEM);
    return;
  }
  req->data = s;
  s->inflight = 0;
  s->gz_inflight = (uint32_t)b.len; /* at most a turn's share */
  s->flags |= F_WRITING;
  int r = uv_write(req, s->stream, &b, 1, on_write);
  if (r < 0) {
    free(req);
    s->flags &= (uint8_t)~F_WRITING;
    s->gz_inflight = 0;
    sub_fail(s, SSE_CLOSE_WRITE, r);
  }
}

static void sub_write(sse_sub *s) {
  if ((s->flags & F_WRITING) || s->state == SSE_SUB_CLOSED || !s->stream) return;
  if (s->gz && s->gz_raw_n == 0) {
    gz_write(s);
    return;
  }
  if (writable_n(s) == 0) {
    drain_check(s);
    return;
  }
  if (uv_is_closing((uv_handle_t *)s->stream)) {
    sub_fail(s, SSE_CLOSE_WRITE, UV_ECANCELED);
    return;
  }
  uv_buf_t bufs[SSE_BATCH_FRAMES];
  size_t chunk;
  size_t turn = turn_share(s);
  /* with a loop, one share per flush so that backlogs interleave; without
   * one (nothing would come back for the rest), until the socket is full */
  int one_share = s->hub && s->hub->turns;
  uint32_t n;
  int r;
  for (;;) {
    n = fill_bufs(s, bufs, turn, &chunk);
    r = sub_try_write(s, bufs, n);
    if (r < 0) {
      sub_fail(s, SSE_CLOSE_WRITE, r);
      return;
    }
    if (r > 0) q_consume(s, (size_t)r);
    if ((size_t)r != chunk) break;
    if (s->gz && s->gz_raw_n == 0) { /* the head is out: the rest is compressed */
      gz_write(s);
      return;
    }
    if (turn_done(s, one_share)) return;
  }
  size_t rest;
  n = fill_bufs(s, bufs, chunk - (size_t)r, &rest);
  uv_write_t *req = malloc(sizeof *req);
  if (!req) {
    sub_fail(s, SSE_CLOSE_WRITE, UV_ENOMEM);
    return;
  }
  req->data = s;
  s->inflight = n;
  s->flags |= F_WRITING;
  r = uv_write(req, s->stream, bufs, n, on_write);
  if (r < 0) {
    free(req);
    s->flags &= (uint8_t)~F_WRITING;
    s->inflight = 0;
    sub_fail(s, SSE_CLOSE_WRITE, r);
  }
}

static void on_write(uv_write_t *req, int status) {
  sse_sub *s = req->data;
  uint32_t n = s->inflight;
  size_t zn = s->gz_inflight;
  free(req);
  s->flags &= (uint8_t)~F_WRITING;
  s->inflight = 0;
  s->gz_inflight = 0;
  if (s->flags & F_ORPHANED) {
    sub_destroy(s);
    return;
  }
  if (status < 0 || s->state == SSE_SUB_CLOSED) {
    if (s->state != SSE_SUB_CLOSED) sub_fail(s, SSE_CLOSE_WRITE, status);
    q_release_unsent(s); /* the frames the write held, too */
    return;
  }
  size_t bytes = 0;
  for (uint32_t i = 0; i < n; i++) bytes += q_at(s, i)->len;
  q_consume(s, bytes - s->qoff);
  if (zn) gz_sent(s, zn);
  if (writable_n(s)) {
    /* the next flush writes the rest; with no loop to run one, now */
    if (s->hub && s->hub->turns) mark_pending(s);
    else sub_write(s);
  }
  else {
    q_trim(s);
    drain_check(s);
  }
}

void sse_sub_flush(sse_sub *s) {
  if (s->list == IN_DIRTY) set_list(s, IN_NONE);
  sub_write(s);
}

size_t sse_hub_flush(sse_hub *h, double now) {
  size_t n = 0;
  sse_link batch;
  list_move_all(&h->dirty, &batch); /* subs re-dirtied now wait for the next turn */
  while (!list_empty(&batch)) {
    sse_sub *s = container_of(batch.next, sse_sub, lnode);
    list_unlink(&s->lnode);
    s->list = IN_NONE;
    sub_write(s); /* may put s on dirty (more to write) or closed */
    n++;
  }
  if (h->ndraining) {
    for (sse_link *l = h->gone.next; l != &h->gone;) {
      sse_sub *s = container_of(l, sse_sub, node);
      l = l->next;
      if (s->state == SSE_SUB_DRAINING && s->t.deadline <= now)
        sub_fail(s, SSE_CLOSE_TIMEOUT, 0);
    }
  }
  if (h->ndraining == 0 && h->loop) uv_timer_stop(&h->loop->timer);
  return n;
}

static sse_sub *pop_list(sse_link *l) {
  if (list_empty(l)) return NULL;
  sse_sub *s = container_of(l->next, sse_sub, lnode);
  list_unlink(&s->lnode);
  s->list = IN_NONE;
  return s;
}

sse_sub *sse_hub_next_ready(sse_hub *h) { return pop_list(&h->ready); }

sse_sub *sse_hub_next_closed(sse_hub *h) {
  sse_sub *s = pop_list(&h->closed);
  if (s) s->list = IN_CLOSED; /* stays "reported": nothing re-queues it */
  return s;
}

size_t sse_sub_take_size(const sse_sub *s) {
  if (!(s->flags & F_REPLAYING)) return s->queued;
  size_t n = 0;
  for (uint32_t i = 0; i < s->hold; i++) n += q_at(s, i)->len;
  return n - (s->hold ? s->qoff : 0);
}

size_t sse_sub_take(sse_sub *s, char *buf) {
  size_t n = 0;
  uint32_t k = writable_n(s);
  while (k-- > 0 && s->qlen > s->inflight) {
    sse_frame *f = q_at(s, 0);
    size_t len = f->len - s->qoff;
    memcpy(buf + n, f->bytes + s->qoff, len);
    n += len;
    s->queued -= len;
    s->qoff = 0;
    q_pop_head(s);
  }
  s->bytes_sent += n;
  if (s->hub) s->hub->ctr.bytes_sent += n;
  s->flags &= (uint8_t)~F_ANNOUNCED;
  if (s->list == IN_READY) set_list(s, IN_NONE);
  q_trim(s);
  drain_check(s);
  if (s->flags & F_DRAIN_WATCH) drain_note(s);
  return n;
}

size_t sse_hub_count(const sse_hub *h) { return h->nsubs; }
void sse_hub_get_counters(const sse_hub *h, sse_hub_counters *c) { *c = h->ctr; }
size_t sse_hub_topics(const sse_hub *h) { return h->ntopics; }

size_t sse_hub_topic_count(const sse_hub *h, const char *topic, size_t len) {
  sse_topic *t = topic_find(h, topic, len, hash_name(topic, len));
  return t ? t->count : 0;
}

void sse_hub_each_topic(const sse_hub *h,
                        void (*fn)(const char *, size_t, size_t, void *), void *ud) {
  for (size_t i = 0; i < h->nbuckets; i++)
    for (sse_topic *t = h->buckets[i]; t; t = t->next) fn(t->name, t->len, t->count, ud);
}

void sse_hub_each_sub(const sse_hub *h, void (*fn)(sse_sub *, void *), void *ud) {
  for (sse_link *l = h->subs.next; l != &h->subs; l = l->next)
    fn(container_of(l, sse_sub, node), ud);
}

/* --- self-check (tests and the fuzzer) ---------------------------------- */

static int linked(const sse_link *n) { return n->next != n; }

const char *sse_sub_check(const sse_sub *s) {
  if (s->qlen > s->qcap || (s->qcap & (s->qcap - 1)) || (!s->q) != (s->qcap == 0))
    return "outbox array";
  size_t sum = 0, ex = 0;
  int gaps = 0;
  for (uint32_t i = 0; i < s->qlen; i++) {
    const sse_frame *f = q_at(s, i);
    if (f->refs == 0) return "a queued frame has no reference";
    sum += f->len;
    if (i < s->exempt_n) ex += f->len;
    if (is_gap_frame(f) && i > first_droppable(s)) return "a gap frame behind the droppable head";
    if (is_gap_frame(f) && i == first_droppable(s)) gaps++;
  }
  if (s->qlen ? s->qoff >= q_at(s, 0)->len : s->qoff != 0) return "qoff";
  if (sum - s->qoff != s->queued) return "queued != the frames' bytes";
  if (s->exempt_n > s->qlen || ex != s->exempt_bytes) return "exempt frames";
  if (s->hold > s->qlen || (!(s->flags & F_REPLAYING) && s->hold)) return "hold";
  if (s->inflight > s->qlen || (s->inflight && !(s->flags & F_WRITING))) return "inflight";
  if (s->gz_raw_n > s->qlen || (!s->gz && s->gz_raw_n)) return "gz_raw_n";
  if (gaps > 1) return "two droppable gap frames";
  if (s->state == SSE_SUB_CLOSED && s->qlen != s->inflight)
    return "a closed sub holds unsent frames";
  if (s->state == SSE_SUB_DRAINING && s->registered) return "a draining sub is registered";
  if (s->state != SSE_SUB_OPEN && (s->flags & F_REPLAYING)) return "replaying when not open";
  if (!s->hub && (s->flags & F_DRAIN_WATCH)) return "a hubless sub has a drain watch";
  if (s->hub && (s->flags & F_DRAIN_WATCH) && !watch_of(s->hub, s)) return "drain watch flag";
  if (!s->hub && (s->registered || s->id || s->list != IN_NONE || linked(&s->node)))
    return "hubless sub in a hub's lists";
  if (s->list == IN_NONE ? linked(&s->lnode) : (!linked(&s->lnode) && s->list != IN_CLOSED))
    return "list field";
  uint32_t nt = 0;
  for (const sse_membership *m = s->topics; m; m = m->next_of_sub) {
    if (m->sub != s || !s->registered) return "membership";
    nt++;
  }
  if (nt != s->ntopics) return "ntopics";
  return NULL;
}

const char *sse_hub_check(const sse_hub *h) {
  size_t n = 0, draining = 0;
  for (const sse_link *l = h->subs.next; l != &h->subs; l = l->next) {
    const sse_sub *s = container_of(l, sse_sub, node);
    if (!s->registered || s->hub != h || s->state == SSE_SUB_DRAINING) return "subs list";
    n++;
  }
  if (n != h->nsubs) return "nsubs";
  for (const sse_link *l = h->gone.next; l != &h->gone; l = l->next) {
    const sse_sub *s = container_of(l, sse_sub, node);
    if (s->registered || s->hub != h) return "gone list";
    if (s->state == SSE_SUB_DRAINING) draining++;
  }
  if (draining != h->ndraining) return "ndraining";
  const sse_link *lists[3] = {&h->dirty, &h->ready, &h->closed};
  for (int i = 0; i < 3; i++)
    for (const sse_link *l = lists[i]->next; l != lists[i]; l = l->next) {
      const sse_sub *s = container_of(l, sse_sub, lnode);
      if (s->hub != h || s->list != i + 1) return "dirty/ready/closed list";
    }
  size_t nt = 0;
  for (size_t i = 0; i < h->nbuckets; i++)
    for (const sse_topic *t = h->buckets[i]; t; t = t->next) {
      size_t c = 0;
      for (const sse_link *l = t->members.next; l != &t->members; l = l->next) {
        const sse_membership *m = container_of(l, sse_membership, topic_node);
        if (m->topic != t || m->sub->hub != h || !m->sub->registered) return "topic member";
        c++;
      }
      if (c != t->count || c == 0) return "topic count";
      nt++;
    }
  if (nt != h->ntopics) return "ntopics";
  uint32_t due = 0;
  for (uint32_t i = 0; i < h->nwatch; i++) {
    const sse_sub *s = h->watch[i].s;
    if (s->hub != h || !(s->flags & F_DRAIN_WATCH)) return "drain watch";
    due += h->watch[i].due != 0;
  }
  if (due != h->ndue) return "ndue";
  return NULL;
}

sse_frame *sse_sub_frame_at(const sse_sub *s, size_t i) {
  return i < s->qlen ? q_at(s, (uint32_t)i) : NULL;
}
