/* test_parse.c - unit test of the incremental event-stream parser (no Lua).
 * Each case is parsed whole, split at every byte boundary (and at every pair
 * of boundaries for short streams) and byte by byte; every way must give
 * exactly the expected log of events and retries. */
#include "parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct logbuf {
  char s[1 << 20];
  size_t n;
} logbuf;

/* Append printable form of p[0..n) to the log: bytes < 0x20 and >= 0x7f as
 * \xHH, so logs compare as plain strings. */
static void log_bytes(logbuf *l, const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n && l->n + 5 < sizeof l->s; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '|')
      l->n += (size_t)snprintf(l->s + l->n, sizeof l->s - l->n, "\\x%02x", c);
    else
      l->s[l->n++] = (char)c;
  }
  l->s[l->n] = '\0';
}

static void log_str(logbuf *l, const char *s) {
  size_t n = strlen(s);
  if (l->n + n + 1 >= sizeof l->s) return;
  memcpy(l->s + l->n, s, n + 1);
  l->n += n;
}

/* Callback: "E{type|data|id}" per event, "R{ms}" per retry. */
static void on_msg(void *ud, const sse_parse_msg *m) {
  logbuf *l = ud;
  char num[32];
  if (m->kind == SSE_PARSE_MSG_EVENT) {
    log_str(l, "E{");
    log_bytes(l, m->type, m->type_len);
    log_str(l, "|");
    log_bytes(l, m->data, m->data_len);
    log_str(l, "|");
    log_bytes(l, m->id, m->id_len);
    log_str(l, "}");
  } else {
    snprintf(num, sizeof num, "R{%llu}", m->retry);
    log_str(l, num);
  }
}

/* Parse s[0..n) in pieces ending at the cut points cuts[0..ncuts) (sorted),
 * logging into l; a returned error is logged as "!code"; then the final
 * last event id as "#id". */
static void run_split(const sse_parse_limits *lim, const char *s, size_t n,
                      const size_t *cuts, size_t ncuts, logbuf *l) {
  sse_parser p;
  size_t prev = 0, k, idn;
  const char *id;
  char num[16];
  int rc = 0;
  l->n = 0;
  l->s[0] = '\0';
  sse_parser_init(&p, lim);
  for (k = 0; k <= ncuts && rc == 0; k++) {
    size_t end = k < ncuts ? cuts[k] : n;
    rc = sse_parser_feed(&p, s + prev, end - prev, on_msg, l);
    prev = end;
  }
  if (rc) {
    snprintf(num, sizeof num, "!%d", rc);
    log_str(l, num);
    /* sticky: more input is refused with the same code */
    if (sse_parser_feed(&p, "\n\n", 2, on_msg, l) != rc) log_str(l, "!notsticky");
  }
  id = sse_parser_last_event_id(&p, &idn);
  log_str(l, "#");
  log_bytes(l, id, idn);
  sse_parser_free(&p);
}

static void expect_eq(const char *name, const char *how, const char *got,
                      const char *want) {
  int ok = strcmp(got, want) == 0;
  /* past 30 failures only count them: one bad case fails at every split */
  if (ok || check_failures < 30)
    CHECKF(ok, "FAIL %s (%s)\n  got:  %s\n  want: %s", name, how, got, want);
  else
    check_count++, check_failures++;
}

/* Run one case every way. */
static void check_case(const char *name, const sse_parse_limits *lim,
                       const char *s, size_t n, const char *want) {
  static logbuf l;
  size_t cuts[2], *bytes, i, j;
  char how[64];
  run_split(lim, s, n, NULL, 0, &l);
  expect_eq(name, "whole", l.s, want);
  for (i = 0; i <= n; i++) {
    cuts[0] = i;
    run_split(lim, s, n, cuts, 1, &l);
    snprintf(how, sizeof how, "split at %zu", i);
    expect_eq(name, how, l.s, want);
  }
  if (n <= 64) {
    for (i = 0; i <= n; i++)
      for (j = i; j <= n; j++) {
        cuts[0] = i;
        cuts[1] = j;
        run_split(lim, s, n, cuts, 2, &l);
        snprintf(how, sizeof how, "split at %zu,%zu", i, j);
        expect_eq(name, how, l.s, want);
      }
  }
  bytes = malloc((n + 1) * sizeof *bytes);
  if (!bytes) { fprintf(stderr, "out of memory\n"); exit(2); }
  for (i = 0; i < n; i++) bytes[i] = i;
  run_split(lim, s, n, bytes, n, &l);
  expect_eq(name, "byte by byte", l.s, want);
  free(bytes);
}

