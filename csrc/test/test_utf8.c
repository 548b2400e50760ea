/* test_utf8.c - C unit test of the UTF-8 validator (utf8.c), against a
 * code-point decoder written here, exhaustively for every input of up to
 * three bytes. Run under ASan+UBSan by `make ctest`. */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

#define LIT(s) (s), (sizeof(s) - 1)

/* Longest valid prefix, by decoding code points (RFC 3629). */
static size_t ref_prefix(const unsigned char *p, size_t n) {
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

static int stream_valid(const unsigned char *p, size_t n) {
  sse_utf8_stream s = SSE_UTF8_STREAM_INIT;
  for (size_t i = 0; i < n; i++)
    if (sse_utf8_stream_feed(&s, p[i])) return 0;
  return sse_utf8_stream_done(&s);
}

/* Every 1-, 2- and 3-byte input: the prefix, the whole-string answer and the
 * byte-at-a-time answer all agree with the reference. */
static void test_exhaustive(void) {
  unsigned char b[3];
  int bad = 0;
  for (unsigned long v = 0; v < (1ul << 24); v++) {
    b[0] = (unsigned char)(v >> 16);
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)v;
    for (size_t n = 1; n <= 3; n++) {
      if (n < 3 && (v & ((1ul << (8 * (3 - n))) - 1))) continue; /* each short input once */
      size_t want = ref_prefix(b, n);
      size_t got = sse_utf8_valid_prefix((const char *)b, n);
      int ok = got == want && sse_utf8_valid((const char *)b, n) == (want == n) &&
               stream_valid(b, n) == (want == n);
      if (!ok && bad++ < 10)
        CHECKF(0, "bytes %02x %02x %02x (n=%zu): prefix %zu, want %zu", b[0], b[1], b[2], n, got,
               want);
    }
  }
  CHECKF(bad == 0, "%d inputs disagree with the reference", bad);
}

/* Four-byte sequences: every lead and second byte, edge values after, alone
 * and inside the SSE2 blocks. */
static void test_four_bytes(void) {
  static const unsigned char edge[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF};
  unsigned char b[4];
  int bad = 0;
  for (unsigned lead = 0xE0; lead <= 0xFF; lead++)
    for (unsigned b2 = 0; b2 < 256; b2++)
      for (size_t i = 0; i < sizeof edge; i++)
        for (size_t j = 0; j < sizeof edge; j++) {
          b[0] = (unsigned char)lead; b[1] = (unsigned char)b2; b[2] = edge[i]; b[3] = edge[j];
          size_t want = ref_prefix(b, 4);
          if (sse_utf8_valid_prefix((const char *)b, 4) != want ||
              stream_valid(b, 4) != (want == 4))
            bad++;
          /* and in ASCII at lanes 12..15 and 13..15 | 16 of the SSE2 blocks */
          for (size_t off = 12; off <= 13; off++) {
            unsigned char t[40];
            memset(t, 'a', sizeof t);
            memcpy(t + off, b, 4);
            if (sse_utf8_valid_prefix((const char *)t, sizeof t) != ref_prefix(t, sizeof t)) bad++;
          }
        }
  CHECKF(bad == 0, "%d four-byte inputs disagree with the reference", bad);
}

/* The 16-byte blocks of sse_utf8_valid_prefix: every 3-byte input at lanes
 * 13..15 (a sequence left open for an ASCII block) and 14, 15 | 16, in ASCII,
 * and long random inputs of leads, continuations and edge bytes, against
 * the reference. */
