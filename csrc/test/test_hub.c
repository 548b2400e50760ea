/* test_hub.c - C unit test of the hub with pull subscribers (no sockets, no
 * Lua), run under ASan+UBSan: topics, fan-out counts, outbox bounds, both
 * slow policies, the gap frame, and teardown in every order. */
#define _GNU_SOURCE /* memmem */
#include "hub.h"
#include "ring.h"

#include <zlib.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sockpair.h"

static sse_frame *frame(const char *text) {
  return sse_frame_new(text, strlen(text), NULL, 0);
}

static int add(sse_hub *h, sse_sub *s) {
  uint32_t id;
  return sse_hub_add(h, s, &id);
}

static sse_sub_stats stats_of(const sse_sub *s) {
  sse_sub_stats st;
  sse_sub_get_stats(s, &st);
  return st;
}

#define GAPD(n) "event: sse-gap\ndata: {\"last_event_id\":null,\"oldest\":null,\"latest\":null,\"dropped\":" n "}\n\n"

/* Publishes text to topic (NULL: everyone) and drops the caller's ref. */
static size_t pub(sse_hub *h, const char *topic, const char *text) {
  sse_frame *f = frame(text);
  size_t n = sse_hub_publish(h, f, topic, topic ? strlen(topic) : 0, 0);
  sse_frame_unref(f);
  return n;
}

static char *take(sse_sub *s) {
  size_t n = sse_sub_take_size(s);
  char *buf = malloc(n + 1);
  size_t got = sse_sub_take(s, buf);
  buf[got] = '\0';
  return buf;
}

static void expect_take(sse_sub *s, const char *want) {
  char *got = take(s);
  CHECKF(strcmp(got, want) == 0, "take: want [%s]\n       got [%s]", want, got);
  free(got);
}

static void test_topics(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub *b = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(add(h, a) == 0 && add(h, b) == 0);
  CHECK(add(h, a) == 0); /* twice: no-op */
  CHECK(sse_hub_count(h) == 2);
  CHECK(sse_hub_subscribe(a, "x", 1) == 1);
  CHECK(sse_hub_subscribe(a, "x", 1) == 0);
  CHECK(sse_hub_subscribe(b, "x", 1) == 1 && sse_hub_subscribe(b, "y", 1) == 1);
  CHECK(sse_hub_topic_count(h, "x", 1) == 2 && sse_hub_topic_count(h, "y", 1) == 1);
  CHECK(sse_hub_topics(h) == 2);
  CHECK(pub(h, "x", "1") == 2);
  CHECK(pub(h, "y", "2") == 1);
  CHECK(pub(h, "z", "3") == 0);
  CHECK(pub(h, NULL, "4") == 2);
  /* pull subscribers with data are ready, each once */
  sse_hub_flush(h, 0);
  sse_sub *r1 = sse_hub_next_ready(h), *r2 = sse_hub_next_ready(h);
  CHECK(r1 && r2 && r1 != r2 && sse_hub_next_ready(h) == NULL);
  CHECK(sse_sub_queued(a) == 2 && sse_sub_queued(b) == 3);
  expect_take(a, "14");
  expect_take(b, "124");
  CHECK(sse_hub_unsubscribe(b, "y", 1) == 1 && sse_hub_unsubscribe(b, "y", 1) == 0);
  CHECK(sse_hub_topics(h) == 1); /* an empty topic is freed */
  sse_hub_remove(a);
  CHECK(sse_hub_count(h) == 1 && sse_hub_topic_count(h, "x", 1) == 1);
  CHECK(pub(h, "x", "5") == 1);
  sse_sub_free(a);
  sse_hub_free(h); /* b outlives its hub */
  CHECK(sse_sub_hub(b) == NULL);
  sse_sub_free(b);
}

/* sse_sub_each_topic: appends "name," for each topic into the buffer ud */
static void collect_topic(const char *name, size_t len, void *ud) {
  char *buf = ud;
  strncat(buf, name, len);
  strcat(buf, ",");
}

static void test_each_topic(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(add(h, a) == 0);
  char buf[64] = "";
  sse_sub_each_topic(a, collect_topic, buf);
  CHECK_STR(buf, "");
  CHECK(sse_hub_subscribe(a, "x", 1) == 1 && sse_hub_subscribe(a, "yy", 2) == 1);
  CHECK(sse_hub_subscribe(a, "z", 1) == 1 && sse_hub_unsubscribe(a, "yy", 2) == 1);
  sse_sub_each_topic(a, collect_topic, buf);
  CHECK_STR(buf, "z,x,");
  sse_hub_remove(a); /* out of the hub: in no topic */
  buf[0] = 0;
  sse_sub_each_topic(a, collect_topic, buf);
  CHECK_STR(buf, "");
  sse_sub_free(a);
  sse_hub_free(h);
}

static void test_many_topics(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  char name[32];
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(name, sizeof name, "topic-%d", i);
    CHECK(sse_hub_subscribe(s, name, (size_t)n) == 1);
  }
  CHECK(sse_hub_topics(h) == 1000 && stats_of(s).topics == 1000);
  CHECK(pub(h, "topic-999", "x") == 1 && pub(h, "topic-1000", "x") == 0);
  sse_sub_free(s); /* frees its memberships and the topics */
  CHECK(sse_hub_topics(h) == 0 && sse_hub_count(h) == 0);
  sse_hub_free(h);
}

static void test_close_policy(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 10, SSE_SLOW_CLOSE);
  add(h, s);
  CHECK(pub(h, NULL, "12345") == 1);
  CHECK(pub(h, NULL, "67890") == 1);
  CHECK(sse_sub_queued(s) == 10);
  CHECK(pub(h, NULL, "x") == 0); /* over the limit: failed, outbox released */
  CHECK(sse_sub_state(s) == SSE_SUB_CLOSED && sse_sub_reason(s) == SSE_CLOSE_SLOW);
  CHECK(sse_sub_queued(s) == 0);
  CHECK(sse_hub_next_closed(h) == s && sse_hub_next_closed(h) == NULL);
  CHECK(pub(h, NULL, "y") == 0); /* a failed sub gets nothing more */
  sse_sub_free(s);
  sse_hub_free(h);
}

