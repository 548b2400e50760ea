/* httphead.c - strict HTTP/1.1 heads and query strings (see httphead.h). */
#include "httphead.h"
#include "utf8.h"

#include <string.h>

typedef struct err_info {
  int status;
  const char *message;
} err_info;

/* Indexed by -code. */
static const err_info ERRORS[] = {
  {0, "ok"},
  {400, "incomplete request head"},
  {431, "request head too large"},
  {414, "request line too long"},
  {431, "too many headers"},
  {400, "malformed request line"},
  {400, "invalid method"},
  {400, "invalid request target"},
  {400, "malformed HTTP version"},
  {505, "HTTP version not supported"},
  {400, "header line without a colon"},
  {400, "whitespace before colon in header line"},
  {400, "invalid header name"},
  {400, "invalid character in header value"},
  {400, "obsolete line folding in header"},
  {400, "invalid Content-Length"},
  {400, "conflicting Content-Length headers"},
  {411, "Transfer-Encoding not supported"},
  {400, "both Content-Length and Transfer-Encoding"},
  {400, "missing Host header"},
  {400, "multiple Host headers"},
  {400, "bad percent-escape in path"},
  {400, "NUL byte in path"},
  {400, "path is not valid UTF-8"},
  {400, "dot segment in path"},
  {400, "bad percent-escape in query"},
  {400, "too many query parameters"},
  {502, "malformed status line"},
  {502, "invalid status code"},
  {502, "response head too large"},
  {400, "invalid Host header"},
  {502, "malformed chunked encoding"},
};

int sse_http_status(int code) {
  if (code > 0 || code < SSE_HTTP_E_LAST_) return 400;
  return ERRORS[-code].status;
}

const char *sse_http_message(int code) {
  if (code > 0 || code < SSE_HTTP_E_LAST_) return "bad request";
  return ERRORS[-code].message;
}

/* --- character classes ----------------------------------------------- */

/* 1 when c is a tchar of RFC 9110 5.6.2. */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return 1;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
  case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
    return 1;
  default:
    return 0;
  }
}

/* 1 when every byte of p[0..n) is a tchar and n > 0. */
static int is_token(const char *p, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)p[i])) return 0;
  return 1;
}

/* 1 when c may appear in a field value: HTAB, SP, VCHAR, obs-text. */
static int is_field_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* 1 when p[0..n) holds only characters of uri-host [":" port] (RFC 3986:
 * reg-name, IP-literal in brackets, pct-encoded); empty is allowed. */
static int is_host_value(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      continue;
    if (!c || !strchr("-._~!$&'()*+,;=%:[]", c)) return 0;
  }
  return 1;
}

/* Value of hex digit c, or -1. */
static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* ASCII case-insensitive equality of p[0..n) and the NUL-terminated lit. */
static int ieq(const char *p, size_t n, const char *lit) {
  size_t i = 0;
  for (; i < n; i++) {
    unsigned char a = (unsigned char)p[i], b = (unsigned char)lit[i];
    if (b == 0) return 0;
    if (a >= 'A' && a <= 'Z') a = (unsigned char)(a + 32);
    if (a != b) return 0;
  }
  return lit[i] == 0;
}

/* --- path and query decoding ------------------------------------------ */

/* 1 when the segment of length len holding dots '.' bytes is "." or "..". */
static int is_dot_segment(size_t len, size_t dots) {
  return (len == 1 || len == 2) && dots == len;
}

