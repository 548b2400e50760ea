/* gap.c - the sse-gap and sse-join events the hub writes itself (hub.h,
 * docs/CORE.md 3): one shape for both causes of a gap, built in one place. */
#include "hub.h"

#include <stdio.h>
#include <string.h>

#include "utf8.h"

/* Length of the UTF-8 sequence a lead byte announces (0: never valid). */
static size_t seq_len(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

/* Appends n bytes at out + *pos (out NULL: only counts). */
static void put(char *out, size_t *pos, const char *p, size_t n) {
  if (out) memcpy(out + *pos, p, n);
  *pos += n;
}

/* A JSON string literal of s (or null): quote, backslash and control
 * characters (and DEL) escaped; each byte not part of a valid UTF-8
 * sequence becomes U+FFFD, as a WHATWG decoder shows it. */
static void json_str(char *out, size_t *pos, const char *s, size_t n) {
  if (!s) {
    put(out, pos, "null", 4);
    return;
  }
  put(out, pos, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t len = seq_len(c);
    if (len > 1) {
      if (i + len <= n && sse_utf8_valid_prefix(s + i, len) == len) put(out, pos, s + i, len);
      else {
        put(out, pos, "\xEF\xBF\xBD", 3);
        len = 1;
      }
      i += len;
      continue;
    }
    i++;
    if (len == 0) put(out, pos, "\xEF\xBF\xBD", 3);
    else if (c == '"') put(out, pos, "\\\"", 2);
    else if (c == '\\') put(out, pos, "\\\\", 2);
    else if (c == '\b') put(out, pos, "\\b", 2);
    else if (c == '\f') put(out, pos, "\\f", 2);
    else if (c == '\n') put(out, pos, "\\n", 2);
    else if (c == '\r') put(out, pos, "\\r", 2);
    else if (c == '\t') put(out, pos, "\\t", 2);
    else if (c < 0x20 || c == 0x7F) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(out, pos, esc, 6);
    } else put(out, pos, (const char *)&c, 1);
  }
  put(out, pos, "\"", 1);
}

size_t sse_gap_data(char *buf, const char *last_id, size_t last_len, const char *oldest,
                    size_t oldest_len, const char *latest, size_t latest_len, int64_t dropped) {
  size_t pos = 0;
  put(buf, &pos, "{\"last_event_id\":", 17);
  json_str(buf, &pos, last_id, last_len);
  put(buf, &pos, ",\"oldest\":", 10);
  json_str(buf, &pos, oldest, oldest_len);
  put(buf, &pos, ",\"latest\":", 10);
  json_str(buf, &pos, latest, latest_len);
  put(buf, &pos, ",\"dropped\":", 11);
  char num[24];
  int k = dropped < 0 ? snprintf(num, sizeof num, "null")
                      : snprintf(num, sizeof num, "%lld", (long long)dropped);
  put(buf, &pos, num, (size_t)k);
  put(buf, &pos, "}", 1);
  return pos;
}

#define GAP_HEAD "event: sse-gap\ndata: "
#define JOIN_HEAD "event: sse-join\nid: "

sse_frame *sse_gap_frame(const char *last_id, size_t last_len, const char *oldest,
                         size_t oldest_len, const char *latest, size_t latest_len,
                         int64_t dropped) {
  size_t n = sse_gap_data(NULL, last_id, last_len, oldest, oldest_len, latest, latest_len,
                          dropped);
  size_t head = sizeof GAP_HEAD - 1;
  sse_frame *f = sse_frame_alloc(head + n + 2, NULL, 0);
  if (!f) return NULL;
  memcpy(f->bytes, GAP_HEAD, head);
  sse_gap_data(f->bytes + head, last_id, last_len, oldest, oldest_len, latest, latest_len,
               dropped);
  memcpy(f->bytes + head + n, "\n\n", 2);
  return f;
}

/* ids come from a replayer: no CR, LF or NUL, and only id characters (the
 * JSON copy needs no escaping beyond what json_str does anyway) */
sse_frame *sse_join_frame(const char *id, size_t len) {
  size_t head = sizeof JOIN_HEAD - 1;
  size_t jn = 0;
  json_str(NULL, &jn, id, len);
  static const char mid[] = "\ndata: {\"last_event_id\":";
  size_t total = head + len + (sizeof mid - 1) + jn + 3; /* "}\n\n" */
  sse_frame *f = sse_frame_alloc(total, NULL, 0);
  if (!f) return NULL;
  size_t pos = 0;
  put(f->bytes, &pos, JOIN_HEAD, head);
  put(f->bytes, &pos, id, len);
  put(f->bytes, &pos, mid, sizeof mid - 1);
  json_str(f->bytes, &pos, id, len);
  put(f->bytes, &pos, "}\n\n", 3);
  return f;
}