static void test_drop_oldest(void) {
  sse_hub *h = sse_hub_new();
  /* five 40-byte frames fill a 200-byte outbox (96 bytes are kept for the gap event) */
  sse_sub *s = sse_sub_new(NULL, 200, SSE_SLOW_DROP_OLDEST);
  add(h, s);
  char fr[8][64];
  for (int i = 0; i < 8; i++) snprintf(fr[i], sizeof fr[i], "f%d-%036d\n", i + 1, 0);
  for (int i = 0; i < 5; i++) CHECK(pub(h, NULL, fr[i]) == 1);
  CHECK(sse_sub_queued(s) == 200 && stats_of(s).dropped == 0);
  /* the sixth needs room: the oldest go, with room kept for the gap event */
  CHECK(pub(h, NULL, fr[5]) == 1);
  CHECK(stats_of(s).dropped == 4 && sse_sub_state(s) == SSE_SUB_OPEN);
  CHECK(sse_sub_queued(s) <= 200);
  /* further drops replace the gap event with one counting every drop */
  CHECK(pub(h, NULL, fr[6]) == 1);
  CHECK(stats_of(s).dropped == 5);
  CHECK(pub(h, NULL, fr[7]) == 1);
  CHECK(sse_sub_queued(s) <= 200);
  char want[256];
  snprintf(want, sizeof want, "%s%s%s", GAPD("6"), fr[6], fr[7]);
  char *out = take(s);
  CHECK(strcmp(out, want) == 0);
  CHECK(stats_of(s).dropped == 6);
  free(out);
  /* after the gap event was taken, a new drop starts a new count */
  CHECK(sse_sub_queued(s) == 0);
  sse_sub_free(s);
  sse_hub_free(h);
}

/* drop_oldest never drops the response head: a pull subscriber's head is
 * still queued (not taken) when a burst overflows its outbox; the head is
 * exempt from the limit (like a replay), so the burst's oldest events go
 * and the head still comes first. Under the close policy a head does not
 * make the first events overflow either. */
static void test_drop_keeps_head(void) {
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
  char fr[8][64];
  for (int i = 0; i < 8; i++) snprintf(fr[i], sizeof fr[i], "f%d-%036d\n", i + 1, 0);
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 200, SSE_SLOW_DROP_OLDEST);
  sse_frame *hf = frame(head);
  CHECK(sse_sub_push_head(s, hf) == 0);
  sse_frame_unref(hf);
  add(h, s);
  for (int i = 0; i < 8; i++) CHECK(pub(h, NULL, fr[i]) == 1);
  CHECK(stats_of(s).dropped > 0 && sse_sub_state(s) == SSE_SUB_OPEN);
  char *out = take(s);
  CHECK(strncmp(out, head, sizeof head - 1) == 0); /* the head is still first */
  CHECK(strstr(out, "event: sse-gap\n") == out + sizeof head - 1); /* the gap, after the head */
  CHECK(strstr(out, fr[7]) != NULL);
  free(out);
  sse_sub_free(s);
  /* close policy: 4 frames of 40 fit a 160-byte outbox beside a 52-byte head */
  s = sse_sub_new(NULL, 160, SSE_SLOW_CLOSE);
  hf = frame(head);
  CHECK(sse_sub_push_head(s, hf) == 0);
  sse_frame_unref(hf);
  add(h, s);
  for (int i = 0; i < 4; i++) CHECK(pub(h, NULL, fr[i]) == 1);
  CHECK(sse_sub_state(s) == SSE_SUB_OPEN);
  CHECK(pub(h, NULL, fr[4]) == 0 && sse_sub_state(s) == SSE_SUB_CLOSED);
  sse_sub_free(s);
  /* a head after a frame, or on a closed sub, is refused */
  s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  pub(h, NULL, fr[0]);
  hf = frame(head);
  CHECK(sse_sub_push_head(s, hf) == SSE_HUB_EINVAL);
  sse_sub_close(s, 0, 0, 0);
  CHECK(sse_sub_push_head(s, hf) == SSE_HUB_ECLOSED);
  sse_frame_unref(hf);
  sse_sub_free(s);
  sse_hub_free(h);
}

static void test_oversized(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 10, SSE_SLOW_CLOSE);
  add(h, s);
  /* an event larger than the whole limit is delivered to an empty outbox */
  CHECK(pub(h, NULL, "0123456789abcdef") == 1 && sse_sub_state(s) == SSE_SUB_OPEN);
  CHECK(pub(h, NULL, "x") == 0 && sse_sub_state(s) == SSE_SUB_CLOSED); /* then the limit holds */
  sse_sub_free(s);
  sse_hub_free(h);
}

/* A frame with a backend sequence number. */
static sse_frame *seq_frame(const char *text, uint64_t seq) {
  sse_frame *f = frame(text);
  f->seq = seq;
  return f;
}

static void push_seq(sse_sub *s, const char *text, uint64_t seq) {
  sse_frame *f = seq_frame(text, seq);
  sse_sub_push(s, f, 0);
  sse_frame_unref(f);
}

static void test_async_replay(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 20, SSE_SLOW_CLOSE);
  add(h, s);
  push_seq(s, "head|", 0); /* queued before the attach: may go out at once */
  sse_sub_replay_begin(s);
  CHECK(sse_sub_replaying(s));
  push_seq(s, "L4|", 4);   /* live, already covered by the replay */
  push_seq(s, "ka|", 0);   /* no seq: never dropped */
  push_seq(s, "L6|", 6);   /* live, newer than the replay */
  CHECK(sse_sub_take_size(s) == 5);
  expect_take(s, "head|"); /* only what preceded the attach */
  CHECK(sse_sub_take_size(s) == 0);
  /* the replay: 3 frames, 30 bytes, over the 20-byte limit but exempt */
  const char *rep[] = {"R3--------|", "R4--------|", "R5--------|"};
  for (int i = 0; i < 3; i++) {
    sse_frame *f = seq_frame(rep[i], (uint64_t)i + 3);
    CHECK(sse_sub_replay_frame(s, f) == 0);
    sse_frame_unref(f);
  }
  CHECK(sse_sub_replay_count(s) == 3);
  push_seq(s, "L7|", 7); /* live frames still count against the limit, and fit */
  CHECK(sse_sub_state(s) == SSE_SUB_OPEN);
  sse_frame *gap = sse_gap_frame("a\"b\xff", 4, "ep-3", 4, "ep-7", 4, -1);
  sse_sub_replay_end(s, 5, gap);
  CHECK(!sse_sub_replaying(s));
  expect_take(s, "event: sse-gap\ndata: {\"last_event_id\":\"a\\\"b\xEF\xBF\xBD\",\"oldest\":\"ep-3\","
                 "\"latest\":\"ep-7\",\"dropped\":null}\n\n"
                 "R3--------|R4--------|R5--------|ka|L6|L7|");
  /* live again: the limit applies to everything */
  CHECK(pub(h, NULL, "0123456789") == 1 && pub(h, NULL, "0123456789") == 1);
  CHECK(pub(h, NULL, "x") == 0 && sse_sub_reason(s) == SSE_CLOSE_SLOW);
  sse_sub_free(s);

  /* closed before the answer: the answer is released, nothing leaks */
  s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  sse_sub_replay_begin(s);
  push_seq(s, "L1|", 1);
  CHECK(sse_sub_close(s, 1, 0, 5) == 0); /* nothing may go out: closed at once */
  sse_frame *f = seq_frame("R|", 1);
  CHECK(sse_sub_replay_frame(s, f) == SSE_HUB_ECLOSED);
  sse_sub_replay_end(s, 1, sse_gap_frame(NULL, 0, NULL, 0, NULL, 0, -1));
  CHECK(f->refs == 1);
  sse_frame_unref(f);
  sse_sub_free(s);
  sse_hub_free(h);
}

