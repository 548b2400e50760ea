/* fuzz_encode.c - libFuzzer target for the event encoder (encode.c).
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -Icsrc/core \
 *     csrc/fuzz/fuzz_encode.c csrc/core/encode.c csrc/core/utf8.c -o build/fuzz_encode
 *   build/fuzz_encode -max_total_time=60 csrc/fuzz/corpus/encode
 *
 * The input is an event: a flags byte (which fields are present, check_utf8,
 * a retry value and the error-message buffer size), then for retry 8 raw
 * bytes (any int64, so negative and huge values too), then data, id, event
 * and comment, each as a little-endian 16-bit length and its bytes (every
 * byte value allowed). Checked against a plain reference written here:
 * - sse_encode_check accepts exactly the events the reference accepts, and a
 *   rejected one reports the reference's code, field and byte offset (fields
 *   checked in the documented order) and leaves *len alone; with err NULL it
 *   returns the same code;
 * - an accepted event encodes to exactly the reference bytes (one "data: "
 *   or ": " line per CRLF/LF/CR-separated line, "event:"/"id:" with a space
 *   only before a non-empty value, "retry: " digits, one blank line), into
 *   a buffer of exactly the reported length (ASan catches a byte too many);
 *   the bytes hold no CR and exactly one blank line, at the end, so no
 *   value can start a second event;
 * - sse_encode_errmsg fits any buffer size and always NUL-terminates;
 * - sse_utf8_valid_prefix (utf8.c) agrees with a code-point decoder on the
 *   whole input at every start offset 0..15 (the SSE2 blocks and the byte
 *   tail), and so do the byte-at-a-time form and sse_utf8_seq. */
#include "encode.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
  F_DATA = 1, F_ID = 2, F_EVENT = 4, F_COMMENT = 8, F_RETRY = 16, F_UTF8 = 32,
  F_SMALLCAP = 64 /* with bit 7: error message buffers of 1..8 bytes */
};

/* Length of the longest valid UTF-8 prefix, by decoding code points. */
static size_t ref_utf8(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k;
    unsigned long cp, min;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return i;
    if (n - i <= k) return i;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += k + 1;
  }
  return n;
}

typedef struct ref_err {
  int code;
  const char *field;
  size_t offset;
} ref_err;

static int ref_fail(ref_err *e, int code, const char *field, size_t off) {
  e->code = code;
  e->field = field;
  e->offset = off;
  return code;
}

/* A single-line field: CR/LF/NUL first, then UTF-8. */
static int ref_line_field(const sse_str *s, const char *name, int utf8, ref_err *e) {
  for (size_t i = 0; i < s->n; i++) {
    if (s->p[i] == '\r' || s->p[i] == '\n') return ref_fail(e, SSE_E_NEWLINE, name, i);
    if (s->p[i] == '\0') return ref_fail(e, SSE_E_NUL, name, i);
  }
  size_t ok = utf8 ? ref_utf8((const unsigned char *)s->p, s->n) : s->n;
  if (ok != s->n) return ref_fail(e, SSE_E_UTF8, name, ok);
  return SSE_OK;
}

static int ref_multi_field(const sse_str *s, const char *name, int utf8, ref_err *e) {
  size_t ok = utf8 ? ref_utf8((const unsigned char *)s->p, s->n) : s->n;
  if (ok != s->n) return ref_fail(e, SSE_E_UTF8, name, ok);
  return SSE_OK;
}

/* The documented order: comment, event, id, retry, data. */
static int ref_check(const sse_event *ev, int utf8, ref_err *e) {
  int rc;
  if (ev->comment.p && (rc = ref_multi_field(&ev->comment, "comment", utf8, e))) return rc;
  if (ev->event.p && (rc = ref_line_field(&ev->event, "event", utf8, e))) return rc;
  if (ev->id.p && (rc = ref_line_field(&ev->id, "id", utf8, e))) return rc;
  if (ev->retry < -1 || ev->retry > SSE_RETRY_MAX) return ref_fail(e, SSE_E_RETRY, "retry", 0);
  if (ev->data.p && (rc = ref_multi_field(&ev->data, "data", utf8, e))) return rc;
  return SSE_OK;
}

typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort(); /* test harness only */
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

/* prefix + line + LF for each line; CRLF, LF and CR each end a line, and a
 * value ending in a line end has a last, empty line. */
static void ref_lines(buf *b, const sse_str *s, const char *prefix) {
  size_t start = 0, i = 0;
  while (i <= s->n) {
    if (i == s->n || s->p[i] == '\r' || s->p[i] == '\n') {
      put(b, prefix, strlen(prefix));
      put(b, s->p + start, i - start);
      put(b, "\n", 1);
      if (i == s->n) break;
      if (s->p[i] == '\r' && i + 1 < s->n && s->p[i + 1] == '\n') i++;
      start = i + 1;
    }
    i++;
  }
}

static void ref_single(buf *b, const sse_str *s, const char *name) {
  put(b, name, strlen(name));
  if (s->n) {
    put(b, " ", 1);
    put(b, s->p, s->n);
  }
  put(b, "\n", 1);
}

static void ref_encode(const sse_event *ev, buf *b) {
  if (ev->comment.p) ref_lines(b, &ev->comment, ": ");
  if (ev->event.p) ref_single(b, &ev->event, "event:");
  if (ev->id.p) ref_single(b, &ev->id, "id:");
  if (ev->retry >= 0) {
    char t[32];
    int k = snprintf(t, sizeof t, "retry: %lld\n", ev->retry);
    put(b, t, (size_t)k);
  }
  if (ev->data.p) ref_lines(b, &ev->data, "data: ");
  put(b, "\n", 1);
}

