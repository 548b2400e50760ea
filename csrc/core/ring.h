/* ring.h - the replay window: a bounded ring of stored frames. Plain C, no Lua.
 *
 * The ring holds references to the most recent frames, oldest first, bounded
 * by a count (max_events), a byte budget (sum of frame->len, the wire bytes)
 * and an age (ttl seconds against the caller's monotonic clock). Every stored
 * frame gets the next sequence number (1, 2, 3, ...); numbers are never
 * reused, and the frames in the ring always carry the contiguous numbers
 * first_seq .. last_seq, so finding the frame after a client's Last-Event-ID
 * is arithmetic (O(1)), not a search.
 *
 * Ids on the wire are "<epoch>-<seq in base36>", e.g. "m3k2q9x1fz-1a". The
 * epoch names one ring instance (one run of the process): an id from another
 * epoch is never mistaken for one of this run. Seq 0 ("<epoch>-0") is the
 * position before the first event.
 *
 * Expiry is lazy: the caller passes `now` to sse_ring_store() and calls
 * sse_ring_expire() before a replay; an idle ring does no work.
 * The slot array grows by doubling up to max_events; storing allocates
 * nothing else. Not thread-safe: a ring belongs to one Lua state / loop. */
#ifndef SSE_RING_H
#define SSE_RING_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

typedef struct sse_ring sse_ring;

/* Limits on the options (inclusive). */
#define SSE_RING_MAX_EVENTS  1073741824u /* 2^30 */
#define SSE_RING_EPOCH_MAX   32          /* epoch: 1..32 chars of [0-9A-Za-z_] */
#define SSE_RING_SEQ_DIGITS  13          /* base36 digits of a uint64 */
/* Longest id: epoch, '-', seq digits; a buffer of SSE_RING_ID_CAP fits it
 * with the terminating NUL. */
#define SSE_RING_ID_CAP      (SSE_RING_EPOCH_MAX + 1 + SSE_RING_SEQ_DIGITS + 1)
/* Default epoch length from sse_ring_default_epoch(). */
#define SSE_RING_DEFAULT_EPOCH_CAP 16

/* Error codes (negative) of the functions that change the ring. */
enum {
  SSE_RING_EINVAL = -1,   /* bad argument; nothing changed */
  SSE_RING_ENOMEM = -2,   /* out of memory; nothing changed */
  SSE_RING_EOVERFLOW = -3 /* sequence numbers exhausted; nothing changed */
};

/* Status of sse_ring_locate(): OK, or one of the gap reasons (all > 0). On
 * every gap the index is 0: replay what the ring still has. */
enum {
  SSE_RING_FOUND = 0,        /* replay from the index: nothing was missed */
  SSE_RING_GAP_EVICTED = 1,  /* this run's id, but events after it are gone */
  SSE_RING_GAP_EPOCH = 2,    /* well-formed id of another epoch (earlier run) */
  SSE_RING_GAP_MALFORMED = 3,/* not an id this library writes */
  SSE_RING_GAP_FUTURE = 4    /* this epoch, but a seq not issued yet */
};

/* New empty ring. epoch: 1..SSE_RING_EPOCH_MAX bytes of [0-9A-Za-z_] (copied);
 * max_events in 1..SSE_RING_MAX_EVENTS; max_bytes >= 1; ttl > 0 seconds (may
 * be +infinity for no age limit; NaN is refused). Returns NULL on a bad
 * argument or when out of memory; the caller owns the ring (sse_ring_free). */
sse_ring *sse_ring_new(const char *epoch, size_t epoch_len, size_t max_events,
                       size_t max_bytes, double ttl);

/* Release every frame reference and the ring itself. NULL is a no-op. */
void sse_ring_free(sse_ring *r);

/* 1 when epoch[0..len) is a valid epoch (see sse_ring_new), else 0. */
int sse_ring_epoch_valid(const char *epoch, size_t len);

/* Write a fresh epoch into buf (cap >= SSE_RING_DEFAULT_EPOCH_CAP): base36 of
 * the wall-clock time in ms followed by 20 random bits (12 characters today),
 * so two runs, processes or rings almost surely differ. Returns its length,
 * NUL-terminated; 0 (buf untouched) when cap is too small. */
size_t sse_ring_default_epoch(char *buf, size_t cap);

