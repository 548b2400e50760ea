/* frame.c - refcounted, immutable encoded events (see frame.h). */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

sse_frame *sse_frame_alloc(size_t len, const char *topic, size_t topic_len) {
  if (len > SIZE_MAX - sizeof(sse_frame) - topic_len - 1 || topic_len > UINT32_MAX)
    return NULL;
  sse_frame *f = malloc(sizeof(sse_frame) + len + topic_len + 1);
  if (!f) return NULL;
  f->refs = 1;
  f->seq = 0;
  f->time = 0;
  f->twin = NULL;
  f->len = len;
  f->topic_len = (uint32_t)topic_len;
  char *t = f->bytes + len;
  if (topic) {
    memcpy(t, topic, topic_len);
    t[topic_len] = '\0';
    f->topic = t;
  } else {
    t[0] = '\0';
    f->topic = NULL;
  }
  return f;
}

sse_frame *sse_frame_new(const char *bytes, size_t len, const char *topic,
                         size_t topic_len) {
  sse_frame *f = sse_frame_alloc(len, topic, topic_len);
  if (f && len) memcpy(f->bytes, bytes, len);
  return f;
}

void sse_frame_unref(sse_frame *f) {
  if (!f || --f->refs != 0) return;
  if (f->twin && f->twin != f) sse_frame_unref(f->twin);
  free(f);
}
