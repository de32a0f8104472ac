/* SPDX-License-Identifier: MIT */
/*
 * Connections: listeners (a UDP port each), SYN / SYN-ACK handshake with
 * retransmitted SYNs, endpoint life and teardown (FIN, best effort).
 * Addresses are "IP:PORT" (the detail after "dpdk:").
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_random.h>

#include "core/log.h"
#include "core/params.h"
#include "dpdk.h"

static int parse_addr(const char *addr, uint32_t *ip, uint16_t *port)
{
	char host[64];
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return WCCL_EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	struct in_addr in;
	if (*end || !colon[1] || p > 65535 || inet_pton(AF_INET, host, &in) != 1)
		return WCCL_EINVAL;
	*ip = in.s_addr;
	*port = (uint16_t)p;
	return 0;
}

int dpdk_can_connect(const char *addr)
{
	uint32_t ip;
	uint16_t port;
	return parse_addr(addr, &ip, &port) == 0 && port;
}

static void set_peer(struct dpdk_ep *ep)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr in = { ep->peer_ip };
	inet_ntop(AF_INET, &in, ip, sizeof(ip));
	snprintf(ep->base.peer, sizeof(ep->base.peer), "dpdk:%s:%u", ip,
		 ep->peer_port);
}

struct dpdk_ep *dpdk_ep_new(struct dpdk_ctx *ctx)
{
	uint32_t slot = 0;
	while (slot < DPDK_EP_SLOTS && ctx->eps[slot])
		slot++;
	if (slot == DPDK_EP_SLOTS)
		return NULL;
	struct dpdk_ep *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->ctx = ctx;
	ep->base.ctx = &ctx->base;
	ep->slot = slot;
	ep->depth = ctx->depth;
	ep->dmask = ctx->depth - 1;
	ep->window = ctx->window;
	ep->wmask = ctx->window - 1;
	ep->peer_wnd = ctx->window;
	ep->tx = calloc(ep->depth, sizeof(*ep->tx));
	ep->rq = calloc(ep->depth, sizeof(*ep->rq));
	ep->pkts = calloc(ep->window, sizeof(*ep->pkts));
	ep->rx = calloc(ep->window, sizeof(*ep->rx));
	if (!ep->tx || !ep->rq || !ep->pkts || !ep->rx) {
		dpdk_ep_free(ep);
		return NULL;
	}
	do {
		ep->conn_id = (uint32_t)(rte_rand() << 10) | slot;
	} while (!ep->conn_id);
	ep->rto = 100000000ull > ctx->rto_min_ns ? 100000000ull
						  : ctx->rto_min_ns;
	/* Window: 4 packets at least (BBR), 16 to start. */
	uint64_t pkt = DPDK_WIRE_COST(ctx->frag_max);
	pace_model_init(&ep->cc, (uint64_t)(ctx->rate_max * 1e6), ctx->qdelay_ns,
			4 * pkt, 16 * pkt);
	pace_rs_init(&ep->rs, DPDK_RATE_MIN_PKTS * pkt);
	ep->last_rx_ns = ep->last_tx_ns = dpdk_now_ns();
	ep->local_port = ctx->udp_port;
	ctx->eps[slot] = ep;
	return ep;
}

void dpdk_ep_free(struct dpdk_ep *ep)
{
	dpdk_ep_rx_release(ep);
	if (ep->tx) /* operations never completed: drop their region refs */
		for (uint32_t s = ep->tx_done; s != ep->tx_post; s++)
			if (ep->tx[s & ep->dmask].zmr)
				dpdk_mr_unref(ep->tx[s & ep->dmask].zmr);
	if (ep->ctx->eps[ep->slot] == ep)
		ep->ctx->eps[ep->slot] = NULL;
	free(ep->tx);
	free(ep->rq);
	free(ep->pkts);
	free(ep->rx);
	free(ep);
}

/* ---- listeners ---- */

