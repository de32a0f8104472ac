/* SPDX-License-Identifier: MIT */
/*
 * Connections: listen / accept / connect, socket options, the HELLO
 * handshake state, failure and close. Nothing here blocks: connect is an
 * io_uring op, accept polls a non-blocking listening socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "core/sock.h"
#include "uring.h"

struct uring_listener {
	struct wccl_listener base;
	struct uring_ctx *ctx;
	int fd;
	char addr[WCCL_ADDR_MAX];
};

static void uring_fmt_sa(const struct sockaddr_storage *ss, char *buf,
			 size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		port = ntohs(s->sin6_port);
		snprintf(buf, len, "[%s]:%u", ip, port);
		return;
	}
	const struct sockaddr_in *s = (const void *)ss;
	inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
	port = ntohs(s->sin_port);
	snprintf(buf, len, "%s:%u", ip, port);
}

static void uring_set_peer(struct uring_ep *ep)
{
	char a[WCCL_ADDR_MAX - 8];
	uring_fmt_sa(&ep->sa, a, sizeof(a));
	snprintf(ep->base.peer, sizeof(ep->base.peer), "uring:%s", a);
}

static void uring_bufsize(int fd)
{
	int64_t b = wccl_param_int(WCCL_PARAM_URING_SOCKBUF);
	if (b <= 0)
		return;
	int v = b > (1 << 30) ? 1 << 30 : (int)b;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

/* Loopback or one of our own addresses: the peer is on this host. */
static bool uring_peer_local(int fd)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *)&peer, &pl) ||
	    getsockname(fd, (struct sockaddr *)&me, &ml) ||
	    me.ss_family != peer.ss_family)
		return false;
	if (peer.ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)&peer;
		const struct sockaddr_in *m = (const void *)&me;
		return (ntohl(p->sin_addr.s_addr) >> 24) == 127 ||
		       p->sin_addr.s_addr == m->sin_addr.s_addr;
	}
	if (peer.ss_family == AF_INET6) {
		const struct in6_addr *p =
			&((const struct sockaddr_in6 *)(const void *)&peer)
				 ->sin6_addr;
		const struct in6_addr *m =
			&((const struct sockaddr_in6 *)(const void *)&me)
				 ->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(p) ||
		       (IN6_IS_ADDR_V4MAPPED(p) && p->s6_addr[12] == 127) ||
		       !memcmp(p, m, sizeof(*p));
	}
	return false;
}

/* On the same host the receiver copies a zero-copy skb anyway, and the
 * sender still waits for the notification: SEND_ZC only loses there. */
void uring_ep_set_zc(struct uring_ep *ep)
{
	ep->zc = ep->ctx->has_zc &&
		 (ep->ctx->zc_local || !uring_peer_local(ep->fd));
	WCCL_TRACE(WCCL_SUB_URING, "%s: SEND_ZC %s", ep->base.peer,
		   ep->zc ? "on" : "off");
}

/* Best effort: a missing option costs performance or failure detection
 * speed, not correctness, so failures are only logged. */
static void uring_sockopts(int fd)
{
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		WCCL_INFO(WCCL_SUB_URING, "TCP_NODELAY: %s", strerror(errno));
	uring_bufsize(fd);
	int ka = (int)wccl_param_int(WCCL_PARAM_URING_KEEPALIVE_S);
	if (ka > 0) {
		int intvl = ka / 3 ? ka / 3 : 1, cnt = 3;
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &ka, sizeof(ka));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
			   sizeof(intvl));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	}
	int ut = (int)wccl_param_int(WCCL_PARAM_URING_USER_TIMEOUT_MS);
	if (ut > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
}

