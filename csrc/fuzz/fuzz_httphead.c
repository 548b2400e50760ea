/* fuzz_httphead.c - libFuzzer target for the HTTP head parser (httphead.c).
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -Icsrc \
 *     csrc/fuzz/fuzz_httphead.c csrc/core/httphead.c -o build/fuzz_httphead
 *   build/fuzz_httphead -max_total_time=60 csrc/fuzz/corpus/httphead
 *
 * The input is the buffer as received. Each input is parsed with the default
 * limits and again with small limits chosen by its first byte. Checked:
 * - sse_http_head_end agrees with a naive reference scan, and resuming at
 *   any point (split at a point chosen by the input; byte by byte for short
 *   inputs) finds the same end at the same moment;
 * - sse_http_head_check and sse_http_parse_request agree with it about
 *   size and completeness, and parsing only the head gives the same result
 *   as parsing the whole buffer;
 * - an accepted request has every slice inside the head, a token method,
 *   sane version/keep-alive/length, clean OWS-trimmed header values, and a
 *   path that decodes to path_len bytes of valid UTF-8 without NUL;
 * - a rejected one has a known status and message and leaves *req alone;
 * - the query of an accepted request (and the raw input) checks, iterates
 *   and decodes consistently; responses obey the same slice rules, with a
 *   framing that matches their status and length headers;
 * - the input read as a chunked body gives the same bytes, result and end
 *   position fed whole, split at a point it chooses and byte by byte; and
 *   the input written as chunks (sizes, extensions and trailers chosen by
 *   it) decodes back to exactly the input. */
#include "httphead.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                   \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__, #cond); \
      __builtin_trap();                                                 \
    }                                                                   \
  } while (0)

/* The obvious O(n) definition of the end of a head (see httphead.h). */
static size_t ref_head_end(const char *b, size_t n) {
  size_t skip = 0;
  if (n >= 1 && b[0] == '\n') skip = 1;
  else if (n >= 2 && b[0] == '\r' && b[1] == '\n') skip = 2;
  for (size_t j = skip; j < n; j++) {
    if (b[j] != '\n') continue;
    if (j + 1 < n && b[j + 1] == '\n') return j + 2;
    if (j + 2 < n && b[j + 1] == '\r' && b[j + 2] == '\n') return j + 3;
  }
  return 0;
}

/* 1 when s lies within [base, base + n). */
static int inside(sse_str s, const char *base, size_t n) {
  return s.p >= base && s.p <= base + n && s.n <= (size_t)(base + n - s.p);
}

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_headers(const sse_http_header *h, size_t n, const char *buf,
                          size_t head) {
  for (size_t i = 0; i < n; i++) {
    REQUIRE(inside(h[i].name, buf, head) && inside(h[i].value, buf, head));
    REQUIRE(h[i].name.n > 0);
    for (size_t j = 0; j < h[i].name.n; j++) REQUIRE(is_tchar((unsigned char)h[i].name.p[j]));
    const unsigned char *v = (const unsigned char *)h[i].value.p;
    size_t vn = h[i].value.n;
    if (vn) REQUIRE(v[0] != ' ' && v[0] != '\t' && v[vn - 1] != ' ' && v[vn - 1] != '\t');
    for (size_t j = 0; j < vn; j++) REQUIRE(v[j] == '\t' || (v[j] >= 0x20 && v[j] != 0x7f));
  }
}

/* Query invariants: check, iteration and decoding agree. */
static void check_query(const char *qs, size_t n, size_t max_pairs) {
  size_t np = (size_t)-1;
  int rc = sse_http_query_check(qs, n, max_pairs, &np);
  REQUIRE(rc == 0 || rc == SSE_HTTP_E_QUERY_ESCAPE || rc == SSE_HTTP_E_QUERY_PAIRS);
  if (rc) {
    REQUIRE(np == (size_t)-1);
    return;
  }
  char *out = malloc(n ? n : 1);
  size_t pos = 0, count = 0;
  sse_str k, v;
  while (sse_http_query_next(qs, n, &pos, &k, &v)) {
    count++;
    REQUIRE(inside(k, qs, n) && inside(v, qs, n));
    REQUIRE(!memchr(k.p, '&', k.n) && !memchr(k.p, '=', k.n) && !memchr(v.p, '&', v.n));
    size_t kl = 0, vl = 0, kl2 = 0;
    REQUIRE(sse_http_decode_form(k.p, k.n, out, &kl) == 0 && kl <= k.n);
    REQUIRE(sse_http_decode_form(k.p, k.n, NULL, &kl2) == 0 && kl2 == kl);
    REQUIRE(sse_http_decode_form(v.p, v.n, out, &vl) == 0 && vl <= v.n);
  }
  REQUIRE(count == np && count <= max_pairs && pos == n);
  free(out);
}

