/* fuzz_hub.c - libFuzzer target for the hub (hub.c, attach.c, gzip.c):
 * random sequences of hub operations on push subscribers (a socketpair with
 * a small send buffer, whose receiving end is read partly or not at all)
 * and pull subscribers, checked after every step.
 *
 * Build and run (from the repository root): `make fuzz-build`, then
 *   build/lua5.4/fuzz/fuzz_hub -max_total_time=60 csrc/fuzz/corpus/hub
 *
 * The input is a program: one byte of hub set-up (the hub runs its own
 * loop handles or is flushed by hand; ring limits), then one op per byte
 * with operand bytes: create a subscriber (push or pull; outbox limit,
 * close or drop_oldest, envelope, gzip, a response head; attached fresh,
 * with a ring replay from an id near the window, or into an asynchronous
 * replay the program drives), subscribe/unsubscribe, publish (stored with
 * an id, or a bare frame; small or large; to a topic or everyone),
 * keep-alive, the async replay's frame and end (with or without a gap),
 * flush (hub, one sub), a loop turn, read a push peer, take a pull sub,
 * pop the ready/closed lists, close (graceful or hard), free, remove,
 * time passing, new limits, hub free (its subscribers stay), drain watches
 * and their reports (each once).
 * After every op:
 * - sse_sub_check / sse_hub_check: the outbox bytes add up, exempt, held,
 *   in-flight counts, the gap flag, lists, states and topics agree;
 * - every frame queued, held by the ring or by the program has exactly the
 *   references those holders account for (no frame freed while queued,
 *   none leaked: LeakSanitizer sees the rest);
 * - the hub's counters (bytes sent, frames dropped) are the sum of its
 *   subscribers';
 * - what a subscriber received (taken, or read from the socket and
 *   gunzipped) is its head, then whole SSE blocks: no event twice, stored
 *   events in order; a pull take ends on a block boundary; everything a
 *   push sub was counted as sending arrives. */
#define _GNU_SOURCE /* memmem */
#include "hub.h"
#include "ring.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXSUB 6
#define MAXFRAMES 256
#define MAXEVENTS 4096
#define HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
#define HEAD_LEN (sizeof HEAD - 1)

static void fail(const char *what, long a, long b) {
  fprintf(stderr, "fuzz_hub: %s (%ld, %ld)\n", what, a, b);
  abort();
}

typedef struct fsub {
  sse_sub *s;
  int push, gzip, head, async;
  int fd;                  /* the peer's end (push) */
  uv_pipe_t *pipe;
  uint64_t next_seq;       /* async: the next ring seq to feed */
  uint64_t fed_upto;
  /* the receiving side */
  char *buf;
  size_t blen, bcap;
  size_t raw;              /* bytes received (before gunzip) */
  size_t head_seen;
  z_stream zs;
  int zinit, zend;
  long last_stored;        /* last stored event's number seen */
  uint64_t gap_dropped;    /* the sum of the drop gap events' counts */
  uint8_t seen[MAXEVENTS / 8];
  /* the hub's counters: what s added to its current hub */
  uint64_t base_sent, base_dropped;
} fsub;

typedef struct world {
  uv_loop_t loop;
  sse_hub *h;
  sse_ring *ring;
  fsub subs[MAXSUB];
  sse_frame *frames[MAXFRAMES]; /* the program's references */
  size_t nframes;
  sse_frame *ka;
  long events;
  double now;
  int own_loop;
  int closing;                 /* pipes being closed (orphaned writes may be pending) */
  uint64_t left_sent, left_dropped; /* counted by the hub for subs that left it */
  const uint8_t *p, *end;
} world;

static unsigned byte(world *w) { return w->p < w->end ? *w->p++ : 0; }

/* --- the receiving side --------------------------------------------------- */

