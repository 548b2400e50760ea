/* resp.c - RESP2 reply scanner and command encoder (see resp.h). */
#include "resp.h"

#include <string.h>

void sse_resp_scan_init(sse_resp_scanner *s, size_t max_bytes) {
  memset(s, 0, sizeof *s);
  s->max_bytes = max_bytes ? max_bytes : SSE_RESP_DEFAULT_MAX_BYTES;
}

const char *sse_resp_strerror(int code) {
  switch (code) {
  case SSE_RESP_EPROTO: return "protocol error";
  case SSE_RESP_EDEPTH: return "reply nested too deeply";
  case SSE_RESP_ETOOBIG: return "reply too large";
  default: return "unknown error";
  }
}

/* Parses p[0..n) as a decimal int64 (optional '-', 1 to 19 digits, no
 * overflow). Returns 0 and sets *out, or -1. */
static int parse_int(const char *p, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  if (n > 0 && p[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i == n || n - i > 19) return -1;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  /* 19 digits fit a uint64; bound to the int64 range */
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1) return -1;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX) return -1;
    *out = (int64_t)v;
  }
  return 0;
}

/* The number on the header line at buf[pos] (type byte excluded), ending in
 * CRLF within len. Returns 1 and sets *n and *after (the offset past the
 * CRLF), 0 when the line is not complete yet, or -1 when it is malformed. */
static int header_int(const char *buf, size_t len, size_t pos, int64_t *n, size_t *after) {
  size_t lim = len - pos < SSE_RESP_MAX_HEADER ? len : pos + SSE_RESP_MAX_HEADER;
  const char *cr = memchr(buf + pos + 1, '\r', lim - pos - 1);
  if (!cr) return lim == len ? 0 : -1;
  size_t i = (size_t)(cr - buf);
  if (i + 1 >= len) return 0;
  if (buf[i + 1] != '\n') return -1;
  if (parse_int(buf + pos + 1, i - pos - 1, n) != 0) return -1;
  *after = i + 2;
  return 1;
}

static int fail(sse_resp_scanner *s, int code) {
  s->err = code;
  return code;
}

int sse_resp_scan(sse_resp_scanner *s, const char *buf, size_t len, size_t *end) {
  if (s->err) return s->err;
  for (;;) {
    size_t pos = s->pos, next;
    if (pos >= len) return SSE_RESP_MORE;
    char type = buf[pos];
    if (type == '+' || type == '-') {
      /* the line, CRLF included, must end within max_bytes: look no
       * further, so that a reply fed in pieces meets the same bytes in the
       * same order as one fed whole */
      size_t lim = len < s->max_bytes ? len : s->max_bytes;
      size_t from = s->line_from > pos + 1 ? s->line_from : pos + 1;
      if (from > lim) return fail(s, SSE_RESP_ETOOBIG);
      const char *cr = memchr(buf + from, '\r', lim - from);
      size_t stop = cr ? (size_t)(cr - buf) : lim;
      if (memchr(buf + from, '\n', stop - from)) return fail(s, SSE_RESP_EPROTO);
      if (!cr || stop + 1 >= lim) {
        if (lim == s->max_bytes) return fail(s, SSE_RESP_ETOOBIG);
        s->line_from = stop; /* resume the search here */
        return SSE_RESP_MORE;
      }
      if (buf[stop + 1] != '\n') return fail(s, SSE_RESP_EPROTO);
      next = stop + 2;
    } else if (type == ':' || type == '$' || type == '*') {
      int64_t n;
      size_t after;
      int r = header_int(buf, len, pos, &n, &after);
      if (r < 0) return fail(s, SSE_RESP_EPROTO);
      if (r == 0) return SSE_RESP_MORE;
      next = after;
      if (type == '$' && n >= 0) {
        if ((uint64_t)n > s->max_bytes) return fail(s, SSE_RESP_ETOOBIG);
        next = after + (size_t)n + 2;
        if (next > s->max_bytes) return fail(s, SSE_RESP_ETOOBIG);
        if (next > len) return SSE_RESP_MORE;
        if (buf[next - 2] != '\r' || buf[next - 1] != '\n') return fail(s, SSE_RESP_EPROTO);
      } else if (type == '$' || type == '*') {
        if (n < -1) return fail(s, SSE_RESP_EPROTO);
        if (type == '*' && n > 0) {
          if (after > s->max_bytes) return fail(s, SSE_RESP_ETOOBIG);
          if (s->depth == SSE_RESP_MAX_DEPTH) return fail(s, SSE_RESP_EDEPTH);
          /* every element takes at least 3 bytes ("+\r\n") */
          if ((uint64_t)n > s->max_bytes / 3) return fail(s, SSE_RESP_ETOOBIG);
          s->left[s->depth++] = n;
          s->pos = after;
          s->line_from = 0;
          continue; /* the array completes with its last element */
        }
      }
    } else {
      return fail(s, SSE_RESP_EPROTO);
    }
    if (next > s->max_bytes) return fail(s, SSE_RESP_ETOOBIG);
    s->pos = next;
    s->line_from = 0;
    /* one element done: close every array it completes */
    while (s->depth > 0 && --s->left[s->depth - 1] == 0) s->depth--;
    if (s->depth == 0) {
      *end = next;
      return SSE_RESP_DONE;
    }
  }
}

int sse_resp_next(const char *buf, size_t len, size_t *pos, sse_resp_tok *t) {
  size_t p = *pos;
  if (p >= len) return -1;
  char type = buf[p];
  t->type = type;
  t->n = 0;
  t->p = NULL;
  t->len = 0;
  if (type == '+' || type == '-') {
    const char *cr = memchr(buf + p + 1, '\r', len - p - 1);
    if (!cr || (size_t)(cr - buf) + 1 >= len || cr[1] != '\n') return -1;
    t->p = buf + p + 1;
    t->len = (size_t)(cr - t->p);
    *pos = (size_t)(cr - buf) + 2;
    return 0;
  }
  if (type != ':' && type != '$' && type != '*') return -1;
  int64_t n;
  size_t after;
  if (header_int(buf, len, p, &n, &after) != 1) return -1;
  t->n = n;
  if (type == '$' && n >= 0) {
    if ((uint64_t)n > len - after || len - after - (size_t)n < 2) return -1;
    t->p = buf + after;
    t->len = (size_t)n;
    after += (size_t)n + 2;
  } else if (type != ':' && n < -1) {
    return -1;
  }
  *pos = after;
  return 0;
}

static size_t ndigits(size_t v) {
  size_t d = 1;
  while (v >= 10) {
    v /= 10;
    d++;
  }
  return d;
}

static char *put_uint(char *out, size_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *out++ = tmp[--n];
  return out;
}

size_t sse_resp_command_size(int argc, const size_t *lens) {
  size_t n = 1 + ndigits((size_t)argc) + 2;
  for (int i = 0; i < argc; i++) n += 1 + ndigits(lens[i]) + 2 + lens[i] + 2;
  return n;
}

size_t sse_resp_command(char *out, int argc, const char *const *argv, const size_t *lens) {
  char *o = out;
  *o++ = '*';
  o = put_uint(o, (size_t)argc);
  *o++ = '\r';
  *o++ = '\n';
  for (int i = 0; i < argc; i++) {
    *o++ = '$';
    o = put_uint(o, lens[i]);
    *o++ = '\r';
    *o++ = '\n';
    if (lens[i]) memcpy(o, argv[i], lens[i]);
    o += lens[i];
    *o++ = '\r';
    *o++ = '\n';
  }
  return (size_t)(o - out);
}
