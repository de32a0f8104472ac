/* SPDX-License-Identifier: MIT */
/*
 * wan-emu: a WAN link between two network namespaces, in user space, for
 * hosts whose kernel has no netem (this one). Each namespace holds a TUN
 * device; every IP packet one side routes into its TUN comes out of the
 * other's after the profile's loss, one-way delay (and jitter, order
 * kept) and a token-bucket bottleneck with a tail-drop queue, in that
 * order, as the VM bed's netem with tbf under it. Both directions are
 * shaped alike.
 *
 *   wan-emu --ns0 NS:DEV --ns1 NS:DEV [--rtt-ms R] [--jitter-ms J]
 *           [--loss-pct P] [--rate-mbit M] [--queue-ms Q] [--burst B]
 *           [--overhead B] [--queue-log FILE] [--seed S]
 *
 * The bottleneck counts each IP packet plus --overhead bytes (default 14,
 * the Ethernet header that tbf on the VM's veth counts).
 *
 * The TUN devices must exist (ip tuntap add ... mode tun), be up and have
 * an MTU of 2000 at most (larger packets are dropped and counted); the
 * namespaces are those of ip-netns(8). --queue-log gets "epoch_s bytes"
 * every 20 ms: the backlog of the ns0 -> ns1 bottleneck, as
 * qdisc_mon.py prints a tbf's. Prints "wan-emu: ready" once attached;
 * stops on SIGINT / SIGTERM, or when its parent exits, with its counters
 * on stderr; a TUN device that goes away is an error.
 *
 * Timing: it sleeps in ppoll until the next packet is due, with a timer
 * slack of 1 us, and runs SCHED_FIFO when allowed, so the endpoints' CPU
 * use does not delay the link's events (on 2 cores they share it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BYTES 2048u /* a packet of this size or more is dropped */
/* A direction: 500 Mbit/s x (75 ms of delay + 100 of queue) is 7300
 * packets of 1500 bytes. */
#define RING_SLOTS 16384u
#define READS_PER_PASS 64
#define LOG_EVERY_NS 20000000ull

struct pkt {
	uint64_t due_ns; /* leaves the delay line */
	uint16_t len; /* 0: dropped at the queue */
	uint8_t data[SLOT_BYTES];
};

struct link_dir {
	const char *name;
	int in_fd, out_fd;
	struct pkt *ring;
	uint32_t qhead; /* first in the bottleneck queue */
	uint32_t dhead; /* first still in the delay line */
	uint32_t tail;
	uint64_t last_due_ns;
	uint64_t qbytes;
	double tokens; /* bytes */
	uint64_t tokens_ns;
	uint64_t in, out, lost, queue_drops, ring_drops, oversize, write_errs;
};

struct profile {
	double rtt_ms, jitter_ms, loss, rate_bps, queue_ms;
	double burst; /* bytes */
	uint32_t overhead; /* bytes the bottleneck adds to each packet */
	uint64_t seed;
};

static volatile sig_atomic_t stop;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Uniform in [0, 1) (xorshift64*). */
static double rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ull) >> 11) /
	       9007199254740992.0;
}

/* Open TUN device @dev inside network namespace @ns (ip-netns name). */
static int open_tun(const char *ns, const char *dev)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		fprintf(stderr, "wan-emu: namespace %s: %s\n", ns,
			strerror(errno));
		return -1;
	}
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || setns(nsfd, CLONE_NEWNET)) {
		fprintf(stderr, "wan-emu: entering %s: %s\n", ns,
			strerror(errno));
		close(nsfd);
		if (self >= 0)
			close(self);
		return -1;
	}
	close(nsfd);
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr)) {
		fprintf(stderr, "wan-emu: tun %s in %s: %s\n", dev, ns,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	if (setns(self, CLONE_NEWNET))
		fprintf(stderr, "wan-emu: back to our namespace: %s\n",
			strerror(errno));
	close(self);
	return fd;
}

static uint32_t used(const struct link_dir *d)
{
	return d->tail - d->qhead;
}

/* A packet read from the sending side at @now enters the link. */
static void link_admit(struct link_dir *d, const struct profile *p,
		       uint64_t now, uint32_t len)
{
	d->in++;
	if (p->loss > 0 && rnd() < p->loss) {
		d->lost++;
		return;
	}
	if (used(d) == RING_SLOTS) {
		d->ring_drops++;
		return;
	}
	struct pkt *k = &d->ring[d->tail % RING_SLOTS];
	double delay_ms = p->rtt_ms / 2;
	if (p->jitter_ms > 0) /* half the RTT's jitter each way */
		delay_ms += (rnd() * 2 - 1) * p->jitter_ms / 2;
	uint64_t due = now + (uint64_t)(delay_ms > 0 ? delay_ms * 1e6 : 0);
	if (due < d->last_due_ns) /* jitter must not reorder */
		due = d->last_due_ns;
	d->last_due_ns = due;
	k->due_ns = due;
	k->len = (uint16_t)len;
	d->tail++;
}

/* Read what the sending side routed into its TUN; 1 if it had any, -1
 * if the device failed (it was deleted). */
static int link_read(struct link_dir *d, const struct profile *p)
{
	int got = 0;
	for (int i = 0; i < READS_PER_PASS; i++) {
		struct pkt *k = &d->ring[d->tail % RING_SLOTS];
		struct pkt spill;
		if (used(d) == RING_SLOTS)
			k = &spill; /* read it to drop it */
		ssize_t n = read(d->in_fd, k->data, SLOT_BYTES);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "wan-emu: %s: reading the TUN: %s\n",
				d->name, strerror(errno));
			return -1;
		}
		if (n <= 0)
			break;
		got = 1;
		if (n >= (ssize_t)SLOT_BYTES) { /* cut short? MTU > 2000 */
			d->oversize++;
			continue;
		}
		link_admit(d, p, now_ns(), (uint32_t)n);
	}
	return got;
}

