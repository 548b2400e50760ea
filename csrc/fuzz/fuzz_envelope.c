/* fuzz_envelope.c - libFuzzer target for the envelope form of frames
 * (envelope.c), checked against the client parser (parse.c, the WHATWG
 * rules a browser follows).
 *
 * The input: one byte n (topic length, 0..15 used; 0: no topic), n topic
 * bytes (mapped to letters), then the frame's wire bytes (anything). Both
 * the wire bytes and their envelope are parsed, each after a comment line
 * (so a BOM is data, as it is mid-stream). Checked:
 * - sse_envelope_write writes exactly the length it measured, into a buffer
 *   of that size (ASan catches a byte too many);
 * - the envelope dispatches as many events, and as many retry values in the
 *   same order, as the wire bytes; each of its events is "sse", has the
 *   same last event id, and its data is one JSON object whose "topic",
 *   "event" and "data" are the topic and what a client of the wire bytes
 *   sees as the type and data (as decoded UTF-8, U+FFFD and all);
 * - sse_envelope_needed says 1 exactly when the wire bytes dispatch an
 *   event, and without one the envelope is the bytes themselves;
 * - a frame's twin is made once and freed with it (LeakSanitizer). */
#include "envelope.h"
#include "parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 4096

typedef struct {
  int kind;
  char *type, *data, *id;
  size_t type_len, data_len, id_len;
  unsigned long long retry;
} msg_t;

typedef struct {
  msg_t m[MAX_MSGS];
  size_t n;
} msgs_t;

static char *dup(const char *p, size_t n) {
  char *d = malloc(n + 1);
  if (n) memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

static void on_msg(void *ud, const sse_parse_msg *msg) {
  msgs_t *ms = ud;
  if (ms->n == MAX_MSGS) abort();
  msg_t *m = &ms->m[ms->n++];
  m->kind = msg->kind;
  m->retry = msg->retry;
  m->type = m->data = m->id = NULL;
  m->type_len = m->data_len = m->id_len = 0;
  if (msg->kind != SSE_PARSE_MSG_EVENT) return;
  m->type = dup(msg->type, msg->type_len);
  m->type_len = msg->type_len;
  m->data = dup(msg->data, msg->data_len);
  m->data_len = msg->data_len;
  m->id = dup(msg->id, msg->id_len);
  m->id_len = msg->id_len;
}

static void parse_all(const char *b, size_t n, msgs_t *ms) {
  sse_parser p;
  sse_parse_limits lim = {1u << 22, 1u << 22};
  sse_parser_init(&p, &lim);
  ms->n = 0;
  if (sse_parser_feed(&p, ": start\n", 8, on_msg, ms) != 0) abort();
  if (sse_parser_feed(&p, b, n, on_msg, ms) != 0) abort();
  sse_parser_free(&p);
}

static void free_msgs(msgs_t *ms) {
  for (size_t i = 0; i < ms->n; i++) {
    free(ms->m[i].type);
    free(ms->m[i].data);
    free(ms->m[i].id);
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Reads the JSON string (or null) at *pp, as the envelope writes them:
 * the escapes \" \\ \b \f \n \r \t \u00XX. Returns a malloc'd copy (NULL
 * for null) and its length; aborts on anything else. */
static char *json_str(const char **pp, size_t *len) {
  const char *p = *pp;
  if (strncmp(p, "null", 4) == 0) {
    *pp = p + 4;
    *len = 0;
    return NULL;
  }
  if (*p++ != '"') abort();
  size_t cap = strlen(p) + 1, n = 0;
  char *out = malloc(cap);
  for (;;) {
    char c = *p++;
    if (c == '\0') abort();
    if (c == '"') break;
    if ((unsigned char)c < 0x20 || c == 0x7F) abort(); /* must be escaped */
    if (c != '\\') {
      out[n++] = c;
      continue;
    }
    c = *p++;
    switch (c) {
    case '"': out[n++] = '"'; break;
    case '\\': out[n++] = '\\'; break;
    case 'b': out[n++] = '\b'; break;
    case 'f': out[n++] = '\f'; break;
    case 'n': out[n++] = '\n'; break;
    case 'r': out[n++] = '\r'; break;
    case 't': out[n++] = '\t'; break;
    case 'u': {
      if (p[0] != '0' || p[1] != '0') abort();
      int h = hexval(p[2]), l = hexval(p[3]);
      if (h < 0 || l < 0) abort();
      out[n++] = (char)(h * 16 + l);
      p += 4;
      break;
    }
    default: abort();
    }
  }
  *pp = p;
  *len = n;
  return out;
}

static void expect(const char **pp, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*pp, lit, n) != 0) abort();
  *pp += n;
}

static void same(const char *a, size_t an, const char *b, size_t bn) {
  if (an != bn || (an && memcmp(a, b, an) != 0)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t tl = data[0] & 15;
  if (size < 1 + tl) return 0;
  char topic[16];
  for (size_t i = 0; i < tl; i++) topic[i] = (char)('a' + data[1 + i] % 26);
  const char *wire = (const char *)data + 1 + tl;
  size_t n = size - 1 - tl;
  const char *top = tl ? topic : NULL;

  size_t len = sse_envelope_write(NULL, wire, n, top, tl);
  char *env = malloc(len ? len : 1);
  if (sse_envelope_write(env, wire, n, top, tl) != len) abort();

  static msgs_t a, b;
  parse_all(wire, n, &a);
  parse_all(env, len, &b);
  if (a.n != b.n) abort();
  size_t events = 0;
  for (size_t i = 0; i < a.n; i++) {
    msg_t *x = &a.m[i], *y = &b.m[i];
    if (x->kind != y->kind) abort();
    if (x->kind == SSE_PARSE_MSG_RETRY) {
      if (x->retry != y->retry) abort();
      continue;
    }
    events++;
    same(y->type, y->type_len, SSE_ENVELOPE_EVENT, strlen(SSE_ENVELOPE_EVENT));
    same(y->id, y->id_len, x->id, x->id_len);
    const char *p = y->data;
    size_t vl;
    expect(&p, "{\"topic\":");
    char *t = json_str(&p, &vl);
    if (top) same(t, vl, topic, tl);
    else if (t) abort();
    free(t);
    expect(&p, ",\"event\":");
    char *e = json_str(&p, &vl);
    if (!e) abort();
    same(e, vl, x->type, x->type_len);
    free(e);
    expect(&p, ",\"data\":");
    char *d = json_str(&p, &vl);
    if (!d) abort();
    same(d, vl, x->data, x->data_len);
    free(d);
    expect(&p, "}");
    if (*p) abort();
  }
  if (sse_envelope_needed(wire, n) != (events > 0)) abort();
  if (!events) same(env, len, wire, n);
  /* the twin: the same bytes, made once, owned by the frame */
  sse_frame *f = sse_frame_new(wire, n, top, tl);
  if (f) {
    sse_frame *tw = sse_frame_envelope(f);
    if (tw && (sse_frame_envelope(f) != tw || sse_frame_envelope(tw) != tw)) abort();
    if (tw) same(tw->bytes, tw->len, env, len);
    if (tw && (tw == f) != (events == 0)) abort();
    sse_frame_unref(f);
  }
  free_msgs(&a);
  free_msgs(&b);
  free(env);
  return 0;
}
