/* json.c - strict JSON validation and reading of validated text (json.h). */
#include "json.h"
#include "utf8.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef const unsigned char *ptr;

typedef struct jp {
  ptr p, end;
  int max_depth;
} jp;

static int is_ws(unsigned c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static ptr skip_ws(ptr p, ptr end) {
  while (p < end && is_ws(*p)) p++;
  return p;
}

static int hexval(unsigned c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
  return -1;
}

/* The 4 hex digits at p (p + 4 <= end checked by the caller) in *cp;
 * returns 0, or -1 when one is not a hex digit. */
static int hex4(ptr p, unsigned *cp) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return -1;
    v = v << 4 | (unsigned)h;
  }
  *cp = v;
  return 0;
}

/* Validates the string whose opening quote is at j->p; on success *out is
 * its raw content and j->p is past the closing quote. */
static int check_string(jp *j, sse_json_val *out) {
  ptr start = j->p + 1, p = start, end = j->end;
  for (;;) {
    if (p >= end) return SSE_JSON_E_SYNTAX;
    unsigned c = *p;
    if (c == '"') break;
    if (c < 0x20) return SSE_JSON_E_SYNTAX;
    if (c == '\\') {
      if (end - p < 2) return SSE_JSON_E_SYNTAX;
      c = p[1];
      if (c == 'u') {
        unsigned cp, lo;
        if (end - p < 6 || hex4(p + 2, &cp)) return SSE_JSON_E_SYNTAX;
        p += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return SSE_JSON_E_SYNTAX;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) ||
              lo < 0xDC00 || lo > 0xDFFF)
            return SSE_JSON_E_SYNTAX;
          p += 6;
        }
      } else if (c && strchr("\"\\/bfnrt", (int)c)) {
        p += 2;
      } else {
        return SSE_JSON_E_SYNTAX;
      }
      continue;
    }
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t n = 0;
    if (sse_utf8_seq(p, (size_t)(end - p), &n) != SSE_UTF8_OK) return SSE_JSON_E_SYNTAX;
    p += n;
  }
  out->type = SSE_JSON_STRING;
  out->p = (const char *)start;
  out->n = (size_t)(p - start);
  j->p = p + 1;
  return 0;
}

static int is_digit(ptr p, ptr end) { return p < end && *p >= '0' && *p <= '9'; }

/* Validates the number at j->p (RFC 8259 grammar); j->p moves past it. */
static int check_number(jp *j, sse_json_val *out) {
  ptr p = j->p, end = j->end, start = p;
  if (p < end && *p == '-') p++;
  if (!is_digit(p, end)) return SSE_JSON_E_SYNTAX;
  if (*p == '0') p++;
  else while (is_digit(p, end)) p++;
  if (p < end && *p == '.') {
    p++;
    if (!is_digit(p, end)) return SSE_JSON_E_SYNTAX;
    while (is_digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!is_digit(p, end)) return SSE_JSON_E_SYNTAX;
    while (is_digit(p, end)) p++;
  }
  out->type = SSE_JSON_NUMBER;
  out->p = (const char *)start;
  out->n = (size_t)(p - start);
  j->p = p;
  return 0;
}

static int check_value(jp *j, int depth, sse_json_val *out);

/* 1 when the member name key (inside the object starting at obj) was
 * already used by one of the members before it. */
static int seen_before(const char *obj, const sse_json_val *key) {
  /* the members before key, as an object without its closing brace */
  sse_json_val prev = {SSE_JSON_OBJECT, obj, (size_t)(key->p - 1 - obj)};
  size_t pos = 0;
  sse_json_val k, v;
  while (sse_json_next_member(&prev, &pos, &k, &v))
    if (sse_json_str_same(&k, key)) return 1;
  return 0;
}

