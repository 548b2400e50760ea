/* test_envelope.c - C unit test of the envelope form of frames (no Lua), run
 * under ASan+UBSan by `make ctest`: exact bytes for each kind of block, the
 * JSON escaping, and the twin's lifetime (made once, freed with its frame). */
#include "envelope.h"
#include "hub.h"
#include "ring.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Envelope of lit with topic (NULL: none), into an exactly sized heap
 * buffer (ASan catches a length that disagrees with the bytes). */
static void expect_at(const char *in, size_t n, const char *topic, const char *want, size_t wn,
                      int line) {
  size_t tl = topic ? strlen(topic) : 0;
  size_t len = sse_envelope_write(NULL, in, n, topic, tl);
  char *buf = malloc(len ? len : 1);
  size_t got = sse_envelope_write(buf, in, n, topic, tl);
  CHECKF(got == len, "line %d: measured %zu, wrote %zu", line, len, got);
  check_mem(buf, got, want, wn, __FILE__, line, "envelope");
  free(buf);
}
#define EXPECT(in, topic, want) expect_at((in), sizeof(in) - 1, (topic), (want), sizeof(want) - 1, __LINE__)

static void test_blocks(void) {
  /* a named event with an id, two data lines, a topic */
  EXPECT("event: headline\nid: ep-7\ndata: two\ndata: lines\n\n", "news",
         "event: sse\nid: ep-7\ndata: {\"topic\":\"news\",\"event\":\"headline\",\"data\":\"two\\nlines\"}\n\n");
  /* no event line: message; no topic: null; no id: no id line */
  EXPECT("data: x\n\n", NULL, "event: sse\ndata: {\"topic\":null,\"event\":\"message\",\"data\":\"x\"}\n\n");
  /* an empty event name is message too; an empty data line is data "" */
  EXPECT("event:\ndata\n\n", "t", "event: sse\ndata: {\"topic\":\"t\",\"event\":\"message\",\"data\":\"\"}\n\n");
  /* comment and retry lines stay, first; other fields go */
  EXPECT(": hi\nretry: 300\nfoo: bar\nid: 1\ndata: d\n\n", NULL,
         ": hi\nretry: 300\nevent: sse\nid: 1\ndata: {\"topic\":null,\"event\":\"message\",\"data\":\"d\"}\n\n");
  /* blocks without data are copied as they are: keep-alive, id only, retry only */
  EXPECT(": keep-alive\n\n", NULL, ": keep-alive\n\n");
  EXPECT("id: 5\n\n", "t", "id: 5\n\n");
  EXPECT("retry: 10\r\n\r\n", "t", "retry: 10\r\n\r\n");
  /* several blocks in one frame */
  EXPECT("retry: 10\n\ndata: a\n\nevent: e\ndata: b\n\n", NULL,
         "retry: 10\n\nevent: sse\ndata: {\"topic\":null,\"event\":\"message\",\"data\":\"a\"}\n\n"
         "event: sse\ndata: {\"topic\":null,\"event\":\"e\",\"data\":\"b\"}\n\n");
  /* CRLF and CR line ends, a field with no space after the colon, two spaces */
  EXPECT("data:a\r\ndata:  b\rid:9\r\n\r\n", NULL,
         "event: sse\nid: 9\ndata: {\"topic\":null,\"event\":\"message\",\"data\":\"a\\n b\"}\n\n");
  /* the last event and id win; an id with NUL is ignored, as clients do */
  EXPECT("event: a\nevent: b\nid: 1\nid: 2\0x\ndata: d\n\n", NULL,
         "event: sse\nid: 1\ndata: {\"topic\":null,\"event\":\"b\",\"data\":\"d\"}\n\n");
  /* an unfinished block (no blank line) is never dispatched: as it is */
  EXPECT("data: a\n\ndata: cut", NULL,
         "event: sse\ndata: {\"topic\":null,\"event\":\"message\",\"data\":\"a\"}\n\ndata: cut");
  EXPECT("", NULL, "");
  /* a "data" that is a comment is no data */
  EXPECT(":data: x\n\n", NULL, ":data: x\n\n");
  CHECK_INT(sse_envelope_needed(": x\n\nid: 1\n\n", 12), 0);
  CHECK_INT(sse_envelope_needed("data\n\n", 6), 1);
  CHECK_INT(sse_envelope_needed("data: x\n", 8), 0);
}

