/* hub_sim.c - the C hub alone (no sockets, no Lua) with a million simulated
 * subscribers: nanoseconds per subscriber per broadcast, and bytes of hub
 * state per subscriber. The figure that tells what one process could hold
 * on a bigger machine.
 *
 *   make bench-hub        (HUB_SIM_N=1000000 HUB_SIM_EVENTS=20 by default)
 *
 * Subscribers are "pull" subscribers (no transport): a broadcast queues a
 * frame reference on each; a drain pass then empties every outbox, as a
 * flush would after the socket writes. */
#include "hub.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t heap_in_use(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

static long env_long(const char *name, long def) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : def;
}

int main(void) {
  long n = env_long("HUB_SIM_N", 1000000);
  long events = env_long("HUB_SIM_EVENTS", 20);
  long topics = env_long("HUB_SIM_TOPICS", 100);
  if (n < 1 || events < 1 || topics < 1) {
    fprintf(stderr, "hub_sim: HUB_SIM_N, HUB_SIM_EVENTS and HUB_SIM_TOPICS must be >= 1\n");
    return 2;
  }

  size_t heap0 = heap_in_use();
  sse_hub *h = sse_hub_new();
  sse_sub **subs = malloc((size_t)n * sizeof *subs);
  if (!h || !subs) return 1;
  size_t heap_arr = heap_in_use();
  double t0 = now_s();
  char name[32];
  for (long i = 0; i < n; i++) {
    subs[i] = sse_sub_new(NULL, 256 * 1024, SSE_SLOW_CLOSE);
    if (!subs[i] || sse_hub_add(h, subs[i], &(uint32_t){0}) != 0) return 1;
    int len = snprintf(name, sizeof name, "topic-%ld", i % topics);
    if (sse_hub_subscribe(subs[i], name, (size_t)len) < 0) return 1;
  }
  double t_setup = now_s() - t0;
  size_t heap1 = heap_in_use();
  double per_sub = (double)(heap1 - heap_arr) / (double)n;

  const char *payload = "data: {\"seq\":1,\"t\":1700000000123,\"pad\":\"xxxxxxxx\"}\n\n";
  sse_frame *f = sse_frame_new(payload, strlen(payload), NULL, 0);

  /* broadcast to everyone, then drain every outbox (what a flush does) */
  double t_pub = 0, t_drain = 0;
  char buf[4096];
  for (long e = 0; e < events; e++) {
    double a = now_s();
    size_t got = sse_hub_publish(h, f, NULL, 0, 0);
    double b = now_s();
    if (got != (size_t)n) {
      fprintf(stderr, "hub_sim: broadcast reached %zu of %ld\n", got, n);
      return 1;
    }
    sse_hub_flush(h, 0);
    sse_sub *s;
    while ((s = sse_hub_next_ready(h)) != NULL) sse_sub_take(s, buf);
    t_pub += b - a;
    t_drain += now_s() - b;
  }
  /* the same with a burst: `events` broadcasts queued before one drain */
  double a = now_s();
  for (long e = 0; e < events; e++) sse_hub_publish(h, f, NULL, 0, 0);
  double b = now_s();
  size_t peak = heap_in_use();
  sse_hub_flush(h, 0);
  sse_sub *s;
  while ((s = sse_hub_next_ready(h)) != NULL) sse_sub_take(s, buf);
  double burst_pub = b - a, burst_drain = now_s() - b;

  /* a topic broadcast reaches n / topics subscribers */
  a = now_s();
  size_t reached = 0;
  for (long e = 0; e < events; e++) {
    int len = snprintf(name, sizeof name, "topic-%ld", e % topics);
    reached += sse_hub_publish(h, f, name, (size_t)len, 0);
  }
  double topic_pub = now_s() - a;
  sse_hub_flush(h, 0);
  while ((s = sse_hub_next_ready(h)) != NULL) sse_sub_take(s, buf);

  double deliveries = (double)n * (double)events;
  printf("hub_sim: %ld subscribers (%ld topics, one each), %ld events, %zu-byte frame\n", n, topics,
         events, strlen(payload));
  printf("  setup: %.2f s (%.0f ns per subscribe)\n", t_setup, t_setup * 1e9 / (double)n);
  printf("  hub state per subscriber: %.0f B (sub, topic membership, list links; heap %.1f MB)\n",
         per_sub, (double)(heap1 - heap0) / 1e6);
  printf("  broadcast, one event at a time: %.2f ns per subscriber to queue, %.2f ns to drain\n",
         t_pub * 1e9 / deliveries, t_drain * 1e9 / deliveries);
  printf("  burst of %ld then one drain:     %.2f ns per subscriber per event to queue, %.2f ns to drain;"
         " outboxes at peak +%.1f MB\n",
         events, burst_pub * 1e9 / deliveries, burst_drain * 1e9 / deliveries,
         (double)(peak - heap1) / 1e6);
  printf("  topic broadcast: %.2f ns per reached subscriber (%zu reached)\n",
         topic_pub * 1e9 / (double)(reached ? reached : 1), reached);
  printf("  => %.1f M deliveries/s queued by one core\n", deliveries / t_pub / 1e6);

  for (long i = 0; i < n; i++) sse_sub_free(subs[i]);
  sse_hub_free(h);
  sse_frame_unref(f);
  free(subs);
  return 0;
}