static void rx_plain(fsub *f, const char *p, size_t n) {
  if (n == 0) return;
  if (f->blen + n > f->bcap) {
    size_t cap = f->bcap ? f->bcap : 4096;
    while (cap < f->blen + n) cap *= 2;
    f->buf = realloc(f->buf, cap);
    if (!f->buf) abort();
    f->bcap = cap;
  }
  memcpy(f->buf + f->blen, p, n);
  f->blen += n;
  /* whole blocks */
  size_t off = 0;
  for (;;) {
    char *e = NULL;
    for (size_t i = off; i + 1 < f->blen; i++)
      if (f->buf[i] == '\n' && f->buf[i + 1] == '\n') {
        e = f->buf + i;
        break;
      }
    if (!e) break;
    const char *b = f->buf + off;
    size_t bl = (size_t)(e - b) + 2;
    if (b[0] == '\n') fail("an empty block", (long)off, 0);
    /* a drop gap event (plain, or inside an envelope: escaped quotes) */
    if (memmem(b, bl, "sse-gap", 7)) {
      const char *d = memmem(b, bl, "dropped", 7);
      if (!d) fail("a gap event without dropped", 0, 0);
      d += 7;
      while (*d == '\\' || *d == '"' || *d == ':') d++;
      if (*d != 'n') f->gap_dropped += strtoull(d, NULL, 10);
    }
    /* our events carry #n# (stored, with an id) or #n! (bare) */
    const char *m = memchr(b, '#', bl);
    if (m) {
      char *stop;
      long ev = strtol(m + 1, &stop, 10);
      if (ev < 0 || ev >= MAXEVENTS || (*stop != '#' && *stop != '!')) fail("bad event", ev, 0);
      if (f->seen[ev / 8] & (1u << (ev % 8))) fail("an event arrived twice", ev, 0);
      f->seen[ev / 8] |= (uint8_t)(1u << (ev % 8));
      if (*stop == '#') {
        if (ev <= f->last_stored) fail("stored events out of order", ev, f->last_stored);
        f->last_stored = ev;
      }
    }
    off += bl;
  }
  memmove(f->buf, f->buf + off, f->blen - off);
  f->blen -= off;
}

/* Bytes off the wire (or taken): the head as it was queued, then events
 * (gzip-compressed after the head for a gzip sub). */
static void rx(fsub *f, const char *p, size_t n) {
  f->raw += n;
  if (f->head && f->head_seen < HEAD_LEN) {
    size_t k = HEAD_LEN - f->head_seen < n ? HEAD_LEN - f->head_seen : n;
    if (memcmp(p, &HEAD[f->head_seen], k) != 0) fail("the head is not first", (long)f->head_seen, 0);
    f->head_seen += k;
    p += k;
    n -= k;
  }
  if (!n) return;
  if (!f->gzip) {
    rx_plain(f, p, n);
    return;
  }
  if (f->zend) fail("bytes after the gzip member", (long)n, 0);
  f->zs.next_in = (Bytef *)(uintptr_t)p;
  f->zs.avail_in = (uInt)n;
  char out[16384];
  while (f->zs.avail_in > 0) {
    f->zs.next_out = (Bytef *)out;
    f->zs.avail_out = sizeof out;
    int r = inflate(&f->zs, Z_NO_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) fail("corrupt gzip", r, 0);
    rx_plain(f, out, sizeof out - f->zs.avail_out);
    if (r == Z_STREAM_END) {
      f->zend = 1;
      if (f->zs.avail_in) fail("bytes after the gzip member", (long)f->zs.avail_in, 0);
      break;
    }
    if (r == Z_BUF_ERROR && f->zs.avail_out != 0) break;
  }
}

/* Reads up to max bytes of a push sub's peer. */
static void peer_read(fsub *f, size_t max) {
  char tmp[8192];
  while (max > 0) {
    ssize_t r = read(f->fd, tmp, max < sizeof tmp ? max : sizeof tmp);
    if (r <= 0) return;
    rx(f, tmp, (size_t)r);
    max -= (size_t)r;
  }
}

static void take(fsub *f) {
  size_t n = sse_sub_take_size(f->s);
  char *b = malloc(n ? n : 1);
  if (!b) abort();
  size_t got = sse_sub_take(f->s, b);
  if (got != n) fail("take != take_size", (long)got, (long)n);
  rx(f, b, got);
  free(b);
  if (f->blen) fail("a take ended inside a block", (long)f->blen, 0);
}

