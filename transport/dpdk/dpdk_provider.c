/* SPDX-License-Identifier: MIT */
/*
 * dpdk provider: the ops tables, the context (one per process: EAL, port,
 * mbuf pool made at open), completion queues and memory regions.
 */
#include <arpa/inet.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/params.h"
#include "dpdk.h"
#include "dpdk_guard.h"
#include "transport/comp_ring.h"
#include "transport/mr_key.h"

/* dpdk_conn.c */
int dpdk_can_connect(const char *addr);
int dpdk_listen(struct wccl_context *c, const char *bind_addr,
		struct wccl_listener **l);
int dpdk_listener_addr(const struct wccl_listener *l, char *buf, size_t len);
void dpdk_listener_close(struct wccl_listener *l);
int dpdk_accept(struct wccl_listener *l, struct wccl_cq *cq,
		struct wccl_endpoint **ep);
int dpdk_connect(struct wccl_context *c, const char *addr, struct wccl_cq *cq,
		 struct wccl_endpoint **ep);
int dpdk_established(struct wccl_endpoint *ep);
void dpdk_endpoint_close(struct wccl_endpoint *ep);
int dpdk_endpoint_get_attr(struct wccl_endpoint *ep, int attr, uint64_t *v);
int dpdk_endpoint_set_attr(struct wccl_endpoint *ep, int attr, uint64_t v);

static bool ctx_open; /* one context per process */

static uint32_t pow2_clamp(int64_t v, uint32_t lo, uint32_t hi)
{
	uint32_t d = lo;
	while (d < hi && (int64_t)d < v)
		d <<= 1;
	return d;
}

