/*
 * probe: the small network programs the forwarder comparison drives.
 *
 * One binary, one subcommand per job, all plain blocking or epoll C so that the
 * measuring side costs little next to the relays being measured:
 *
 *   probe echo ADDR PORT            echo server (epoll); prints "ready" once listening
 *   probe rtt HOST PORT COUNT WARMUP SIZE
 *                                   SIZE-byte ping-pongs over one TCP_NODELAY connection;
 *                                   prints "p50_us p99_us mean_us count"
 *   probe cps HOST PORT SECONDS     connect, 1 byte each way, close, in sequence;
 *                                   prints "count seconds per_second p50_us p99_us failures"
 *   probe ttfb HOST PORT            one connection: connect + 1 byte + its echo;
 *                                   prints the time taken in milliseconds
 *   probe hold HOST PORT COUNT INFLIGHT TIMEOUT_S
 *                                   opens COUNT connections (at most INFLIGHT connecting at
 *                                   once), each sends one byte and reads its echo; prints
 *                                   "held N failed F seconds S", then keeps them open until
 *                                   standard input closes
 *
 * Every loop is bounded by a count or a deadline. Each command raises its own open-file
 * limit to the hard limit, since holding thousands of sockets is part of the job.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_BUF 65536
#define LISTEN_BACKLOG 4096
#define MAX_EVENTS 256
#define MAX_RTT_SIZE 65536
#define MAX_CPS_FAILURES 1000
#define IO_TIMEOUT_S 10

static void die(const char *what)
{
	fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static struct sockaddr_in make_addr(const char *host, const char *port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "probe: %s is not an IPv4 address\n", host);
		exit(2);
	}
	return sa;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void set_io_timeout(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int dial(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_nodelay(fd);
	set_io_timeout(fd);
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_exact(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(double *sorted, size_t n, double p)
{
	if (n == 0)
		return 0.0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

/* ---- echo server ---------------------------------------------------------------- */

/* Bytes an echo connection could not write yet; reading pauses until they are out. */
struct pending {
	int fd;
	char *data;
	size_t len;
	size_t off;
};

static struct pending **pendings;
static int pendings_cap;

static void echo_close(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	if (fd < pendings_cap && pendings[fd]) {
		free(pendings[fd]->data);
		free(pendings[fd]);
		pendings[fd] = NULL;
	}
	close(fd);
}

/* Writes what is pending on fd; returns 1 when done, 0 when it must wait, -1 on error. */
static int echo_flush(int fd)
{
	struct pending *p = pendings[fd];
	while (p->off < p->len) {
		ssize_t n = write(fd, p->data + p->off, p->len - p->off);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		p->off += (size_t)n;
	}
	free(p->data);
	free(p);
	pendings[fd] = NULL;
	return 1;
}

static void echo_readable(int ep, int fd, char *buf)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = read(fd, buf, ECHO_BUF);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			echo_close(ep, fd);
			return;
		}
		ssize_t w = write(fd, buf, (size_t)n);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			w = 0;
		if (w < 0) {
			echo_close(ep, fd);
			return;
		}
		if (w < n) {
			struct pending *p = malloc(sizeof *p);
			if (!p)
				die("malloc");
			p->fd = fd;
			p->len = (size_t)(n - w);
			p->off = 0;
			p->data = malloc(p->len);
			if (!p->data)
				die("malloc");
			memcpy(p->data, buf + w, p->len);
			pendings[fd] = p;
			struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
			epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
			return;
		}
	}
}

static _Noreturn void cmd_echo(const char *host, const char *port)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	pendings_cap = (int)rl.rlim_cur + 16;
	pendings = calloc((size_t)pendings_cap, sizeof *pendings);
	char *buf = malloc(ECHO_BUF);
	if (!pendings || !buf)
		die("malloc");

	struct sockaddr_in sa = make_addr(host, port);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind");
	if (listen(lfd, LISTEN_BACKLOG) < 0)
		die("listen");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);

	struct epoll_event events[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(ep, events, MAX_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			if (fd == lfd) {
				for (int k = 0; k < MAX_EVENTS; k++) {
					int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (c < 0)
						break;
					if (c >= pendings_cap) {
						close(c);
						continue;
					}
					set_nodelay(c);
					struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				}
			} else if (fd < pendings_cap && pendings[fd]) {
				int r = echo_flush(fd);
				if (r < 0) {
					echo_close(ep, fd);
				} else if (r > 0) {
					struct epoll_event cev = { .events = EPOLLIN, .data.fd = fd };
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
				}
			} else {
				echo_readable(ep, fd, buf);
			}
		}
	}
}

/* ---- round trips ---------------------------------------------------------------- */

static int cmd_rtt(const char *host, const char *port, long count, long warmup, long size)
{
	if (count < 1 || warmup < 0 || size < 1 || size > MAX_RTT_SIZE) {
		fprintf(stderr, "probe: rtt needs COUNT >= 1, WARMUP >= 0, 1 <= SIZE <= %d\n",
			MAX_RTT_SIZE);
		return 2;
	}
	struct sockaddr_in sa = make_addr(host, port);
	int fd = dial(&sa);
	if (fd < 0)
		die("connect");
	char *out = malloc((size_t)size), *in = malloc((size_t)size);
	double *samples = malloc(sizeof(double) * (size_t)count);
	if (!out || !in || !samples)
		die("malloc");
	memset(out, 'p', (size_t)size);
	double sum = 0;
	for (long i = 0; i < warmup + count; i++) {
		double t0 = now_s();
		if (write_all(fd, out, (size_t)size) < 0 || read_exact(fd, in, (size_t)size) < 0)
			die("round trip");
		double dt = now_s() - t0;
		if (i >= warmup) {
			samples[i - warmup] = dt * 1e6;
			sum += dt * 1e6;
		}
	}
	close(fd);
	qsort(samples, (size_t)count, sizeof(double), cmp_double);
	printf("%.2f %.2f %.2f %ld\n", percentile(samples, (size_t)count, 0.50),
	       percentile(samples, (size_t)count, 0.99), sum / (double)count, count);
	return 0;
}

