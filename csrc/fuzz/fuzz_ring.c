/* fuzz_ring.c - libFuzzer target for the replay ring (ring.c).
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -Icsrc \
 *     csrc/fuzz/fuzz_ring.c csrc/core/ring.c csrc/core/frame.c -o build/fuzz_ring
 *   build/fuzz_ring -max_total_time=60 csrc/fuzz/corpus/ring
 *
 * The input is a program: three bytes of limits (max_events 1..64, max_bytes
 * 1..1024, ttl 1..64 s, or no TTL), then one op per byte, some taking
 * operand bytes: store, time passes, expire, clear, locate an id made of
 * input bytes, locate a seq near the window, a store that fails. After every
 * op the ring is checked against a plain model (the seqs, sizes and times
 * it should hold):
 * - len, bytes, first/last seq and every frame_at agree with the model; the
 *   seqs are contiguous; each held frame has exactly one reference (the
 *   ring's) and frame_at(len) is NULL; the limits hold;
 * - locate agrees with the model's answer for every id and seq; an id that
 *   parses is canonical (format_id(seq) gives back the same bytes), and
 *   every formatted id parses back to its seq;
 * - failed stores change nothing; LeakSanitizer sees every frame freed. */
#include "ring.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXN 64

typedef struct model {
  uint64_t seq[MAXN];
  size_t len[MAXN];
  double t[MAXN];
  size_t n;
  uint64_t next;
  size_t max_events, max_bytes;
  double ttl;
} model;

static void model_drop(model *m, size_t k) {
  memmove(m->seq, m->seq + k, (m->n - k) * sizeof m->seq[0]);
  memmove(m->len, m->len + k, (m->n - k) * sizeof m->len[0]);
  memmove(m->t, m->t + k, (m->n - k) * sizeof m->t[0]);
  m->n -= k;
}

static void model_expire(model *m, double now) {
  size_t k = 0;
  while (k < m->n && now - m->t[k] >= m->ttl) k++;
  model_drop(m, k);
}

static size_t model_bytes(const model *m) {
  size_t b = 0;
  for (size_t i = 0; i < m->n; i++) b += m->len[i];
  return b;
}

static void model_store(model *m, size_t len, double now) {
  model_expire(m, now);
  if (len > m->max_bytes) {
    m->n = 0;
  } else {
    size_t bytes = model_bytes(m), k = 0;
    while (k < m->n && (m->n - k >= m->max_events || bytes + len > m->max_bytes))
      bytes -= m->len[k++];
    model_drop(m, k);
    m->seq[m->n] = m->next;
    m->len[m->n] = len;
    m->t[m->n] = now;
    m->n++;
  }
  m->next++;
}

/* The model's answer for a seq of this epoch. */
static int model_locate(const model *m, uint64_t seq, size_t *index) {
  uint64_t first = m->n ? m->seq[0] : m->next, last = m->next - 1;
  *index = 0;
  if (seq > last) return SSE_RING_GAP_FUTURE;
  if (seq + 1 < first) return SSE_RING_GAP_EVICTED;
  *index = (size_t)(seq + 1 - first);
  return SSE_RING_FOUND;
}

static void check(const sse_ring *r, const model *m) {
  if (sse_ring_len(r) != m->n) abort();
  if (sse_ring_last_seq(r) != m->next - 1) abort();
  if (sse_ring_next_seq(r) != m->next) abort();
  if (sse_ring_first_seq(r) != (m->n ? m->seq[0] : m->next)) abort();
  size_t bytes = 0;
  for (size_t i = 0; i < m->n; i++) {
    const sse_frame *f = sse_ring_frame_at(r, i);
    if (!f || f->seq != m->seq[i] || f->len != m->len[i] || f->refs != 1) abort();
    if (f->time != m->t[i]) abort();
    if (i && m->seq[i] != m->seq[i - 1] + 1) abort();
    bytes += f->len;
  }
  if (sse_ring_frame_at(r, m->n) != NULL) abort();
  if (sse_ring_bytes(r) != bytes) abort();
  if (bytes > m->max_bytes || m->n > m->max_events) abort();
}