static int dpdk_context_open(struct wccl_context **out)
{
	if (ctx_open) {
		WCCL_WARN(WCCL_SUB_DPDK, "one dpdk context per process");
		return WCCL_EBUSY;
	}
	struct dpdk_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return WCCL_ENOMEM;
	struct in_addr in;
	char auto_ip[INET_ADDRSTRLEN];
	const char *ip = wccl_param_str(WCCL_PARAM_DPDK_IP);
	if (!ip || !*ip) { /* distinct per process on one host */
		struct in_addr a = { htonl(dpdk_auto_ip((uint32_t)getpid())) };
		inet_ntop(AF_INET, &a, auto_ip, sizeof(auto_ip));
		ip = auto_ip;
	}
	if (inet_pton(AF_INET, ip, &in) != 1) {
		WCCL_WARN(WCCL_SUB_DPDK, "WCCL_DPDK_IP=%s is not IPv4", ip);
		free(ctx);
		return WCCL_EINVAL;
	}
	ctx->ip = in.s_addr;
	int64_t v = wccl_param_int(WCCL_PARAM_DPDK_UDP_PORT);
	ctx->udp_port = (uint16_t)(v > 0 && v < 65536 ? v : 47000);
	v = wccl_param_int(WCCL_PARAM_DPDK_MTU);
	if (v < 576 || v > 9000) {
		WCCL_WARN(WCCL_SUB_DPDK, "WCCL_DPDK_MTU=%lld: want 576..9000",
			  (long long)v);
		free(ctx);
		return WCCL_EINVAL;
	}
	ctx->mtu = (uint32_t)v;
	ctx->frag_max = (uint32_t)v - 28u - DPDK_WIRE_MAX_HDR;
	ctx->window = pow2_clamp(wccl_param_int(WCCL_PARAM_DPDK_WINDOW), 16,
				 32768);
	ctx->depth = pow2_clamp(wccl_param_int(WCCL_PARAM_QUEUE_DEPTH), 1,
				65536);
	v = wccl_param_int(WCCL_PARAM_DPDK_RTO_MIN_US);
	ctx->rto_min_ns = (uint64_t)(v > 10 ? v : 10) * 1000ull;
	ctx->rto_max_ns = 1000000000ull;
	if (ctx->rto_max_ns < ctx->rto_min_ns)
		ctx->rto_max_ns = ctx->rto_min_ns;
	v = wccl_param_int(WCCL_PARAM_DPDK_PEER_TIMEOUT_MS);
	ctx->peer_timeout_ns = (uint64_t)(v > 100 ? v : 100) * 1000000ull;
	v = wccl_param_int(WCCL_PARAM_DPDK_PACE_MBPS);
	ctx->rate_max = v > 0 ? (double)v / 8.0 : 0; /* bytes per us */
	ctx->pace.rate = ctx->rate_max;
	ctx->pace.burst = 64.0 * DPDK_WIRE_COST(ctx->frag_max);
	ctx->pace.tokens = ctx->pace.burst;
	ctx->model = wccl_param_int(WCCL_PARAM_DPDK_PACE_MODEL) > 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_QDELAY_US);
	ctx->qdelay_ns = v > 0 ? (uint64_t)v * 1000ull : 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_TEST_LINK_MBPS);
	ctx->link.ns_per_byte = v > 0 ? 8000.0 / (double)v : 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_TEST_DROP);
	ctx->drop_every = v > 0 ? (uint32_t)v : 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_TEST_TAIL_DROP);
	ctx->tail_drop = v > 0 && v < 1000000 ? (uint32_t)v : 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_TEST_CORRUPT);
	ctx->corrupt_every = v > 0 ? (uint32_t)v : 0;
	ctx->udp_csum = wccl_param_int(WCCL_PARAM_DPDK_UDP_CSUM) > 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_ZCOPY_MIN);
	ctx->zcopy_min = v > 0 ? (uint32_t)v : 0;
	ctx->swap = wccl_param_int(WCCL_PARAM_DPDK_TEST_SWAP) > 0;
	const char *mac = wccl_param_str(WCCL_PARAM_DPDK_PEER_MAC);
	if (mac && *mac) {
		if (rte_ether_unformat_addr(mac, &ctx->peer_mac)) {
			WCCL_WARN(WCCL_SUB_DPDK, "WCCL_DPDK_PEER_MAC=%s: bad",
				  mac);
			free(ctx);
			return WCCL_EINVAL;
		}
		ctx->have_peer_mac = true;
	}
	ctx->arp = wccl_param_int(WCCL_PARAM_DPDK_ARP) > 0;
	v = wccl_param_int(WCCL_PARAM_DPDK_ARP_TIMEOUT_MS);
	ctx->arp_timeout_ns = (uint64_t)(v > 10 ? v : 10) * 1000000ull;
	v = wccl_param_int(WCCL_PARAM_DPDK_ARP_RETRY_MS);
	ctx->arp_retry_ns = (uint64_t)(v > 1 ? v : 1) * 1000000ull;
	if (dpdk_neigh_parse(ctx, wccl_param_str(WCCL_PARAM_DPDK_NEIGH))) {
		free(ctx);
		return WCCL_EINVAL;
	}
	ctx->mr_gen = 1;
	int rc = dpdk_port_setup(ctx);
	if (rc) {
		free(ctx);
		return rc;
	}
	ctx->now = ctx->pace.ns = dpdk_now_ns();
	ctx_open = true;
	WCCL_INFO(WCCL_SUB_DPDK,
		  "context: port %u mac " RTE_ETHER_ADDR_PRT_FMT
		  " ip %s udp %u, %u B/packet, window %u, depth %u, pacing %s "
		  "up to %.0f Mbit/s, checksums tx %s rx %s%s, zero-copy TX %s",
		  ctx->port, RTE_ETHER_ADDR_BYTES(&ctx->mac), ip, ctx->udp_port,
		  ctx->frag_max, ctx->window, ctx->depth,
		  ctx->model ? "by the model" : "fixed", ctx->rate_max * 8.0,
		  ctx->tx_csum_hw ? "offloaded" : "software",
		  ctx->rx_csum_hw ? "offloaded" : "software",
		  ctx->udp_csum ? "" : " (UDP checksum off)",
		  ctx->zcopy_min ? "on" : "off");
	*out = &ctx->base;
	return 0;
}

