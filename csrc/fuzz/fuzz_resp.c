/* fuzz_resp.c - libFuzzer target for the RESP2 reply scanner (resp.c).
 *
 *   make fuzz-build; build/lua5.4/fuzz/fuzz_resp -max_total_time=60 csrc/fuzz/corpus/resp
 *
 * Properties per input (the first byte picks a split step and a max_bytes):
 * 1. Split invariance: scanning the bytes as they arrive in pieces (the
 *    scanner resumes) gives the same sequence of reply lengths and the same
 *    final status (error or incomplete) as scanning them whole.
 * 2. Every accepted reply walks with sse_resp_next to exactly its end:
 *    headers, counts and lengths agree, and no read leaves the reply.
 * 3. Round trip: the rest of the input cut at 0xFF bytes, encoded as a
 *    command, scans as one reply of exactly that size whose elements are
 *    those arguments. */
#include "resp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REPLIES 4096

typedef struct result {
  size_t ends[MAX_REPLIES];
  size_t n;
  int status; /* last scan status: MORE or an error */
} result;

/* Walks one element at *pos and everything it contains; returns 0 when the
 * walk stays inside [0, len). */
static int walk(const char *b, size_t len, size_t *pos, int depth) {
  sse_resp_tok t;
  if (depth > SSE_RESP_MAX_DEPTH) return -1;
  if (sse_resp_next(b, len, pos, &t) != 0) return -1;
  if (*pos > len) return -1;
  if (t.type == '*')
    for (int64_t i = 0; i < t.n; i++)
      if (walk(b, len, pos, depth + 1) != 0) return -1;
  return 0;
}

/* Scans buf as it arrives `step` bytes at a time (0: all at once). */
static void scan_all(const char *buf, size_t len, size_t step, size_t max, result *r) {
  sse_resp_scanner s;
  sse_resp_scan_init(&s, max);
  size_t start = 0, avail = step ? (step < len ? step : len) : len;
  r->n = 0;
  r->status = SSE_RESP_MORE;
  for (;;) {
    size_t end = 0;
    int st = sse_resp_scan(&s, buf + start, avail - start, &end);
    if (st == SSE_RESP_DONE) {
      if (end == 0 || start + end > avail) abort();
      size_t pos = 0;
      if (walk(buf + start, end, &pos, 0) != 0 || pos != end) abort();
      if (r->n < MAX_REPLIES) r->ends[r->n++] = start + end;
      start += end;
      sse_resp_scan_init(&s, max);
      continue;
    }
    if (st < 0) {
      r->status = st;
      /* sticky: asking again answers the same */
      if (sse_resp_scan(&s, buf + start, avail - start, &end) != st) abort();
      return;
    }
    if (avail == len) return;
    avail = avail + step < len ? avail + step : len;
  }
}

static void round_trip(const uint8_t *data, size_t size) {
  const char *argv[64];
  size_t lens[64];
  int argc = 0;
  size_t from = 0;
  for (size_t i = 0; i <= size && argc < 64; i++) {
    if (i == size || data[i] == 0xFF) {
      argv[argc] = (const char *)data + from;
      lens[argc++] = i - from;
      from = i + 1;
    }
  }
  size_t n = sse_resp_command_size(argc, lens);
  char *out = malloc(n);
  if (!out) abort();
  if (sse_resp_command(out, argc, argv, lens) != n) abort();
  sse_resp_scanner s;
  sse_resp_scan_init(&s, 0);
  size_t end = 0;
  if (sse_resp_scan(&s, out, n, &end) != SSE_RESP_DONE || end != n) abort();
  size_t pos = 0;
  sse_resp_tok t;
  if (sse_resp_next(out, n, &pos, &t) != 0 || t.type != '*' || t.n != argc) abort();
  for (int i = 0; i < argc; i++) {
    if (sse_resp_next(out, n, &pos, &t) != 0 || t.type != '$' || t.len != lens[i]) abort();
    if (lens[i] && memcmp(t.p, argv[i], lens[i]) != 0) abort();
  }
  if (pos != n) abort();
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)(data[0] & 0x0F);
  size_t max = (data[0] & 0x30) ? (size_t)16 << ((data[0] >> 4) & 3) * 3 : 0;
  const char *buf = (const char *)data + 1;
  size_t len = size - 1;
  /* an exact-size copy, so ASan catches any read past the end */
  char *copy = malloc(len ? len : 1);
  if (!copy) abort();
  memcpy(copy, buf, len);
  static result whole, split, bytewise;
  scan_all(copy, len, 0, max, &whole);
  scan_all(copy, len, step ? step : 7, max, &split);
  if (whole.n != split.n || whole.status != split.status ||
      memcmp(whole.ends, split.ends, whole.n * sizeof whole.ends[0]) != 0)
    abort();
  if (len <= 256) {
    scan_all(copy, len, 1, max, &bytewise);
    if (whole.n != bytewise.n || whole.status != bytewise.status ||
        memcmp(whole.ends, bytewise.ends, whole.n * sizeof whole.ends[0]) != 0)
      abort();
  }
  free(copy);
  if (data[0] & 0x40) round_trip(data + 1, size - 1);
  return 0;
}
