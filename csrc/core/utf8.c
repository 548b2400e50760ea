/* utf8.c - UTF-8 validation (see utf8.h). */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The rule, in one place: for each byte b, the number of continuation
 * bytes it announces as a lead (0 when it cannot lead: ASCII is handled
 * before, a continuation byte, C0, C1, F5..FF cannot) and the range allowed
 * for the first of them (the others are always 0x80..0xBF). */
typedef struct lead_rule {
  unsigned char need, lo, hi;
} lead_rule;

#define R1 {1, 0x80, 0xBF}
#define R2 {2, 0x80, 0xBF}
#define R3 {3, 0x80, 0xBF}
#define R1x4 R1, R1, R1, R1
#define R1x16 R1x4, R1x4, R1x4, R1x4
static const lead_rule rules[256] = {
    [0xC2] = R1, R1, R1x4, R1x4, R1x4, R1x16,     /* C2..DF */
    [0xE0] = {2, 0xA0, 0xBF},                       /* overlong */
    R2, R2, R2, R2, R2, R2, R2, R2, R2, R2, R2, R2, /* E1..EC */
    {2, 0x80, 0x9F},                                /* ED: surrogates */
    R2, R2,                                         /* EE, EF */
    {3, 0x90, 0xBF},                                /* F0: overlong */
    R3, R3, R3,                                     /* F1..F3 */
    {3, 0x80, 0x8F},                                /* F4: above U+10FFFF */
};
#undef R1
#undef R2
#undef R3
#undef R1x4
#undef R1x16

static inline int is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

/* Length of the valid non-ASCII sequence at s[0] when all of it lies in
 * s[0..n), else 0 (bad or cut). The fast path of sse_utf8_valid_prefix. */
static inline size_t seq_valid(const unsigned char *s, size_t n) {
  const lead_rule *r = &rules[s[0]];
  size_t k = r->need;
  if (k == 0 || n <= k || s[1] < r->lo || s[1] > r->hi) return 0;
  if (k >= 2 && !is_cont(s[2])) return 0;
  if (k == 3 && !is_cont(s[3])) return 0;
  return k + 1;
}

int sse_utf8_seq(const unsigned char *s, size_t n, size_t *len) {
  const lead_rule *r = &rules[s[0]];
  unsigned char lo = r->lo, hi = r->hi;
  size_t need = r->need;
  if (s[0] < 0x80) { *len = 1; return SSE_UTF8_OK; }
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

/* sse_utf8_skip_ascii, inlined where it is called per sequence. */
static inline size_t skip_ascii(const unsigned char *s, size_t i, size_t n) {
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

size_t sse_utf8_skip_ascii(const unsigned char *s, size_t i, size_t n) {
  return skip_ascii(s, i, n);
}

/* Scalar validation from i, a sequence boundary: the answer of
 * sse_utf8_valid_prefix. */
static size_t valid_from(const unsigned char *s, size_t i, size_t n) {
  size_t len;
  while (i < n) {
    if (s[i] < 0x80) {
      i = skip_ascii(s, i + 1, n);
      continue;
    }
    if ((len = seq_valid(s + i, n - i)) == 0) return i;
    i += len;
  }
  return n;
}

#if defined(__SSE2__)
/* Lanes of x that are >= c (unsigned), as 0xFF. */
static inline __m128i ge_u8(__m128i x, unsigned char c) {
  return _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8((char)c)), x);
}

/* Error lanes (0xFF) of the 16 bytes cur, whose 16 predecessors are prev:
 * lane j is set when byte j breaks the rule given bytes j-3..j-1. Every
 * ill-formed input sets a lane at or before the end of its first bad
 * sequence; a sequence still open at lane 15 sets nothing (the next block,
 * or the caller, judges it). */
static inline __m128i block_errors(__m128i prev, __m128i cur) {
  __m128i p1 = _mm_or_si128(_mm_slli_si128(cur, 1), _mm_srli_si128(prev, 15));
  __m128i p2 = _mm_or_si128(_mm_slli_si128(cur, 2), _mm_srli_si128(prev, 14));
  __m128i p3 = _mm_or_si128(_mm_slli_si128(cur, 3), _mm_srli_si128(prev, 13));
  /* 0x80..0xBF are the only bytes below 0xC0 as signed chars */
  __m128i cont = _mm_cmplt_epi8(cur, _mm_set1_epi8((char)0xC0));
  /* a lead 1, 2 or 3 bytes back announces this byte as a continuation */
  __m128i want = _mm_or_si128(_mm_or_si128(ge_u8(p1, 0xC0), ge_u8(p2, 0xE0)), ge_u8(p3, 0xF0));
  __m128i err = _mm_xor_si128(cont, want);
  /* bytes that never occur: C0, C1, F5..FF */
  err = _mm_or_si128(err, _mm_cmpeq_epi8(_mm_and_si128(cur, _mm_set1_epi8((char)0xFE)),
                                         _mm_set1_epi8((char)0xC0)));
  err = _mm_or_si128(err, ge_u8(cur, 0xF5));
  /* the narrowed first continuation after E0, ED, F0, F4 (compared as signed:
   * any byte outside 0x80..0xBF is already an error above) */
  err = _mm_or_si128(err, _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xE0)),
                                        _mm_cmplt_epi8(cur, _mm_set1_epi8((char)0xA0))));
  err = _mm_or_si128(err, _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xED)),
                                        _mm_cmpgt_epi8(cur, _mm_set1_epi8((char)0x9F))));
  err = _mm_or_si128(err, _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xF0)),
                                        _mm_cmplt_epi8(cur, _mm_set1_epi8((char)0x90))));
  err = _mm_or_si128(err, _mm_and_si128(_mm_cmpeq_epi8(p1, _mm_set1_epi8((char)0xF4)),
                                        _mm_cmpgt_epi8(cur, _mm_set1_epi8((char)0x8F))));
  return err;
}
#endif

/* Blocks of 16 bytes are judged at once (SSE2) while they are well formed;
 * the first block with an error, and the tail, go to valid_from, starting at
 * the lead of the sequence the blocks left open. */
size_t sse_utf8_valid_prefix(const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  size_t i = 0;
#if defined(__SSE2__)
  __m128i prev = _mm_setzero_si128();
  int open = 0; /* prev may end inside a sequence */
  for (; i + 16 <= n; i += 16) {
    __m128i cur = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    if (!_mm_movemask_epi8(cur)) { /* ASCII: fine unless prev left one open */
      if (open && (s[i - 1] >= 0xC0 || s[i - 2] >= 0xE0 || s[i - 3] >= 0xF0)) break;
      open = 0;
    } else {
      if (_mm_movemask_epi8(block_errors(prev, cur))) break;
      open = 1;
    }
    prev = cur;
  }
  /* s[0..i) holds valid sequences, the last perhaps cut at i: back up to its
   * lead (at most 3 continuation bytes) */
  for (int k = 0; k < 3 && i > 0 && (s[i - 1] & 0xC0) == 0x80; k++) i--;
  if (i > 0 && s[i - 1] >= 0xC0) i--;
#endif
  return valid_from(s, i, n);
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
  s->need = rules[b].need;
  s->lo = rules[b].lo;
  s->hi = rules[b].hi;
  return s->need ? 0 : -1;
}