/* Locate id through the ring and through the model; they must agree. */
static void check_id(const sse_ring *r, const model *m, const char *id, size_t n) {
  size_t idx = 12345, want_idx;
  uint64_t seq = 0;
  int st = sse_ring_locate(r, id, n, &idx);
  int pst = sse_ring_parse_id(r, id, n, &seq);
  if (pst == SSE_RING_FOUND) {
    char again[SSE_RING_ID_CAP];
    size_t an = sse_ring_format_id(r, seq, again, sizeof again);
    if (an != n || memcmp(again, id, n) != 0) abort(); /* canonical only */
    if (st != model_locate(m, seq, &want_idx) || idx != want_idx) abort();
  } else {
    if (pst != SSE_RING_GAP_EPOCH && pst != SSE_RING_GAP_MALFORMED) abort();
    if (st != pst || idx != 0) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  model *m = calloc(1, sizeof *m);
  if (!m) abort();
  m->max_events = 1 + data[0] % MAXN;
  m->max_bytes = 1 + (size_t)data[1] * 4;
  m->ttl = data[2] == 255 ? INFINITY : 1 + data[2] % 64;
  m->next = 1;
  sse_ring *r = sse_ring_new("fz", 2, m->max_events, m->max_bytes, m->ttl);
  if (!r) abort();
  double now = 0;
  size_t i = 3;
  while (i < size) {
    uint8_t op = data[i++];
    uint8_t arg = i < size ? data[i] : 0;
    switch (op % 8) {
    case 0:
    case 1: { /* store a frame of arg bytes, maybe with a topic */
      i++;
      size_t len = op & 0x80 ? (size_t)arg * 8 : arg;
      sse_frame *f = sse_frame_alloc(len, op & 0x40 ? "t" : NULL, op & 0x40 ? 1 : 0);
      if (!f) abort();
      memset(f->bytes, 'x', len);
      if (sse_ring_store(r, f, now) != 0) abort();
      model_store(m, len, now);
      break;
    }
    case 2: /* time passes: 0 .. 63.75 s */
      i++;
      now += arg / 4.0;
      break;
    case 3: { /* expire */
      size_t before = m->n;
      model_expire(m, now);
      if (sse_ring_expire(r, now) != before - m->n) abort();
      break;
    }
    case 4: /* clear */
      if (op & 0x80) {
        sse_ring_clear(r);
        m->n = 0;
      }
      break;
    case 5: { /* locate an id made of the next arg % 48 input bytes */
      i++;
      size_t n = arg % 48;
      if (n > size - i) n = size - i;
      check_id(r, m, (const char *)data + i, n);
      i += n;
      break;
    }
    case 6: { /* locate a seq near the window, as an id and as a seq */
      i++;
      uint64_t last = m->next - 1;
      uint64_t seq = op & 0x80 ? last + (arg & 7) : (arg > last ? 0 : last - arg);
      char id[SSE_RING_ID_CAP];
      size_t n = sse_ring_format_id(r, seq, id, sizeof id);
      if (n == 0) abort();
      check_id(r, m, id, n);
      size_t idx, want_idx;
      if (sse_ring_locate_seq(r, seq, &idx) != model_locate(m, seq, &want_idx) || idx != want_idx)
        abort();
      break;
    }
    case 7: { /* stores that must fail and change nothing */
      sse_frame *f = sse_frame_alloc(1, NULL, 0);
      if (!f) abort();
      f->bytes[0] = 'y';
      if (sse_ring_store(r, f, NAN) != SSE_RING_EINVAL) abort();
      if (sse_ring_store(r, NULL, now) != SSE_RING_EINVAL) abort();
      if (f->refs != 1 || f->seq != 0) abort();
      sse_frame_unref(f);
      break;
    }
    }
    check(r, m);
  }
  sse_ring_free(r);
  free(m);
  return 0;
}
