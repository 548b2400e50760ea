/* test_httphead.c - unit tests of httphead.c (run under ASan+UBSan by
 * `make ctest`). Every failed check prints its line; exit status 1. */
#include "httphead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* 1 when s equals the NUL-terminated lit. */
static int str_is(sse_str s, const char *lit) {
  return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

#define LIT(s) (s), (sizeof(s) - 1)

static const sse_http_limits DEFAULTS = {SSE_HTTP_MAX_HEAD_BYTES, SSE_HTTP_MAX_HEADERS};

/* Parse a request with the default limits; returns the code. */
static int parse(const char *buf, size_t len, sse_http_request *r) {
  static sse_http_header hdrs[SSE_HTTP_MAX_HEADERS];
  return sse_http_parse_request(buf, len, &DEFAULTS, hdrs, r);
}

static void test_messages(void) {
  CHECK_INT(sse_http_status(SSE_HTTP_E_HEAD_TOO_LARGE), 431);
  CHECK_INT(sse_http_status(SSE_HTTP_E_LINE_TOO_LONG), 414);
  CHECK_INT(sse_http_status(SSE_HTTP_E_VERSION_UNSUPPORTED), 505);
  CHECK_INT(sse_http_status(SSE_HTTP_E_TRANSFER_ENCODING), 411);
  CHECK_INT(sse_http_status(SSE_HTTP_E_NO_COLON), 400);
  CHECK_INT(sse_http_status(-1000), 400);
  CHECK(strcmp(sse_http_message(SSE_HTTP_E_NO_COLON), "header line without a colon") == 0);
  CHECK(strcmp(sse_http_message(-1000), "bad request") == 0);
  for (int c = 0; c >= SSE_HTTP_E_LAST_; c--) CHECK(sse_http_message(c) != NULL);
}

static void test_head_end(void) {
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), 0), 27);
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\nHost: a\n\nBODY"), 0), 24);
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\r\nHost: a\r\n\n"), 0), 26);
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\nHost: a\n\r\n"), 0), 25);
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\r\nHost: a\r\n\r"), 0), 0);
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\r\nHost: a\r\n"), 0), 0);
  CHECK_INT(sse_http_head_end(LIT("GET / HTTP/1.1\r\nX: \r\r\n"), 0), 0);
  CHECK_INT(sse_http_head_end(LIT(""), 0), 0);
  CHECK_INT(sse_http_head_end(LIT("\r"), 0), 0);
  /* one leading empty line is skipped, not taken for the end */
  CHECK_INT(sse_http_head_end(LIT("\r\nGET / HTTP/1.0\r\n\r\n"), 0), 20);
  CHECK_INT(sse_http_head_end(LIT("\nGET / HTTP/1.0\n\n"), 0), 17);
  CHECK_INT(sse_http_head_end(LIT("\r\n\r\n"), 0), 0);
  CHECK_INT(sse_http_head_end(LIT("\r\n\r\n\r\n"), 0), 6);

  /* fed one byte at a time, resuming where the last call stopped */
  static const char req[] = "GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\nrest";
  size_t full = sse_http_head_end(req, sizeof(req) - 1, 0);
  CHECK_INT(full, 34);
  size_t found = 0, at = 0;
  for (size_t len = 1; len <= sizeof(req) - 1 && !found; len++) {
    found = sse_http_head_end(req, len, len - 1);
    at = len;
  }
  CHECK_INT(found, 34);
  CHECK_INT(at, 34);
  /* a resume point past the end is harmless */
  CHECK_INT(sse_http_head_end(req, 34, 1000), 0);
  CHECK_INT(sse_http_head_end(req, 34, 33), 34);
}