#define CASE(name, lit, want) check_case(name, NULL, lit, sizeof(lit) - 1, want)

static void test_fields(void) {
  CASE("simple", "data: hello\n\n", "E{message|hello|}#");
  CASE("no space", "data:hello\n\n", "E{message|hello|}#");
  CASE("one space stripped", "data:  two\n\n", "E{message| two|}#");
  CASE("multi data", "data: a\ndata: b\ndata\n\n", "E{message|a\\x0ab\\x0a|}#");
  CASE("empty data", "data\n\n", "E{message||}#");
  CASE("empty data colon", "data:\n\n", "E{message||}#");
  CASE("two empty data", "data\ndata\n\n", "E{message|\\x0a|}#");
  CASE("event type", "event: add\ndata: 1\n\ndata: 2\n\n",
       "E{add|1|}E{message|2|}#");
  CASE("empty event type", "event\ndata: x\n\n", "E{message|x|}#");
  CASE("event type reset by no-data block", "event: a\n\ndata: x\n\n",
       "E{message|x|}#");
  CASE("comment", ":hi\n: there\ndata: x\n:\n\n", "E{message|x|}#");
  CASE("comment only block", ":keepalive\n\n", "#");
  CASE("unknown field", "foo: bar\ndata: x\nDATA: y\nData: z\n\n", "E{message|x|}#");
  CASE("colon in value", "data: a:b: c\n\n", "E{message|a:b: c|}#");
  CASE("space before colon is part of name", "data : x\n\n", "#");
  CASE("tab not stripped", "data:\tx\n\n", "E{message|\\x09x|}#");
  CASE("id", "id: 1\ndata: a\n\ndata: b\n\n", "E{message|a|1}E{message|b|1}#1");
  CASE("id changes", "id: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: c\n\n",
       "E{message|a|1}E{message|b|2}E{message|c|2}#2");
  CASE("id reset", "id: 1\ndata: a\n\nid\ndata: b\n\ndata: c\n\n",
       "E{message|a|1}E{message|b|}E{message|c|}#");
  CASE("id reset with colon", "id: 1\ndata: a\n\nid:\ndata: b\n\n",
       "E{message|a|1}E{message|b|}#");
  CASE("id with NUL ignored", "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n",
       "E{message|a|1}E{message|b|1}#1");
  CASE("id only block sets last id", "id: 7\n\n", "#7");
  CASE("id without blank line not committed", "id: 7\ndata: x\n", "#");
  CASE("id after data in block", "data: x\nid: 9\n\n", "E{message|x|9}#9");
  CASE("NUL in data", "data: \0\n\n", "E{message|\\x00|}#");
  CASE("retry", "retry: 1500\n", "R{1500}#");
  CASE("retry no space", "retry:0\n", "R{0}#");
  CASE("retry leading zeros", "retry: 007\n", "R{7}#");
  CASE("retry bogus", "retry: 10x\nretry: x\nretry: -1\nretry: 1.5\nretry\nretry:\n"
       "retry:  5\n", "#");
  CASE("retry then event", "retry: 1000\ndata: x\n\n", "R{1000}E{message|x|}#");
  CASE("retry huge saturates", "retry: 99999999999999999999999999\n",
       "R{9007199254740991}#");
  CASE("case-sensitive names", "Event: x\nID: 3\nRetry: 1\ndata: y\n\n",
       "E{message|y|}#");
  CASE("utf8 passes through", "data: \xc3\xa9\xe2\x82\xac\n\n",
       "E{message|\\xc3\\xa9\\xe2\\x82\\xac|}#");
}