static void test_json(void) {
  /* quote, backslash, control characters, DEL */
  EXPECT("data: \"q\" \\ \t\b\f\x01\x1f\x7f\n\n", NULL,
         "event: sse\ndata: {\"topic\":null,\"event\":\"message\",\"data\":"
         "\"\\\"q\\\" \\\\ \\t\\b\\f\\u0001\\u001f\\u007f\"}\n\n");
  /* valid UTF-8 goes as it is, in the topic and event name too */
  EXPECT("event: \xc3\xa9t\xc3\xa9\ndata: \xe2\x82\xac \xf0\x9f\x98\x80\n\n", "caf\xc3\xa9",
         "event: sse\ndata: {\"topic\":\"caf\xc3\xa9\",\"event\":\"\xc3\xa9t\xc3\xa9\","
         "\"data\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}\n\n");
  /* ill-formed UTF-8: one U+FFFD per maximal subpart, as a browser decodes:
   * E2 82 then A: one; C0 (never a lead): one; ED A0 80 (a surrogate): three;
   * F0 9F 98 cut at the end of the line: one */
  EXPECT("data: \xe2\x82" "A\xc0" "B\xed\xa0\x80" "C\xf0\x9f\x98\n\n", NULL,
         "event: sse\ndata: {\"topic\":null,\"event\":\"message\",\"data\":"
         "\"\xef\xbf\xbd" "A\xef\xbf\xbd" "B\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "C\xef\xbf\xbd\"}\n\n");
  size_t pos = 0;
  char buf[16];
  sse_json_string(buf, &pos, NULL, 0);
  CHECK_MEM(buf, pos, "null", 4);
}

static void test_twin(void) {
  const char *w = "event: tick\nid: e-1\ndata: 1\n\n";
  sse_frame *f = sse_frame_new(w, strlen(w), "clock", 5);
  f->seq = 7;
  f->time = 2.5;
  sse_frame *t = sse_frame_envelope(f);
  CHECK(t != NULL && t != f);
  CHECK(sse_frame_envelope(f) == t);     /* made once */
  CHECK(sse_frame_envelope(t) == t);     /* an envelope is its own */
  CHECK_INT(t->seq, 7);
  CHECK(t->time == 2.5);
  CHECK_INT(t->refs, 1);                 /* f's reference */
  CHECK(t->topic && strcmp(t->topic, "clock") == 0);
  const char *want = "event: sse\nid: e-1\ndata: {\"topic\":\"clock\",\"event\":\"tick\",\"data\":\"1\"}\n\n";
  CHECK_MEM(t->bytes, t->len, want, strlen(want));
  /* a subscriber's reference outlives the frame: the twin stays valid */
  sse_frame_ref(t);
  sse_frame_unref(f);
  CHECK_MEM(t->bytes, t->len, want, strlen(want));
  sse_frame_unref(t);

  /* a keep-alive frame is its own envelope: no copy, no reference cycle */
  sse_frame *k = sse_frame_new(": keep-alive\n\n", 14, NULL, 0);
  CHECK(sse_frame_envelope(k) == k);
  CHECK_INT(k->refs, 1);
  sse_frame_unref(k);

  /* the hub's own events: gap and join */
  sse_frame *g = sse_gap_frame("a-1", 3, "a-5", 3, "a-9", 3, -1);
  sse_frame *gt = sse_frame_envelope(g);
  const char *gw = "event: sse\ndata: {\"topic\":null,\"event\":\"sse-gap\",\"data\":"
                   "\"{\\\"last_event_id\\\":\\\"a-1\\\",\\\"oldest\\\":\\\"a-5\\\","
                   "\\\"latest\\\":\\\"a-9\\\",\\\"dropped\\\":null}\"}\n\n";
  CHECK(gt != NULL);
  if (gt) CHECK_MEM(gt->bytes, gt->len, gw, strlen(gw));
  sse_frame_unref(g);
  sse_frame *j = sse_join_frame("a-9", 3);
  sse_frame *jt = sse_frame_envelope(j);
  const char *jw = "event: sse\nid: a-9\ndata: {\"topic\":null,\"event\":\"sse-join\",\"data\":"
                   "\"{\\\"last_event_id\\\":\\\"a-9\\\"}\"}\n\n";
  CHECK(jt != NULL);
  if (jt) CHECK_MEM(jt->bytes, jt->len, jw, strlen(jw));
  sse_frame_unref(j);
}

