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
 *    that event (data with CRLF and CR as LF, type "message" by default),
 *    every field decoded as the WHATWG UTF-8 decoder does (the encoder's
 *    UTF-8 check is off for half the inputs, so bad bytes reach the wire).
 * 3. UTF-8 decoding: "data: " + the input (CR and LF made spaces) + a blank
 *    line, fed in pieces whose sizes the input picks, gives one event whose
 *    data is ref_decode(input): a byte-at-a-time decoder written from the
 *    Encoding Standard's algorithm, independent of parse.c's fast path. */
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

/* The Encoding Standard's UTF-8 decoder, byte by byte as it is written
 * there; appends the text (re-encoded as UTF-8, U+FFFD per error) to out. */
static void ref_decode(const char *s, size_t n, blog *out) {
  static const char fffd[3] = {'\xEF', '\xBF', '\xBD'};
  unsigned needed = 0, seen = 0, lower = 0x80, upper = 0xBF;
  size_t i = 0, start = 0;
  while (i < n) {
    unsigned b = (unsigned char)s[i];
    if (needed == 0) {
      if (b <= 0x7F) blog_put(out, s + i, 1);
      else if (b >= 0xC2 && b <= 0xDF) needed = 1, start = i;
      else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower = 0xA0;
        if (b == 0xED) upper = 0x9F;
        needed = 2, start = i;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower = 0x90;
        if (b == 0xF4) upper = 0x8F;
        needed = 3, start = i;
      } else blog_put(out, fffd, 3);
      i++;
    } else if (b < lower || b > upper) {
      needed = seen = 0, lower = 0x80, upper = 0xBF;
      blog_put(out, fffd, 3); /* b is processed again */
    } else {
      lower = 0x80, upper = 0xBF;
      i++;
      if (++seen == needed) {
        blog_put(out, s + start, i - start);
        needed = seen = 0;
      }
    }
  }
  if (needed) blog_put(out, fffd, 3);
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
  blog got = {0}, want = {0}, ddata = {0}, dtype = {0}, did = {0};
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
  if (ev.event.p) ref_decode(ev.event.p, ev.event.n, &dtype);
  if (ev.id.p) ref_decode(ev.id.p, ev.id.n, &did);
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
    ref_decode(norm, nn, &ddata);
    memset(&m, 0, sizeof m);
    m.kind = SSE_PARSE_MSG_EVENT;
    m.type = ev.event.p && ev.event.n ? dtype.p : "message";
    m.type_len = ev.event.p && ev.event.n ? dtype.n : 7;
    m.data = ddata.n ? ddata.p : "";
    m.data_len = ddata.n;
    m.id = did.n ? did.p : "";
    m.id_len = did.n;
    on_msg(&want, &m);
    free(norm);
  }
  if (got.n != want.n || (got.n && memcmp(got.p, want.p, got.n) != 0)) abort();
  if (idn != did.n || (idn && memcmp(lastid, did.p, idn) != 0)) abort();
  sse_parser_free(&p);
  free(wire);
  free(got.p);
  free(want.p);
  free(ddata.p);
  free(dtype.p);
  free(did.p);
}

static void on_data(void *ud, const sse_parse_msg *m) {
  if (m->kind == SSE_PARSE_MSG_EVENT) blog_put(ud, m->data, m->data_len);
}

static void check_decode(const uint8_t *data, size_t size) {
  blog wire = {0}, want = {0}, got = {0};
  sse_parser p;
  size_t i, step = 1 + data[0] % 7;
  blog_put(&wire, "data: ", 6);
  for (i = 1; i < size; i++) {
    char c = (char)data[i];
    if (c == '\r' || c == '\n') c = ' ';
    blog_put(&wire, &c, 1);
  }
  ref_decode(wire.p + 6, wire.n - 6, &want);
  blog_put(&wire, "\n\n", 2);
  sse_parser_init(&p, NULL);
  for (i = 0; i < wire.n; i += step) {
    size_t take = wire.n - i < step ? wire.n - i : step;
    if (sse_parser_feed(&p, wire.p + i, take, on_data, &got) != 0) abort();
  }
  if (got.n != want.n || (got.n && memcmp(got.p, want.p, got.n) != 0)) abort();
  sse_parser_free(&p);
  free(wire.p);
  free(want.p);
  free(got.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  check_split(data, size);
  check_roundtrip(data, size);
  check_decode(data, size);
  return 0;
}
