/* utf8.c - UTF-8 validation (see utf8.h). */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The rule, in one place: for a lead byte b >= 0x80, the number of
 * continuation bytes it announces and the range allowed for the first of
 * them (the others are always 0x80..0xBF). Returns 0 for a byte that cannot
 * lead (a continuation byte, C0, C1, F5..FF). */
static int lead(unsigned char b, unsigned char *lo, unsigned char *hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) return 1;
  if (b >= 0xE0 && b <= 0xEF) {
    if (b == 0xE0) *lo = 0xA0;      /* overlong */
    else if (b == 0xED) *hi = 0x9F; /* surrogates */
    return 2;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (b == 0xF0) *lo = 0x90;      /* overlong */
    else if (b == 0xF4) *hi = 0x8F; /* above U+10FFFF */
    return 3;
  }
  return 0;
}

int sse_utf8_seq(const unsigned char *s, size_t n, size_t *len) {
  unsigned char lo, hi;
  if (s[0] < 0x80) { *len = 1; return SSE_UTF8_OK; }
  size_t need = (size_t)lead(s[0], &lo, &hi);
  if (!need) { *len = 1; return SSE_UTF8_BAD; }
  for (size_t i = 1; i <= need; i++) {
    if (i == n) { *len = n; return SSE_UTF8_SHORT; }
    if (s[i] < lo || s[i] > hi) { *len = i; return SSE_UTF8_BAD; }
    lo = 0x80;
    hi = 0xBF;
  }
  *len = need + 1;
  return SSE_UTF8_OK;
}

size_t sse_utf8_skip_ascii(const unsigned char *s, size_t i, size_t n) {
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    int m = _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + i)));
    if (m) return i + (size_t)__builtin_ctz((unsigned)m);
  }
#else
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ULL) break;
  }
#endif
  while (i < n && s[i] < 0x80) i++;
  return i;
}

size_t sse_utf8_valid_prefix(const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  size_t i = 0, len;
  for (;;) {
    i = sse_utf8_skip_ascii(s, i, n);
    if (i == n) return n;
    if (sse_utf8_seq(s + i, n - i, &len) != SSE_UTF8_OK) return i;
    i += len;
  }
}

int sse_utf8_valid(const char *p, size_t n) {
  return sse_utf8_valid_prefix(p, n) == n;
}

int sse_utf8_stream_feed(sse_utf8_stream *s, unsigned char b) {
  if (s->need) {
    if (b < s->lo || b > s->hi) return -1;
    s->need--;
    s->lo = 0x80;
    s->hi = 0xBF;
    return 0;
  }
  if (b < 0x80) return 0;
  s->need = (unsigned char)lead(b, &s->lo, &s->hi);
  return s->need ? 0 : -1;
}
