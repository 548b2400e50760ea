/* attach.c - the core operations that join a replayer and the fan-out
 * (hub.h, docs/CORE.md 3): store-then-publish, attach with replay by
 * reference, and the memory ring's sse_replayer_ops. */
#include "hub.h"
#include "ring.h"

#include <string.h>

/* --- the memory ring as a replayer ----------------------------------------- */

static size_t ring_next_id(void *self, char *buf, size_t cap) {
  sse_ring *r = self;
  return sse_ring_format_id(r, sse_ring_next_seq(r), buf, cap);
}

static int ring_store(void *self, sse_frame *f, double now) {
  int rc = sse_ring_store(self, f, now);
  return rc == 0 ? 0 : rc == SSE_RING_ENOMEM ? SSE_HUB_ENOMEM : SSE_HUB_ESTORE;
}

/* 1 when s reads every held frame from index on (no topic it lacks). */
static int reads_all(sse_ring *r, sse_sub *s, size_t index) {
  for (size_t i = index, n = sse_ring_len(r); i < n; i++) {
    const sse_frame *f = sse_ring_frame_at(r, i);
    if (f->topic && !sse_sub_is_subscribed(s, f->topic, f->topic_len)) return 0;
  }
  return 1;
}

/* Replays the held frames after last_id that s reads (untopiced ones, and
 * those of a topic s is subscribed to), by reference; when it reads all of
 * them and they are small, as one joined frame (a single write segment). */
static int ring_replay(void *self, sse_sub *s, const char *last_id, size_t len, double now,
                       uint64_t *upto, int *gap) {
  sse_ring *r = self;
  sse_ring_expire(r, now);
  size_t index;
  int st = sse_ring_locate(r, last_id, len, &index);
  size_t n = sse_ring_len(r);
  *upto = sse_ring_last_seq(r);
  *gap = st;
  if (n - index >= 2 && !sse_sub_envelope(s) && reads_all(r, s, index)) {
    sse_frame *j = sse_ring_joined(r, index, SSE_REPLAY_JOIN_MAX);
    if (j) {
      int rc = sse_sub_replay_joined(s, j, n - index);
      sse_frame_unref(j);
      return rc < 0 ? rc : SSE_REPLAY_DONE;
    }
  }
  if (n > index) (void)sse_sub_replay_reserve(s, n - index); /* a hint: ENOMEM shows below */
  for (size_t i = index; i < n; i++) {
    sse_frame *f = sse_ring_frame_at(r, i);
    if (f->topic && !sse_sub_is_subscribed(s, f->topic, f->topic_len)) continue;
    int rc = sse_sub_replay_frame(s, f);
    if (rc < 0) return rc;
  }
  return SSE_REPLAY_DONE;
}

static size_t ring_last_id(void *self, char *buf, size_t cap) {
  sse_ring *r = self;
  return sse_ring_format_id(r, sse_ring_last_seq(r), buf, cap);
}

static size_t ring_first_id(void *self, char *buf, size_t cap) {
  sse_ring *r = self;
  if (sse_ring_len(r) == 0) return 0;
  return sse_ring_format_id(r, sse_ring_first_seq(r), buf, cap);
}

const sse_replayer_ops sse_ring_replayer_ops = {ring_next_id, ring_store, ring_replay,
                                                ring_last_id, ring_first_id};

/* --- store, then fan out ---------------------------------------------------- */

int sse_hub_broadcast(sse_hub *h, const sse_event *ev, int check_utf8, const char *topic,
                      size_t tlen, double now, size_t *count, char *id_out, size_t *id_len,
                      sse_encode_err *err) {
  void *self;
  const sse_replayer_ops *ops = sse_hub_replayer(h, &self);
  sse_event e = *ev;
  size_t n = ops->next_id(self, id_out, SSE_ID_CAP);
  if (n) {
    e.id.p = id_out;
    e.id.n = n;
  }
  size_t len;
  if (sse_encode_check(&e, check_utf8, &len, err) != SSE_OK) return SSE_HUB_EINVAL;
  sse_frame *f = sse_frame_alloc(len, topic, tlen);
  if (!f) return SSE_HUB_ENOMEM;
  sse_encode_write(&e, f->bytes);
  f->time = now;
  sse_frame_ref(f); /* ours: the replayer may evict it at once */
  int rc = ops->store(self, f, now);
  if (rc < 0) {
    sse_frame_unref(f);
    sse_frame_unref(f);
    return rc;
  }
  *count = sse_hub_publish(h, f, topic, tlen, now);
  sse_frame_unref(f);
  *id_len = n;
  return 0;
}

/* --- attach ---------------------------------------------------------------- */

/* Queues the sse-join event of id on s (nothing when out of memory: the
 * client then simply has no position yet). */
static void push_join(sse_sub *s, const char *id, size_t n, double now) {
  sse_frame *j = sse_join_frame(id, n);
  if (!j) return;
  sse_sub_push(s, j, now);
  sse_frame_unref(j);
}

int sse_hub_attach(sse_hub *h, sse_sub *s, const sse_str *topics, size_t ntopics,
                   const char *last_id, size_t len, double now, size_t *count, int *gap) {
  uint32_t id;
  *count = 0;
  *gap = 0;
  int rc = sse_hub_add(h, s, &id);
  if (rc < 0) return rc;
  for (size_t i = 0; i < ntopics; i++) {
    rc = sse_hub_subscribe(s, topics[i].p, topics[i].n);
    if (rc < 0) return rc;
  }
  void *self;
  const sse_replayer_ops *ops = sse_hub_replayer(h, &self);
  char latest[SSE_ID_CAP];
  if (!last_id) {
    size_t n = ops->last_id(self, latest, sizeof latest);
    if (n) push_join(s, latest, n, now);
    return SSE_REPLAY_DONE;
  }
  sse_sub_replay_begin(s);
  uint64_t upto = 0;
  int g = 0;
  rc = ops->replay(self, s, last_id, len, now, &upto, &g);
  if (rc == SSE_REPLAY_PENDING) return rc;
  *count = 0;
  if (rc < 0) {
    sse_sub_replay_end(s, 0, NULL);
    return rc;
  }
  size_t replayed = sse_sub_replay_count(s);
  sse_frame *gf = NULL;
  size_t ln = 0;
  if (g) {
    char oldest[SSE_ID_CAP];
    size_t on = ops->first_id(self, oldest, sizeof oldest);
    ln = ops->last_id(self, latest, sizeof latest);
    gf = sse_gap_frame(last_id, len, on ? oldest : NULL, on, ln ? latest : NULL, ln, -1);
  }
  sse_sub_replay_end(s, upto, gf);
  if (g && replayed == 0 && ln) push_join(s, latest, ln, now);
  *count = replayed;
  *gap = g;
  return SSE_REPLAY_DONE;
}