static void test_line_ends(void) {
  CASE("CRLF", "data: a\r\ndata: b\r\n\r\n", "E{message|a\\x0ab|}#");
  CASE("CR", "data: a\rdata: b\r\r", "E{message|a\\x0ab|}#");
  CASE("mixed", "data: a\r\ndata: b\rdata: c\n\r\n", "E{message|a\\x0ab\\x0ac|}#");
  CASE("CR CR LF", "data: a\r\r\n", "E{message|a|}#");
  CASE("CRLF CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", "E{message|a|}E{message|b|}#");
  CASE("LF CR", "data: a\n\rdata: b\n\n", "E{message|a|}E{message|b|}#");
  CASE("blank lines", "\n\n\r\n\rdata: x\n\n\n\n", "E{message|x|}#");
  CASE("trailing event not dispatched", "data: a\n\ndata: b\n", "E{message|a|}#");
  CASE("trailing partial line", "data: a\n\ndata: b", "E{message|a|}#");
  CASE("trailing CR only", "data: a\r", "#");
  CASE("empty stream", "", "#");
}

static void test_bom(void) {
  CASE("BOM stripped", "\xef\xbb\xbf" "data: 1\n\n", "E{message|1|}#");
  CASE("second BOM kept", "\xef\xbb\xbf\xef\xbb\xbf" "data: 1\n\ndata: 2\n\n",
       "E{message|2|}#");
  CASE("BOM only", "\xef\xbb\xbf", "#");
  CASE("partial BOM is content", "\xef\xbb" "data: 1\n\ndata: 2\n\n",
       "E{message|2|}#");
  CASE("partial BOM then line", "\xef\n" "data: 1\n\n", "E{message|1|}#");
  CASE("BOM then comment", "\xef\xbb\xbf:c\ndata: x\n\n", "E{message|x|}#");
  CASE("BOM then CRLF", "\xef\xbb\xbf\r\ndata: x\r\n\r\n", "E{message|x|}#");
  CASE("BOM later is content", "data: \xef\xbb\xbf\n\n",
       "E{message|\\xef\\xbb\\xbf|}#");
  /* a partial BOM is decoded: EF BB then 'd' is one truncated sequence */
  CASE("partial BOM in data", "\xef\xbb\ndata: 1\n\n", "E{message|1|}#");
  CASE("BOM prefix then a valid sequence", "\xef\xbb\x80:\ndata: 1\n\n", "E{message|1|}#");
  CASE("BOM prefix completes a sequence into a field name",
       "\xef\xbb\x80" "data: 1\n\ndata: 2\n\n", "E{message|2|}#");
}

/* WHATWG Encoding Standard, UTF-8 decoder: one U+FFFD per maximal
 * ill-formed subpart; the byte that ends a subpart starts afresh. */
#define FFFD "\\xef\\xbf\\xbd"
#define U8(name, bytes, want) CASE(name, "data: " bytes "\n\n", "E{message|" want "|}#")

