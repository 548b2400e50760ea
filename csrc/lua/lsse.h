/* lsse.h - shared helpers of the Lua bindings (the only files that know Lua).
 * Each binding file adds its functions to the module table with lsse_open_*. */
#ifndef SSE_LSSE_H
#define SSE_LSSE_H

#include "compat.h"
#include "encode.h"
#include "frame.h"
#include "ring.h"

/* --- errors: one helper per direction (README "Error contract") ---------
 * Misuse raises "bad argument #arg to 'fname' (msg)" naming the Lua function
 * the user called, the same on Lua 5.4 and LuaJIT; a runtime condition
 * returns nil, msg [, code]. arg is the position the user sees (for a
 * method, 1 is the first argument after self; 0 means self itself:
 * "calling 'fname' on bad self (msg)"). fname NULL falls back to
 * luaL_argerror (arg is then a stack index and Lua guesses the name). */

/* Raises the argument error; fmt takes lua_pushfstring's formats (%s %d %f
 * %c %p %%). Never returns (the int is for `return lsse_argerror(...)`). */
int lsse_argerror(lua_State *L, int arg, const char *fname, const char *fmt, ...);

/* Raises "bad argument #arg to 'fname' (<expected> expected, got <type>)",
 * <type> being the type name of the value at stack index idx. */
int lsse_typeerror(lua_State *L, int arg, const char *fname, const char *expected, int idx);

/* luaL_testudata / luaL_checkudata without interning tname per call: the
 * registry also keeps each metatable under the light userdata tname (the C
 * string's address), found by one raw lookup. Same results and errors. */
void *lsse_testudata(lua_State *L, int idx, const char *tname);
void *lsse_checkudata(lua_State *L, int idx, const char *tname);

/* Reports bytes malloc'd for a Lua object to Lua's collector (a GC step
 * per KB gathered): it keeps pace with the memory the process holds. */
void lsse_gc_account(lua_State *L, size_t bytes);

/* Pushes the runtime-failure result: nil, msg, and code when code != 0 (a
 * negative C code). Returns the number of values pushed (2 or 3). */
int lsse_fail(lua_State *L, int code, const char *msg);

/* Reads the event at idx into ev by the one event rule (lua_encode.c): a
 * plain table or an sse.Event (fields table at [1]), read raw (no
 * metamethod runs); only id (string, or integer 0..SSE_ID_INT_MAX written in
 * decimal), event, data, comment (strings), retry (integer
 * 0..SSE_RETRY_MAX) and check_utf8 (boolean; *check_utf8 is 1 when absent).
 * Raises "bad argument #arg to 'fname' (...)" naming the field on misuse
 * (fname NULL: see lsse_argerror). Contents (line breaks, UTF-8) are checked
 * later by sse_encode_check. Pushes values that anchor ev's strings: keep
 * them (or lua_settop back) until ev is no longer used. */
void lsse_check_event(lua_State *L, int idx, int arg, const char *fname,
                      sse_event *ev, int *check_utf8);

/* Encodes a checked event into a new frame with one reference (topic NULL
 * for none). Raises "bad argument #arg to 'fname'" for a bad field, and on
 * ENOMEM; nothing is allocated when it raises. */
sse_frame *lsse_event_frame_as(lua_State *L, const sse_event *ev, int check_utf8, int arg,
                               const char *fname, const char *topic, size_t tlen);
/* The same with fname NULL (kept for existing callers). */
sse_frame *lsse_event_frame(lua_State *L, const sse_event *ev, int check_utf8, int arg,
                            const char *topic, size_t tlen);

/* Raises "bad argument #arg to 'fname'" for a failed sse_encode_check(). */
int lsse_encode_error(lua_State *L, int arg, const char *fname,
                      const sse_encode_err *err);

/* Stores the event at ev_idx in the sse.Ring at ring_idx under the next id
 * (errors name argument `arg`), pushes the id and returns the stored frame
 * with one reference for the caller (the ring may already have evicted it).
 * Returns NULL, pushing nothing, when the ring is closed. Raises on misuse. */
sse_frame *lsse_ring_store(lua_State *L, int ring_idx, int ev_idx, int arg,
                           const char *fname, const char *topic, size_t tlen);

/* The ring of the sse.Ring at ring_idx, with *now read from its clock (a Lua
 * clock runs: the caller looks its other arguments up afterwards); NULL when
 * the ring is closed (also when the clock closed it). Raises when ring_idx is
 * not an sse.Ring. The ring stays the userdata's: borrow it for one call. */
sse_ring *lsse_ring_get(lua_State *L, int ring_idx, double *now);

void lsse_open_encode(lua_State *L);
void lsse_open_ring(lua_State *L);
void lsse_open_hub(lua_State *L);
void lsse_open_parse(lua_State *L);
void lsse_open_http(lua_State *L);
void lsse_open_resp(lua_State *L);

#endif