/* Validates the array or object whose bracket is at j->p. */
static int check_container(jp *j, int depth, sse_json_val *out) {
  ptr start = j->p;
  int object = *start == '{';
  unsigned char close = object ? '}' : ']';
  if (depth > j->max_depth) return SSE_JSON_E_DEPTH;
  j->p = skip_ws(start + 1, j->end);
  if (j->p < j->end && *j->p == close) goto done;
  for (;;) {
    sse_json_val v;
    int rc;
    if (object) {
      j->p = skip_ws(j->p, j->end);
      if (j->p >= j->end || *j->p != '"') return SSE_JSON_E_SYNTAX;
      if ((rc = check_string(j, &v))) return rc;
      if (seen_before((const char *)start, &v)) return SSE_JSON_E_DUP;
      j->p = skip_ws(j->p, j->end);
      if (j->p >= j->end || *j->p != ':') return SSE_JSON_E_SYNTAX;
      j->p++;
    }
    if ((rc = check_value(j, depth, &v))) return rc;
    j->p = skip_ws(j->p, j->end);
    if (j->p >= j->end) return SSE_JSON_E_SYNTAX;
    if (*j->p == close) break;
    if (*j->p != ',') return SSE_JSON_E_SYNTAX;
    j->p++;
  }
done:
  j->p++;
  out->type = object ? SSE_JSON_OBJECT : SSE_JSON_ARRAY;
  out->p = (const char *)start;
  out->n = (size_t)(j->p - start);
  return 0;
}

static int check_literal(jp *j, const char *lit, int type, sse_json_val *out) {
  size_t n = strlen(lit);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return SSE_JSON_E_SYNTAX;
  out->type = type;
  out->p = (const char *)j->p;
  out->n = n;
  j->p += n;
  return 0;
}

/* Validates the value after optional whitespace at j->p; depth counts the
 * containers around it. */
static int check_value(jp *j, int depth, sse_json_val *out) {
  j->p = skip_ws(j->p, j->end);
  if (j->p >= j->end) return SSE_JSON_E_SYNTAX;
  switch (*j->p) {
  case '{':
  case '[': return check_container(j, depth + 1, out);
  case '"': return check_string(j, out);
  case 't': return check_literal(j, "true", SSE_JSON_TRUE, out);
  case 'f': return check_literal(j, "false", SSE_JSON_FALSE, out);
  case 'n': return check_literal(j, "null", SSE_JSON_NULL, out);
  default: return check_number(j, out);
  }
}

int sse_json_check(const char *buf, size_t n, int max_depth, sse_json_val *top) {
  jp j = {(ptr)buf, (ptr)buf + n, max_depth};
  sse_json_val v;
  int rc = check_value(&j, 0, &v);
  if (rc) return rc;
  if (skip_ws(j.p, j.end) != j.end) return SSE_JSON_E_SYNTAX;
  *top = v;
  return 0;
}

/* --- reading validated text ----------------------------------------------- */

/* Past the string whose opening quote is at p (validated text). */
static ptr skip_string(ptr p) {
  p++;
  while (*p != '"') p += *p == '\\' ? 2 : 1;
  return p + 1;
}

/* Past the value at p (validated text, no leading whitespace), reading it
 * into *v; end bounds a scalar that ends the buffer. */
