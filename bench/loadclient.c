/*
 * loadclient: a Server-Sent Events fan-out load client (one process, epoll,
 * non-blocking sockets), for bench/fanout.sh.
 *
 *   cc -O2 -Wall -Wextra -o build/loadclient bench/loadclient.c
 *
 * It opens N subscriber connections (GET <sub-path>, Accept: text/event-stream)
 * at a bounded rate, parses the responses (chunked or plain bodies, then the
 * event stream) and counts events. One publisher connection (keep-alive) POSTs
 * events whose data is "<seq> <send_time_us> <padding>" (CLOCK_REALTIME, padded
 * to --payload bytes), so every delivery yields a publish-to-receive latency.
 *
 * Phases, each bounded by --timeout (and the whole run by --max-time):
 *   connect  ramp N subscribers (--ramp conn/s, at most --pending handshakes)
 *   idle     settle, then server RSS before/after connecting -> bytes per idle sub
 *   warm-up  one event, wait until every subscriber has it (all are live)
 *   burst    M events pipelined in ONE write on the publisher connection;
 *            server CPU (schedstat run time and utime+stime), peak RSS since
 *            the idle point (VmHWM reset via clear_refs, plus sampling), latency
 *   rate     --rate events/s for --duration s, one request per event; latency
 *   hold     keep the subscribers open --hold s, counting what arrives
 * With --pid, server figures come from /proc/<pid> (the server process only).
 * The last line is "RESULT key=value ..." for the driver.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define DATA_MAX 64
#define ID_MAX 64
#define PAYLOAD_MAX (1024 * 1024)
#define RBUF_SIZE (256 * 1024)
#define MAX_EVENTS 1024

enum { ST_FREE, ST_CONNECTING, ST_HEAD, ST_BODY, ST_DEAD };
enum { BM_EOF, BM_LEN, BM_CHUNKED, BM_NONE };
enum { CK_SIZE, CK_EXT, CK_DATA, CK_DATA_END, CK_TRAILER, CK_TRAILER_LINE };
enum { S_FIELD, S_VALUE_START, S_VALUE, S_SKIP, S_ID_START, S_ID };

/* One connection: a subscriber, or the publisher (is_pub). */
struct conn {
	int fd;
	unsigned char state, bm, ck, ckdig;
	unsigned char sse, flen, has_data, cr;
	unsigned char is_pub, storm, idlen, idnul;
	unsigned char named;      /* the event being read has an "event" field */
	unsigned short dlen;
	char field[5];
	char data[DATA_MAX];
	char id[ID_MAX];          /* the event-stream's last event id (truncated) */
	char idnew[ID_MAX];       /* the id line being read */
	unsigned char idnew_len;
	double t_start;           /* mono() when the connection was started */
	unsigned long long rem;   /* bytes left in the chunk or the Content-Length body */
	char *head;               /* response head being read, NULL once streaming */
	unsigned head_len;
	unsigned last_seq;        /* highest event seq seen, 0 = none */
};

struct lat {
	uint32_t *v;
	size_t n, cap;
};

struct opts {
	const char *host, *sub_path, *pub_path, *label;
	int port, n, burst, payload, pid, pending, settle_ms, sample_ms, src_ips;
	int port2;                /* --sub-port2: every other subscriber connects here */
	int npids, pids[8];       /* --pids: more processes summed into the CPU figures */
	double rate, duration, ramp, timeout, hold, max_time;
	/* reconnect storm: storm clients, each K events behind */
	const char *storm_path;
	int storm, replay, storm_lastid, storm_pending;
	double storm_ramp;
};

/* All run state; one instance, owned by main. */
struct state {
	struct opts o;
	int ep;
	struct sockaddr_in addr;
	struct sockaddr_in addr2; /* the second server's address (--sub-port2) */
	struct conn *subs;
	struct conn pub;
	char *out; size_t out_len, out_off, out_cap;   /* publisher output */
	char *rbuf;
	long long now_us;         /* CLOCK_REALTIME of the current read */
	/* counters */
	long pending, established, alive, conn_errors, closed, gaps, dups, unparsed, other;
	long named;               /* events with a type (e.g. sse-join): not the load's, ignored */
	long bad_status, proto_errors;
	long pub_sent, pub_resp, pub_ok, pub_err;
	/* sequence numbers: warm-up 1, storm [sfirst, slast], burst [bfirst, blast],
	 * rate [rfirst, rlast] */
	unsigned warm_seq, sfirst, slast, bfirst, blast, rfirst, rlast, next_seq;
	char warm_id[ID_MAX];     /* the id the server gave the warm-up event */
	long storm_deliv, storm_done;
	double last_storm_rx;
	struct lat lstorm;        /* per storm client: connect start -> caught up */
	unsigned target; long reached, dead_unreached;
	long warm_deliv, burst_deliv, rate_deliv, hold_events;
	double last_burst_rx, last_rate_rx;
	struct lat lburst, lrate;
	struct lat lfirst;        /* per subscriber: latency of its first burst event */
	/* RSS sampling */
	int sampling; double next_sample; long peak_kb;
	/* busy polling: after any activity, poll without sleeping for spin_s */
	double spin_s, last_activity;
};

static struct state G;

/* Monotonic seconds. */
static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CLOCK_REALTIME in microseconds (the clock carried in the events). */
static long long real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void on_alarm(int sig)
{
	static const char msg[] = "loadclient: --max-time reached, exiting\n";
	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
	_exit(3);
}

/* Reads a small /proc file into buf (NUL-terminated); returns length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, total = 0;
	if (fd < 0) return -1;
	while ((size_t)total < cap - 1 && (n = read(fd, buf + total, cap - 1 - (size_t)total)) > 0)
		total += n;
	close(fd);
	buf[total] = 0;
	return total;
}

/* Value in kB of a /proc/<pid>/status line ("VmRSS", "VmHWM"); -1 if unknown. */
static long proc_status_kb(int pid, const char *key)
{
	char path[64], buf[4096], *p;
	size_t klen = strlen(key);
	if (pid <= 0) return -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (read_small(path, buf, sizeof buf) < 0) return -1;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == ':')
			return strtol(p + klen + 1, NULL, 10);
	return -1;
}