int sse_http_decode_path(const char *p, size_t n, char *out, size_t *out_len) {
  sse_utf8_stream u = SSE_UTF8_STREAM_INIT;
  size_t o = 0, seg_len = 0, seg_dots = 0;
  int first = 1; /* the text before the first '/' is not a segment */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%') {
      if (i + 2 >= n) return SSE_HTTP_E_PATH_ESCAPE;
      int h = hexval((unsigned char)p[i + 1]), l = hexval((unsigned char)p[i + 2]);
      if (h < 0 || l < 0) return SSE_HTTP_E_PATH_ESCAPE;
      c = (unsigned char)(h * 16 + l);
      i += 2;
    }
    if (c == 0) return SSE_HTTP_E_PATH_NUL;
    if (sse_utf8_stream_feed(&u, c)) return SSE_HTTP_E_PATH_UTF8;
    if (c == '/') {
      if (!first && is_dot_segment(seg_len, seg_dots)) return SSE_HTTP_E_PATH_DOT;
      first = 0;
      seg_len = seg_dots = 0;
    } else {
      seg_len++;
      if (c == '.') seg_dots++;
    }
    if (out) out[o] = (char)c;
    o++;
  }
  if (!sse_utf8_stream_done(&u)) return SSE_HTTP_E_PATH_UTF8;
  if (!first && is_dot_segment(seg_len, seg_dots)) return SSE_HTTP_E_PATH_DOT;
  *out_len = o;
  return 0;
}

int sse_http_decode_form(const char *p, size_t n, char *out, size_t *out_len) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      if (i + 2 >= n) return SSE_HTTP_E_QUERY_ESCAPE;
      int h = hexval((unsigned char)p[i + 1]), l = hexval((unsigned char)p[i + 2]);
      if (h < 0 || l < 0) return SSE_HTTP_E_QUERY_ESCAPE;
      c = (unsigned char)(h * 16 + l);
      i += 2;
    }
    if (out) out[o] = (char)c;
    o++;
  }
  *out_len = o;
  return 0;
}

int sse_http_query_next(const char *qs, size_t n, size_t *pos,
                        sse_str *key, sse_str *value) {
  size_t i = *pos;
  while (i < n) {
    const char *amp = memchr(qs + i, '&', n - i);
    size_t end = amp ? (size_t)(amp - qs) : n;
    size_t start = i;
    i = amp ? end + 1 : n;
    if (end == start) continue;
    const char *eq = memchr(qs + start, '=', end - start);
    if (eq) {
      key->p = qs + start;
      key->n = (size_t)(eq - (qs + start));
      value->p = eq + 1;
      value->n = (size_t)(qs + end - (eq + 1));
    } else {
      key->p = qs + start;
      key->n = end - start;
      value->p = qs + end;
      value->n = 0;
    }
    *pos = i;
    return 1;
  }
  *pos = i;
  return 0;
}

int sse_http_query_check(const char *qs, size_t n, size_t max_pairs,
                         size_t *npairs) {
  size_t pos = 0, count = 0, dummy;
  sse_str k, v;
  while (sse_http_query_next(qs, n, &pos, &k, &v)) {
    if (++count > max_pairs) return SSE_HTTP_E_QUERY_PAIRS;
    if (sse_http_decode_form(k.p, k.n, NULL, &dummy) ||
        sse_http_decode_form(v.p, v.n, NULL, &dummy))
      return SSE_HTTP_E_QUERY_ESCAPE;
  }
  *npairs = count;
  return 0;
}

/* --- finding the end of the head -------------------------------------- */

/* Length of the one tolerated empty line at the start of buf (0, 1 or 2). */
static size_t leading_empty_line(const char *buf, size_t len) {
  if (len >= 1 && buf[0] == '\n') return 1;
  if (len >= 2 && buf[0] == '\r' && buf[1] == '\n') return 2;
  return 0;
}

size_t sse_http_head_end(const char *buf, size_t len, size_t from) {
  if (len == 1 && buf[0] == '\r') return 0; /* maybe a leading CRLF */
  size_t skip = leading_empty_line(buf, len);
  /* An LF less than 3 bytes from the end of the last scan was undecided. */
  size_t i = from > 2 ? from - 2 : 0;
  if (i < skip) i = skip;
  while (i < len) {
    const char *lf = memchr(buf + i, '\n', len - i);
    if (!lf) return 0;
    size_t j = (size_t)(lf - buf);
    if (j + 1 >= len) return 0;
    if (buf[j + 1] == '\n') return j + 2;
    if (buf[j + 1] == '\r') {
      if (j + 2 >= len) return 0;
      if (buf[j + 2] == '\n') return j + 3;
    }
    i = j + 1;
  }
  return 0;
}