static void test_ring_attach(void) {
  sse_hub *h = sse_hub_new();
  sse_ring *r = sse_ring_new("ep", 2, 3, 1 << 20, 1e9);
  sse_hub_set_replayer(h, &sse_ring_replayer_ops, r);
  char id[SSE_ID_CAP];
  size_t idn, count;
  sse_encode_err err;
  sse_event ev = {{NULL, 0}, {NULL, 0}, {"x", 1}, {NULL, 0}, -1};
  for (int i = 0; i < 4; i++)
    CHECK(sse_hub_broadcast(h, &ev, 1, i == 1 ? "t" : NULL, i == 1 ? 1 : 0, 0, &count, id, &idn,
                            &err) == 0 && count == 0);
  CHECK(idn == 4 && memcmp(id, "ep-4", 4) == 0);
  /* a fresh client: the join event */
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  int gap;
  CHECK(sse_hub_attach(h, a, NULL, 0, NULL, 0, 0, &count, &gap) == SSE_REPLAY_DONE);
  expect_take(a, "event: sse-join\nid: ep-4\ndata: {\"last_event_id\":\"ep-4\"}\n\n");
  /* resume after ep-1: ep-2 is topic t (not subscribed), ep-3, ep-4 */
  sse_sub *b = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_hub_attach(h, b, NULL, 0, "ep-1", 4, 0, &count, &gap) == SSE_REPLAY_DONE);
  CHECK(count == 2 && gap == 0);
  expect_take(b, "id: ep-3\ndata: x\n\nid: ep-4\ndata: x\n\n");
  /* b skipped ep-2 (a topic it lacks): by reference, the ring's own frames */
  CHECK(sse_ring_frame_at(r, 1)->refs == 1 && sse_ring_frame_at(r, 2)->refs == 1);
  /* with the topic it reads all three: ONE joined frame (one write
   * segment), counted as three events, the ring's frames untouched */
  sse_sub *c = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_str t = {"t", 1};
  CHECK(sse_hub_attach(h, c, &t, 1, "ep-1", 4, 0, &count, &gap) == SSE_REPLAY_DONE && count == 3);
  CHECK(sse_ring_frame_at(r, 0)->refs == 1);
  CHECK(sse_sub_check(c) == NULL);
  sse_frame *jf = sse_ring_joined(r, 0, SSE_REPLAY_JOIN_MAX); /* the cached copy c holds */
  CHECK(jf && jf->refs == 3 && jf->len == 3 * strlen("id: ep-2\ndata: x\n\n"));
  sse_frame_unref(jf);
  sse_sub *c2 = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_hub_attach(h, c2, &t, 1, "ep-1", 4, 0, &count, &gap) == SSE_REPLAY_DONE && count == 3);
  expect_take(c, "id: ep-2\ndata: x\n\nid: ep-3\ndata: x\n\nid: ep-4\ndata: x\n\n");
  expect_take(c2, "id: ep-2\ndata: x\n\nid: ep-3\ndata: x\n\nid: ep-4\ndata: x\n\n");
  /* an envelope subscriber gets each frame's envelope form, one by one */
  sse_sub *c3 = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub_set_envelope(c3, 1);
  CHECK(sse_hub_attach(h, c3, &t, 1, "ep-2", 4, 0, &count, &gap) == SSE_REPLAY_DONE && count == 2);
  CHECK(sse_ring_frame_at(r, 1)->twin != NULL);
  sse_sub_free(c2);
  sse_sub_free(c3);
  /* outside the window: gap first; an empty replay then moves the client on */
  sse_sub *d = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_hub_attach(h, d, NULL, 0, "old-1", 5, 0, &count, &gap) == SSE_REPLAY_DONE);
  CHECK(count == 2 && gap == SSE_RING_GAP_EPOCH);
  expect_take(d, "event: sse-gap\ndata: {\"last_event_id\":\"old-1\",\"oldest\":\"ep-2\","
                 "\"latest\":\"ep-4\",\"dropped\":null}\n\nid: ep-3\ndata: x\n\nid: ep-4\ndata: x\n\n");
  sse_ring_clear(r);
  sse_sub *e = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_hub_attach(h, e, NULL, 0, "ep-1", 4, 0, &count, &gap) == SSE_REPLAY_DONE);
  CHECK(count == 0 && gap == SSE_RING_GAP_EVICTED);
  expect_take(e, "event: sse-gap\ndata: {\"last_event_id\":\"ep-1\",\"oldest\":null,"
                 "\"latest\":\"ep-4\",\"dropped\":null}\n\n"
                 "event: sse-join\nid: ep-4\ndata: {\"last_event_id\":\"ep-4\"}\n\n");
  /* a sub of another hub is refused, nothing changed */
  sse_hub *h2 = sse_hub_new();
  CHECK(sse_hub_attach(h2, e, NULL, 0, NULL, 0, 0, &count, &gap) == SSE_HUB_EOTHER);
  sse_hub_free(h2);
  sse_sub *all[] = {a, b, c, d, e};
  for (int i = 0; i < 5; i++) sse_sub_free(all[i]);
  sse_hub_free(h);
  sse_ring_free(r);
}