/* utime+stime of the process in microseconds (from clock ticks); -1 if unknown. */
static long long proc_cpu_us_one(int pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	int i;
	if (pid <= 0) return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (read_small(path, buf, sizeof buf) < 0) return -1;
	p = strrchr(buf, ')');
	if (!p) return -1;
	p++;
	for (i = 3; i < 14; i++) {       /* skip fields 3..13 */
		p = strchr(p + 1, ' ');
		if (!p) return -1;
	}
	if (sscanf(p, " %llu %llu", &ut, &st) != 2) return -1;
	return (long long)((ut + st) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Sum over the process's threads of /proc/.../schedstat run time, in ns; -1 if unknown. */
static long long proc_sched_ns_one(int pid)
{
	char path[300], buf[256];
	struct dirent *de;
	long long sum = 0;
	DIR *d;
	if (pid <= 0) return -1;
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	d = opendir(path);
	if (!d) return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", pid, de->d_name);
		if (read_small(path, buf, sizeof buf) > 0) sum += strtoll(buf, NULL, 10);
	}
	closedir(d);
	return sum;
}

/* The CPU figures of the server: pid's, plus those of --pids (several
 * instances of one service) when pid is the --pid; -1 if unknown. */
static long long proc_cpu_us(int pid)
{
	long long sum = proc_cpu_us_one(pid), v;
	for (int i = 0; sum >= 0 && pid == G.o.pid && i < G.o.npids; i++)
		sum = (v = proc_cpu_us_one(G.o.pids[i])) < 0 ? -1 : sum + v;
	return sum;
}

static long long proc_sched_ns(int pid)
{
	long long sum = proc_sched_ns_one(pid), v;
	for (int i = 0; sum >= 0 && pid == G.o.pid && i < G.o.npids; i++)
		sum = (v = proc_sched_ns_one(G.o.pids[i])) < 0 ? -1 : sum + v;
	return sum;
}

/* Resets the server's VmHWM to its current RSS (needs root); 0 or -1. */
static int proc_reset_hwm(int pid)
{
	char path[64];
	int fd, ok;
	if (pid <= 0) return -1;
	snprintf(path, sizeof path, "/proc/%d/clear_refs", pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	ok = write(fd, "5", 1) == 1 ? 0 : -1;
	close(fd);
	return ok;
}

static void lat_push(struct lat *l, long long v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		uint32_t *nv = realloc(l->v, cap * sizeof *nv);
		if (!nv) return;                 /* sample lost; counts stay right */
		l->v = nv;
		l->cap = cap;
	}
	if (v < 0) v = 0;
	if (v > 0xffffffffLL) v = 0xffffffffLL;
	l->v[l->n++] = (uint32_t)v;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts the samples; nearest-rank percentile q in [0,1] afterwards, -1 if empty. */
static void lat_sort(struct lat *l)
{
	if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_u32);
}

static long long lat_pct(const struct lat *l, double q)
{
	size_t i;
	if (!l->n) return -1;
	i = (size_t)(q * (double)l->n + 0.999999);
	if (i < 1) i = 1;
	if (i > l->n) i = l->n;
	return l->v[i - 1];
}

/* ---------------------------------------------------------------- connections */

static void conn_close(struct conn *c, int is_error)
{
	if (c->state == ST_DEAD || c->state == ST_FREE) return;
	if (c->fd >= 0) close(c->fd);
	c->fd = -1;
	free(c->head);
	c->head = NULL;
	if (c->is_pub) {
		c->state = ST_DEAD;
		fprintf(stderr, "loadclient: publisher connection closed\n");
		return;
	}
	if (c->state == ST_BODY) {
		G.alive--;
		if (is_error) G.closed++;
		if (c->last_seq < G.target) G.dead_unreached++;
	} else {
		G.pending--;
		if (is_error) G.conn_errors++;
	}
	c->state = ST_DEAD;
}

/* An event was dispatched on subscriber c with data c->data[0..dlen). */
static void on_event(struct conn *c)
{
	char *e;
	unsigned long seq;
	long long ts, lat;
	c->data[c->dlen] = 0;
	seq = strtoul(c->data, &e, 10);
	if (e == c->data || *e != ' ' || seq == 0 || seq > 0xffffffffUL) {
		G.unparsed++;
		return;
	}
	ts = strtoll(e + 1, NULL, 10);
	lat = G.now_us - ts;
	if (seq == G.warm_seq) {
		G.warm_deliv++;
		if (!G.warm_id[0] && c->idlen) {
			memcpy(G.warm_id, c->id, c->idlen);
			G.warm_id[c->idlen] = 0;
		}
	} else if (seq >= G.sfirst && seq <= G.slast) {
		if (c->storm) {             /* not the subscribers that saw them live */
			G.storm_deliv++;
			G.last_storm_rx = mono();
		}
	} else if (seq >= G.bfirst && seq <= G.blast) {
		G.burst_deliv++;
		lat_push(&G.lburst, lat);
		if (c->last_seq < G.bfirst) lat_push(&G.lfirst, lat);
		G.last_burst_rx = mono();
	} else if (seq >= G.rfirst && seq <= G.rlast) {
		G.rate_deliv++;
		lat_push(&G.lrate, lat);
		G.last_rate_rx = mono();
	} else {
		G.other++;
	}
	G.hold_events++;
	if (seq <= c->last_seq) {
		G.dups++;
		return;
	}
	if (seq > c->last_seq + 1) G.gaps += (long)(seq - c->last_seq - 1);
	if (G.target && seq >= G.target && c->last_seq < G.target) G.reached++;
	if (c->storm && seq >= G.slast && c->last_seq < G.slast) {
		G.storm_done++;
		lat_push(&G.lstorm, (long long)((G.last_storm_rx - c->t_start) * 1e6));
	}
	c->last_seq = (unsigned)seq;
}

static int is_data_field(const struct conn *c)
{
	return c->flen == 4 && memcmp(c->field, "data", 4) == 0;
}

static void sse_data_start(struct conn *c)
{
	if (c->has_data && c->dlen < DATA_MAX - 1) c->data[c->dlen++] = '\n';
	c->has_data = 1;
}

static int is_id_field(const struct conn *c)
{
	return c->flen == 2 && c->field[0] == 'i' && c->field[1] == 'd';
}

/* An "id" line ended: it sets the last event id unless it holds a NUL. */
static void sse_id_end(struct conn *c)
{
	if (!c->idnul) {
		memcpy(c->id, c->idnew, c->idnew_len);
		c->idlen = c->idnew_len;
	}
	c->idnew_len = 0;
	c->idnul = 0;
}

static void sse_line_end(struct conn *c)
{
	if (c->sse == S_FIELD) {
		if (c->flen == 0) {               /* blank line: dispatch */
			if (c->has_data && c->named) G.named++;
			else if (c->has_data) on_event(c);
			c->has_data = 0;
			c->named = 0;
			c->dlen = 0;
		} else if (is_data_field(c)) {    /* "data" with no colon */
			sse_data_start(c);
		} else if (is_id_field(c)) {      /* "id" with no colon: empty id */
			sse_id_end(c);
		}
	} else if (c->sse == S_ID_START || c->sse == S_ID) {
		sse_id_end(c);
	}
	c->sse = S_FIELD;
	c->flen = 0;
}

/* Offset of the first CR or LF in p[0..n), or n. */
static size_t find_eol(const char *p, size_t n)
{
	const char *lf = memchr(p, '\n', n);
	size_t end = lf ? (size_t)(lf - p) : n;
	const char *cr = memchr(p, '\r', end);
	return cr ? (size_t)(cr - p) : end;
}

/* Event-stream parser (CR, LF, CRLF line ends, split anywhere). */
static void sse_feed(struct conn *c, const char *p, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		char b;
		/* the rest of a line that is dropped anyway (a comment, an unknown
		 * field, data past what is kept): skip to its end at memchr speed */
		if (!c->cr && (c->sse == S_SKIP || (c->sse == S_VALUE && c->dlen >= DATA_MAX - 1))) {
			i += find_eol(p + i, n - i);
			if (i >= n) return;
		}
		b = p[i];
		if (c->cr) {
			c->cr = 0;
			if (b == '\n') continue;
		}
		if (b == '\r' || b == '\n') {
			sse_line_end(c);
			c->cr = b == '\r';
			continue;
		}
		switch (c->sse) {
		case S_FIELD:
			if (b == ':') {
				if (c->flen == 0) {
					c->sse = S_SKIP;                 /* comment */
				} else if (is_data_field(c)) {
					sse_data_start(c);
					c->sse = S_VALUE_START;
				} else if (is_id_field(c)) {
					c->idnew_len = 0;
					c->idnul = 0;
					c->sse = S_ID_START;
				} else {
					/* a typed event (the server's own, e.g. sse-join): the
					 * load's events have none */
					if (c->flen == 5 && memcmp(c->field, "event", 5) == 0) c->named = 1;
					c->sse = S_SKIP;                 /* event, retry, ... */
				}
			} else {
				if (c->flen < sizeof c->field) c->field[c->flen] = b;
				if (c->flen < 255) c->flen++;
			}
			break;
		case S_VALUE_START:
			c->sse = S_VALUE;
			if (b == ' ') break;
			/* fall through */
		case S_VALUE:
			if (c->dlen < DATA_MAX - 1) c->data[c->dlen++] = b;
			break;
		case S_ID_START:
			c->sse = S_ID;
			if (b == ' ') break;
			/* fall through */
		case S_ID:
			if (b == 0) c->idnul = 1;
			else if (c->idnew_len < ID_MAX - 1) c->idnew[c->idnew_len++] = b;
			break;
		default:
			break;
		}
	}
}