/* The size error for a head over max bytes: 414 when the request-line
 * (after the tolerated empty line) has no LF within the limit. */
static int size_error(const char *buf, size_t len, size_t max) {
  size_t skip = leading_empty_line(buf, len);
  size_t lim = len < max ? len : max;
  if (skip >= lim || !memchr(buf + skip, '\n', lim - skip))
    return SSE_HTTP_E_LINE_TOO_LONG;
  return SSE_HTTP_E_HEAD_TOO_LARGE;
}

int sse_http_head_check(const char *buf, size_t len, size_t from,
                        size_t max_head_bytes, size_t *head_len) {
  size_t h = sse_http_head_end(buf, len, from);
  if (h ? h > max_head_bytes : len >= max_head_bytes)
    return size_error(buf, len, max_head_bytes);
  *head_len = h;
  return 0;
}

/* --- lines and headers ------------------------------------------------- */

typedef struct line_iter {
  const char *buf;
  size_t pos, end; /* end: head length; every line before it ends in LF */
} line_iter;

/* Next line (without its LF and a CR before it) into *ln. Returns 0 when
 * none is left. */
static int next_line(line_iter *it, sse_str *ln) {
  if (it->pos >= it->end) return 0;
  const char *s = it->buf + it->pos;
  const char *lf = memchr(s, '\n', it->end - it->pos);
  size_t n = (size_t)(lf - s); /* the head ends in LF: lf is never NULL */
  it->pos += n + 1;
  if (n && s[n - 1] == '\r') n--;
  ln->p = s;
  ln->n = n;
  return 1;
}

/* Parse the header lines up to the empty line into hdrs (max entries).
 * Returns 0 and the count in *count, or a negative code. */
static int parse_headers(line_iter *it, sse_http_header *hdrs, size_t max,
                         size_t *count) {
  sse_str ln;
  size_t k = 0;
  while (next_line(it, &ln)) {
    if (ln.n == 0) {
      *count = k;
      return 0;
    }
    if (ln.p[0] == ' ' || ln.p[0] == '\t') return SSE_HTTP_E_OBS_FOLD;
    const char *colon = memchr(ln.p, ':', ln.n);
    if (!colon) return SSE_HTTP_E_NO_COLON;
    size_t nn = (size_t)(colon - ln.p);
    if (nn == 0) return SSE_HTTP_E_HEADER_NAME;
    if (ln.p[nn - 1] == ' ' || ln.p[nn - 1] == '\t')
      return SSE_HTTP_E_SPACE_BEFORE_COLON;
    if (!is_token(ln.p, nn)) return SSE_HTTP_E_HEADER_NAME;
    const char *v = colon + 1, *e = ln.p + ln.n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    for (const char *q = v; q < e; q++)
      if (!is_field_char((unsigned char)*q)) return SSE_HTTP_E_HEADER_VALUE;
    if (k == max) return SSE_HTTP_E_TOO_MANY_HEADERS;
    hdrs[k].name.p = ln.p;
    hdrs[k].name.n = nn;
    hdrs[k].value.p = v;
    hdrs[k].value.n = (size_t)(e - v);
    k++;
  }
  /* Not reached: the head always ends with an empty line. */
  return SSE_HTTP_INCOMPLETE;
}

/* Parse "HTTP/d.d" at p[0..n): returns the minor version (0 or 1), or
 * SSE_HTTP_E_VERSION when malformed, SSE_HTTP_E_VERSION_UNSUPPORTED when
 * well-formed but not 1.0 or 1.1. */
static int parse_version(const char *p, size_t n) {
  if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
      p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
    return SSE_HTTP_E_VERSION;
  if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
    return SSE_HTTP_E_VERSION_UNSUPPORTED;
  return p[7] - '0';
}

/* Content-Length value: digits only, at most 2^53. Returns it or -1. */
static long long parse_length(const char *p, size_t n) {
  long long v = 0;
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
    if (v > SSE_HTTP_MAX_CONTENT_LENGTH) return -1;
  }
  return v;
}

