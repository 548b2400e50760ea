/* encode.c - SSE wire encoding (see encode.h).
 *
 * Two passes: sse_encode_check() validates and measures (one scan of each
 * multi-line field for UTF-8 and line ends together), sse_encode_write()
 * copies. Both scan with 16-byte SSE2 blocks where available, so a long
 * single-line payload costs about two memchr-speed passes and one memcpy. */
#include "encode.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define SSE_HAVE_SSE2 1
#endif

#ifdef SSE_HAVE_SSE2
#if defined(__GNUC__)
#define SSE_INLINE static inline __attribute__((always_inline))
#else
#define SSE_INLINE static inline
#endif

/* Bit k set when byte k of the 16 at p is CR or LF (or, with hi, >= 0x80). */
SSE_INLINE unsigned block_mask(const unsigned char *p, int hi) {
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
  __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
  unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
  return hi ? m | (unsigned)_mm_movemask_epi8(v) : m;
}

/* From i, the first byte of p[0..n) that block_mask flags, or n, 16 bytes a
 * step; a last partial step re-reads the final 16 bytes, so there is no
 * byte-by-byte tail when n >= 16. Under 16 bytes it returns i (the caller
 * goes byte by byte). Inlined, so hi is a constant at each use. */
SSE_INLINE size_t skip_blocks(const unsigned char *p, size_t i, size_t n, int hi) {
  unsigned m;
  for (; i + 16 <= n; i += 16)
    if ((m = block_mask(p + i, hi))) return i + (size_t)__builtin_ctz(m);
  if (i < n && n >= 16) {
    m = block_mask(p + n - 16, hi) >> (i - (n - 16));
    return m ? i + (size_t)__builtin_ctz(m) : n;
  }
  return i;
}
#endif

/* Index of the first CR or LF in p[0..n), or n when there is none. */
static size_t find_eol(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
#ifdef SSE_HAVE_SSE2
  if (n >= 16) return skip_blocks(p, 0, n, 0);
#endif
  for (; i < n; i++)
    if (p[i] == '\r' || p[i] == '\n') return i;
  return n;
}

/* One pass over a multi-line field: counts its line ends (CRLF, LF, bare CR;
 * CRLF counts once) and the bytes they take, so the encoded size is known
 * before anything is written, and with utf8 validates it too. Blocks of 16
 * bytes holding neither a line end nor (with utf8) a byte >= 0x80 are
 * skipped whole. Returns n, or the offset of the first invalid byte. */
static size_t scan_text(const char *s, size_t n, int utf8, size_t *lines, size_t *eol_bytes) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, nl = 0, nb = 0, len;
  while (i < n) {
#ifdef SSE_HAVE_SSE2
    i = utf8 ? skip_blocks(p, i, n, 1) : skip_blocks(p, i, n, 0);
    if (i >= n) break;
#endif
    unsigned char c = p[i];
    if (c == '\n') {
      nl++; nb++; i++;
    } else if (c == '\r') {
      size_t k = (i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
      nl++; nb += k; i += k;
    } else if (c < 0x80 || !utf8) {
      i++;
    } else if (sse_utf8_seq(p + i, n - i, &len) == SSE_UTF8_OK) {
      i += len;
    } else {
      return i;
    }
  }
  *lines = nl;
  *eol_bytes = nb;
  return n;
}

/* Checks a single-line field in one pass: the first CR, LF or NUL wins
 * (SSE_E_NEWLINE, SSE_E_NUL), then, with utf8, the first invalid UTF-8 byte
 * (SSE_E_UTF8). Returns 0 or the code, with *off the byte offset. A valid
 * multi-byte sequence holds no byte < 0x80, so skipping it skips no CR, LF
 * or NUL. */
static int check_line(const char *s, size_t n, int utf8, size_t *off) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, bad = n, len;
  while (i < n) {
    unsigned char c = p[i];
    if (c > '\r' && c < 0x80) { /* the common case, in one compare */
      i++;
      continue;
    }
    if (c >= 0x80) {
      if (utf8 && bad == n && sse_utf8_seq(p + i, n - i, &len) == SSE_UTF8_OK) i += len;
      else { if (utf8 && bad == n) bad = i; i++; }
      continue;
    }
    if (c == '\r' || c == '\n' || c == 0) {
      *off = i;
      return c ? SSE_E_NEWLINE : SSE_E_NUL;
    }
    i++;
  }
  if (bad != n) { *off = bad; return SSE_E_UTF8; }
  return SSE_OK;
}

static int fail(sse_encode_err *err, int code, const char *field, size_t off) {
  if (err) {
    err->code = code;
    err->field = field;
    err->offset = off;
  }
  return code;
}

/* Adds b to *a; returns 0 on size_t overflow. */
static int add_size(size_t *a, size_t b) {
  if (*a > SIZE_MAX - b) return 0;
  *a += b;
  return 1;
}

/* Checks a multi-line field (with utf8: UTF-8) and adds the size of
 * "<prefix><line>\n" for each of its lines to *total. */
