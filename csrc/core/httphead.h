/* httphead.h - strict HTTP/1.1 message heads: request head (server side),
 * response head (client side) and query strings. Plain C, no Lua, no malloc.
 *
 * Rules (RFC 9112, strict, with the tolerances listed):
 * - request-line: method SP request-target SP HTTP-version, single spaces.
 *   method is a token; the target is origin-form (starts with '/', visible
 *   ASCII only) or "*" for OPTIONS; absolute- and authority-form are refused.
 *   The version must be HTTP/1.0 or HTTP/1.1; any other "HTTP/d.d" is 505.
 * - lines end with CRLF; a bare LF is tolerated. One empty line before the
 *   request-line is ignored (RFC 9112 2.2); a second one is an error.
 * - header lines: token ":" OWS value OWS. No whitespace before the colon,
 *   no obs-fold, no control bytes in values except HTAB.
 * - the whole head (leading empty line and final empty line included) must
 *   fit max_head_bytes: beyond it 431, or 414 when the request-line alone
 *   does not fit. More than max_headers header lines: 431.
 * - Content-Length: digits only, at most 2^53; repeats must agree.
 *   Transfer-Encoding is refused with 411 (request bodies need a length);
 *   both together are 400. HTTP/1.1 needs exactly one Host; HTTP/1.0 at most
 *   one. A Host value holds only host[:port] characters (no space, '/', '@').
 * - the path (target before '?') is percent-decoded; a bad escape, a decoded
 *   NUL, decoded bytes that are not UTF-8, or a "." / ".." segment are 400.
 *
 * Every function validates before it writes: on failure its outputs are
 * untouched, except the caller's header array, which is scratch. Results
 * point into the caller's buffer, which must outlive them. */
#ifndef SSE_HTTPHEAD_H
#define SSE_HTTPHEAD_H

#include <stddef.h>

#include "sse_str.h"

#define SSE_HTTP_MAX_HEAD_BYTES 8192
#define SSE_HTTP_MAX_HEADERS 64
#define SSE_HTTP_MAX_QUERY_PAIRS 256
#define SSE_HTTP_MAX_CONTENT_LENGTH 9007199254740992LL /* 2^53 */


typedef struct sse_http_header {
  sse_str name;  /* as received (not lowercased) */
  sse_str value; /* OWS-trimmed */
} sse_http_header;

typedef struct sse_http_limits {
  size_t max_head_bytes; /* > 0 */
  size_t max_headers;    /* > 0; the header array must hold this many */
} sse_http_limits;

typedef struct sse_http_request {
  sse_str method;
  sse_str target;   /* the raw request-target */
  sse_str path;     /* raw (still percent-encoded) target before '?' */
  sse_str query;    /* raw target after the first '?' ("" when none) */
  size_t path_len;       /* length of the decoded path */
  int minor;             /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
  int keep_alive;        /* 1 when the connection may serve another request */
  long long content_length; /* -1 when absent */
  size_t head_bytes;     /* bytes of the head, final empty line included */
  size_t nheaders;
  sse_http_header *headers; /* the caller's array, nheaders entries */
} sse_http_request;

/* How a response body ends (RFC 9112 6.3, for a response to GET). */
enum {
  SSE_HTTP_BODY_NONE = 0,    /* 1xx, 204, 304: no body */
  SSE_HTTP_BODY_LENGTH = 1,  /* Content-Length bytes */
  SSE_HTTP_BODY_CHUNKED = 2, /* Transfer-Encoding: chunked */
  SSE_HTTP_BODY_CLOSE = 3    /* until the connection closes */
};

typedef struct sse_http_response {
  int status;            /* 100..599 */
  int minor;             /* 0 or 1 */
  sse_str reason;        /* may be empty */
  int framing;           /* SSE_HTTP_BODY_* */
  long long content_length; /* -1 when absent */
  sse_str media_type;    /* essence of Content-Type ("type/subtype", as
                            received: compare case-insensitively); p is
                            NULL when absent or not a valid MIME type */
  size_t head_bytes;
  size_t nheaders;
  sse_http_header *headers;
} sse_http_response;