int dpdk_listen(struct wccl_context *c, const char *bind_addr,
		struct wccl_listener **out)
{
	struct dpdk_ctx *ctx = DPDK_CTX(c);
	uint32_t ip = ctx->ip;
	uint16_t port = ctx->udp_port;
	if (bind_addr && *bind_addr) {
		if (parse_addr(bind_addr, &ip, &port))
			return WCCL_EINVAL;
		if (ip != ctx->ip && ip != 0)
			return WCCL_EADDRNOTAVAIL;
		if (!port)
			port = ctx->udp_port;
	}
	for (int tries = 0; tries < 1000; tries++, port++) {
		struct dpdk_listener *l = ctx->listeners;
		while (l && l->port != port)
			l = l->next;
		if (!l)
			break;
		if (bind_addr && *bind_addr && !strstr(bind_addr, ":0"))
			return WCCL_EADDRINUSE;
	}
	struct dpdk_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return WCCL_ENOMEM;
	l->base.ctx = c;
	l->ctx = ctx;
	l->port = port;
	l->next = ctx->listeners;
	ctx->listeners = l;
	*out = &l->base;
	return 0;
}

int dpdk_listener_addr(const struct wccl_listener *bl, char *buf, size_t len)
{
	const struct dpdk_listener *l = DPDK_LISTENER(bl);
	char ip[INET_ADDRSTRLEN];
	struct in_addr in = { l->ctx->ip };
	inet_ntop(AF_INET, &in, ip, sizeof(ip));
	int n = snprintf(buf, len, "%s:%u", ip, l->port);
	return n < 0 || (size_t)n >= len ? WCCL_ENOSPC : 0;
}

static void ep_teardown(struct dpdk_ep *ep)
{
	if (ep->state == DPDK_EP_READY) {
		ep->ctx->now = dpdk_now_ns();
		dpdk_send_ctrl(ep, DPDK_PKT_FIN);
		dpdk_send_ctrl(ep, DPDK_PKT_FIN);
		dpdk_tx_flush(ep->ctx);
	}
	dpdk_ep_free(ep);
}

void dpdk_listener_close(struct wccl_listener *bl)
{
	struct dpdk_listener *l = DPDK_LISTENER(bl);
	struct dpdk_listener **pp = &l->ctx->listeners;
	while (*pp && *pp != l)
		pp = &(*pp)->next;
	if (*pp)
		*pp = l->next;
	for (uint32_t i = 0; i < l->n_pending; i++)
		ep_teardown(l->pending[i]);
	free(l);
}

void dpdk_rx_syn(struct dpdk_ctx *ctx, const struct rte_ether_hdr *eth,
		 uint32_t src_ip, uint16_t src_port, uint16_t dst_port,
		 const struct dpdk_wire_hdr *h)
{
	struct dpdk_listener *l = ctx->listeners;
	while (l && l->port != dst_port)
		l = l->next;
	for (uint32_t i = 0; i < DPDK_EP_SLOTS; i++) {
		struct dpdk_ep *ep = ctx->eps[i];
		if (ep && ep->peer_ip == src_ip && ep->peer_port == src_port &&
		    ep->peer_conn == h->src_conn &&
		    ep->local_port == dst_port) {
			/* Our SYN-ACK was lost: say it again. */
			if (ep->state == DPDK_EP_READY)
				dpdk_send_ctrl(ep, DPDK_PKT_SYNACK);
			return;
		}
	}
	if (!l || l->n_pending == DPDK_ACCEPT_MAX) {
		struct dpdk_ep tmp;
		memset(&tmp, 0, sizeof(tmp));
		WCCL_INFO(WCCL_SUB_DPDK, "SYN to port %u: %s", dst_port,
			  l ? "accept queue full" : "nobody listens");
		if (!l) {
			/* Refuse with an RST naming the caller's conn. */
			struct dpdk_ep *ep = dpdk_ep_new(ctx);
			if (!ep)
				return;
			ep->peer_ip = src_ip;
			ep->peer_port = src_port;
			ep->local_port = dst_port;
			ep->peer_conn = h->src_conn;
			rte_ether_addr_copy(&eth->src_addr, &ep->peer_mac);
			ep->mac_known = true;
			dpdk_send_ctrl(ep, DPDK_PKT_RST);
			dpdk_ep_free(ep);
		}
		return;
	}
	struct dpdk_ep *ep = dpdk_ep_new(ctx);
	if (!ep)
		return;
	ep->peer_ip = src_ip;
	ep->peer_port = src_port;
	ep->local_port = dst_port;
	ep->peer_conn = h->src_conn;
	if (h->key && h->key < ep->window)
		ep->peer_wnd = (uint32_t)h->key;
	rte_ether_addr_copy(&eth->src_addr, &ep->peer_mac);
	ep->mac_known = true;
	ep->state = DPDK_EP_READY;
	ep->listener = l;
	set_peer(ep);
	l->pending[l->n_pending++] = ep;
	dpdk_send_ctrl(ep, DPDK_PKT_SYNACK);
	WCCL_INFO(WCCL_SUB_DPDK, "%s: SYN accepted (conn %#x/%#x)",
		  ep->base.peer, ep->conn_id, ep->peer_conn);
}

