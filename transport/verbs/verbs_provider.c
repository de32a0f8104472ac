/* SPDX-License-Identifier: MIT */
/*
 * verbs provider: the ops tables, device choice, the context (PD, one CQ
 * with a completion channel, one SRQ), completion queues and progress.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "verbs.h"
#include "transport/comp_ring.h"

#define VERBS_REAP_BATCH 32

static const char *mtu_str(enum ibv_mtu m)
{
	switch (m) {
	case IBV_MTU_256: return "256";
	case IBV_MTU_512: return "512";
	case IBV_MTU_1024: return "1024";
	case IBV_MTU_2048: return "2048";
	case IBV_MTU_4096: return "4096";
	default: return "?";
	}
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

static bool ip_is_local(const struct in_addr *a)
{
	struct ifaddrs *ifa = NULL;
	bool found = false;
	if (getifaddrs(&ifa) != 0)
		return false;
	for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)(void *)i->ifa_addr)
			    ->sin_addr.s_addr == a->s_addr)
			found = true;
	freeifaddrs(ifa);
	return found;
}

/* First IPv4-mapped GID of @dev (any active port) that is an address of
 * this network namespace, or of @want if set. Fills @ip and @port. */
static bool dev_ipv4(struct ibv_context *dev, const char *want, char *ip,
		     size_t iplen, uint8_t *port)
{
	struct ibv_device_attr da;
	if (ibv_query_device(dev, &da))
		return false;
	for (uint8_t p = 1; p <= da.phys_port_cnt; p++) {
		struct ibv_port_attr pa;
		if (ibv_query_port(dev, p, &pa) || pa.state != IBV_PORT_ACTIVE)
			continue;
		for (int g = 0; g < pa.gid_tbl_len && g < 256; g++) {
			union ibv_gid gid;
			if (ibv_query_gid(dev, p, g, &gid))
				continue;
			static const uint8_t pre[12] = {0, 0, 0, 0, 0,	  0,
							0, 0, 0, 0, 0xff, 0xff};
			if (memcmp(gid.raw, pre, 12))
				continue;
			struct in_addr a;
			memcpy(&a, gid.raw + 12, 4);
			char s[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &a, s, sizeof(s));
			if (want && *want ? strcmp(want, s) != 0
					  : !ip_is_local(&a))
				continue;
			snprintf(ip, iplen, "%s", s);
			*port = p;
			return true;
		}
	}
	return false;
}

static int verbs_probe(void)
{
	int n = 0;
	struct ibv_device **l = ibv_get_device_list(&n);
	if (l)
		ibv_free_device_list(l);
	if (n <= 0) {
		WCCL_INFO(WCCL_SUB_VERBS,
			  "no RDMA devices (no HCA, or rdma_rxe / ib_uverbs "
			  "not loaded)");
		return WCCL_ENODEV;
	}
	struct rdma_event_channel *ch = rdma_create_event_channel();
	if (!ch) {
		WCCL_INFO(WCCL_SUB_VERBS,
			  "RDMA devices but no rdma_cm (%s): load rdma_ucm",
			  strerror(errno));
		return WCCL_ENODEV;
	}
	rdma_destroy_event_channel(ch);
	return 0;
}

static int verbs_can_connect(const char *addr)
{
	struct sockaddr_in sa;
	return addr && verbs_parse_addr(addr, &sa) == 0;
}