/* Scan a Connection value for the "close" and "keep-alive" options. */
static void connection_options(const char *p, size_t n, int *conn_close,
                               int *ka) {
  size_t i = 0;
  while (i < n) {
    const char *comma = memchr(p + i, ',', n - i);
    size_t end = comma ? (size_t)(comma - p) : n;
    size_t s = i, e = end;
    while (s < e && (p[s] == ' ' || p[s] == '\t')) s++;
    while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t')) e--;
    if (ieq(p + s, e - s, "close")) *conn_close = 1;
    else if (ieq(p + s, e - s, "keep-alive")) *ka = 1;
    i = end + 1;
  }
}

/* --- request ----------------------------------------------------------- */

/* Parse the request-line ln into r (method, target, path, query, minor,
 * path_len). Returns 0 or a negative code. */
static int parse_request_line(sse_str ln, sse_http_request *r) {
  const char *p = ln.p, *e = ln.p + ln.n;
  const char *sp1 = memchr(p, ' ', ln.n);
  if (!sp1 || sp1 == p) return SSE_HTTP_E_REQUEST_LINE;
  const char *t = sp1 + 1;
  const char *sp2 = memchr(t, ' ', (size_t)(e - t));
  if (!sp2 || sp2 == t) return SSE_HTTP_E_REQUEST_LINE;
  const char *v = sp2 + 1;
  if (memchr(v, ' ', (size_t)(e - v))) return SSE_HTTP_E_REQUEST_LINE;
  int minor = parse_version(v, (size_t)(e - v));
  if (minor < 0) return minor;
  size_t mn = (size_t)(sp1 - p), tn = (size_t)(sp2 - t);
  if (!is_token(p, mn)) return SSE_HTTP_E_METHOD;
  sse_str path = {t, tn}, query = {t + tn, 0};
  if (tn == 1 && t[0] == '*') {
    if (mn != 7 || memcmp(p, "OPTIONS", 7) != 0) return SSE_HTTP_E_TARGET;
  } else {
    if (t[0] != '/') return SSE_HTTP_E_TARGET;
    for (size_t i = 0; i < tn; i++) {
      unsigned char c = (unsigned char)t[i];
      if (c <= 0x20 || c >= 0x7f || c == '#') return SSE_HTTP_E_TARGET;
    }
    const char *q = memchr(t, '?', tn);
    if (q) {
      path.n = (size_t)(q - t);
      query.p = q + 1;
      query.n = tn - path.n - 1;
    }
  }
  size_t plen;
  int rc = sse_http_decode_path(path.p, path.n, NULL, &plen);
  if (rc) return rc;
  r->method.p = p;
  r->method.n = mn;
  r->target.p = t;
  r->target.n = tn;
  r->path = path;
  r->query = query;
  r->path_len = plen;
  r->minor = minor;
  return 0;
}

