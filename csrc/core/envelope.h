/* envelope.h - the envelope (multiplexed) form of a frame. Plain C, no Lua.
 *
 * In envelope mode a subscriber receives every event under one fixed event
 * name, with the event's topic, type and data in a JSON object, and the
 * event's own id:
 *
 *   event: headline            event: sse
 *   id: ep-7             ==>   id: ep-7
 *   data: two                  data: {"topic":"news","event":"headline","data":"two\nlines"}
 *   data: lines
 *
 * "topic" is the frame's topic (null when it has none), "event" the type a
 * browser would dispatch ("message" when the block names none), "data" the
 * data a browser would see, always as a JSON string: the publisher's text
 * exactly (its lines joined with LF; bytes that are not UTF-8 become U+FFFD
 * as a browser decodes them). Comment and retry lines stay as they were;
 * blocks without data (keep-alive comments, a retry alone) are copied
 * unchanged. So a client that follows the envelope sees the same events, ids
 * and reconnection times as one that reads the plain stream.
 *
 * A frame gets its envelope twin once (sse_frame_envelope): every envelope
 * subscriber, and every replay of a stored frame, shares that one copy. */
#ifndef SSE_ENVELOPE_H
#define SSE_ENVELOPE_H

#include <stddef.h>

#include "frame.h"

/* The fixed event name of envelope mode. */
#define SSE_ENVELOPE_EVENT "sse"

/* The envelope form of the wire bytes b[0..n) of a frame with this topic
 * (topic NULL: null), written to out (NULL: only measured). Returns its
 * length. Never fails; the bytes need not be well-formed. */
size_t sse_envelope_write(char *out, const char *b, size_t n, const char *topic,
                          size_t topic_len);

/* 1 when the bytes hold a block with data (their envelope differs), else 0. */
int sse_envelope_needed(const char *b, size_t n);

/* The envelope twin of f, borrowed (f keeps the reference; sse_frame_ref it
 * to queue it). f itself when f is an envelope already or its envelope is
 * the same bytes (no data in it). The twin carries f's seq and time. NULL
 * when out of memory (f unchanged; a later call tries again). */
sse_frame *sse_frame_envelope(sse_frame *f);

/* A JSON string literal of p[0..n) into out + *pos (out NULL: only counts):
 * quote, backslash and control characters escaped (DEL too); each maximal
 * ill-formed UTF-8 subpart becomes one U+FFFD, as a WHATWG decoder shows it.
 * p NULL writes null. */
void sse_json_string(char *out, size_t *pos, const char *p, size_t n);

#endif