static char *take(sse_sub *s) {
  size_t n = sse_sub_take_size(s);
  char *buf = malloc(n + 1);
  size_t got = sse_sub_take(s, buf);
  buf[got] = '\0';
  return buf;
}

static void expect_take(sse_sub *s, const char *want, int line) {
  char *got = take(s);
  CHECKF(strcmp(got, want) == 0, "line %d: take: want [%s]\n       got [%s]", line, want, got);
  free(got);
}
#define TAKE(s, want) expect_take((s), (want), __LINE__)

#define ENV(topic, ev, data) "event: sse\ndata: {\"topic\":" topic ",\"event\":\"" ev "\",\"data\":\"" data "\"}\n\n"
#define ENVID(id, topic, ev, data) \
  "event: sse\nid: " id "\ndata: {\"topic\":" topic ",\"event\":\"" ev "\",\"data\":\"" data "\"}\n\n"

/* A hub with the memory ring, a plain and an envelope subscriber: the same
 * events in both forms, one twin per frame, shared by the live fan-out and
 * the replay; the join and gap events enveloped; a keep-alive as it is. */
static void test_hub_modes(void) {
  sse_hub *h = sse_hub_new();
  sse_ring *r = sse_ring_new("ep", 2, 8, 1 << 20, 1e9);
  sse_hub_set_replayer(h, &sse_ring_replayer_ops, r);
  sse_sub *plain = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub *env = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub *env2 = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub_set_envelope(env, 1);
  sse_sub_set_envelope(env2, 1);
  CHECK_INT(sse_sub_envelope(env), 1);
  CHECK_INT(sse_sub_envelope(plain), 0);
  sse_str t = {"t", 1};
  size_t count, idn;
  int gap;
  char id[SSE_ID_CAP];
  sse_encode_err err;
  sse_event ev = {{NULL, 0}, {"tick", 4}, {"a\nb", 3}, {NULL, 0}, -1};
  /* the join event, before any event: id ep-0 */
  CHECK(sse_hub_attach(h, plain, &t, 1, NULL, 0, 0, &count, &gap) == SSE_REPLAY_DONE);
  CHECK(sse_hub_attach(h, env, &t, 1, NULL, 0, 0, &count, &gap) == SSE_REPLAY_DONE);
  CHECK(sse_hub_attach(h, env2, &t, 1, NULL, 0, 0, &count, &gap) == SSE_REPLAY_DONE);
  TAKE(plain, "event: sse-join\nid: ep-0\ndata: {\"last_event_id\":\"ep-0\"}\n\n");
  TAKE(env, ENVID("ep-0", "null", "sse-join", "{\\\"last_event_id\\\":\\\"ep-0\\\"}"));
  TAKE(env2, ENVID("ep-0", "null", "sse-join", "{\\\"last_event_id\\\":\\\"ep-0\\\"}"));
  CHECK(sse_hub_broadcast(h, &ev, 1, "t", 1, 0, &count, id, &idn, &err) == 0 && count == 3);
  sse_frame *stored = sse_ring_frame_at(r, 0);
  /* the ring's frame: the ring and plain hold it; its twin: the frame and
   * the two envelope outboxes */
  CHECK_INT(stored->refs, 2);
  CHECK(stored->twin && stored->twin != stored);
  if (stored->twin) CHECK_INT(stored->twin->refs, 3);
  TAKE(plain, "event: tick\nid: ep-1\ndata: a\ndata: b\n\n");
  TAKE(env, ENVID("ep-1", "\"t\"", "tick", "a\\nb"));
  TAKE(env2, ENVID("ep-1", "\"t\"", "tick", "a\\nb"));
  if (stored->twin) CHECK_INT(stored->twin->refs, 1);
  /* a replay of the stored frame queues that same twin */
  sse_sub *late = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub_set_envelope(late, 1);
  CHECK(sse_hub_attach(h, late, &t, 1, "ep-0", 4, 0, &count, &gap) == SSE_REPLAY_DONE && count == 1);
  if (stored->twin) CHECK_INT(stored->twin->refs, 2);
  TAKE(late, ENVID("ep-1", "\"t\"", "tick", "a\\nb"));
  /* a replay gap is enveloped too (no id line: the client keeps its id) */
  sse_sub *old = sse_sub_new(NULL, 0, SSE_SLOW_CLOSE);
  sse_sub_set_envelope(old, 1);
  CHECK(sse_hub_attach(h, old, &t, 1, "xx-1", 4, 0, &count, &gap) == SSE_REPLAY_DONE && gap != 0);
  TAKE(old, ENV("null", "sse-gap", "{\\\"last_event_id\\\":\\\"xx-1\\\",\\\"oldest\\\":"
                "\\\"ep-1\\\",\\\"latest\\\":\\\"ep-1\\\",\\\"dropped\\\":null}")
            ENVID("ep-1", "\"t\"", "tick", "a\\nb"));
  /* keep-alive: the same frame in both modes */
  sse_frame *ka = sse_frame_new(": ka\n\n", 6, NULL, 0);
  CHECK_INT(sse_hub_keepalive(h, ka, 10, 1), 5);
  CHECK(ka->twin == ka);
  CHECK_INT(ka->refs, 6);
  sse_frame_unref(ka);
  TAKE(plain, ": ka\n\n");
  TAKE(env, ": ka\n\n");
  sse_sub *all[] = {plain, env, env2, late, old};
  for (int i = 0; i < 5; i++) sse_sub_free(all[i]);
  sse_hub_free(h);
  sse_ring_free(r);
}

