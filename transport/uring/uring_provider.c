/* SPDX-License-Identifier: MIT */
/*
 * uring provider: the ops tables, the context (one io_uring, no threads),
 * completion queues and the progress loop that everything else hangs off.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/params.h"
#include "core/sock.h"
#include "uring.h"
#include "transport/comp_ring.h"

#define URING_REAP_BATCH 64u

static bool uring_zc_supported(struct io_uring *ring)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	bool ok = p && io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
	if (p)
		io_uring_free_probe(p);
	return ok;
}

static int uring_probe(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		WCCL_INFO(WCCL_SUB_URING, "io_uring unavailable: %s",
			  strerror(-rc));
		return rc == -ENOSYS ? WCCL_ENOSYS : WCCL_ENODEV;
	}
	io_uring_queue_exit(&ring);
	return 0;
}

static int uring_can_connect(const char *addr)
{
	char host[WCCL_ADDR_MAX], port[16];
	return addr && wccl_sock_split(addr, NULL, host, sizeof(host), port,
				       sizeof(port)) == 0;
}

static void appendf(char *buf, size_t len, size_t *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	if (*at >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *at, len - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n;
}

static int uring_describe(char *buf, size_t len)
{
	if (!len)
		return 0;
	buf[0] = '\0';
	size_t at = 0;
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		appendf(buf, len, &at, "io_uring: unavailable (%s)\n",
			strerror(-rc));
		return 0;
	}
	bool zc = uring_zc_supported(&ring);
	int fx = io_uring_register_buffers_sparse(&ring, 1);
	io_uring_queue_exit(&ring);
	appendf(buf, len, &at, "io_uring: SEND_ZC %s, fixed buffers %s\n",
		zc ? "yes" : "no", fx == 0 ? "yes" : "no");
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) != 0)
		return 0;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
			continue;
		int fam = i->ifa_addr->sa_family;
		char ip[INET6_ADDRSTRLEN];
		const void *src;
		if (fam == AF_INET)
			src = &((struct sockaddr_in *)(void *)i->ifa_addr)
				       ->sin_addr;
		else if (fam == AF_INET6)
			src = &((struct sockaddr_in6 *)(void *)i->ifa_addr)
				       ->sin6_addr;
		else
			continue;
		if (inet_ntop(fam, src, ip, sizeof(ip)))
			appendf(buf, len, &at, "%s %s %s\n", i->ifa_name,
				fam == AF_INET ? "ipv4" : "ipv6", ip);
	}
	freeifaddrs(ifa);
	return 0;
}

static int uring_context_open(struct wccl_context **out)
{
	struct uring_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return WCCL_ENOMEM;
	unsigned entries = (unsigned)wccl_param_int(WCCL_PARAM_URING_ENTRIES);
	/* COOP_TASKRUN: completions run when we enter the kernel, flagged in
	 * the SQ ring, instead of interrupting a busy-polling thread. */
	struct io_uring_params p = { .flags = IORING_SETUP_SUBMIT_ALL |
					      IORING_SETUP_COOP_TASKRUN |
					      IORING_SETUP_TASKRUN_FLAG };
	int rc = io_uring_queue_init_params(entries ? entries : 1024,
					    &ctx->ring, &p);
	if (rc < 0) {
		WCCL_WARN(WCCL_SUB_URING, "io_uring_queue_init(%u): %s",
			  entries, strerror(-rc));
		free(ctx);
		return rc == -ENOMEM ? WCCL_ENOMEM : WCCL_ENODEV;
	}
	int64_t zc = wccl_param_int(WCCL_PARAM_URING_ZC);
	ctx->has_zc = zc > 0 && uring_zc_supported(&ctx->ring);
	ctx->zc_local = zc >= 2;
	if (wccl_param_int(WCCL_PARAM_URING_FIXED_BUFS)) {
		rc = io_uring_register_buffers_sparse(&ctx->ring,
						      URING_FIXED_SLOTS);
		ctx->fixed_ok = rc == 0;
		if (rc)
			WCCL_INFO(WCCL_SUB_URING,
				  "no fixed buffers (%s); MRs stay unpinned",
				  strerror(-rc));
	}
	int64_t zc_min = wccl_param_int(WCCL_PARAM_URING_ZC_MIN);
	int64_t eager = wccl_param_int(WCCL_PARAM_URING_EAGER_MAX);
	int64_t stg = wccl_param_int(WCCL_PARAM_URING_STAGING);
	int64_t depth = wccl_param_int(WCCL_PARAM_QUEUE_DEPTH);
	ctx->zc_min = zc_min > 0 ? (uint64_t)zc_min : 1;
	ctx->eager_max = eager > 0 ? (uint64_t)eager : 0;
	/* Staging must hold at least a few headers to make progress. */
	ctx->staging = stg < 4096 ? 4096u
				  : (stg > (1 << 26) ? 1u << 26 : (uint32_t)stg);
	uint32_t d = 1;
	while (d < (uint32_t)(depth > 1 ? (depth < 65536 ? depth : 65536) : 1))
		d <<= 1;
	ctx->depth = d;
	ctx->mr_gen = 1;
	ctx->yield = wccl_param_int(WCCL_PARAM_URING_YIELD) != 0;
	int64_t rx_poll = wccl_param_int(WCCL_PARAM_URING_RX_POLL);
	ctx->rx_poll_max = rx_poll > 0 ? (uint32_t)rx_poll : 0;
	WCCL_INFO(WCCL_SUB_URING,
		  "context: %u entries, SEND_ZC %s, fixed buffers %s, depth %u",
		  p.sq_entries, ctx->has_zc ? "on" : "off",
		  ctx->fixed_ok ? "on" : "off", ctx->depth);
	*out = &ctx->base;
	return 0;
}

