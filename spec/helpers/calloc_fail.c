/* calloc_fail.c - an LD_PRELOAD shim for spec/listen_spec.lua: calloc
 * returns NULL while the file named by SSE_CALLOC_FAIL exists, so a child
 * process can run out of memory on the accept path and recover. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

void *calloc(size_t n, size_t size);

static void *(*real_calloc)(size_t, size_t);

/* dlsym may itself ask for zeroed memory before real_calloc is known: a
 * small static arena answers it (never freed: dlsym keeps what it asks for) */
static unsigned char arena[1024];
static size_t arena_used;

void *calloc(size_t n, size_t size) {
  if (!real_calloc) {
    static int resolving;
    if (resolving) {
      size_t want = (n * size + 15) & ~(size_t)15;
      if (size && n > (size_t)-1 / size) return NULL;
      if (want > sizeof arena - arena_used) return NULL;
      void *p = arena + arena_used;
      arena_used += want;
      return p;
    }
    resolving = 1;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    resolving = 0;
    if (!real_calloc) return NULL;
  }
  const char *flag = getenv("SSE_CALLOC_FAIL");
  if (flag && access(flag, F_OK) == 0) return NULL;
  return real_calloc(n, size);
}