/* drop_oldest: the gap event that replaces dropped frames is enveloped. */
static void test_drop_gap(void) {
  sse_hub *h = sse_hub_new();
  sse_sub *s = sse_sub_new(NULL, 300, SSE_SLOW_DROP_OLDEST);
  sse_sub_set_envelope(s, 1);
  uint32_t sid;
  CHECK(sse_hub_add(h, s, &sid) == 0);
  for (int i = 0; i < 6; i++) {
    sse_frame *f = sse_frame_new("data: 0123456789012345678901234567890123456789\n\n", 48, NULL, 0);
    sse_hub_publish(h, f, NULL, 0, 0);
    sse_frame_unref(f);
  }
  /* four dropped: the gap (in place of the first droppable), then the last two */
  TAKE(s, ENV("null", "sse-gap", "{\\\"last_event_id\\\":null,\\\"oldest\\\":null,"
              "\\\"latest\\\":null,\\\"dropped\\\":4}")
          ENV("null", "message", "0123456789012345678901234567890123456789")
          ENV("null", "message", "0123456789012345678901234567890123456789"));
  sse_sub_free(s);
  sse_hub_free(h);
}

int main(void) {
  test_blocks();
  test_hub_modes();
  test_drop_gap();
  test_json();
  test_twin();
  return check_summary("test_envelope");
}
