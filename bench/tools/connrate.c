// SPDX-License-Identifier: MIT
/*
 * connrate: a small load generator for bench/connrate.ts.
 *
 *   connrate crr --host IP --port P [--duration S] [--warmup S] [--concurrency C]
 *                [--threads T] [--close rst|fin] [--timeout-ms MS]
 *       New connections: each of C slots (spread over T threads, one epoll
 *       loop each) loops connect -> send 1 byte -> read the 1-byte reply ->
 *       close, for the duration. Connections completed during the warm-up
 *       are not counted. Latency per connection = connect() call to reply
 *       read (handshake + one request/response), in microseconds.
 *       --close rst (default): SO_LINGER {1, 0} before close, so the client
 *       sends RST and keeps no TIME_WAIT socket (a 2-core client would
 *       otherwise run out of ephemeral ports within seconds); fin: plain close.
 *
 *   connrate rr --host IP --port P [--duration S] [--warmup S]
 *       Request/response latency over ONE long-lived connection: send 1
 *       byte, read 1 byte, repeat; latency per exchange.
 *
 * Prints one JSON object on stdout. Exit status 0 when it ran (errors are in
 * the JSON), 2 on bad arguments, 1 when the run could not start.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency samples --------------------------------------------------- */

struct samples {
	uint32_t *v; /* nanoseconds, capped at UINT32_MAX (4.29 s) */
	size_t n, cap;
};

static void samples_add(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 65536;
		uint32_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			perror("realloc");
			exit(1);
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const struct samples *s, double q)
{
	if (!s->n)
		return -1;
	size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i] / 1000.0;
}

static void print_latency(const struct samples *s)
{
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	printf("\"latencyUs\":{\"n\":%zu,\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"min\":%.2f,\"max\":%.2f,\"mean\":%.2f}",
	       s->n, pct_us(s, 0.5), pct_us(s, 0.9), pct_us(s, 0.99), pct_us(s, 0.999), pct_us(s, 0.0), pct_us(s, 1.0),
	       s->n ? sum / (double)s->n / 1000.0 : -1);
}

/* ---- options ------------------------------------------------------------ */

struct opts {
	const char *mode;
	struct sockaddr_in addr;
	double duration, warmup;
	int concurrency, threads, rst, timeout_ms;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: connrate crr --host IP --port P [--duration S] [--warmup S] [--concurrency C] [--threads T] [--close rst|fin] [--timeout-ms MS]\n"
		"       connrate rr  --host IP --port P [--duration S] [--warmup S]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	const char *host = NULL;
	int port = 0;
	if (argc < 2)
		usage();
	memset(o, 0, sizeof(*o));
	o->mode = argv[1];
	o->duration = 3;
	o->warmup = 0;
	o->concurrency = 32;
	o->threads = 1;
	o->rst = 1;
	o->timeout_ms = 2000;
	if (strcmp(o->mode, "crr") && strcmp(o->mode, "rr"))
		usage();
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(f, "--host"))
			host = v;
		else if (!strcmp(f, "--port"))
			port = atoi(v);
		else if (!strcmp(f, "--duration"))
			o->duration = atof(v);
		else if (!strcmp(f, "--warmup"))
			o->warmup = atof(v);
		else if (!strcmp(f, "--concurrency"))
			o->concurrency = atoi(v);
		else if (!strcmp(f, "--threads"))
			o->threads = atoi(v);
		else if (!strcmp(f, "--timeout-ms"))
			o->timeout_ms = atoi(v);
		else if (!strcmp(f, "--close")) {
			if (!strcmp(v, "rst"))
				o->rst = 1;
			else if (!strcmp(v, "fin"))
				o->rst = 0;
			else
				usage();
		} else
			usage();
	}
	o->addr.sin_family = AF_INET;
	o->addr.sin_port = htons((uint16_t)port);
	if (!host || inet_pton(AF_INET, host, &o->addr.sin_addr) != 1 || port < 1 || port > 65535 || o->duration <= 0 ||
	    o->warmup < 0 || o->concurrency < 1 || o->threads < 1 || o->timeout_ms < 1)
		usage();
	if (o->threads > o->concurrency)
		o->threads = o->concurrency;
}

/* ---- crr: new connections ----------------------------------------------- */

enum { S_IDLE, S_CONNECTING, S_SENT };

struct slot {
	int fd;
	int state;
	uint64_t t0;
};

struct worker {
	pthread_t tid;
	const struct opts *o;
	int nslots;
	uint64_t start, measure_from, deadline;
	/* results (connections completed inside the measured window) */
	uint64_t completed;
	uint64_t err_connect, err_timeout, err_reset, err_eof, err_other;
	int last_errno;
	struct samples lat;
};

