/* fuzz_parse.c - libFuzzer target for the event-stream parser.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     csrc/fuzz/fuzz_parse.c csrc/core/parse.c csrc/core/encode.c -o build/fuzz_parse
 *   build/fuzz_parse -max_total_time=60 csrc/fuzz/corpus/parse
 *
 * Two properties per input:
 * 1. Split invariance: the input fed whole, split at a point chosen by its
 *    first byte, and (for short inputs) byte by byte gives the same events,
 *    retries, error and last event id; small limits chosen by the input
 *    exercise the failure paths.
 * 2. Round trip: the input read as event fields (separated by 0xFF bytes),
 *    encoded with sse_encode_check/sse_encode_write, parses back to exactly
 *    that event (data with CRLF and CR as LF, type "message" by default). */
#include "encode.h"
#include "parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct blog {
  char *p;
  size_t n, cap;
} blog;

static void blog_put(blog *b, const void *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort(); /* test harness only */
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void blog_field(blog *b, const char *s, size_t n) {
  blog_put(b, &n, sizeof n);
  blog_put(b, s, n);
}

/* Serialize every message into the log. */
static void on_msg(void *ud, const sse_parse_msg *m) {
  blog *b = ud;
  blog_put(b, &m->kind, sizeof m->kind);
  if (m->kind == SSE_PARSE_MSG_EVENT) {
    blog_field(b, m->type, m->type_len);
    blog_field(b, m->data, m->data_len);
    blog_field(b, m->id, m->id_len);
  } else {
    blog_put(b, &m->retry, sizeof m->retry);
  }
}

/* Parse s in pieces of `step` bytes (0 = one split at `cut`) into log. */
static void run(const sse_parse_limits *lim, const char *s, size_t n, size_t cut,
                size_t step, blog *log) {
  sse_parser p;
  size_t i = 0, idn;
  int rc = 0;
  const char *id;
  sse_parser_init(&p, lim);
  if (step == 0) {
    rc = sse_parser_feed(&p, s, cut, on_msg, log);
    if (rc == 0) rc = sse_parser_feed(&p, s + cut, n - cut, on_msg, log);
  } else {
    while (i < n && rc == 0) {
      size_t take = n - i < step ? n - i : step;
      rc = sse_parser_feed(&p, s + i, take, on_msg, log);
      i += take;
    }
  }
  if (rc != 0 && sse_parser_feed(&p, "\n\n", 2, on_msg, log) != rc) abort();
  blog_put(log, &rc, sizeof rc);
  id = sse_parser_last_event_id(&p, &idn);
  blog_field(log, id, idn);
  sse_parser_free(&p);
}

static void check_split(const uint8_t *data, size_t size) {
  sse_parse_limits lim = {0, 0};
  blog a = {0}, b = {0}, c = {0};
  const char *s = (const char *)data + 1;
  size_t n = size - 1, cut;
  if (data[0] & 0x80) { /* small limits */
    lim.max_line = 1 + (data[0] & 0x0f);
    lim.max_event = 1 + ((data[0] >> 4) & 0x07) * 3;
  }
  cut = n ? (size_t)data[0] * 257 % (n + 1) : 0;
  run(&lim, s, n, n, 0, &a);
  run(&lim, s, n, cut, 0, &b);
  if (a.n != b.n || (a.n && memcmp(a.p, b.p, a.n) != 0)) abort();
  if (n <= 4096) {
    run(&lim, s, n, 0, 1, &c);
    if (a.n != c.n || (a.n && memcmp(a.p, c.p, a.n) != 0)) abort();
  }
  free(a.p);
  free(b.p);
  free(c.p);
}

/* Next 0xFF-separated field of data[*pos..size). */
static sse_str next_field(const uint8_t *data, size_t size, size_t *pos) {
  sse_str s;
  const uint8_t *end;
  s.p = (const char *)data + *pos;
  end = memchr(data + *pos, 0xFF, size - *pos);
  s.n = end ? (size_t)(end - (data + *pos)) : size - *pos;
  *pos += s.n + (end ? 1 : 0);
  return s;
}

static void check_roundtrip(const uint8_t *data, size_t size) {
  sse_event ev;
  sse_encode_err err;
  sse_parser p;
  blog got = {0}, want = {0};
  size_t pos = 1, len, i, idn;
  unsigned flags = data[0];
  char *wire, *norm;
  const char *lastid;
  int rc;
  memset(&ev, 0, sizeof ev);
  ev.retry = -1;
  ev.data = next_field(data, size, &pos);
  if (!(flags & 1)) ev.data.p = NULL, ev.data.n = 0;
  ev.id = next_field(data, size, &pos);
  if (!(flags & 2)) ev.id.p = NULL, ev.id.n = 0;
  ev.event = next_field(data, size, &pos);
  if (!(flags & 4)) ev.event.p = NULL, ev.event.n = 0;
  ev.comment = next_field(data, size, &pos);
  if (!(flags & 8)) ev.comment.p = NULL, ev.comment.n = 0;
  if (flags & 16) ev.retry = (long long)(size * 7919u);
  if (sse_encode_check(&ev, (flags & 32) != 0, &len, &err) != SSE_OK) return;
  wire = malloc(len ? len : 1);
  if (!wire) abort();
  if (sse_encode_write(&ev, wire) != len) abort();

  sse_parser_init(&p, NULL);
  rc = sse_parser_feed(&p, wire, len, on_msg, &got);
  if (rc != 0) abort();
  lastid = sse_parser_last_event_id(&p, &idn);

  /* what the parser must report */
  if (ev.retry >= 0) {
    sse_parse_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SSE_PARSE_MSG_RETRY;
    m.retry = (unsigned long long)ev.retry;
    on_msg(&want, &m);
  }
  if (ev.data.p) {
    sse_parse_msg m;
    size_t nn = 0;
    norm = malloc(ev.data.n + 1);
    if (!norm) abort();
    for (i = 0; i < ev.data.n; i++) {
      char ch = ev.data.p[i];
      if (ch == '\r') {
        norm[nn++] = '\n';
        if (i + 1 < ev.data.n && ev.data.p[i + 1] == '\n') i++;
      } else {
        norm[nn++] = ch;
      }
    }
    memset(&m, 0, sizeof m);
    m.kind = SSE_PARSE_MSG_EVENT;
    m.type = ev.event.p && ev.event.n ? ev.event.p : "message";
    m.type_len = ev.event.p && ev.event.n ? ev.event.n : 7;
    m.data = norm;
    m.data_len = nn;
    m.id = ev.id.p ? ev.id.p : "";
    m.id_len = ev.id.p ? ev.id.n : 0;
    on_msg(&want, &m);
    free(norm);
  }
  if (got.n != want.n || (got.n && memcmp(got.p, want.p, got.n) != 0)) abort();
  if (ev.id.p && (idn != ev.id.n || memcmp(lastid, ev.id.p, idn) != 0)) abort();
  if (!ev.id.p && idn != 0) abort();
  sse_parser_free(&p);
  free(wire);
  free(got.p);
  free(want.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  check_split(data, size);
  check_roundtrip(data, size);
  return 0;
}