/* --- the invariants ------------------------------------------------------- */

static int ptr_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (sse_frame *const *)a, y = (uintptr_t) * (sse_frame *const *)b;
  return x < y ? -1 : x > y;
}

static sse_frame *holders[1 << 16];

/* Every visible frame's references are accounted for: one per outbox slot,
 * per ring slot, per program reference, the ring's joined copy, and a
 * frame's twin reference. */
static void check_refs(world *w) {
  size_t n = 0;
#define HOLD(f) do { if (n < sizeof holders / sizeof holders[0]) holders[n++] = (f); } while (0)
  for (int i = 0; i < MAXSUB; i++) {
    sse_frame *f;
    if (!w->subs[i].s) continue;
    for (size_t k = 0; (f = sse_sub_frame_at(w->subs[i].s, k)); k++) HOLD(f);
  }
  for (size_t k = 0; k < sse_ring_len(w->ring); k++) HOLD(sse_ring_frame_at(w->ring, k));
  if (sse_ring_joined_cache(w->ring)) HOLD((sse_frame *)sse_ring_joined_cache(w->ring));
  for (size_t k = 0; k < w->nframes; k++) HOLD(w->frames[k]);
  if (w->ka) HOLD(w->ka);
  if (n == sizeof holders / sizeof holders[0]) return; /* too many to count */
  size_t base = n;
  /* twins: the owning frame's reference (distinct owners only) */
  qsort(holders, n, sizeof holders[0], ptr_cmp);
  for (size_t k = 0; k < base; k++)
    if ((k == 0 || holders[k] != holders[k - 1]) && holders[k]->twin &&
        holders[k]->twin != holders[k])
      HOLD(holders[k]->twin);
  qsort(holders, n, sizeof holders[0], ptr_cmp);
  for (size_t k = 0; k < n;) {
    size_t j = k;
    while (j < n && holders[j] == holders[k]) j++;
    if (holders[k]->refs != j - k && !w->closing) fail("frame references", (long)holders[k]->refs, (long)(j - k));
    if (holders[k]->refs < j - k) fail("a frame with too few references", (long)holders[k]->refs, (long)(j - k));
    k = j;
  }
}

static void check(world *w) {
  const char *e = sse_hub_check(w->h);
  if (e) fail(e, 0, 0);
  uint64_t sent = w->left_sent, dropped = w->left_dropped;
  for (int i = 0; i < MAXSUB; i++) {
    fsub *f = &w->subs[i];
    if (!f->s) continue;
    if ((e = sse_sub_check(f->s))) fail(e, i, 0);
    sse_sub_stats st;
    sse_sub_get_stats(f->s, &st);
    if (sse_sub_hub(f->s) == w->h) {
      sent += st.bytes_sent - f->base_sent;
      dropped += st.dropped - f->base_dropped;
    }
    if (!f->push && f->raw != st.bytes_sent) fail("taken != bytes_sent", (long)f->raw, (long)st.bytes_sent);
  }
  sse_hub_counters c;
  sse_hub_get_counters(w->h, &c);
  if (c.bytes_sent != sent) fail("hub bytes_sent != its subscribers'", (long)c.bytes_sent, (long)sent);
  if (c.dropped != dropped) fail("hub dropped != its subscribers'", (long)c.dropped, (long)dropped);
  check_refs(w);
}

/* s leaves w->h (or w->h goes): what it added stays in the hub's counters. */
static void leaves(world *w, fsub *f) {
  if (sse_sub_hub(f->s) != w->h) return;
  sse_sub_stats st;
  sse_sub_get_stats(f->s, &st);
  w->left_sent += st.bytes_sent - f->base_sent;
  w->left_dropped += st.dropped - f->base_dropped;
}

/* --- the ops ------------------------------------------------------------- */

static const char *const topic_names[3] = {"a", "b", "c"};