int sse_http_parse_request(const char *buf, size_t len,
                           const sse_http_limits *lim, sse_http_header *hdrs,
                           sse_http_request *req) {
  size_t head;
  int rc = sse_http_head_check(buf, len, 0, lim->max_head_bytes, &head);
  if (rc) return rc;
  if (head == 0) return SSE_HTTP_INCOMPLETE;

  line_iter it = {buf, leading_empty_line(buf, len), head};
  sse_http_request r;
  sse_str ln;
  next_line(&it, &ln);
  if ((rc = parse_request_line(ln, &r))) return rc;
  size_t n;
  if ((rc = parse_headers(&it, hdrs, lim->max_headers, &n))) return rc;

  long long clen = -1;
  int hosts = 0, te = 0, conn_close = 0, ka = 0;
  for (size_t i = 0; i < n; i++) {
    sse_str nm = hdrs[i].name, val = hdrs[i].value;
    if (ieq(nm.p, nm.n, "content-length")) {
      long long v = parse_length(val.p, val.n);
      if (v < 0) return SSE_HTTP_E_CONTENT_LENGTH;
      if (clen >= 0 && v != clen) return SSE_HTTP_E_CONFLICTING_LENGTH;
      clen = v;
    } else if (ieq(nm.p, nm.n, "transfer-encoding")) {
      te = 1;
    } else if (ieq(nm.p, nm.n, "host")) {
      if (!is_host_value(val.p, val.n)) return SSE_HTTP_E_BAD_HOST;
      hosts++;
    } else if (ieq(nm.p, nm.n, "connection")) {
      connection_options(val.p, val.n, &conn_close, &ka);
    }
  }
  if (te) return clen >= 0 ? SSE_HTTP_E_LENGTH_AND_TE : SSE_HTTP_E_TRANSFER_ENCODING;
  if (hosts > 1) return SSE_HTTP_E_MULTIPLE_HOST;
  if (hosts == 0 && r.minor == 1) return SSE_HTTP_E_NO_HOST;

  r.keep_alive = conn_close ? 0 : (r.minor == 1 || ka);
  r.content_length = clen;
  r.head_bytes = head;
  r.nheaders = n;
  r.headers = hdrs;
  *req = r;
  return 0;
}

/* --- response ---------------------------------------------------------- */

/* 1 when c is HTTP whitespace for MIME types (SP, HTAB, CR, LF). */
static int is_mime_ws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The essence of one MIME type p[0..n) (WHATWG MIME Sniffing, "parse a MIME
 * type": type "/" subtype, both tokens; parameters ignored). Returns 1 and
 * the slice, or 0 when it is not a valid MIME type. */
static int mime_essence(const char *p, size_t n, sse_str *out) {
  size_t s = 0, e = n, slash, sub_end;
  while (s < e && is_mime_ws(p[s])) s++;
  while (e > s && is_mime_ws(p[e - 1])) e--;
  for (slash = s; slash < e && p[slash] != '/'; slash++) {}
  if (slash == e || !is_token(p + s, slash - s)) return 0;
  for (sub_end = slash + 1; sub_end < e && p[sub_end] != ';'; sub_end++) {}
  while (sub_end > slash + 1 && is_mime_ws(p[sub_end - 1])) sub_end--;
  if (!is_token(p + slash + 1, sub_end - slash - 1)) return 0;
  out->p = p + s;
  out->n = sub_end - s;
  return 1;
}

/* Fetch's "extract a MIME type" over every Content-Type line: each value is
 * split on commas outside quoted strings; the last valid type that is not
 * "* / *" wins. out->p is NULL when there is none. */
static void extract_media_type(const sse_http_header *h, size_t n, sse_str *out) {
  out->p = NULL;
  out->n = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ieq(h[i].name.p, h[i].name.n, "content-type")) continue;
    const char *v = h[i].value.p;
    size_t vn = h[i].value.n, start = 0;
    int quoted = 0;
    for (size_t j = 0; j <= vn; j++) {
      if (j < vn && v[j] == '"') quoted = !quoted;
      if (j < vn && quoted && v[j] == '\\' && j + 1 < vn) { j++; continue; }
      if (j < vn && (quoted || v[j] != ',')) continue;
      sse_str m;
      if (mime_essence(v + start, j - start, &m) && !(m.n == 3 && memcmp(m.p, "*/*", 3) == 0))
        *out = m;
      start = j + 1;
    }
  }
}

/* 1 when the Transfer-Encoding value p[0..n) is exactly "chunked" (any case,
 * OWS around it). */
static int te_is_chunked(const char *p, size_t n) {
  while (n && (p[0] == ' ' || p[0] == '\t')) p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return ieq(p, n, "chunked");
}

/* Body framing of a response with status and headers h[0..n): stores it in
 * *framing and the length in *clen (-1 when absent). Returns 0 or a code. */
