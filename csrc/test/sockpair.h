/* sockpair.h - a push subscriber's socket for the C unit tests: a libuv
 * pipe on one end of an AF_UNIX socket pair, the other end (the "client")
 * left to the test to read. Header only, after check.h; the test links
 * libuv.
 *
 *   uv_loop_t loop;
 *   uv_loop_init(&loop);
 *   sockpair sp;
 *   CHECK(sockpair_open(&sp, &loop, 2048, 0) == 0);  // small send buffer
 *   sse_sub *s = sse_sub_new((uv_stream_t *)&sp.pipe, 0, SSE_SLOW_CLOSE);
 *   ... recv(sp.peer, ...) ...
 *   sse_sub_free(s);
 *   sockpair_close(&sp);
 *   loop_finish(&loop);     // runs the closes, checks the loop is empty */
#ifndef SSE_TEST_SOCKPAIR_H
#define SSE_TEST_SOCKPAIR_H

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  uv_pipe_t pipe; /* the server's end, on the loop */
  int peer;       /* the client's end; -1 once closed */
} sockpair;

/* Opens a pair on loop: the pipe on one end, peer the other. sndbuf > 0
 * sets the pipe end's send buffer, peer_rcvbuf > 0 the peer's receive
 * buffer (small buffers make a socket fill up). Returns 0, or -1 with
 * nothing left open. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static int sockpair_open(sockpair *sp, uv_loop_t *loop, int sndbuf, int peer_rcvbuf) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
  if (sndbuf > 0) setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (peer_rcvbuf > 0) setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &peer_rcvbuf, sizeof peer_rcvbuf);
  if (uv_pipe_init(loop, &sp->pipe, 0) != 0) {
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  if (uv_pipe_open(&sp->pipe, sv[0]) != 0) {
    uv_close((uv_handle_t *)&sp->pipe, NULL); /* done by the loop's next run */
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  sp->peer = sv[1];
  return 0;
}

/* Closes the client's end now: the next write to the pipe fails. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static void sockpair_hangup(sockpair *sp) {
  if (sp->peer >= 0) close(sp->peer);
  sp->peer = -1;
}

/* Closes both ends (the pipe's close completes on the loop's next run). */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static void sockpair_close(sockpair *sp) {
  uv_close((uv_handle_t *)&sp->pipe, NULL);
  sockpair_hangup(sp);
}

/* Runs loop until its closes are done and closes it: a handle left open is
 * a failed check. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static void loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
}

#endif
