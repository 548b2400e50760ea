/* hub.c - subscribers, topics, bounded outboxes and coalesced writes (hub.h). */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IOV 64          /* frames per write; more wait for the next write */
#define MIN_QCAP 4
#define GAP_RESERVE 64      /* room kept for the gap event when dropping */

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

/* Which list a sub's dirty_node is in. */
enum { IN_NONE = 0, IN_DIRTY = 1, IN_DEAD = 2, IN_READY = 3 };

struct sse_hub {
  sse_link subs;
  size_t nsubs;
  sse_link dirty, dead, ready;
  sse_topic **buckets;
  size_t nbuckets, ntopics;
};

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

static sse_frame *q_at(const sse_sub *s, uint32_t i) {
  return s->q[(s->qhead + i) & (s->qcap - 1)];
}

/* Makes room for one more frame; 0, or -1 (outbox unchanged) on ENOMEM. */
static int q_reserve(sse_sub *s) {
  if (s->qlen < s->qcap) return 0;
  uint32_t cap = s->qcap ? s->qcap * 2 : MIN_QCAP;
  sse_frame **q = malloc(cap * sizeof *q);
  if (!q) return -1;
  for (uint32_t i = 0; i < s->qlen; i++) q[i] = q_at(s, i);
  free(s->q);
  s->q = q;
  s->qcap = cap;
  s->qhead = 0;
  return 0;
}

/* Queued bytes that count against the limit: all but the unsent part of
 * the exempt replay frame. */
static size_t counted(const sse_sub *s) {
  if (!s->exempt) return s->queued;
  size_t unsent = s->exempt->len;
  if (s->qlen && q_at(s, 0) == s->exempt) unsent -= s->qoff;
  return s->queued - unsent;
}

/* The gap events drop_oldest makes are frames marked by this seq. */
#define GAP_SEQ UINT64_MAX
static int is_gap_frame(const sse_frame *f) { return f->seq == GAP_SEQ; }

/* Forgets the exempt frame once it left the outbox (written, taken or
 * released): drops the reference it held. */
static void exempt_check(sse_sub *s) {
  if (!s->exempt) return;
  for (uint32_t i = 0; i < s->qlen; i++)
    if (q_at(s, i) == s->exempt) return;
  sse_frame_unref(s->exempt);
  s->exempt = NULL;
}

static void q_pop_head(sse_sub *s) {
  s->qhead = (s->qhead + 1) & (s->qcap - 1);
  s->qlen--;
}

/* Frees the array of an empty outbox. */
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
    uint32_t last = (s->qhead + s->qlen - 1) & (s->qcap - 1);
    sse_frame_unref(s->q[last]);
    s->qlen--;
  }
  if (s->inflight == 0) s->qoff = 0;
  s->queued = 0;
  for (uint32_t i = 0; i < s->qlen; i++) s->queued += q_at(s, i)->len;
  if (s->qlen) s->queued -= s->qoff;
  exempt_check(s);
  if (s->qlen == 0 && s->q) q_free_array(s);
}

/* Shrinks a drained outbox that grew during a burst. */
static void q_trim(sse_sub *s) {
  if (s->qlen == 0 && s->qcap > MIN_QCAP * 4) q_free_array(s);
}

static void set_list(sse_sub *s, int which) {
  if (s->dirty != IN_NONE) list_unlink(&s->dirty_node);
  s->dirty = (uint8_t)which;
  if (!s->hub || which == IN_NONE) { s->dirty = IN_NONE; return; }
  sse_link *l = which == IN_DIRTY ? &s->hub->dirty : which == IN_DEAD ? &s->hub->dead : &s->hub->ready;
  list_push(l, &s->dirty_node);
}

static void sub_fail(sse_sub *s, int why, int uv_err) {
  if (s->state != SSE_SUB_OPEN) return;
  s->state = SSE_SUB_FAILED;
  s->fail = (uint8_t)why;
  s->uv_err = uv_err;
  q_release_unsent(s);
  set_list(s, IN_DEAD);
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
  list_init(&s->dirty_node);
  return s;
}

void sse_sub_detach(sse_sub *s) {
  if (s->state == SSE_SUB_OPEN || s->state == SSE_SUB_FAILED) s->state = SSE_SUB_CLOSED;
  q_release_unsent(s);
  set_list(s, IN_NONE);
  if (!s->writing) s->stream = NULL;
}

