/* test_resp.c - unit tests of the RESP2 scanner and command encoder (no
 * Lua), run under ASan+UBSan by `make ctest`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#include "check.h"

/* Scans s (whole) with max_bytes; returns the status, *end the length. */
static int scan(const char *s, size_t max, size_t *end) {
  sse_resp_scanner sc;
  sse_resp_scan_init(&sc, max);
  *end = 0;
  return sse_resp_scan(&sc, s, strlen(s), end);
}

static void test_types(void) {
  size_t end;
  CHECK(scan("+OK\r\n", 0, &end) == SSE_RESP_DONE && end == 5);
  CHECK(scan("-ERR x\r\n", 0, &end) == SSE_RESP_DONE && end == 8);
  CHECK(scan(":-12\r\n", 0, &end) == SSE_RESP_DONE && end == 6);
  CHECK(scan("$3\r\na\r\n\r\n", 0, &end) == SSE_RESP_DONE && end == 9); /* binary-safe */
  CHECK(scan("$-1\r\n", 0, &end) == SSE_RESP_DONE && end == 5);
  CHECK(scan("*-1\r\n", 0, &end) == SSE_RESP_DONE && end == 5);
  CHECK(scan("*0\r\n", 0, &end) == SSE_RESP_DONE && end == 4);
  CHECK(scan("*2\r\n*1\r\n:1\r\n$0\r\n\r\n+next\r\n", 0, &end) == SSE_RESP_DONE && end == 18);
}

static void test_incomplete(void) {
  size_t end;
  CHECK(scan("", 0, &end) == SSE_RESP_MORE);
  CHECK(scan("+OK\r", 0, &end) == SSE_RESP_MORE);
  CHECK(scan("$5\r\nabc", 0, &end) == SSE_RESP_MORE);
  CHECK(scan("$5\r\nabcde\r", 0, &end) == SSE_RESP_MORE);
  CHECK(scan("*2\r\n:1\r\n", 0, &end) == SSE_RESP_MORE);
  CHECK(scan(":123", 0, &end) == SSE_RESP_MORE);
}

static void test_errors(void) {
  size_t end;
  CHECK(scan("?\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan("+a\nb\r\n", 0, &end) == SSE_RESP_EPROTO);     /* bare LF in a line */
  CHECK(scan("+a\rb\r\n", 0, &end) == SSE_RESP_EPROTO);     /* bare CR */
  CHECK(scan(":1x\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan(":\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan(":+1\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan(":9223372036854775808\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan(":-9223372036854775808\r\n", 0, &end) == SSE_RESP_DONE);
  CHECK(scan("$-2\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan("*-2\r\n", 0, &end) == SSE_RESP_EPROTO);
  CHECK(scan("$1\r\nab\r\n", 0, &end) == SSE_RESP_EPROTO);  /* length disagrees */
  CHECK(scan(":00000000000000000000000001\r\n", 0, &end) == SSE_RESP_EPROTO); /* header too long */
  /* nesting and size bounds */
  char deep[(SSE_RESP_MAX_DEPTH + 1) * 4 + 8];
  deep[0] = 0;
  for (int i = 0; i <= SSE_RESP_MAX_DEPTH; i++) strcat(deep, "*1\r\n");
  CHECK(scan(deep, 0, &end) == SSE_RESP_EDEPTH);
  CHECK(scan("$100\r\n", 64, &end) == SSE_RESP_ETOOBIG);
  CHECK(scan("*1000\r\n", 64, &end) == SSE_RESP_ETOOBIG);
  CHECK(scan("$9223372036854775807\r\n", 0, &end) == SSE_RESP_ETOOBIG);
  /* an error is sticky */
  sse_resp_scanner sc;
  sse_resp_scan_init(&sc, 0);
  CHECK(sse_resp_scan(&sc, "?", 1, &end) == SSE_RESP_EPROTO);
  CHECK(sse_resp_scan(&sc, "+OK\r\n", 5, &end) == SSE_RESP_EPROTO);
}

/* Feeding a reply byte by byte finds the same end as feeding it whole. */
static void test_resume(void) {
  const char *r = "*3\r\n$7\r\nmessage\r\n+chan\r\n*2\r\n:5\r\n$2\r\nhi\r\n";
  size_t len = strlen(r), end = 0;
  sse_resp_scanner sc;
  sse_resp_scan_init(&sc, 0);
  int st = SSE_RESP_MORE;
  size_t i;
  for (i = 1; i <= len && st == SSE_RESP_MORE; i++) st = sse_resp_scan(&sc, r, i, &end);
  CHECK(st == SSE_RESP_DONE && end == len && i - 1 == len);
}

static void test_walk(void) {
  const char *r = "*2\r\n$3\r\nabc\r\n*1\r\n-ERR e\r\n";
  size_t len = strlen(r), pos = 0;
  sse_resp_tok t;
  CHECK(sse_resp_next(r, len, &pos, &t) == 0 && t.type == '*' && t.n == 2);
  CHECK(sse_resp_next(r, len, &pos, &t) == 0 && t.type == '$' && t.len == 3 && memcmp(t.p, "abc", 3) == 0);
  CHECK(sse_resp_next(r, len, &pos, &t) == 0 && t.type == '*' && t.n == 1);
  CHECK(sse_resp_next(r, len, &pos, &t) == 0 && t.type == '-' && t.len == 5);
  CHECK(pos == len);
  CHECK(sse_resp_next(r, len, &pos, &t) == -1 && pos == len);
  pos = 0;
  CHECK(sse_resp_next("$5\r\nab\r\n", 8, &pos, &t) == -1 && pos == 0); /* past the end */
  pos = 0;
  CHECK(sse_resp_next("$-1\r\n", 5, &pos, &t) == 0 && t.p == NULL && pos == 5);
}

static void test_command(void) {
  const char *argv[] = {"SET", "key", ""};
  size_t lens[] = {3, 3, 0};
  size_t n = sse_resp_command_size(3, lens);
  char out[64];
  CHECK(n == strlen("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n"));
  CHECK(sse_resp_command(out, 3, argv, lens) == n);
  CHECK(memcmp(out, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n", n) == 0);
  size_t big = 1234567;
  CHECK(sse_resp_command_size(1, &big) == 1 + 1 + 2 + 1 + 7 + 2 + big + 2);
}

int main(void) {
  test_types();
  test_incomplete();
  test_errors();
  test_resume();
  test_walk();
  test_command();
  return check_summary("test_resp");
}