static void on_pipe_closed(uv_handle_t *hd) {
  world *w = hd->loop->data;
  w->closing--;
  free(hd);
}

static void sub_free(world *w, fsub *f) {
  leaves(w, f);
  sse_sub_free(f->s); /* a write in flight: freed when it ends (the close cancels it) */
  f->s = NULL;
  if (f->push) {
    w->closing++;
    uv_close((uv_handle_t *)f->pipe, on_pipe_closed);
    close(f->fd);
  }
  if (f->zinit) inflateEnd(&f->zs);
  free(f->buf);
  memset(f, 0, sizeof *f);
}

static fsub *pick(world *w) {
  unsigned b = byte(w);
  for (int k = 0; k < MAXSUB; k++) {
    fsub *f = &w->subs[(b + (unsigned)k) % MAXSUB];
    if (f->s) return f;
  }
  return NULL;
}

static void op_new(world *w) {
  fsub *f = NULL;
  for (int i = 0; i < MAXSUB; i++)
    if (!w->subs[i].s) f = &w->subs[i];
  unsigned a = byte(w), b = byte(w), c = byte(w);
  if (!f) return;
  static const size_t limits[8] = {0, 64, 200, 512, 1500, 4096, 20000, 1 << 20};
  size_t limit = limits[a & 7];
  int policy = (a >> 3) & 1 ? SSE_SLOW_DROP_OLDEST : SSE_SLOW_CLOSE;
  f->push = (a >> 4) & 1;
  f->head = (a >> 5) & 1;
  int envelope = (a >> 6) & 1;
  f->gzip = f->push && ((a >> 7) & 1);
  f->last_stored = -1;
  uv_stream_t *stream = NULL;
  if (f->push) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    int sz = 1024 << (b & 3);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    f->pipe = malloc(sizeof *f->pipe);
    if (!f->pipe) abort();
    uv_pipe_init(&w->loop, f->pipe, 0);
    uv_pipe_open(f->pipe, sv[0]);
    f->fd = sv[1];
    stream = (uv_stream_t *)f->pipe;
  }
  f->s = sse_sub_new(stream, limit, policy);
  if (!f->s) abort();
  if (f->head) {
    sse_frame *hf = sse_frame_new(HEAD, HEAD_LEN, NULL, 0);
    if (sse_sub_push_head(f->s, hf) != 0) fail("push_head", 0, 0);
    sse_frame_unref(hf);
  }
  if (envelope) sse_sub_set_envelope(f->s, 1);
  if (f->gzip) {
    if (sse_sub_set_gzip(f->s, (int)(b >> 2) % 10, 9 + (int)(b >> 4) % 7, 1 + (int)(c >> 5)) != 0)
      fail("set_gzip", 0, 0);
    if (inflateInit2(&f->zs, 16 + 15) != Z_OK) abort();
    f->zinit = 1;
  }
  f->base_sent = f->base_dropped = 0;
  sse_str topics[3];
  size_t nt = 0;
  for (int t = 0; t < 3; t++)
    if (c & (1u << t)) topics[nt++] = (sse_str){topic_names[t], 1};
  int mode = (c >> 3) & 3;
  if (mode == 3) { /* an asynchronous replay the program drives */
    uint32_t id;
    if (sse_hub_add(w->h, f->s, &id) != 0) fail("add", 0, 0);
    for (size_t t = 0; t < nt; t++) sse_hub_subscribe(f->s, topics[t].p, 1);
    sse_sub_replay_begin(f->s);
    f->async = 1;
    uint64_t first = sse_ring_first_seq(w->ring);
    f->next_seq = first + (b >> 5) % 3;
    f->fed_upto = 0;
    return;
  }
  char id[64];
  const char *last = NULL;
  size_t len = 0;
  if (mode == 1) { /* a ring id near the window */
    uint64_t first = sse_ring_first_seq(w->ring);
    uint64_t seq = first + (b >> 4) % 5;
    seq = seq >= 2 ? seq - 2 : 0;
    len = sse_ring_format_id(w->ring, seq, id, sizeof id);
    last = id;
  } else if (mode == 2) {
    last = "nonsense";
    len = 8;
  }
  size_t count;
  int gap;
  int rc = sse_hub_attach(w->h, f->s, topics, nt, last, len, w->now, &count, &gap);
  if (rc != SSE_REPLAY_DONE) fail("attach", rc, 0);
}