static void test_head_check(void) {
  size_t h = 99;
  CHECK_INT(sse_http_head_check(LIT("GET / HTTP/1.1\r\n"), 0, 100, &h), 0);
  CHECK_INT(h, 0);
  CHECK_INT(sse_http_head_check(LIT("GET / HTTP/1.1\r\n\r\n"), 0, 18, &h), 0);
  CHECK_INT(h, 18);
  h = 99;
  CHECK_INT(sse_http_head_check(LIT("GET / HTTP/1.1\r\n\r\n"), 0, 17, &h),
               SSE_HTTP_E_HEAD_TOO_LARGE);
  CHECK_INT(h, 99);
  /* not complete and already at the limit: the head cannot fit any more */
  CHECK_INT(sse_http_head_check(LIT("GET / HTTP/1.1\r\nX: y"), 0, 20, &h),
               SSE_HTTP_E_HEAD_TOO_LARGE);
  CHECK_INT(sse_http_head_check(LIT("GET / HTTP/1.1\r\nX: y"), 0, 21, &h), 0);
  /* no end of the request-line within the limit */
  CHECK_INT(sse_http_head_check(LIT("GET /aaaaaaaaaaaaaaa"), 0, 20, &h),
               SSE_HTTP_E_LINE_TOO_LONG);
  CHECK_INT(sse_http_head_check(LIT("GET /aaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), 0, 20, &h),
               SSE_HTTP_E_LINE_TOO_LONG);
}

static void test_good_request(void) {
  sse_http_request r;
  static const char req[] =
    "GET /a%20b/%C3%A9?x=1&y=%2F HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Accept:text/event-stream \t\r\n"
    "X-Empty:\r\n"
    "Content-Length: 0012\r\n"
    "content-length: 12\r\n"
    "\r\n"
    "body";
  CHECK_INT(parse(req, sizeof(req) - 1, &r), 0);
  CHECK(str_is(r.method, "GET"));
  CHECK(str_is(r.target, "/a%20b/%C3%A9?x=1&y=%2F"));
  CHECK(str_is(r.path, "/a%20b/%C3%A9"));
  CHECK(str_is(r.query, "x=1&y=%2F"));
  CHECK_INT(r.path_len, 7);
  CHECK_INT(r.minor, 1);
  CHECK_INT(r.keep_alive, 1);
  CHECK_INT(r.content_length, 12);
  CHECK_INT(r.head_bytes, sizeof(req) - 1 - 4);
  CHECK_INT(r.nheaders, 5);
  CHECK(str_is(r.headers[0].name, "Host"));
  CHECK(str_is(r.headers[0].value, "example.com"));
  CHECK(str_is(r.headers[1].value, "text/event-stream"));
  CHECK(str_is(r.headers[2].name, "X-Empty"));
  CHECK(str_is(r.headers[2].value, ""));

  char out[32];
  size_t n = 0;
  CHECK_INT(sse_http_decode_path(r.path.p, r.path.n, out, &n), 0);
  CHECK_INT(n, 7);
  CHECK(memcmp(out, "/a b/\xc3\xa9", 7) == 0);
  /* found by the fuzzer: a raw NUL is refused like an encoded one */
  n = 99;
  CHECK_INT(sse_http_decode_path(LIT("/a\0b"), out, &n), SSE_HTTP_E_PATH_NUL);
  CHECK_INT(n, 99);
  CHECK_INT(sse_http_decode_path(LIT(""), out, &n), 0);
  CHECK_INT(n, 0);

  /* HTTP/1.0: no Host needed, keep-alive only on request */
  CHECK_INT(parse(LIT("GET / HTTP/1.0\r\n\r\n"), &r), 0);
  CHECK_INT(r.minor, 0);
  CHECK_INT(r.keep_alive, 0);
  CHECK_INT(r.content_length, -1);
  CHECK(str_is(r.query, ""));
  CHECK_INT(parse(LIT("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), &r), 0);
  CHECK_INT(r.keep_alive, 1);
  CHECK_INT(parse(LIT("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n"), &r), 0);
  CHECK_INT(r.keep_alive, 0);
  CHECK_INT(parse(LIT("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive,close\r\n\r\n"), &r), 0);
  CHECK_INT(r.keep_alive, 0);
  /* OPTIONS *, empty query after '?', bare LF, one leading CRLF */
  CHECK_INT(parse(LIT("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), &r), 0);
  CHECK_INT(parse(LIT("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example:80\r\n\r\n"), &r), 0);
  CHECK_INT(parse(LIT("OPTIONS * HTTP/1.1\nHost: a\n\n"), &r), 0);
  CHECK(str_is(r.path, "*"));
  CHECK_INT(parse(LIT("\r\nGET /? HTTP/1.1\r\nHost:\r\n\r\n"), &r), 0);
  CHECK(str_is(r.path, "/"));
  CHECK(str_is(r.query, ""));
  CHECK_INT(r.head_bytes, 28);
  /* Content-Length at the 2^53 limit */
  CHECK_INT(parse(LIT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740992\r\n\r\n"), &r), 0);
  CHECK_INT(r.content_length, 9007199254740992LL);
  /* obs-text in a value is allowed */
  CHECK_INT(parse(LIT("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), &r), 0);
}

typedef struct bad_case {
  const char *head;
  size_t len;
  int code;
} bad_case;

#define BAD(s, code) {s, sizeof(s) - 1, code}

static void test_bad_requests(void) {
  static const bad_case cases[] = {
    BAD("GET / HTTP/1.1\r\nHost: a\r\n", SSE_HTTP_INCOMPLETE),
    BAD("GET /\r\n\r\n", SSE_HTTP_E_REQUEST_LINE),
    BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_REQUEST_LINE),
    BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_REQUEST_LINE),
    BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", SSE_HTTP_E_REQUEST_LINE),
    BAD("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_REQUEST_LINE),
    BAD("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_REQUEST_LINE),
    BAD("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_METHOD),
    BAD("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_TARGET),
    BAD("GET * HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_TARGET),
    BAD("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_TARGET),
    BAD("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_TARGET),
    BAD("GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_TARGET),
    BAD("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", SSE_HTTP_E_VERSION),
    BAD("GET / http/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_VERSION),
    BAD("GET / HTTP/11\r\nHost: a\r\n\r\n", SSE_HTTP_E_VERSION),
    BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", SSE_HTTP_E_VERSION),
    BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", SSE_HTTP_E_VERSION_UNSUPPORTED),
    BAD("GET / HTTP/0.9\r\n\r\n", SSE_HTTP_E_VERSION_UNSUPPORTED),
    BAD("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", SSE_HTTP_E_VERSION_UNSUPPORTED),
    BAD("GET / HTTP/1.1\r\nHost a\r\n\r\n", SSE_HTTP_E_NO_COLON),
    BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n", SSE_HTTP_E_SPACE_BEFORE_COLON),
    BAD("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", SSE_HTTP_E_SPACE_BEFORE_COLON),
    BAD("GET / HTTP/1.1\r\n: a\r\n\r\n", SSE_HTTP_E_HEADER_NAME),
    BAD("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", SSE_HTTP_E_HEADER_NAME),
    BAD("GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", SSE_HTTP_E_HEADER_VALUE),
    BAD("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", SSE_HTTP_E_HEADER_VALUE),
    BAD("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", SSE_HTTP_E_HEADER_VALUE),
    BAD("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", SSE_HTTP_E_OBS_FOLD),
    BAD("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", SSE_HTTP_E_OBS_FOLD),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", SSE_HTTP_E_CONTENT_LENGTH),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", SSE_HTTP_E_CONTENT_LENGTH),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", SSE_HTTP_E_CONTENT_LENGTH),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", SSE_HTTP_E_CONTENT_LENGTH),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740993\r\n\r\n",
        SSE_HTTP_E_CONTENT_LENGTH),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        SSE_HTTP_E_CONTENT_LENGTH),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        SSE_HTTP_E_CONFLICTING_LENGTH),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        SSE_HTTP_E_TRANSFER_ENCODING),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        SSE_HTTP_E_LENGTH_AND_TE),
    BAD("GET / HTTP/1.1\r\n\r\n", SSE_HTTP_E_NO_HOST),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", SSE_HTTP_E_MULTIPLE_HOST),
    BAD("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", SSE_HTTP_E_MULTIPLE_HOST),
    BAD("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", SSE_HTTP_E_BAD_HOST),
    BAD("GET / HTTP/1.1\r\nHost: evil.com/x\r\n\r\n", SSE_HTTP_E_BAD_HOST),
    BAD("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", SSE_HTTP_E_BAD_HOST),
    BAD("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_ESCAPE),
    BAD("GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_ESCAPE),
    BAD("GET /%4?x HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_ESCAPE),
    BAD("GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_NUL),
    BAD("GET /%ff HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_UTF8),
    BAD("GET /%C3 HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_UTF8),
    BAD("GET /%C0%AF HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_UTF8),
    BAD("GET /%ED%A0%80 HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_UTF8),
    BAD("GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_DOT),
    BAD("GET /a/%2e%2E HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_DOT),
    BAD("GET /. HTTP/1.1\r\nHost: a\r\n\r\n", SSE_HTTP_E_PATH_DOT),
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sse_http_request r;
    memset(&r, 0xab, sizeof(r));
    int rc = parse(cases[i].head, cases[i].len, &r);
    CHECKF(rc == cases[i].code, "case %zu (%s): got %d (%s), expected %d", i, cases[i].head, rc,
           sse_http_message(rc), cases[i].code);
    /* validate first: a failed parse leaves the result untouched */
    CHECK_INT(r.head_bytes, (size_t)0xabababababababab);
  }
  /* dots that are not whole segments are fine */
  sse_http_request r;
  CHECK_INT(parse(LIT("GET /a/.../..b/.c/ HTTP/1.1\r\nHost: a\r\n\r\n"), &r), 0);
}

static void test_limits(void) {
  sse_http_header hdrs[3];
  sse_http_limits lim = {64, 3};
  sse_http_request r;
  CHECK_INT(sse_http_parse_request(LIT("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n"),
                                      &lim, hdrs, &r), 0);
  CHECK_INT(r.nheaders, 3);
  CHECK_INT(sse_http_parse_request(LIT("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n"),
                                      &lim, hdrs, &r), SSE_HTTP_E_TOO_MANY_HEADERS);
  lim.max_head_bytes = 30;
  lim.max_headers = 3;
  CHECK_INT(sse_http_parse_request(LIT("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\n\r\n"),
                                      &lim, hdrs, &r), SSE_HTTP_E_HEAD_TOO_LARGE);
  CHECK_INT(sse_http_parse_request(LIT("GET / HTTP/1.1\r\nHost: abcdefghijklmnopq"),
                                      &lim, hdrs, &r), SSE_HTTP_E_HEAD_TOO_LARGE);
  CHECK_INT(sse_http_parse_request(LIT("GET /abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\n\r\n"),
                                      &lim, hdrs, &r), SSE_HTTP_E_LINE_TOO_LONG);

  /* a 10 KB header within the 8 KB default */
  size_t n = 10 * 1024 + 64;
  char *big = malloc(n);
  int len = snprintf(big, n, "GET / HTTP/1.1\r\nHost: a\r\nLast-Event-ID: ");
  memset(big + len, '7', 10 * 1024);
  memcpy(big + len + 10 * 1024, "\r\n\r\n", 4);
  CHECK_INT(parse(big, (size_t)len + 10 * 1024 + 4, &r), SSE_HTTP_E_HEAD_TOO_LARGE);
  free(big);
}

static void test_response(void) {
  sse_http_header hdrs[SSE_HTTP_MAX_HEADERS];
  sse_http_response res;
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           "Cache-Control: no-cache\r\n\r\ndata: x\n\n";
  CHECK_INT(sse_http_parse_response(LIT(ok), &DEFAULTS, hdrs, &res), 0);
  CHECK_INT(res.status, 200);
  CHECK_INT(res.minor, 1);
  CHECK(str_is(res.reason, "OK"));
  CHECK_INT(res.nheaders, 2);
  CHECK(str_is(res.headers[1].value, "no-cache"));
  CHECK_INT(res.head_bytes, sizeof(ok) - 1 - 9);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.0 204\r\n\r\n"), &DEFAULTS, hdrs, &res), 0);
  CHECK_INT(res.status, 204);
  CHECK(str_is(res.reason, ""));
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 404 Not  Found \r\n\r\n"), &DEFAULTS, hdrs, &res), 0);
  CHECK(str_is(res.reason, "Not  Found "));
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 200 OK\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_INCOMPLETE);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 20 OK\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_STATUS_CODE);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 099 OK\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_STATUS_CODE);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 2000\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_STATUS_CODE);
  CHECK_INT(sse_http_parse_response(LIT("ICY 200 OK\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_STATUS_LINE);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/2.0 200 OK\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_VERSION_UNSUPPORTED);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 200 O\x01K\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_STATUS_LINE);
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"), &DEFAULTS, hdrs, &res),
               SSE_HTTP_E_SPACE_BEFORE_COLON);
  sse_http_limits small = {16, 4};
  CHECK_INT(sse_http_parse_response(LIT("HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), &small, hdrs, &res),
               SSE_HTTP_E_RESPONSE_TOO_LARGE);
}

/* Parse a response head; returns the code (res filled on 0). */
static int resp(const char *head, sse_http_response *res) {
  static sse_http_header hdrs[SSE_HTTP_MAX_HEADERS];
  return sse_http_parse_response(head, strlen(head), &DEFAULTS, hdrs, res);
}

/* Content-Type of a 200 response with the given header lines, as the media
 * type essence ("-" when none). */
static const char *media(const char *lines) {
  static char buf[512], out[128];
  sse_http_response res;
  snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\n%s\r\n", lines);
  if (resp(buf, &res) != 0) return "error";
  if (!res.media_type.p) return "-";
  snprintf(out, sizeof out, "%.*s", (int)res.media_type.n, res.media_type.p);
  return out;
}

static void test_response_body(void) {
  sse_http_response res;
  CHECK_INT(resp("HTTP/1.1 200 OK\r\n\r\n", &res), 0);
  CHECK_INT(res.framing, SSE_HTTP_BODY_CLOSE);
  CHECK_INT(res.content_length, -1);
  CHECK(res.media_type.p == NULL);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n", &res), 0);
  CHECK_INT(res.framing, SSE_HTTP_BODY_LENGTH);
  CHECK_INT(res.content_length, 12);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding:  CHUNKED \r\n\r\n", &res), 0);
  CHECK_INT(res.framing, SSE_HTTP_BODY_CHUNKED);
  CHECK_INT(resp("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", &res), 0);
  CHECK_INT(res.framing, SSE_HTTP_BODY_NONE);
  CHECK_INT(resp("HTTP/1.1 304 Not Modified\r\n\r\n", &res), 0);
  CHECK_INT(res.framing, SSE_HTTP_BODY_NONE);
  CHECK_INT(resp("HTTP/1.1 103 Early Hints\r\n\r\n", &res), 0);
  CHECK_INT(res.framing, SSE_HTTP_BODY_NONE);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &res),
               SSE_HTTP_E_CONFLICTING_LENGTH);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", &res), SSE_HTTP_E_CONTENT_LENGTH);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", &res), SSE_HTTP_E_CONTENT_LENGTH);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &res),
               SSE_HTTP_E_TRANSFER_ENCODING);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                    &res), SSE_HTTP_E_TRANSFER_ENCODING);
  CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", &res),
               SSE_HTTP_E_LENGTH_AND_TE);

  /* Content-Type: Fetch's "extract a MIME type" (what Chromium accepts) */
  CHECK(strcmp(media("Content-Type: text/event-stream\r\n"), "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type:  Text/Event-Stream ; charset=utf-8\r\n"), "Text/Event-Stream") == 0);
  CHECK(strcmp(media("Content-Type: text/plain\r\nContent-Type: text/event-stream\r\n"),
               "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type: text/event-stream\r\nContent-Type: text/plain\r\n"), "text/plain") == 0);
  CHECK(strcmp(media("Content-Type: text/plain, text/event-stream\r\n"), "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type: text/event-stream, */*\r\n"), "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type: text/event-stream, bogus\r\n"), "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type: text/event-stream;a=\"x,text/plain\"\r\n"), "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type: text/event-stream;a=\"x\\\",text/plain\"\r\n"), "text/event-stream") == 0);
  CHECK(strcmp(media("Content-Type: text /event-stream\r\n"), "-") == 0);
  CHECK(strcmp(media("Content-Type: text/\r\n"), "-") == 0);
  CHECK(strcmp(media("Content-Type: /event-stream\r\n"), "-") == 0);
  CHECK(strcmp(media("Content-Type: text\r\n"), "-") == 0);
  CHECK(strcmp(media("Content-Type: text/ev@nt\r\n"), "-") == 0);
  CHECK(strcmp(media("Content-Type:\r\n"), "-") == 0);
}

/* Decode a chunked body fed in pieces ending at cuts[0..ncuts) then the
 * rest; returns the last result code and the body in out (NUL-terminated),
 * the bytes after the body in *after. */
static int dechunk(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                   char *out, size_t *after) {
  sse_http_chunked c;
  size_t prev = 0, o = 0;
  int rc = SSE_HTTP_CHUNK_MORE;
  sse_http_chunked_init(&c);
  *after = 0;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t end = k < ncuts ? cuts[k] : n, pos = 0;
    const char *piece = s + prev, *d;
    size_t pn = end - prev, dn;
    prev = end;
    while ((rc = sse_http_chunked_next(&c, piece, pn, &pos, &d, &dn)) == SSE_HTTP_CHUNK_DATA) {
      memcpy(out + o, d, dn);
      o += dn;
    }
    if (rc == SSE_HTTP_CHUNK_END) {
      *after = (pn - pos) + (n - end);
      break;
    }
    if (rc < 0) break;
  }
  out[o] = '\0';
  return rc;
}

/* Every split point and byte by byte give the same result. */
static void check_chunked(const char *s, int want_rc, const char *want_body, size_t want_after) {
  static char out[4096];
  size_t n = strlen(s), after, cuts[4096], i;
  int rc = dechunk(s, n, NULL, 0, out, &after);
  CHECK_INT(rc, want_rc);
  CHECKF(strcmp(out, want_body) == 0, "chunked %s: body '%s', want '%s'", s, out, want_body);
  if (rc == SSE_HTTP_CHUNK_END) CHECK_INT(after, want_after);
  for (i = 0; i <= n; i++) {
    cuts[0] = i;
    CHECK_INT(dechunk(s, n, cuts, 1, out, &after), want_rc);
    CHECK(strcmp(out, want_body) == 0);
    if (want_rc == SSE_HTTP_CHUNK_END) CHECK_INT(after, want_after);
  }
  for (i = 0; i < n; i++) cuts[i] = i;
  CHECK_INT(dechunk(s, n, cuts, n, out, &after), want_rc);
  CHECK(strcmp(out, want_body) == 0);
}

static void test_chunked(void) {
  check_chunked("5\r\nhello\r\n0\r\n\r\n", SSE_HTTP_CHUNK_END, "hello", 0);
  check_chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", SSE_HTTP_CHUNK_END, "hello world", 4);
  check_chunked("5\nhello\n0\n\n", SSE_HTTP_CHUNK_END, "hello", 0);             /* bare LF */
  check_chunked("A\r\n0123456789\r\n0\r\n\r\n", SSE_HTTP_CHUNK_END, "0123456789", 0);
  check_chunked("00a\r\n0123456789\r\n000\r\n\r\n", SSE_HTTP_CHUNK_END, "0123456789", 0);
  check_chunked("3;name=\"v;x\" ; b\r\nabc\r\n0;last\r\n\r\n", SSE_HTTP_CHUNK_END, "abc", 0);
  check_chunked("3 \r\nabc\r\n0\r\n\r\n", SSE_HTTP_CHUNK_END, "abc", 0);
  check_chunked("2\r\n\r\n\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n", SSE_HTTP_CHUNK_END, "\r\n", 0);
  check_chunked("3\r\nabc\r\n", SSE_HTTP_CHUNK_MORE, "abc", 0);                 /* not done yet */
  check_chunked("3\r\nab", SSE_HTTP_CHUNK_MORE, "ab", 0);
  check_chunked("", SSE_HTTP_CHUNK_MORE, "", 0);
  check_chunked("x\r\n", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("\r\n", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("-1\r\n", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("3\r\nabcX\r\n", SSE_HTTP_E_CHUNKED, "abc", 0);               /* no CRLF after data */
  check_chunked("3\r\nabc\rX", SSE_HTTP_E_CHUNKED, "abc", 0);
  check_chunked("3\rX", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("3;\x01\r\n", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("0\r\nX\x01\r\n\r\n", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("0\r\n\rX", SSE_HTTP_E_CHUNKED, "", 0);
  check_chunked("1000000000000000\r\n", SSE_HTTP_E_CHUNKED, "", 0);            /* 2^60: too big */
  check_chunked("0fffffffffffffff\r\n", SSE_HTTP_CHUNK_MORE, "", 0);            /* below it */
  {
    /* a size line of chunk extensions longer than the limit */
    static char big[SSE_HTTP_CHUNK_LINE_MAX + 16];
    memset(big, 'a', sizeof big - 1);
    big[0] = '1';
    big[1] = ';';
    big[sizeof big - 1] = '\0';
    sse_http_chunked c;
    size_t pos = 0, dn;
    const char *d;
    sse_http_chunked_init(&c);
    CHECK_INT(sse_http_chunked_next(&c, big, strlen(big), &pos, &d, &dn), SSE_HTTP_E_CHUNKED);
    /* sticky */
    pos = 0;
    CHECK_INT(sse_http_chunked_next(&c, "0\r\n\r\n", 5, &pos, &d, &dn), SSE_HTTP_E_CHUNKED);
  }
  {
    /* END again on later calls, consuming nothing */
    sse_http_chunked c;
    size_t pos = 0, dn;
    const char *d;
    memset(&c, 0, sizeof c); /* zeroing starts a body too */
    CHECK_INT(sse_http_chunked_next(&c, "0\r\n\r\nab", 7, &pos, &d, &dn), SSE_HTTP_CHUNK_END);
    CHECK_INT(pos, 5);
    pos = 0;
    CHECK_INT(sse_http_chunked_next(&c, "xy", 2, &pos, &d, &dn), SSE_HTTP_CHUNK_END);
    CHECK_INT(pos, 0);
  }
}

static void test_query(void) {
  static const char qs[] = "a=1&&b&=x&a=%41+b&c=";
  sse_str k, v;
  size_t pos = 0;
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 1);
  CHECK(str_is(k, "a") && str_is(v, "1"));
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 1);
  CHECK(str_is(k, "b") && str_is(v, ""));
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 1);
  CHECK(str_is(k, "") && str_is(v, "x"));
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 1);
  CHECK(str_is(k, "a") && str_is(v, "%41+b"));
  char out[16];
  size_t n = 0;
  CHECK_INT(sse_http_decode_form(v.p, v.n, out, &n), 0);
  CHECK(n == 3 && memcmp(out, "A b", 3) == 0);
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 1);
  CHECK(str_is(k, "c") && str_is(v, ""));
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 0);
  CHECK_INT(sse_http_query_next(LIT(qs), &pos, &k, &v), 0);

  size_t np = 99;
  CHECK_INT(sse_http_query_check(LIT(qs), 5, &np), 0);
  CHECK_INT(np, 5);
  np = 99;
  CHECK_INT(sse_http_query_check(LIT(qs), 4, &np), SSE_HTTP_E_QUERY_PAIRS);
  CHECK_INT(np, 99);
  CHECK_INT(sse_http_query_check(LIT("a=%4"), 4, &np), SSE_HTTP_E_QUERY_ESCAPE);
  CHECK_INT(sse_http_query_check(LIT("%g0=1"), 4, &np), SSE_HTTP_E_QUERY_ESCAPE);
  CHECK_INT(sse_http_query_check(LIT(""), 4, &np), 0);
  CHECK_INT(np, 0);
  CHECK_INT(sse_http_query_check(LIT("&&&"), 1, &np), 0);
  CHECK_INT(np, 0);
  /* any byte may be decoded in a query component, NUL included */
  CHECK_INT(sse_http_decode_form(LIT("%00%ff"), out, &n), 0);
  CHECK(n == 2 && out[0] == 0 && (unsigned char)out[1] == 0xff);
}


int main(void) {
  test_messages();
  test_head_end();
  test_head_check();
  test_good_request();
  test_bad_requests();
  test_limits();
  test_response();
  test_response_body();
  test_chunked();
  test_query();
  return check_summary("test_httphead");
}