static int verbs_describe(char *buf, size_t len)
{
	if (!len)
		return 0;
	buf[0] = '\0';
	size_t at = 0;
	int n = 0;
	struct ibv_device **l = ibv_get_device_list(&n);
	if (!l || n <= 0) {
		appendf(buf, len, &at,
			"no RDMA devices (load rdma_rxe + ib_uverbs for "
			"soft-RoCE)\n");
		if (l)
			ibv_free_device_list(l);
		return 0;
	}
	for (int d = 0; d < n; d++) {
		struct ibv_context *c = ibv_open_device(l[d]);
		if (!c) {
			appendf(buf, len, &at, "%s: cannot open (%s)\n",
				ibv_get_device_name(l[d]), strerror(errno));
			continue;
		}
		struct ibv_device_attr a;
		if (!ibv_query_device(c, &a)) {
			appendf(buf, len, &at,
				"%s: %s, fw %s, %u port(s); max_qp %d "
				"max_qp_wr %d max_cqe %d max_srq_wr %d "
				"max_sge %d max_mr_size %llu\n",
				ibv_get_device_name(l[d]),
				ibv_node_type_str(l[d]->node_type), a.fw_ver,
				a.phys_port_cnt, a.max_qp, a.max_qp_wr,
				a.max_cqe, a.max_srq_wr, a.max_sge,
				(unsigned long long)a.max_mr_size);
			for (uint8_t p = 1; p <= a.phys_port_cnt; p++) {
				struct ibv_port_attr pa;
				if (ibv_query_port(c, p, &pa))
					continue;
				appendf(buf, len, &at,
					"  port %u: %s, %s, active_mtu %s "
					"(max %s), max_msg_sz %u\n",
					p, ibv_port_state_str(pa.state),
					pa.link_layer == IBV_LINK_LAYER_ETHERNET
					    ? "Ethernet (RoCE)"
					    : "InfiniBand",
					mtu_str(pa.active_mtu),
					mtu_str(pa.max_mtu), pa.max_msg_sz);
				struct ibv_gid_entry ge[64];
				ssize_t ng = ibv_query_gid_table(c, ge, 64, 0);
				for (ssize_t g = 0; g < ng; g++) {
					if (ge[g].port_num != p)
						continue;
					char s[INET6_ADDRSTRLEN], ifn[IF_NAMESIZE];
					inet_ntop(AF_INET6, ge[g].gid.raw, s,
						  sizeof(s));
					if (!if_indextoname(ge[g].ndev_ifindex,
							    ifn))
						snprintf(ifn, sizeof(ifn), "-");
					appendf(buf, len, &at,
						"    gid %u: %s %s (%s)\n",
						ge[g].gid_index, s,
						ge[g].gid_type ==
							IBV_GID_TYPE_ROCE_V2
						    ? "RoCE v2"
						: ge[g].gid_type ==
							IBV_GID_TYPE_ROCE_V1
						    ? "RoCE v1"
						    : "IB",
						ifn);
				}
			}
		}
		ibv_close_device(c);
	}
	ibv_free_device_list(l);
	return 0;
}

/* Pick the context's device: WCCL_VERBS_DEVICE, else the owner of
 * WCCL_VERBS_ADDR, else the first with a local IPv4 GID. */
static int pick_device(struct verbs_ctx *ctx)
{
	const char *want_dev = wccl_param_str(WCCL_PARAM_VERBS_DEVICE);
	const char *want_ip = wccl_param_str(WCCL_PARAM_VERBS_ADDR);
	int n = 0;
	ctx->devs = rdma_get_devices(&n);
	if (!ctx->devs || n <= 0)
		return WCCL_ENODEV;
	for (int pass = 0; pass < 2; pass++) {
		for (int d = 0; d < n; d++) {
			struct ibv_context *c = ctx->devs[d];
			const char *name = ibv_get_device_name(c->device);
			if (*want_dev && strcmp(name, want_dev))
				continue;
			/* Second pass with a named device: any GID. */
			const char *ip = pass && *want_dev ? NULL : want_ip;
			if (!dev_ipv4(c, ip, ctx->ip, sizeof(ctx->ip),
				      &ctx->port_num)) {
				if (!pass || !*want_dev)
					continue;
				ctx->port_num = 1;
				ctx->ip[0] = '\0';
			}
			ctx->dev = c;
			snprintf(ctx->dev_name, sizeof(ctx->dev_name), "%s",
				 name);
			return 0;
		}
	}
	WCCL_WARN(WCCL_SUB_VERBS,
		  "no RDMA device fits (WCCL_VERBS_DEVICE '%s', "
		  "WCCL_VERBS_ADDR '%s'): need an active port with an IPv4 "
		  "RoCE GID of this host (wccl-info lists them)",
		  want_dev, want_ip);
	return WCCL_ENODEV;
}