static void refill(struct link_dir *d, const struct profile *p, uint64_t now)
{
	if (p->rate_bps <= 0)
		return;
	d->tokens += (double)(now - d->tokens_ns) * p->rate_bps / 8e9;
	if (d->tokens > p->burst)
		d->tokens = p->burst;
	d->tokens_ns = now;
}

/* Move what left the delay line into the queue and send what the bucket
 * allows; returns when the next event of @d is due (UINT64_MAX: none). */
static uint64_t link_run(struct link_dir *d, const struct profile *p,
			 uint64_t now)
{
	/* tbf's "latency": that much of the rate, plus the bucket */
	double limit = p->rate_bps > 0
			       ? p->rate_bps / 8 * p->queue_ms / 1e3 + p->burst
			       : 1e18;
	while (d->dhead != d->tail) {
		struct pkt *k = &d->ring[d->dhead % RING_SLOTS];
		if (k->due_ns > now)
			break;
		if ((double)(d->qbytes + k->len + p->overhead) > limit) {
			d->queue_drops++;
			k->len = 0;
		} else {
			d->qbytes += k->len + p->overhead;
		}
		d->dhead++;
	}
	refill(d, p, now);
	while (d->qhead != d->dhead) {
		struct pkt *k = &d->ring[d->qhead % RING_SLOTS];
		double cost = (double)(k->len + p->overhead);
		if (k->len && p->rate_bps > 0 && d->tokens < cost) {
			double wait = (cost - d->tokens) * 8e9 / p->rate_bps;
			return now + (uint64_t)wait + 1;
		}
		if (k->len) {
			if (p->rate_bps > 0)
				d->tokens -= cost;
			if (write(d->out_fd, k->data, k->len) == k->len)
				d->out++;
			else
				d->write_errs++;
			d->qbytes -= k->len + p->overhead;
		}
		d->qhead++;
	}
	return d->dhead != d->tail ? d->ring[d->dhead % RING_SLOTS].due_ns
				   : UINT64_MAX;
}

static int parse_ns_dev(const char *arg, char *ns, size_t nlen,
			const char **dev)
{
	const char *c = strchr(arg, ':');
	if (!c || c == arg || !c[1] || (size_t)(c - arg) >= nlen)
		return -1;
	memcpy(ns, arg, (size_t)(c - arg));
	ns[c - arg] = 0;
	*dev = c + 1;
	return 0;
}

static double number(const char *opt, const char *v, double lo, double hi)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || x < lo || x > hi) {
		fprintf(stderr, "wan-emu: %s %s: want a number in [%g, %g]\n",
			opt, v, lo, hi);
		exit(2);
	}
	return x;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: wan-emu --ns0 NS:TUN --ns1 NS:TUN [--rtt-ms R] "
		"[--jitter-ms J]\n"
		"               [--loss-pct P] [--rate-mbit M (0: none)] "
		"[--queue-ms Q]\n"
		"               [--burst BYTES] [--overhead BYTES] "
		"[--queue-log FILE] [--seed S]\n");
	exit(2);
}

static void report(const struct link_dir *d)
{
	fprintf(stderr,
		"wan-emu: %s: in %llu, out %llu, lost %llu, queue drops %llu, "
		"ring drops %llu, oversize %llu, write errors %llu\n",
		d->name, (unsigned long long)d->in,
		(unsigned long long)d->out, (unsigned long long)d->lost,
		(unsigned long long)d->queue_drops,
		(unsigned long long)d->ring_drops,
		(unsigned long long)d->oversize,
		(unsigned long long)d->write_errs);
}