static void test_close_states(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  CHECK(sse_hub_subscribe(s, "t", 1) == 1);
  pub(h, NULL, "abc");
  /* graceful close with bytes queued: draining, out of the fan-out */
  CHECK(sse_sub_close(s, 1, 10.0, 5.0) == 1 && sse_sub_state(s) == SSE_SUB_DRAINING);
  CHECK(sse_hub_count(h) == 0 && sse_hub_topic_count(h, "t", 1) == 0);
  CHECK(pub(h, NULL, "more") == 0);
  sse_hub_flush(h, 11.0);
  CHECK(sse_hub_next_closed(h) == NULL);
  expect_take(s, "abc"); /* emptied: closed, reported by the closed list */
  CHECK(sse_sub_state(s) == SSE_SUB_CLOSED && sse_sub_reason(s) == SSE_CLOSE_OWNER);
  CHECK(sse_hub_next_closed(h) == s && sse_hub_next_closed(h) == NULL);
  sse_hub_remove(s);
  sse_sub_free(s);
  /* a client that never reads: closed at the deadline */
  s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  pub(h, NULL, "abc");
  CHECK(sse_sub_close(s, 1, 10.0, 5.0) == 1);
  sse_hub_flush(h, 14.9);
  CHECK(sse_sub_state(s) == SSE_SUB_DRAINING);
  sse_hub_flush(h, 15.0);
  CHECK(sse_sub_state(s) == SSE_SUB_CLOSED && sse_sub_reason(s) == SSE_CLOSE_TIMEOUT);
  CHECK(sse_sub_queued(s) == 0 && sse_hub_next_closed(h) == s);
  sse_sub_free(s);
  /* nothing queued: closed at once */
  s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  CHECK(sse_sub_close(s, 1, 0, 5) == 0 && sse_sub_state(s) == SSE_SUB_CLOSED);
  CHECK(sse_hub_next_closed(h) == NULL); /* the owner closed it: nothing to report */
  CHECK(add(h, s) == SSE_HUB_ECLOSED);
  sse_sub_free(s);
  /* the hub held: its free waits for the release */
  sse_hub_hold(h);
  sse_hub_free(h);
  CHECK(sse_hub_release(h) == 1);
}

static void noop_idle(uv_idle_t *i) { (void)i; }

/* Fairness: on a socket pair, one flush writes at most SSE_TURN_BYTES per
 * subscriber, and the rest goes in later flushes. */
static void test_turn_bytes(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sockpair sp[2];
  sse_hub *h = sse_hub_new();
  CHECK(sse_hub_set_loop(h, &loop, NULL, NULL) == 0); /* flushes once per loop turn */
  uv_idle_t alive; /* the hub's handles do not keep a loop running: sockets do */
  uv_idle_init(&loop, &alive);
  uv_idle_start(&alive, noop_idle);
  sse_sub *s[2];
  static char big[16384];
  memset(big, 'x', sizeof big);
  sse_frame *f = sse_frame_new(big, sizeof big, NULL, 0);
  for (int i = 0; i < 2; i++) {
    CHECK(sockpair_open(&sp[i], &loop, 4 << 20, 0) == 0);
    s[i] = sse_sub_new((uv_stream_t *)&sp[i].pipe, 0, SSE_SLOW_CLOSE);
    add(h, s[i]);
  }
  for (int k = 0; k < 16; k++) CHECK(sse_hub_publish(h, f, NULL, 0, 0) == 2);
  sse_hub_flush(h, 0);
  for (int i = 0; i < 2; i++)
    CHECK(stats_of(s[i]).bytes_sent == SSE_TURN_BYTES && sse_sub_queued(s[i]) == 12 * 16384);
  /* each turn that leaves a backlog doubles the next share: 64, 128, then
   * the last 64 KiB of the 256 */
  int turns = 1;
  size_t bound = SSE_TURN_BYTES;
  while (sse_sub_queued(s[0]) && turns < 100) {
    uv_run(&loop, UV_RUN_NOWAIT); /* the hub's prepare handle flushes */
    bound += (size_t)SSE_TURN_BYTES << (turns < SSE_TURN_GROW ? turns : SSE_TURN_GROW);
    turns++;
    for (int i = 0; i < 2; i++) CHECK(stats_of(s[i]).bytes_sent <= bound);
    if (turns == 2) for (int i = 0; i < 2; i++) CHECK(stats_of(s[i]).bytes_sent == 3 * SSE_TURN_BYTES);
  }
  if (turns != 3) fprintf(stderr, "turns %d queued %zu %zu\n", turns, sse_sub_queued(s[0]), sse_sub_queued(s[1]));
  CHECK(turns == 3 && sse_sub_queued(s[1]) == 0);
  CHECK(stats_of(s[1]).bytes_sent == 16 * 16384);
  /* the outbox emptied: the next burst starts from one share again (the
   * readers take what the first sent, so the sockets have room) */
  static char sink[65536];
  for (int i = 0; i < 2; i++)
    while (recv(sp[i].peer, sink, sizeof sink, MSG_DONTWAIT) > 0) {}
  for (int k = 0; k < 16; k++) CHECK(sse_hub_publish(h, f, NULL, 0, 0) == 2);
  sse_hub_flush(h, 0);
  for (int i = 0; i < 2; i++) CHECK(stats_of(s[i]).bytes_sent == 16 * 16384 + SSE_TURN_BYTES);
  for (int k = 0; k < 10 && sse_sub_queued(s[0]); k++) uv_run(&loop, UV_RUN_NOWAIT);
  for (int i = 0; i < 2; i++) CHECK(sse_sub_queued(s[i]) == 0);
  for (int i = 0; i < 2; i++) {
    sse_sub_free(s[i]);
    sockpair_close(&sp[i]);
  }
  sse_hub_free(h);
  uv_close((uv_handle_t *)&alive, NULL);
  loop_finish(&loop);
  sse_frame_unref(f);
}

static void test_keepalive(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE), *b = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, a);
  add(h, b);
  sse_frame *f = frame("x");
  f->time = 100.0;
  CHECK(sse_sub_push(a, f, 100.0) == 1); /* a was active at t=100 */
  sse_frame *k = frame(":\n\n");
  CHECK(sse_hub_keepalive(h, k, 110.0, 15.0) == 1); /* only b is idle */
  CHECK(sse_sub_queued(b) == 3 && sse_sub_queued(a) == 1);
  sse_frame_unref(k);
  sse_frame_unref(f);
  sse_hub_free(h);
  sse_sub_free(a);
  sse_sub_free(b);
}