static void sub_destroy(sse_sub *s) {
  while (s->qlen) {
    sse_frame_unref(q_at(s, 0));
    q_pop_head(s);
  }
  sse_frame_unref(s->exempt);
  free(s->q);
  free(s);
}

void sse_sub_free(sse_sub *s) {
  if (!s) return;
  sse_hub_remove(s);
  sse_sub_detach(s);
  if (s->writing) s->orphaned = 1; /* on_write frees it */
  else sub_destroy(s);
}

/* --- hub ---------------------------------------------------------------- */

sse_hub *sse_hub_new(void) {
  sse_hub *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  list_init(&h->subs);
  list_init(&h->dirty);
  list_init(&h->dead);
  list_init(&h->ready);
  return h;
}

void sse_hub_free(sse_hub *h) {
  if (!h) return;
  while (!list_empty(&h->subs)) sse_hub_remove(container_of(h->subs.next, sse_sub, node));
  for (size_t i = 0; i < h->nbuckets; i++) {
    sse_topic *t = h->buckets[i];
    while (t) {
      sse_topic *next = t->next;
      free(t);
      t = next;
    }
  }
  free(h->buckets);
  free(h);
}

int sse_hub_add(sse_hub *h, sse_sub *s, uint32_t id) {
  if (s->hub == h) return 0;
  if (s->hub || id == 0) return -1;
  s->hub = h;
  s->id = id;
  list_push(&h->subs, &s->node);
  h->nsubs++;
  if (s->state == SSE_SUB_FAILED) set_list(s, IN_DEAD);
  else if (s->qlen > s->inflight) set_list(s, s->stream ? IN_DIRTY : IN_READY);
  return 0;
}

void sse_hub_remove(sse_sub *s) {
  sse_hub *h = s->hub;
  if (!h) return;
  while (s->topics) {
    sse_membership *m = s->topics;
    s->topics = m->next_of_sub;
    list_unlink(&m->topic_node);
    if (--m->topic->count == 0) topic_drop(h, m->topic);
    free(m);
  }
  s->ntopics = 0;
  set_list(s, IN_NONE);
  list_unlink(&s->node);
  h->nsubs--;
  s->hub = NULL;
}

int sse_sub_is_subscribed(const sse_sub *s, const char *topic, size_t len) {
  for (sse_membership *m = s->topics; m; m = m->next_of_sub)
    if (m->topic->len == len && memcmp(m->topic->name, topic, len) == 0) return 1;
  return 0;
}

