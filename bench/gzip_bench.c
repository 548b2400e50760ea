/* gzip_bench.c - what a compressed stream costs per subscriber (issue 14):
 * the memory of one gzip stream, the compression ratio and the CPU per
 * compressed delivery on JSON events, for several (level, window, memLevel)
 * settings, beside the uncompressed delivery (a reference to a shared frame:
 * no per-subscriber work before the write).
 *
 * Each subscriber has its own compressor (csrc/core/gzip.c) and receives
 * the same events; a delivery is one event compressed and sync-flushed (one
 * event per loop turn, the worst case) or a batch of 10 (a burst in one
 * turn). CPU time from clock(); the writes themselves are not included (they
 * cost the same per byte either way, and there are fewer bytes).
 *   GZIP_SUBS (200) subscribers, GZIP_EVENTS (2000) events each.
 * Run: make bench-gzip */
#include "gzip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int env_int(const char *name, int def) {
  const char *v = getenv(name);
  return v ? atoi(v) : def;
}

/* A JSON event like a dashboard's: ids, names, numbers, a nested array. */
static size_t make_event(char *buf, size_t cap, int i) {
  static const char *syms[] = {"ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK"};
  static const char *states[] = {"open", "filled", "partial", "cancelled"};
  int n = snprintf(buf, cap,
                   "event: order\nid: eb4t69smp8l3-%d\ndata: {\"order_id\":\"ord-%08d\",\"symbol\":\"%s\","
                   "\"side\":\"%s\",\"price\":%d.%02d,\"quantity\":%d,\"status\":\"%s\","
                   "\"trader\":{\"id\":%d,\"desk\":\"desk-%d\"},\"tags\":[\"equity\",\"%s\"],"
                   "\"ts\":%d}\n\n",
                   i, 1000000 + i * 7, syms[i % 6], i % 2 ? "buy" : "sell", 100 + (i * 37) % 900,
                   (i * 13) % 100, 1 + (i * 11) % 500, states[i % 4], 4000 + i % 97, i % 9,
                   i % 3 ? "intraday" : "overnight", 1700000000 + i);
  return (size_t)n;
}

typedef struct {
  int level, wbits, memlevel;
} setting;

static void run(const setting *st, int subs, int events, int batch, char **ev, size_t *evlen) {
  sse_gz **z = calloc((size_t)subs, sizeof *z);
  for (int s = 0; s < subs; s++) {
    z[s] = sse_gz_new(st->level, st->wbits, st->memlevel);
    if (!z[s]) {
      fprintf(stderr, "out of memory\n");
      exit(1);
    }
  }
  uint64_t in = 0, out = 0;
  size_t mem_max = 0;
  clock_t c0 = clock();
  for (int e = 0; e < events; e += batch) {
    int k = events - e < batch ? events - e : batch;
    for (int s = 0; s < subs; s++) {
      const char *outp;
      size_t olen;
      if (sse_gz_write(z[s], (const char *const *)&ev[e], &evlen[e], (size_t)k, &outp, &olen) != 0) {
        fprintf(stderr, "deflate failed\n");
        exit(1);
      }
      out += olen;
      sse_gz_consume(z[s], olen); /* "written" */
    }
    for (int i = 0; i < k; i++) in += evlen[e + i] * (uint64_t)subs;
  }
  double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
  for (int s = 0; s < subs; s++) {
    size_t m = sse_gz_memory(z[s]);
    if (m > mem_max) mem_max = m;
    sse_gz_free(z[s]);
  }
  free(z);
  double deliveries = (double)subs * events;
  printf("  level %d window %2d memLevel %d  batch %2d   %7.1f KiB/subscriber   ratio %5.2f (%4.1f%% of the bytes)"
         "   %6.2f us CPU per event delivered\n",
         st->level, st->wbits, st->memlevel, batch, mem_max / 1024.0, (double)in / (double)out,
         100.0 * (double)out / (double)in, cpu * 1e6 / deliveries);
  fflush(stdout);
}

int main(void) {
  int subs = env_int("GZIP_SUBS", 200), events = env_int("GZIP_EVENTS", 2000);
  char **ev = malloc((size_t)events * sizeof *ev);
  size_t *evlen = malloc((size_t)events * sizeof *evlen);
  uint64_t total = 0;
  for (int i = 0; i < events; i++) {
    ev[i] = malloc(512);
    evlen[i] = make_event(ev[i], 512, i);
    total += evlen[i];
  }
  printf("gzip bench: %d subscribers x %d JSON events of %.0f bytes on average (one compressor each)\n", subs,
         events, (double)total / events);
  printf("  uncompressed: the shared frame is queued by reference (~11 ns per subscriber, make bench-hub),"
         " ratio 1.00, 0 KiB per subscriber\n");
  static const setting settings[] = {
      {6, SSE_GZ_WINDOW_DEFAULT, SSE_GZ_MEMLEVEL_DEFAULT}, /* the default */
      {1, SSE_GZ_WINDOW_DEFAULT, SSE_GZ_MEMLEVEL_DEFAULT},
      {6, 9, 1},
      {6, 12, 5},
      {6, 10, 3},
      {6, 15, 8}, /* zlib's own default: 256 KiB of state */
      {9, 15, 9},
  };
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
    run(&settings[i], subs, events, 1, ev, evlen);
    run(&settings[i], subs, events, 10, ev, evlen);
  }
  for (int i = 0; i < events; i++) free(ev[i]);
  free(ev);
  free(evlen);
  return 0;
}
