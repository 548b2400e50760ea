/* topic_mem.c - what a topic costs in the C hub (no sockets, no Lua): heap
 * bytes per topic and per extra subscription, measured with mallinfo2, and
 * whether the memory comes back when the topics empty. The figure behind
 * the demo hub's --max-topics bound (issue 13).
 *
 *   make bench-topics     (TOPIC_MEM_N=100000 topics by default)
 *
 * Three rounds, each in a fresh hub:
 *   topics      N topics, one subscriber each (one pull subscriber per
 *               topic, so the figure includes a membership per topic)
 *   members     one topic, N subscribers: the cost of one more subscription
 *   names       N topics named with 128 bytes (the longest the demo allows)
 * then every subscriber unsubscribes: what is left is the bucket array. */
#include "hub.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t heap_in_use(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

static long env_long(const char *name, long def) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : def;
}

/* Round: n subscribers, subscriber i to topic (i % ntopics) named with
 * name_len bytes. Prints bytes per subscription beyond the subscribers
 * themselves, and what stays after everyone unsubscribed. */
static int round_of(const char *label, long n, long ntopics, int name_len) {
  sse_hub *h = sse_hub_new();
  sse_sub **subs = malloc((size_t)n * sizeof *subs);
  if (!h || !subs) return 1;
  for (long i = 0; i < n; i++) {
    subs[i] = sse_sub_new(NULL, 256 * 1024, SSE_SLOW_CLOSE);
    if (!subs[i] || sse_hub_add(h, subs[i], &(uint32_t){0}) != 0) return 1;
  }
  size_t before = heap_in_use();
  char name[160];
  for (long i = 0; i < n; i++) {
    int len = snprintf(name, sizeof name, "t/%0*ld", name_len - 2, i % ntopics);
    if (sse_hub_subscribe(subs[i], name, (size_t)len) != 1) return 1;
  }
  size_t after = heap_in_use();
  if ((long)sse_hub_topics(h) != ntopics) return 1;
  for (long i = 0; i < n; i++) {
    int len = snprintf(name, sizeof name, "t/%0*ld", name_len - 2, i % ntopics);
    if (sse_hub_unsubscribe(subs[i], name, (size_t)len) != 1) return 1;
  }
  size_t emptied = heap_in_use();
  if (ntopics == n)
    printf("a new topic (%3d-byte name, its first subscription included): %6.1f B\n", name_len,
           (double)(after - before) / (double)n);
  else
    printf("one more subscription to an existing topic:                 %6.1f B\n",
           (double)(after - before) / (double)n);
  printf("  %s: after every subscriber left, %zu topics and %zu B remain (the bucket array)\n",
         label, sse_hub_topics(h), emptied > before ? emptied - before : 0);
  for (long i = 0; i < n; i++) sse_sub_free(subs[i]);
  free(subs);
  sse_hub_free(h);
  return 0;
}

int main(void) {
  long n = env_long("TOPIC_MEM_N", 100000);
  if (n < 1) {
    fprintf(stderr, "topic_mem: TOPIC_MEM_N must be >= 1\n");
    return 2;
  }
  printf("topic_mem: C hub heap (mallinfo2), %ld subscriptions per round\n", n);
  if (round_of("topics", n, n, 16) || round_of("members", n, 1, 16) ||
      round_of("names", n, n, 128)) {
    fprintf(stderr, "topic_mem: a hub call failed\n");
    return 1;
  }
  return 0;
}