static void dpdk_context_close(struct wccl_context *c)
{
	struct dpdk_ctx *ctx = DPDK_CTX(c);
	const struct dpdk_stats *s = &ctx->st;
	WCCL_INFO(WCCL_SUB_DPDK,
		  "stats: tx %llu rx %llu data %llu/%llu retx %llu (rto %llu "
		  "fast %llu tlp %llu) malformed %llu unknown %llu dup %llu reordered "
		  "%llu bad-csum %llu zcopy %llu test-dropped %llu test-corrupted %llu test-link-drops %llu arp rx %llu req %llu rep %llu "
		  "conflicts %llu icmp-echo %llu stalls %llu (%.1f ms, max "
		  "%.2f ms) cpu-bound %llu",
		  (unsigned long long)s->tx_pkts, (unsigned long long)s->rx_pkts,
		  (unsigned long long)s->tx_data, (unsigned long long)s->rx_data,
		  (unsigned long long)s->retransmits,
		  (unsigned long long)s->rto_fires,
		  (unsigned long long)s->fast_retx,
		  (unsigned long long)s->tlp_probes,
		  (unsigned long long)s->rx_malformed,
		  (unsigned long long)s->rx_unknown,
		  (unsigned long long)s->rx_dup,
		  (unsigned long long)s->rx_reordered,
		  (unsigned long long)s->rx_bad_csum,
		  (unsigned long long)s->tx_zcopy,
		  (unsigned long long)s->test_dropped,
		  (unsigned long long)s->test_corrupted,
		  (unsigned long long)s->test_link_drops,
		  (unsigned long long)s->arp_rx,
		  (unsigned long long)s->arp_requests,
		  (unsigned long long)s->arp_replies,
		  (unsigned long long)s->arp_conflicts,
		  (unsigned long long)s->icmp_echo,
		  (unsigned long long)s->stalls, s->stall_ns / 1e6,
		  s->stall_max_ns / 1e6, (unsigned long long)s->cpu_bound);
	/* Let FINs leave; the port and pool stay for a later context. */
	dpdk_link_release(ctx, true);
	for (int i = 0; i < 100 && ctx->n_txq; i++)
		dpdk_tx_flush(ctx);
	for (uint32_t i = 0; i < ctx->n_txq; i++)
		rte_pktmbuf_free(ctx->txq[i]);
	for (uint32_t i = 0; i < ctx->n_loopq; i++)
		rte_pktmbuf_free(ctx->loopq[i]);
	free(ctx);
	ctx_open = false;
}

int dpdk_context_stats(struct wccl_context *c, struct dpdk_stats *st)
{
	if (!c || !st || !c->prov || strcmp(c->prov->name, "dpdk"))
		return WCCL_EINVAL;
	*st = DPDK_CTX(c)->st;
	return 0;
}

int dpdk_context_neigh(struct wccl_context *c, const char *ip, uint8_t mac[6])
{
	struct in_addr in;
	if (!c || !ip || !mac || !c->prov || strcmp(c->prov->name, "dpdk") ||
	    inet_pton(AF_INET, ip, &in) != 1)
		return WCCL_EINVAL;
	const struct dpdk_neigh *n = dpdk_neigh_find(DPDK_CTX(c), in.s_addr,
						     false);
	if (!n || !n->known)
		return WCCL_EAGAIN;
	memcpy(mac, n->mac.addr_bytes, 6);
	return 0;
}

static int dpdk_cq_create(struct wccl_context *c, uint32_t depth,
			  struct wccl_cq **out)
{
	struct dpdk_cq *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return WCCL_ENOMEM;
	if (!depth)
		depth = (uint32_t)wccl_param_int(WCCL_PARAM_CQ_DEPTH);
	cq->ring = calloc(depth ? depth : 4096, sizeof(*cq->ring));
	if (!cq->ring) {
		free(cq);
		return WCCL_ENOMEM;
	}
	cq->cap = depth ? depth : 4096;
	cq->base.ctx = c;
	*out = &cq->base;
	return 0;
}

static void dpdk_cq_destroy(struct wccl_cq *q)
{
	struct dpdk_cq *cq = DPDK_CQ(q);
	free(cq->ring);
	free(cq);
}

static int dpdk_cq_poll(struct wccl_cq *q, struct wccl_completion *wc, int max)
{
	if (!q || !wc || max < 0)
		return WCCL_EINVAL;
	struct dpdk_cq *cq = DPDK_CQ(q);
	int rc = dpdk_progress(DPDK_CTX(q->ctx));
	if (rc < 0)
		return rc;
	int n = comp_ring_pop(cq->ring, cq->cap, &cq->head, &cq->count, wc,
			      max);
	return n;
}

/* No interrupts: keep polling (yielding the CPU between passes). */
static int dpdk_cq_sleep(struct wccl_cq *q, int timeout_ms)
{
	struct dpdk_cq *cq = DPDK_CQ(q);
	uint64_t end = dpdk_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms
								  : 0) *
						      1000000ull;
	do {
		int rc = dpdk_progress(DPDK_CTX(q->ctx));
		if (rc < 0)
			return rc;
		if (cq->count)
			return 0;
		sched_yield();
	} while (dpdk_now_ns() < end);
	return 0;
}

