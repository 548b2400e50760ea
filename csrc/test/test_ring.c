/* test_ring.c - unit tests of the replay ring (no Lua), run under ASan+UBSan
 * by `make ctest`. Leaks of frames or slots are reported by LeakSanitizer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

#include "check.h"

/* A frame whose bytes are `s` (no topic). */
static sse_frame *mk(const char *s) {
  sse_frame *f = sse_frame_new(s, strlen(s), NULL, 0);
  if (!f) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return f;
}

/* A frame of n bytes, all 'x'. */
static sse_frame *mkn(size_t n) {
  sse_frame *f = sse_frame_alloc(n, NULL, 0);
  if (!f) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  memset(f->bytes, 'x', n);
  return f;
}

static sse_ring *ring(size_t max_events, size_t max_bytes, double ttl) {
  sse_ring *r = sse_ring_new("ep", 2, max_events, max_bytes, ttl);
  if (!r) {
    fprintf(stderr, "sse_ring_new failed\n");
    exit(2);
  }
  return r;
}

static int locate(const sse_ring *r, const char *id, size_t *index) {
  return sse_ring_locate(r, id, strlen(id), index);
}

static void test_new_validates(void) {
  CHECK(sse_ring_new("", 0, 10, 10, 1) == NULL);
  CHECK(sse_ring_new(NULL, 0, 10, 10, 1) == NULL);
  CHECK(sse_ring_new("a-b", 3, 10, 10, 1) == NULL);
  CHECK(sse_ring_new("a b", 3, 10, 10, 1) == NULL);
  CHECK(sse_ring_new("abcdefghijklmnopqrstuvwxyz0123456", 33, 10, 10, 1) == NULL);
  CHECK(sse_ring_new("ep", 2, 0, 10, 1) == NULL);
  CHECK(sse_ring_new("ep", 2, SSE_RING_MAX_EVENTS + 1u, 10, 1) == NULL);
  CHECK(sse_ring_new("ep", 2, 10, 0, 1) == NULL);
  CHECK(sse_ring_new("ep", 2, 10, 10, 0) == NULL);
  CHECK(sse_ring_new("ep", 2, 10, 10, -1) == NULL);
  CHECK(sse_ring_new("ep", 2, 10, 10, NAN) == NULL);

  sse_ring *r = sse_ring_new("abcdefghijklmnopqrstuvwxyzABCD_9", 32,
                             SSE_RING_MAX_EVENTS, 1, INFINITY);
  CHECK(r != NULL);
  size_t el = 0;
  CHECK_STR(sse_ring_epoch(r, &el), "abcdefghijklmnopqrstuvwxyzABCD_9");
  CHECK(el == 32);
  CHECK(sse_ring_max_events(r) == SSE_RING_MAX_EVENTS);
  CHECK(sse_ring_max_bytes(r) == 1);
  CHECK(isinf(sse_ring_ttl(r)));
  /* the longest possible id fits SSE_RING_ID_CAP */
  char id[SSE_RING_ID_CAP];
  CHECK(sse_ring_format_id(r, UINT64_MAX, id, sizeof id) == SSE_RING_ID_CAP - 1);
  CHECK_STR(id, "abcdefghijklmnopqrstuvwxyzABCD_9-3w5e11264sgsf");
  sse_ring_free(r);
  sse_ring_free(NULL);
}

static void test_default_epoch(void) {
  char buf[SSE_RING_DEFAULT_EPOCH_CAP];
  size_t n = sse_ring_default_epoch(buf, sizeof buf);
  CHECK(n >= 11 && n <= 13);
  CHECK(strlen(buf) == n);
  CHECK(sse_ring_epoch_valid(buf, n));
  CHECK(sse_ring_default_epoch(buf, SSE_RING_DEFAULT_EPOCH_CAP - 1) == 0);
  sse_ring *r = sse_ring_new(buf, n, 4, 100, 1);
  CHECK(r != NULL);
  sse_ring_free(r);
}