/* A whole response (publisher) or the whole stream (subscriber) ended. */
static void on_message_end(struct conn *c)
{
	if (c->is_pub) {
		c->state = ST_HEAD;
		c->head_len = 0;
		return;
	}
	conn_close(c, 1);   /* a subscriber's stream is not supposed to end */
}

static void on_body(struct conn *c, const char *p, size_t n)
{
	if (!c->is_pub) sse_feed(c, p, n);
}

/* Parses the response head in c->head; 0 or -1 (malformed). Sets c->bm. */
static int parse_head(struct conn *c, int *status)
{
	char *h = c->head, *line, *next;
	int chunked = 0, has_len = 0;
	unsigned long long len = 0;
	h[c->head_len - 2] = 0;
	if (strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') return -1;
	*status = atoi(h + 9);
	for (line = strstr(h, "\r\n"); line; line = next) {
		line += 2;
		next = strstr(line, "\r\n");
		if (next) *next = 0;
		if (strncasecmp(line, "content-length:", 15) == 0) {
			has_len = 1;
			len = strtoull(line + 15, NULL, 10);
		} else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
			if (strcasestr(line + 18, "chunked")) chunked = 1;
		}
	}
	if (chunked) {
		c->bm = BM_CHUNKED;
		c->ck = CK_SIZE;
		c->ckdig = 0;
		c->rem = 0;
	} else if (has_len) {
		c->bm = len ? BM_LEN : BM_NONE;
		c->rem = len;
	} else if (*status == 204 || *status == 304 || *status < 200) {
		c->bm = BM_NONE;
	} else {
		c->bm = BM_EOF;
	}
	return 0;
}

static int hexval(char b)
{
	if (b >= '0' && b <= '9') return b - '0';
	if (b >= 'a' && b <= 'f') return b - 'a' + 10;
	if (b >= 'A' && b <= 'F') return b - 'A' + 10;
	return -1;
}

/* Chunked decoding; returns bytes consumed, or -1 on a framing error.
 * Stops after the end of the message (after calling on_message_end). */
static long chunked_feed(struct conn *c, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		char b = p[i];
		int v;
		switch (c->ck) {
		case CK_SIZE:
			i++;
			if ((v = hexval(b)) >= 0) {
				if (c->rem >> 56) return -1;
				c->rem = c->rem * 16 + (unsigned)v;
				c->ckdig = 1;
			} else if (b == ';' || b == ' ' || b == '\t') {
				if (!c->ckdig) return -1;
				c->ck = CK_EXT;
			} else if (b == '\n') {
				if (!c->ckdig) return -1;
				c->ck = c->rem ? CK_DATA : CK_TRAILER;
			} else if (b != '\r') {
				return -1;
			}
			break;
		case CK_EXT:
			i++;
			if (b == '\n') c->ck = c->rem ? CK_DATA : CK_TRAILER;
			break;
		case CK_DATA: {
			size_t take = n - i;
			if (take > c->rem) take = (size_t)c->rem;
			on_body(c, p + i, take);
			if (c->state == ST_DEAD) return -2;
			i += take;
			c->rem -= take;
			if (!c->rem) c->ck = CK_DATA_END;
			break;
		}
		case CK_DATA_END:
			i++;
			if (b == '\n') {
				c->ck = CK_SIZE;
				c->ckdig = 0;
				c->rem = 0;
			} else if (b != '\r') {
				return -1;
			}
			break;
		case CK_TRAILER:
			i++;
			if (b == '\n') {
				on_message_end(c);
				return (long)i;
			}
			if (b != '\r') c->ck = CK_TRAILER_LINE;
			break;
		default: /* CK_TRAILER_LINE */
			i++;
			if (b == '\n') c->ck = CK_TRAILER;
			break;
		}
	}
	return (long)i;
}

static void sub_established(struct conn *c)
{
	c->state = ST_BODY;
	free(c->head);
	c->head = NULL;
	G.pending--;
	G.established++;
	G.alive++;
}

/* Feeds received bytes to connection c (head, then body framing, then SSE). */
static void conn_feed(struct conn *c, const char *p, size_t n)
{
	while (n > 0 && (c->state == ST_HEAD || c->state == ST_BODY)) {
		if (c->state == ST_HEAD) {
			size_t old = c->head_len, take = n, from;
			char *end;
			int status = 0;
			if (!c->head && !(c->head = malloc(HEAD_MAX + 1))) {
				conn_close(c, 1);
				return;
			}
			if (take > HEAD_MAX - old) take = HEAD_MAX - old;
			memcpy(c->head + old, p, take);
			c->head_len = (unsigned)(old + take);
			c->head[c->head_len] = 0;
			from = old > 3 ? old - 3 : 0;
			end = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
			if (!end) {
				if (c->head_len >= HEAD_MAX) {
					G.proto_errors++;
					conn_close(c, 1);
				}
				return;
			}
			c->head_len = (unsigned)(end - c->head) + 4;
			take = c->head_len - old;
			p += take;
			n -= take;
			if (parse_head(c, &status) < 0) {
				G.proto_errors++;
				conn_close(c, 1);
				return;
			}
			if (c->is_pub) {
				G.pub_resp++;
				if (status >= 200 && status < 300) G.pub_ok++;
				else G.pub_err++;
				c->state = ST_BODY;
				if (c->bm == BM_NONE) on_message_end(c);
			} else {
				if (status != 200) {
					G.bad_status++;
					fprintf(stderr, "loadclient: subscriber got status %d\n", status);
					conn_close(c, 1);
					return;
				}
				sub_established(c);
				if (c->bm == BM_NONE) {
					on_message_end(c);
					return;
				}
			}
			continue;
		}
		/* ST_BODY */
		if (c->bm == BM_EOF) {
			on_body(c, p, n);
			return;
		}
		if (c->bm == BM_LEN) {
			size_t take = n > c->rem ? (size_t)c->rem : n;
			on_body(c, p, take);
			if (c->state == ST_DEAD) return;
			c->rem -= take;
			p += take;
			n -= take;
			if (!c->rem) on_message_end(c);
			continue;
		}
		{
			long used = chunked_feed(c, p, n);
			if (used == -2) return;
			if (used < 0) {
				G.proto_errors++;
				conn_close(c, 1);
				return;
			}
			p += used;
			n -= (size_t)used;
		}
	}
}

static int ep_set(int op, struct conn *c, uint32_t events)
{
	struct epoll_event ev;
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = c;
	return epoll_ctl(G.ep, op, c->fd, &ev);
}

static void sub_send_request(struct conn *c)
{
	char req[1024];
	int lastid = c->storm && G.o.storm_lastid;
	int len = snprintf(req, sizeof req,
		"GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
		"Cache-Control: no-cache\r\n%s%s%s\r\n", c->storm ? G.o.storm_path : G.o.sub_path,
		G.o.host, G.o.port, lastid ? "Last-Event-ID: " : "", lastid ? G.warm_id : "",
		lastid ? "\r\n" : "");
	if (len <= 0 || len >= (int)sizeof req || write(c->fd, req, (size_t)len) != len
	    || ep_set(EPOLL_CTL_MOD, c, EPOLLIN) < 0) {
		conn_close(c, 1);
		return;
	}
	c->state = ST_HEAD;
}

/* Starts subscriber c (a storm client when storm: it resumes after the warm-up
 * event, so its last_seq starts there). */
