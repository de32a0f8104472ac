/* SPDX-License-Identifier: MIT */
#ifndef WCCL_STREAM_ICMP_H
#define WCCL_STREAM_ICMP_H

/*
 * The stream's path probe over ICMP echo. The peer's kernel answers, and
 * ours stamps the reply's arrival (SO_TIMESTAMPNS), so the RTT holds the
 * path and its queue but neither side's scheduling: the ping / pong on a
 * TCP connection has both applications' wake-ups in it (samples 5-15 ms
 * over the path on a busy guest, where ICMP ping read under 1 ms).
 *
 * An unprivileged ICMP socket (SOCK_DGRAM, net.ipv4.ping_group_range)
 * first, a raw one (CAP_NET_RAW) next; neither: the caller keeps its TCP
 * probe. Non-blocking; no allocation after open.
 */
#include <stdint.h>
#include <sys/socket.h>

struct stream_icmp {
	int fd;
	int raw;	/* 1: SOCK_RAW (we fill the header, see the IP one) */
	int family;	/* AF_INET or AF_INET6 */
	uint16_t id;	/* ours (raw); the kernel's (dgram) */
	uint16_t seq;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

/* Open a probe to the host of @peer (its port is ignored). 0, or a
 * negative errno (-EACCES / -EPERM: not allowed here). */
int stream_icmp_open(struct stream_icmp *p, const struct sockaddr *peer,
		     socklen_t len);
/* Send one echo request. 0, or a negative errno (-EAGAIN: try later). */
int stream_icmp_send(struct stream_icmp *p);
/* One reply, if one is waiting: 1 and its RTT in *@rtt_ns, 0 when none,
 * or a negative errno. Replies to other probes are skipped. */
int stream_icmp_recv(struct stream_icmp *p, uint64_t *rtt_ns);
void stream_icmp_close(struct stream_icmp *p);

#endif
