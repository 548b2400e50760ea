/* encode.h - SSE wire encoding of one event. Plain C, no Lua.
 *
 * An event is a set of optional fields. sse_encode_check() validates every
 * field and computes the exact encoded length; sse_encode_write() then writes
 * exactly that many bytes and cannot fail. Nothing is written when the check
 * fails, so a bad field can never produce a partial or injected event. */
#ifndef SSE_ENCODE_H
#define SSE_ENCODE_H

#include <stddef.h>

#include "sse_limits.h"
#include "sse_str.h" /* a field: p NULL when absent */
#include "utf8.h"

typedef struct sse_event {
  sse_str id;
  sse_str event;
  sse_str data;     /* split into one "data: " line per line (CRLF, LF, CR) */
  sse_str comment;  /* split into one ": " line per line */
  long long retry;  /* < 0 when absent */
} sse_event;

enum {
  SSE_OK = 0,
  SSE_E_NEWLINE = -1,  /* CR or LF in id or event */
  SSE_E_NUL = -2,      /* NUL in id or event */
  SSE_E_UTF8 = -3,     /* invalid UTF-8 at err->offset */
  SSE_E_RETRY = -4,    /* retry negative or too large */
  SSE_E_TOOBIG = -5    /* encoded length would overflow size_t */
};

typedef struct sse_encode_err {
  int code;
  const char *field; /* "id", "event", "data", "comment", "retry" */
  size_t offset;     /* byte offset within the field (NEWLINE, NUL, UTF8) */
} sse_encode_err;

/* Validate ev and store its exact encoded length in *len. check_utf8 != 0
 * also requires every field to be valid UTF-8. Returns SSE_OK or a negative
 * code with *err filled in; *len is untouched on failure. */
int sse_encode_check(const sse_event *ev, int check_utf8, size_t *len,
                     sse_encode_err *err);

/* Write the encoding of an event that passed sse_encode_check() into out,
 * which must hold the length it reported. Returns the bytes written. */
size_t sse_encode_write(const sse_event *ev, char *out);

/* Human-readable message for err, written into buf (always NUL-terminated). */
void sse_encode_errmsg(const sse_encode_err *err, char *buf, size_t cap);

#endif