static void test_simd_blocks(void) {
  static const size_t offs[] = {13, 14};
  unsigned char b[48];
  int bad = 0;
  for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
    memset(b, 'a', sizeof b);
    for (unsigned long v = 0; v < (1ul << 24); v++) {
      b[offs[o]] = (unsigned char)(v >> 16);
      b[offs[o] + 1] = (unsigned char)(v >> 8);
      b[offs[o] + 2] = (unsigned char)v;
      size_t want = ref_prefix(b, sizeof b);
      size_t got = sse_utf8_valid_prefix((const char *)b, sizeof b);
      if (got != want && bad++ < 10)
        CHECKF(0, "bytes %02x %02x %02x at %zu: prefix %zu, want %zu", b[offs[o]],
               b[offs[o] + 1], b[offs[o] + 2], offs[o], got, want);
    }
  }
  static const unsigned char alpha[] = {'a', 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                        0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5};
  unsigned char r[100];
  unsigned long seed = 12345;
  for (int t = 0; t < 200000; t++) {
    size_t n = (size_t)(t % 100) + 1;
    for (size_t i = 0; i < n; i++) {
      seed = seed * 6364136223846793005ul + 1442695040888963407ul;
      unsigned x = (unsigned)(seed >> 33);
      /* mostly well-formed text with a rare odd byte */
      if (x % 8 == 0) r[i] = alpha[(x >> 3) % sizeof alpha];
      else if (x % 8 < 3) r[i] = 'a';
      else if (x % 8 < 5 && i + 2 < n) { memcpy(r + i, "\xe6\x97\xa5", 3); i += 2; }
      else if (x % 8 < 7 && i + 1 < n) { memcpy(r + i, "\xc3\xa9", 2); i += 1; }
      else if (i + 3 < n) { memcpy(r + i, "\xf0\x9f\x98\x80", 4); i += 3; }
      else r[i] = 'b';
    }
    size_t want = ref_prefix(r, n), got = sse_utf8_valid_prefix((const char *)r, n);
    if (got != want && bad++ < 10) CHECKF(0, "random input %d (n=%zu): prefix %zu, want %zu", t, n, got, want);
  }
  CHECKF(bad == 0, "%d block inputs disagree with the reference", bad);
}

/* sse_utf8_seq: lengths of good sequences, maximal subparts, cut input. */
static void test_seq(void) {
  size_t len = 99;
  CHECK(sse_utf8_seq((const unsigned char *)"a", 1, &len) == SSE_UTF8_OK && len == 1);
  CHECK(sse_utf8_seq((const unsigned char *)"\xc3\xa9", 2, &len) == SSE_UTF8_OK && len == 2);
  CHECK(sse_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4, &len) == SSE_UTF8_OK && len == 4);
  CHECK(sse_utf8_seq((const unsigned char *)"\x80", 1, &len) == SSE_UTF8_BAD && len == 1);
  CHECK(sse_utf8_seq((const unsigned char *)"\xc0\x80", 2, &len) == SSE_UTF8_BAD && len == 1);
  CHECK(sse_utf8_seq((const unsigned char *)"\xe0\x80\x80", 3, &len) == SSE_UTF8_BAD && len == 1);
  CHECK(sse_utf8_seq((const unsigned char *)"\xe6\x97x", 3, &len) == SSE_UTF8_BAD && len == 2);
  CHECK(sse_utf8_seq((const unsigned char *)"\xf0\x9f\x98x", 4, &len) == SSE_UTF8_BAD && len == 3);
  CHECK(sse_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3, &len) == SSE_UTF8_BAD && len == 1);
  CHECK(sse_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4, &len) == SSE_UTF8_BAD && len == 1);
  CHECK(sse_utf8_seq((const unsigned char *)"\xf0\x9f\x98", 3, &len) == SSE_UTF8_SHORT && len == 3);
  CHECK(sse_utf8_seq((const unsigned char *)"\xe6", 1, &len) == SSE_UTF8_SHORT && len == 1);
}

/* The ASCII skip and the validator across 16-byte blocks. */
static void test_blocks(void) {
  char block[40];
  for (size_t pos = 0; pos < sizeof block; pos++) {
    memset(block, 'a', sizeof block);
    block[pos] = (char)0x80;
    CHECK_INT(sse_utf8_skip_ascii((const unsigned char *)block, 0, sizeof block), pos);
    CHECK_INT(sse_utf8_valid_prefix(block, sizeof block), pos);
    if (pos + 3 <= sizeof block) {
      memcpy(block + pos, "\xe6\x97\xa5", 3);
      CHECK_INT(sse_utf8_valid_prefix(block, sizeof block), sizeof block);
    }
  }
  memset(block, 'a', sizeof block);
  CHECK_INT(sse_utf8_skip_ascii((const unsigned char *)block, 3, sizeof block), sizeof block);
  CHECK(sse_utf8_valid(LIT("")));
  CHECK(sse_utf8_valid(LIT("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf")));
  CHECK(!sse_utf8_valid(LIT("\xf5\x80\x80\x80")));
  CHECK(!sse_utf8_valid(LIT("\xe2\x82")));
}

int main(void) {
  test_seq();
  test_blocks();
  test_exhaustive();
  test_four_bytes();
  test_simd_blocks();
  return check_summary("test_utf8");
}