/* No CR; every line starts with a field prefix; the only empty line is the
 * last one. */
static void check_shape(const char *w, size_t n) {
  static const char *const prefixes[] = {": ", "event:", "id:", "retry: ", "data: "};
  size_t start = 0;
  if (n == 0 || w[n - 1] != '\n') abort();
  if (memchr(w, '\r', n)) abort();
  for (size_t i = 0; i < n; i++) {
    if (w[i] != '\n') continue;
    size_t len = i - start;
    if (len == 0) {
      if (i != n - 1) abort(); /* a blank line before the end: a second event */
    } else {
      int ok = 0;
      for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        size_t pl = strlen(prefixes[k]);
        if (len >= pl && memcmp(w + start, prefixes[k], pl) == 0) ok = 1;
      }
      if (!ok) abort();
    }
    start = i + 1;
  }
}

static void check_errmsg(const sse_encode_err *err, size_t cap) {
  char msg[256];
  memset(msg, 'Z', sizeof msg);
  sse_encode_errmsg(err, msg, cap);
  size_t n = strnlen(msg, cap);
  if (n >= cap) abort(); /* not terminated within cap */
  for (size_t i = cap; i < sizeof msg; i++)
    if (msg[i] != 'Z') abort(); /* wrote past cap */
  if (cap == sizeof msg && strncmp(msg, "field '", 7) != 0) abort();
}

/* A length-prefixed field of data[*pos..size). */
static sse_str take_field(const uint8_t *data, size_t size, size_t *pos) {
  sse_str s;
  size_t n = 0;
  if (*pos < size) n = data[(*pos)++];
  if (*pos < size) n |= (size_t)data[(*pos)++] << 8;
  if (n > size - *pos) n = size - *pos;
  s.p = (const char *)data + *pos;
  s.n = n;
  *pos += n;
  return s;
}

/* utf8.c against the reference: the prefix at every start offset, the
 * byte-at-a-time form, and sse_utf8_seq at the first bad byte (a valid
 * sequence never, a bad one never longer than what is left). */
static void check_utf8_offsets(const uint8_t *data, size_t size) {
  for (size_t off = 0; off < 16 && off <= size; off++) {
    size_t a = sse_utf8_valid_prefix((const char *)data + off, size - off);
    size_t b = ref_utf8(data + off, size - off);
    if (a != b) abort();
  }
  sse_utf8_stream st = SSE_UTF8_STREAM_INIT;
  size_t fed = 0, good = ref_utf8(data, size);
  while (fed < size && sse_utf8_stream_feed(&st, data[fed]) == 0) fed++;
  if ((good == size) != (fed == size && sse_utf8_stream_done(&st))) abort();
  if (fed < good) abort(); /* the stream may not stop inside the valid prefix */
  if (good < size) {
    size_t len = 0;
    int rc = sse_utf8_seq(data + good, size - good, &len);
    if (rc == SSE_UTF8_OK || len < 1 || len > 3 || len > size - good) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sse_event ev;
  sse_encode_err err;
  ref_err want;
  size_t pos = 1, len = (size_t)-7;
  if (size == 0) return 0;
  check_utf8_offsets(data, size);

  unsigned flags = data[0];
  memset(&ev, 0, sizeof ev);
  ev.retry = -1;
  if (flags & F_RETRY) {
    uint64_t r = 0;
    for (int k = 0; k < 8; k++) r |= (uint64_t)(pos < size ? data[pos++] : 0) << (8 * k);
    memcpy(&ev.retry, &r, sizeof ev.retry);
  }
  ev.data = take_field(data, size, &pos);
  ev.id = take_field(data, size, &pos);
  ev.event = take_field(data, size, &pos);
  ev.comment = take_field(data, size, &pos);
  if (!(flags & F_DATA)) ev.data.p = NULL, ev.data.n = 0;
  if (!(flags & F_ID)) ev.id.p = NULL, ev.id.n = 0;
  if (!(flags & F_EVENT)) ev.event.p = NULL, ev.event.n = 0;
  if (!(flags & F_COMMENT)) ev.comment.p = NULL, ev.comment.n = 0;
  int utf8 = (flags & F_UTF8) != 0;

  memset(&want, 0, sizeof want);
  int expect = ref_check(&ev, utf8, &want);
  memset(&err, 0, sizeof err);
  int rc = sse_encode_check(&ev, utf8, &len, &err);
  if (rc != expect) abort();
  if (sse_encode_check(&ev, utf8, &len, NULL) != rc) abort(); /* err may be NULL */

  if (rc != SSE_OK) {
    if (len != (size_t)-7) abort(); /* *len untouched on failure */
    if (err.code != want.code || strcmp(err.field, want.field) != 0 || err.offset != want.offset)
      abort();
    size_t cap = (flags & F_SMALLCAP) && (flags & 128) ? 1 + size % 8 : 1 + size % 256;
    check_errmsg(&err, cap);
    check_errmsg(&err, 256);
    return 0;
  }

  buf ref = {0};
  ref_encode(&ev, &ref);
  if (len != ref.n) abort();
  char *out = malloc(len);
  if (!out) abort();
  if (sse_encode_write(&ev, out) != len) abort();
  if (memcmp(out, ref.p, len) != 0) abort();
  check_shape(out, len);
  free(out);
  free(ref.p);
  return 0;
}