static struct uring_ep *uring_ep_alloc(struct uring_ctx *ctx,
				       struct wccl_cq *cq, int fd)
{
	struct uring_ep *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->ctx = ctx;
	ep->fd = fd;
	ep->depth = ctx->depth;
	ep->mask = ctx->depth - 1;
	ep->tx = calloc(ep->depth, sizeof(*ep->tx));
	ep->rq = calloc(ep->depth, sizeof(*ep->rq));
	ep->naks = calloc(ep->depth, sizeof(*ep->naks));
	ep->stg = malloc(ctx->staging);
	if (!ep->tx || !ep->rq || !ep->naks || !ep->stg) {
		uring_ep_free(ep);
		return NULL;
	}
	for (uint32_t i = 0; i < ep->depth; i++)
		ep->tx[i].ep = ep;
	ep->tx_post = ep->tx_wire = ep->tx_done = ep->batch_end = 1;
	ep->rx_seq = 1;
	ep->base.ctx = &ctx->base;
	ep->base.cq = cq;
	ep->deadline_ns = wccl_deadline_ns(
		wccl_param_int(WCCL_PARAM_CONNECT_TIMEOUT_MS));
	ep->next_all = ctx->all;
	if (ctx->all)
		ctx->all->prev_all = ep;
	ctx->all = ep;
	return ep;
}

void uring_ep_free(struct uring_ep *ep)
{
	if (ep->prev_all)
		ep->prev_all->next_all = ep->next_all;
	else if (ep->ctx->all == ep)
		ep->ctx->all = ep->next_all;
	if (ep->next_all)
		ep->next_all->prev_all = ep->prev_all;
	if (ep->fd >= 0)
		close(ep->fd);
	free(ep->tx);
	free(ep->rq);
	free(ep->naks);
	free(ep->stg);
	free(ep);
}

int uring_ep_failf(struct uring_ep *ep, int err, const char *fmt, ...)
{
	if (ep->state == URING_EP_FAILED)
		return ep->err;
	char what[WCCL_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ep->state = URING_EP_FAILED;
	ep->err = err;
	/* The peer hanging up with nothing outstanding is an orderly end. */
	int quiet = err == WCCL_EPEER_LOST && !uring_tx_unacked(ep) &&
		    strstr(what, "while idle");
	if (!ep->closing && quiet)
		wccl_ep_closed(&ep->base, WCCL_SUB_URING, err, "%s", what);
	else if (!ep->closing)
		wccl_ep_fail(&ep->base, WCCL_SUB_URING, err, "%s", what);
	/* Makes in-flight socket ops return promptly so we can flush. */
	if (ep->fd >= 0)
		shutdown(ep->fd, SHUT_RDWR);
	uring_mark_dirty(ep);
	return err;
}

/* ---- listener ---- */

static int uring_resolve(const char *addr, int passive,
			 struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[WCCL_ADDR_MAX], port[16];
	if (wccl_sock_split(addr, NULL, host, sizeof(host), port,
			    sizeof(port)))
		return WCCL_EINVAL;
	/* bounded by WCCL_RESOLVE_TIMEOUT_MS; failures are logged there */
	int rc = wccl_sock_resolve(host, port, passive, ss, sl);
	if (rc == WCCL_EINVAL)
		return WCCL_EADDRNOTAVAIL;
	return rc;
}

int uring_listen(struct wccl_context *c, const char *bind_addr,
		 struct wccl_listener **out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = uring_resolve(bind_addr ? bind_addr : "127.0.0.1:0", 1, &ss,
			       &sl);
	if (rc)
		return rc;
	struct uring_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return WCCL_ENOMEM;
	l->ctx = URING_CTX(c);
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (l->fd < 0) {
		rc = -errno;
		free(l);
		return rc;
	}
	int one = 1;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Before listen(), so the window scale is negotiated for it. */
	uring_bufsize(l->fd);
	if (bind(l->fd, (struct sockaddr *)&ss, sl) || listen(l->fd, 128)) {
		rc = -errno;
		WCCL_WARN(WCCL_SUB_URING, "cannot listen on %s: %s",
			  bind_addr ? bind_addr : "127.0.0.1:0",
			  strerror(errno));
		close(l->fd);
		free(l);
		return rc;
	}
	sl = sizeof(ss);
	getsockname(l->fd, (struct sockaddr *)&ss, &sl);
	uring_fmt_sa(&ss, l->addr, sizeof(l->addr));
	WCCL_INFO(WCCL_SUB_URING, "listening on %s", l->addr);
	*out = &l->base;
	return 0;
}

int uring_listener_addr(const struct wccl_listener *wl, char *buf, size_t len)
{
	const struct uring_listener *l =
		container_of(wl, struct uring_listener, base);
	size_t n = strlen(l->addr);
	if (n >= len)
		return WCCL_ENOSPC;
	memcpy(buf, l->addr, n + 1);
	return 0;
}

void uring_listener_close(struct wccl_listener *wl)
{
	struct uring_listener *l = container_of(wl, struct uring_listener, base);
	close(l->fd);
	free(l);
}

int uring_accept(struct wccl_listener *wl, struct wccl_cq *cq,
		 struct wccl_endpoint **out)
{
	struct uring_listener *l = container_of(wl, struct uring_listener, base);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return WCCL_EAGAIN;
		return -errno;
	}
	struct uring_ep *ep = uring_ep_alloc(l->ctx, cq, fd);
	if (!ep) {
		close(fd);
		return WCCL_ENOMEM;
	}
	uring_sockopts(fd);
	ep->sa = ss;
	ep->salen = sl;
	uring_set_peer(ep);
	ep->state = URING_EP_HANDSHAKE;
	uring_ep_set_zc(ep);
	uring_rx_start(ep);
	uring_mark_dirty(ep);
	WCCL_INFO(WCCL_SUB_URING, "accepted %s", ep->base.peer);
	*out = &ep->base;
	return 0;
}

