/* check.h - the one check header of the C unit tests in csrc/test/: CHECK
 * macros that count and report, and the summary line. Header only (each
 * test is one .c file, built alone by `make ctest`).
 *
 *   CHECK(cond)              counts; on failure prints file:line and cond
 *   CHECK_INT(a, b)          a == b as long long; prints both on failure
 *   CHECK_STR(got, want)     NUL-terminated strings (NULL allowed) equal
 *   CHECK_MEM(g, gn, w, wn)  byte spans equal; prints both, escaped
 *   CHECKF(cond, fmt, ...)   cond, printing the printf-style message
 *   check_summary("name")    prints "name: N checks, M failed" and returns
 *                            the exit status (0 when none failed)
 * A failing check never stops the test: every failure is reported. */
#ifndef SSE_TEST_CHECK_H
#define SSE_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int check_count, check_failures;

/* Counts one check; on failure prints "file:line: " and the message.
 * Returns ok, so a test can act on the result. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5), unused))
#endif
static int check_report(int ok, const char *file, int line, const char *fmt, ...) {
  check_count++;
  if (ok) return 1;
  check_failures++;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 0;
}

/* Prints p[0..n) to stderr with bytes outside printable ASCII as \xHH. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static void check_print_bytes(const char *label, const char *p, size_t n) {
  fprintf(stderr, "  %s [", label);
  for (size_t i = 0; p && i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c >= 0x7f || c == '\\') fprintf(stderr, "\\x%02x", c);
    else fputc(c, stderr);
  }
  fprintf(stderr, "]%s\n", p ? "" : " (NULL)");
}

#if defined(__GNUC__)
__attribute__((unused))
#endif
static int check_mem(const char *got, size_t gn, const char *want, size_t wn, const char *file,
                     int line, const char *what) {
  int ok = got && want ? gn == wn && memcmp(got, want, gn) == 0 : got == want;
  if (!check_report(ok, file, line, "CHECK failed: %s", what)) {
    check_print_bytes("got: ", got, gn);
    check_print_bytes("want:", want, wn);
  }
  return ok;
}

#define CHECK(cond) check_report(!!(cond), __FILE__, __LINE__, "CHECK failed: %s", #cond)

#define CHECKF(cond, ...) check_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#if defined(__GNUC__)
__attribute__((unused))
#endif
static int check_int(long long a, long long b, const char *file, int line, const char *as,
                     const char *bs) {
  return check_report(a == b, file, line, "CHECK failed: %s == %lld, expected %s == %lld", as, a,
                      bs, b);
}

/* each operand is evaluated once */
#define CHECK_INT(a, b) check_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)

#define CHECK_MEM(got, gn, want, wn) \
  check_mem((got), (gn), (want), (wn), __FILE__, __LINE__, #got " == " #want)

#if defined(__GNUC__)
__attribute__((unused))
#endif
static int check_str(const char *got, const char *want, const char *file, int line,
                     const char *what) {
  return check_mem(got, got ? strlen(got) : 0, want, want ? strlen(want) : 0, file, line, what);
}

#define CHECK_STR(got, want) check_str((got), (want), __FILE__, __LINE__, #got " == " #want)

/* Prints the summary of every check so far; returns the exit status. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static int check_summary(const char *name) {
  printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
  return check_failures ? 1 : 0;
}

#endif