static void op_publish(world *w) {
  unsigned a = byte(w), b = byte(w);
  if (w->events >= MAXEVENTS) return;
  long n = w->events++;
  static const size_t sizes[4] = {0, 30, 900, 9000};
  size_t pad = sizes[a & 3] + b;
  int topic = (a >> 2) & 3; /* 0: everyone */
  const char *t = topic ? topic_names[topic - 1] : NULL;
  char *text = malloc(pad + 64);
  if (!text) abort();
  int stored = (a >> 4) & 1;
  int tl = snprintf(text, 64, "#%ld%c", n, stored ? '#' : '!');
  memset(text + tl, 'x', pad);
  if (stored) {
    sse_event ev = {{NULL, 0}, {t, t ? 1 : 0}, {text, (size_t)tl + pad}, {NULL, 0}, -1};
    size_t count, idn;
    char idb[SSE_ID_CAP];
    sse_encode_err err;
    int rc = sse_hub_broadcast(w->h, &ev, 1, t, t ? 1 : 0, w->now, &count, idb, &idn, &err);
    if (rc != 0) fail("broadcast", rc, 0);
    /* keep a reference to it while the ring has it */
    size_t rl = sse_ring_len(w->ring);
    sse_frame *f = rl ? sse_ring_frame_at(w->ring, rl - 1) : NULL;
    if (f && f->seq == sse_ring_last_seq(w->ring) && w->nframes < MAXFRAMES && (a >> 5) & 1)
      w->frames[w->nframes++] = sse_frame_ref(f);
  } else {
    char *wire = malloc(pad + 96);
    if (!wire) abort();
    int hl = t ? snprintf(wire, 96, "event: %s\n", t) : 0;
    memcpy(wire + hl, "data: ", 6);
    memcpy(wire + hl + 6, text, (size_t)tl + pad);
    memcpy(wire + hl + 6 + tl + pad, "\n\n", 2);
    sse_frame *f = sse_frame_new(wire, (size_t)hl + 8 + (size_t)tl + pad, t, t ? 1 : 0);
    free(wire);
    if (!f) abort();
    f->time = w->now;
    sse_hub_publish(w->h, f, t, t ? 1 : 0, w->now);
    if (w->nframes < MAXFRAMES && (a >> 5) & 1) w->frames[w->nframes++] = f;
    else sse_frame_unref(f);
  }
  free(text);
}

/* The async replayer answers: the next stored frame the sub reads. */
static void op_replay_frame(world *w) {
  fsub *f = pick(w);
  if (!f || !f->async) return;
  size_t idx;
  uint64_t seq = f->next_seq;
  if (seq == 0) seq = 1;
  int st = sse_ring_locate_seq(w->ring, seq - 1, &idx);
  for (; st == SSE_RING_FOUND && idx < sse_ring_len(w->ring); idx++) {
    sse_frame *fr = sse_ring_frame_at(w->ring, idx);
    f->next_seq = fr->seq + 1;
    f->fed_upto = fr->seq;
    if (fr->topic && !sse_sub_is_subscribed(f->s, fr->topic, fr->topic_len)) continue;
    int rc = sse_sub_replay_frame(f->s, fr);
    if (rc != 0 && rc != SSE_HUB_ECLOSED && rc != SSE_HUB_EINVAL) fail("replay_frame", rc, 0);
    return;
  }
}

static void op_replay_end(world *w) {
  fsub *f = pick(w);
  unsigned a = byte(w);
  if (!f || !f->async) return;
  sse_frame *gap = (a & 1) ? sse_gap_frame("x", 1, NULL, 0, NULL, 0, -1) : NULL;
  sse_sub_replay_end(f->s, f->fed_upto, gap);
  f->async = 0;
}