/* Path decoding: validate-only and decoding modes agree; output is clean. */
static void check_path(const char *p, size_t n) {
  char *out = malloc(n ? n : 1);
  size_t l1 = (size_t)-1, l2 = (size_t)-1;
  int r1 = sse_http_decode_path(p, n, NULL, &l1);
  int r2 = sse_http_decode_path(p, n, out, &l2);
  REQUIRE(r1 == r2 && l1 == l2);
  if (r1 == 0) {
    REQUIRE(l1 <= n);
    REQUIRE(!memchr(out, 0, l1));
    REQUIRE(sse_utf8_valid(out, l1));
  } else {
    REQUIRE(r1 == SSE_HTTP_E_PATH_ESCAPE || r1 == SSE_HTTP_E_PATH_NUL ||
            r1 == SSE_HTTP_E_PATH_UTF8 || r1 == SSE_HTTP_E_PATH_DOT);
    REQUIRE(l1 == (size_t)-1);
  }
  free(out);
}

static void check_request(const char *buf, size_t len, const sse_http_limits *lim,
                          size_t full) {
  sse_http_header *hdrs = malloc(lim->max_headers * sizeof(*hdrs));
  sse_http_request r, pristine;
  memset(&r, 0x5a, sizeof(r));
  memcpy(&pristine, &r, sizeof(r));
  int rc = sse_http_parse_request(buf, len, lim, hdrs, &r);
  REQUIRE(rc <= 0 && rc >= SSE_HTTP_E_LAST_);
  REQUIRE(sse_http_message(rc) != NULL);

  /* size and completeness agree with head_end */
  if (full == 0 && len < lim->max_head_bytes) REQUIRE(rc == SSE_HTTP_INCOMPLETE);
  if (rc == SSE_HTTP_INCOMPLETE) REQUIRE(full == 0 && len < lim->max_head_bytes);
  int too_big = full ? full > lim->max_head_bytes : len >= lim->max_head_bytes;
  REQUIRE(too_big == (rc == SSE_HTTP_E_HEAD_TOO_LARGE || rc == SSE_HTTP_E_LINE_TOO_LONG));

  if (rc) {
    int st = sse_http_status(rc);
    REQUIRE(st == 400 || st == 411 || st == 414 || st == 431 || st == 505);
    REQUIRE(memcmp(&r, &pristine, sizeof(r)) == 0);
  } else {
    REQUIRE(r.head_bytes == full && full <= len && full <= lim->max_head_bytes);
    REQUIRE(inside(r.method, buf, full) && inside(r.target, buf, full));
    REQUIRE(inside(r.path, buf, full) && inside(r.query, buf, full));
    REQUIRE(r.method.n > 0);
    for (size_t i = 0; i < r.method.n; i++) REQUIRE(is_tchar((unsigned char)r.method.p[i]));
    REQUIRE(r.path.p == r.target.p && r.path.n <= r.target.n);
    REQUIRE(r.target.n > 0 && (r.target.p[0] == '/' || (r.target.n == 1 && r.target.p[0] == '*')));
    if (r.query.n) REQUIRE(r.query.p == r.path.p + r.path.n + 1);
    REQUIRE(r.minor == 0 || r.minor == 1);
    REQUIRE(r.keep_alive == 0 || r.keep_alive == 1);
    REQUIRE(r.content_length >= -1 && r.content_length <= SSE_HTTP_MAX_CONTENT_LENGTH);
    REQUIRE(r.headers == hdrs && r.nheaders <= lim->max_headers);
    check_headers(r.headers, r.nheaders, buf, full);
    char *out = malloc(r.path.n ? r.path.n : 1);
    size_t pl = 0;
    REQUIRE(sse_http_decode_path(r.path.p, r.path.n, out, &pl) == 0);
    REQUIRE(pl == r.path_len && !memchr(out, 0, pl) && sse_utf8_valid(out, pl));
    free(out);
    check_query(r.query.p, r.query.n, SSE_HTTP_MAX_QUERY_PAIRS);
  }

  /* bytes after a complete head are never looked at */
  if (full && full < len) {
    sse_http_request r2;
    int rc2 = sse_http_parse_request(buf, full, lim, hdrs, &r2);
    REQUIRE(rc2 == rc);
    if (rc == 0) REQUIRE(r2.head_bytes == r.head_bytes && r2.nheaders == r.nheaders &&
                         r2.keep_alive == r.keep_alive &&
                         r2.content_length == r.content_length);
  }
  free(hdrs);
}