static void slot_close(struct slot *s, int rst)
{
	if (s->fd < 0)
		return;
	if (rst) {
		struct linger l = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(s->fd); /* also removes it from the epoll set */
	s->fd = -1;
	s->state = S_IDLE;
}

static void count_error(struct worker *w, uint64_t *ctr, int err, uint64_t t)
{
	if (t >= w->measure_from) {
		(*ctr)++;
		w->last_errno = err;
	}
}

static void slot_start(struct worker *w, int epfd, struct slot *s, int idx)
{
	uint64_t t = now_ns();
	if (t >= w->deadline)
		return;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		count_error(w, &w->err_other, errno, t);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->fd = fd;
	s->t0 = t;
	int r = connect(fd, (const struct sockaddr *)&w->o->addr, sizeof(w->o->addr));
	if (r < 0 && errno != EINPROGRESS) {
		/* Left idle: the periodic scan retries it (no busy loop on EADDRNOTAVAIL). */
		count_error(w, &w->err_connect, errno, t);
		slot_close(s, 1);
		return;
	}
	/* Connected at once (r == 0) or in progress: EPOLLOUT fires either way. */
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)idx };
	s->state = S_CONNECTING;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("epoll_ctl");
		exit(1);
	}
}

static void *crr_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	struct slot *slots = calloc((size_t)w->nslots, sizeof(*slots));
	struct epoll_event evs[256];
	uint64_t timeout_ns = (uint64_t)o->timeout_ms * 1000000ull;
	uint64_t next_scan = 0;
	if (epfd < 0 || !slots) {
		perror("epoll/calloc");
		exit(1);
	}
	for (int i = 0; i < w->nslots; i++) {
		slots[i].fd = -1;
		slot_start(w, epfd, &slots[i], i);
	}
	for (;;) {
		uint64_t t = now_ns();
		if (t >= w->deadline)
			break;
		int wait_ms = (int)((w->deadline - t) / 1000000ull) + 1;
		if (wait_ms > 10)
			wait_ms = 10;
		int n = epoll_wait(epfd, evs, 256, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			exit(1);
		}
		for (int k = 0; k < n; k++) {
			int idx = (int)evs[k].data.u32;
			struct slot *s = &slots[idx];
			uint64_t now = now_ns();
			if (s->fd < 0)
				continue;
			if (s->state == S_CONNECTING) {
				int err = 0;
				socklen_t len = sizeof(err);
				getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err) {
					count_error(w, &w->err_connect, err, now);
					slot_close(s, 1);
					slot_start(w, epfd, s, idx);
					continue;
				}
				char b = 'x';
				if (write(s->fd, &b, 1) != 1) {
					count_error(w, &w->err_other, errno, now);
					slot_close(s, 1);
					slot_start(w, epfd, s, idx);
					continue;
				}
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)idx };
				epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
				s->state = S_SENT;
			} else if (s->state == S_SENT) {
				char b[16];
				ssize_t r = read(s->fd, b, sizeof(b));
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (r > 0) {
					if (now >= w->measure_from && now < w->deadline) {
						w->completed++;
						samples_add(&w->lat, now - s->t0);
					}
				} else if (r == 0) {
					count_error(w, &w->err_eof, 0, now);
				} else {
					count_error(w, errno == ECONNRESET ? &w->err_reset : &w->err_other, errno, now);
				}
				slot_close(s, o->rst);
				slot_start(w, epfd, s, idx);
			}
		}
		t = now_ns();
		if (t >= next_scan) {
			next_scan = t + 20000000ull;
			for (int i = 0; i < w->nslots; i++) {
				struct slot *s = &slots[i];
				if (s->fd >= 0 && t - s->t0 > timeout_ns) {
					count_error(w, &w->err_timeout, ETIMEDOUT, t);
					slot_close(s, 1);
					slot_start(w, epfd, s, i);
				} else if (s->fd < 0) {
					slot_start(w, epfd, s, i);
				}
			}
		}
	}
	for (int i = 0; i < w->nslots; i++)
		slot_close(&slots[i], 1);
	free(slots);
	close(epfd);
	return NULL;
}

