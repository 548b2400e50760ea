/* resp.h - RESP2 (the Redis protocol): a reply scanner and a command encoder.
 * Plain C, no Lua, no I/O.
 *
 * A client reads replies from a socket into one buffer. sse_resp_scan()
 * validates the reply at the start of that buffer incrementally: each call
 * resumes where the previous one stopped (it never rescans what it has
 * already accepted), and answers DONE with the reply's length, MORE, or an
 * error. Only a reply the scanner accepted is then walked with
 * sse_resp_next(), which can therefore trust lengths and terminators (it
 * still checks bounds). Limits: arrays nest at most SSE_RESP_MAX_DEPTH deep;
 * a reply larger than the scanner's max_bytes is refused (a memory bound
 * against a misbehaving peer: an array header cannot make anyone allocate,
 * since every element takes at least 3 bytes that must arrive first).
 *
 * Types: '+' status, '-' error, ':' integer (int64), '$' bulk string (or
 * null: length -1), '*' array (or null: count -1). Lines end in CRLF. */
#ifndef SSE_RESP_H
#define SSE_RESP_H

#include <stddef.h>
#include <stdint.h>

#ifndef SSE_RESP_MAX_DEPTH
#define SSE_RESP_MAX_DEPTH 16
#endif
/* Longest header line (type byte, digits, CRLF) of an integer, bulk or array. */
#define SSE_RESP_MAX_HEADER 24
/* Default bound on one reply (bytes, everything included). */
#define SSE_RESP_DEFAULT_MAX_BYTES (512u * 1024u * 1024u)

enum {
  SSE_RESP_MORE = 0,        /* the reply is not complete yet */
  SSE_RESP_DONE = 1,        /* a whole reply: its length is in *end */
  SSE_RESP_EPROTO = -1,     /* not RESP2 */
  SSE_RESP_EDEPTH = -2,     /* arrays nested deeper than SSE_RESP_MAX_DEPTH */
  SSE_RESP_ETOOBIG = -3     /* the reply exceeds max_bytes */
};

/* Scanner state for one reply. Fields are private to resp.c. */
typedef struct sse_resp_scanner {
  size_t max_bytes;         /* bound on one reply */
  size_t pos;               /* bytes of the reply accepted so far */
  size_t line_from;         /* where to resume looking for a status line's CR */
  uint32_t depth;           /* arrays open */
  int err;                  /* the error once one was found (sticky) */
  int64_t left[SSE_RESP_MAX_DEPTH]; /* elements still expected per open array */
} sse_resp_scanner;

/* Resets s for a new reply bounded by max_bytes (0: the default). */
void sse_resp_scan_init(sse_resp_scanner *s, size_t max_bytes);

/* Continues validating the reply that starts at buf[0]; buf holds len bytes
 * (what earlier calls saw, plus more). Returns SSE_RESP_DONE and sets *end
 * to the reply's length (then re-init s for the next reply), SSE_RESP_MORE,
 * or a negative error (the connection is unusable; s stays in error). */
int sse_resp_scan(sse_resp_scanner *s, const char *buf, size_t len, size_t *end);

/* Text of a scan error code ("protocol error", ...). */
const char *sse_resp_strerror(int code);

/* One element of a reply. For '+', '-' and '$': p/len are the bytes (p NULL
 * for a null bulk string); for ':' and '*': n is the value / the count (-1
 * for a null array). */
typedef struct sse_resp_tok {
  char type;
  int64_t n;
  const char *p;
  size_t len;
} sse_resp_tok;

/* Reads the element header at buf[*pos] of a reply sse_resp_scan accepted
 * (and, for strings, its bytes), advancing *pos past it; an array's elements
 * follow as further calls. Returns 0, or -1 (nothing advanced) when the
 * bytes are not a valid element within len. */
int sse_resp_next(const char *buf, size_t len, size_t *pos, sse_resp_tok *t);

/* Bytes of the RESP array of bulk strings encoding a command of argc
 * arguments of the given lengths. */
size_t sse_resp_command_size(int argc, const size_t *lens);

/* Writes that command into out (sse_resp_command_size bytes) and returns the
 * number written. */
size_t sse_resp_command(char *out, int argc, const char *const *argv, const size_t *lens);

#endif