static void uring_context_close(struct wccl_context *c)
{
	struct uring_ctx *ctx = URING_CTX(c);
	/* Exiting the ring cancels whatever the zombies still wait for. */
	io_uring_queue_exit(&ctx->ring);
	while (ctx->zombies) {
		struct uring_ep *z = ctx->zombies;
		ctx->zombies = z->next_zombie;
		uring_ep_free(z);
	}
	free(ctx);
}

static int uring_cq_create(struct wccl_context *c, uint32_t depth,
			   struct wccl_cq **out)
{
	(void)c;
	struct uring_cq *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return WCCL_ENOMEM;
	cq->ring = calloc(depth, sizeof(*cq->ring));
	if (!cq->ring) {
		free(cq);
		return WCCL_ENOMEM;
	}
	cq->cap = depth;
	*out = &cq->base;
	return 0;
}

static void uring_cq_destroy(struct wccl_cq *q)
{
	struct uring_cq *cq = URING_CQ(q);
	free(cq->ring);
	free(cq);
}

struct io_uring_sqe *uring_sqe(struct uring_ctx *ctx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->ring);
	if (!sqe) {
		/* SQ full: hand what we have to the kernel and retry. */
		io_uring_submit(&ctx->ring);
		sqe = io_uring_get_sqe(&ctx->ring);
	}
	return sqe;
}

static void uring_dispatch(struct uring_ctx *ctx, struct io_uring_cqe *cqe)
{
	uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
	void *obj = (void *)(ud & ~(uintptr_t)URING_TAG_MASK);
	switch (ud & URING_TAG_MASK) {
	case URING_TAG_RX:
		uring_rx_cqe(obj, cqe->res);
		break;
	case URING_TAG_TX:
		uring_tx_cqe(obj, cqe->res);
		break;
	case URING_TAG_ZC:
		uring_zc_cqe(obj, cqe->res, cqe->flags);
		break;
	case URING_TAG_CONNECT:
		uring_conn_cqe(obj, cqe->res);
		break;
	default:
		break;
	}
	(void)ctx;
}

/* Closed endpoints whose last CQE arrived can go now. */
static void uring_reap_zombies(struct uring_ctx *ctx)
{
	struct uring_ep **pp = &ctx->zombies;
	while (*pp) {
		struct uring_ep *z = *pp;
		if (z->inflight) {
			pp = &z->next_zombie;
			continue;
		}
		*pp = z->next_zombie;
		uring_ep_free(z);
	}
}

/* Service each dirty endpoint once; those still blocked re-mark. */
static void uring_service_dirty(struct uring_ctx *ctx)
{
	struct uring_ep *ep = ctx->dirty;
	ctx->dirty = NULL;
	while (ep) {
		struct uring_ep *next = ep->next_dirty;
		ep->dirty = false;
		ep->next_dirty = NULL;
		uring_rx_service(ep);
		uring_tx_service(ep);
		ep = next;
	}
}