/* ---- connect ---- */

int uring_connect(struct wccl_context *c, const char *addr,
		  struct wccl_cq *cq, struct wccl_endpoint **out)
{
	struct uring_ctx *ctx = URING_CTX(c);
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = uring_resolve(addr, 0, &ss, &sl);
	if (rc)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct uring_ep *ep = uring_ep_alloc(ctx, cq, fd);
	if (!ep) {
		close(fd);
		return WCCL_ENOMEM;
	}
	uring_sockopts(fd);
	ep->sa = ss;
	ep->salen = sl;
	uring_set_peer(ep);
	struct io_uring_sqe *sqe = uring_sqe(ctx);
	if (!sqe) {
		uring_ep_free(ep);
		return WCCL_EAGAIN;
	}
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&ep->sa, ep->salen);
	io_uring_sqe_set_data(sqe, (void *)((uintptr_t)ep | URING_TAG_CONNECT));
	ep->inflight++;
	ep->state = URING_EP_CONNECTING;
	io_uring_submit(&ctx->ring);
	WCCL_TRACE(WCCL_SUB_URING, "connecting to %s", ep->base.peer);
	*out = &ep->base;
	return 0;
}

void uring_conn_cqe(struct uring_ep *ep, int res)
{
	ep->inflight--;
	if (ep->state != URING_EP_CONNECTING || ep->closing)
		return;
	if (res == -ECONNREFUSED) {
		uring_ep_failf(ep, WCCL_ECONNREFUSED, "connection refused");
		return;
	}
	if (res < 0) {
		uring_ep_failf(ep, res, "connect failed: %s", strerror(-res));
		return;
	}
	ep->state = URING_EP_HANDSHAKE;
	uring_ep_set_zc(ep);
	uring_rx_start(ep);
	uring_mark_dirty(ep);
}

int uring_established(struct wccl_endpoint *e)
{
	struct uring_ep *ep = URING_EP(e);
	int rc = uring_progress(ep->ctx);
	if (rc < 0)
		return rc;
	if (ep->state == URING_EP_READY)
		return 0;
	if (ep->state == URING_EP_FAILED)
		return ep->err;
	if (wccl_now_ns() >= ep->deadline_ns) {
		if (ep->state == URING_EP_CONNECTING) {
			struct io_uring_sqe *sqe = uring_sqe(ep->ctx);
			if (sqe) {
				io_uring_prep_cancel_fd(sqe, ep->fd, 0);
				io_uring_sqe_set_data(sqe, NULL);
			}
		}
		return uring_ep_failf(
			ep, WCCL_ETIMEDOUT, "%s not done within %lld ms",
			ep->state == URING_EP_CONNECTING ? "TCP connect"
							 : "handshake",
			(long long)wccl_param_int(
				WCCL_PARAM_CONNECT_TIMEOUT_MS));
	}
	return WCCL_EAGAIN;
}

/* ---- close ---- */

static void uring_unlink_dirty(struct uring_ep *ep)
{
	struct uring_ep **pp = &ep->ctx->dirty;
	while (*pp && *pp != ep)
		pp = &(*pp)->next_dirty;
	if (*pp)
		*pp = ep->next_dirty;
	ep->dirty = false;
}

