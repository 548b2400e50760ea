/* json.h - a strict JSON (RFC 8259) validator and a reader of validated
 * text. Plain C, no Lua, no malloc; results point into the caller's buffer.
 *
 * Used where a decision must not depend on a lenient parser: the header and
 * the claims of a JSON Web Token (jwt.c). Stricter than RFC 8259 requires:
 * - one value, optionally surrounded by whitespace, and nothing after it;
 * - strings hold valid UTF-8 (no overlong forms, no surrogates, nothing past
 *   U+10FFFF), no raw control byte, only the escapes of the RFC, and a
 *   \uD800-\uDBFF escape must be followed by a \uDC00-\uDFFF one;
 * - member names are unique in every object, compared after unescaping
 *   ("\u0061lg" and "alg" are the same name);
 * - arrays and objects nest at most max_depth deep.
 * The reader functions (next_member, next_elem, str_*, number) are only
 * for values that came out of sse_json_check; they do not re-validate. */
#ifndef SSE_JSON_H
#define SSE_JSON_H

#include <stddef.h>

enum {
  SSE_JSON_NULL = 1,
  SSE_JSON_FALSE,
  SSE_JSON_TRUE,
  SSE_JSON_NUMBER,
  SSE_JSON_STRING,
  SSE_JSON_ARRAY,
  SSE_JSON_OBJECT
};

/* Error codes of sse_json_check (negative). */
enum {
  SSE_JSON_E_SYNTAX = -1, /* not JSON, bad escape, bad UTF-8, trailing data */
  SSE_JSON_E_DEPTH = -2,  /* nested deeper than max_depth */
  SSE_JSON_E_DUP = -3     /* an object names a member twice */
};

/* One value inside the caller's buffer. For a string, p/n is the raw text
 * between the quotes (escapes not decoded); for the others, the value's
 * whole text (brackets included). */
typedef struct sse_json_val {
  int type;
  const char *p;
  size_t n;
} sse_json_val;

/* Validates buf[0..n) as exactly one JSON value. Returns 0 and fills *top,
 * or a negative SSE_JSON_E_* code leaving *top untouched. max_depth >= 1
 * (1: an object or array holding only scalars). */
int sse_json_check(const char *buf, size_t n, int max_depth, sse_json_val *top);

/* Next member of the object obj: *pos starts at 0. Returns 1 and sets *key
 * (a string) and *val, or 0 after the last member. */
int sse_json_next_member(const sse_json_val *obj, size_t *pos, sse_json_val *key,
                         sse_json_val *val);

/* Next element of the array arr: *pos starts at 0. Returns 1 and sets *val,
 * or 0 after the last one. */
int sse_json_next_elem(const sse_json_val *arr, size_t *pos, sse_json_val *val);

/* 1 when the string s, unescaped, equals b[0..n) (byte for byte, or ASCII
 * case-insensitively for _ci), else 0. */
int sse_json_str_eq(const sse_json_val *s, const char *b, size_t n);
int sse_json_str_eq_ci(const sse_json_val *s, const char *b, size_t n);

/* 1 when the strings a and b are equal once unescaped, else 0. */
int sse_json_str_same(const sse_json_val *a, const sse_json_val *b);

/* Length of the string s once unescaped. */
size_t sse_json_str_len(const sse_json_val *s);

/* Value of the number v in *out. Returns 0, or -1 (and *out untouched)
 * when it does not fit a finite double (1e400). */
int sse_json_number(const sse_json_val *v, double *out);

#endif
