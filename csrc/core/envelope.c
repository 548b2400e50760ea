/* envelope.c - the envelope form of a frame (envelope.h): one pass that
 * reads the frame's blocks as a client would and writes each block that has
 * data as one envelope event. Measuring and writing share the code (out
 * NULL only counts), so the length can never disagree with the bytes. */
#include "envelope.h"

#include <stdio.h>
#include <string.h>

#include "sse_str.h"
#include "utf8.h"

/* Appends n bytes at out + *pos (out NULL: only counts). */
static void put(char *out, size_t *pos, const char *p, size_t n) {
  if (out && n) memcpy(out + *pos, p, n);
  *pos += n;
}

/* The characters of a JSON string for p[0..n), without the quotes. */
static void json_chars(char *out, size_t *pos, const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    /* printable ASCII other than quote and backslash goes as it is */
    while (run < n && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' && s[run] != '\\') run++;
    put(out, pos, p + i, run - i);
    i = run;
    if (i == n) break;
    unsigned char c = s[i];
    if (c >= 0x80) {
      size_t len;
      int st = sse_utf8_seq(s + i, n - i, &len);
      if (st == SSE_UTF8_OK) put(out, pos, p + i, len);
      else put(out, pos, "\xEF\xBF\xBD", 3); /* one U+FFFD per maximal subpart */
      i += len;
      continue;
    }
    i++;
    const char *esc = NULL;
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default: break;
    }
    if (esc) {
      put(out, pos, esc, 2);
    } else {
      char u[8];
      snprintf(u, sizeof u, "\\u%04x", c);
      put(out, pos, u, 6);
    }
  }
}

void sse_json_string(char *out, size_t *pos, const char *p, size_t n) {
  if (!p) {
    put(out, pos, "null", 4);
    return;
  }
  put(out, pos, "\"", 1);
  json_chars(out, pos, p, n);
  put(out, pos, "\"", 1);
}

/* One line of a frame: [p, p + len) without its end; next is where the
 * following line starts. */
typedef struct {
  const char *p;
  size_t len, next;
} line_t;

/* Reads the line at i (i < n): it ends at CRLF, LF or CR. ended is 0 when
 * the bytes end before a line end. */
static line_t read_line(const char *b, size_t n, size_t i, int *ended) {
  line_t l;
  size_t j = i;
  while (j < n && b[j] != '\n' && b[j] != '\r') j++;
  l.p = b + i;
  l.len = j - i;
  *ended = j < n;
  if (j < n && b[j] == '\r' && j + 1 < n && b[j + 1] == '\n') j++;
  l.next = j < n ? j + 1 : n;
  return l;
}

/* Splits a line into its field name and value (one leading space off). */
static void field_of(const line_t *l, sse_str *name, sse_str *value) {
  const char *colon = memchr(l->p, ':', l->len);
  name->p = l->p;
  if (!colon) {
    name->n = l->len;
    value->p = l->p + l->len;
    value->n = 0;
    return;
  }
  name->n = (size_t)(colon - l->p);
  value->p = colon + 1;
  value->n = l->len - name->n - 1;
  if (value->n && value->p[0] == ' ') {
    value->p++;
    value->n--;
  }
}

static int is_field(const sse_str *name, const char *lit) {
  size_t n = strlen(lit);
  return name->n == n && memcmp(name->p, lit, n) == 0;
}

/* The block that starts at i: where it ends (after its blank line, or n
 * when it has none: *complete 0) and whether it has a data field. */
static size_t block_end(const char *b, size_t n, size_t i, int *has_data, int *complete) {
  *has_data = 0;
  *complete = 0;
  while (i < n) {
    int ended;
    line_t l = read_line(b, n, i, &ended);
    i = l.next;
    if (!ended) break;
    if (l.len == 0) {
      *complete = 1;
      break;
    }
    sse_str name, value;
    field_of(&l, &name, &value);
    if (l.p[0] != ':' && is_field(&name, "data")) *has_data = 1;
  }
  return i;
}

/* Writes the envelope event of the complete block b[i..end) that has data. */
static void envelope_block(char *out, size_t *pos, const char *b, size_t i, size_t end,
                           const char *topic, size_t tlen) {
  sse_str id = {NULL, 0}, event = {NULL, 0};
  /* comments and retry lines first, as they were (each with LF) */
  for (size_t k = i; k < end;) {
    int ended;
    line_t l = read_line(b, end, k, &ended);
    k = l.next;
    if (l.len == 0) continue;
    sse_str name, value;
    field_of(&l, &name, &value);
    if (l.p[0] == ':' || is_field(&name, "retry")) {
      put(out, pos, l.p, l.len);
      put(out, pos, "\n", 1);
    } else if (is_field(&name, "event")) {
      event = value;
    } else if (is_field(&name, "id") && !memchr(value.p, '\0', value.n)) {
      id = value; /* an id with NUL is ignored by clients */
    }
  }
  put(out, pos, "event: " SSE_ENVELOPE_EVENT "\n", sizeof("event: " SSE_ENVELOPE_EVENT "\n") - 1);
  if (id.p) {
    put(out, pos, "id: ", 4);
    put(out, pos, id.p, id.n);
    put(out, pos, "\n", 1);
  }
  put(out, pos, "data: {\"topic\":", 15);
  sse_json_string(out, pos, topic, tlen);
  put(out, pos, ",\"event\":", 9);
  if (event.p && event.n) sse_json_string(out, pos, event.p, event.n);
  else put(out, pos, "\"message\"", 9);
  put(out, pos, ",\"data\":\"", 9);
  /* the data lines joined with LF (escaped), as a client joins them */
  int first = 1;
  for (size_t k = i; k < end;) {
    int ended;
    line_t l = read_line(b, end, k, &ended);
    k = l.next;
    if (l.len == 0 || l.p[0] == ':') continue;
    sse_str name, value;
    field_of(&l, &name, &value);
    if (!is_field(&name, "data")) continue;
    if (!first) put(out, pos, "\\n", 2);
    first = 0;
    json_chars(out, pos, value.p, value.n);
  }
  put(out, pos, "\"}\n\n", 4);
}

size_t sse_envelope_write(char *out, const char *b, size_t n, const char *topic,
                          size_t topic_len) {
  size_t pos = 0, i = 0;
  while (i < n) {
    int has_data, complete;
    size_t end = block_end(b, n, i, &has_data, &complete);
    if (has_data && complete) envelope_block(out, &pos, b, i, end, topic, topic_len);
    else put(out, &pos, b + i, end - i); /* nothing a client dispatches: as it is */
    i = end;
  }
  return pos;
}

int sse_envelope_needed(const char *b, size_t n) {
  size_t i = 0;
  while (i < n) {
    int has_data, complete;
    i = block_end(b, n, i, &has_data, &complete);
    if (has_data && complete) return 1;
  }
  return 0;
}

sse_frame *sse_frame_envelope(sse_frame *f) {
  if (f->twin) return f->twin;
  if (!sse_envelope_needed(f->bytes, f->len)) {
    f->twin = f; /* the same bytes in both modes: no copy */
    return f;
  }
  size_t len = sse_envelope_write(NULL, f->bytes, f->len, f->topic, f->topic_len);
  sse_frame *t = sse_frame_alloc(len, f->topic, f->topic_len);
  if (!t) return NULL;
  sse_envelope_write(t->bytes, f->bytes, f->len, f->topic, f->topic_len);
  t->seq = f->seq;
  t->time = f->time;
  t->twin = t; /* an envelope is its own envelope */
  f->twin = t; /* f's reference */
  return t;
}