/* ---- new connections per second ------------------------------------------------- */

static int one_exchange(const struct sockaddr_in *sa)
{
	int fd = dial(sa);
	if (fd < 0)
		return -1;
	char b = 'c';
	int rc = (write_all(fd, &b, 1) == 0 && read_exact(fd, &b, 1) == 0) ? 0 : -1;
	close(fd);
	return rc;
}

static int cmd_cps(const char *host, const char *port, double seconds)
{
	if (seconds <= 0 || seconds > 600) {
		fprintf(stderr, "probe: cps needs 0 < SECONDS <= 600\n");
		return 2;
	}
	struct sockaddr_in sa = make_addr(host, port);
	size_t cap = 1 << 16, n = 0;
	double *samples = malloc(sizeof(double) * cap);
	if (!samples)
		die("malloc");
	long failures = 0;
	double start = now_s(), end = start + seconds, t = start;
	while (t < end && failures < MAX_CPS_FAILURES) {
		double t0 = t;
		int rc = one_exchange(&sa);
		t = now_s();
		if (rc < 0) {
			failures++;
			continue;
		}
		if (n == cap) {
			cap *= 2;
			samples = realloc(samples, sizeof(double) * cap);
			if (!samples)
				die("realloc");
		}
		samples[n++] = (t - t0) * 1e6;
	}
	double elapsed = t - start;
	qsort(samples, n, sizeof(double), cmp_double);
	printf("%zu %.3f %.1f %.2f %.2f %ld\n", n, elapsed, (double)n / elapsed,
	       percentile(samples, n, 0.50), percentile(samples, n, 0.99), failures);
	return failures >= MAX_CPS_FAILURES ? 1 : 0;
}

/* ---- time to first response ----------------------------------------------------- */

static int cmd_ttfb(const char *host, const char *port)
{
	struct sockaddr_in sa = make_addr(host, port);
	double t0 = now_s();
	if (one_exchange(&sa) < 0)
		die("exchange");
	printf("%.3f\n", (now_s() - t0) * 1e3);
	return 0;
}

/* ---- many idle connections ------------------------------------------------------ */

static int cmd_hold(const char *host, const char *port, long count, long inflight, double timeout)
{
	if (count < 1 || count > 1000000 || inflight < 1 || timeout <= 0) {
		fprintf(stderr, "probe: hold needs 1 <= COUNT <= 1000000, INFLIGHT >= 1, TIMEOUT > 0\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_in sa = make_addr(host, port);
	int *fds = malloc(sizeof(int) * (size_t)count);
	if (!fds)
		die("malloc");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	long started = 0, active = 0, held = 0, failed = 0;
	double start = now_s(), deadline = start + timeout;
	struct epoll_event events[MAX_EVENTS];

	while (held + failed < count && now_s() < deadline) {
		while (active < inflight && started < count) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0) {
				fds[started++] = -1;
				failed++;
				continue;
			}
			set_nodelay(fd);
			int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
			if (rc < 0 && errno != EINPROGRESS) {
				close(fd);
				fds[started++] = -1;
				failed++;
				continue;
			}
			fds[started] = fd;
			struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)started };
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			started++;
			active++;
		}
		int n = epoll_wait(ep, events, MAX_EVENTS, 100);
		for (int i = 0; i < n; i++) {
			long idx = (long)events[i].data.u64;
			int fd = fds[idx];
			int ok = 1;
			if (events[i].events & EPOLLOUT) {
				int err = 0;
				socklen_t len = sizeof err;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
				char b = 'h';
				if (err != 0 || write(fd, &b, 1) != 1) {
					ok = 0;
				} else {
					struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)idx };
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
					continue;
				}
			} else if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				char b;
				ok = read(fd, &b, 1) == 1;
				if (ok) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
					held++;
					active--;
					continue;
				}
			}
			if (!ok) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
				fds[idx] = -1;
				failed++;
				active--;
			}
		}
	}
	failed = count - held;
	printf("held %ld failed %ld seconds %.2f\n", held, failed, now_s() - start);
	fflush(stdout);

	/* Hold until the driver closes our standard input (bounded by its own timeout). */
	char sink[64];
	while (read(0, sink, sizeof sink) > 0) {
	}
	for (long i = 0; i < started; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: probe echo ADDR PORT\n"
		"       probe rtt HOST PORT COUNT WARMUP SIZE\n"
		"       probe cps HOST PORT SECONDS\n"
		"       probe ttfb HOST PORT\n"
		"       probe hold HOST PORT COUNT INFLIGHT TIMEOUT_S\n");
	exit(2);
}

int main(int argc, char **argv)
{
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	if (strcmp(cmd, "echo") == 0 && argc == 4)
		cmd_echo(argv[2], argv[3]);
	if (strcmp(cmd, "rtt") == 0 && argc == 7)
		return cmd_rtt(argv[2], argv[3], atol(argv[4]), atol(argv[5]), atol(argv[6]));
	if (strcmp(cmd, "cps") == 0 && argc == 5)
		return cmd_cps(argv[2], argv[3], atof(argv[4]));
	if (strcmp(cmd, "ttfb") == 0 && argc == 4)
		return cmd_ttfb(argv[2], argv[3]);
	if (strcmp(cmd, "hold") == 0 && argc == 7)
		return cmd_hold(argv[2], argv[3], atol(argv[4]), atol(argv[5]), atof(argv[6]));
	usage();
	return 2;
}