static void test_utf8(void) {
  U8("2-byte", "\xc2\xa9", "\\xc2\\xa9");
  U8("3-byte", "\xe2\x82\xac", "\\xe2\\x82\\xac");
  U8("4-byte", "\xf0\x9f\x98\x80", "\\xf0\\x9f\\x98\\x80");
  U8("edges", "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
     "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
     "\\xc2\\x80\\xdf\\xbf\\xe0\\xa0\\x80\\xed\\x9f\\xbf\\xee\\x80\\x80\\xef\\xbf\\xbf"
     "\\xf0\\x90\\x80\\x80\\xf4\\x8f\\xbf\\xbf");
  U8("lone continuation", "\x80", FFFD);
  U8("continuations", "a\x80\xbf" "b", "a" FFFD FFFD "b");
  U8("C0 C1 overlong leads", "\xc0\x80\xc1\xbf", FFFD FFFD FFFD FFFD);
  U8("F5..FF", "\xf5\xf8\xfc\xfe\xff", FFFD FFFD FFFD FFFD FFFD);
  U8("E0 overlong", "\xe0\x80\x80", FFFD FFFD FFFD);
  U8("E0 9F overlong", "\xe0\x9f\xbf", FFFD FFFD FFFD);
  U8("F0 overlong", "\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD);
  U8("F0 8F overlong", "\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD);
  U8("surrogate D800", "\xed\xa0\x80", FFFD FFFD FFFD);
  U8("surrogate DFFF", "\xed\xbf\xbf", FFFD FFFD FFFD);
  U8("surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", FFFD FFFD FFFD FFFD FFFD FFFD);
  U8("above U+10FFFF", "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
  U8("5-byte form", "\xf8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD);
  U8("truncated 2", "\xc3x", FFFD "x");
  U8("truncated 3 after 1", "\xe2x", FFFD "x");
  U8("truncated 3 after 2", "\xe2\x82x", FFFD "x");
  U8("truncated 4 after 3", "\xf0\x9f\x98x", FFFD "x");
  U8("truncated then lead", "\xf0\x9f\xc3\xa9", FFFD "\\xc3\\xa9");
  U8("truncated before the line end", "\xe2\x82", FFFD);
  U8("truncated 4 before the line end", "\xf0\x9f\x98", FFFD);
  U8("lead then lead", "\xc2\xc2\xa9", FFFD "\\xc2\\xa9");
  U8("NUL kept", "\xc2\x00", FFFD "\\x00");
  U8("every subpart", "\xf1\x80\x80\xe1\x80\xc2\x80",
     FFFD FFFD "\\xc2\\x80");
  /* a cut sequence never swallows a line end */
  CASE("CR after a lead byte", "data: \xe2\rdata: \xe2\x82\r\n\n",
       "E{message|" FFFD "\\x0a" FFFD "|}#");
  CASE("bad bytes in names and ids", "\x80" "data: x\nid: \xff\ndata: y\n\n",
       "E{message|y|" FFFD "}#" FFFD);
  CASE("bad bytes in event type", "event: \xc0t\ndata: y\n\n",
       "E{" FFFD "t|y|}#");
  CASE("cut at the end of the stream", "data: a\n\ndata: \xf0\x9f", "E{message|a|}#");
}

static void test_limits(void) {
  sse_parse_limits lim = {8, 10};
  const char *s;
  /* a line of exactly max_line is accepted, one more byte is not */
  s = "data:abc\n\n";
  check_case("line at limit", &lim, s, strlen(s), "E{message|abc|}#");
  s = "data:abcd\n\n";
  check_case("line over limit", &lim, s, strlen(s), "!-1#");
  s = "data:a\n\n:comment too long";
  check_case("partial line over limit", &lim, s, strlen(s), "E{message|a|}!-1#");
  s = "id:1\n\n123456789";
  check_case("unterminated line over limit", &lim, s, strlen(s), "!-1#1");
  /* data buffer "abc\nabc\n" = 8 fits in 10; "abc\nabc\nab\n" = 11 does not */
  s = "data:abc\ndata:abc\n\ndata:abc\ndata:abc\ndata:ab\n\n";
  check_case("event over limit", &lim, s, strlen(s), "E{message|abc\\x0aabc|}!-2#");
  s = "data:abc\ndata:abc\ndata:a\n\n"; /* exactly 10 */
  check_case("event at limit", &lim, s, strlen(s), "E{message|abc\\x0aabc\\x0aa|}#");
  s = "data:12345678\r\n\r\n";
  {
    sse_parse_limits l2 = {13, 0};
    check_case("CRLF not counted in line", &l2, s, strlen(s), "E{message|12345678|}#");
  }
}

/* Reset, set_last_event_id and the sticky failure. */
static void test_api(void) {
  sse_parser p;
  size_t n;
  const char *id;
  sse_parse_limits lim = {4, 0};
  static logbuf l;
  l.n = 0;
  l.s[0] = 0;
  sse_parser_init(&p, NULL);
  expect_eq("defaults", "max_line", p.max_line == 1024 * 1024 ? "y" : "n", "y");
  expect_eq("defaults", "max_event", p.max_event == 1024 * 1024 ? "y" : "n", "y");
  id = sse_parser_last_event_id(&p, &n);
  expect_eq("initial id", "", n == 0 && id[0] == '\0' ? "y" : "n", "y");
  expect_eq("set id", "rc", sse_parser_set_last_event_id(&p, "41", 2) == 0 ? "y" : "n", "y");
  sse_parser_feed(&p, "data: x\n\n", 9, on_msg, &l);
  expect_eq("set id", "event carries it", l.s, "E{message|x|41}");
  /* an id that is not yet dispatched is dropped by reset; the string stays */
  sse_parser_feed(&p, "id: 42\ndata: half", 17, on_msg, &l);
  sse_parser_reset(&p);
  l.n = 0;
  sse_parser_feed(&p, "\xef\xbb\xbf" "data: y\n\n", 12, on_msg, &l);
  expect_eq("reset", "BOM again, old id", l.s, "E{message|y|41}");
  id = sse_parser_last_event_id(&p, &n);
  expect_eq("reset", "id", n == 2 && memcmp(id, "41", 2) == 0 ? "y" : "n", "y");
  /* a CR pending across reset does not eat the next stream's LF */
  sse_parser_feed(&p, "data: z\r", 8, on_msg, &l);
  sse_parser_reset(&p);
  l.n = 0;
  sse_parser_feed(&p, "\ndata: w\n\n", 10, on_msg, &l);
  expect_eq("reset", "CR state cleared", l.s, "E{message|w|41}");
  sse_parser_free(&p);
  sse_parser_free(&p); /* idempotent */

  sse_parser_init(&p, &lim);
  expect_eq("fail", "rc", sse_parser_feed(&p, "12345", 5, on_msg, &l) == SSE_PARSE_E_LINE
            ? "y" : "n", "y");
  expect_eq("fail", "sticky", sse_parser_feed(&p, "\n", 1, on_msg, &l) == SSE_PARSE_E_LINE
            ? "y" : "n", "y");
  sse_parser_reset(&p);
  l.n = 0;
  expect_eq("fail", "reset clears", sse_parser_feed(&p, "d\n\n", 3, on_msg, &l) == 0
            ? "y" : "n", "y");
  sse_parser_free(&p);

  expect_eq("strerror", "line", sse_parse_strerror(SSE_PARSE_E_LINE), "line too long");
  expect_eq("strerror", "event", sse_parse_strerror(SSE_PARSE_E_EVENT), "event too large");
  expect_eq("strerror", "nomem", sse_parse_strerror(SSE_PARSE_E_NOMEM), "out of memory");
}

/* A long stream (buffers grow well past their first size), fed in uneven
 * pieces, gives the same events as fed whole. */
static void test_long(void) {
  static char s[200000];
  size_t n = 0, k, i;
  static logbuf whole, pieces;
  sse_parser p;
  unsigned seed = 12345;
  for (k = 0; k < 300; k++) {
    n += (size_t)snprintf(s + n, sizeof s - n, "id: %zu\r\ndata: ", k);
    for (i = 0; i < k * 3; i++) s[n++] = (char)('a' + (i % 26));
    n += (size_t)snprintf(s + n, sizeof s - n, "%s", k % 3 == 0 ? "\r\n\r\n" : k % 3 == 1 ? "\r\r" : "\n\n");
  }
  run_split(NULL, s, n, NULL, 0, &whole);
  sse_parser_init(&p, NULL);
  pieces.n = 0;
  pieces.s[0] = 0;
  for (i = 0; i < n;) {
    size_t take;
    seed = seed * 1103515245u + 12345u;
    take = 1 + (seed >> 16) % 700;
    if (take > n - i) take = n - i;
    sse_parser_feed(&p, s + i, take, on_msg, &pieces);
    i += take;
  }
  {
    size_t idn;
    const char *id = sse_parser_last_event_id(&p, &idn);
    log_str(&pieces, "#");
    log_bytes(&pieces, id, idn);
  }
  sse_parser_free(&p);
  expect_eq("long stream", "random pieces", pieces.s, whole.s);
  expect_eq("long stream", "ends with last id", whole.s + whole.n - 4, "#299");
}

int main(void) {
  test_fields();
  test_line_ends();
  test_bom();
  test_utf8();
  test_limits();
  test_api();
  test_long();
  return check_summary("test_parse");
}