static void sub_start(struct conn *c, int storm)
{
	memset(c, 0, sizeof *c);
	c->storm = (unsigned char)storm;
	c->t_start = mono();
	if (storm) c->last_seq = G.warm_seq;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	G.pending++;
	c->state = ST_CONNECTING;
	if (c->fd < 0) {
		if (G.conn_errors == 0) perror("loadclient: socket");
		conn_close(c, 1);
		return;
	}
	if (G.o.src_ips > 1) {
		/* spread the client ends over 127.0.0.1..K: one source address with
		 * thousands of ports makes the kernel's port search in connect() slow */
		struct sockaddr_in src = G.addr;
		int one = 1;
		src.sin_port = 0;
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)((c - G.subs) % G.o.src_ips));
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
			if (G.conn_errors == 0) perror("loadclient: bind");
			conn_close(c, 1);
			return;
		}
	}
	const struct sockaddr_in *to = G.o.port2 && (c - G.subs) % 2 ? &G.addr2 : &G.addr;
	if (connect(c->fd, (const struct sockaddr *)to, sizeof *to) == 0) {
		if (ep_set(EPOLL_CTL_ADD, c, EPOLLIN) < 0) { conn_close(c, 1); return; }
		sub_send_request(c);
		return;
	}
	if (errno != EINPROGRESS || ep_set(EPOLL_CTL_ADD, c, EPOLLOUT) < 0) {
		if (G.conn_errors == 0) perror("loadclient: connect");
		conn_close(c, 1);
	}
}

/* ---------------------------------------------------------------- publisher */

static void pub_flush(void)
{
	while (G.out_off < G.out_len) {
		ssize_t w = write(G.pub.fd, G.out + G.out_off, G.out_len - G.out_off);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				ep_set(EPOLL_CTL_MOD, &G.pub, EPOLLIN | EPOLLOUT);
				return;
			}
			perror("loadclient: publish write");
			conn_close(&G.pub, 1);
			return;
		}
		G.out_off += (size_t)w;
	}
	G.out_off = G.out_len = 0;
	ep_set(EPOLL_CTL_MOD, &G.pub, EPOLLIN);
}

/* Queues `count` publish requests with seqs first.., one timestamp, then writes
 * them all with one write() when possible. */
static void pub_send(unsigned first, unsigned count)
{
	char prefix[64], head[512];
	long long ts = real_us();
	unsigned i;
	if (G.pub.state == ST_DEAD) return;
	for (i = 0; i < count; i++) {
		int pl = snprintf(prefix, sizeof prefix, "%08u %016lld ", first + i, ts);
		int bl = pl > G.o.payload ? pl : G.o.payload;
		int hl = snprintf(head, sizeof head,
			"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
			"Content-Length: %d\r\n\r\n", G.o.pub_path, G.o.host, G.o.port, bl);
		char *o;
		if (G.out_len + (size_t)(hl + bl) > G.out_cap) {
			size_t cap = (G.out_cap ? G.out_cap * 2 : 65536) + (size_t)(hl + bl);
			char *no = realloc(G.out, cap);
			if (!no) { fprintf(stderr, "loadclient: out of memory\n"); return; }
			G.out = no;
			G.out_cap = cap;
		}
		o = G.out + G.out_len;
		memcpy(o, head, (size_t)hl);
		memcpy(o + hl, prefix, (size_t)pl);
		memset(o + hl + pl, 'x', (size_t)(bl - pl));
		G.out_len += (size_t)(hl + bl);
		G.pub_sent++;
	}
	pub_flush();
}

static int pub_open(void)
{
	int one = 1;
	memset(&G.pub, 0, sizeof G.pub);
	G.pub.is_pub = 1;
	G.pub.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (G.pub.fd < 0 || connect(G.pub.fd, (struct sockaddr *)&G.addr, sizeof G.addr) < 0) {
		perror("loadclient: publisher connect");
		return -1;
	}
	setsockopt(G.pub.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(G.pub.fd, F_SETFL, fcntl(G.pub.fd, F_GETFL) | O_NONBLOCK);
	G.pub.state = ST_HEAD;
	return ep_set(EPOLL_CTL_ADD, &G.pub, EPOLLIN);
}

/* ---------------------------------------------------------------- event loop */

static void sample_rss(void)
{
	double t = mono();
	if (!G.sampling || t < G.next_sample) return;
	G.next_sample = t + G.o.sample_ms / 1000.0;
	{
		long kb = proc_status_kb(G.o.pid, "VmRSS");
		if (kb > G.peak_kb) G.peak_kb = kb;
	}
}

/* One epoll_wait of at most timeout_ms, handling everything that is ready. */
static void loop_once(int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int i, k;
	if (G.sampling && timeout_ms > G.o.sample_ms) timeout_ms = G.o.sample_ms;
	if (G.spin_s > 0 && mono() - G.last_activity < G.spin_s) timeout_ms = 0;
	k = epoll_wait(G.ep, evs, MAX_EVENTS, timeout_ms);
	if (k > 0) G.last_activity = mono();
	for (i = 0; i < k; i++) {
		struct conn *c = evs[i].data.ptr;
		uint32_t e = evs[i].events;
		if (c->state == ST_DEAD) continue;
		if (c->state == ST_CONNECTING) {
			int err = 0;
			socklen_t len = sizeof err;
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
				if (G.conn_errors == 0) fprintf(stderr, "loadclient: connect: %s\n", strerror(err ? err : errno));
				conn_close(c, 1);
				continue;
			}
			sub_send_request(c);
			continue;
		}
		if (c->is_pub && (e & EPOLLOUT)) pub_flush();
		if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
			ssize_t r = read(c->fd, G.rbuf, RBUF_SIZE);
			if (r > 0) {
				G.now_us = real_us();
				conn_feed(c, G.rbuf, (size_t)r);
			} else if (r == 0) {
				if (c->state == ST_BODY && c->bm == BM_EOF && c->is_pub) on_message_end(c);
				conn_close(c, 1);
			} else if (errno != EAGAIN && errno != EINTR) {
				conn_close(c, 1);
			}
		}
		if (i % 64 == 63) sample_rss();
	}
	sample_rss();
}

/* Runs the loop for `secs` seconds. */
static void loop_for(double secs)
{
	double end = mono() + secs;
	double t;
	while ((t = mono()) < end) {
		int ms = (int)((end - t) * 1000) + 1;
		loop_once(ms > 100 ? 100 : ms);
	}
}

/* Loops until the server's CPU time stops moving (idle), at most max_s. */
static void wait_server_idle(double max_s)
{
	double end = mono() + max_s;
	long long prev = proc_cpu_us(G.o.pid);
	int still = 0;
	if (prev < 0) { loop_for(0.2); return; }
	while (mono() < end && still < 2) {
		long long cur;
		loop_for(0.1);
		cur = proc_cpu_us(G.o.pid);
		still = cur == prev ? still + 1 : 0;
		prev = cur;
	}
}

/* Sets a delivery target: done when every live subscriber has seq >= target. */
static void set_target(unsigned seq)
{
	G.target = seq;
	G.reached = 0;
	G.dead_unreached = 0;
}

static int target_done(long expected)
{
	return G.reached + G.dead_unreached >= expected && G.pub_resp >= G.pub_sent;
}

/* Loops until target_done or the deadline; returns 1 if done. */
static int wait_target(long expected, double deadline)
{
	while (!target_done(expected)) {
		if (mono() >= deadline) return 0;
		loop_once(10);
	}
	return 1;
}

/* ---------------------------------------------------------------- self-test */

/* Feeds one response (head + body) to a fresh subscriber in pieces of `step`
 * bytes; returns 0 when exactly `want` events parsed, 1 was unparsed and 1
 * typed (ignored). */
