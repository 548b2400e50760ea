/* ring.c - the replay window (see ring.h). */
#include "ring.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_INITIAL_CAP 16

struct sse_ring {
  sse_frame **slots;   /* cap slots; count frames from head, wrapping */
  size_t cap;
  size_t head;
  size_t count;
  size_t bytes;        /* sum of frame->len of the frames held */
  size_t max_events;
  size_t max_bytes;
  double ttl;
  uint64_t next_seq;   /* seq of the next frame stored; starts at 1 */
  size_t epoch_len;
  char epoch[SSE_RING_EPOCH_MAX + 1];
  /* cache of sse_ring_joined(): the frames joined_from .. the newest, back
   * to back; dropped by the next store (which changes the newest) */
  sse_frame *joined;
  uint64_t joined_from;
};

static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Value of a base36 digit (lowercase only, as written), or -1. */
static int b36_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  return -1;
}

/* Write v in base36 at out (no NUL); returns the digit count (1..13). */
static size_t b36_write(uint64_t v, char *out) {
  char tmp[SSE_RING_SEQ_DIGITS];
  size_t n = 0;
  do {
    tmp[n++] = b36[v % 36];
    v /= 36;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

/* 1 when c may appear in an epoch. */
static int epoch_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || c == '_';
}

int sse_ring_epoch_valid(const char *epoch, size_t len) {
  if (!epoch || len == 0 || len > SSE_RING_EPOCH_MAX) return 0;
  for (size_t i = 0; i < len; i++)
    if (!epoch_char(epoch[i])) return 0;
  return 1;
}

size_t sse_ring_default_epoch(char *buf, size_t cap) {
  if (!buf || cap < SSE_RING_DEFAULT_EPOCH_CAP) return 0;
  struct timespec ts = {0, 0};
  uint64_t ms = 0, noise = 0;
  if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
    ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    unsigned char rnd[3];
    if (read(fd, rnd, sizeof rnd) == (ssize_t)sizeof rnd)
      noise = (uint64_t)rnd[0] << 16 | (uint64_t)rnd[1] << 8 | rnd[2];
    close(fd);
  }
  /* without /dev/urandom: nanoseconds, the pid and an address still vary */
  noise ^= (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 3 ^ (uint64_t)(uintptr_t)buf >> 4;
  /* 44 bits of ms (until the year 2527) then 20 random bits: 12 base36
   * digits today, never more than 13 */
  uint64_t v = (ms & ((UINT64_C(1) << 44) - 1)) << 20 | (noise & 0xFFFFFu);
  size_t n = b36_write(v, buf);
  buf[n] = '\0';
  return n;
}

sse_ring *sse_ring_new(const char *epoch, size_t epoch_len, size_t max_events,
                       size_t max_bytes, double ttl) {
  if (!sse_ring_epoch_valid(epoch, epoch_len)) return NULL;
  if (max_events < 1 || max_events > SSE_RING_MAX_EVENTS) return NULL;
  if (max_bytes < 1 || !(ttl > 0)) return NULL; /* !(>) refuses NaN */
  sse_ring *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->max_events = max_events;
  r->max_bytes = max_bytes;
  r->ttl = ttl;
  r->next_seq = 1;
  memcpy(r->epoch, epoch, epoch_len);
  r->epoch[epoch_len] = '\0';
  r->epoch_len = epoch_len;
  return r; /* slots allocated on the first store */
}

/* Drop the oldest frame (count > 0). */
static void pop_oldest(sse_ring *r) {
  sse_frame *f = r->slots[r->head];
  r->slots[r->head] = NULL;
  r->bytes -= f->len;
  r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
  if (--r->count == 0) r->head = 0;
  sse_frame_unref(f);
}

static void drop_joined(sse_ring *r) {
  sse_frame_unref(r->joined);
  r->joined = NULL;
}

void sse_ring_clear(sse_ring *r) {
  if (!r) return;
  drop_joined(r);
  while (r->count) pop_oldest(r);
}

void sse_ring_free(sse_ring *r) {
  if (!r) return;
  sse_ring_clear(r);
  free(r->slots);
  free(r);
}

/* 1 when a frame stored at t has expired at now. */
static int expired(const sse_ring *r, double t, double now) {
  return now - t >= r->ttl;
}

size_t sse_ring_expire(sse_ring *r, double now) {
  size_t n = 0;
  if (!r) return 0;
  while (r->count && expired(r, r->slots[r->head]->time, now)) {
    pop_oldest(r);
    n++;
  }
  return n;
}

/* Grow the slot array to hold one more frame, unwrapping it so the oldest
 * frame is at 0. Returns 0 or SSE_RING_ENOMEM with the ring unchanged. */
static int grow(sse_ring *r) {
  size_t ncap = r->cap ? r->cap * 2 : RING_INITIAL_CAP;
  if (ncap > r->max_events) ncap = r->max_events;
  sse_frame **ns = malloc(ncap * sizeof *ns);
  if (!ns) return SSE_RING_ENOMEM;
  for (size_t i = 0; i < r->count; i++) {
    size_t j = r->head + i;
    if (j >= r->cap) j -= r->cap;
    ns[i] = r->slots[j];
  }
  for (size_t i = r->count; i < ncap; i++) ns[i] = NULL;
  free(r->slots);
  r->slots = ns;
  r->cap = ncap;
  r->head = 0;
  return 0;
}

int sse_ring_store(sse_ring *r, sse_frame *f, double now) {
  if (!r || !f || now != now) return SSE_RING_EINVAL;
  if (r->next_seq == UINT64_MAX) return SSE_RING_EOVERFLOW;
  int fits = f->len <= r->max_bytes;
  /* the only step that can fail comes first: room for one more slot */
  if (fits && r->count == r->cap && r->cap < r->max_events) {
    int rc = grow(r);
    if (rc) return rc;
  }
  sse_ring_expire(r, now);
  drop_joined(r); /* its range ends at the newest frame, which changes */
  if (!fits) {
    sse_ring_clear(r);
    f->seq = r->next_seq++;
    f->time = now;
    sse_frame_unref(f);
    return 0;
  }
  while (r->count && (r->count >= r->max_events ||
                      r->bytes + f->len > r->max_bytes))
    pop_oldest(r);
  /* here count < max_events, and count < cap: either the array had room, or
   * it grew above, or cap == max_events and the loop made room */
  size_t tail = r->head + r->count;
  if (tail >= r->cap) tail -= r->cap;
  f->seq = r->next_seq++;
  f->time = now;
  r->slots[tail] = f;
  r->count++;
  r->bytes += f->len;
  return 0;
}

sse_frame *sse_ring_joined(sse_ring *r, size_t index, size_t max_bytes) {
  if (index >= r->count || r->count - index < 2) return NULL;
  uint64_t from = sse_ring_first_seq(r) + index;
  if (r->joined && r->joined_from == from) return sse_frame_ref(r->joined);
  size_t total = 0;
  for (size_t i = index; i < r->count; i++) {
    total += sse_ring_frame_at(r, i)->len;
    if (total > max_bytes) return NULL;
  }
  sse_frame *j = sse_frame_alloc(total, NULL, 0);
  if (!j) return NULL;
  char *p = j->bytes;
  for (size_t i = index; i < r->count; i++) {
    const sse_frame *f = sse_ring_frame_at(r, i);
    memcpy(p, f->bytes, f->len);
    p += f->len;
  }
  j->seq = sse_ring_last_seq(r);
  j->time = sse_ring_frame_at(r, r->count - 1)->time;
  drop_joined(r);
  r->joined = sse_frame_ref(j);
  r->joined_from = from;
  return j;
}

const sse_frame *sse_ring_joined_cache(const sse_ring *r) { return r->joined; }

uint64_t sse_ring_next_seq(const sse_ring *r) { return r->next_seq; }
size_t sse_ring_len(const sse_ring *r) { return r->count; }
size_t sse_ring_bytes(const sse_ring *r) { return r->bytes; }
uint64_t sse_ring_first_seq(const sse_ring *r) { return r->next_seq - r->count; }
uint64_t sse_ring_last_seq(const sse_ring *r) { return r->next_seq - 1; }
size_t sse_ring_max_events(const sse_ring *r) { return r->max_events; }
size_t sse_ring_max_bytes(const sse_ring *r) { return r->max_bytes; }
double sse_ring_ttl(const sse_ring *r) { return r->ttl; }

const char *sse_ring_epoch(const sse_ring *r, size_t *len) {
  if (len) *len = r->epoch_len;
  return r->epoch;
}

sse_frame *sse_ring_frame_at(const sse_ring *r, size_t i) {
  if (i >= r->count) return NULL;
  size_t j = r->head + i;
  if (j >= r->cap) j -= r->cap;
  return r->slots[j];
}

int sse_ring_parse_id(const sse_ring *r, const char *id, size_t len,
                      uint64_t *seq) {
  if (!id) return SSE_RING_GAP_MALFORMED;
  const char *dash = memchr(id, '-', len);
  if (!dash) return SSE_RING_GAP_MALFORMED;
  size_t elen = (size_t)(dash - id);
  const char *digits = dash + 1;
  size_t dlen = len - elen - 1;
  if (!sse_ring_epoch_valid(id, elen)) return SSE_RING_GAP_MALFORMED;
  if (dlen == 0 || dlen > SSE_RING_SEQ_DIGITS) return SSE_RING_GAP_MALFORMED;
  if (digits[0] == '0' && dlen > 1) return SSE_RING_GAP_MALFORMED;
  uint64_t v = 0;
  for (size_t i = 0; i < dlen; i++) {
    int d = b36_digit(digits[i]);
    if (d < 0) return SSE_RING_GAP_MALFORMED;
    if (v > (UINT64_MAX - (uint64_t)d) / 36) return SSE_RING_GAP_MALFORMED;
    v = v * 36 + (uint64_t)d;
  }
  if (elen != r->epoch_len || memcmp(id, r->epoch, elen) != 0)
    return SSE_RING_GAP_EPOCH;
  *seq = v;
  return SSE_RING_FOUND;
}

int sse_ring_locate_seq(const sse_ring *r, uint64_t seq, size_t *index) {
  uint64_t first = sse_ring_first_seq(r), last = sse_ring_last_seq(r);
  *index = 0;
  if (seq > last) return SSE_RING_GAP_FUTURE;
  if (seq + 1 < first) return SSE_RING_GAP_EVICTED;
  *index = (size_t)(seq + 1 - first);
  return SSE_RING_FOUND;
}

int sse_ring_locate(const sse_ring *r, const char *id, size_t len,
                    size_t *index) {
  uint64_t seq = 0;
  int st = sse_ring_parse_id(r, id, len, &seq);
  if (st != SSE_RING_FOUND) {
    *index = 0;
    return st;
  }
  return sse_ring_locate_seq(r, seq, index);
}

size_t sse_ring_format_id(const sse_ring *r, uint64_t seq, char *buf,
                          size_t cap) {
  if (!buf || cap < SSE_RING_ID_CAP) return 0;
  memcpy(buf, r->epoch, r->epoch_len);
  buf[r->epoch_len] = '-';
  size_t n = r->epoch_len + 1 + b36_write(seq, buf + r->epoch_len + 1);
  buf[n] = '\0';
  return n;
}
