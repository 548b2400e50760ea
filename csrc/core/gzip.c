/* gzip.c - one subscriber's gzip stream (gzip.h). */
#include "gzip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct sse_gz {
  z_stream zs;
  char *buf;          /* output: pending bytes are buf[off .. len) */
  size_t cap, off, len;
  size_t zmem;        /* bytes zlib holds (its allocations, counted) */
  uint64_t total_in, total_out;
  int broken;         /* a zlib error: no more output */
  int finished;       /* the member is ended (sse_gz_finish): no more input */
};

/* zlib's allocations go through these to be counted; each block keeps its
 * size in front of it. */
typedef union {
  size_t n;
  long double ld; void *p; long long ll;
} gz_head;

static voidpf gz_alloc(voidpf opaque, uInt items, uInt size) {
  sse_gz *z = opaque;
  size_t n = (size_t)items * size;
  gz_head *h = malloc(sizeof *h + n);
  if (!h) return Z_NULL;
  h->n = n;
  z->zmem += n;
  return h + 1;
}

static void gz_free_block(voidpf opaque, voidpf p) {
  sse_gz *z = opaque;
  if (!p) return;
  gz_head *h = (gz_head *)p - 1;
  z->zmem -= h->n;
  free(h);
}

int sse_gz_check(int level, int window_bits, int mem_level, const char **which) {
  if (level < 0 || level > 9) return *which = "level", -1;
  if (window_bits < SSE_GZ_WINDOW_MIN || window_bits > SSE_GZ_WINDOW_MAX) return *which = "window_bits", -1;
  if (mem_level < SSE_GZ_MEMLEVEL_MIN || mem_level > SSE_GZ_MEMLEVEL_MAX) return *which = "mem_level", -1;
  return 0;
}

sse_gz *sse_gz_new(int level, int window_bits, int mem_level) {
  const char *which;
  if (sse_gz_check(level, window_bits, mem_level, &which) != 0) return NULL;
  sse_gz *z = calloc(1, sizeof *z);
  if (!z) return NULL;
  z->zs.zalloc = gz_alloc;
  z->zs.zfree = gz_free_block;
  z->zs.opaque = z;
  /* 16 + window bits: the gzip wrapper (RFC 1952), what Content-Encoding:
   * gzip means; zlib refuses window 8 with it, hence the minimum of 9 */
  if (deflateInit2(&z->zs, level, Z_DEFLATED, 16 + window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    free(z);
    return NULL;
  }
  return z;
}

/* Room for at least need more output bytes; 0 or -1 (unchanged) on ENOMEM. */
static int reserve(sse_gz *z, size_t need) {
  if (z->off > 0 && z->off == z->len) z->off = z->len = 0;
  if (z->cap - z->len >= need) return 0;
  if (z->off > 0) { /* pending bytes to the front first */
    memmove(z->buf, z->buf + z->off, z->len - z->off);
    z->len -= z->off;
    z->off = 0;
    if (z->cap - z->len >= need) return 0;
  }
  size_t cap = z->cap ? z->cap : 1024;
  while (cap - z->len < need) cap *= 2;
  char *b = realloc(z->buf, cap);
  if (!b) return -1;
  z->buf = b;
  z->cap = cap;
  return 0;
}

/* Runs deflate with flush until it has taken all input (and, for a sync
 * flush, written everything out). 0 or -1. */
static int run(sse_gz *z, int flush) {
  for (;;) {
    if (reserve(z, 256 + z->zs.avail_in / 2) != 0) return -1;
    z->zs.next_out = (Bytef *)z->buf + z->len;
    z->zs.avail_out = (uInt)(z->cap - z->len);
    uInt before = z->zs.avail_out;
    int rc = deflate(&z->zs, flush);
    z->len += before - z->zs.avail_out;
    if (rc == Z_STREAM_ERROR) return -1;
    /* done: the input is taken and, flushing, there was room left over */
    if (z->zs.avail_in == 0 && (flush == Z_NO_FLUSH || z->zs.avail_out > 0)) return 0;
  }
}

int sse_gz_write(sse_gz *z, const char *const *p, const size_t *len, size_t n, const char **out,
                 size_t *out_len) {
  if (z->broken || z->finished) return -1;
  size_t start = z->len - z->off;
  for (size_t i = 0; i < n; i++) {
    const char *q = p[i];
    size_t left = len[i];
    while (left > 0) { /* avail_in is a uInt */
      uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
      z->zs.next_in = (Bytef *)(uintptr_t)q;
      z->zs.avail_in = chunk;
      if (run(z, Z_NO_FLUSH) != 0) goto fail;
      q += chunk;
      left -= chunk;
      z->total_in += chunk;
    }
  }
  z->zs.next_in = Z_NULL;
  z->zs.avail_in = 0;
  if (run(z, Z_SYNC_FLUSH) != 0) goto fail;
  z->total_out += (z->len - z->off) - start;
  *out = z->buf + z->off;
  *out_len = z->len - z->off;
  return 0;
fail:
  z->broken = 1;
  return -1;
}

int sse_gz_finish(sse_gz *z) {
  if (z->finished) return 0;
  if (z->broken) return -1;
  size_t start = z->len - z->off;
  z->zs.next_in = Z_NULL;
  z->zs.avail_in = 0;
  for (;;) {
    if (reserve(z, 64) != 0) goto fail;
    z->zs.next_out = (Bytef *)z->buf + z->len;
    z->zs.avail_out = (uInt)(z->cap - z->len);
    uInt before = z->zs.avail_out;
    int rc = deflate(&z->zs, Z_FINISH);
    z->len += before - z->zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) goto fail;
  }
  z->finished = 1;
  z->total_out += (z->len - z->off) - start;
  return 0;
fail:
  z->broken = 1;
  return -1;
}

int sse_gz_finished(const sse_gz *z) { return z->finished; }

size_t sse_gz_pending(const sse_gz *z) { return z->len - z->off; }
const char *sse_gz_data(const sse_gz *z) { return z->buf + z->off; }

void sse_gz_consume(sse_gz *z, size_t n) {
  z->off += n;
  if (z->off == z->len) z->off = z->len = 0;
}

size_t sse_gz_memory(const sse_gz *z) { return sizeof *z + z->zmem + z->cap; }

void sse_gz_totals(const sse_gz *z, uint64_t *in, uint64_t *out) {
  *in = z->total_in;
  *out = z->total_out;
}

void sse_gz_free(sse_gz *z) {
  if (!z) return;
  deflateEnd(&z->zs);
  free(z->buf);
  free(z);
}