void uring_endpoint_close(struct wccl_endpoint *e)
{
	struct uring_ep *ep = URING_EP(e);
	struct uring_ctx *ctx = ep->ctx;
	ep->closing = true;
	if (ep->fd >= 0) {
		shutdown(ep->fd, SHUT_RDWR);
		struct io_uring_sqe *sqe = uring_sqe(ctx);
		if (sqe) {
			io_uring_prep_cancel_fd(sqe, ep->fd,
						IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data(sqe, NULL);
		}
	}
	/* User buffers may be in a socket op: wait (bounded) until none is. */
	uint64_t deadline = wccl_deadline_ns(2000);
	while ((ep->tx_busy || ep->rx_busy ||
		ep->state == URING_EP_CONNECTING) &&
	       wccl_now_ns() < deadline) {
		uring_progress(ctx);
		if (!(ep->tx_busy || ep->rx_busy ||
		      ep->state == URING_EP_CONNECTING))
			break;
		struct __kernel_timespec ts = { .tv_nsec = 1000000 };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&ctx->ring, &cqe, 1, &ts,
						 NULL);
		if (ep->state == URING_EP_CONNECTING && !ep->inflight)
			break;
	}
	if (ep->state != URING_EP_FAILED) {
		ep->state = URING_EP_FAILED;
		ep->err = WCCL_ECANCELED;
	}
	uring_tx_flush(ep, WCCL_ECANCELED);
	uring_rx_flush(ep, WCCL_ECANCELED);
	uring_unlink_dirty(ep);
	uring_rx_unpoll(ep);
	if (ep->fd >= 0) {
		close(ep->fd);
		ep->fd = -1;
	}
	if (ep->inflight) {
		/* Zero-copy notifications still due: keep the memory. */
		ep->next_zombie = ctx->zombies;
		ctx->zombies = ep;
		return;
	}
	uring_ep_free(ep);
}

/* ---- attributes ---- */

int uring_endpoint_set_attr(struct wccl_endpoint *e, int attr, uint64_t v)
{
	struct uring_ep *ep = URING_EP(e);
	switch (attr) {
	case WCCL_EP_ATTR_MAX_PACING_RATE: {
		/* The kernel paces the socket itself (TCP internal pacing,
		 * or fq); ~0 lifts the cap. A 64-bit value where it does
		 * not fit the old 32-bit form. */
		if (ep->fd < 0)
			return WCCL_EINVAL;
		int rc;
		if (v == 0 || v >= UINT32_MAX) {
			uint64_t r = v ? v : ~0ull;
			unsigned int r32 = ~0u;
			rc = v ? setsockopt(ep->fd, SOL_SOCKET,
					    SO_MAX_PACING_RATE, &r, sizeof(r))
			       : setsockopt(ep->fd, SOL_SOCKET,
					    SO_MAX_PACING_RATE, &r32,
					    sizeof(r32));
		} else {
			unsigned int r32 = (unsigned int)v;
			rc = setsockopt(ep->fd, SOL_SOCKET, SO_MAX_PACING_RATE,
					&r32, sizeof(r32));
		}
		return rc ? -errno : 0;
	}
	case WCCL_EP_ATTR_SEND_LOCAL_COMPLETION:
		ep->send_local = v != 0;
		return 0;
	default:
		return WCCL_EOPNOTSUPP;
	}
}

/* glibc's struct tcp_info stops before tcpi_min_rtt: read the kernel's
 * layout (linux/tcp.h, stable ABI: fields are only ever appended) by
 * offset. */
#define TI_SND_MSS 16	     /* u32 */
#define TI_RCV_MSS 20	     /* u32 */
#define TI_RTT_US 68	     /* u32, smoothed */
#define TI_SND_CWND 80	     /* u32, segments */
#define TI_BYTES_RECEIVED 128 /* u64 */
#define TI_NOTSENT_BYTES 144 /* u32 */
#define TI_MIN_RTT_US 148    /* u32 */
#define TI_DATA_SEGS_IN 152  /* u32 */

static uint32_t ti_u32(const uint8_t *ti, size_t off)
{
	uint32_t x;
	memcpy(&x, ti + off, sizeof(x));
	return x;
}