static void op_close(world *w) {
  fsub *f = pick(w);
  unsigned a = byte(w);
  if (!f) return;
  sse_sub_close(f->s, a & 1, w->now, (double)(a >> 1) / 16.0);
  if (f->async && sse_sub_state(f->s) != SSE_SUB_OPEN) f->async = 0;
}

static void op_hub_free(world *w) {
  for (int i = 0; i < MAXSUB; i++)
    if (w->subs[i].s) leaves(w, &w->subs[i]);
  sse_hub_free(w->h);
  w->h = sse_hub_new();
  if (!w->h) abort();
  w->left_sent = w->left_dropped = 0;
  sse_hub_set_replayer(w->h, &sse_ring_replayer_ops, w->ring);
  if (w->own_loop) sse_hub_set_loop(w->h, &w->loop, NULL, NULL);
}

static void step(world *w, unsigned op) {
  fsub *f;
  switch (op % 20) {
  case 0: case 1: op_new(w); break;
  case 2: case 3: case 4: op_publish(w); break;
  case 5: sse_hub_flush(w->h, w->now); break;
  case 6: uv_run(&w->loop, UV_RUN_NOWAIT); break;
  case 7: {
    f = pick(w);
    unsigned a = byte(w);
    if (f && f->push) peer_read(f, (size_t)(a + 1) * 64);
    else if (f) take(f);
    break;
  }
  case 8: {
    f = pick(w);
    unsigned a = byte(w);
    if (!f) break;
    const char *t = topic_names[(a >> 1) % 3];
    if (a & 1) sse_hub_subscribe(f->s, t, 1);
    else sse_hub_unsubscribe(f->s, t, 1);
    break;
  }
  case 9: op_close(w); break;
  case 10: op_replay_frame(w); break;
  case 11: op_replay_end(w); break;
  case 12:
    if ((f = pick(w))) sub_free(w, f);
    break;
  case 13:
    if ((f = pick(w))) {
      leaves(w, f);
      sse_hub_remove(f->s);
      f->async = 0; /* its replay, if any, is abandoned with the hub */
      if (sse_sub_replaying(f->s)) sse_sub_replay_end(f->s, f->fed_upto, NULL);
    }
    break;
  case 14: w->now += (double)byte(w) / 8.0; break;
  case 15:
    while (sse_hub_next_ready(w->h)) {}
    while (sse_hub_next_closed(w->h)) {}
    break;
  case 16:
    if ((f = pick(w)) && f->push) sse_sub_flush(f->s);
    break;
  case 17: {
    f = pick(w);
    unsigned a = byte(w);
    static const size_t limits[4] = {0, 100, 1000, 10000};
    if (f) sse_sub_set_limits(f->s, limits[a & 3], (a >> 2) & 1);
    break;
  }
  case 18: sse_hub_keepalive(w->h, w->ka, w->now, (double)(byte(w) % 4)); break;
  case 19: {
    unsigned a = byte(w);
    if (a < 32) {
      op_hub_free(w);
    } else if (a < 144) { /* a drain watch at a mark */
      if ((f = pick(w))) {
        int rc = sse_sub_watch_drain(f->s, (size_t)(a - 32) * 256);
        if (rc != 0 && rc != SSE_HUB_ECLOSED) fail("watch_drain", rc, 0);
      }
    } else { /* the reports: each watch once */
      sse_sub *d;
      while ((d = sse_hub_next_drained(w->h))) {
        fsub *g = NULL;
        for (int i = 0; i < MAXSUB; i++)
          if (w->subs[i].s == d) g = &w->subs[i];
        if (!g) fail("a drain report of an unknown sub", 0, 0);
        /* (frames queued since it was due may have refilled it: the
         * report says the mark was reached, the owner looks again) */
        if (sse_sub_drain_watched(d)) fail("a reported watch stays", 0, 0);
      }
    }
    break;
  }
  }
}

/* The end: what push subs still hold is written and read; every byte they
 * were counted as sending arrived. Then everything is freed. */
