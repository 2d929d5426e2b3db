/*
 * linkdelay: a point-to-point link with a fixed one-way delay between two network
 * namespaces, for kernels built without the netem queueing discipline.
 *
 *   linkdelay NETNS_A IFNAME_A NETNS_B IFNAME_B DELAY_MS
 *
 * It creates a TUN device in each namespace (NETNS_* are paths such as
 * /run/netns/NAME), prints "ready", and then moves every IP packet read from one device
 * to the other once DELAY_MS have passed since it was read, so each direction sees the
 * delay once and a round trip twice. Order is kept; a packet that finds its direction's
 * queue full is dropped, as a real link would. The caller assigns addresses and brings
 * the devices up; both devices vanish when this program exits (SIGTERM ends it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_SLOTS 4096
#define MAX_PACKET 2048
#define MAX_DELAY_MS 10000

struct slot {
	struct timespec due;
	size_t len;
	unsigned char data[MAX_PACKET];
};

/* One direction: packets read from `from`, written to `to` when due. */
struct queue {
	int from, to;
	size_t head, count;
	unsigned long dropped;
	struct slot *slots;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "linkdelay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int open_tun_in(const char *netns, const char *name)
{
	int ns = open(netns, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		die(netns);
	if (setns(ns, CLONE_NEWNET) < 0)
		die("setns");
	close(ns);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("/dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	if (strlen(name) >= IFNAMSIZ) {
		fprintf(stderr, "linkdelay: interface name %s is too long\n", name);
		exit(2);
	}
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die("TUNSETIFF");
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		die("fcntl");
	return fd;
}

static struct timespec add_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static long long ns_until(struct timespec due, struct timespec now)
{
	return (long long)(due.tv_sec - now.tv_sec) * 1000000000LL + (due.tv_nsec - now.tv_nsec);
}

/* Reads every packet waiting on q->from into the queue, stamped with its due time. */
static void take(struct queue *q, long delay_ms)
{
	for (int budget = 0; budget < QUEUE_SLOTS; budget++) {
		unsigned char scratch[MAX_PACKET];
		int full = q->count == QUEUE_SLOTS;
		struct slot *s = full ? NULL : &q->slots[(q->head + q->count) % QUEUE_SLOTS];
		ssize_t n = read(q->from, full ? scratch : s->data, MAX_PACKET);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			die("read");
		if (full) {
			q->dropped++;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &s->due);
		s->due = add_ms(s->due, delay_ms);
		s->len = (size_t)n;
		q->count++;
	}
}

/* Writes out every packet that is due; returns nanoseconds until the next, or -1. */
static long long release(struct queue *q)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	while (q->count > 0) {
		struct slot *s = &q->slots[q->head];
		long long wait = ns_until(s->due, now);
		if (wait > 0)
			return wait;
		/* A write the other side cannot take now counts as a drop, like a full queue. */
		if (write(q->to, s->data, s->len) < 0)
			q->dropped++;
		q->head = (q->head + 1) % QUEUE_SLOTS;
		q->count--;
	}
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: linkdelay NETNS_A IFNAME_A NETNS_B IFNAME_B DELAY_MS\n");
		return 2;
	}
	long delay_ms = atol(argv[5]);
	if (delay_ms < 0 || delay_ms > MAX_DELAY_MS) {
		fprintf(stderr, "linkdelay: DELAY_MS must be between 0 and %d\n", MAX_DELAY_MS);
		return 2;
	}
	int a = open_tun_in(argv[1], argv[2]);
	int b = open_tun_in(argv[3], argv[4]);

	struct queue qs[2] = {
		{ .from = a, .to = b, .slots = calloc(QUEUE_SLOTS, sizeof(struct slot)) },
		{ .from = b, .to = a, .slots = calloc(QUEUE_SLOTS, sizeof(struct slot)) },
	};
	if (!qs[0].slots || !qs[1].slots)
		die("calloc");

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready\n");
	fflush(stdout);

	struct pollfd pfds[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
	while (!stopping) {
		long long next = -1;
		for (int i = 0; i < 2; i++) {
			long long w = release(&qs[i]);
			if (w >= 0 && (next < 0 || w < next))
				next = w;
		}
		struct timespec ts = { .tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL };
		int n = ppoll(pfds, 2, next < 0 ? NULL : &ts, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("ppoll");
		for (int i = 0; i < 2; i++)
			if (pfds[i].revents & POLLIN)
				take(&qs[i], delay_ms);
	}
	fprintf(stderr, "linkdelay: dropped %lu and %lu packets\n", qs[0].dropped, qs[1].dropped);
	return 0;
}