static void test_frames_shared(void) {
  /* one frame, many outboxes: references, never copies */
  sse_hub *h = sse_hub_new();
  sse_sub *subs[100];
  for (int i = 0; i < 100; i++) {
    subs[i] = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
    add(h, subs[i]);
  }
  sse_frame *f = frame("data: shared\n\n");
  CHECK(sse_hub_publish(h, f, NULL, 0, 0) == 100);
  CHECK(f->refs == 101);
  for (int i = 0; i < 50; i++) sse_sub_free(subs[i]); /* releases their refs */
  CHECK(f->refs == 51);
  sse_hub_free(h);
  for (int i = 50; i < 100; i++) sse_sub_free(subs[i]);
  CHECK(f->refs == 1);
  sse_frame_unref(f);
}

static int push_text(sse_sub *s, const char *text) {
  sse_frame *f = frame(text);
  int r = sse_sub_push(s, f, 0);
  sse_frame_unref(f);
  return r;
}

static sse_hub_counters counters_of(const sse_hub *h) {
  sse_hub_counters c;
  sse_hub_get_counters(h, &c);
  return c;
}

/* The hub's cumulative counters (metrics): bytes taken or written, drops,
 * gap events (a remade drop gap counts once), closes by reason; bytes of a
 * sub no longer in the hub are not the hub's. */
static void test_counters(void) {
  sse_hub *h = sse_hub_new();
  sse_hub_counters c = counters_of(h);
  CHECK(c.bytes_sent == 0 && c.dropped == 0 && c.gaps_replay == 0 && c.gaps_dropped == 0);
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE), *b = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, a);
  add(h, b);
  pub(h, NULL, "12345");
  expect_take(a, "12345");
  expect_take(b, "12345");
  CHECK(counters_of(h).bytes_sent == 10);
  sse_hub_remove(b);
  push_text(b, "zz");
  expect_take(b, "zz");
  CHECK(counters_of(h).bytes_sent == 10);
  sse_sub_free(b);

  /* drop_oldest: 6 frames dropped, one gap event remade twice, then a new one */
  sse_sub *d = sse_sub_new(NULL, 200, SSE_SLOW_DROP_OLDEST);
  add(h, d);
  char fr[10][64];
  for (int i = 0; i < 10; i++) snprintf(fr[i], sizeof fr[i], "f%d-%036d\n", i + 1, 0);
  for (int i = 0; i < 8; i++) CHECK(push_text(d, fr[i]) == 1);
  c = counters_of(h);
  CHECK(c.dropped == 6 && c.gaps_dropped == 1);
  char *got = take(d);
  uint64_t sent = 10 + strlen(got);
  free(got);
  CHECK(counters_of(h).bytes_sent == sent);
  for (int i = 0; i < 6; i++) push_text(d, fr[i]); /* the sixth drops again: a second gap event */
  c = counters_of(h);
  CHECK(c.dropped == 10 && c.gaps_dropped == 2);
  sse_sub_free(d);

  /* a replay gap */
  sse_sub *r = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, r);
  sse_sub_replay_begin(r);
  sse_sub_replay_end(r, 0, sse_gap_frame(NULL, 0, NULL, 0, NULL, 0, -1));
  CHECK(counters_of(h).gaps_replay == 1);
  sse_sub_free(r);

  /* closes by the core, by reason; an owner's close is not counted */
  sse_sub *slow = sse_sub_new(NULL, 4, SSE_SLOW_CLOSE), *lazy = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, slow);
  add(h, lazy);
  pub(h, NULL, "1234");
  pub(h, NULL, "5");
  CHECK(sse_sub_state(slow) == SSE_SUB_CLOSED);
  CHECK(sse_sub_close(lazy, 1, 0, 1) == 1);
  sse_hub_flush(h, 2);
  CHECK(sse_sub_reason(lazy) == SSE_CLOSE_TIMEOUT);
  sse_sub *owner = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, owner);
  sse_sub_close(owner, 0, 0, 0);
  c = counters_of(h);
  CHECK(c.closed_slow == 1 && c.closed_timeout == 1 && c.closed_write == 0);
  sse_sub_free(slow);
  sse_sub_free(lazy);
  sse_sub_free(owner);
  sse_sub_free(a);

  /* a failed write on a socket whose peer is gone */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sockpair sp;
  CHECK(sockpair_open(&sp, &loop, 0, 0) == 0);
  sockpair_hangup(&sp);
  sse_sub *w = sse_sub_new((uv_stream_t *)&sp.pipe, 0, SSE_SLOW_CLOSE);
  add(h, w);
  pub(h, NULL, "lost");
  sse_hub_flush(h, 0);
  CHECK(sse_sub_reason(w) == SSE_CLOSE_WRITE && counters_of(h).closed_write == 1);
  CHECK(counters_of(h).bytes_sent == sent); /* nothing of "lost" was written */
  sse_sub_free(w);
  sockpair_close(&sp);
  loop_finish(&loop);
  sse_hub_free(h);
}

/* Reads what the peer fd has (non-blocking) into buf at *n. */
static void drain_fd(int fd, char *buf, size_t cap, size_t *n) {
  for (;;) {
    ssize_t r = recv(fd, buf + *n, cap - *n, MSG_DONTWAIT);
    if (r <= 0) return;
    *n += (size_t)r;
  }
}

/* Inflates a whole gzip member prefix (sync-flushed: no trailer yet) into
 * out; returns the decoded length, or -1. */
static long gunzip_prefix(const char *in, size_t n, char *out, size_t cap) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + 15) != Z_OK) return -1;
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  zs.next_out = (Bytef *)out;
  zs.avail_out = (uInt)cap;
  int rc = inflate(&zs, Z_SYNC_FLUSH);
  long got = (long)(cap - zs.avail_out);
  inflateEnd(&zs);
  return (rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END) && zs.avail_in == 0 ? got : -1;
}

/* gzip: the head queued before goes out as it is; every flush after it
 * leaves a gzip stream the client decodes up to the last event at once. */