/* Store f, taking over the caller's one reference on success: first drop
 * frames aged >= ttl at `now`, then evict the oldest frames until f fits
 * max_events and max_bytes, then append f with f->seq = the next sequence
 * number and f->time = now. A frame larger than max_bytes by itself still
 * consumes its number but is released at once, with every older frame (no
 * client can then replay past it without a gap). Returns 0, or a negative
 * code with nothing changed and the reference still the caller's. */
int sse_ring_store(sse_ring *r, sse_frame *f, double now);

/* The sequence number the next sse_ring_store() will assign (so a caller can
 * encode the id into the frame first). */
uint64_t sse_ring_next_seq(const sse_ring *r);

/* Drop frames aged >= ttl at `now` (oldest first, stopping at the first
 * frame still young). Returns how many were dropped. */
size_t sse_ring_expire(sse_ring *r, double now);

/* Release every frame. Sequence numbers continue (ids stay unique), so an
 * id issued before the clear now locates as a gap. */
void sse_ring_clear(sse_ring *r);

/* Frames held / sum of their wire bytes. */
size_t sse_ring_len(const sse_ring *r);
size_t sse_ring_bytes(const sse_ring *r);

/* Seq of the oldest frame held (when empty: the next seq to be assigned)
 * and of the newest frame ever stored (0 before the first store). The ring
 * holds exactly first_seq .. last_seq; it is empty when first > last. */
uint64_t sse_ring_first_seq(const sse_ring *r);
uint64_t sse_ring_last_seq(const sse_ring *r);

/* The i-th frame held, oldest first (i < len), borrowed: valid until the
 * next store/expire/clear/free; sse_frame_ref() it to keep it longer.
 * NULL when i is out of range. */
sse_frame *sse_ring_frame_at(const sse_ring *r, size_t i);

/* The held frames from index to the newest as ONE frame (their wire bytes
 * back to back; no topic, seq = the newest's): a new reference, or NULL when
 * fewer than 2 frames are there, they add up to more than max_bytes, or out
 * of memory (the caller then replays frame by frame). A replay sends it as
 * one write segment instead of one per event. The last one made is cached
 * until the next store, so clients resuming from the same place share one
 * copy: the cache holds at most max_bytes beside the frames themselves. */
sse_frame *sse_ring_joined(sse_ring *r, size_t index, size_t max_bytes);
/* The cached joined frame (borrowed; it holds one reference of the ring's),
 * or NULL: for reference accounting in tests. */
const sse_frame *sse_ring_joined_cache(const sse_ring *r);

/* Parse an id of this ring into *seq. Returns SSE_RING_FOUND with *seq set
 * when the id has this ring's epoch and a canonical base36 seq (no leading
 * zeros, fits 64 bits), SSE_RING_GAP_EPOCH for a well-formed id of another
 * epoch, SSE_RING_GAP_MALFORMED otherwise. Does not look at the window. */
int sse_ring_parse_id(const sse_ring *r, const char *id, size_t len,
                      uint64_t *seq);

/* Where to resume after seq: *index = how many held frames are <= seq.
 * Returns SSE_RING_FOUND when nothing after seq was lost (first_seq - 1 <=
 * seq <= last_seq), SSE_RING_GAP_EVICTED when seq < first_seq - 1,
 * SSE_RING_GAP_FUTURE when seq > last_seq; *index is 0 on a gap. */
int sse_ring_locate_seq(const sse_ring *r, uint64_t seq, size_t *index);

/* sse_ring_parse_id() then sse_ring_locate_seq(): the index of the first held
 * frame after the id (len when the client is up to date), and the status. */
int sse_ring_locate(const sse_ring *r, const char *id, size_t len,
                    size_t *index);

/* Write the id of seq into buf (NUL-terminated). Returns its length, or 0
 * when cap < SSE_RING_ID_CAP (buf untouched). */
size_t sse_ring_format_id(const sse_ring *r, uint64_t seq, char *buf,
                          size_t cap);

/* The ring's epoch (NUL-terminated, owned by the ring) and its length. */
const char *sse_ring_epoch(const sse_ring *r, size_t *len);

/* The limits the ring was created with. */
size_t sse_ring_max_events(const sse_ring *r);
size_t sse_ring_max_bytes(const sse_ring *r);
double sse_ring_ttl(const sse_ring *r);

#endif
