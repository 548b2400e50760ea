/* test_encode.c - C unit test of the encoder and frames (no Lua), run under
 * ASan+UBSan by `make ctest`. */
#include "encode.h"
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static sse_event ev_data(const char *d, size_t n) {
  sse_event e;
  memset(&e, 0, sizeof e);
  e.retry = -1;
  if (d) { e.data.p = d; e.data.n = n; }
  return e;
}
#define EV(lit) ev_data((lit), sizeof(lit) - 1)

/* Encodes into an exactly sized heap buffer, so ASan catches any overrun of
 * the length sse_encode_check reported. Returns NULL when the check fails. */
static char *enc(const sse_event *e, int utf8, sse_encode_err *err, size_t *n) {
  size_t len = 0;
  if (sse_encode_check(e, utf8, &len, err) != SSE_OK) return NULL;
  char *buf = malloc(len ? len : 1);
  *n = sse_encode_write(e, buf);
  CHECK_INT(*n, len);
  return buf;
}

static void expect_at(const sse_event *e, const char *want, size_t wn, int line) {
  sse_encode_err err;
  size_t n = 0;
  char *got = enc(e, 1, &err, &n);
  CHECKF(got != NULL, "line %d: encode failed (code %d)", line, err.code);
  check_mem(got, n, want, wn, __FILE__, line, "encoding");
  free(got);
}
#define EXPECT(e, lit) expect_at((e), (lit), sizeof(lit) - 1, __LINE__)

static void expect_err_at(const sse_event *e, int utf8, int code, const char *field, size_t off,
                          int line) {
  sse_encode_err err = {0, NULL, 0};
  size_t len = 12345, n;
  CHECKF(sse_encode_check(e, utf8, &len, &err) == code && len == 12345,
         "line %d: want code %d", line, code);
  CHECKF(err.code == code && err.field && strcmp(err.field, field) == 0 && err.offset == off,
         "line %d: got code %d field %s offset %zu, want %d %s %zu", line, err.code,
         err.field ? err.field : "(null)", err.offset, code, field, off);
  CHECKF(enc(e, utf8, &err, &n) == NULL, "line %d: encoded anyway", line);
}
#define EXPECT_ERR(e, utf8, code, field, off) expect_err_at((e), (utf8), (code), (field), (off), __LINE__)

static void test_wire(void) {
  sse_event e = EV("a\r\nb\rc\n");
  EXPECT(&e, "data: a\ndata: b\ndata: c\ndata: \n\n");
  e = EV("");
  EXPECT(&e, "data: \n\n");
  e = EV("x");
  e.id.p = "7"; e.id.n = 1;
  e.event.p = "t"; e.event.n = 1;
  e.retry = 10;
  e.comment.p = "c1\nc2"; e.comment.n = 5;
  EXPECT(&e, ": c1\n: c2\nevent: t\nid: 7\nretry: 10\ndata: x\n\n");
  e = ev_data(NULL, 0);
  EXPECT(&e, "\n");
  /* non-ASCII text with line ends: one scan validates and counts */
  e = EV("\xc3\xa9\r\n\xe6\x97\xa5\r\xf0\x9f\x98\x80\n");
  EXPECT(&e, "data: \xc3\xa9\ndata: \xe6\x97\xa5\ndata: \xf0\x9f\x98\x80\ndata: \n\n");
}

static void test_errors(void) {
  sse_event e = EV("x");
  e.id.p = "ab\nc"; e.id.n = 4;
  EXPECT_ERR(&e, 1, SSE_E_NEWLINE, "id", 2);
  e = EV("x");
  e.event.p = "a\0"; e.event.n = 2;
  EXPECT_ERR(&e, 1, SSE_E_NUL, "event", 1);
  e = EV("ok\xc3");
  EXPECT_ERR(&e, 1, SSE_E_UTF8, "data", 2);
  size_t n;
  sse_encode_err err;
  char *raw = enc(&e, 0, &err, &n); /* trusted bytes pass */
  CHECK_MEM(raw, n, "data: ok\xc3\n\n", 11);
  free(raw);
  /* the first invalid byte, wherever the line ends are */
  e = EV("\xc3\xa9\r\n\xff");
  EXPECT_ERR(&e, 1, SSE_E_UTF8, "data", 4);
  e = EV("abc\xe6\x97\ndef"); /* a sequence cut by a line end */
  EXPECT_ERR(&e, 1, SSE_E_UTF8, "data", 3);
  e = EV("x");
  e.comment.p = "a\n\xed\xa0\x80"; e.comment.n = 5; /* a surrogate */
  EXPECT_ERR(&e, 1, SSE_E_UTF8, "comment", 2);
  e = ev_data(NULL, 0);
  e.retry = SSE_RETRY_MAX + 1;
  EXPECT_ERR(&e, 1, SSE_E_RETRY, "retry", 0);
  e.retry = -2;
  EXPECT_ERR(&e, 1, SSE_E_RETRY, "retry", 0);

  char msg[128];
  err.code = SSE_E_UTF8; err.field = "data"; err.offset = 9;
  sse_encode_errmsg(&err, msg, sizeof msg);
  CHECK_STR(msg, "field 'data' is not valid UTF-8 (byte 10)");
}

/* Line ends and bad bytes at every position around the 16-byte blocks. */
static void test_block_edges(void) {
  sse_encode_err err;
  for (size_t pos = 0; pos < 34; pos++) {
    char d[36];
    memset(d, 'x', sizeof d);
    d[pos] = '\r';
    d[pos + 1] = '\n';
    sse_event s = ev_data(d, sizeof d);
    size_t n = 0, lines = 0;
    char *out = enc(&s, 1, &err, &n);
    CHECK(out != NULL);
    for (size_t k = 0; out && k < n; k++) lines += (out[k] == '\n');
    CHECKF(lines == 3, "CRLF at %zu: %zu lines", pos, lines); /* two data lines, the blank line */
    free(out);

    memset(d, 'x', sizeof d);
    d[pos] = (char)0xFF;
    s = ev_data(d, sizeof d);
    EXPECT_ERR(&s, 1, SSE_E_UTF8, "data", pos);
    if (pos + 3 <= sizeof d) {
      memcpy(d + pos, "\xe6\x97\xa5", 3); /* valid, across the edge */
      out = enc(&s, 1, &err, &n);
      CHECKF(out && n == sizeof d + 8, "U+65E5 at %zu", pos);
      free(out);
    }
  }
}

static void test_frames(void) {
  sse_frame *f = sse_frame_new("data: x\n\n", 9, "news", 4);
  CHECK(f && f->len == 9 && f->topic && strcmp(f->topic, "news") == 0 && f->refs == 1);
  sse_frame_ref(f);
  sse_frame_unref(f);
  CHECK(f->refs == 1);
  sse_frame_unref(f);
  sse_frame *g = sse_frame_new("x", 1, NULL, 0);
  CHECK(g && g->topic == NULL);
  sse_frame_unref(g);
  sse_frame_unref(NULL);
}

int main(void) {
  test_wire();
  test_errors();
  test_block_edges();
  test_frames();
  return check_summary("test_encode");
}