static void test_empty(void) {
  sse_ring *r = ring(4, 100, 10);
  size_t idx = 99;
  CHECK(sse_ring_len(r) == 0);
  CHECK(sse_ring_bytes(r) == 0);
  CHECK(sse_ring_first_seq(r) == 1);
  CHECK(sse_ring_last_seq(r) == 0);
  CHECK(sse_ring_next_seq(r) == 1);
  CHECK(sse_ring_frame_at(r, 0) == NULL);
  /* seq 0 is the position before the first event */
  CHECK(locate(r, "ep-0", &idx) == SSE_RING_FOUND && idx == 0);
  CHECK(locate(r, "ep-1", &idx) == SSE_RING_GAP_FUTURE && idx == 0);
  CHECK(sse_ring_expire(r, 1e9) == 0);
  sse_ring_clear(r);
  sse_ring_free(r);
}

static void test_format_and_parse(void) {
  sse_ring *r = ring(4, 100, 10);
  char id[SSE_RING_ID_CAP];
  uint64_t seq = 7;
  CHECK(sse_ring_format_id(r, 0, id, sizeof id) == 4);
  CHECK_STR(id, "ep-0");
  CHECK(sse_ring_format_id(r, 35, id, sizeof id) == 4);
  CHECK_STR(id, "ep-z");
  CHECK(sse_ring_format_id(r, 36, id, sizeof id) == 5);
  CHECK_STR(id, "ep-10");
  CHECK(sse_ring_format_id(r, 1295, id, sizeof id) == 5);
  CHECK_STR(id, "ep-zz");
  strcpy(id, "untouched");
  CHECK(sse_ring_format_id(r, 1, id, SSE_RING_ID_CAP - 1) == 0);
  CHECK_STR(id, "untouched");

  CHECK(sse_ring_parse_id(r, "ep-0", 4, &seq) == SSE_RING_FOUND && seq == 0);
  CHECK(sse_ring_parse_id(r, "ep-zz", 5, &seq) == SSE_RING_FOUND && seq == 1295);
  CHECK(sse_ring_parse_id(r, "ep-3w5e11264sgsf", 16, &seq) == SSE_RING_FOUND &&
        seq == UINT64_MAX);
  seq = 7;
  /* overflow, too many digits, leading zero, uppercase, junk */
  CHECK(sse_ring_parse_id(r, "ep-3w5e11264sgsg", 16, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-zzzzzzzzzzzzz", 16, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-10000000000000", 17, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-01", 5, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-00", 5, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-A", 4, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-", 3, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "-1", 2, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep1", 3, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-1-2", 6, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-1 ", 5, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "e.p-1", 5, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "ep-1\0", 5, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "", 0, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, NULL, 0, &seq) == SSE_RING_GAP_MALFORMED);
  CHECK(sse_ring_parse_id(r, "42", 2, &seq) == SSE_RING_GAP_MALFORMED);
  /* well formed, another epoch (case matters) */
  CHECK(sse_ring_parse_id(r, "eq-1", 4, &seq) == SSE_RING_GAP_EPOCH);
  CHECK(sse_ring_parse_id(r, "EP-1", 4, &seq) == SSE_RING_GAP_EPOCH);
  CHECK(sse_ring_parse_id(r, "e-1", 3, &seq) == SSE_RING_GAP_EPOCH);
  CHECK(sse_ring_parse_id(r, "epp-1", 5, &seq) == SSE_RING_GAP_EPOCH);
  CHECK(seq == 7); /* untouched on failure */
  /* length is honoured: "ep-12" cut to 4 bytes is "ep-1" */
  CHECK(sse_ring_parse_id(r, "ep-12", 4, &seq) == SSE_RING_FOUND && seq == 1);
  sse_ring_free(r);
}

static void test_store_order_and_locate(void) {
  sse_ring *r = ring(8, 1000, 100);
  const char *words[] = {"one", "two", "three", "four", "five"};
  for (int i = 0; i < 5; i++) {
    sse_frame *f = mk(words[i]);
    CHECK(sse_ring_next_seq(r) == (uint64_t)i + 1);
    CHECK(sse_ring_store(r, f, 1.5 * i) == 0);
    CHECK(f->seq == (uint64_t)i + 1);
    CHECK(f->time == 1.5 * i);
  }
  CHECK(sse_ring_len(r) == 5);
  CHECK(sse_ring_bytes(r) == 3 + 3 + 5 + 4 + 4);
  CHECK(sse_ring_first_seq(r) == 1 && sse_ring_last_seq(r) == 5);
  for (size_t i = 0; i < 5; i++) {
    sse_frame *f = sse_ring_frame_at(r, i);
    CHECK(f && f->seq == i + 1 && f->len == strlen(words[i]) &&
          memcmp(f->bytes, words[i], f->len) == 0);
  }
  CHECK(sse_ring_frame_at(r, 5) == NULL);
  size_t idx = 99;
  CHECK(locate(r, "ep-0", &idx) == SSE_RING_FOUND && idx == 0);
  CHECK(locate(r, "ep-1", &idx) == SSE_RING_FOUND && idx == 1);
  CHECK(locate(r, "ep-4", &idx) == SSE_RING_FOUND && idx == 4);
  CHECK(locate(r, "ep-5", &idx) == SSE_RING_FOUND && idx == 5);
  idx = 99;
  CHECK(locate(r, "ep-6", &idx) == SSE_RING_GAP_FUTURE && idx == 0);
  idx = 99;
  CHECK(locate(r, "other-1", &idx) == SSE_RING_GAP_EPOCH && idx == 0);
  idx = 99;
  CHECK(locate(r, "garbage", &idx) == SSE_RING_GAP_MALFORMED && idx == 0);
  CHECK(sse_ring_locate_seq(r, UINT64_MAX, &idx) == SSE_RING_GAP_FUTURE);
  sse_ring_free(r);
}

static void test_evict_by_count(void) {
  sse_ring *r = ring(3, 1000, 100);
  for (int i = 0; i < 5; i++) CHECK(sse_ring_store(r, mk("ab"), 0) == 0);
  CHECK(sse_ring_len(r) == 3);
  CHECK(sse_ring_bytes(r) == 6);
  CHECK(sse_ring_first_seq(r) == 3 && sse_ring_last_seq(r) == 5);
  CHECK(sse_ring_frame_at(r, 0)->seq == 3);
  CHECK(sse_ring_frame_at(r, 2)->seq == 5);
  size_t idx = 99;
  CHECK(locate(r, "ep-2", &idx) == SSE_RING_FOUND && idx == 0);
  CHECK(locate(r, "ep-1", &idx) == SSE_RING_GAP_EVICTED && idx == 0);
  CHECK(locate(r, "ep-0", &idx) == SSE_RING_GAP_EVICTED && idx == 0);
  sse_ring_free(r);
}

static void test_evict_by_bytes(void) {
  sse_ring *r = ring(100, 10, 100);
  CHECK(sse_ring_store(r, mkn(4), 0) == 0);
  CHECK(sse_ring_store(r, mkn(4), 0) == 0);
  CHECK(sse_ring_bytes(r) == 8);
  CHECK(sse_ring_store(r, mkn(2), 0) == 0); /* exactly max_bytes fits */
  CHECK(sse_ring_len(r) == 3 && sse_ring_bytes(r) == 10);
  CHECK(sse_ring_store(r, mkn(5), 0) == 0); /* evicts the two 4-byte frames */
  CHECK(sse_ring_len(r) == 2 && sse_ring_bytes(r) == 7);
  CHECK(sse_ring_first_seq(r) == 3);
  CHECK(sse_ring_store(r, mkn(10), 0) == 0); /* evicts everything else */
  CHECK(sse_ring_len(r) == 1 && sse_ring_bytes(r) == 10);
  CHECK(sse_ring_first_seq(r) == 5 && sse_ring_last_seq(r) == 5);

  /* an event larger than max_bytes is numbered, then released with the rest */
  sse_frame *big = mkn(11);
  sse_frame_ref(big); /* keep it to look at */
  CHECK(sse_ring_store(r, big, 7) == 0);
  CHECK(big->seq == 6 && big->time == 7 && big->refs == 1);
  sse_frame_unref(big);
  CHECK(sse_ring_len(r) == 0 && sse_ring_bytes(r) == 0);
  CHECK(sse_ring_first_seq(r) == 7 && sse_ring_last_seq(r) == 6);
  size_t idx = 99;
  CHECK(locate(r, "ep-6", &idx) == SSE_RING_FOUND && idx == 0);
  CHECK(locate(r, "ep-5", &idx) == SSE_RING_GAP_EVICTED);
  CHECK(sse_ring_store(r, mkn(1), 8) == 0);
  CHECK(sse_ring_frame_at(r, 0)->seq == 7);
  CHECK(locate(r, "ep-6", &idx) == SSE_RING_FOUND && idx == 0);
  sse_ring_free(r);
}

static void test_ttl(void) {
  sse_ring *r = ring(100, 1000, 10);
  CHECK(sse_ring_store(r, mk("a"), 0) == 0);
  CHECK(sse_ring_store(r, mk("b"), 5) == 0);
  CHECK(sse_ring_store(r, mk("c"), 9) == 0);
  CHECK(sse_ring_expire(r, 9.999) == 0);
  CHECK(sse_ring_expire(r, 10) == 1); /* aged exactly ttl: gone */
  CHECK(sse_ring_len(r) == 2 && sse_ring_first_seq(r) == 2);
  CHECK(sse_ring_expire(r, 14.5) == 0);
  CHECK(sse_ring_expire(r, 15) == 1);
  size_t idx;
  CHECK(locate(r, "ep-1", &idx) == SSE_RING_GAP_EVICTED);
  CHECK(locate(r, "ep-2", &idx) == SSE_RING_FOUND && idx == 0);
  /* store expires lazily too */
  CHECK(sse_ring_store(r, mk("d"), 100) == 0);
  CHECK(sse_ring_len(r) == 1 && sse_ring_first_seq(r) == 4);
  CHECK(sse_ring_bytes(r) == 1);
  CHECK(sse_ring_expire(r, 110) == 1);
  CHECK(sse_ring_len(r) == 0 && sse_ring_last_seq(r) == 4);
  CHECK(locate(r, "ep-4", &idx) == SSE_RING_FOUND && idx == 0);
  CHECK(locate(r, "ep-3", &idx) == SSE_RING_GAP_EVICTED);
  sse_ring_free(r);

  r = ring(4, 100, INFINITY);
  CHECK(sse_ring_store(r, mk("a"), 0) == 0);
  CHECK(sse_ring_expire(r, 1e300) == 0);
  sse_ring_free(r);
}

static void test_growth_and_wrap(void) {
  sse_ring *r = ring(100, 1u << 20, 10);
  double now = 0;
  /* wrap the initial array, then make it grow while head != 0 */
  for (int i = 0; i < 10; i++) CHECK(sse_ring_store(r, mkn(1), now) == 0);
  now = 5;
  for (int i = 0; i < 6; i++) CHECK(sse_ring_store(r, mkn(1), now) == 0);
  now = 10; /* the first 10 expire on the next store */
  for (int i = 0; i < 12; i++) CHECK(sse_ring_store(r, mkn(1), now) == 0);
  CHECK(sse_ring_len(r) == 18);
  /* 5 more: grows past 16 with a wrapped head */
  for (int i = 0; i < 200; i++) {
    CHECK(sse_ring_store(r, mkn(1), now) == 0);
    uint64_t first = sse_ring_first_seq(r);
    size_t n = sse_ring_len(r);
    CHECK(n <= 100);
    for (size_t k = 0; k < n; k++) CHECK(sse_ring_frame_at(r, k)->seq == first + k);
  }
  CHECK(sse_ring_len(r) == 100);
  CHECK(sse_ring_last_seq(r) == 10 + 6 + 12 + 200);
  sse_ring_free(r);
}

static void test_clear_and_refs(void) {
  sse_ring *r = ring(2, 100, 10);
  sse_frame *a = mk("a"), *b = mk("b"), *c = mk("c");
  sse_frame_ref(a);
  sse_frame_ref(b);
  sse_frame_ref(c);
  CHECK(sse_ring_store(r, a, 0) == 0);
  CHECK(sse_ring_store(r, b, 0) == 0);
  CHECK(a->refs == 2 && b->refs == 2);
  CHECK(sse_ring_store(r, c, 0) == 0); /* evicts a */
  CHECK(a->refs == 1 && c->refs == 2);
  sse_ring_clear(r);
  CHECK(b->refs == 1 && c->refs == 1);
  CHECK(sse_ring_len(r) == 0 && sse_ring_bytes(r) == 0);
  CHECK(sse_ring_first_seq(r) == 4 && sse_ring_last_seq(r) == 3);
  size_t idx;
  CHECK(locate(r, "ep-3", &idx) == SSE_RING_FOUND && idx == 0);
  CHECK(locate(r, "ep-2", &idx) == SSE_RING_GAP_EVICTED);
  CHECK(sse_ring_store(r, mk("d"), 0) == 0);
  CHECK(sse_ring_frame_at(r, 0)->seq == 4);
  sse_frame_unref(a);
  sse_frame_unref(b);
  sse_frame_unref(c);
  sse_ring_free(r); /* frees d */
}

static void test_store_refuses(void) {
  sse_ring *r = ring(2, 100, 10);
  sse_frame *f = mk("x");
  CHECK(sse_ring_store(r, NULL, 0) == SSE_RING_EINVAL);
  CHECK(sse_ring_store(NULL, f, 0) == SSE_RING_EINVAL);
  CHECK(sse_ring_store(r, f, NAN) == SSE_RING_EINVAL);
  CHECK(f->refs == 1 && f->seq == 0);
  CHECK(sse_ring_next_seq(r) == 1 && sse_ring_len(r) == 0);
  sse_frame_unref(f);
  sse_ring_free(r);
}

/* A long random run against a model: the seqs and sizes the ring should hold. */
static uint64_t rng_state = 88172645463325252u;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_random_model(void) {
  enum { MAXN = 64 };
  struct { uint64_t seq; size_t len; double t; } model[MAXN];
  size_t mn = 0;
  uint64_t next = 1;
  size_t max_events = 1 + rnd() % 40, max_bytes = 20 + rnd() % 200;
  double ttl = 1 + (double)(rnd() % 50), now = 0;
  sse_ring *r = ring(max_events, max_bytes, ttl);
  for (int op = 0; op < 20000; op++) {
    unsigned k = (unsigned)(rnd() % 100);
    if (k < 60) { /* store */
      size_t len = rnd() % 30;
      CHECK(sse_ring_store(r, mkn(len), now) == 0);
      size_t keep = 0; /* model: expire, then evict, then append */
      while (keep < mn && now - model[keep].t >= ttl) keep++;
      memmove(model, model + keep, (mn - keep) * sizeof model[0]);
      mn -= keep;
      size_t bytes = 0;
      for (size_t i = 0; i < mn; i++) bytes += model[i].len;
      if (len > max_bytes) {
        mn = 0;
      } else {
        size_t drop = 0;
        while (drop < mn && (mn - drop >= max_events || bytes + len > max_bytes))
          bytes -= model[drop++].len;
        memmove(model, model + drop, (mn - drop) * sizeof model[0]);
        mn -= drop;
        model[mn].seq = next;
        model[mn].len = len;
        model[mn].t = now;
        mn++;
      }
      next++;
    } else if (k < 75) { /* time passes */
      now += (double)(rnd() % 8);
    } else if (k < 80) { /* expire */
      sse_ring_expire(r, now);
      size_t keep = 0;
      while (keep < mn && now - model[keep].t >= ttl) keep++;
      memmove(model, model + keep, (mn - keep) * sizeof model[0]);
      mn -= keep;
    } else if (k < 82) {
      sse_ring_clear(r);
      mn = 0;
    } else { /* locate a seq near the window */
      uint64_t last = next - 1;
      uint64_t span = max_events + 4;
      uint64_t s = last + 2 > span ? last + 2 - rnd() % span : rnd() % (last + 2);
      char id[SSE_RING_ID_CAP];
      size_t n = sse_ring_format_id(r, s, id, sizeof id);
      size_t idx = 99;
      int st = sse_ring_locate(r, id, n, &idx);
      uint64_t first = mn ? model[0].seq : next;
      int want = s > last ? SSE_RING_GAP_FUTURE
               : s + 1 < first ? SSE_RING_GAP_EVICTED : SSE_RING_FOUND;
      CHECK(st == want);
      CHECK(idx == (want == SSE_RING_FOUND ? (size_t)(s + 1 - first) : 0));
    }
    /* invariants after every op */
    CHECK(sse_ring_len(r) == mn);
    CHECK(sse_ring_last_seq(r) == next - 1);
    size_t bytes = 0;
    for (size_t i = 0; i < mn; i++) {
      sse_frame *f = sse_ring_frame_at(r, i);
      CHECK(f && f->seq == model[i].seq && f->len == model[i].len && f->refs == 1);
      bytes += model[i].len;
    }
    CHECK(sse_ring_bytes(r) == bytes);
    CHECK(bytes <= max_bytes && mn <= max_events);
    if (check_failures) break;
  }
  sse_ring_free(r);
}

/* sse_ring_joined: the frames from an index on as one frame, cached until
 * the next store; NULL for fewer than two frames or more than max_bytes. */
static void test_joined(void) {
  sse_ring *r = ring(3, 1000, INFINITY);
  CHECK(sse_ring_joined(r, 0, 1000) == NULL); /* empty */
  CHECK(sse_ring_store(r, mk("a|"), 0) == 0);
  CHECK(sse_ring_joined(r, 0, 1000) == NULL); /* one frame: nothing to join */
  CHECK(sse_ring_store(r, mk("bb|"), 0) == 0);
  CHECK(sse_ring_store(r, mk("ccc|"), 0) == 0);
  sse_frame *j = sse_ring_joined(r, 0, 1000);
  CHECK(j && j->len == 9 && memcmp(j->bytes, "a|bb|ccc|", 9) == 0);
  CHECK(j->topic == NULL && j->seq == 3 && j->refs == 2); /* ours and the cache's */
  sse_frame *again = sse_ring_joined(r, 0, 1000);
  CHECK(again == j && j->refs == 3); /* the same place: the cached copy */
  sse_frame_unref(again);
  sse_frame *from1 = sse_ring_joined(r, 1, 1000); /* another place: a new copy */
  CHECK(from1 && from1 != j && from1->len == 7 && memcmp(from1->bytes, "bb|ccc|", 7) == 0);
  CHECK(j->refs == 1); /* the cache moved on */
  CHECK(sse_ring_joined(r, 2, 1000) == NULL && sse_ring_joined(r, 3, 1000) == NULL);
  CHECK(sse_ring_joined(r, 0, 8) == NULL); /* 9 bytes > 8 */
  /* a store drops the cache (the newest changed): a fresh, longer copy */
  CHECK(sse_ring_store(r, mk("d|"), 0) == 0); /* evicts "a|" (3 events) */
  CHECK(from1->refs == 1);
  sse_frame *after = sse_ring_joined(r, 0, 1000);
  CHECK(after && after->len == 9 && memcmp(after->bytes, "bb|ccc|d|", 9) == 0 && after->seq == 4);
  sse_ring_clear(r); /* drops the cache too */
  CHECK(after->refs == 1);
  CHECK(sse_ring_joined(r, 0, 1000) == NULL);
  CHECK(sse_ring_store(r, mk("e|"), 0) == 0 && sse_ring_store(r, mk("f|"), 0) == 0);
  sse_frame *last = sse_ring_joined(r, 0, 1000);
  CHECK(last && memcmp(last->bytes, "e|f|", 4) == 0);
  sse_frame_unref(j);
  sse_frame_unref(from1);
  sse_frame_unref(after);
  sse_frame_unref(last);
  sse_ring_free(r); /* frees the cached copy: LeakSanitizer checks */
}

int main(void) {
  test_new_validates();
  test_joined();
  test_default_epoch();
  test_empty();
  test_format_and_parse();
  test_store_order_and_locate();
  test_evict_by_count();
  test_evict_by_bytes();
  test_ttl();
  test_growth_and_wrap();
  test_clear_and_refs();
  test_store_refuses();
  for (int i = 0; i < 20 && !check_failures; i++) test_random_model();
  return check_summary("test_ring");
}