/* Result codes: 0 is success, everything else is negative. Each error has a
 * status (sse_http_status) and a fixed message (sse_http_message). */
enum {
  SSE_HTTP_OK = 0,
  SSE_HTTP_INCOMPLETE = -1,        /* no complete head in the buffer */
  SSE_HTTP_E_HEAD_TOO_LARGE = -2,  /* 431 */
  SSE_HTTP_E_LINE_TOO_LONG = -3,   /* 414 */
  SSE_HTTP_E_TOO_MANY_HEADERS = -4, /* 431 */
  SSE_HTTP_E_REQUEST_LINE = -5,
  SSE_HTTP_E_METHOD = -6,
  SSE_HTTP_E_TARGET = -7,
  SSE_HTTP_E_VERSION = -8,
  SSE_HTTP_E_VERSION_UNSUPPORTED = -9, /* 505 */
  SSE_HTTP_E_NO_COLON = -10,
  SSE_HTTP_E_SPACE_BEFORE_COLON = -11,
  SSE_HTTP_E_HEADER_NAME = -12,
  SSE_HTTP_E_HEADER_VALUE = -13,
  SSE_HTTP_E_OBS_FOLD = -14,
  SSE_HTTP_E_CONTENT_LENGTH = -15,
  SSE_HTTP_E_CONFLICTING_LENGTH = -16,
  SSE_HTTP_E_TRANSFER_ENCODING = -17, /* 411 */
  SSE_HTTP_E_LENGTH_AND_TE = -18,
  SSE_HTTP_E_NO_HOST = -19,
  SSE_HTTP_E_MULTIPLE_HOST = -20,
  SSE_HTTP_E_PATH_ESCAPE = -21,
  SSE_HTTP_E_PATH_NUL = -22,
  SSE_HTTP_E_PATH_UTF8 = -23,
  SSE_HTTP_E_PATH_DOT = -24,
  SSE_HTTP_E_QUERY_ESCAPE = -25,
  SSE_HTTP_E_QUERY_PAIRS = -26,
  SSE_HTTP_E_STATUS_LINE = -27,
  SSE_HTTP_E_STATUS_CODE = -28,
  SSE_HTTP_E_RESPONSE_TOO_LARGE = -29,
  SSE_HTTP_E_BAD_HOST = -30,
  SSE_HTTP_E_CHUNKED = -31,
  SSE_HTTP_E_LAST_ = -31
};

/* HTTP status that answers error code (400 for unknown codes, 0 for OK). */
int sse_http_status(int code);

/* Fixed lowercase-initial message for code (static storage, never NULL). */
const char *sse_http_message(int code);

/* Find the end of a head in buf[0..len): returns its length in bytes (the
 * final empty line included) or 0 when it is not complete yet. from is how
 * many bytes an earlier call already scanned without finding the end; the
 * scan resumes just before it, so feeding a head one byte at a time costs
 * O(n) in total. Pure function. */
size_t sse_http_head_end(const char *buf, size_t len, size_t from);

/* sse_http_head_end() plus the size limit: stores the head length (0 when
 * not complete) in *head_len and returns 0, or returns
 * SSE_HTTP_E_HEAD_TOO_LARGE / SSE_HTTP_E_LINE_TOO_LONG as soon as the head
 * is known to exceed max_head_bytes (then *head_len is untouched). */
int sse_http_head_check(const char *buf, size_t len, size_t from,
                        size_t max_head_bytes, size_t *head_len);

/* Parse the request head at the start of buf (bytes after the head are
 * ignored). hdrs must hold lim->max_headers entries. Returns 0 and fills
 * *req (whose strings point into buf), or a negative code leaving *req
 * untouched (SSE_HTTP_INCOMPLETE when buf holds no complete head and is not
 * yet over the limit). */
