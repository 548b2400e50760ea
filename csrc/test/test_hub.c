/* test_hub.c - C unit test of the hub with pull subscribers (no sockets, no
 * Lua), run under ASan+UBSan: topics, fan-out counts, outbox bounds, both
 * slow policies, the gap frame, and teardown in every order. */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;
#define CHECK(c) do { checks++; if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static sse_frame *frame(const char *text) {
  return sse_frame_new(text, strlen(text), NULL, 0);
}

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
  checks++;
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "take: want [%s]\n       got [%s]\n", want, got);
    failures++;
  }
  free(got);
}

static void test_topics(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub *b = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  CHECK(sse_hub_add(h, a, 1) == 0 && sse_hub_add(h, b, 2) == 0);
  CHECK(sse_hub_add(h, a, 1) == 0); /* twice: no-op */
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
  sse_hub_flush(h);
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
  CHECK(b->hub == NULL);
  sse_sub_free(b);
}

static void test_many_topics(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_hub_add(h, s, 7);
  char name[32];
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(name, sizeof name, "topic-%d", i);
    CHECK(sse_hub_subscribe(s, name, (size_t)n) == 1);
  }
  CHECK(sse_hub_topics(h) == 1000 && s->ntopics == 1000);
  CHECK(pub(h, "topic-999", "x") == 1 && pub(h, "topic-1000", "x") == 0);
  sse_sub_free(s); /* frees its memberships and the topics */
  CHECK(sse_hub_topics(h) == 0 && sse_hub_count(h) == 0);
  sse_hub_free(h);
}

static void test_close_policy(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 10, SSE_SLOW_CLOSE);
  sse_hub_add(h, s, 1);
  CHECK(pub(h, NULL, "12345") == 1);
  CHECK(pub(h, NULL, "67890") == 1);
  CHECK(sse_sub_queued(s) == 10);
  CHECK(pub(h, NULL, "x") == 0); /* over the limit: failed, outbox released */
  CHECK(s->state == SSE_SUB_FAILED && s->fail == SSE_FAIL_SLOW && sse_sub_queued(s) == 0);
  CHECK(sse_hub_next_dead(h) == s && sse_hub_next_dead(h) == NULL);
  CHECK(pub(h, NULL, "y") == 0); /* a failed sub gets nothing more */
  sse_sub_free(s);
  sse_hub_free(h);
}

static void test_drop_oldest(void) {
  sse_hub *h = sse_hub_new();
  char gap[96];
  size_t glen = sse_gap_drop_event(2, gap, sizeof gap);
  CHECK(strcmp(gap, "event: sse-gap\ndata: {\"dropped\":2}\n\n") == 0 && glen == strlen(gap));
  /* five 20-byte frames fill a 104-byte outbox */
  sse_sub *s = sse_sub_new(NULL, 104, SSE_SLOW_DROP_OLDEST);
  sse_hub_add(h, s, 1);
  const char *fr[] = {"f1-................\n", "f2-................\n", "f3-................\n",
                      "f4-................\n", "f5-................\n", "f6-................\n",
                      "f7-................\n", "f8-................\n"};
  for (int i = 0; i < 5; i++) CHECK(pub(h, NULL, fr[i]) == 1);
  CHECK(sse_sub_queued(s) == 100 && s->dropped == 0);
  /* the sixth needs room: the oldest go, with room kept for the gap event */
  CHECK(pub(h, NULL, fr[5]) == 1);
  CHECK(s->dropped == 4 && s->state == SSE_SUB_OPEN);
  CHECK(sse_sub_queued(s) <= s->limit);
  CHECK(pub(h, NULL, fr[6]) == 1); /* fits beside the gap event */
  CHECK(s->dropped == 4);
  /* another drop replaces the gap event with one counting every drop */
  CHECK(pub(h, NULL, fr[7]) == 1);
  CHECK(sse_sub_queued(s) <= s->limit);
  char *out = take(s);
  CHECK(strcmp(out, "event: sse-gap\ndata: {\"dropped\":6}\n\n"
                    "f7-................\nf8-................\n") == 0);
  CHECK(s->dropped == 6);
  free(out);
  /* after the gap event was taken, a new drop starts a new count */
  CHECK(sse_sub_queued(s) == 0);
  sse_sub_free(s);
  sse_hub_free(h);
}

static void test_oversized_and_replay(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 10, SSE_SLOW_CLOSE);
  sse_hub_add(h, s, 1);
  /* an event larger than the whole limit is delivered to an empty outbox */
  CHECK(pub(h, NULL, "0123456789abcdef") == 1 && s->state == SSE_SUB_OPEN);
  CHECK(pub(h, NULL, "x") == 0 && s->state == SSE_SUB_FAILED); /* then the limit holds */
  sse_sub_free(s);

  /* a replay the client asked for does not count against the limit */
  s = sse_sub_new(NULL, 10, SSE_SLOW_CLOSE);
  sse_hub_add(h, s, 2);
  sse_frame *replay = frame("replay-replay-replay-");
  CHECK(sse_sub_push_exempt(s, replay, 0) == 1);
  CHECK(replay->refs == 3); /* caller, queue, exempt */
  CHECK(pub(h, NULL, "live1") == 1 && pub(h, NULL, "live2") == 1);
  CHECK(s->state == SSE_SUB_OPEN && sse_sub_queued(s) == 31);
  CHECK(pub(h, NULL, "x") == 0 && s->state == SSE_SUB_FAILED); /* 10 + 1 live bytes > 10 */
  CHECK(replay->refs == 1); /* released with the outbox */
  sse_sub_free(s);

  /* once taken, the replay's bytes are gone and the exemption with them */
  s = sse_sub_new(NULL, 10, SSE_SLOW_DROP_OLDEST);
  sse_hub_add(h, s, 3);
  CHECK(sse_sub_push_exempt(s, replay, 0) == 1);
  CHECK(pub(h, NULL, "live1") == 1);
  expect_take(s, "replay-replay-replay-live1");
  CHECK(replay->refs == 1 && s->exempt == NULL);
  sse_frame_unref(replay);
  sse_sub_free(s);
  sse_hub_free(h);
}

static void test_keepalive(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *a = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE), *b = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_hub_add(h, a, 1);
  sse_hub_add(h, b, 2);
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
    sse_hub_add(h, subs[i], (uint32_t)i + 1);
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

int main(void) {
  test_topics();
  test_many_topics();
  test_close_policy();
  test_drop_oldest();
  test_oversized_and_replay();
  test_keepalive();
  test_frames_shared();
  printf("hub: %d checks, %d failed\n", checks, failures);
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