/* Inflates one whole gzip member: the decoded length when in[0..n) is
 * exactly a complete member (trailer, CRC and length checked by zlib),
 * else -1. */
static long gunzip_whole(const char *in, size_t n, char *out, size_t cap) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + 15) != Z_OK) return -1;
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  zs.next_out = (Bytef *)out;
  zs.avail_out = (uInt)cap;
  int rc = inflate(&zs, Z_FINISH);
  long got = (long)(cap - zs.avail_out);
  inflateEnd(&zs);
  return rc == Z_STREAM_END && zs.avail_in == 0 ? got : -1;
}

/* A gzip stream closed gracefully ends its gzip member (the trailer goes
 * out before the close), also when nothing was queued at the close; a hard
 * close does not. */
static void test_gzip_finish(void) {
  static char wire[1 << 16], plain[1 << 16];
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n";
  for (int mode = 0; mode < 3; mode++) { /* 0: close with events queued, 1: with none, 2: hard */
    uv_loop_t loop;
    uv_loop_init(&loop);
    sockpair sp;
    CHECK(sockpair_open(&sp, &loop, 0, 0) == 0);
    sse_hub *h = sse_hub_new();
    sse_sub *s = sse_sub_new((uv_stream_t *)&sp.pipe, 0, SSE_SLOW_CLOSE);
    CHECK(push_text(s, head) == 1);
    CHECK(sse_sub_set_gzip(s, 6, 12, 5) == 0);
    add(h, s);
    pub(h, NULL, "data: one\n\n");
    if (mode != 0) sse_hub_flush(h, 0); /* written: nothing queued at the close */
    if (mode == 0) {
      pub(h, NULL, "data: two\n\n");
      sse_hub_flush(h, 0);
      pub(h, NULL, "data: three\n\n"); /* queued at the close */
    }
    int r = sse_sub_close(s, mode != 2, 0, 5);
    CHECK_INT(r, mode != 2);
    for (int i = 0; i < 10 && sse_sub_state(s) != SSE_SUB_CLOSED; i++) {
      sse_hub_flush(h, 0);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    CHECK(sse_sub_state(s) == SSE_SUB_CLOSED);
    size_t got = 0;
    drain_fd(sp.peer, wire, sizeof wire, &got);
    size_t hl = sizeof head - 1;
    CHECK(got > hl && memcmp(wire, head, hl) == 0);
    long pn = gunzip_whole(wire + hl, got - hl, plain, sizeof plain);
    if (mode == 0) {
      CHECKF(pn == 35 && memcmp(plain, "data: one\n\ndata: two\n\ndata: three\n\n", 35) == 0,
             "mode %d: decoded %ld", mode, pn);
    } else if (mode == 1) {
      CHECKF(pn == 11 && memcmp(plain, "data: one\n\n", 11) == 0, "mode %d: decoded %ld", mode, pn);
    } else {
      CHECK(pn == -1); /* no trailer after a hard close */
    }
    sse_sub_stats st;
    sse_sub_get_stats(s, &st);
    CHECK(st.bytes_sent == got && st.gzip_out + hl == got);
    sse_sub_free(s);
    sse_hub_free(h);
    sockpair_close(&sp);
    loop_finish(&loop);
  }
}

static void test_gzip(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sockpair sp;
  CHECK(sockpair_open(&sp, &loop, 0, 0) == 0);
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new((uv_stream_t *)&sp.pipe, 0, SSE_SLOW_CLOSE);
  sse_sub *pull = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_sub_set_gzip(pull, 6, 12, 5) == SSE_HUB_EINVAL); /* push only */
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n";
  CHECK(push_text(s, head) == 1);
  CHECK(sse_sub_set_gzip(s, 6, 8, 5) == SSE_HUB_EINVAL);  /* window 8: gzip needs 9.. */
  CHECK(sse_sub_set_gzip(s, 6, 12, 5) == 0);
  CHECK(sse_sub_set_gzip(s, 6, 12, 5) == SSE_HUB_EINVAL); /* once */
  add(h, s);
  static char wire[1 << 16], plain[1 << 16];
  size_t got = 0;
  char want[1 << 14];
  size_t wn = 0;
  for (int i = 0; i < 20; i++) {
    char ev[128];
    int n = snprintf(ev, sizeof ev, "id: %d\ndata: {\"n\":%d,\"text\":\"hello hello hello\"}\n\n", i, i);
    CHECK(pub(h, NULL, ev) == 1);
    memcpy(want + wn, ev, (size_t)n);
    wn += (size_t)n;
    if (i % 5 == 4) { /* a loop turn's writes: one flush */
      sse_hub_flush(h, 0);
      drain_fd(sp.peer, wire, sizeof wire, &got);
      size_t hl = sizeof head - 1;
      CHECK(got > hl && memcmp(wire, head, hl) == 0); /* the head is not compressed */
      long pn = gunzip_prefix(wire + hl, got - hl, plain, sizeof plain);
      CHECKF(pn == (long)wn && memcmp(plain, want, wn) == 0, "after %d events: decoded %ld of %zu", i + 1, pn, wn);
    }
  }
  sse_sub_stats st;
  sse_sub_get_stats(s, &st);
  CHECK(st.gzip_in == wn && st.gzip_out + sizeof head - 1 == got && st.bytes_sent == got);
  CHECK(st.gzip_out < wn / 2);                 /* JSON events compress */
  CHECK(st.gzip_memory > 20000 && st.gzip_memory < 80000); /* window 12, memLevel 5: ~40 KiB */
  CHECK(st.queued == 0);
  sse_hub_counters c;
  sse_hub_get_counters(h, &c);
  CHECK(c.gzip_in == wn && c.gzip_out == st.gzip_out && c.bytes_sent == got); /* the head too: written in the hub */
  /* a graceful close drains the compressed bytes too */
  pub(h, NULL, "data: last\n\n");
  CHECK(sse_sub_close(s, 1, 0, 5) == 1);
  sse_hub_flush(h, 0);
  for (int i = 0; i < 10 && sse_sub_state(s) != SSE_SUB_CLOSED; i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(sse_sub_state(s) == SSE_SUB_CLOSED);
  drain_fd(sp.peer, wire, sizeof wire, &got);
  long pn = gunzip_prefix(wire + sizeof head - 1, got - (sizeof head - 1), plain, sizeof plain);
  CHECK(pn == (long)wn + 12 && memcmp(plain + wn, "data: last\n\n", 12) == 0);
  sse_sub_free(s);
  sse_sub_free(pull);
  sse_hub_free(h);
  sockpair_close(&sp);
  loop_finish(&loop);
}

/* sse_hub_move: an open sub is registered in the new hub without topics; a
 * draining one keeps draining there and is reported by its closed list; a
 * pending ready report goes with it; a reported closed one does not move. */
static void test_move(void) {
  sse_hub *a = sse_hub_new(), *b = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_hub_move(a, s) == 0 && sse_sub_hub(s) == a && sse_hub_count(a) == 1);
  CHECK(sse_hub_subscribe(s, "t", 1) == 1);
  pub(a, "t", "one");
  CHECK(sse_hub_move(b, s) == 0);
  CHECK(sse_hub_count(a) == 0 && sse_hub_count(b) == 1 && sse_hub_topic_count(a, "t", 1) == 0);
  CHECK(sse_hub_next_ready(a) == NULL && sse_hub_next_ready(b) == s); /* the report moved */
  CHECK(pub(b, "t", "x") == 0 && pub(b, NULL, "two") == 1);
  CHECK(sse_sub_close(s, 1, 10.0, 5.0) == 1 && sse_sub_state(s) == SSE_SUB_DRAINING);
  CHECK(sse_hub_draining(b) == 1);
  CHECK(sse_hub_move(a, s) == 0 && sse_hub_draining(b) == 0 && sse_hub_draining(a) == 1);
  CHECK(sse_hub_count(a) == 0); /* draining: out of the fan-out */
  expect_take(s, "onetwo");
  CHECK(sse_sub_state(s) == SSE_SUB_CLOSED && sse_hub_draining(a) == 0);
  CHECK(sse_hub_next_closed(b) == NULL && sse_hub_next_closed(a) == s);
  CHECK(sse_hub_move(b, s) == SSE_HUB_ECLOSED && sse_sub_hub(s) == a); /* reported: stays */
  CHECK(sse_hub_any_sub(a) == s && sse_hub_any_sub(b) == NULL);
  sse_sub_free(s);
  CHECK(sse_hub_any_sub(a) == NULL);
  /* the turn flag: set by the owner, or by a loop of the hub's own */
  CHECK(sse_hub_turns(a) == 0);
  sse_hub_set_turns(a, 1);
  CHECK(sse_hub_turns(a) == 1 && sse_hub_busy(a) == 0);
  sse_hub_free(a);
  sse_hub_free(b);
}

