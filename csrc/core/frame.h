/* frame.h - an encoded event stored once and shared by reference.
 *
 * A frame is immutable after sse_frame_new(): the ring buffer and every
 * subscriber outbox hold references to the same bytes. One malloc per frame
 * (header, wire bytes and topic in one block); freed when the last reference
 * is released. Not thread-safe: a frame belongs to one Lua state / loop. */
#ifndef SSE_FRAME_H
#define SSE_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef struct sse_frame {
  uint32_t refs;
  uint32_t topic_len;
  uint64_t seq;        /* replayer sequence number; 0 when not stored */
  double time;         /* monotonic seconds when stored (for TTL) */
  size_t len;          /* wire bytes */
  const char *topic;   /* points into the same block; NULL when no topic */
  /* the envelope form (envelope.h), made once on demand and owned by this
   * frame: NULL until then; the frame itself when both forms are the same
   * bytes (no reference then). The only field set after sharing: a cache */
  struct sse_frame *twin;
  char bytes[];        /* len wire bytes, then topic_len topic bytes + NUL */
} sse_frame;

/* New frame with one reference, copying len bytes and the optional topic
 * (topic NULL for none). Returns NULL when out of memory. */
sse_frame *sse_frame_new(const char *bytes, size_t len, const char *topic,
                         size_t topic_len);

/* New frame with one reference and room for len wire bytes that the caller
 * fills in through f->bytes before sharing it (how the encoder avoids a
 * copy). Returns NULL when out of memory. */
sse_frame *sse_frame_alloc(size_t len, const char *topic, size_t topic_len);

static inline sse_frame *sse_frame_ref(sse_frame *f) { f->refs++; return f; }

/* Drop one reference; frees the frame (and its twin's reference) when it was
 * the last. NULL is a no-op. */
void sse_frame_unref(sse_frame *f);

/* Bytes of memory a frame of this shape occupies (for byte accounting). */
static inline size_t sse_frame_footprint(const sse_frame *f) {
  return sizeof(sse_frame) + f->len + f->topic_len + 1;
}

#endif
