/* test_encode.c - C unit test of the encoder (no Lua), run under ASan+UBSan. */
#include "encode.h"
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static sse_event ev_data(const char *d) {
  sse_event e;
  memset(&e, 0, sizeof e);
  e.retry = -1;
  if (d) { e.data.p = d; e.data.n = strlen(d); }
  return e;
}

/* Encodes into an exactly sized heap buffer, so ASan catches any overrun of
 * the length sse_encode_check reported. */
static char *enc(const sse_event *e, int utf8, sse_encode_err *err) {
  size_t len = 0;
  if (sse_encode_check(e, utf8, &len, err) != SSE_OK) return NULL;
  char *buf = malloc(len + 1);
  size_t n = sse_encode_write(e, buf);
  CHECK(n == len);
  buf[n] = '\0';
  return buf;
}

static void expect(const sse_event *e, const char *want) {
  sse_encode_err err;
  char *got = enc(e, 1, &err);
  CHECK(got != NULL);
  if (got && strcmp(got, want) != 0) {
    fprintf(stderr, "want [%s]\n got [%s]\n", want, got);
    failures++;
  }
  free(got);
}

int main(void) {
  sse_event e = ev_data("a\r\nb\rc\n");
  expect(&e, "data: a\ndata: b\ndata: c\ndata: \n\n");

  e = ev_data("");
  expect(&e, "data: \n\n");

  e = ev_data("x");
  e.id.p = "7"; e.id.n = 1;
  e.event.p = "t"; e.event.n = 1;
  e.retry = 10;
  e.comment.p = "c1\nc2"; e.comment.n = 5;
  expect(&e, ": c1\n: c2\nevent: t\nid: 7\nretry: 10\ndata: x\n\n");

  /* failures leave nothing behind and name the field and offset */
  sse_encode_err err;
  e = ev_data("x");
  e.id.p = "ab\nc"; e.id.n = 4;
  CHECK(enc(&e, 1, &err) == NULL);
  CHECK(err.code == SSE_E_NEWLINE && strcmp(err.field, "id") == 0 && err.offset == 2);

  e = ev_data("x");
  e.event.p = "a\0"; e.event.n = 2;
  CHECK(enc(&e, 1, &err) == NULL);
  CHECK(err.code == SSE_E_NUL && strcmp(err.field, "event") == 0 && err.offset == 1);

  e = ev_data("ok\xc3");
  CHECK(enc(&e, 1, &err) == NULL);
  CHECK(err.code == SSE_E_UTF8 && err.offset == 2);
  char *raw = enc(&e, 0, &err); /* trusted bytes pass */
  CHECK(raw && strcmp(raw, "data: ok\xc3\n\n") == 0);
  free(raw);

  e = ev_data(NULL);
  e.retry = SSE_RETRY_MAX + 1;
  CHECK(enc(&e, 1, &err) == NULL && err.code == SSE_E_RETRY);

  char msg[128];
  err.code = SSE_E_UTF8; err.field = "data"; err.offset = 9;
  sse_encode_errmsg(&err, msg, sizeof msg);
  CHECK(strcmp(msg, "field 'data' is not valid UTF-8 (byte 10)") == 0);

  /* UTF-8 validator boundaries, including across 16-byte blocks */
  CHECK(sse_utf8_valid_prefix("\xf0\x9f\x98\x80", 4) == 4);
  CHECK(sse_utf8_valid_prefix("\xf0\x9f\x98", 3) == 0);
  CHECK(sse_utf8_valid_prefix("\xef\xbf\xbf", 3) == 3);
  CHECK(sse_utf8_valid_prefix("\xed\xbf\xbf", 3) == 0);
  char block[40];
  memset(block, 'a', sizeof block);
  memcpy(block + 15, "\xe6\x97\xa5", 3); /* straddles the first block edge */
  CHECK(sse_utf8_valid_prefix(block, sizeof block) == sizeof block);
  block[39] = (char)0xC3;
  CHECK(sse_utf8_valid_prefix(block, sizeof block) == 39);

  /* every split of line ends across the SIMD block edge */
  for (size_t pos = 0; pos < 34; pos++) {
    char d[36];
    memset(d, 'x', sizeof d);
    d[pos] = '\r';
    d[pos + 1] = '\n';
    sse_event s;
    memset(&s, 0, sizeof s);
    s.retry = -1;
    s.data.p = d; s.data.n = sizeof d;
    char *out = enc(&s, 1, &err);
    CHECK(out != NULL);
    size_t lines = 0;
    for (char *q = out; *q; q++) lines += (*q == '\n');
    CHECK(lines == 3); /* two data lines and the blank line */
    free(out);
  }

  /* frames own one copy of bytes and topic */
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

  if (failures) {
    fprintf(stderr, "test_encode: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_encode: all checks passed\n");
  return 0;
}
