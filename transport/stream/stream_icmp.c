/* SPDX-License-Identifier: MIT */
#include "stream_icmp.h"

#include <errno.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Our echo payload: a magic (so a raw socket, which sees every reply to
 * this host, keeps only ours) and the send time, CLOCK_REALTIME as the
 * kernel's receive stamps. */
#define ICMP_PROBE_MAGIC 0x77636c7070726f62ull /* "wcclprob" */
#define ICMP_HDR 8
#define ICMP_PAYLOAD 16

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint16_t inet_csum(const uint8_t *b, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static int open_socket(struct stream_icmp *p, int type)
{
	int proto = p->family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	int fd = socket(p->family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) ||
	    connect(fd, (const struct sockaddr *)&p->peer, p->peer_len)) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (type == SOCK_RAW && p->family == AF_INET) {
		/* Echo replies only: a raw socket gets every ICMP message. */
		uint32_t mask = ~(1u << ICMP_ECHOREPLY);
		setsockopt(fd, SOL_RAW, ICMP_FILTER, &mask, sizeof(mask));
	} else if (type == SOCK_RAW) {
		struct icmp6_filter f;
		ICMP6_FILTER_SETBLOCKALL(&f);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
		setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
	}
	p->fd = fd;
	p->raw = type == SOCK_RAW;
	return 0;
}

int stream_icmp_open(struct stream_icmp *p, const struct sockaddr *peer,
		     socklen_t len)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	if ((peer->sa_family != AF_INET && peer->sa_family != AF_INET6) ||
	    len > sizeof(p->peer))
		return -EAFNOSUPPORT;
	memcpy(&p->peer, peer, len);
	p->peer_len = len;
	p->family = peer->sa_family;
	/* The port means nothing to ICMP; a raw socket's connect wants 0. */
	if (p->family == AF_INET)
		((struct sockaddr_in *)&p->peer)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&p->peer)->sin6_port = 0;
	if (getrandom(&p->id, sizeof(p->id), GRND_NONBLOCK) != sizeof(p->id))
		p->id = (uint16_t)getpid();
	int rc = open_socket(p, SOCK_DGRAM);
	if (rc == -EACCES || rc == -EPERM || rc == -EPROTONOSUPPORT)
		rc = open_socket(p, SOCK_RAW);
	return rc;
}

int stream_icmp_send(struct stream_icmp *p)
{
	uint8_t m[ICMP_HDR + ICMP_PAYLOAD];
	uint64_t magic = ICMP_PROBE_MAGIC, t;
	memset(m, 0, sizeof(m));
	m[0] = p->family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
	/* id: ours on a raw socket; the kernel sets a datagram socket's */
	m[4] = (uint8_t)(p->id >> 8);
	m[5] = (uint8_t)p->id;
	p->seq++;
	m[6] = (uint8_t)(p->seq >> 8);
	m[7] = (uint8_t)p->seq;
	memcpy(m + ICMP_HDR, &magic, sizeof(magic));
	t = realtime_ns();
	memcpy(m + ICMP_HDR + 8, &t, sizeof(t));
	/* The kernel sums ICMPv6 and datagram sockets itself. */
	if (p->raw && p->family == AF_INET) {
		uint16_t c = inet_csum(m, sizeof(m));
		m[2] = (uint8_t)(c >> 8);
		m[3] = (uint8_t)c;
	}
	if (send(p->fd, m, sizeof(m), MSG_DONTWAIT) < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}

int stream_icmp_recv(struct stream_icmp *p, uint64_t *rtt_ns)
{
	for (;;) {
		uint8_t b[128];
		union {
			char buf[CMSG_SPACE(sizeof(struct timespec))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = b, .iov_len = sizeof(b)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		ssize_t n = recvmsg(p->fd, &mh, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0
								       : -errno;
		uint64_t rx = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;
				memcpy(&ts, CMSG_DATA(c), sizeof(ts));
				rx = (uint64_t)ts.tv_sec * 1000000000ull +
				     (uint64_t)ts.tv_nsec;
			}
		const uint8_t *icmp = b;
		size_t len = (size_t)n;
		/* A raw IPv4 socket hands over the IP header too. */
		if (p->raw && p->family == AF_INET) {
			size_t ihl = len ? (size_t)(b[0] & 0xf) * 4 : 0;
			if (ihl < 20 || ihl > len)
				continue;
			icmp += ihl;
			len -= ihl;
		}
		if (len < ICMP_HDR + ICMP_PAYLOAD)
			continue;
		int reply = p->family == AF_INET ? ICMP_ECHOREPLY
						 : ICMP6_ECHO_REPLY;
		uint16_t id = (uint16_t)(icmp[4] << 8 | icmp[5]);
		uint64_t magic, t;
		memcpy(&magic, icmp + ICMP_HDR, sizeof(magic));
		memcpy(&t, icmp + ICMP_HDR + 8, sizeof(t));
		if (icmp[0] != reply || magic != ICMP_PROBE_MAGIC ||
		    (p->raw && id != p->id))
			continue;
		if (!rx)
			rx = realtime_ns();
		/* A wall clock stepped between send and reply: no sample. */
		if (rx < t || rx - t > 60000000000ull)
			continue;
		*rtt_ns = rx - t;
		return 1;
	}
}

void stream_icmp_close(struct stream_icmp *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}