static int multiline_check(const sse_str *s, const char *field, size_t prefix, int utf8,
                           size_t *total, sse_encode_err *err) {
  size_t lines = 0, eolb = 0, off = scan_text(s->p, s->n, utf8, &lines, &eolb);
  if (off != s->n) return fail(err, SSE_E_UTF8, field, off);
  lines += 1;
  if (lines > SIZE_MAX / (prefix + 1) || !add_size(total, lines * (prefix + 1)) ||
      !add_size(total, s->n - eolb))
    return fail(err, SSE_E_TOOBIG, field, 0);
  return SSE_OK;
}

static int retry_digits(long long v) {
  int d = 1;
  while (v >= 10) { v /= 10; d++; }
  return d;
}

int sse_encode_check(const sse_event *ev, int check_utf8, size_t *len,
                     sse_encode_err *err) {
  size_t total = 1; /* the blank line that dispatches */
  size_t off = 0;
  int rc;
  /* ": text" per line */
  if (ev->comment.p && (rc = multiline_check(&ev->comment, "comment", 2, check_utf8, &total, err)))
    return rc;
  if (ev->event.p) {
    if ((rc = check_line(ev->event.p, ev->event.n, check_utf8, &off)))
      return fail(err, rc, "event", off);
    if (!add_size(&total, ev->event.n + (ev->event.n ? 8 : 7)))
      return fail(err, SSE_E_TOOBIG, "event", 0);
  }
  if (ev->id.p) {
    if ((rc = check_line(ev->id.p, ev->id.n, check_utf8, &off)))
      return fail(err, rc, "id", off);
    if (!add_size(&total, ev->id.n + (ev->id.n ? 5 : 4)))
      return fail(err, SSE_E_TOOBIG, "id", 0);
  }
  if (ev->retry >= 0) {
    if (ev->retry > SSE_RETRY_MAX) return fail(err, SSE_E_RETRY, "retry", 0);
    total += 8 + (size_t)retry_digits(ev->retry); /* "retry: " digits "\n" */
  } else if (ev->retry != -1) {
    return fail(err, SSE_E_RETRY, "retry", 0);
  }
  if (ev->data.p && (rc = multiline_check(&ev->data, "data", 6, check_utf8, &total, err)))
    return rc;
  *len = total;
  return SSE_OK;
}

/* Writes "<prefix>line\n" for each line of s; prefix "data: " or ": ".
 * A trailing line end yields a last, empty line, as the client would see. */
static char *write_lines(char *o, const sse_str *s, const char *prefix, size_t plen) {
  const char *p = s->p;
  size_t n = s->n, i = 0;
  for (;;) {
    size_t k = find_eol(p + i, n - i);
    memcpy(o, prefix, plen);
    o += plen;
    memcpy(o, p + i, k);
    o += k;
    *o++ = '\n';
    i += k;
    if (i >= n) break;
    i += (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
    if (i >= n) { /* a trailing line end: one more, empty, line */
      memcpy(o, prefix, plen);
      o += plen;
      *o++ = '\n';
      break;
    }
  }
  return o;
}

static char *write_field(char *o, const char *name, size_t nlen, const sse_str *v) {
  memcpy(o, name, nlen);
  o += nlen;
  if (v->n) {
    *o++ = ' ';
    memcpy(o, v->p, v->n);
    o += v->n;
  }
  *o++ = '\n';
  return o;
}

size_t sse_encode_write(const sse_event *ev, char *out) {
  char *o = out;
  if (ev->comment.p) o = write_lines(o, &ev->comment, ": ", 2);
  if (ev->event.p) o = write_field(o, "event:", 6, &ev->event);
  if (ev->id.p) o = write_field(o, "id:", 3, &ev->id);
  if (ev->retry >= 0) {
    char digits[24];
    int d = retry_digits(ev->retry);
    long long v = ev->retry;
    for (int k = d - 1; k >= 0; k--) { digits[k] = (char)('0' + v % 10); v /= 10; }
    memcpy(o, "retry: ", 7);
    o += 7;
    memcpy(o, digits, (size_t)d);
    o += d;
    *o++ = '\n';
  }
  if (ev->data.p) o = write_lines(o, &ev->data, "data: ", 6);
  *o++ = '\n';
  return (size_t)(o - out);
}

void sse_encode_errmsg(const sse_encode_err *err, char *buf, size_t cap) {
  switch (err->code) {
  case SSE_E_NEWLINE:
    snprintf(buf, cap, "field '%s' must not contain a line break (byte %zu)", err->field,
             err->offset + 1);
    break;
  case SSE_E_NUL:
    snprintf(buf, cap, "field '%s' must not contain a NUL byte (byte %zu)", err->field,
             err->offset + 1);
    break;
  case SSE_E_UTF8:
    snprintf(buf, cap, "field '%s' is not valid UTF-8 (byte %zu)", err->field, err->offset + 1);
    break;
  case SSE_E_RETRY:
    snprintf(buf, cap, "field 'retry' must be an integer from 0 to %lld", SSE_RETRY_MAX);
    break;
  case SSE_E_TOOBIG:
    snprintf(buf, cap, "field '%s' is too large to encode", err->field);
    break;
  default:
    snprintf(buf, cap, "invalid event");
  }
}