static ptr read_value(ptr p, ptr end, sse_json_val *v) {
  ptr start = p;
  if (*p == '"') {
    ptr q = skip_string(p);
    v->type = SSE_JSON_STRING;
    v->p = (const char *)p + 1;
    v->n = (size_t)(q - p - 2);
    return q;
  }
  if (*p == '{' || *p == '[') {
    v->type = *p == '{' ? SSE_JSON_OBJECT : SSE_JSON_ARRAY;
    int depth = 0;
    do {
      if (*p == '"') {
        p = skip_string(p);
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      else if (*p == '}' || *p == ']') depth--;
      p++;
    } while (depth);
  } else {
    v->type = *p == 't' ? SSE_JSON_TRUE : *p == 'f' ? SSE_JSON_FALSE
            : *p == 'n' ? SSE_JSON_NULL : SSE_JSON_NUMBER;
    while (p < end && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}') p++;
  }
  v->p = (const char *)start;
  v->n = (size_t)(p - start);
  return p;
}

/* Shared by next_member and next_elem: the position of the next item of the
 * container c after *pos, or NULL after the last one. */
static ptr next_item(const sse_json_val *c, size_t *pos) {
  ptr base = (ptr)c->p, end = base + c->n, p = base + (*pos ? *pos : 1);
  p = skip_ws(p, end);
  if (p < end && *p == ',') p = skip_ws(p + 1, end);
  if (p >= end || *p == '}' || *p == ']') return NULL;
  return p;
}

int sse_json_next_member(const sse_json_val *obj, size_t *pos, sse_json_val *key,
                         sse_json_val *val) {
  ptr p = next_item(obj, pos), end = (ptr)obj->p + obj->n;
  if (!p) return 0;
  p = read_value(p, end, key);
  p = skip_ws(p, end) + 1; /* ':' */
  p = read_value(skip_ws(p, end), end, val);
  *pos = (size_t)(p - (ptr)obj->p);
  return 1;
}

int sse_json_next_elem(const sse_json_val *arr, size_t *pos, sse_json_val *val) {
  ptr p = next_item(arr, pos), end = (ptr)arr->p + arr->n;
  if (!p) return 0;
  p = read_value(p, end, val);
  *pos = (size_t)(p - (ptr)arr->p);
  return 1;
}

/* Unescaping reader of a validated string's content. */
typedef struct sit {
  ptr p, end;
  unsigned char buf[4];
  int bn, bi;
} sit;

static void sit_init(sit *it, const sse_json_val *s) {
  it->p = (ptr)s->p;
  it->end = it->p + s->n;
  it->bn = it->bi = 0;
}

/* The next byte of the unescaped string, or -1 at its end. */
static int sit_next(sit *it) {
  if (it->bi < it->bn) return it->buf[it->bi++];
  if (it->p >= it->end) return -1;
  unsigned c = *it->p++;
  if (c != '\\') return (int)c;
  c = *it->p++;
  switch (c) {
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  case 'u': break;
  default: return (int)c; /* " \ / */
  }
  unsigned cp, lo;
  hex4(it->p, &cp);
  it->p += 4;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    hex4(it->p + 2, &lo);
    it->p += 6;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  unsigned char *b = it->buf;
  if (cp < 0x80) {
    b[0] = (unsigned char)cp;
    it->bn = 1;
  } else if (cp < 0x800) {
    b[0] = (unsigned char)(0xC0 | cp >> 6);
    b[1] = (unsigned char)(0x80 | (cp & 0x3F));
    it->bn = 2;
  } else if (cp < 0x10000) {
    b[0] = (unsigned char)(0xE0 | cp >> 12);
    b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp & 0x3F));
    it->bn = 3;
  } else {
    b[0] = (unsigned char)(0xF0 | cp >> 18);
    b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    it->bn = 4;
  }
  it->bi = 1;
  return b[0];
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int str_eq(const sse_json_val *s, const char *b, size_t n, int ci) {
  sit it;
  sit_init(&it, s);
  for (size_t i = 0; i < n; i++) {
    int c = sit_next(&it);
    if (c < 0) return 0;
    int d = (unsigned char)b[i];
    if (ci ? lower(c) != lower(d) : c != d) return 0;
  }
  return sit_next(&it) < 0;
}

int sse_json_str_eq(const sse_json_val *s, const char *b, size_t n) {
  return str_eq(s, b, n, 0);
}

int sse_json_str_eq_ci(const sse_json_val *s, const char *b, size_t n) {
  return str_eq(s, b, n, 1);
}

int sse_json_str_same(const sse_json_val *a, const sse_json_val *b) {
  sit x, y;
  sit_init(&x, a);
  sit_init(&y, b);
  for (;;) {
    int c = sit_next(&x), d = sit_next(&y);
    if (c != d) return 0;
    if (c < 0) return 1;
  }
}

size_t sse_json_str_len(const sse_json_val *s) {
  sit it;
  size_t n = 0;
  sit_init(&it, s);
  while (sit_next(&it) >= 0) n++;
  return n;
}

int sse_json_number(const sse_json_val *v, double *out) {
  ptr p = (ptr)v->p, end = p + v->n;
  int neg = 0, digits = 0;
  long dexp = 0, e = 0;
  uint64_t m = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    if (digits < 19) {
      m = m * 10 + (uint64_t)(*p - '0');
      if (m) digits++;
    } else {
      dexp++;
    }
  }
  if (p < end && *p == '.') {
    for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
      if (digits < 19) {
        m = m * 10 + (uint64_t)(*p - '0');
        if (m) digits++;
        dexp--;
      }
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    int eneg = 0;
    p++;
    if (*p == '+' || *p == '-') eneg = *p++ == '-';
    for (; p < end; p++)
      if (e < 100000) e = e * 10 + (*p - '0');
    if (eneg) e = -e;
  }
  double d = (double)m;
  long t = dexp + e;
  if (m && t > 0) d *= pow(10.0, (double)t);
  else if (m && t < 0) d /= pow(10.0, (double)-t);
  if (!isfinite(d)) return -1;
  *out = neg ? -d : d;
  return 0;
}