static int uring_tcp_info_attr(struct uring_ep *ep, int attr, uint64_t *v)
{
	uint8_t ti[232];
	socklen_t len = sizeof(ti);
	size_t need = attr == WCCL_EP_ATTR_MIN_RTT_US ? TI_MIN_RTT_US + 4
		      : attr == WCCL_EP_ATTR_NOTSENT_BYTES
			  ? TI_NOTSENT_BYTES + 4
		      : attr == WCCL_EP_ATTR_BYTES_RECEIVED
			  ? TI_BYTES_RECEIVED + 8
		      : attr == WCCL_EP_ATTR_BYTES_ARRIVED
			  ? TI_DATA_SEGS_IN + 4
			  : TI_SND_CWND + 4;
	if (ep->fd < 0)
		return WCCL_EINVAL;
	memset(ti, 0, sizeof(ti));
	if (getsockopt(ep->fd, IPPROTO_TCP, TCP_INFO, ti, &len))
		return -errno;
	if (len < need)
		return WCCL_EOPNOTSUPP;
	switch (attr) {
	case WCCL_EP_ATTR_SRTT_US:
		*v = ti_u32(ti, TI_RTT_US);
		break;
	case WCCL_EP_ATTR_MIN_RTT_US:
		*v = ti_u32(ti, TI_MIN_RTT_US);
		break;
	case WCCL_EP_ATTR_NOTSENT_BYTES:
		*v = ti_u32(ti, TI_NOTSENT_BYTES);
		break;
	case WCCL_EP_ATTR_BYTES_RECEIVED:
		memcpy(v, ti + TI_BYTES_RECEIVED, sizeof(*v));
		break;
	case WCCL_EP_ATTR_BYTES_ARRIVED: {
		/* Segments since the last read at today's MSS (the kernel's
		 * guess starts at 536 until full segments come); the u32
		 * count wraps, its difference does not. */
		uint32_t segs = ti_u32(ti, TI_DATA_SEGS_IN);
		ep->arrived_bytes += (uint64_t)(uint32_t)(segs -
							  ep->arrived_segs) *
				     ti_u32(ti, TI_RCV_MSS);
		ep->arrived_segs = segs;
		*v = ep->arrived_bytes;
		break;
	}
	default: { /* WCCL_EP_ATTR_CWND_RATE */
		uint64_t rtt = ti_u32(ti, TI_RTT_US);
		uint64_t w = (uint64_t)ti_u32(ti, TI_SND_CWND) *
			     ti_u32(ti, TI_SND_MSS);
		*v = rtt ? w * 1000000ull / rtt : 0;
		break;
	}
	}
	return 0;
}

int uring_endpoint_get_attr(struct wccl_endpoint *e, int attr, uint64_t *v)
{
	struct uring_ep *ep = URING_EP(e);
	switch (attr) {
	case WCCL_EP_ATTR_SRTT_US:
	case WCCL_EP_ATTR_MIN_RTT_US:
	case WCCL_EP_ATTR_BYTES_RECEIVED:
	case WCCL_EP_ATTR_BYTES_ARRIVED:
	case WCCL_EP_ATTR_NOTSENT_BYTES:
	case WCCL_EP_ATTR_CWND_RATE:
		return uring_tcp_info_attr(ep, attr, v);
	case WCCL_EP_ATTR_SEND_LOCAL_COMPLETION:
		*v = ep->send_local;
		return 0;
	case WCCL_EP_ATTR_MAX_PACING_RATE: {
		/* The 64-bit form; the kernel's "no cap" (~0) reads as 0. */
		uint64_t r = 0;
		socklen_t len = sizeof(r);
		if (ep->fd < 0)
			return WCCL_EINVAL;
		if (getsockopt(ep->fd, SOL_SOCKET, SO_MAX_PACING_RATE, &r, &len))
			return -errno;
		if (len == sizeof(uint32_t)) {
			uint32_t r32;
			memcpy(&r32, &r, sizeof(r32));
			r = r32 == UINT32_MAX ? ~0ull : r32;
		}
		*v = r == ~0ull ? 0 : r;
		return 0;
	}
	default:
		return WCCL_EOPNOTSUPP;
	}
}