/* The last zero-copy mbuf of a deregistered region is gone. */
static void dpdk_mr_ext_free(void *addr, void *opaque)
{
	(void)addr;
	free(opaque);
}

static int dpdk_mr_register(struct wccl_context *c, void *addr, size_t len,
			    uint32_t access, struct wccl_mr **out)
{
	struct dpdk_ctx *ctx = DPDK_CTX(c);
	int free_slot = mr_key_free_slot((void *const *)ctx->mrs, DPDK_MR_SLOTS);
	if (free_slot < 0)
		return WCCL_ENOSPC;
	uint32_t slot = (uint32_t)free_slot;
	struct dpdk_mr *mr = calloc(1, sizeof(*mr));
	if (!mr)
		return WCCL_ENOMEM;
	mr->base.ctx = c;
	mr->base.addr = addr;
	mr->base.len = len;
	mr->base.access = access;
	mr->slot = slot;
	mr->base.key = mr_key_make(&ctx->mr_gen, slot);
	mr->shinfo.free_cb = dpdk_mr_ext_free;
	mr->shinfo.fcb_opaque = mr;
	rte_mbuf_ext_refcnt_set(&mr->shinfo, 1); /* the registration */
	ctx->mrs[slot] = mr;
	*out = &mr->base;
	return 0;
}

static void dpdk_mr_deregister(struct wccl_mr *m)
{
	struct dpdk_mr *mr = DPDK_MR(m);
	struct dpdk_ctx *ctx = DPDK_CTX(m->ctx);
	ctx->mrs[mr->slot] = NULL;
	/* A peer's write landing in it stops: its later fragments are
	 * dropped, and it fails at both ends. */
	for (uint32_t i = 0; i < DPDK_EP_SLOTS; i++) {
		struct dpdk_ep *ep = ctx->eps[i];
		if (ep && ep->cur_mr == mr) {
			ep->cur_mr = NULL;
			ep->cur_dest = NULL;
			if (!ep->cur_status)
				ep->cur_status = WCCL_EREMOTE_KEY;
		}
	}
	/* Zero-copy frames still queued here or in the port read the
	 * region: push them out and let the port free what it sent. */
	if (rte_mbuf_ext_refcnt_read(&mr->shinfo) > 1) {
		dpdk_tx_flush(ctx);
		if (dpdk_pmd_enter()) {
			rte_eth_tx_done_cleanup(ctx->port, 0, 0);
			dpdk_pmd_leave();
		}
	}
	dpdk_mr_unref(mr);
}

const struct wccl_provider wccl_provider_dpdk = {
	.name = "dpdk",
	.description = "kernel-bypass UDP/IPv4 over a DPDK port (own reliable, "
		       "paced protocol)",
	.priority = 5,
	.caps = WCCL_CAP_SEND_RECV | WCCL_CAP_WRITE | WCCL_CAP_WRITE_IMM |
		WCCL_CAP_ZCOPY_RX | WCCL_CAP_SAME_HOST | WCCL_CAP_REMOTE_HOST,
	.ctrl = {
		.accept = dpdk_accept,
		.can_connect = dpdk_can_connect,
		.connect = dpdk_connect,
		.context_close = dpdk_context_close,
		.context_open = dpdk_context_open,
		.cq_create = dpdk_cq_create,
		.cq_destroy = dpdk_cq_destroy,
		.cq_sleep = dpdk_cq_sleep,
		.describe = dpdk_eal_describe,
		.endpoint_close = dpdk_endpoint_close,
		.endpoint_get_attr = dpdk_endpoint_get_attr,
		.endpoint_set_attr = dpdk_endpoint_set_attr,
		.established = dpdk_established,
		.listen = dpdk_listen,
		.listener_addr = dpdk_listener_addr,
		.listener_close = dpdk_listener_close,
		.mr_deregister = dpdk_mr_deregister,
		.mr_register = dpdk_mr_register,
		.probe = dpdk_eal_probe,
	},
	.fast = {
		.cq_poll = dpdk_cq_poll,
		.post_recv = dpdk_post_recv,
		.post_send = dpdk_post_send,
		.post_write = dpdk_post_write,
	},
};
