/* sse_str.h - a byte span into memory someone else owns: the one string
 * type of the core (encode, httphead, ...). Plain C. */
#ifndef SSE_STR_H
#define SSE_STR_H

#include <stddef.h>

typedef struct sse_str {
  const char *p; /* NULL when absent (where a field may be absent) */
  size_t n;
} sse_str;

#endif