static int response_framing(int status, const sse_http_header *h, size_t n,
                            int *framing, long long *clen) {
  long long len = -1;
  int te = 0;
  for (size_t i = 0; i < n; i++) {
    if (ieq(h[i].name.p, h[i].name.n, "content-length")) {
      long long v = parse_length(h[i].value.p, h[i].value.n);
      if (v < 0) return SSE_HTTP_E_CONTENT_LENGTH;
      if (len >= 0 && v != len) return SSE_HTTP_E_CONFLICTING_LENGTH;
      len = v;
    } else if (ieq(h[i].name.p, h[i].name.n, "transfer-encoding")) {
      if (te || !te_is_chunked(h[i].value.p, h[i].value.n)) return SSE_HTTP_E_TRANSFER_ENCODING;
      te = 1;
    }
  }
  if (te && len >= 0) return SSE_HTTP_E_LENGTH_AND_TE;
  *clen = len;
  if (status < 200 || status == 204 || status == 304) *framing = SSE_HTTP_BODY_NONE;
  else if (te) *framing = SSE_HTTP_BODY_CHUNKED;
  else if (len >= 0) *framing = SSE_HTTP_BODY_LENGTH;
  else *framing = SSE_HTTP_BODY_CLOSE;
  return 0;
}

int sse_http_parse_response(const char *buf, size_t len,
                            const sse_http_limits *lim, sse_http_header *hdrs,
                            sse_http_response *res) {
  size_t head = sse_http_head_end(buf, len, 0);
  if (head ? head > lim->max_head_bytes : len >= lim->max_head_bytes)
    return SSE_HTTP_E_RESPONSE_TOO_LARGE;
  if (head == 0) return SSE_HTTP_INCOMPLETE;

  line_iter it = {buf, leading_empty_line(buf, len), head};
  sse_str ln;
  next_line(&it, &ln);
  /* HTTP-version SP 3DIGIT [SP reason-phrase] */
  if (ln.n < 12 || ln.p[8] != ' ') return SSE_HTTP_E_STATUS_LINE;
  int minor = parse_version(ln.p, 8);
  if (minor == SSE_HTTP_E_VERSION) return SSE_HTTP_E_STATUS_LINE;
  if (minor < 0) return minor;
  int status = 0;
  for (int i = 9; i < 12; i++) {
    if (ln.p[i] < '0' || ln.p[i] > '9') return SSE_HTTP_E_STATUS_CODE;
    status = status * 10 + (ln.p[i] - '0');
  }
  if (status < 100 || status > 599) return SSE_HTTP_E_STATUS_CODE;
  sse_str reason = {ln.p + ln.n, 0};
  if (ln.n > 12) {
    if (ln.p[12] != ' ') return SSE_HTTP_E_STATUS_CODE;
    reason.p = ln.p + 13;
    reason.n = ln.n - 13;
    for (size_t i = 0; i < reason.n; i++)
      if (!is_field_char((unsigned char)reason.p[i])) return SSE_HTTP_E_STATUS_LINE;
  }
  size_t n;
  int rc = parse_headers(&it, hdrs, lim->max_headers, &n);
  if (rc) return rc;
  int framing;
  long long clen;
  if ((rc = response_framing(status, hdrs, n, &framing, &clen))) return rc;
  res->status = status;
  res->minor = minor;
  res->reason = reason;
  res->framing = framing;
  res->content_length = clen;
  extract_media_type(hdrs, n, &res->media_type);
  res->head_bytes = head;
  res->nheaders = n;
  res->headers = hdrs;
  return 0;
}

/* --- chunked bodies ------------------------------------------------------ */

enum {
  CH_SIZE0,      /* the first hex digit of a chunk size */
  CH_SIZE,       /* more hex digits, or what ends them */
  CH_EXT,        /* a chunk extension, up to the line end */
  CH_SIZE_LF,    /* LF after the CR of a size line */
  CH_DATA,       /* chunk data */
  CH_DATA_CR,    /* CRLF after chunk data */
  CH_DATA_LF,
  CH_TRAILER,    /* the start of a trailer line (or the final empty line) */
  CH_TRAILER_LN, /* inside a trailer line */
  CH_END_LF,     /* LF after the CR of the final empty line */
  CH_END,
  CH_FAIL
};