/* Sums the "dropped" counts of the drop gap events in p[0..n). */
static long gap_sum(const char *p, size_t n) {
  long sum = 0;
  const char *end = p + n;
  static const char key[] = "\"dropped\":";
  for (const char *q = p; (q = memmem(q, (size_t)(end - q), key, sizeof key - 1)); q++)
    if (q[sizeof key - 1] != 'n') sum += strtol(q + sizeof key - 1, NULL, 10);
  return sum;
}

/* drop_oldest on a push sub whose gap event is in a write: the next drops
 * make a new gap event behind the write, and every frame dropped is counted
 * by exactly one gap event the client gets (a lost count came from one
 * gap flag for two gap frames: when the one written was popped, the flag
 * went while the other was queued, and the next drop remade that one
 * counting only the new drops). Found by fuzz_hub. */
static void test_drop_gap_in_flight(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sockpair sp;
  CHECK(sockpair_open(&sp, &loop, 2048, 2048) == 0);
  fcntl(sp.peer, F_SETFL, O_NONBLOCK);
  sse_hub *h = sse_hub_new();
  sse_hub_set_turns(h, 1); /* a completed write leaves the rest to the next flush */
  sse_sub *s = sse_sub_new((uv_stream_t *)&sp.pipe, 1500, SSE_SLOW_DROP_OLDEST);
  add(h, s);
  static char wire[1 << 20];
  size_t got = 0;
  char ev[400];
  memset(ev, 'x', sizeof ev);
  memcpy(ev, "data: ", 6);
  memcpy(ev + sizeof ev - 2, "\n\n", 2);
  const char *bad = NULL;
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < 6; i++) {
      sse_frame *f = sse_frame_new(ev, sizeof ev, NULL, 0);
      sse_hub_publish(h, f, NULL, 0, 0);
      sse_frame_unref(f);
      if (!bad) bad = sse_sub_check(s);
    }
    sse_hub_flush(h, 0);
    if (round % 3 == 2) { /* the client reads now and then */
      drain_fd(sp.peer, wire, sizeof wire, &got);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (!bad) bad = sse_sub_check(s);
  }
  for (int i = 0; i < 100 && sse_sub_queued(s) > 0; i++) {
    sse_hub_flush(h, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    drain_fd(sp.peer, wire, sizeof wire, &got);
  }
  drain_fd(sp.peer, wire, sizeof wire, &got);
  CHECKF(bad == NULL, "sse_sub_check: %s", bad ? bad : "");
  CHECK(sse_sub_queued(s) == 0);
  sse_sub_stats st;
  sse_sub_get_stats(s, &st);
  CHECK(st.dropped > 0);
  CHECK_INT(st.bytes_sent, got);
  CHECK_INT(gap_sum(wire, got), st.dropped);
  sse_sub_free(s);
  sse_hub_free(h);
  sockpair_close(&sp);
  loop_finish(&loop);
}

/* Two drop gap events queued at once (one exempt, taken while the other
 * waits behind a replay): the next drop remakes the waiting one with every
 * frame it counted (one gap flag for two gap frames went with the first,
 * and the remade event counted only the new drops). Found by fuzz_hub. */
static void test_two_gaps(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 200, SSE_SLOW_DROP_OLDEST);
  add(h, s);
  char fr[64];
  snprintf(fr, sizeof fr, "f-%037d\n", 0); /* 40 bytes */
  for (int i = 0; i < 6; i++) pub(h, NULL, fr); /* a gap event, then frames */
  sse_sub_replay_begin(s);                     /* _send_raw(bytes, true) */
  for (int i = 0; i < 6; i++) pub(h, NULL, fr); /* drops behind the replay */
  CHECK(sse_sub_check(s) == NULL);
  size_t n = sse_sub_take_size(s);
  char *buf = malloc(n + 1 + 4096);
  size_t got = sse_sub_take(s, buf);           /* what precedes the replay */
  for (int i = 0; i < 6; i++) pub(h, NULL, fr); /* drops again */
  CHECK(sse_sub_check(s) == NULL);
  sse_sub_replay_end(s, 0, NULL);
  got += sse_sub_take(s, buf + got);
  CHECK(sse_sub_check(s) == NULL);
  CHECK_INT(gap_sum(buf, got), stats_of(s).dropped);
  free(buf);
  sse_sub_free(s);
  sse_hub_free(h);
}