int uring_progress(struct uring_ctx *ctx)
{
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	unsigned n;
	int rounds = 0;
	ctx->pass++;
	if (IO_URING_READ_ONCE(*ctx->ring.sq.kflags) &
	    (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
		io_uring_get_events(&ctx->ring);
	do {
		n = io_uring_peek_batch_cqe(&ctx->ring, cqes, URING_REAP_BATCH);
		for (unsigned i = 0; i < n; i++)
			uring_dispatch(ctx, cqes[i]);
		io_uring_cq_advance(&ctx->ring, n);
	} while (n == URING_REAP_BATCH && ++rounds < 8);

	/* What was posted since the last pass goes out before the polled
	 * sockets are read (a recv each: the message should not wait for
	 * them); what the reads bring is answered in the same pass. The
	 * early round never corks an ACK: corking is for one that an answer
	 * read in this pass may carry (corked before the read, ACKs stalled
	 * 4-rank transfers for 40 ms a call). */
	ctx->no_cork = true;
	uring_service_dirty(ctx);
	ctx->no_cork = false;
	if (ctx->polled)
		uring_rx_poll(ctx);
	uring_service_dirty(ctx);
	if (ctx->zombies)
		uring_reap_zombies(ctx);
	if (io_uring_sq_ready(&ctx->ring) && !ctx->sleeping) {
		int rc = io_uring_submit(&ctx->ring);
		if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
			WCCL_WARN(WCCL_SUB_URING, "io_uring_submit: %s",
				  strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int uring_cq_poll(struct wccl_cq *q, struct wccl_completion *wc,
			 int max)
{
	if (!q || !wc || max < 0)
		return WCCL_EINVAL;
	struct uring_cq *cq = URING_CQ(q);
	int rc = uring_progress(URING_CTX(q->ctx));
	if (rc < 0)
		return rc;
	int n = comp_ring_pop(cq->ring, cq->cap, &cq->head, &cq->count, wc,
			      max);
	/* Nothing yet: let a peer sharing this core run (it may be the one
	 * we wait for) instead of spinning out its time slice, unless the
	 * caller yields when it finds nothing anyway. */
	if (!n && URING_CTX(q->ctx)->yield && !q->ctx->caller_yields)
		sched_yield();
	return n;
}

static int uring_cq_sleep(struct wccl_cq *q, int timeout_ms)
{
	struct uring_ctx *ctx = URING_CTX(q->ctx);
	if (URING_CQ(q)->count)
		return 0;
	/* One last pass; what it queues is submitted by the wait itself, in
	 * the same syscall. */
	ctx->sleeping = true;
	int prc = uring_progress(ctx);
	ctx->sleeping = false;
	if (prc < 0)
		return prc;
	if (URING_CQ(q)->count)
		return 0;
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	int rc = io_uring_submit_and_wait_timeout(&ctx->ring, &cqe, 1, &ts,
						  NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN &&
	    rc != -EBUSY)
		return rc;
	return 0;
}

const struct wccl_provider wccl_provider_uring = {
	.name = "uring",
	.description = "TCP over io_uring (zero-copy send, in-place receive)",
	.priority = 10,
	.caps = WCCL_CAP_SEND_RECV | WCCL_CAP_WRITE | WCCL_CAP_WRITE_IMM |
		WCCL_CAP_ZCOPY_TX | WCCL_CAP_ZCOPY_RX | WCCL_CAP_SAME_HOST |
		WCCL_CAP_REMOTE_HOST,
	.ctrl = {
		.accept = uring_accept,
		.can_connect = uring_can_connect,
		.connect = uring_connect,
		.context_close = uring_context_close,
		.context_open = uring_context_open,
		.cq_create = uring_cq_create,
		.cq_destroy = uring_cq_destroy,
		.cq_sleep = uring_cq_sleep,
		.describe = uring_describe,
		.endpoint_close = uring_endpoint_close,
		.endpoint_get_attr = uring_endpoint_get_attr,
		.endpoint_set_attr = uring_endpoint_set_attr,
		.established = uring_established,
		.listen = uring_listen,
		.listener_addr = uring_listener_addr,
		.listener_close = uring_listener_close,
		.mr_deregister = uring_mr_deregister,
		.mr_register = uring_mr_register,
		.probe = uring_probe,
	},
	.fast = {
		.cq_poll = uring_cq_poll,
		.post_recv = uring_post_recv,
		.post_send = uring_post_send,
		.post_write = uring_post_write,
	},
};