int sse_hub_subscribe(sse_sub *s, const char *topic, size_t len) {
  sse_hub *h = s->hub;
  if (!h) return -1;
  if (sse_sub_is_subscribed(s, topic, len)) return 0;
  sse_membership *m = malloc(sizeof *m);
  if (!m) return UV_ENOMEM;
  sse_topic *t = topic_get(h, topic, len);
  if (!t) {
    free(m);
    return UV_ENOMEM;
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

size_t sse_gap_drop_event(uint64_t dropped, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "event: sse-gap\ndata: {\"dropped\":%llu}\n\n",
                   (unsigned long long)dropped);
  return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

/* Index of the first frame that may be dropped: not held by a write, not
 * partly written. */
static uint32_t first_droppable(const sse_sub *s) {
  if (s->inflight) return s->inflight;
  return s->qoff ? 1 : 0;
}

/* Removes the frame at index i (i >= first_droppable) by shifting the
 * frames before it one place towards the tail. */
static void q_remove_at(sse_sub *s, uint32_t i) {
  sse_frame *f = q_at(s, i);
  for (uint32_t k = i; k > 0; k--)
    s->q[(s->qhead + k) & (s->qcap - 1)] = q_at(s, k - 1);
  q_pop_head(s);
  s->queued -= f->len;
  sse_frame_unref(f);
}

/* Inserts f (one reference taken over) at index i by shifting the frames
 * before it one place towards the head. Needs a free slot. */
static void q_insert_at(sse_sub *s, uint32_t i, sse_frame *f) {
  s->qhead = (s->qhead + s->qcap - 1) & (s->qcap - 1);
  s->qlen++;
  for (uint32_t k = 0; k < i; k++)
    s->q[(s->qhead + k) & (s->qcap - 1)] = q_at(s, k + 1);
  s->q[(s->qhead + i) & (s->qcap - 1)] = f;
  s->queued += f->len;
}

/* Drop-oldest: frees room for need bytes. The gap event is a frame that
 * sits first among the droppable ones and counts every frame dropped since
 * the client last received one; it is replaced, never stacked. Returns 0,
 * or -1 on ENOMEM (the outbox is consistent, maybe with frames dropped). */
static int drop_for(sse_sub *s, size_t need) {
  uint32_t first = first_droppable(s);
  if (s->qlen > first && q_at(s, first) == s->exempt) first++; /* the replay stays */
  /* a gap frame still unsent stays first: it is removed and remade */
  if (!(s->gap_pending && s->qlen > first && is_gap_frame(q_at(s, first)))) s->gap_dropped = 0;
  while (counted(s) + need + GAP_RESERVE > s->limit && s->qlen > first) {
    int was_gap = is_gap_frame(q_at(s, first)); /* remade below, not counted */
    q_remove_at(s, first);
    if (was_gap) continue;
    s->gap_dropped++;
    s->dropped++;
  }
  if (s->gap_dropped == 0) return 0;
  char text[96];
  size_t n = sse_gap_drop_event(s->gap_dropped, text, sizeof text);
  sse_frame *g = sse_frame_new(text, n, NULL, 0);
  if (!g) return -1;
  g->seq = GAP_SEQ;
  if (q_reserve(s) != 0) {
    sse_frame_unref(g);
    return -1;
  }
  q_insert_at(s, first, g);
  s->gap_pending = 1;
  return 0;
}

static void sub_write(sse_sub *s);

int sse_sub_push(sse_sub *s, sse_frame *f, double now) {
  if (s->state != SSE_SUB_OPEN) return 0;
  /* A burst that fills the outbox, or a whole writev batch, within one loop
   * turn: write now (before judging the subscriber slow), so a burst costs
   * one write per MAX_IOV frames and the queue never grows past a batch. */
  if (s->stream && !s->writing && (s->qlen >= MAX_IOV || s->queued + f->len > s->limit)) {
    sub_write(s);
    if (s->state != SSE_SUB_OPEN) return 0;
  }
  size_t held = counted(s);
  if (held > 0 && held + f->len > s->limit) {
    if (s->policy == SSE_SLOW_CLOSE) {
      sub_fail(s, SSE_FAIL_SLOW, 0);
      return 0;
    }
    if (drop_for(s, f->len) != 0) {
      sub_fail(s, SSE_FAIL_SLOW, UV_ENOMEM);
      return 0;
    }
  }
  if (q_reserve(s) != 0) {
    sub_fail(s, SSE_FAIL_SLOW, UV_ENOMEM);
    return 0;
  }
  s->q[(s->qhead + s->qlen) & (s->qcap - 1)] = sse_frame_ref(f);
  s->qlen++;
  s->queued += f->len;
  s->last_active = now;
  if (s->hub && s->dirty == IN_NONE) set_list(s, s->stream ? IN_DIRTY : IN_READY);
  return 1;
}

int sse_sub_push_exempt(sse_sub *s, sse_frame *f, double now) {
  if (s->state != SSE_SUB_OPEN) return 0;
  if (s->exempt) return sse_sub_push(s, f, now); /* one exempt frame at a time */
  s->exempt = sse_frame_ref(f); /* counted() ignores it from here on */
  if (!sse_sub_push(s, f, now)) {
    exempt_check(s);
    return 0;
  }
  return 1;
}

size_t sse_hub_publish(sse_hub *h, sse_frame *f, const char *topic, size_t len, double now) {
  size_t n = 0;
  if (!topic) {
    for (sse_link *l = h->subs.next; l != &h->subs;) {
      sse_sub *s = container_of(l, sse_sub, node);
      l = l->next; /* s may move lists but stays in subs */
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
    if (s->state == SSE_SUB_OPEN && s->last_active <= now - idle)
      n += (size_t)sse_sub_push(s, f, now);
  }
  return n;
}

/* --- writing ------------------------------------------------------------ */

/* Consumes n written bytes from the head of the outbox. */
static void q_consume(sse_sub *s, size_t n) {
  s->bytes_sent += n;
  s->queued -= n;
  while (n > 0) {
    sse_frame *f = q_at(s, 0);
    size_t left = f->len - s->qoff;
    if (n < left) {
      s->qoff += n;
      return;
    }
    n -= left;
    s->qoff = 0;
    if (is_gap_frame(f)) s->gap_pending = 0;
    if (f == s->exempt) {
      s->exempt = NULL;
      sse_frame_unref(f); /* the reference exempt held */
    }
    sse_frame_unref(f);
    q_pop_head(s);
  }
}

static uint32_t fill_bufs(const sse_sub *s, uv_buf_t *bufs) {
  uint32_t n = s->qlen < MAX_IOV ? s->qlen : MAX_IOV;
  for (uint32_t i = 0; i < n; i++) {
    sse_frame *f = q_at(s, i);
    size_t off = i == 0 ? s->qoff : 0;
    bufs[i] = uv_buf_init(f->bytes + off, (unsigned int)(f->len - off));
  }
  return n;
}

static void sub_write(sse_sub *s);

static void on_write(uv_write_t *req, int status) {
  sse_sub *s = req->data;
  uint32_t n = s->inflight;
  free(req);
  s->wreq = NULL;
  s->writing = 0;
  s->inflight = 0;
  if (s->orphaned) {
    sub_destroy(s);
    return;
  }
  if (status < 0 || s->state != SSE_SUB_OPEN) {
    /* the frames the write held are released with the rest */
    if (s->state == SSE_SUB_OPEN) sub_fail(s, SSE_FAIL_WRITE, status);
    q_release_unsent(s);
    if (s->state == SSE_SUB_CLOSED) s->stream = NULL;
    return;
  }
  size_t bytes = 0;
  for (uint32_t i = 0; i < n; i++) bytes += q_at(s, i)->len;
  q_consume(s, bytes - s->qoff);
  if (s->qlen) sub_write(s); /* what arrived meanwhile, coalesced */
  else q_trim(s);
}

static void sub_write(sse_sub *s) {
  if (s->writing || s->state != SSE_SUB_OPEN || !s->stream || s->qlen == 0) return;
  if (uv_is_closing((uv_handle_t *)s->stream)) {
    sub_fail(s, SSE_FAIL_WRITE, UV_ECANCELED);
    return;
  }
  uv_buf_t bufs[MAX_IOV];
  uint32_t n = fill_bufs(s, bufs);
  int r = uv_try_write(s->stream, bufs, n);
  if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
  if (r < 0) {
    sub_fail(s, SSE_FAIL_WRITE, r);
    return;
  }
  if (r > 0) q_consume(s, (size_t)r);
  if (s->qlen == 0) {
    q_trim(s);
    return;
  }
  n = fill_bufs(s, bufs);
  uv_write_t *req = malloc(sizeof *req);
  if (!req) {
    sub_fail(s, SSE_FAIL_WRITE, UV_ENOMEM);
    return;
  }
  req->data = s;
  s->wreq = req;
  s->inflight = n;
  s->writing = 1;
  r = uv_write(req, s->stream, bufs, n, on_write);
  if (r < 0) {
    free(req);
    s->wreq = NULL;
    s->writing = 0;
    s->inflight = 0;
    sub_fail(s, SSE_FAIL_WRITE, r);
  }
}

void sse_sub_flush(sse_sub *s) {
  if (s->dirty == IN_DIRTY) set_list(s, IN_NONE);
  sub_write(s);
}

size_t sse_hub_flush(sse_hub *h) {
  size_t n = 0;
  while (!list_empty(&h->dirty)) {
    sse_sub *s = container_of(h->dirty.next, sse_sub, dirty_node);
    set_list(s, IN_NONE);
    sub_write(s); /* may move s to the dead list */
    n++;
  }
  return n;
}

static sse_sub *pop_list(sse_link *l) {
  if (list_empty(l)) return NULL;
  sse_sub *s = container_of(l->next, sse_sub, dirty_node);
  list_unlink(&s->dirty_node);
  s->dirty = IN_NONE;
  return s;
}

sse_sub *sse_hub_next_ready(sse_hub *h) { return pop_list(&h->ready); }
sse_sub *sse_hub_next_dead(sse_hub *h) { return pop_list(&h->dead); }

size_t sse_sub_take_size(const sse_sub *s) { return s->queued; }

size_t sse_sub_take(sse_sub *s, char *buf) {
  size_t n = 0;
  while (s->qlen > s->inflight) {
    sse_frame *f = q_at(s, 0);
    memcpy(buf + n, f->bytes + s->qoff, f->len - s->qoff);
    n += f->len - s->qoff;
    s->qoff = 0;
    sse_frame_unref(f);
    q_pop_head(s);
  }
  exempt_check(s);
  s->queued = 0;
  s->bytes_sent += n;
  s->gap_pending = 0;
  q_trim(s);
  return n;
}

size_t sse_hub_count(const sse_hub *h) { return h->nsubs; }
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
