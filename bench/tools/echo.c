// SPDX-License-Identifier: MIT
/*
 * echo: the server side of bench/connrate.ts, run inside a container
 * namespace.
 *
 *   echo --port P [--port P2 ...] [--threads T] [--backlog B]
 *
 * Every thread has its own epoll loop and its own SO_REUSEPORT listener on
 * every port (the kernel spreads new connections over them). A connection's
 * bytes are written straight back (1 byte in, 1 byte out for connrate);
 * the server closes when the client does (EOF or RST). Non-blocking
 * everywhere, so a slow client never holds a thread. Prints "ready" once
 * every listener is up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PORTS 64

static int ports[MAX_PORTS];
static int nports;
static int backlog = 4096;

/* data.u64: listener = (1 << 32) | fd, connection = fd */
#define LISTENER_TAG (1ull << 32)

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, backlog) < 0) {
		fprintf(stderr, "echo: listen on %d: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

struct worker {
	pthread_t tid;
	int epfd;
};

static void *loop(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	char buf[4096];
	for (;;) {
		int n = epoll_wait(w->epfd, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			exit(1);
		}
		for (int k = 0; k < n; k++) {
			uint64_t d = evs[k].data.u64;
			int fd = (int)(d & 0xffffffffu);
			if (d & LISTENER_TAG) {
				for (;;) {
					int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (c < 0)
						break; /* EAGAIN, or the client already reset it */
					int one = 1;
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)c };
					if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c, &ev) < 0)
						close(c);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r > 0) {
				/* Tiny requests: the socket buffer always has room for the echo. */
				if (write(fd, buf, (size_t)r) != r) {
					close(fd);
					continue;
				}
				if (!(evs[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
					continue;
				r = 0;
			}
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				close(fd);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 1;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			goto usage;
		if (!strcmp(argv[i], "--port") && nports < MAX_PORTS)
			ports[nports++] = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--backlog"))
			backlog = atoi(argv[++i]);
		else
			goto usage;
	}
	if (!nports || threads < 1)
		goto usage;
	for (int i = 0; i < nports; i++)
		if (ports[i] < 1 || ports[i] > 65535)
			goto usage;
	signal(SIGPIPE, SIG_IGN);
	struct worker *ws = calloc((size_t)threads, sizeof(*ws));
	for (int t = 0; t < threads; t++) {
		ws[t].epfd = epoll_create1(EPOLL_CLOEXEC);
		for (int i = 0; i < nports; i++) {
			int fd = listen_on(ports[i]);
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LISTENER_TAG | (uint64_t)fd };
			epoll_ctl(ws[t].epfd, EPOLL_CTL_ADD, fd, &ev);
		}
	}
	for (int t = 0; t < threads; t++)
		pthread_create(&ws[t].tid, NULL, loop, &ws[t]);
	printf("ready\n");
	fflush(stdout);
	for (int t = 0; t < threads; t++)
		pthread_join(ws[t].tid, NULL);
	return 0;
usage:
	fprintf(stderr, "usage: echo --port P [--port P2 ...] [--threads T] [--backlog B]\n");
	return 2;
}