static int selftest_feed(const char *resp, size_t len, size_t step, long want)
{
	struct conn c;
	size_t off;
	memset(&c, 0, sizeof c);
	c.fd = -1;
	c.state = ST_HEAD;
	c.last_seq = 1;
	G.pending = 1;
	G.burst_deliv = G.unparsed = G.gaps = G.dups = G.proto_errors = G.named = 0;
	G.bfirst = 2;
	G.blast = 1000;
	for (off = 0; off < len && c.state != ST_DEAD; off += step)
		conn_feed(&c, resp + off, len - off < step ? len - off : step);
	free(c.head);
	if (c.idlen != 3 || memcmp(c.id, "1:0", 3) != 0) {
		fprintf(stderr, "selftest: step %zu: last event id %.*s (want 1:0)\n", step, c.idlen, c.id);
		return -1;
	}
	if (G.burst_deliv != want || G.unparsed != 1 || G.named != 1 || G.gaps || G.dups
	    || G.proto_errors || c.state != ST_BODY) {
		fprintf(stderr, "selftest: step %zu: %ld events (want %ld), %ld unparsed, %ld typed, %ld gaps,"
		        " %ld dups, %ld protocol errors, state %d\n", step, G.burst_deliv, want,
		        G.unparsed, G.named, G.gaps, G.dups, G.proto_errors, c.state);
		return -1;
	}
	return 0;
}

/* Checks the HTTP framing and event-stream parsers on plain and chunked bodies
 * split at every possible size; returns 0 or -1. */
static int selftest(void)
{
	static const char body[] =
		": hi\n\n"
		"id: 1:0\ndata: 00000002 1000 xx\n\n"
		": comment\r\ndata: 00000003 1000\r\n\r\n"
		"data:00000004 1000\revent\r\r"
		"event: sse-join\ndata: {\"last_event_id\":\"1:0\"}\n\n"
		"data: 00000005 1000\ndata: second line\n\n"
		"data\n\n"
		"retry: 10\n\n"
		"dat: 00000099 1000\n\n"
		"data: 00000006 1000\n"
		"\n"
		"data: 00000007 1000\r\ndata: tail\r\n\r\n";
	char plain[2048], chunked[4096];
	size_t blen = sizeof body - 1, plen, clen, off, step;
	int fails = 0;
	G.now_us = 5000;
	plen = (size_t)snprintf(plain, sizeof plain,
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n%s", body);
	clen = (size_t)snprintf(chunked, sizeof chunked,
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		"Transfer-Encoding: chunked\r\n\r\n");
	for (off = 0; off < blen; off += 7) {
		size_t n = blen - off < 7 ? blen - off : 7;
		clen += (size_t)snprintf(chunked + clen, sizeof chunked - clen, "%zx%s\r\n", n,
		                         off == 14 ? ";ext=1" : "");
		memcpy(chunked + clen, body + off, n);
		clen += n;
		memcpy(chunked + clen, "\r\n", 2);
		clen += 2;
	}
	for (step = 1; step <= clen; step++) {
		if (step <= plen && selftest_feed(plain, plen, step, 6) < 0) fails++;
		if (selftest_feed(chunked, clen, step, 6) < 0) fails++;
	}
	printf("selftest: %s\n", fails ? "FAILED" : "ok");
	return fails ? -1 : 0;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
	fprintf(stderr,
		"usage: loadclient [options]\n"
		"  --host H          server address (127.0.0.1)\n"
		"  --port P          server port (8080)\n"
		"  --sub-path PATH   subscriber path (/sub)\n"
		"  --pub-path PATH   publish path (/pub)\n"
		"  -n N              subscribers (1000)\n"
		"  -m M              burst events, pipelined in one write (100; 0 = no burst)\n"
		"  --rate R          fixed-rate events per second (5; 0 = no rate phase)\n"
		"  --duration S      fixed-rate phase length in seconds (10)\n"
		"  --payload B       event data bytes (40; 26..1048576)\n"
		"  --pid PID         server process for /proc CPU and RSS figures\n"
		"  --pids P1,P2      more server processes whose CPU is added to --pid's (RSS: --pid only)\n"
		"  --sub-port2 P     every other subscriber connects to this port (a second instance)\n"
		"  --ramp R          new connections per second (5000)\n"
		"  --pending K       max handshakes in flight (256)\n"
		"  --src-ips K       spread client ends over 127.0.0.1..K (16; 1 = off)\n"
		"  --settle MS       idle wait after connecting (1000)\n"
		"  --sample-ms MS    RSS sampling period during the burst (5)\n"
		"  --spin-us US      busy-poll this long after activity instead of sleeping (0 = off)\n"
		"  --timeout S       per-phase timeout (60)\n"
		"  --hold S          keep subscribers open S seconds at the end (0)\n"
		"  --storm N         reconnect storm after the warm-up: K events are published, then\n"
		"                    N new clients connect, each resuming after the warm-up event (0)\n"
		"  --replay K        events each storm client must replay (100)\n"
		"  --storm-path PATH storm clients' path (the subscriber path)\n"
		"  --storm-lastid B  1: storm clients send Last-Event-ID (the warm-up event's id);\n"
		"                    0: they send none (a server that starts them at its oldest) (1)\n"
		"  --storm-pending K storm handshakes in flight (1024)\n"
		"  --storm-ramp R    storm connections per second (0 = as fast as possible)\n"
		"  --max-time S      hard limit for the whole run (computed)\n"
		"  --label NAME      name printed in the RESULT line\n"
		"  --selftest        check the response and event-stream parsers, then exit\n");
}

static int parse_args(int argc, char **argv)
{
	struct opts *o = &G.o;
	int i;
	o->host = "127.0.0.1"; o->port = 8080; o->sub_path = "/sub"; o->pub_path = "/pub";
	o->label = "server"; o->n = 1000; o->burst = 100; o->rate = 5; o->duration = 10;
	o->payload = 40; o->pid = 0; o->ramp = 5000; o->pending = 256; o->settle_ms = 1000;
	o->sample_ms = 5; o->src_ips = 16; o->timeout = 60; o->hold = 0; o->max_time = 0;
	o->storm = 0; o->replay = 100; o->storm_path = NULL; o->storm_lastid = 1;
	o->storm_pending = 1024; o->storm_ramp = 0;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); exit(0); }
		if (!strcmp(a, "--selftest")) exit(selftest() < 0 ? 1 : 0);
		if (!v) { fprintf(stderr, "loadclient: %s needs a value\n", a); return -1; }
		i++;
		if (!strcmp(a, "--host")) o->host = v;
		else if (!strcmp(a, "--port")) o->port = atoi(v);
		else if (!strcmp(a, "--sub-path")) o->sub_path = v;
		else if (!strcmp(a, "--pub-path")) o->pub_path = v;
		else if (!strcmp(a, "-n")) o->n = atoi(v);
		else if (!strcmp(a, "-m")) o->burst = atoi(v);
		else if (!strcmp(a, "--rate")) o->rate = atof(v);
		else if (!strcmp(a, "--duration")) o->duration = atof(v);
		else if (!strcmp(a, "--payload")) o->payload = atoi(v);
		else if (!strcmp(a, "--pid")) o->pid = atoi(v);
		else if (!strcmp(a, "--sub-port2")) o->port2 = atoi(v);
		else if (!strcmp(a, "--pids")) {
			for (const char *q = v; *q && o->npids < 8; q = strchr(q, ',') ? strchr(q, ',') + 1 : "")
				o->pids[o->npids++] = atoi(q);
		}
		else if (!strcmp(a, "--ramp")) o->ramp = atof(v);
		else if (!strcmp(a, "--pending")) o->pending = atoi(v);
		else if (!strcmp(a, "--src-ips")) o->src_ips = atoi(v);
		else if (!strcmp(a, "--spin-us")) G.spin_s = atof(v) / 1e6;
		else if (!strcmp(a, "--settle")) o->settle_ms = atoi(v);
		else if (!strcmp(a, "--sample-ms")) o->sample_ms = atoi(v);
		else if (!strcmp(a, "--timeout")) o->timeout = atof(v);
		else if (!strcmp(a, "--hold")) o->hold = atof(v);
		else if (!strcmp(a, "--max-time")) o->max_time = atof(v);
		else if (!strcmp(a, "--label")) o->label = v;
		else if (!strcmp(a, "--storm")) o->storm = atoi(v);
		else if (!strcmp(a, "--replay")) o->replay = atoi(v);
		else if (!strcmp(a, "--storm-path")) o->storm_path = v;
		else if (!strcmp(a, "--storm-lastid")) o->storm_lastid = atoi(v);
		else if (!strcmp(a, "--storm-pending")) o->storm_pending = atoi(v);
		else if (!strcmp(a, "--storm-ramp")) o->storm_ramp = atof(v);
		else { fprintf(stderr, "loadclient: unknown option %s\n", a); usage(); return -1; }
	}
	if (o->port <= 0 || o->port > 65535 || o->n < 0 || o->burst < 0 || o->rate < 0
	    || o->duration < 0 || o->payload < 26 || o->payload > PAYLOAD_MAX || o->ramp <= 0
	    || o->pending <= 0 || G.spin_s < 0 || o->src_ips < 1 || o->src_ips > 254 || o->timeout <= 0
	    || o->sample_ms <= 0 || o->storm < 0 || o->replay < 1 || o->storm_pending <= 0
	    || o->storm_ramp < 0) {
		fprintf(stderr, "loadclient: bad option value (payload must be 26..%d bytes)\n", PAYLOAD_MAX);
		return -1;
	}
	if (o->storm > 0 && o->n < 1) {
		fprintf(stderr, "loadclient: --storm needs -n >= 1 (a subscriber learns the warm-up event's id)\n");
		return -1;
	}
	if (!o->storm_path) o->storm_path = o->sub_path;
	return 0;
}

