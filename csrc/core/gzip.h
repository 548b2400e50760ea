/* gzip.h - one subscriber's gzip stream (zlib deflate with the gzip
 * wrapper), flushed with Z_SYNC_FLUSH after each batch so that every event
 * written so far can be decoded by the client at once. Plain C + zlib, no
 * Lua, no libuv.
 *
 * Memory is bounded by the options: zlib's deflate state takes about
 * (1 << (window_bits + 2)) + (1 << (mem_level + 9)) bytes plus ~6 KiB;
 * sse_gz_memory() reports what this stream really allocated. The output
 * buffer is owned by the stream and reused. */
#ifndef SSE_GZIP_H
#define SSE_GZIP_H

#include <stddef.h>
#include <stdint.h>

/* Option bounds (zlib's: window 9..15, memLevel 1..9, level 0..9). */
#define SSE_GZ_LEVEL_DEFAULT 6
#define SSE_GZ_WINDOW_DEFAULT 11  /* 2 KiB of history: several JSON events */
#define SSE_GZ_MEMLEVEL_DEFAULT 4
#define SSE_GZ_WINDOW_MIN 9
#define SSE_GZ_WINDOW_MAX 15
#define SSE_GZ_MEMLEVEL_MIN 1
#define SSE_GZ_MEMLEVEL_MAX 9

typedef struct sse_gz sse_gz;

/* A new gzip stream; NULL when out of memory or an option is out of range
 * (check them first: sse_gz_check). */
sse_gz *sse_gz_new(int level, int window_bits, int mem_level);

/* 0 when the options are valid, else -1 with *which naming the bad one
 * ("level", "window_bits", "mem_level"). */
int sse_gz_check(int level, int window_bits, int mem_level, const char **which);

/* Compresses n input pieces (p[i], len[i]) and sync-flushes. The output is
 * appended to the stream's buffer; *out and *out_len give the whole pending
 * output (the caller consumes it with sse_gz_consume). Returns 0, or -1 on
 * ENOMEM / a zlib error (the stream is then unusable: close the subscriber). */
int sse_gz_write(sse_gz *z, const char *const *p, const size_t *len, size_t n, const char **out,
                 size_t *out_len);

/* Ends the gzip member (Z_FINISH): what is buffered and the trailer (CRC
 * and length) become pending output; no input is taken afterwards. 0
 * (also when already finished) or -1 (zlib failed: out of memory). */
int sse_gz_finish(sse_gz *z);
int sse_gz_finished(const sse_gz *z);

/* Pending compressed bytes (written by sse_gz_write, not yet consumed). */
size_t sse_gz_pending(const sse_gz *z);
const char *sse_gz_data(const sse_gz *z);

/* Marks n pending bytes as written (n <= pending). */
void sse_gz_consume(sse_gz *z, size_t n);

/* Bytes zlib allocated for this stream plus its output buffer. */
size_t sse_gz_memory(const sse_gz *z);

/* Input and output byte totals, for the compression ratio. */
void sse_gz_totals(const sse_gz *z, uint64_t *in, uint64_t *out);

/* Frees z (NULL is a no-op). */
void sse_gz_free(sse_gz *z);

#endif