static void finish(world *w) {
  size_t last_q = SIZE_MAX, last_raw = 0;
  /* until everything is out, or 20 rounds in a row move nothing (stuck:
   * checked below); the sockets take a few KiB a round */
  for (int round = 0, idle = 0; round < 100000 && idle < 20; round++) {
    int more = 0;
    size_t q = 0, raw = 0;
    sse_hub_flush(w->h, w->now);
    for (int i = 0; i < MAXSUB; i++) {
      fsub *f = &w->subs[i];
      if (!f->s) continue;
      if (f->async) {
        sse_sub_replay_end(f->s, f->fed_upto, NULL);
        f->async = 0;
      }
      if (!f->push) {
        take(f);
        continue;
      }
      if (sse_sub_hub(f->s) != w->h) sse_sub_flush(f->s);
      peer_read(f, SIZE_MAX);
      if (sse_sub_queued(f->s) > 0) more = 1;
      q += sse_sub_queued(f->s);
      raw += f->raw;
    }
    uv_run(&w->loop, UV_RUN_NOWAIT);
    check(w);
    if (!more) break;
    idle = q == last_q && raw == last_raw ? idle + 1 : 0;
    last_q = q;
    last_raw = raw;
  }
  for (int i = 0; i < MAXSUB; i++) {
    fsub *f = &w->subs[i];
    if (!f->s) continue;
    if (sse_sub_queued(f->s) > 0 && sse_sub_state(f->s) != SSE_SUB_CLOSED) {
      fprintf(stderr, "stuck: push %d state %d replaying %d limit %zu in hub %d async %d\n", f->push,
              sse_sub_state(f->s), sse_sub_replaying(f->s), sse_sub_limit(f->s),
              sse_sub_hub(f->s) == w->h, f->async);
      fail("an outbox is stuck", i, (long)sse_sub_queued(f->s));
    }
    sse_sub_stats st;
    sse_sub_get_stats(f->s, &st);
    if (f->push) peer_read(f, SIZE_MAX);
    if (sse_sub_state(f->s) == SSE_SUB_CLOSED) continue;
    if (f->raw != st.bytes_sent) fail("received != bytes_sent", (long)f->raw, (long)st.bytes_sent);
    if (f->gap_dropped != st.dropped) fail("gap events' dropped != dropped", (long)f->gap_dropped, (long)st.dropped);
  }
  for (int i = 0; i < MAXSUB; i++)
    if (w->subs[i].s) sub_free(w, &w->subs[i]);
  sse_hub_free(w->h);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&w->loop) != 0) fail("loop handles left open", 0, 0);
  for (size_t k = 0; k < w->nframes; k++) sse_frame_unref(w->frames[k]);
  sse_frame_unref(w->ka);
  sse_ring_free(w->ring);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world w;
  if (size < 1 || size > 4096) return 0;
  memset(&w, 0, sizeof w);
  w.p = data;
  w.end = data + size;
  unsigned cfg = byte(&w);
  if (uv_loop_init(&w.loop) != 0) abort();
  w.loop.data = &w;
  w.ring = sse_ring_new("fz", 2, 1 + (cfg & 15) * 4, 2000u << ((cfg >> 4) & 3), 30.0);
  w.h = sse_hub_new();
  if (!w.ring || !w.h) abort();
  sse_hub_set_replayer(w.h, &sse_ring_replayer_ops, w.ring);
  w.own_loop = (cfg >> 6) & 1;
  if (w.own_loop) sse_hub_set_loop(w.h, &w.loop, NULL, NULL);
  else if (cfg >> 7) sse_hub_set_turns(w.h, 1);
  w.ka = sse_frame_new(": ka\n\n", 6, NULL, 0);
  w.now = 1.0;
  static int trace = -1;
  if (trace < 0) trace = getenv("FUZZ_HUB_TRACE") != NULL;
  while (w.p < w.end) {
    unsigned op = byte(&w);
    if (trace) fprintf(stderr, "op %u at %ld\n", op % 20, (long)(w.p - data - 1));
    step(&w, op);
    check(&w);
  }
  finish(&w);
  return 0;
}
