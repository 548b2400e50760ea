/* parse.c - incremental text/event-stream parser (see parse.h). */
#include "parse.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};
static const char replacement[3] = {'\xEF', '\xBF', '\xBD'}; /* U+FFFD */

/* Grow b to hold at least need bytes. Returns 0, or SSE_PARSE_E_NOMEM with
 * b unchanged. */
static int pbuf_reserve(sse_pbuf *b, size_t need) {
  size_t cap;
  char *q;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) { cap = need; break; }
    cap *= 2;
  }
  q = realloc(b->p, cap);
  if (!q) return SSE_PARSE_E_NOMEM;
  b->p = q;
  b->cap = cap;
  return 0;
}

/* Append s[0..n) to b. Returns 0, or SSE_PARSE_E_NOMEM with b unchanged.
 * The caller has checked that b->n + n cannot overflow (limits). */
static int pbuf_append(sse_pbuf *b, const char *s, size_t n) {
  if (n == 0) return 0;
  if (pbuf_reserve(b, b->n + n)) return SSE_PARSE_E_NOMEM;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

/* Free b's memory and zero it. Cannot fail. */
static void pbuf_free(sse_pbuf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* Make both id buffers able to hold n bytes, so copying one into the other
 * never allocates. Returns 0 or SSE_PARSE_E_NOMEM (contents unchanged). */
static int id_reserve(sse_parser *p, size_t n) {
  if (pbuf_reserve(&p->idbuf, n)) return SSE_PARSE_E_NOMEM;
  return pbuf_reserve(&p->lastid, n);
}

/* Copy src's contents into dst, whose capacity is known to suffice. */
static void id_copy(sse_pbuf *dst, const sse_pbuf *src) {
  if (src->n) memcpy(dst->p, src->p, src->n);
  dst->n = src->n;
}

void sse_parser_init(sse_parser *p, const sse_parse_limits *limits) {
  memset(p, 0, sizeof *p);
  p->max_line = SSE_PARSE_DEFAULT_MAX_LINE;
  p->max_event = SSE_PARSE_DEFAULT_MAX_EVENT;
  if (limits && limits->max_line) p->max_line = limits->max_line;
  if (limits && limits->max_event) p->max_event = limits->max_event;
}

void sse_parser_free(sse_parser *p) {
  pbuf_free(&p->line);
  pbuf_free(&p->data);
  pbuf_free(&p->type);
  pbuf_free(&p->idbuf);
  pbuf_free(&p->lastid);
  p->err = 0;
  p->bom = 0;
  p->cr = 0;
  p->u8n = 0;
}

void sse_parser_reset(sse_parser *p) {
  p->line.n = 0;
  p->data.n = 0;
  p->type.n = 0;
  id_copy(&p->idbuf, &p->lastid);
  p->err = 0;
  p->bom = 0;
  p->cr = 0;
  p->u8n = 0;
}

int sse_parser_set_last_event_id(sse_parser *p, const char *id, size_t n) {
  sse_pbuf tmp;
  if (id_reserve(p, n)) return SSE_PARSE_E_NOMEM;
  tmp.p = (char *)id;
  tmp.n = tmp.cap = n;
  id_copy(&p->idbuf, &tmp);
  id_copy(&p->lastid, &tmp);
  return 0;
}

const char *sse_parser_last_event_id(const sse_parser *p, size_t *n) {
  *n = p->lastid.n;
  return p->lastid.n ? p->lastid.p : "";
}

const char *sse_parse_strerror(int code) {
  switch (code) {
  case SSE_PARSE_OK: return "ok";
  case SSE_PARSE_E_LINE: return "line too long";
  case SSE_PARSE_E_EVENT: return "event too large";
  case SSE_PARSE_E_NOMEM: return "out of memory";
  default: return "unknown error";
  }
}

/* Record code as the sticky failure of p and return it. */
static int fail(sse_parser *p, int code) {
  p->err = code;
  return code;
}

/* A blank line: update the last event id and dispatch the pending event, if
 * it has data. Returns 0 (cannot fail: the id buffers are pre-sized). */
static int dispatch(sse_parser *p, sse_parser_cb cb, void *ud) {
  sse_parse_msg m;
  id_copy(&p->lastid, &p->idbuf);
  if (p->data.n == 0) {
    p->type.n = 0;
    return 0;
  }
  memset(&m, 0, sizeof m);
  m.kind = SSE_PARSE_MSG_EVENT;
  if (p->type.n) {
    m.type = p->type.p;
    m.type_len = p->type.n;
  } else {
    m.type = "message";
    m.type_len = 7;
  }
  m.data = p->data.p;
  m.data_len = p->data.n - 1; /* the data buffer always ends in LF */
  m.id = sse_parser_last_event_id(p, &m.id_len);
  /* Reset first: the bytes stay in place until the next append, and the
   * parser is consistent should the callback not return. */
  p->data.n = 0;
  p->type.n = 0;
  cb(ud, &m);
  return 0;
}

/* Report a retry field whose value is v[0..n). Ignored unless n > 0 and all
 * ASCII digits; saturates at SSE_PARSE_RETRY_MAX. */
static void retry_field(const char *v, size_t n, sse_parser_cb cb, void *ud) {
  sse_parse_msg m;
  unsigned long long ms = 0;
  size_t i;
  if (n == 0) return;
  for (i = 0; i < n; i++)
    if (v[i] < '0' || v[i] > '9') return;
  for (i = 0; i < n; i++) {
    ms = ms * 10 + (unsigned)(v[i] - '0');
    if (ms > SSE_PARSE_RETRY_MAX) { ms = SSE_PARSE_RETRY_MAX; break; }
  }
  memset(&m, 0, sizeof m);
  m.kind = SSE_PARSE_MSG_RETRY;
  m.retry = ms;
  cb(ud, &m);
}

/* Interpret one complete line s[0..n) (line end removed). s never points
 * into a buffer this function writes. Returns 0 or an SSE_PARSE_E_* code
 * (the field then had no effect). */
static int process_line(sse_parser *p, const char *s, size_t n,
                        sse_parser_cb cb, void *ud) {
  const char *colon, *val;
  size_t nlen, vlen;
  if (n == 0) return dispatch(p, cb, ud);
  if (s[0] == ':') return 0;
  colon = memchr(s, ':', n);
  if (colon) {
    nlen = (size_t)(colon - s);
    val = colon + 1;
    vlen = n - nlen - 1;
    if (vlen && val[0] == ' ') { val++; vlen--; }
  } else {
    nlen = n;
    val = "";
    vlen = 0;
  }
  if (nlen == 4 && memcmp(s, "data", 4) == 0) {
    if (vlen + 1 > p->max_event - p->data.n)
      return SSE_PARSE_E_EVENT;
    if (pbuf_reserve(&p->data, p->data.n + vlen + 1)) return SSE_PARSE_E_NOMEM;
    if (vlen) memcpy(p->data.p + p->data.n, val, vlen);
    p->data.p[p->data.n + vlen] = '\n';
    p->data.n += vlen + 1;
  } else if (nlen == 5 && memcmp(s, "event", 5) == 0) {
    if (pbuf_reserve(&p->type, vlen)) return SSE_PARSE_E_NOMEM;
    if (vlen) memcpy(p->type.p, val, vlen);
    p->type.n = vlen;
  } else if (nlen == 2 && memcmp(s, "id", 2) == 0) {
    if (vlen && memchr(val, '\0', vlen)) return 0;
    if (id_reserve(p, vlen)) return SSE_PARSE_E_NOMEM;
    if (vlen) memcpy(p->idbuf.p, val, vlen);
    p->idbuf.n = vlen;
  } else if (nlen == 5 && memcmp(s, "retry", 5) == 0) {
    retry_field(val, vlen, cb, ud);
  }
  return 0;
}

/* Index of the first CR or LF in s[0..n), or n when there is none. */
static size_t find_eol(const char *s, size_t n) {
  const char *lf = memchr(s, '\n', n);
  size_t end = lf ? (size_t)(lf - s) : n;
  const char *cr = memchr(s, '\r', end);
  return cr ? (size_t)(cr - s) : end;
}

/* Feed body bytes (after the BOM decision). Returns 0 or a code, which is
 * then recorded as p's sticky failure. */
static int feed_body(sse_parser *p, const char *s, size_t n,
                     sse_parser_cb cb, void *ud) {
  size_t i = 0;
  if (n && p->cr) {
    p->cr = 0;
    if (s[0] == '\n') i = 1; /* the LF of a CRLF split across feeds */
  }
  while (i < n) {
    size_t seg = find_eol(s + i, n - i);
    size_t j = i + seg, next, len;
    const char *ls;
    int rc;
    if (seg > p->max_line - p->line.n) return fail(p, SSE_PARSE_E_LINE);
    if (j == n) { /* no line end yet: keep the partial line */
      if (pbuf_append(&p->line, s + i, seg)) return fail(p, SSE_PARSE_E_NOMEM);
      return 0;
    }
    next = j + 1;
    if (s[j] == '\r') {
      if (next == n) p->cr = 1;
      else if (s[next] == '\n') next++;
    }
    if (p->line.n) {
      if (pbuf_append(&p->line, s + i, seg)) return fail(p, SSE_PARSE_E_NOMEM);
      ls = p->line.p;
      len = p->line.n;
      p->line.n = 0; /* contents stay valid: process_line never appends */
    } else {
      ls = s + i;
      len = seg;
    }
    i = next;
    rc = process_line(p, ls, len, cb, ud);
    if (rc) return fail(p, rc);
  }
  return 0;
}

/* --- UTF-8 decoding (WHATWG Encoding Standard, "UTF-8 decoder") -------- */

/* Decoded text on its way to feed_body, so that the pieces around bad
 * bytes reach the line parser in a few large calls rather than one call per
 * piece. On the stack of one decode_feed: it allocates nothing. */
typedef struct decoded {
  size_t n;
  char b[4096];
} decoded;

/* Hand o's bytes to feed_body and empty o. Returns 0 or a code. */
static int dec_flush(sse_parser *p, decoded *o, sse_parser_cb cb, void *ud) {
  size_t n = o->n;
  o->n = 0;
  return n ? feed_body(p, o->b, n, cb, ud) : 0;
}

/* Pass the valid text s[0..n): copied into o when it fits behind what o
 * holds, else o is flushed and s goes to feed_body where it lies (no copy:
 * all of a valid feed goes this way). Returns 0 or a code. */
static int dec_text(sse_parser *p, decoded *o, const char *s, size_t n,
                    sse_parser_cb cb, void *ud) {
  int rc;
  if (o->n && n <= sizeof o->b - o->n) {
    memcpy(o->b + o->n, s, n);
    o->n += n;
    return 0;
  }
  if ((rc = dec_flush(p, o, cb, ud))) return rc;
  return feed_body(p, s, n, cb, ud);
}

/* Good bytes in a row after which the byte-wise decoder hands back to
 * sse_utf8_valid_prefix, whose set-up costs more than a few bytes. */
#define DEC_CALM 32

/* Decode s[i..n) sequence by sequence into o (one U+FFFD per maximal
 * ill-formed subpart) until DEC_CALM good bytes in a row, the end, a
 * sequence cut by the end (*cut = 1; it is not consumed) or fewer than 4
 * bytes free in o. Returns the index reached. Cannot fail. */
static size_t dec_bytes(decoded *o, const unsigned char *s, size_t i, size_t n, int *cut) {
  char *out = o->b + o->n, *full = o->b + sizeof o->b - 4;
  size_t good = 0, len;
  while (i < n && good < DEC_CALM && out <= full) {
    if (s[i] < 0x80) {
      *out++ = (char)s[i++];
      good++;
      continue;
    }
    int r = sse_utf8_seq(s + i, n - i, &len);
    if (r == SSE_UTF8_SHORT) {
      *cut = 1;
      break;
    }
    if (r == SSE_UTF8_OK) {
      memcpy(out, s + i, len);
      out += len;
      good += len;
    } else {
      memcpy(out, replacement, sizeof replacement);
      out += sizeof replacement;
      good = 0;
    }
    i += len;
  }
  o->n = (size_t)(out - o->b);
  return i;
}

/* Decode buf[0..n) (after the BOM decision) and feed the text to
 * feed_body: valid runs found by sse_utf8_valid_prefix pass whole; from a
 * bad byte on, sequence by sequence (sse_utf8_seq) until DEC_CALM good
 * bytes in a row, one U+FFFD per maximal ill-formed subpart; a sequence cut
 * at the end is held in p->u8 for the next call. Returns 0 or a code (then
 * p's sticky failure). */
static int decode_feed(sse_parser *p, const char *buf, size_t n,
                       sse_parser_cb cb, void *ud) {
  const unsigned char *s = (const unsigned char *)buf;
  size_t i = 0, len;
  decoded o;
  int r, rc;
  o.n = 0;
  if (p->u8n && n) { /* finish the sequence the last feed cut */
    unsigned char tmp[4];
    size_t k = p->u8n, take = n < 4 - k ? n : 4 - k;
    memcpy(tmp, p->u8, k);
    memcpy(tmp + k, s, take);
    r = sse_utf8_seq(tmp, k + take, &len);
    if (r == SSE_UTF8_SHORT) { /* still cut: all of buf was taken */
      memcpy(p->u8 + k, s, take);
      p->u8n = (unsigned char)(k + take);
      return 0;
    }
    p->u8n = 0;
    /* len >= k: the held bytes were a valid prefix */
    if (r == SSE_UTF8_OK) {
      memcpy(o.b, tmp, len);
      o.n = len;
    } else {
      memcpy(o.b, replacement, sizeof replacement);
      o.n = sizeof replacement;
    }
    i = len - k;
  }
  while (i < n) {
    size_t run = sse_utf8_valid_prefix(buf + i, n - i);
    int cut = 0;
    if (run && (rc = dec_text(p, &o, buf + i, run, cb, ud))) return rc;
    i += run;
    if (i == n) break;
    if (sizeof o.b - o.n < 4 && (rc = dec_flush(p, &o, cb, ud))) return rc;
    i = dec_bytes(&o, s, i, n, &cut);
    if (cut) { /* hold it: n - i <= 3 */
      memcpy(p->u8, s + i, n - i);
      p->u8n = (unsigned char)(n - i);
      break;
    }
  }
  return dec_flush(p, &o, cb, ud);
}

int sse_parser_feed(sse_parser *p, const char *buf, size_t n,
                    sse_parser_cb cb, void *ud) {
  size_t i = 0;
  if (p->err) return p->err;
  while (p->bom < 3 && i < n) {
    unsigned char k = p->bom;
    if ((unsigned char)buf[i] == utf8_bom[k]) {
      p->bom++;
      i++;
      continue;
    }
    /* not a BOM: the bytes matched so far are content */
    p->bom = 3;
    if (k) {
      int rc = decode_feed(p, (const char *)utf8_bom, k, cb, ud);
      if (rc) return rc;
    }
  }
  if (i < n) return decode_feed(p, buf + i, n - i, cb, ud);
  return 0;
}