static long long ru_us(const struct rusage *r)
{
	return (long long)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1000000LL
	       + r->ru_utime.tv_usec + r->ru_stime.tv_usec;
}

static double ms(long long us) { return us < 0 ? -1 : (double)us / 1000.0; }

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct rusage ru;
	double t0, deadline;
	long i, started = 0, nrate = 0;
	long rss_base = -1, rss_idle = -1, rss_warm = -1, rss_b0 = -1, rss_after = -1, hwm = -1;
	long long cl_b0 = 0, cl_b1 = 0, cl_r0 = 0, cl_r1 = 0, cpu_b0 = -1, cpu_b1 = -1, sch_b0 = -1, sch_b1 = -1, cpu_r0 = -1, cpu_r1 = -1;
	long long sch_r0 = -1, sch_r1 = -1;
	long long cpu_c0 = -1, cpu_c1 = -1, sch_c0 = -1, sch_c1 = -1;
	long long cpu_s0 = -1, cpu_s1 = -1, sch_s0 = -1, sch_s1 = -1, cl_s0 = 0, cl_s1 = 0;
	double storm_secs = 0;
	long storm_started = 0, rss_s0 = -1, rss_s1 = -1;
	int storm_ok = 1;
	double t_connect = 0, t_send = 0, burst_secs = 0;
	long exp_burst = 0;
	int burst_ok = 1, rate_ok = 1, warm_ok = 1, hwm_reset = -1;
	const struct opts *o = &G.o;

	if (parse_args(argc, argv) < 0) return 2;
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (o->max_time <= 0)
		G.o.max_time = o->n / o->ramp + 8 * o->timeout + o->duration + o->hold + 30;
	signal(SIGALRM, on_alarm);
	alarm((unsigned)o->max_time + 1);

	memset(&G.addr, 0, sizeof G.addr);
	G.addr.sin_family = AF_INET;
	G.addr.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, o->host, &G.addr.sin_addr) != 1) {
		fprintf(stderr, "loadclient: --host must be an IPv4 address\n");
		return 2;
	}
	if ((ntohl(G.addr.sin_addr.s_addr) >> 24) != 127) G.o.src_ips = 1;   /* loopback only */
	G.addr2 = G.addr;
	G.addr2.sin_port = htons((uint16_t)o->port2);
	G.ep = epoll_create1(EPOLL_CLOEXEC);
	G.rbuf = malloc(RBUF_SIZE);
	G.subs = calloc((size_t)(o->n + o->storm ? o->n + o->storm : 1), sizeof *G.subs);
	if (G.ep < 0 || !G.rbuf || !G.subs) { perror("loadclient: setup"); return 2; }
	G.warm_seq = 1;
	G.sfirst = 2;
	G.slast = 1 + (unsigned)(o->storm ? o->replay : 0);
	G.bfirst = G.slast + 1;
	G.blast = G.bfirst + (unsigned)o->burst - 1;
	nrate = (long)(o->rate * o->duration + 0.5);
	G.rfirst = G.blast + 1;
	G.rlast = G.rfirst + (unsigned)nrate - 1;
	if (nrate == 0) G.rlast = 0;

	printf("loadclient %s: %d subscribers -> %s:%d%s, publish %s, server pid %d\n",
	       o->label, o->n, o->host, o->port, o->sub_path, o->pub_path, o->pid);
	rss_base = proc_status_kb(o->pid, "VmRSS");
	if (pub_open() < 0) return 1;

	/* connect */
	cpu_c0 = proc_cpu_us(o->pid);
	sch_c0 = proc_sched_ns(o->pid);
	t0 = mono();
	deadline = t0 + o->n / o->ramp + o->timeout;
	while ((started < o->n || G.pending > 0) && mono() < deadline) {
		long allowed = (long)((mono() - t0) * o->ramp) + 1;
		while (started < o->n && started < allowed && G.pending < o->pending)
			sub_start(&G.subs[started++], 0);
		loop_once(started < o->n ? 1 : 20);
	}
	t_connect = mono() - t0;
	printf("connect: %ld of %d established in %.2f s (%ld errors, %ld bad status, %ld unfinished)\n",
	       G.established, o->n, t_connect, G.conn_errors, G.bad_status, G.pending + (o->n - started));
	fflush(stdout);

	/* idle */
	loop_for(o->settle_ms / 1000.0);
	wait_server_idle(5);
	rss_idle = proc_status_kb(o->pid, "VmRSS");
	cpu_c1 = proc_cpu_us(o->pid);
	sch_c1 = proc_sched_ns(o->pid);
	if (cpu_c0 >= 0 && G.established)
		printf("connect: server CPU %.3f s = %.1f us per connection (schedstat %.1f us):"
		       " %.0f connections per server CPU second\n", (cpu_c1 - cpu_c0) / 1e6,
		       (double)(cpu_c1 - cpu_c0) / G.established, (sch_c1 - sch_c0) / 1e3 / G.established,
		       sch_c1 > sch_c0 ? G.established / ((sch_c1 - sch_c0) / 1e9) : 0.0);
	/* peak RSS is tracked from here (idle, no event yet) through the burst:
	 * per-subscriber memory a server allocates on its first delivery counts */
	hwm_reset = proc_reset_hwm(o->pid);
	G.peak_kb = rss_idle;
	G.sampling = o->pid > 0;
	G.next_sample = 0;

	/* warm-up: one event, every subscriber must get it */
	set_target(G.warm_seq);
	pub_send(G.warm_seq, 1);
	warm_ok = wait_target(G.alive, mono() + o->timeout);
	wait_server_idle(3);
	rss_warm = proc_status_kb(o->pid, "VmRSS");
	if (rss_base >= 0 && rss_idle >= 0 && rss_warm >= 0)
		printf("idle: server RSS %.1f MB -> %.1f MB with %ld subscribers: %.0f B per idle subscriber"
		       " (%.0f B after one event)\n", rss_base / 1024.0, rss_idle / 1024.0, G.established,
		       G.established ? (rss_idle - rss_base) * 1024.0 / G.established : 0.0,
		       G.established ? (rss_warm - rss_base) * 1024.0 / G.established : 0.0);
	printf("warm-up: %ld of %ld subscribers got the first event%s\n", G.warm_deliv, G.alive,
	       warm_ok ? "" : " (TIMEOUT)");
	fflush(stdout);

	/* reconnect storm: K events stored, then o->storm clients resume after the
	 * warm-up event and each must replay exactly those K */
	if (o->storm > 0) {
		long pending0 = G.pending;
		double t_s0, sdeadline;
		if (o->storm_lastid && !G.warm_id[0])
			fprintf(stderr, "loadclient: the warm-up event carried no id: storm clients send an empty Last-Event-ID\n");
		set_target(G.slast);
		pub_send(G.sfirst, (unsigned)o->replay);
		storm_ok = wait_target(G.alive, mono() + o->timeout);
		wait_server_idle(3);
		G.dead_unreached = 0;
		rss_s0 = proc_status_kb(o->pid, "VmRSS");
		getrusage(RUSAGE_SELF, &ru);
		cl_s0 = ru_us(&ru);
		cpu_s0 = proc_cpu_us(o->pid);
		sch_s0 = proc_sched_ns(o->pid);
		t_s0 = mono();
		sdeadline = t_s0 + (o->storm_ramp > 0 ? o->storm / o->storm_ramp : 0) + o->timeout;
		while ((storm_started < o->storm || G.storm_done + G.dead_unreached < o->storm)
		       && mono() < sdeadline) {
			long allowed = o->storm_ramp > 0 ? (long)((mono() - t_s0) * o->storm_ramp) + 1 : o->storm;
			while (storm_started < o->storm && storm_started < allowed
			       && G.pending - pending0 < o->storm_pending)
				sub_start(&G.subs[o->n + storm_started++], 1);
			loop_once(storm_started < o->storm ? 1 : 10);
		}
		storm_ok = storm_ok && G.storm_done == o->storm;
		storm_secs = (G.storm_done ? G.last_storm_rx : mono()) - t_s0;
		wait_server_idle(3);
		rss_s1 = proc_status_kb(o->pid, "VmRSS");
		getrusage(RUSAGE_SELF, &ru);
		cl_s1 = ru_us(&ru);
		cpu_s1 = proc_cpu_us(o->pid);
		sch_s1 = proc_sched_ns(o->pid);
		lat_sort(&G.lstorm);
		printf("storm: %d clients x %d replayed events: %ld caught up, %ld deliveries in %.3f s%s\n",
		       o->storm, o->replay, G.storm_done, G.storm_deliv, storm_secs,
		       storm_ok ? "" : " (TIMEOUT or errors)");
		if (cpu_s0 >= 0 && G.storm_deliv)
			printf("storm: server CPU %.3f s = %.3f us per replayed delivery (schedstat %.3f us),"
			       " %.1f us per client; client CPU %.2f s\n",
			       (cpu_s1 - cpu_s0) / 1e6, (double)(cpu_s1 - cpu_s0) / G.storm_deliv,
			       (sch_s1 - sch_s0) / 1e3 / G.storm_deliv, (sch_s1 - sch_s0) / 1e3 / o->storm,
			       (cl_s1 - cl_s0) / 1e6);
		if (rss_s0 >= 0)
			printf("storm: server RSS %.1f MB before, %.1f MB after (%.0f B per storm client)\n",
			       rss_s0 / 1024.0, rss_s1 / 1024.0, (rss_s1 - rss_s0) * 1024.0 / o->storm);
		printf("storm: connect -> caught up p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		       ms(lat_pct(&G.lstorm, 0.5)), ms(lat_pct(&G.lstorm, 0.99)), ms(lat_pct(&G.lstorm, 1.0)));
		fflush(stdout);
	}

	/* burst */
	if (o->burst > 0) {
		rss_b0 = proc_status_kb(o->pid, "VmRSS");
		getrusage(RUSAGE_SELF, &ru);
		cl_b0 = ru_us(&ru);
		cpu_b0 = proc_cpu_us(o->pid);
		sch_b0 = proc_sched_ns(o->pid);
		exp_burst = G.alive;
		set_target(G.blast);
		t_send = mono();
		pub_send(G.bfirst, (unsigned)o->burst);
		burst_ok = wait_target(exp_burst, mono() + o->timeout);
		burst_secs = (G.burst_deliv ? G.last_burst_rx : mono()) - t_send;
		wait_server_idle(3);
		G.sampling = 0;
		getrusage(RUSAGE_SELF, &ru);
		cl_b1 = ru_us(&ru);
		cpu_b1 = proc_cpu_us(o->pid);
		sch_b1 = proc_sched_ns(o->pid);
		hwm = proc_status_kb(o->pid, "VmHWM");
		rss_after = proc_status_kb(o->pid, "VmRSS");
		if (hwm_reset == 0 && hwm > G.peak_kb) G.peak_kb = hwm;
		lat_sort(&G.lburst);
		lat_sort(&G.lfirst);
		printf("burst: %d events x %ld subscribers: %ld deliveries in %.3f s = %.0f deliveries/s%s\n",
		       o->burst, exp_burst, G.burst_deliv, burst_secs,
		       burst_secs > 0 ? G.burst_deliv / burst_secs : 0.0, burst_ok ? "" : " (TIMEOUT)");
		if (cpu_b0 >= 0 && G.burst_deliv)
			printf("burst: server CPU %.3f s = %.2f us/delivery (schedstat %.2f us); client CPU %.2f s\n"
			       "burst: server RSS idle %.1f MB, before burst %.1f MB, peak %.1f MB (%s):"
			       " +%.1f MB over idle, +%.1f MB over pre-burst; %.1f MB after\n",
			       (cpu_b1 - cpu_b0) / 1e6, (double)(cpu_b1 - cpu_b0) / G.burst_deliv,
			       (sch_b1 - sch_b0) / 1e3 / G.burst_deliv, (cl_b1 - cl_b0) / 1e6,
			       rss_idle / 1024.0, rss_b0 / 1024.0, G.peak_kb / 1024.0,
			       hwm_reset == 0 ? "VmHWM" : "sampled", (G.peak_kb - rss_idle) / 1024.0,
			       (G.peak_kb - rss_b0) / 1024.0, rss_after / 1024.0);
		printf("burst: latency p50 %.2f ms, p99 %.2f ms, max %.2f ms;"
		       " each subscriber's first event: p50 %.2f ms, p99 %.2f ms\n",
		       ms(lat_pct(&G.lburst, 0.5)), ms(lat_pct(&G.lburst, 0.99)), ms(lat_pct(&G.lburst, 1.0)),
		       ms(lat_pct(&G.lfirst, 0.5)), ms(lat_pct(&G.lfirst, 0.99)));
		fflush(stdout);
	}

	/* fixed rate */
	if (nrate > 0) {
		double interval = 1.0 / o->rate, next, end;
		long sent = 0, exp_rate = G.alive;
		set_target(G.rlast);
		cpu_r0 = proc_cpu_us(o->pid);
		sch_r0 = proc_sched_ns(o->pid);
		getrusage(RUSAGE_SELF, &ru);
		cl_r0 = ru_us(&ru);
		next = mono();
		while (sent < nrate) {
			double t = mono();
			if (t >= next) {
				pub_send(G.rfirst + (unsigned)sent, 1);
				sent++;
				next += interval;
				continue;
			}
			loop_once((int)((next - t) * 1000) + 1);
		}
		end = mono() + o->timeout;
		rate_ok = wait_target(exp_rate, end);
		wait_server_idle(2);
		cpu_r1 = proc_cpu_us(o->pid);
		sch_r1 = proc_sched_ns(o->pid);
		getrusage(RUSAGE_SELF, &ru);
		cl_r1 = ru_us(&ru);
		lat_sort(&G.lrate);
		printf("rate: %.1f events/s for %.1f s: %ld events x %ld subscribers: %ld deliveries%s\n",
		       o->rate, o->duration, nrate, exp_rate, G.rate_deliv, rate_ok ? "" : " (TIMEOUT)");
		printf("rate: latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; server CPU %.2f us/delivery"
		       " (schedstat %.2f us; client %.2f us)\n",
		       ms(lat_pct(&G.lrate, 0.5)), ms(lat_pct(&G.lrate, 0.99)), ms(lat_pct(&G.lrate, 1.0)),
		       cpu_r0 >= 0 && G.rate_deliv ? (double)(cpu_r1 - cpu_r0) / G.rate_deliv : -1.0,
		       sch_r0 >= 0 && G.rate_deliv ? (sch_r1 - sch_r0) / 1e3 / G.rate_deliv : -1.0,
		       G.rate_deliv ? (double)(cl_r1 - cl_r0) / G.rate_deliv : -1.0);
		fflush(stdout);
	}

	if (o->hold > 0) {
		long before = G.hold_events;
		loop_for(o->hold);
		printf("hold: %ld subscribers still open after %.0f s (%ld events arrived meanwhile)\n",
		       G.alive, o->hold, G.hold_events - before);
	}

	getrusage(RUSAGE_SELF, &ru);
	printf("errors: %ld connect, %ld bad status, %ld protocol, %ld closed by server, %ld missing,"
	       " %ld duplicate, %ld unparsed; publish %ld/%ld ok, %ld non-2xx; %ld typed events ignored\n",
	       G.conn_errors, G.bad_status, G.proto_errors, G.closed, G.gaps, G.dups, G.unparsed,
	       G.pub_ok, G.pub_sent, G.pub_err, G.named);
	printf("client CPU %.2f s\n", ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
	       + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	printf("RESULT label=%s n=%d established=%ld alive=%ld connect_s=%.2f"
	       " rss_base_kb=%ld rss_idle_kb=%ld rss_warm_kb=%ld idle_b_per_sub=%.0f warm_b_per_sub=%.0f"
	       " burst_events=%d burst_deliveries=%ld burst_s=%.4f burst_dps=%.0f"
	       " burst_cpu_us=%lld burst_cpu_us_per_del=%.3f burst_sched_us_per_del=%.3f"
	       " burst_rss0_kb=%ld burst_peak_kb=%ld burst_growth_kb=%ld burst_growth_warm_kb=%ld"
	       " rss_after_kb=%ld burst_client_cpu_us=%lld"
	       " burst_p50_us=%lld burst_p99_us=%lld burst_max_us=%lld"
	       " rate_events=%ld rate_deliveries=%ld rate_p50_us=%lld rate_p99_us=%lld rate_max_us=%lld"
	       " rate_cpu_us_per_del=%.3f rate_sched_us_per_del=%.3f rate_client_cpu_us_per_del=%.3f"
	       " conn_errors=%ld bad_status=%ld proto_errors=%ld closed=%ld missing=%ld dups=%ld"
	       " unparsed=%ld pub_sent=%ld pub_ok=%ld pub_err=%ld timeouts=%d"
	       " connect_cpu_us=%lld connect_us_per_conn=%.2f connect_sched_us_per_conn=%.2f"
	       " storm_clients=%d storm_replay=%d storm_started=%ld storm_done=%ld"
	       " storm_deliveries=%ld storm_s=%.4f storm_cpu_us=%lld storm_cpu_us_per_del=%.4f"
	       " storm_sched_us_per_del=%.4f storm_sched_us_per_client=%.2f storm_client_cpu_us=%lld"
	       " storm_p50_us=%lld storm_p99_us=%lld storm_max_us=%lld storm_rss0_kb=%ld storm_rss1_kb=%ld"
	       " burst_first_p50_us=%lld burst_first_p99_us=%lld payload=%d\n",
	       o->label, o->n, G.established, G.alive, t_connect,
	       rss_base, rss_idle, rss_warm,
	       G.established && rss_base >= 0 && rss_idle >= 0 ? (rss_idle - rss_base) * 1024.0 / G.established : -1.0,
	       G.established && rss_base >= 0 && rss_warm >= 0 ? (rss_warm - rss_base) * 1024.0 / G.established : -1.0,
	       o->burst, G.burst_deliv, burst_secs, burst_secs > 0 ? G.burst_deliv / burst_secs : 0.0,
	       cpu_b0 >= 0 ? cpu_b1 - cpu_b0 : -1,
	       cpu_b0 >= 0 && G.burst_deliv ? (double)(cpu_b1 - cpu_b0) / G.burst_deliv : -1.0,
	       sch_b0 >= 0 && G.burst_deliv ? (sch_b1 - sch_b0) / 1e3 / G.burst_deliv : -1.0,
	       rss_b0, G.peak_kb, rss_idle >= 0 && rss_b0 >= 0 ? G.peak_kb - rss_idle : -1,
	       rss_b0 >= 0 ? G.peak_kb - rss_b0 : -1, rss_after, cl_b1 - cl_b0,
	       lat_pct(&G.lburst, 0.5), lat_pct(&G.lburst, 0.99), lat_pct(&G.lburst, 1.0),
	       nrate, G.rate_deliv, lat_pct(&G.lrate, 0.5), lat_pct(&G.lrate, 0.99), lat_pct(&G.lrate, 1.0),
	       cpu_r0 >= 0 && G.rate_deliv ? (double)(cpu_r1 - cpu_r0) / G.rate_deliv : -1.0,
	       sch_r0 >= 0 && G.rate_deliv ? (sch_r1 - sch_r0) / 1e3 / G.rate_deliv : -1.0,
	       G.rate_deliv ? (double)(cl_r1 - cl_r0) / G.rate_deliv : -1.0,
	       G.conn_errors, G.bad_status, G.proto_errors, G.closed, G.gaps, G.dups, G.unparsed,
	       G.pub_sent, G.pub_ok, G.pub_err, (!warm_ok) + (!burst_ok) + (!rate_ok) + (!storm_ok),
	       cpu_c0 >= 0 ? cpu_c1 - cpu_c0 : -1,
	       cpu_c0 >= 0 && G.established ? (double)(cpu_c1 - cpu_c0) / G.established : -1.0,
	       sch_c0 >= 0 && G.established ? (sch_c1 - sch_c0) / 1e3 / G.established : -1.0,
	       o->storm, o->replay, storm_started, G.storm_done, G.storm_deliv, storm_secs,
	       cpu_s0 >= 0 ? cpu_s1 - cpu_s0 : -1,
	       cpu_s0 >= 0 && G.storm_deliv ? (double)(cpu_s1 - cpu_s0) / G.storm_deliv : -1.0,
	       sch_s0 >= 0 && G.storm_deliv ? (sch_s1 - sch_s0) / 1e3 / G.storm_deliv : -1.0,
	       sch_s0 >= 0 && o->storm ? (sch_s1 - sch_s0) / 1e3 / o->storm : -1.0, cl_s1 - cl_s0,
	       lat_pct(&G.lstorm, 0.5), lat_pct(&G.lstorm, 0.99), lat_pct(&G.lstorm, 1.0), rss_s0, rss_s1,
	       lat_pct(&G.lfirst, 0.5), lat_pct(&G.lfirst, 0.99), o->payload);
	fflush(stdout);
	/* the kernel closes the sockets at exit */
	for (i = 0; i < o->n + o->storm; i++) G.subs[i].state = ST_DEAD;
	return (G.established == o->n + o->storm && warm_ok && burst_ok && rate_ok && storm_ok) ? 0 : 1;
}
