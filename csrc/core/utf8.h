/* utf8.h - UTF-8 validation, one implementation for the whole core (the
 * encoder, the HTTP head parser, ...). Plain C, no Lua.
 *
 * Valid means RFC 3629: shortest form only (no overlongs), no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. */
#ifndef SSE_UTF8_H
#define SSE_UTF8_H

#include <stddef.h>

enum {
  SSE_UTF8_OK = 0,
  SSE_UTF8_BAD = -1,  /* not a valid sequence */
  SSE_UTF8_SHORT = -2 /* a valid sequence cut by the end of the input */
};

/* Judges the sequence that starts at s[0] (n >= 1). SSE_UTF8_OK: *len is
 * its length (1 for ASCII, up to 4). SSE_UTF8_BAD: *len is the length of the
 * maximal ill-formed subpart (1..3), the bytes a WHATWG decoder replaces by
 * one U+FFFD. SSE_UTF8_SHORT: s[0..n) is a proper prefix of a valid
 * sequence (*len = n). */
int sse_utf8_seq(const unsigned char *s, size_t n, size_t *len);

/* Index of the first byte >= 0x80 in s[i..n), or n (16 bytes a step with
 * SSE2, 8 without). */
size_t sse_utf8_skip_ascii(const unsigned char *s, size_t i, size_t n);

/* Length of the longest valid UTF-8 prefix of p[0..n) (n when all valid). */
size_t sse_utf8_valid_prefix(const char *p, size_t n);

/* 1 when p[0..n) is valid UTF-8, else 0. */
int sse_utf8_valid(const char *p, size_t n);

/* Byte-at-a-time validation, for bytes made one by one (a percent-decoded
 * path): the same rules as sse_utf8_seq. Start from SSE_UTF8_STREAM_INIT. */
typedef struct sse_utf8_stream {
  unsigned char need;   /* continuation bytes still expected */
  unsigned char lo, hi; /* range allowed for the next one */
} sse_utf8_stream;

#define SSE_UTF8_STREAM_INIT {0, 0x80, 0xBF}

/* Feeds b. Returns 0 while the bytes so far can begin valid UTF-8, -1 once
 * they cannot (the state is then meaningless). */
int sse_utf8_stream_feed(sse_utf8_stream *s, unsigned char b);

/* 1 when the bytes fed so far end on a sequence boundary. */
static inline int sse_utf8_stream_done(const sse_utf8_stream *s) {
  return s->need == 0;
}

#endif