int dpdk_accept(struct wccl_listener *bl, struct wccl_cq *cq,
		struct wccl_endpoint **out)
{
	struct dpdk_listener *l = DPDK_LISTENER(bl);
	if (!l->n_pending)
		dpdk_progress(l->ctx);
	if (!l->n_pending)
		return WCCL_EAGAIN;
	struct dpdk_ep *ep = l->pending[0];
	memmove(l->pending, l->pending + 1,
		--l->n_pending * sizeof(l->pending[0]));
	ep->listener = NULL;
	ep->base.cq = cq;
	*out = &ep->base;
	return 0;
}

int dpdk_connect(struct wccl_context *c, const char *addr, struct wccl_cq *cq,
		 struct wccl_endpoint **out)
{
	struct dpdk_ctx *ctx = DPDK_CTX(c);
	uint32_t ip;
	uint16_t port;
	if (parse_addr(addr, &ip, &port) || !port)
		return WCCL_EINVAL;
	struct dpdk_ep *ep = dpdk_ep_new(ctx);
	if (!ep)
		return WCCL_ENOMEM;
	ep->peer_ip = ip;
	ep->peer_port = port;
	ep->base.cq = cq;
	ep->state = DPDK_EP_SYN_SENT;
	int64_t ms = wccl_param_int(WCCL_PARAM_CONNECT_TIMEOUT_MS);
	ep->deadline_ns = dpdk_now_ns() + (uint64_t)(ms > 0 ? ms : 10000) *
						 1000000ull;
	set_peer(ep);
	*out = &ep->base;
	dpdk_progress(ctx);
	return 0;
}

int dpdk_established(struct wccl_endpoint *e)
{
	struct dpdk_ep *ep = DPDK_EP(e);
	if (ep->state == DPDK_EP_SYN_SENT)
		dpdk_progress(ep->ctx);
	switch (ep->state) {
	case DPDK_EP_READY:
		return 0;
	case DPDK_EP_SYN_SENT:
		return WCCL_EAGAIN;
	default:
		return ep->err;
	}
}

void dpdk_endpoint_close(struct wccl_endpoint *e)
{
	struct dpdk_ep *ep = DPDK_EP(e);
	if (!dpdk_ep_flush(ep, WCCL_ECANCELED))
		WCCL_WARN(WCCL_SUB_DPDK,
			  "%s: CQ full, in-flight ops dropped at close",
			  ep->base.peer);
	ep_teardown(ep);
}

/* MAX_PACING_RATE caps the connection's model (0: back to the context's
 * ceiling, WCCL_DPDK_PACE_MBPS); the port's ceiling always holds. */
int dpdk_endpoint_set_attr(struct wccl_endpoint *e, int attr, uint64_t v)
{
	struct dpdk_ep *ep = DPDK_EP(e);
	if (attr != WCCL_EP_ATTR_MAX_PACING_RATE)
		return WCCL_EOPNOTSUPP;
	struct pace_model *cc = &ep->cc;
	cc->rate_cap = v ? v : (uint64_t)(ep->ctx->rate_max * 1e6);
	if (!cc->btlbw || (cc->rate_cap && cc->pacing_rate > cc->rate_cap))
		cc->pacing_rate = cc->rate_cap;
	return 0;
}

int dpdk_endpoint_get_attr(struct wccl_endpoint *e, int attr, uint64_t *v)
{
	const struct dpdk_ep *ep = DPDK_EP(e);
	switch (attr) {
	case WCCL_EP_ATTR_MAX_PACING_RATE:
		*v = ep->cc.rate_cap;
		return 0;
	case WCCL_EP_ATTR_SRTT_US:
		*v = ep->srtt / 1000;
		return 0;
	case WCCL_EP_ATTR_MIN_RTT_US:
		*v = ep->cc.min_rtt_ns / 1000;
		return 0;
	case WCCL_EP_ATTR_BTLBW:
		*v = ep->cc.btlbw;
		return 0;
	case WCCL_EP_ATTR_PACING_RATE:
		*v = ep->cc.pacing_rate;
		return 0;
	default:
		return WCCL_EOPNOTSUPP;
	}
}