/* A graceful close during an asynchronous replay: the live frames that
 * waited go, the replayed part (a consistent prefix) is still delivered,
 * and the outbox stays consistent (it dropped the replayed frames without
 * counting them out of the exempt ones). Found by fuzz_hub. */
static void test_close_while_replaying(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_frame *hf = frame("HEAD\r\n\r\n");
  CHECK(sse_sub_push_head(s, hf) == 0);
  sse_frame_unref(hf);
  add(h, s);
  sse_sub_replay_begin(s);
  push_seq(s, "data: live\n\n", 9);
  sse_frame *r = seq_frame("data: r1\n\n", 1);
  CHECK(sse_sub_replay_frame(s, r) == 0);
  sse_frame_unref(r);
  CHECK(sse_sub_close(s, 1, 0, 5) == 1);
  CHECK(sse_sub_check(s) == NULL);
  expect_take(s, "HEAD\r\n\r\ndata: r1\n\n");
  CHECK(sse_sub_state(s) == SSE_SUB_CLOSED && sse_sub_check(s) == NULL);
  sse_sub_free(s);
  sse_hub_free(h);
}

/* Drain watches: the hub reports a watched sub once its outbox is at or
 * below the mark after a take or a write (or it closed), once; the report
 * makes the hub busy; a remove ends the watch; a move takes it along. */
static void test_drain_watch(void) {
  sse_hub *h = sse_hub_new(), *h2 = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_sub_watch_drain(s, 0) == SSE_HUB_ECLOSED); /* in no hub */
  add(h, s);
  for (int i = 0; i < 10; i++) pub(h, NULL, "data: 0123456789\n\n"); /* 18 bytes each */
  while (sse_hub_next_ready(h)) {}
  CHECK(sse_sub_watch_drain(s, 100) == 0 && sse_sub_drain_watched(s));
  CHECK(sse_hub_next_drained(h) == NULL && !sse_hub_busy(h)); /* 180 bytes > 100 */
  CHECK(sse_hub_check(h) == NULL && sse_sub_check(s) == NULL);
  pub(h, NULL, "x");
  while (sse_hub_next_ready(h)) {}
  char *got = take(s);
  free(got);
  CHECK(sse_hub_busy(h));
  CHECK(sse_hub_next_drained(h) == s && !sse_sub_drain_watched(s));
  CHECK(sse_hub_next_drained(h) == NULL && !sse_hub_busy(h)); /* once */
  /* due at once when already at the mark */
  CHECK(sse_sub_watch_drain(s, 0) == 0 && sse_hub_next_drained(h) == s);
  /* a closed sub is due */
  pub(h, NULL, "data: y\n\n");
  while (sse_hub_next_ready(h)) {}
  CHECK(sse_sub_watch_drain(s, 0) == 0 && sse_hub_next_drained(h) == NULL);
  CHECK(sse_hub_move(h2, s) == 0 && sse_sub_drain_watched(s)); /* the watch moves */
  CHECK(sse_hub_check(h) == NULL && sse_hub_check(h2) == NULL);
  sse_sub_close(s, 0, 0, 0);
  CHECK(sse_hub_next_drained(h) == NULL && sse_hub_next_drained(h2) == s);
  CHECK(sse_sub_watch_drain(s, 0) == SSE_HUB_ECLOSED);
  sse_sub_free(s);
  /* a remove ends the watch (the owner reports it) */
  s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  add(h, s);
  pub(h, NULL, "data: z\n\n");
  CHECK(sse_sub_watch_drain(s, 0) == 0);
  sse_hub_remove(s);
  CHECK(!sse_sub_drain_watched(s) && sse_hub_next_drained(h) == NULL && sse_sub_check(s) == NULL);
  sse_sub_free(s);
  /* a push sub: due when a write brings its outbox down to the mark */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sockpair sp;
  CHECK(sockpair_open(&sp, &loop, 2048, 0) == 0);
  s = sse_sub_new((uv_stream_t *)&sp.pipe, 0, SSE_SLOW_CLOSE);
  add(h, s);
  char ev[1000];
  memset(ev, 'x', sizeof ev);
  memcpy(ev, "data: ", 6);
  ev[sizeof ev - 2] = ev[sizeof ev - 1] = '\n';
  for (int i = 0; i < 40; i++) {
    sse_frame *f = sse_frame_new(ev, sizeof ev, NULL, 0);
    sse_hub_publish(h, f, NULL, 0, 0);
    sse_frame_unref(f);
  }
  sse_hub_flush(h, 0); /* the socket is full */
  CHECK(sse_sub_queued(s) > 20000);
  CHECK(sse_sub_watch_drain(s, 5000) == 0 && sse_hub_next_drained(h) == NULL);
  static char wire[1 << 16];
  size_t n = 0;
  int reported = 0;
  for (int i = 0; i < 200 && !reported; i++) {
    drain_fd(sp.peer, wire, sizeof wire, &n);
    uv_run(&loop, UV_RUN_NOWAIT);
    sse_hub_flush(h, 0);
    sse_sub *d = sse_hub_next_drained(h);
    if (d) {
      CHECK(d == s && sse_sub_queued(s) <= 5000);
      reported = 1;
    }
  }
  CHECK(reported);
  sse_sub_free(s);
  sse_hub_free(h);
  sse_hub_free(h2);
  sockpair_close(&sp);
  loop_finish(&loop);
}

int main(void) {
  test_topics();
  test_each_topic();
  test_many_topics();
  test_close_policy();
  test_drop_oldest();
  test_drop_keeps_head();
  test_oversized();
  test_async_replay();
  test_ring_attach();
  test_close_states();
  test_turn_bytes();
  test_keepalive();
  test_frames_shared();
  test_counters();
  test_gzip();
  test_gzip_finish();
  test_move();
  test_drop_gap_in_flight();
  test_close_while_replaying();
  test_two_gaps();
  test_drain_watch();
  return check_summary("test_hub");
}