int sse_http_parse_request(const char *buf, size_t len,
                           const sse_http_limits *lim, sse_http_header *hdrs,
                           sse_http_request *req);

/* Parse a response head (status-line and headers) at the start of buf under
 * the same header rules, and say how its body ends: Content-Length digits
 * only (repeats must agree), Transfer-Encoding only "chunked" (a client that
 * sends no TE header accepts no other coding), not both. Content-Type gives
 * media_type as Fetch's "extract a MIME type" does (comma-separated values,
 * the last valid one other than the wildcard type). Returns 0 and fills *res,
 * SSE_HTTP_INCOMPLETE, or a negative code; *res is untouched unless 0 is
 * returned. */
int sse_http_parse_response(const char *buf, size_t len,
                            const sse_http_limits *lim, sse_http_header *hdrs,
                            sse_http_response *res);

/* Percent-decode a path into out (which must hold n bytes; NULL only
 * validates). Stores the decoded length in *out_len and returns 0, or returns
 * SSE_HTTP_E_PATH_ESCAPE / _NUL (raw or decoded) / _UTF8 / _DOT with
 * *out_len untouched (out may then hold partial output). */
int sse_http_decode_path(const char *p, size_t n, char *out, size_t *out_len);

/* Decode one query component ('+' is a space, %XX a byte; any byte value is
 * allowed) into out (n bytes; NULL only validates). Stores the decoded length
 * in *out_len and returns 0, or SSE_HTTP_E_QUERY_ESCAPE (*out_len untouched). */
int sse_http_decode_form(const char *p, size_t n, char *out, size_t *out_len);

/* Iterate the raw pairs of a query string: from *pos (start with 0), skips
 * empty pairs and stores the next key and value (value "" when the pair has
 * no '='; both still encoded), advancing *pos. Returns 1 for a pair, 0 at
 * the end (outputs untouched). */
int sse_http_query_next(const char *qs, size_t n, size_t *pos,
                        sse_str *key, sse_str *value);

/* Check a whole query string: every escape valid, at most max_pairs pairs.
 * Returns 0 and stores the pair count in *npairs, or SSE_HTTP_E_QUERY_ESCAPE
 * / SSE_HTTP_E_QUERY_PAIRS with *npairs untouched. */
int sse_http_query_check(const char *qs, size_t n, size_t max_pairs,
                         size_t *npairs);

/* Incremental decoder of a chunked body (RFC 9112 7.1): chunk sizes in hex
 * (below 2^60), chunk extensions and trailer fields skipped, a bare LF
 * accepted wherever CRLF is. Plain state, no allocation: zero it (or call
 * sse_http_chunked_init) to start a body. Fields are private. */
typedef struct sse_http_chunked {
  int state;
  unsigned long long left; /* chunk-data bytes still to come */
  size_t line;             /* bytes of the current size or trailer line */
} sse_http_chunked;

#define SSE_HTTP_CHUNK_LINE_MAX 4096 /* a size or trailer line, line end excluded */

enum {
  SSE_HTTP_CHUNK_MORE = 0, /* in[*pos..n) used up; feed more */
  SSE_HTTP_CHUNK_DATA = 1, /* *data, *len: the next slice of body bytes */
  SSE_HTTP_CHUNK_END = 2   /* the last chunk and trailers are done */
};

/* Start a body. Cannot fail. */
void sse_http_chunked_init(sse_http_chunked *c);

/* Decode from in[*pos..n), advancing *pos: returns SSE_HTTP_CHUNK_DATA with
 * *data and *len set to a slice of in (len > 0), SSE_HTTP_CHUNK_MORE when *pos
 * reached n, SSE_HTTP_CHUNK_END when the body is complete (*pos is then
 * just after it; END again on every later call), or SSE_HTTP_E_CHUNKED on
 * malformed framing (sticky). Call it in a loop until it returns MORE. */
int sse_http_chunked_next(sse_http_chunked *c, const char *in, size_t n,
                          size_t *pos, const char **data, size_t *len);

#endif