static void check_response(const char *buf, size_t len, const sse_http_limits *lim,
                           size_t full) {
  sse_http_header *hdrs = malloc(lim->max_headers * sizeof(*hdrs));
  sse_http_response r;
  int rc = sse_http_parse_response(buf, len, lim, hdrs, &r);
  REQUIRE(rc <= 0 && rc >= SSE_HTTP_E_LAST_);
  if (rc == SSE_HTTP_INCOMPLETE) REQUIRE(full == 0 && len < lim->max_head_bytes);
  if (rc == 0) {
    REQUIRE(r.head_bytes == full && full <= lim->max_head_bytes);
    REQUIRE(r.status >= 100 && r.status <= 599 && (r.minor == 0 || r.minor == 1));
    REQUIRE(inside(r.reason, buf, full) && r.nheaders <= lim->max_headers);
    check_headers(r.headers, r.nheaders, buf, full);
    REQUIRE(r.framing >= SSE_HTTP_BODY_NONE && r.framing <= SSE_HTTP_BODY_CLOSE);
    REQUIRE((r.framing == SSE_HTTP_BODY_NONE) == (r.status < 200 || r.status == 204 || r.status == 304));
    REQUIRE(r.framing != SSE_HTTP_BODY_LENGTH || r.content_length >= 0);
    REQUIRE(r.content_length >= -1 && r.content_length <= SSE_HTTP_MAX_CONTENT_LENGTH);
    if (r.media_type.p) REQUIRE(inside(r.media_type, buf, full) && memchr(r.media_type.p, '/', r.media_type.n));
  }
  free(hdrs);
}

typedef struct dechunked {
  int rc;
  size_t end;   /* bytes of the input used when rc is END */
  size_t n;
  char *body;   /* capacity: the input size */
} dechunked;

/* Decode buf[0..len) as a chunked body in pieces of step bytes (0: whole). */
static void dechunk(const char *buf, size_t len, size_t step, size_t cut, dechunked *o) {
  sse_http_chunked c;
  size_t at = 0;
  sse_http_chunked_init(&c);
  o->rc = SSE_HTTP_CHUNK_MORE;
  o->n = o->end = 0;
  while (at < len || (at == 0 && len == 0)) {
    size_t take = step ? step : (cut && at == 0 ? cut : len - at);
    if (take > len - at) take = len - at;
    size_t pos = 0, dn;
    const char *d;
    while ((o->rc = sse_http_chunked_next(&c, buf + at, take, &pos, &d, &dn)) == SSE_HTTP_CHUNK_DATA) {
      REQUIRE(dn > 0 && d >= buf + at && d + dn <= buf + at + take);
      memcpy(o->body + o->n, d, dn);
      o->n += dn;
    }
    REQUIRE(pos <= take);
    if (o->rc != SSE_HTTP_CHUNK_MORE) {
      o->end = at + pos;
      return;
    }
    REQUIRE(pos == take);
    at += take;
    if (len == 0) break;
  }
}

