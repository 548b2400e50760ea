/* sse_limits.h - the fixed limits of the encoder, in one place (not "limits.h",
 * which would shadow the C library header). Plain C, no Lua.
 * Each may be overridden at build time (make CFLAGS='-O2 -DSSE_SCRATCH_KEEP=...');
 * sse.core.limits exports them to Lua, so docs and checks read one number. */
#ifndef SSE_LIMITS_H
#define SSE_LIMITS_H

/* The largest integer every Lua holds exactly (2^53 - 1: LuaJIT numbers are
 * doubles). Integers the library accepts from Lua stay within it, so a value
 * means the same on Lua 5.4 and LuaJIT. */
#ifndef SSE_INT_EXACT_MAX
#define SSE_INT_EXACT_MAX 9007199254740991LL
#endif

/* retry: an integer number of milliseconds, 0 .. SSE_RETRY_MAX. */
#ifndef SSE_RETRY_MAX
#define SSE_RETRY_MAX SSE_INT_EXACT_MAX
#endif

/* id given as a number: an integer 0 .. SSE_ID_INT_MAX, written in decimal. */
#ifndef SSE_ID_INT_MAX
#define SSE_ID_INT_MAX SSE_INT_EXACT_MAX
#endif

/* Encodings up to this size are built on the C stack. */
#ifndef SSE_ENCODE_STACK_BYTES
#define SSE_ENCODE_STACK_BYTES 1024
#endif

/* Larger ones in a scratch buffer owned by the module, reused across calls;
 * after a call it is given back when it grew past this many bytes, so one
 * huge event does not pin its size. */
#ifndef SSE_SCRATCH_KEEP
#define SSE_SCRATCH_KEEP (4u * 1024u * 1024u)
#endif

#endif
