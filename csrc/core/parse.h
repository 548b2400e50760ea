/* parse.h - incremental parser of a text/event-stream body. Plain C, no Lua.
 *
 * Follows the WHATWG "event stream interpretation" rules on bytes: one
 * leading UTF-8 BOM is stripped (also when split across feeds); lines end in
 * CRLF, LF or CR (a CRLF split across two feeds is one line end); ':' starts
 * a comment; "name:value" loses one leading space of the value; a line
 * without ':' is a name with an empty value; the fields event, data, id (not
 * when it holds a NUL) and retry (ASCII digits only) are known, all others
 * ignored; a blank line dispatches.
 *
 * The body is decoded as the WHATWG Encoding Standard's "UTF-8 decode" does
 * (what a browser's EventSource shows): valid UTF-8 passes through
 * unchanged, and each maximal subpart of an ill-formed sequence (a bad lead
 * byte, a truncated sequence, an overlong, a surrogate, a code point above
 * U+10FFFF) becomes U+FFFD (EF BF BD). A sequence cut across feeds is held
 * back (at most 3 bytes) and decoded as if it had arrived whole, so every
 * way of splitting a stream gives the same events. Output is therefore
 * always valid UTF-8 (NUL bytes included as they are).
 *
 * The parser owns its buffers. Lines and event data are bounded by limits;
 * exceeding one puts the parser into a failed state in which it refuses all
 * further input (until sse_parser_reset), so memory never grows unbounded. */
#ifndef SSE_PARSE_H
#define SSE_PARSE_H

#include <stddef.h>

#define SSE_PARSE_DEFAULT_MAX_LINE  (1024u * 1024u)
#define SSE_PARSE_DEFAULT_MAX_EVENT (1024u * 1024u)
#define SSE_PARSE_RETRY_MAX 9007199254740991ULL /* retry values saturate here */

enum {
  SSE_PARSE_OK = 0,
  SSE_PARSE_E_LINE = -1,  /* a line (without its line end) over max_line */
  SSE_PARSE_E_EVENT = -2, /* the data buffer of one event over max_event */
  SSE_PARSE_E_NOMEM = -3  /* malloc failed */
};

typedef struct sse_parse_limits {
  size_t max_line;  /* bytes of one line, line end excluded; 0 = default */
  size_t max_event; /* bytes of one event's data buffer (values plus one LF
                       per data line); 0 = default */
} sse_parse_limits;

typedef struct sse_pbuf {
  char *p;
  size_t n, cap;
} sse_pbuf;

/* What the parser reports: a dispatched event or a valid retry field. */
enum { SSE_PARSE_MSG_EVENT = 1, SSE_PARSE_MSG_RETRY = 2 };

typedef struct sse_parse_msg {
  int kind;                          /* SSE_PARSE_MSG_EVENT or _RETRY */
  const char *type; size_t type_len; /* "message" when the stream gave none */
  const char *data; size_t data_len; /* trailing LF removed */
  const char *id; size_t id_len;     /* last event id at dispatch ("" none) */
  unsigned long long retry;          /* ms, for SSE_PARSE_MSG_RETRY */
} sse_parse_msg;

/* Called once per dispatched event or valid retry, in stream order. The
 * pointers in msg are valid only during the call. The parser state is
 * already consistent when it is called (the event is reset), so a callback
 * that does not return (longjmp) loses the rest of that feed's input but
 * leaves a usable parser. It must not call sse_parser_feed on the same
 * parser. */
typedef void (*sse_parser_cb)(void *ud, const sse_parse_msg *msg);

typedef struct sse_parser {
  size_t max_line, max_event;
  sse_pbuf line;    /* a line split across feeds */
  sse_pbuf data;    /* data buffer */
  sse_pbuf type;    /* event type buffer */
  sse_pbuf idbuf;   /* last event ID buffer */
  sse_pbuf lastid;  /* last event ID string (set at each dispatch) */
  int err;          /* sticky SSE_PARSE_E_* once failed, else 0 */
  unsigned char bom; /* BOM bytes matched so far (0..2), 3 when decided */
  unsigned char cr;  /* the previous feed ended in a CR line end */
  unsigned char u8n; /* bytes held in u8 (0..3) */
  unsigned char u8[3]; /* a UTF-8 sequence cut at the end of the last feed */
} sse_parser;

/* Set up p with limits (NULL or zero fields = defaults). Allocates nothing
 * and cannot fail; p must later be released with sse_parser_free. */
void sse_parser_init(sse_parser *p, const sse_parse_limits *limits);

/* Release every buffer of p and leave it as after init with the same
 * limits (so a second free is harmless). */
void sse_parser_free(sse_parser *p);

/* Start a new stream: clear the line, data, event type buffers, the BOM,
 * CR and UTF-8 decoder state and the failed state. The last event ID string is kept and the
 * last event ID buffer set back to it (a reconnecting client sends it and
 * keeps reporting it). Cannot fail (the id buffers never need to grow). */
void sse_parser_reset(sse_parser *p);

/* Set both the last event ID buffer and string to id[0..n) (as a client
 * that starts with a known id). Returns 0, or SSE_PARSE_E_NOMEM with p
 * unchanged. Does not look at or change the failed state. */
int sse_parser_set_last_event_id(sse_parser *p, const char *id, size_t n);

/* The last event ID string (set at dispatch); *n gets its length. The
 * pointer stays valid until the next feed/set/free; never NULL. */
const char *sse_parser_last_event_id(const sse_parser *p, size_t *n);

/* Parse buf[0..n), calling cb for each dispatched event and valid retry.
 * Returns 0, or a negative SSE_PARSE_E_* code: events dispatched before the
 * error in this call were reported; the parser is then failed and every
 * later feed returns the same code without reading input. An incomplete
 * last line and an event without its blank line are kept for the next
 * feed (an event still pending when the stream ends is never dispatched). */
int sse_parser_feed(sse_parser *p, const char *buf, size_t n,
                    sse_parser_cb cb, void *ud);

/* Short lowercase message for an SSE_PARSE_E_* code ("line too long",
 * "event too large", "out of memory"); static storage. */
const char *sse_parse_strerror(int code);

#endif