static uint32_t clampu(int64_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : (uint32_t)v;
}

static void verbs_context_close(struct wccl_context *c);

/* Software RDMA (rxe, siw): the protocol runs in kernel tasks on the
 * host's own cores, so a spinning poller can starve it. By vendor id, or
 * the default device name where an older kernel left the id 0. */
static bool dev_is_soft(const struct verbs_ctx *ctx)
{
	uint32_t v = ctx->attr.vendor_id;
	return v == 0xffffff /* rxe */ || v == 0x626d74 /* siw */ ||
	       !strncmp(ctx->dev_name, "rxe", 3) ||
	       !strncmp(ctx->dev_name, "siw", 3);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

static int verbs_context_open(struct wccl_context **out)
{
	struct verbs_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return WCCL_ENOMEM;
	int rc = pick_device(ctx);
	if (rc)
		goto fail;
	rc = WCCL_ENODEV;
	if (ibv_query_device(ctx->dev, &ctx->attr))
		goto fail;
	struct ibv_port_attr pa;
	if (!ibv_query_port(ctx->dev, ctx->port_num, &pa)) {
		ctx->mtu = pa.active_mtu;
		ctx->max_msg = pa.max_msg_sz;
	}
	if (!ctx->max_msg)
		ctx->max_msg = 1u << 30;
	int64_t depth = wccl_param_int(WCCL_PARAM_QUEUE_DEPTH);
	uint32_t d = 1;
	while (d < clampu(depth, 1, 16384))
		d <<= 1;
	ctx->depth = d;
	ctx->nqps = clampu(wccl_param_int(WCCL_PARAM_VERBS_QPS), 1,
			   VERBS_MAX_DATA_QPS);
	ctx->batch = clampu(wccl_param_int(WCCL_PARAM_VERBS_BATCH), 1,
			    VERBS_CHAIN_MAX);
	ctx->inline_max = clampu(wccl_param_int(WCCL_PARAM_VERBS_INLINE), 0,
				 4096);
	ctx->timeout = (uint8_t)clampu(wccl_param_int(WCCL_PARAM_VERBS_TIMEOUT),
				       1, 31);
	ctx->retry = (uint8_t)clampu(wccl_param_int(WCCL_PARAM_VERBS_RETRY),
				     0, 7);
	int64_t sm = wccl_param_int(WCCL_PARAM_VERBS_STRIPE_MIN);
	ctx->stripe_min = sm > 0 ? (uint64_t)sm : UINT64_MAX;
	int64_t mi = wccl_param_int(WCCL_PARAM_VERBS_MAX_INFLIGHT);
	ctx->max_inflight = mi > 0 ? (uint64_t)mi : 0;
	int64_t yu = wccl_param_int(WCCL_PARAM_VERBS_YIELD_US);
	if (yu < 0)
		yu = dev_is_soft(ctx) ? 1 : 0;
	if (yu > 1000000)
		yu = 1000000;
	ctx->yield_ns = (uint64_t)yu * 1000u;
	if (ctx->yield_ns)
		WCCL_INFO(WCCL_SUB_VERBS,
			  "%s: empty CQ polls yield the core every %lld us",
			  ctx->dev_name, (long long)yu);
	ctx->srq_depth = clampu(wccl_param_int(WCCL_PARAM_VERBS_SRQ_DEPTH), 16,
				(uint32_t)ctx->attr.max_srq_wr);

	ctx->ech = rdma_create_event_channel();
	if (!ctx->ech || set_nonblock(ctx->ech->fd))
		goto fail;
	ctx->pd = ibv_alloc_pd(ctx->dev);
	ctx->cch = ibv_create_comp_channel(ctx->dev);
	if (!ctx->pd || !ctx->cch || set_nonblock(ctx->cch->fd))
		goto fail;
	/* Room for the SRQ plus a few endpoints; grown by verbs_cq_reserve. */
	ctx->cqe_need = (int)ctx->srq_depth;
	ctx->cqe = (int)clampu(ctx->srq_depth + 8 * ctx->depth, 64,
			       (uint32_t)ctx->attr.max_cqe);
	ctx->cq = ibv_create_cq(ctx->dev, ctx->cqe, ctx, ctx->cch, 0);
	if (!ctx->cq)
		goto fail;
	ctx->cqe = ctx->cq->cqe;
	struct ibv_srq_init_attr sa = {
		.attr = {.max_wr = ctx->srq_depth, .max_sge = 1}};
	ctx->srq = ibv_create_srq(ctx->pd, &sa);
	if (!ctx->srq)
		goto fail;
	if (verbs_srq_fill(ctx))
		goto fail;
	WCCL_INFO(WCCL_SUB_VERBS,
		  "context on %s port %u (%s), MTU %s, %u data QP(s), depth %u, "
		  "QP timeout 2^%u x 4.096 us, retry %u, SRQ %u",
		  ctx->dev_name, ctx->port_num, ctx->ip[0] ? ctx->ip : "no IPv4",
		  mtu_str(ctx->mtu), ctx->nqps, ctx->depth, ctx->timeout,
		  ctx->retry, ctx->srq_depth);
	*out = &ctx->base;
	return 0;
fail:
	if (rc == WCCL_ENODEV && ctx->devs)
		WCCL_WARN(WCCL_SUB_VERBS, "verbs context on %s: %s",
			  ctx->dev_name[0] ? ctx->dev_name : "(none)",
			  strerror(errno));
	verbs_context_close(&ctx->base);
	return rc;
}

static void verbs_context_close(struct wccl_context *c)
{
	struct verbs_ctx *ctx = VERBS_CTX(c);
	verbs_mrc_clear(ctx);
	if (ctx->srq)
		ibv_destroy_srq(ctx->srq);
	if (ctx->cq) {
		if (ctx->cq_unacked)
			ibv_ack_cq_events(ctx->cq, ctx->cq_unacked);
		ibv_destroy_cq(ctx->cq);
	}
	if (ctx->cch)
		ibv_destroy_comp_channel(ctx->cch);
	if (ctx->pd)
		ibv_dealloc_pd(ctx->pd);
	if (ctx->ech)
		rdma_destroy_event_channel(ctx->ech);
	if (ctx->devs)
		rdma_free_devices(ctx->devs);
	free(ctx);
}

/* Make sure the CQ can hold @more further entries (QPs being added);
 * negative @more gives room back. */
int verbs_cq_reserve(struct verbs_ctx *ctx, int more)
{
	int need = ctx->cqe_need + more;
	if (more > 0 && need > ctx->cqe) {
		int want = need + need / 2;
		if (want > ctx->attr.max_cqe)
			want = ctx->attr.max_cqe;
		if (want < need || ibv_resize_cq(ctx->cq, want)) {
			WCCL_WARN(WCCL_SUB_VERBS,
				  "completion queue of %s cannot grow to %d "
				  "entries (device max %d): too many "
				  "connections for WCCL_QUEUE_DEPTH",
				  ctx->dev_name, need, ctx->attr.max_cqe);
			return WCCL_ENOSPC;
		}
		ctx->cqe = ctx->cq->cqe;
	}
	ctx->cqe_need = need;
	return 0;
}

static int verbs_cq_create(struct wccl_context *c, uint32_t depth,
			   struct wccl_cq **out)
{
	struct verbs_ctx *ctx = VERBS_CTX(c);
	struct verbs_cq *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return WCCL_ENOMEM;
	cq->cap = depth ? depth : 1;
	cq->ring = calloc(cq->cap, sizeof(*cq->ring));
	if (!cq->ring) {
		free(cq);
		return WCCL_ENOMEM;
	}
	cq->next = ctx->cqs;
	ctx->cqs = cq;
	*out = &cq->base;
	return 0;
}

static void verbs_cq_destroy(struct wccl_cq *q)
{
	struct verbs_cq *cq = VERBS_CQ(q);
	struct verbs_ctx *ctx = VERBS_CTX(q->ctx);
	for (struct verbs_cq **pp = &ctx->cqs; *pp; pp = &(*pp)->next)
		if (*pp == cq) {
			*pp = cq->next;
			break;
		}
	free(cq->ring);
	free(cq);
}

/* Fixed ring: reaping is budgeted (verbs_progress) so that a completion
 * that cannot wait always finds room; one that does not would be a bug. */
void verbs_cq_push(struct wccl_cq *q, const struct wccl_completion *c)
{
	struct verbs_cq *cq = VERBS_CQ(q);
	if (cq->count == cq->cap) {
		WCCL_WARN(WCCL_SUB_VERBS,
			  "internal error: completion queue full, completion "
			  "(op %u, status %d) lost",
			  c->op, c->status);
		return;
	}
	uint32_t at = cq->head + cq->count;
	if (at >= cq->cap)
		at -= cq->cap;
	cq->ring[at] = *c;
	cq->count++;
}

/* rdma_cm events: each look is a syscall (a read on the channel), so the
 * data path looks at most every VERBS_CM_POLL_NS while every endpoint is
 * up; connecting, accepting and sleeping look every time. */
#define VERBS_CM_POLL_NS 1000000ull

void verbs_cm_poll(struct verbs_ctx *ctx)
{
	struct rdma_cm_event *ev;
	ctx->cm_last_ns = wccl_now_ns();
	while (rdma_get_cm_event(ctx->ech, &ev) == 0)
		verbs_cm_event(ctx, ev);
	ctx->cm_busy = verbs_conn_timers(ctx);
}

/* How long a disconnected peer's answers may trail its disconnect. rxe
 * posts the receiver's error completion before it sends the NAK, so the
 * peer can close, and its DREQ overtake the NAK, while our send is still
 * unanswered; failing at once would flush that send as EPEER_LOST. */
#define VERBS_CLOSE_GRACE_NS 50000000ull

/* Called with the CQ drained: fail the endpoints whose peer disconnected
 * and which have nothing on the wire (or waited out the grace). */
static void verbs_fail_closed(struct verbs_ctx *ctx)
{
	uint64_t now = wccl_now_ns();
	ctx->peer_closed = false;
	for (struct verbs_ep *ep = ctx->eps; ep; ep = ep->next) {
		if (!ep->peer_closed_ns)
			continue;
		if (ep->closing || ep->state == VERBS_EP_FAILED) {
			ep->peer_closed_ns = 0;
			continue;
		}
		if (ep->tx_done != ep->tx_issue &&
		    now - ep->peer_closed_ns < VERBS_CLOSE_GRACE_NS) {
			ctx->peer_closed = true;
			continue;
		}
		ep->peer_closed_ns = 0;
		verbs_ep_fail(ep, wccl_ep_closed(&ep->base, WCCL_SUB_VERBS,
						 WCCL_EPEER_LOST,
						 "peer disconnected (closed or "
						 "died)"));
	}
}

int verbs_progress(struct verbs_ctx *ctx)
{
	if (ctx->cm_busy || wccl_now_ns() - ctx->cm_last_ns >= VERBS_CM_POLL_NS)
		verbs_cm_poll(ctx);
	verbs_mcache_check(ctx);

	/* Completions that found their CQ full go first. */
	for (struct verbs_ep *ep = ctx->eps; ep; ep = ep->next) {
		if (ep->n_early && ep->accepted && ep->base.cq) {
			uint32_t i = 0;
			for (; i < ep->n_early && verbs_cq_room(ctx, ep->base.cq);
			     i++)
				verbs_cq_push(ep->base.cq, &ep->early[i]);
			memmove(ep->early, ep->early + i,
				(ep->n_early - i) * sizeof(ep->early[0]));
			ep->n_early -= i;
		}
		if (ep->rq_deliver != ep->rq_done)
			verbs_rx_advance(ep);
		if (ep->tx_done != ep->tx_issue &&
		    ep->tx[ep->tx_done & ep->mask].state == VERBS_OP_DONE)
			verbs_tx_advance(ep);
	}

	struct ibv_wc wc[VERBS_REAP_BATCH];
	int n = 0, want = 0, rounds = 0;
	do {
		/* Each work completion may yield one completion that cannot
		 * wait (receive, immediate, error): reap no more than the
		 * fullest CQ in use can take. */
		uint32_t room = VERBS_REAP_BATCH;
		for (struct verbs_cq *cq = ctx->cqs; cq; cq = cq->next)
			if (cq->base.n_endpoints && cq->cap - cq->count < room)
				room = cq->cap - cq->count;
		want = (int)room;
		if (!want)
			break;
		n = ibv_poll_cq(ctx->cq, want, wc);
		if (n < 0) {
			WCCL_WARN(WCCL_SUB_VERBS, "ibv_poll_cq on %s failed",
				  ctx->dev_name);
			return WCCL_EIO;
		}
		for (int i = 0; i < n; i++) {
			ctx->reap_reserve = (uint32_t)(n - i);
			verbs_wc(ctx, &wc[i]);
		}
		ctx->reap_reserve = 0;
	} while (n == want && ++rounds < 8);
	if (ctx->peer_closed && n < want)
		verbs_fail_closed(ctx);
	verbs_srq_fill(ctx);
	for (struct verbs_ep *ep = ctx->eps; ep; ep = ep->next)
		if (ep->tx_issue != ep->tx_post)
			verbs_tx_issue(ep);
	verbs_ring_dirty(ctx);
	return 0;
}

/* An empty poll. soft-RoCE does its protocol work in kernel tasks and the
 * network softirq, which may wait for this core behind us (a woken kworker
 * does not preempt a spinner at once): after yield_ns of finding nothing,
 * and every yield_ns after, give them the core. */
static void verbs_idle(struct verbs_ctx *ctx)
{
	uint64_t now = wccl_now_ns();
	if (!ctx->idle_since) {
		ctx->idle_since = now;
	} else if (now - ctx->idle_since >= ctx->yield_ns) {
		sched_yield();
		ctx->idle_since = wccl_now_ns();
	}
}

static int verbs_cq_poll(struct wccl_cq *q, struct wccl_completion *wc,
			 int max)
{
	if (!q || !wc || max < 0)
		return WCCL_EINVAL;
	struct verbs_cq *cq = VERBS_CQ(q);
	struct verbs_ctx *ctx = VERBS_CTX(q->ctx);
	int rc = verbs_progress(ctx);
	if (rc < 0)
		return rc;
	int n = comp_ring_pop(cq->ring, cq->cap, &cq->head, &cq->count, wc,
			      max);
	if (n || !ctx->yield_ns)
		ctx->idle_since = 0;
	else
		verbs_idle(ctx);
	return n;
}

/* Arm the CQ, look once more (closing the race), then sleep on the
 * completion channel and the rdma_cm channel together. */
static int verbs_cq_sleep(struct wccl_cq *q, int timeout_ms)
{
	struct verbs_ctx *ctx = VERBS_CTX(q->ctx);
	if (VERBS_CQ(q)->count)
		return 0;
	if (ibv_req_notify_cq(ctx->cq, 0))
		return WCCL_EIO;
	int rc = verbs_progress(ctx);
	if (rc < 0)
		return rc;
	if (VERBS_CQ(q)->count)
		return 0;
	/* Pending connect retries wake us in time, a closed peer's grace
	 * ends soon. */
	if (timeout_ms > 100)
		timeout_ms = 100;
	if (ctx->peer_closed && timeout_ms > 1)
		timeout_ms = 1;
	struct pollfd pfd[2] = {{.fd = ctx->cch->fd, .events = POLLIN},
				{.fd = ctx->ech->fd, .events = POLLIN}};
	poll(pfd, 2, timeout_ms);
	if (pfd[1].revents & POLLIN)
		verbs_cm_poll(ctx);
	if (pfd[0].revents & POLLIN) {
		struct ibv_cq *ev_cq;
		void *ev_ctx;
		while (ibv_get_cq_event(ctx->cch, &ev_cq, &ev_ctx) == 0)
			if (++ctx->cq_unacked >= 64) {
				ibv_ack_cq_events(ctx->cq, ctx->cq_unacked);
				ctx->cq_unacked = 0;
			}
	}
	return 0;
}

static int verbs_endpoint_set_attr(struct wccl_endpoint *e, int attr,
				   uint64_t v)
{
	struct verbs_ep *ep = VERBS_EP(e);
	switch (attr) {
	case WCCL_EP_ATTR_MAX_INFLIGHT:
		/* Takes effect from the next issue; what is out stays. */
		ep->inflight.cap = v;
		return 0;
	default:
		return WCCL_EOPNOTSUPP;
	}
}

static int verbs_endpoint_get_attr(struct wccl_endpoint *e, int attr,
				   uint64_t *v)
{
	const struct verbs_ep *ep = VERBS_EP(e);
	switch (attr) {
	case WCCL_EP_ATTR_MAX_INFLIGHT:
		*v = ep->inflight.cap;
		return 0;
	case WCCL_EP_ATTR_INFLIGHT_PEAK:
		*v = ep->inflight.peak;
		return 0;
	case WCCL_EP_ATTR_INFLIGHT_WAITS:
		*v = ep->inflight.waits;
		return 0;
	default:
		return WCCL_EOPNOTSUPP;
	}
}

const struct wccl_provider wccl_provider_verbs = {
	.name = "verbs",
	.description = "RDMA verbs RC (RoCE / InfiniBand / soft-RoCE) via rdma_cm",
	.priority = 30,
	.caps = WCCL_CAP_SEND_RECV | WCCL_CAP_WRITE | WCCL_CAP_WRITE_IMM |
		WCCL_CAP_ZCOPY_TX | WCCL_CAP_ZCOPY_RX | WCCL_CAP_SAME_HOST |
		WCCL_CAP_REMOTE_HOST,
	.ctrl = {
		.accept = verbs_accept,
		.can_connect = verbs_can_connect,
		.connect = verbs_connect,
		.context_close = verbs_context_close,
		.context_open = verbs_context_open,
		.cq_create = verbs_cq_create,
		.cq_destroy = verbs_cq_destroy,
		.cq_sleep = verbs_cq_sleep,
		.describe = verbs_describe,
		.endpoint_close = verbs_endpoint_close,
		.endpoint_get_attr = verbs_endpoint_get_attr,
		.endpoint_set_attr = verbs_endpoint_set_attr,
		.established = verbs_established,
		.listen = verbs_listen,
		.listener_addr = verbs_listener_addr,
		.listener_close = verbs_listener_close,
		.mr_deregister = verbs_mr_deregister,
		.mr_register = verbs_mr_register,
		.probe = verbs_probe,
	},
	.fast = {
		.cq_poll = verbs_cq_poll,
		.post_recv = verbs_post_recv,
		.post_send = verbs_post_send,
		.post_write = verbs_post_write,
	},
};