int main(int argc, char **argv)
{
	struct profile p = { .rtt_ms = 40, .rate_bps = 100e6, .queue_ms = 100,
			     .burst = 65536, .overhead = 14, .seed = 1 };
	const char *ns_arg[2] = { NULL, NULL }, *qlog_path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(o, "--ns0"))
			ns_arg[0] = v;
		else if (!strcmp(o, "--ns1"))
			ns_arg[1] = v;
		else if (!strcmp(o, "--rtt-ms"))
			p.rtt_ms = number(o, v, 0, 10000);
		else if (!strcmp(o, "--jitter-ms"))
			p.jitter_ms = number(o, v, 0, 1000);
		else if (!strcmp(o, "--loss-pct"))
			p.loss = number(o, v, 0, 100) / 100;
		else if (!strcmp(o, "--rate-mbit"))
			p.rate_bps = number(o, v, 0, 100000) * 1e6;
		else if (!strcmp(o, "--queue-ms"))
			p.queue_ms = number(o, v, 0.1, 10000);
		else if (!strcmp(o, "--burst"))
			p.burst = number(o, v, SLOT_BYTES, 1 << 30);
		else if (!strcmp(o, "--overhead"))
			p.overhead = (uint32_t)number(o, v, 0, 256);
		else if (!strcmp(o, "--queue-log"))
			qlog_path = v;
		else if (!strcmp(o, "--seed"))
			p.seed = (uint64_t)number(o, v, 1, 1e15);
		else
			usage();
	}
	if (!ns_arg[0] || !ns_arg[1])
		usage();
	rng_state ^= p.seed * 0xbf58476d1ce4e5b9ull;

	struct link_dir dir[2];
	memset(dir, 0, sizeof(dir));
	int fd[2];
	for (int i = 0; i < 2; i++) {
		char ns[NAME_MAX + 1];
		const char *dev;
		if (parse_ns_dev(ns_arg[i], ns, sizeof(ns), &dev)) {
			fprintf(stderr, "wan-emu: --ns%d %s: want NS:TUN\n", i,
				ns_arg[i]);
			return 2;
		}
		fd[i] = open_tun(ns, dev);
		if (fd[i] < 0)
			return 1;
	}
	for (int i = 0; i < 2; i++) {
		dir[i].name = i ? "ns1 -> ns0" : "ns0 -> ns1";
		dir[i].in_fd = fd[i];
		dir[i].out_fd = fd[1 - i];
		dir[i].tokens = p.burst;
		dir[i].tokens_ns = now_ns();
		dir[i].ring = calloc(RING_SLOTS, sizeof(struct pkt));
		if (!dir[i].ring) {
			fprintf(stderr, "wan-emu: out of memory\n");
			return 1;
		}
	}
	FILE *qlog = NULL;
	if (qlog_path && !(qlog = fopen(qlog_path, "w"))) {
		fprintf(stderr, "wan-emu: %s: %s\n", qlog_path,
			strerror(errno));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Not left running at SCHED_FIFO when the script that started it
	 * dies (it lives outside the namespaces it serves). */
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		return 1;
	prctl(PR_SET_TIMERSLACK, 1000UL);
	struct sched_param sp = { .sched_priority = 10 };
	int rt = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
	fprintf(stderr,
		"wan-emu: ready: rtt %g ms, jitter %g ms, loss %g %%, "
		"rate %g Mbit/s, queue %g ms, burst %g B, overhead %u B%s\n",
		p.rtt_ms, p.jitter_ms, p.loss * 100, p.rate_bps / 1e6,
		p.queue_ms, p.burst, p.overhead, rt ? ", SCHED_FIFO" : "");

	struct pollfd pfd[2] = { { .fd = fd[0], .events = POLLIN },
				 { .fd = fd[1], .events = POLLIN } };
	uint64_t next_log = now_ns();
	int failed = 0;
	while (!stop && !failed) {
		int r0 = link_read(&dir[0], &p), r1 = link_read(&dir[1], &p);
		failed = r0 < 0 || r1 < 0;
		if (failed)
			break;
		int got = r0 | r1;
		uint64_t now = now_ns();
		uint64_t next = link_run(&dir[0], &p, now);
		uint64_t n1 = link_run(&dir[1], &p, now);
		if (n1 < next)
			next = n1;
		if (qlog && now >= next_log) {
			struct timespec rt_now;
			clock_gettime(CLOCK_REALTIME, &rt_now);
			fprintf(qlog, "%.6f %llu\n",
				rt_now.tv_sec + rt_now.tv_nsec / 1e9,
				(unsigned long long)dir[0].qbytes);
			fflush(qlog);
			next_log = now + LOG_EVERY_NS;
		}
		if (qlog && next_log < next)
			next = next_log;
		if (got)
			continue; /* more may be waiting */
		now = now_ns();
		if (next <= now)
			continue;
		uint64_t wait = next - now;
		if (wait > 100000000ull)
			wait = 100000000ull;
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000u),
				       .tv_nsec = (long)(wait % 1000000000u) };
		if (ppoll(pfd, 2, &ts, NULL) < 0 && errno != EINTR) {
			fprintf(stderr, "wan-emu: ppoll: %s\n",
				strerror(errno));
			failed = 1;
		} else if ((pfd[0].revents | pfd[1].revents) &
			   (POLLERR | POLLHUP | POLLNVAL)) {
			fprintf(stderr, "wan-emu: a TUN device went away\n");
			failed = 1;
		}
	}
	report(&dir[0]);
	report(&dir[1]);
	if (qlog)
		fclose(qlog);
	return failed;
}