static void check_chunked(const char *buf, size_t len) {
  dechunked a, b, c;
  a.body = malloc(len + 1);
  b.body = malloc(len + 1);
  c.body = malloc(len + 1);
  size_t cut = len ? (size_t)(unsigned char)buf[0] * 37 % (len + 1) : 0;
  dechunk(buf, len, 0, 0, &a);
  dechunk(buf, len, 0, cut, &b);
  REQUIRE(a.rc == b.rc && a.n == b.n && memcmp(a.body, b.body, a.n) == 0);
  if (a.rc == SSE_HTTP_CHUNK_END) REQUIRE(a.end == b.end);
  if (len <= 2048) {
    dechunk(buf, len, 1, 0, &c);
    REQUIRE(a.rc == c.rc && a.n == c.n && memcmp(a.body, c.body, a.n) == 0);
    if (a.rc == SSE_HTTP_CHUNK_END) REQUIRE(a.end == c.end);
  }
  REQUIRE(a.rc == SSE_HTTP_CHUNK_MORE || a.rc == SSE_HTTP_CHUNK_END || a.rc == SSE_HTTP_E_CHUNKED);
  free(a.body);
  free(b.body);
  free(c.body);
}

/* The input as the data of a chunked body: chunk sizes 1..64 from its bytes,
 * an extension now and then, a trailer, bare LF or CRLF; must decode back. */
static void check_chunked_roundtrip(const uint8_t *data, size_t size) {
  size_t cap = size * 2 + 64 * (size + 2) + 64, n = 0, i = 0;
  char *wire = malloc(cap);
  dechunked o;
  o.body = malloc(cap);
  const char *eol = size && (data[0] & 1) ? "\n" : "\r\n";
  while (i < size) {
    size_t k = 1 + data[i] % 64;
    if (k > size - i) k = size - i;
    n += (size_t)snprintf(wire + n, cap - n, "%zx%s%s", k, data[i] & 64 ? ";ext=\"a;b\"" : "", eol);
    memcpy(wire + n, data + i, k);
    n += k;
    n += (size_t)snprintf(wire + n, cap - n, "%s", eol);
    i += k;
  }
  n += (size_t)snprintf(wire + n, cap - n, "0%sX-Trailer: t%s%s", eol, eol, eol);
  dechunk(wire, n, size ? 1 + data[size - 1] % 9 : 1, 0, &o);
  REQUIRE(o.rc == SSE_HTTP_CHUNK_END && o.end == n);
  REQUIRE(o.n == size && (size == 0 || memcmp(o.body, data, size) == 0));
  free(wire);
  free(o.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  size_t full = ref_head_end(buf, size);
  REQUIRE(sse_http_head_end(buf, size, 0) == full);

  /* resume after a split point chosen by the input */
  size_t split = size ? (size_t)data[size - 1] * 131 % (size + 1) : 0;
  size_t first = sse_http_head_end(buf, split, 0);
  REQUIRE(first == ref_head_end(buf, split));
  if (first) REQUIRE(first == full);
  else REQUIRE(sse_http_head_end(buf, size, split) == full);

  /* byte by byte: found exactly when the last byte of the head arrives */
  if (size <= 1024) {
    size_t found = 0, at = 0;
    for (size_t n = 1; n <= size && !found; n++) {
      found = sse_http_head_end(buf, n, n - 1);
      at = n;
    }
    REQUIRE(found == full);
    if (found) REQUIRE(at == full);
  }

  sse_http_limits def = {SSE_HTTP_MAX_HEAD_BYTES, SSE_HTTP_MAX_HEADERS};
  unsigned b = size ? data[0] : 0;
  sse_http_limits small = {1 + (b * 7) % 200, 1 + b % 5};
  const sse_http_limits *lims[2] = {&def, &small};
  for (int i = 0; i < 2; i++) {
    size_t h = (size_t)-1;
    int rc = sse_http_head_check(buf, size, 0, lims[i]->max_head_bytes, &h);
    if (rc == 0) REQUIRE(h == full && h <= lims[i]->max_head_bytes &&
                         (h || size < lims[i]->max_head_bytes));
    else REQUIRE(h == (size_t)-1 &&
                 (rc == SSE_HTTP_E_HEAD_TOO_LARGE || rc == SSE_HTTP_E_LINE_TOO_LONG));
    check_request(buf, size, lims[i], full);
    check_response(buf, size, lims[i], full);
  }

  check_path(buf, size);
  check_query(buf, size, 1 + b % 16);
  check_chunked(buf, size);
  check_chunked_roundtrip(data, size);
  REQUIRE(sse_utf8_valid(buf, size) == 0 || sse_utf8_valid(buf, size) == 1);
  return 0;
}