void sse_http_chunked_init(sse_http_chunked *c) {
  c->state = CH_SIZE0;
  c->left = 0;
  c->line = 0;
}

/* Record a framing failure in c; returns SSE_HTTP_E_CHUNKED. */
static int chunk_fail(sse_http_chunked *c) {
  c->state = CH_FAIL;
  return SSE_HTTP_E_CHUNKED;
}

/* The size line ended: data follows, or the trailers. */
static void chunk_size_done(sse_http_chunked *c) {
  c->line = 0;
  c->state = c->left ? CH_DATA : CH_TRAILER;
}

int sse_http_chunked_next(sse_http_chunked *c, const char *in, size_t n,
                          size_t *pos, const char **data, size_t *len) {
  size_t i = *pos;
  int rc = SSE_HTTP_CHUNK_MORE;
  while (i < n && rc == SSE_HTTP_CHUNK_MORE) {
    unsigned char b = (unsigned char)in[i];
    switch (c->state) {
    case CH_SIZE0:
    case CH_SIZE: {
      int h = hexval(b);
      if (h >= 0) {
        if (c->left >= (1ULL << 56)) return chunk_fail(c); /* sizes stay below 2^60 */
        c->left = c->left * 16 + (unsigned)h;
        c->state = CH_SIZE;
      } else if (c->state == CH_SIZE0) {
        return chunk_fail(c);
      } else if (b == ';' || b == ' ' || b == '\t') {
        c->state = CH_EXT;
      } else if (b == '\r') {
        c->state = CH_SIZE_LF;
      } else if (b == '\n') {
        chunk_size_done(c);
      } else {
        return chunk_fail(c);
      }
      i++;
      break;
    }
    case CH_EXT:
      if (b == '\r') c->state = CH_SIZE_LF;
      else if (b == '\n') chunk_size_done(c);
      else if (!is_field_char(b) || ++c->line > SSE_HTTP_CHUNK_LINE_MAX) return chunk_fail(c);
      i++;
      break;
    case CH_SIZE_LF:
      if (b != '\n') return chunk_fail(c);
      chunk_size_done(c);
      i++;
      break;
    case CH_DATA: {
      size_t take = n - i;
      if ((unsigned long long)take > c->left) take = (size_t)c->left;
      *data = in + i;
      *len = take;
      c->left -= take;
      if (c->left == 0) c->state = CH_DATA_CR;
      i += take;
      rc = SSE_HTTP_CHUNK_DATA;
      break;
    }
    case CH_DATA_CR:
      if (b == '\r') c->state = CH_DATA_LF;
      else if (b == '\n') c->state = CH_SIZE0;
      else return chunk_fail(c);
      i++;
      break;
    case CH_DATA_LF:
      if (b != '\n') return chunk_fail(c);
      c->state = CH_SIZE0;
      i++;
      break;
    case CH_TRAILER:
      if (b == '\r') c->state = CH_END_LF;
      else if (b == '\n') c->state = CH_END;
      else if (!is_field_char(b)) return chunk_fail(c);
      else c->state = CH_TRAILER_LN, c->line = 1;
      i++;
      break;
    case CH_TRAILER_LN:
      if (b == '\n') c->state = CH_TRAILER;
      else if (b != '\r' && (!is_field_char(b) || ++c->line > SSE_HTTP_CHUNK_LINE_MAX))
        return chunk_fail(c);
      i++;
      break;
    case CH_END_LF:
      if (b != '\n') return chunk_fail(c);
      c->state = CH_END;
      i++;
      break;
    case CH_END:
      *pos = i;
      return SSE_HTTP_CHUNK_END;
    default:
      return SSE_HTTP_E_CHUNKED;
    }
  }
  *pos = i;
  if (rc == SSE_HTTP_CHUNK_MORE && c->state == CH_END) return SSE_HTTP_CHUNK_END;
  if (rc == SSE_HTTP_CHUNK_MORE && c->state == CH_FAIL) return SSE_HTTP_E_CHUNKED;
  return rc;
}