static int run_crr(const struct opts *o)
{
	struct worker *ws = calloc((size_t)o->threads, sizeof(*ws));
	uint64_t start = now_ns();
	uint64_t measure_from = start + (uint64_t)(o->warmup * 1e9);
	uint64_t deadline = measure_from + (uint64_t)(o->duration * 1e9);
	for (int i = 0; i < o->threads; i++) {
		ws[i].o = o;
		ws[i].nslots = o->concurrency / o->threads + (i < o->concurrency % o->threads);
		ws[i].start = start;
		ws[i].measure_from = measure_from;
		ws[i].deadline = deadline;
		if (pthread_create(&ws[i].tid, NULL, crr_worker, &ws[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	struct samples all = { 0 };
	uint64_t completed = 0, ec = 0, et = 0, er = 0, ee = 0, eo = 0;
	int last_errno = 0;
	for (int i = 0; i < o->threads; i++) {
		pthread_join(ws[i].tid, NULL);
		completed += ws[i].completed;
		ec += ws[i].err_connect;
		et += ws[i].err_timeout;
		er += ws[i].err_reset;
		ee += ws[i].err_eof;
		eo += ws[i].err_other;
		if (ws[i].last_errno)
			last_errno = ws[i].last_errno;
		for (size_t k = 0; k < ws[i].lat.n; k++)
			samples_add(&all, (uint64_t)ws[i].lat.v[k]);
		free(ws[i].lat.v);
	}
	uint64_t end = now_ns();
	double elapsed = (double)(deadline - measure_from) / 1e9;
	qsort(all.v, all.n, sizeof(*all.v), cmp_u32);
	printf("{\"mode\":\"crr\",\"connections\":%llu,\"errors\":%llu,"
	       "\"errorsByKind\":{\"connect\":%llu,\"timeout\":%llu,\"reset\":%llu,\"eof\":%llu,\"other\":%llu},"
	       "\"lastError\":\"%s\",\"elapsedS\":%.6f,\"wallS\":%.6f,\"ratePerS\":%.1f,"
	       "\"concurrency\":%d,\"threads\":%d,\"close\":\"%s\",\"timeoutMs\":%d,\"warmupS\":%.3f,",
	       (unsigned long long)completed, (unsigned long long)(ec + et + er + ee + eo), (unsigned long long)ec,
	       (unsigned long long)et, (unsigned long long)er, (unsigned long long)ee, (unsigned long long)eo,
	       last_errno ? strerror(last_errno) : "", elapsed, (double)(end - start) / 1e9, (double)completed / elapsed,
	       o->concurrency, o->threads, o->rst ? "rst" : "fin", o->timeout_ms, o->warmup);
	print_latency(&all);
	printf("}\n");
	free(all.v);
	free(ws);
	return 0;
}

/* ---- rr: one long-lived connection --------------------------------------- */

static int run_rr(const struct opts *o)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	uint64_t errors = 0;
	const char *err = "";
	struct samples lat = { 0 };
	uint64_t requests = 0;
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A receive timeout so a lost reply cannot hang the run. */
	struct timeval tv = { .tv_sec = 2, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	uint64_t start = now_ns();
	uint64_t measure_from = start + (uint64_t)(o->warmup * 1e9);
	uint64_t deadline = measure_from + (uint64_t)(o->duration * 1e9);
	if (connect(fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) < 0) {
		errors++;
		err = strerror(errno);
	} else {
		for (;;) {
			uint64_t t0 = now_ns();
			if (t0 >= deadline)
				break;
			char b = 'x';
			if (write(fd, &b, 1) != 1) {
				errors++;
				err = strerror(errno);
				break;
			}
			ssize_t r = read(fd, &b, 1);
			if (r != 1) {
				errors++;
				err = r == 0 ? "connection closed" : strerror(errno);
				break;
			}
			uint64_t t1 = now_ns();
			if (t0 >= measure_from) {
				requests++;
				samples_add(&lat, t1 - t0);
			}
		}
	}
	close(fd);
	uint64_t end = now_ns();
	double elapsed = (double)((end < deadline ? end : deadline) - measure_from) / 1e9;
	qsort(lat.v, lat.n, sizeof(*lat.v), cmp_u32);
	printf("{\"mode\":\"rr\",\"requests\":%llu,\"errors\":%llu,\"lastError\":\"%s\",\"elapsedS\":%.6f,\"ratePerS\":%.1f,\"warmupS\":%.3f,",
	       (unsigned long long)requests, (unsigned long long)errors, err, elapsed,
	       elapsed > 0 ? (double)requests / elapsed : 0, o->warmup);
	print_latency(&lat);
	printf("}\n");
	free(lat.v);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	parse(argc, argv, &o);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	int rc = !strcmp(o.mode, "crr") ? run_crr(&o) : run_rr(&o);
	fflush(stdout);
	return rc;
}
