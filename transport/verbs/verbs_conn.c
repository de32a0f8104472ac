/* SPDX-License-Identifier: MIT */
/*
 * verbs connections through librdmacm, never blocking: the event channel is
 * non-blocking and read by progress. An endpoint is 1 + N rdma_cm
 * connections (one per QP) to the same listener, tied together by a random
 * nonce in the private data:
 *
 *   active:  create_id -> resolve_addr -> ADDR_RESOLVED -> resolve_route
 *            -> ROUTE_RESOLVED -> create_qp, connect -> ESTABLISHED
 *   passive: CONNECT_REQUEST -> (find or make the endpoint by nonce)
 *            -> create_qp, accept -> ESTABLISHED
 *
 * The endpoint is established when all its QPs are. A connect REJECTED
 * with reason 8 (invalid service ID) is retried twice 200 ms apart: rxe on
 * a loaded 7.x kernel sometimes rejects although the listener exists (and
 * RoCE answers a port nobody listens on the same way).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "verbs.h"

#define VERBS_REJECT_RETRIES 2
#define VERBS_REJECT_DELAY_MS 200
#define VERBS_BACKLOG 128

static void ep_destroy(struct verbs_ep *ep);
static bool ep_drained(const struct verbs_ep *ep);

int verbs_parse_addr(const char *addr, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || !colon[1])
		return WCCL_EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535)
		return WCCL_EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return WCCL_EINVAL;
	return 0;
}

/* ---- qp_num -> QP ------------------------------------------------------ */

static uint32_t qp_slot(uint32_t qp_num)
{
	return (qp_num * 2654435761u) % VERBS_QP_HASH;
}

static int qp_hash_add(struct verbs_ctx *ctx, struct verbs_qp *q)
{
	for (uint32_t i = 0, s = qp_slot(q->qp_num); i < VERBS_QP_HASH;
	     i++, s = (s + 1) % VERBS_QP_HASH)
		if (!ctx->qps[s]) {
			ctx->qps[s] = q;
			return 0;
		}
	return WCCL_ENOSPC;
}

static void qp_hash_del(struct verbs_ctx *ctx, struct verbs_qp *q)
{
	uint32_t s = qp_slot(q->qp_num);
	for (uint32_t i = 0; i < VERBS_QP_HASH; i++, s = (s + 1) % VERBS_QP_HASH)
		if (ctx->qps[s] == q)
			break;
	if (ctx->qps[s] != q)
		return;
	/* Backward-shift deletion keeps probe chains intact. */
	ctx->qps[s] = NULL;
	for (uint32_t j = (s + 1) % VERBS_QP_HASH; ctx->qps[j];
	     j = (j + 1) % VERBS_QP_HASH) {
		struct verbs_qp *m = ctx->qps[j];
		ctx->qps[j] = NULL;
		qp_hash_add(ctx, m);
	}
}

struct verbs_qp *verbs_qp_lookup(struct verbs_ctx *ctx, uint32_t qp_num)
{
	for (uint32_t i = 0, s = qp_slot(qp_num); i < VERBS_QP_HASH;
	     i++, s = (s + 1) % VERBS_QP_HASH) {
		struct verbs_qp *q = ctx->qps[s];
		if (!q)
			return NULL;
		if (q->qp_num == qp_num)
			return q;
	}
	return NULL;
}

/* ---- endpoints ------------------------------------------------------- */

static struct verbs_ep *ep_new(struct verbs_ctx *ctx, uint32_t nqps)
{
	struct verbs_ep *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->ctx = ctx;
	ep->state = VERBS_EP_CONNECTING;
	ep->nqps = nqps;
	ep->depth = ctx->depth;
	ep->inflight.cap = ctx->max_inflight;
	ep->mask = ctx->depth - 1;
	ep->tx = calloc(ep->depth, sizeof(*ep->tx));
	ep->rq = calloc(ep->depth, sizeof(*ep->rq));
	ep->cts_out = calloc(ep->depth, sizeof(*ep->cts_out));
	/* The clear-to-send ring the peer writes (striped sends). */
	ep->cts_slots = ep->depth;
	size_t cts_len = (size_t)ep->cts_slots * sizeof(*ep->cts);
	if (posix_memalign((void **)&ep->cts, 4096, cts_len))
		ep->cts = NULL;
	if (ep->cts) {
		memset(ep->cts, 0, cts_len);
		ep->cts_mr = verbs_reg_mr(ctx, ep->cts, cts_len,
					  IBV_ACCESS_LOCAL_WRITE |
					      IBV_ACCESS_REMOTE_WRITE);
	}
	if (!ep->tx || !ep->rq || !ep->cts_out || !ep->cts_mr) {
		verbs_dereg_mr(ctx, ep->cts_mr);
		free(ep->cts);
		free(ep->cts_out);
		free(ep->tx);
		free(ep->rq);
		free(ep);
		return NULL;
	}
	/* Every slot, not just nqps: a QP must never exist without its
	 * endpoint (qp_teardown and the CM handler dereference q->ep). */
	for (uint32_t i = 0; i < VERBS_MAX_QPS; i++) {
		ep->qp[i].ep = ep;
		ep->qp[i].idx = i;
		ep->qp[i].retries = VERBS_REJECT_RETRIES;
	}
	ep->deadline_ns =
	    wccl_deadline_ns(wccl_param_int(WCCL_PARAM_CONNECT_TIMEOUT_MS));
	ep->next = ctx->eps;
	ctx->eps = ep;
	return ep;
}

static void addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN] = "?";
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "verbs:%s:%u", ip,
		 sa && sa->sa_family == AF_INET ? ntohs(in->sin_port) : 0);
}

static void ep_set_peer(struct verbs_ep *ep, const struct sockaddr *sa)
{
	addr_str(sa, ep->base.peer, sizeof(ep->base.peer));
}

/* Create the RC QP of @q on @id (resolved or a passive child). */
static int qp_create(struct verbs_ep *ep, struct verbs_qp *q,
		     struct rdma_cm_id *id)
{
	struct verbs_ctx *ctx = ep->ctx;
	if (id->verbs != ctx->dev) {
		return wccl_ep_fail(
		    &ep->base, WCCL_SUB_VERBS, WCCL_ENETUNREACH,
		    "the route uses RDMA device %s, but this context is on "
		    "%s (set WCCL_VERBS_DEVICE / WCCL_VERBS_ADDR)",
		    id->verbs ? ibv_get_device_name(id->verbs->device)
			      : "(none)",
		    ctx->dev_name);
	}
	uint32_t sq = ep->depth + 16;
	if (sq > (uint32_t)ctx->attr.max_qp_wr)
		sq = (uint32_t)ctx->attr.max_qp_wr;
	uint32_t rq = q->idx == 0 ? ep->depth : 0;
	int more = (int)(sq + rq);
	int rc = verbs_cq_reserve(ctx, more);
	if (rc)
		return wccl_ep_fail(&ep->base, WCCL_SUB_VERBS, rc,
				    "no completion queue room for QP %u",
				    q->idx);
	struct ibv_qp_init_attr ia = {
		.qp_context = q,
		.send_cq = ctx->cq,
		.recv_cq = ctx->cq,
		.srq = q->idx == 0 ? NULL : ctx->srq,
		.cap = {.max_send_wr = sq,
			.max_recv_wr = rq,
			.max_send_sge = 1,
			.max_recv_sge = 1,
			.max_inline_data = ctx->inline_max},
		.qp_type = IBV_QPT_RC,
		.sq_sig_all = 0,
	};
	if (rdma_create_qp(id, ctx->pd, &ia)) {
		/* Some devices cap inline data lower: try without. */
		ia.cap.max_inline_data = 0;
		ia.cap.max_send_wr = sq;
		ia.cap.max_recv_wr = rq;
		if (rdma_create_qp(id, ctx->pd, &ia)) {
			int e = errno;
			verbs_cq_reserve(ctx, -more);
			return wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
					    WCCL_ENOMEM,
					    "rdma_create_qp (QP %u): %s", q->idx,
					    strerror(e));
		}
	}
	uint32_t cap = 1;
	while (cap < sq)
		cap <<= 1;
	q->sq_op = calloc(cap, sizeof(*q->sq_op));
	if (!q->sq_op) {
		rdma_destroy_qp(id);
		verbs_cq_reserve(ctx, -more);
		return WCCL_ENOMEM;
	}
	bool had_id = q->id == id; /* active: @id is the QP's already */
	q->sq_cap = sq;
	q->sq_mask = cap - 1;
	q->max_inline = ia.cap.max_inline_data;
	q->id = id;
	q->qp = id->qp;
	q->qp_num = id->qp->qp_num;
	id->context = q;
	if (qp_hash_add(ctx, q)) {
		/* A passive caller destroys @id itself: forget it here. */
		rdma_destroy_qp(id);
		if (!had_id) {
			id->context = NULL;
			q->id = NULL;
		}
		q->qp = NULL;
		free(q->sq_op);
		q->sq_op = NULL;
		verbs_cq_reserve(ctx, -more);
		return WCCL_ENOSPC;
	}
	q->listed = true;
	/* The ACK timeout from the tunable, not the path's packet lifetime:
	 * it must exceed the RTT plus a full bottleneck queue. */
	uint8_t t = ctx->timeout;
	if (rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t,
			    sizeof(t)))
		WCCL_INFO(WCCL_SUB_VERBS,
			  "rdma_set_option(ACK_TIMEOUT %u): %s; path default "
			  "applies",
			  t, strerror(errno));
	return 0;
}

static void qp_teardown(struct verbs_ctx *ctx, struct verbs_qp *q)
{
	if (q->qp) {
		if (q->listed)
			qp_hash_del(ctx, q);
		q->listed = false;
		rdma_destroy_qp(q->id);
		verbs_cq_reserve(ctx, -(int)(q->sq_cap +
					     (q->idx == 0 ? q->ep->depth : 0)));
		q->qp = NULL;
	}
	if (q->id) {
		rdma_destroy_id(q->id);
		q->id = NULL;
	}
	free(q->sq_op);
	q->sq_op = NULL;
	q->up = false;
}

void verbs_ep_fail(struct verbs_ep *ep, int err)
{
	if (ep->state == VERBS_EP_FAILED)
		return;
	ep->state = VERBS_EP_FAILED;
	ep->err = err;
	for (uint32_t i = 0; i < ep->nqps; i++) {
		struct verbs_qp *q = &ep->qp[i];
		if (q->qp) {
			struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
			ibv_modify_qp(q->qp, &a, IBV_QP_STATE);
		}
		if (q->up)
			rdma_disconnect(q->id);
	}
	verbs_ep_flush_waiting(ep);
}

static int start_resolve(struct verbs_ep *ep, struct verbs_qp *q)
{
	struct verbs_ctx *ctx = ep->ctx;
	if (rdma_create_id(ctx->ech, &q->id, q, RDMA_PS_TCP))
		return wccl_ep_fail(&ep->base, WCCL_SUB_VERBS, WCCL_ENOMEM,
				    "rdma_create_id: %s", strerror(errno));
	struct sockaddr_in src = {.sin_family = AF_INET};
	bool have_src = ctx->ip[0] &&
			inet_pton(AF_INET, ctx->ip, &src.sin_addr) == 1;
	int ms = (int)((ep->deadline_ns > wccl_now_ns()
			    ? ep->deadline_ns - wccl_now_ns()
			    : 0) / 1000000) + 1;
	if (rdma_resolve_addr(q->id, have_src ? (struct sockaddr *)&src : NULL,
			      (struct sockaddr *)&ep->dst, ms))
		return wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
				    WCCL_EHOSTUNREACH, "rdma_resolve_addr: %s",
				    strerror(errno));
	return 0;
}

int verbs_connect(struct wccl_context *c, const char *addr,
		  struct wccl_cq *cq, struct wccl_endpoint **out)
{
	struct verbs_ctx *ctx = VERBS_CTX(c);
	struct sockaddr_in sa;
	if (verbs_parse_addr(addr, &sa)) {
		WCCL_WARN(WCCL_SUB_VERBS,
			  "verbs address '%s' is not IPv4:port: nothing "
			  "can listen there",
			  addr);
		return WCCL_ECONNREFUSED;
	}
	struct verbs_ep *ep = ep_new(ctx, 1 + ctx->nqps);
	if (!ep)
		return WCCL_ENOMEM;
	ep->active = true;
	ep->accepted = true;
	ep->base.cq = cq;
	memcpy(&ep->dst, &sa, sizeof(sa));
	ep_set_peer(ep, (struct sockaddr *)&sa);
	if (getrandom(&ep->nonce, sizeof(ep->nonce), GRND_NONBLOCK) !=
	    sizeof(ep->nonce))
		ep->nonce = wccl_now_ns() ^ ((uint64_t)getpid() << 32);
	for (uint32_t i = 0; i < ep->nqps; i++)
		if (start_resolve(ep, &ep->qp[i])) {
			verbs_ep_fail(ep, ep->err ? ep->err : WCCL_EHOSTUNREACH);
			break;
		}
	*out = &ep->base;
	return 0;
}

static void active_connect(struct verbs_ep *ep, struct verbs_qp *q)
{
	if (qp_create(ep, q, q->id)) {
		verbs_ep_fail(ep, WCCL_ENETUNREACH);
		return;
	}
	struct verbs_hello h = {.magic = VERBS_MAGIC,
				.idx = (uint16_t)q->idx,
				.nqps = (uint16_t)ep->nqps,
				.nonce = ep->nonce,
				.cts_addr = (uint64_t)(uintptr_t)ep->cts,
				.cts_rkey = ep->cts_mr->rkey,
				.cts_slots = ep->cts_slots};
	struct rdma_conn_param p = {
		.private_data = &h,
		.private_data_len = sizeof(h),
		.responder_resources = 0,
		.initiator_depth = 0,
		.retry_count = ep->ctx->retry,
		.rnr_retry_count = 7, /* infinite: a send waits for a recv */
	};
	if (rdma_connect(q->id, &p)) {
		int e = errno;
		verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
					       WCCL_ECONNREFUSED,
					       "rdma_connect: %s", strerror(e)));
	}
}

/* The RNR NAK delay a sender waits when we have no receive posted. rdma_cm
 * leaves it at 0, which means 655 ms: every send that beats its receive
 * would stall that long. 7 = 0.12 ms (RTS->RTS may change it). */
#define VERBS_MIN_RNR_TIMER 7

static void ep_up(struct verbs_ep *ep, struct verbs_qp *q)
{
	q->up = true;
	struct ibv_qp_attr ra = {.min_rnr_timer = VERBS_MIN_RNR_TIMER};
	if (ibv_modify_qp(q->qp, &ra, IBV_QP_MIN_RNR_TIMER))
		WCCL_INFO(WCCL_SUB_VERBS,
			  "%s QP %u: cannot set min_rnr_timer (%s): a send "
			  "ahead of its receive may wait 655 ms",
			  ep->base.peer, q->idx, strerror(errno));
	if (++ep->n_up < ep->nqps || ep->state != VERBS_EP_CONNECTING)
		return;
	ep->state = VERBS_EP_READY;
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	const char *mtu = "?";
	if (!ibv_query_qp(ep->qp[0].qp, &a, IBV_QP_PATH_MTU, &ia))
		mtu = a.path_mtu == IBV_MTU_4096   ? "4096"
		      : a.path_mtu == IBV_MTU_2048 ? "2048"
		      : a.path_mtu == IBV_MTU_1024 ? "1024"
						   : "<=512";
	WCCL_INFO(WCCL_SUB_VERBS,
		  "connected to %s: %u QPs (1 message + %u data), path MTU %s, "
		  "inline %u B",
		  ep->base.peer, ep->nqps, ep->nqps - 1, mtu,
		  ep->qp[0].max_inline);
}

/* Reason 8 = invalid service ID: nobody listens, or the rxe flake. */
static void on_rejected(struct verbs_ep *ep, struct verbs_qp *q, int status)
{
	if (status == 8 && q->retries > 0 && ep->active &&
	    wccl_now_ns() + VERBS_REJECT_DELAY_MS * 1000000ull <
		ep->deadline_ns) {
		q->retries--;
		WCCL_INFO(WCCL_SUB_VERBS,
			  "%s rejected QP %u (reason 8, invalid service ID); "
			  "retrying in %d ms",
			  ep->base.peer, q->idx, VERBS_REJECT_DELAY_MS);
		qp_teardown(ep->ctx, q);
		q->retry_at_ns = wccl_deadline_ns(VERBS_REJECT_DELAY_MS);
		return;
	}
	verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
				       WCCL_ECONNREFUSED,
				       "connection rejected (reason %d%s)",
				       status,
				       status == 8
					   ? ": nobody listens on that port"
					   : ""));
}

static struct verbs_ep *find_pending(struct verbs_listener *l,
				     uint64_t nonce)
{
	for (struct verbs_ep *ep = l->ctx->eps; ep; ep = ep->next)
		if (ep->lis == l && ep->nonce == nonce && !ep->active)
			return ep;
	return NULL;
}

/* Free the pending endpoints whose handshake failed (not every QP came
 * up): nobody can use them, and they count against VERBS_MAX_PENDING.
 * One that did connect stays for wccl_accept to report its failure. */
static void reap_failed(struct verbs_listener *l)
{
	for (struct verbs_ep **pp = &l->pending; *pp;) {
		struct verbs_ep *ep = *pp;
		if (ep->state != VERBS_EP_FAILED || ep->n_up >= ep->nqps ||
		    !ep_drained(ep)) {
			pp = &ep->next_pending;
			continue;
		}
		*pp = ep->next_pending;
		WCCL_INFO(WCCL_SUB_VERBS,
			  "listener %s: dropping the failed connection "
			  "attempt from %s (%u of %u QPs were up)",
			  l->addr, ep->base.peer, ep->n_up, ep->nqps);
		ep->lis = NULL;
		ep->closing = true;
		ep_destroy(ep);
	}
}

static void on_request(struct verbs_listener *l, struct rdma_cm_id *id,
		       const struct verbs_hello *h, size_t hlen)
{
	struct verbs_ctx *ctx = l->ctx;
	if (hlen < sizeof(*h) || h->magic != VERBS_MAGIC || !h->nqps ||
	    h->nqps > VERBS_MAX_QPS || h->idx >= h->nqps) {
		WCCL_WARN(WCCL_SUB_VERBS,
			  "listener %s: connect request without a wccl hello "
			  "(not a wccl peer?): rejected",
			  l->addr);
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	struct verbs_ep *ep = find_pending(l, h->nonce);
	/* The endpoint was sized by the first hello of this nonce: a later
	 * one must agree with it and name a free slot, or it would get a
	 * QP outside the endpoint's. */
	if (ep && (h->nqps != ep->nqps || h->idx >= ep->nqps ||
		   ep->qp[h->idx].id)) {
		char peer[WCCL_ADDR_MAX];
		addr_str(rdma_get_peer_addr(id), peer, sizeof(peer));
		WCCL_WARN(WCCL_SUB_VERBS,
			  "listener %s: connect request from %s for QP %u "
			  "of %u does not fit its endpoint of %u QPs (%s): "
			  "rejected",
			  l->addr, peer, h->idx, h->nqps, ep->nqps,
			  h->nqps != ep->nqps ? "QP count differs"
					      : "QP already connected");
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	if (!ep) {
		reap_failed(l);
		uint32_t n = 0;
		for (struct verbs_ep *p = l->pending; p; p = p->next_pending)
			n++;
		if (n >= VERBS_MAX_PENDING) {
			char peer[WCCL_ADDR_MAX];
			addr_str(rdma_get_peer_addr(id), peer, sizeof(peer));
			WCCL_WARN(WCCL_SUB_VERBS,
				  "listener %s: %u connections await "
				  "wccl_accept; the one from %s is rejected",
				  l->addr, n, peer);
			rdma_reject(id, NULL, 0);
			rdma_destroy_id(id);
			return;
		}
		ep = ep_new(ctx, h->nqps);
		if (!ep) {
			rdma_reject(id, NULL, 0);
			rdma_destroy_id(id);
			return;
		}
		ep->nonce = h->nonce;
		ep->lis = l;
		ep_set_peer(ep, rdma_get_peer_addr(id));
		/* FIFO for wccl_accept. */
		struct verbs_ep **pp = &l->pending;
		while (*pp)
			pp = &(*pp)->next_pending;
		*pp = ep;
	}
	if (hlen >= sizeof(*h) && h->cts_slots && !ep->peer_cts_slots) {
		ep->peer_cts_addr = h->cts_addr;
		ep->peer_cts_rkey = h->cts_rkey;
		ep->peer_cts_slots = h->cts_slots;
	}
	struct verbs_qp *q = &ep->qp[h->idx];
	if (q->id || ep->state == VERBS_EP_FAILED) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	if (qp_create(ep, q, id)) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		verbs_ep_fail(ep, WCCL_ENOMEM);
		reap_failed(l);
		return;
	}
	struct verbs_hello rh = *h;
	rh.cts_addr = (uint64_t)(uintptr_t)ep->cts;
	rh.cts_rkey = ep->cts_mr->rkey;
	rh.cts_slots = ep->cts_slots;
	struct rdma_conn_param p = {
		.private_data = &rh,
		.private_data_len = sizeof(rh),
		.retry_count = ctx->retry,
		.rnr_retry_count = 7,
	};
	if (rdma_accept(id, &p)) {
		int e = errno;
		verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
					       WCCL_ECONNABORTED,
					       "rdma_accept: %s", strerror(e)));
	}
}

void verbs_cm_event(struct verbs_ctx *ctx, struct rdma_cm_event *ev)
{
	/* Copy what we need and ack first: rdma_destroy_id waits for acks. */
	enum rdma_cm_event_type type = ev->event;
	int status = ev->status;
	struct rdma_cm_id *id = ev->id;
	struct verbs_hello h = {0};
	size_t hlen = 0;
	struct verbs_listener *l = NULL;
	if (type == RDMA_CM_EVENT_CONNECT_REQUEST ||
	    type == RDMA_CM_EVENT_ESTABLISHED) {
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST)
			l = ev->listen_id->context;
		hlen = ev->param.conn.private_data_len;
		if (hlen > sizeof(h))
			hlen = sizeof(h);
		if (ev->param.conn.private_data)
			memcpy(&h, ev->param.conn.private_data, hlen);
	}
	rdma_ack_cm_event(ev);
	if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		on_request(l, id, &h, hlen);
		return;
	}
	for (struct verbs_listener *x = ctx->ls; x; x = x->next)
		if (x->id == id)
			return;
	struct verbs_qp *q = id->context;
	if (!q)
		return;
	struct verbs_ep *ep = q->ep;
	WCCL_TRACE(WCCL_SUB_VERBS, "%s QP %u: %s (%d)", ep->base.peer, q->idx,
		   rdma_event_str(type), status);
	switch (type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (rdma_resolve_route(id, 2000))
			verbs_ep_fail(ep, wccl_ep_fail(
					      &ep->base, WCCL_SUB_VERBS,
					      WCCL_EHOSTUNREACH,
					      "rdma_resolve_route: %s",
					      strerror(errno)));
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		active_connect(ep, q);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		/* The accept's private data: where the peer's ring is. */
		if (ep->active && hlen >= sizeof(h) && h.magic == VERBS_MAGIC &&
		    h.cts_slots && !ep->peer_cts_slots) {
			ep->peer_cts_addr = h.cts_addr;
			ep->peer_cts_rkey = h.cts_rkey;
			ep->peer_cts_slots = h.cts_slots;
		}
		ep_up(ep, q);
		break;
	case RDMA_CM_EVENT_REJECTED:
		on_rejected(ep, q, status);
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
		verbs_ep_fail(ep, wccl_ep_fail(
				      &ep->base, WCCL_SUB_VERBS,
				      WCCL_EHOSTUNREACH,
				      "%s (%d): no RoCE route from %s to the "
				      "peer (check addresses and the RDMA "
				      "device's netdev)",
				      rdma_event_str(type), status,
				      ctx->dev_name));
		break;
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		verbs_ep_fail(ep, wccl_ep_fail(
				      &ep->base, WCCL_SUB_VERBS,
				      type == RDMA_CM_EVENT_UNREACHABLE
					  ? WCCL_ETIMEDOUT
					  : WCCL_ECONNREFUSED,
				      "%s (%d): the peer's CM did not answer",
				      rdma_event_str(type), status));
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		q->up = false;
		if (!ep->closing && ep->state != VERBS_EP_FAILED) {
			ep->peer_closed_ns = wccl_now_ns();
			ctx->peer_closed = true;
		}
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
					       WCCL_ENODEV,
					       "RDMA device %s removed",
					       ctx->dev_name));
		break;
	default:
		break;
	}
}

/* Connect deadlines and delayed retries. */
bool verbs_conn_timers(struct verbs_ctx *ctx)
{
	uint64_t now = 0;
	bool busy = false;
	for (struct verbs_ep *ep = ctx->eps; ep; ep = ep->next) {
		if (ep->state != VERBS_EP_CONNECTING)
			continue;
		busy = true;
		if (!now)
			now = wccl_now_ns();
		if (now >= ep->deadline_ns) {
			verbs_ep_fail(ep, wccl_ep_fail(
					      &ep->base, WCCL_SUB_VERBS,
					      WCCL_ETIMEDOUT,
					      "not connected within "
					      "WCCL_CONNECT_TIMEOUT_MS (%u of "
					      "%u QPs up)",
					      ep->n_up, ep->nqps));
			continue;
		}
		for (uint32_t i = 0; i < ep->nqps && ep->active; i++) {
			struct verbs_qp *q = &ep->qp[i];
			if (q->retry_at_ns && now >= q->retry_at_ns) {
				q->retry_at_ns = 0;
				if (start_resolve(ep, q))
					verbs_ep_fail(ep, WCCL_EHOSTUNREACH);
			}
		}
	}
	return busy;
}

int verbs_established(struct wccl_endpoint *e)
{
	struct verbs_ep *ep = VERBS_EP(e);
	if (ep->state == VERBS_EP_CONNECTING)
		verbs_cm_poll(ep->ctx);
	int rc = verbs_progress(ep->ctx);
	if (rc < 0)
		return rc;
	switch (ep->state) {
	case VERBS_EP_READY:
		return 0;
	case VERBS_EP_FAILED:
		return ep->err ? ep->err : WCCL_ENOTCONN;
	default:
		return WCCL_EAGAIN;
	}
}

/* ---- listener ------------------------------------------------------- */

int verbs_listen(struct wccl_context *c, const char *bind_addr,
		 struct wccl_listener **out)
{
	struct verbs_ctx *ctx = VERBS_CTX(c);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (bind_addr && *bind_addr && verbs_parse_addr(bind_addr, &sa)) {
		WCCL_WARN(WCCL_SUB_VERBS, "verbs listen address '%s': want "
					  "IPv4:port", bind_addr);
		return WCCL_EINVAL;
	}
	struct verbs_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return WCCL_ENOMEM;
	l->ctx = ctx;
	/* Our device must own the address: a wildcard, loopback or another
	 * device's address is replaced by the context's own (same port). */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (rdma_create_id(ctx->ech, &l->id, l, RDMA_PS_TCP))
			goto fail;
		uint32_t a = ntohl(sa.sin_addr.s_addr);
		if (attempt == 1 || !a || a >> 24 == 127) {
			if (!ctx->ip[0] ||
			    inet_pton(AF_INET, ctx->ip, &sa.sin_addr) != 1) {
				WCCL_WARN(WCCL_SUB_VERBS,
					  "%s has no IPv4 address to listen "
					  "on (set WCCL_VERBS_ADDR)",
					  ctx->dev_name);
				goto fail;
			}
			attempt = 1;
		}
		if (rdma_bind_addr(l->id, (struct sockaddr *)&sa) == 0 &&
		    l->id->verbs == ctx->dev)
			break;
		int e = errno;
		rdma_destroy_id(l->id);
		l->id = NULL;
		if (attempt == 1) {
			WCCL_WARN(WCCL_SUB_VERBS, "rdma_bind_addr(%s): %s",
				  ctx->ip, strerror(e));
			free(l);
			return e == EADDRINUSE ? WCCL_EADDRINUSE
					       : WCCL_EADDRNOTAVAIL;
		}
		WCCL_INFO(WCCL_SUB_VERBS,
			  "listen address %s is not on %s: using %s",
			  bind_addr, ctx->dev_name, ctx->ip);
	}
	if (rdma_listen(l->id, VERBS_BACKLOG))
		goto fail;
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
	snprintf(l->addr, sizeof(l->addr), "%s:%u", ip,
		 ntohs(rdma_get_src_port(l->id)));
	l->next = ctx->ls;
	ctx->ls = l;
	WCCL_INFO(WCCL_SUB_VERBS, "listening on verbs:%s (%s)", l->addr,
		  ctx->dev_name);
	*out = &l->base;
	return 0;
fail:
	WCCL_WARN(WCCL_SUB_VERBS, "verbs listen on %s: %s", ctx->dev_name,
		  strerror(errno));
	if (l->id)
		rdma_destroy_id(l->id);
	free(l);
	return WCCL_EADDRNOTAVAIL;
}

int verbs_listener_addr(const struct wccl_listener *b, char *buf, size_t len)
{
	const struct verbs_listener *l = VERBS_LIS(b);
	if (strlen(l->addr) >= len)
		return WCCL_ENOSPC;
	memcpy(buf, l->addr, strlen(l->addr) + 1);
	return 0;
}

void verbs_listener_close(struct wccl_listener *b)
{
	struct verbs_listener *l = VERBS_LIS(b);
	struct verbs_ctx *ctx = l->ctx;
	while (l->pending) {
		struct verbs_ep *ep = l->pending;
		l->pending = ep->next_pending;
		ep->lis = NULL;
		ep->closing = true;
		verbs_ep_fail(ep, WCCL_ECANCELED);
		ep_destroy(ep);
	}
	/* Endpoints accepted from it keep running; forget the listener. */
	for (struct verbs_ep *ep = ctx->eps; ep; ep = ep->next)
		if (ep->lis == l)
			ep->lis = NULL;
	rdma_destroy_id(l->id);
	for (struct verbs_listener **pp = &ctx->ls; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	free(l);
}

int verbs_accept(struct wccl_listener *b, struct wccl_cq *cq,
		 struct wccl_endpoint **out)
{
	struct verbs_listener *l = VERBS_LIS(b);
	verbs_cm_poll(l->ctx);
	int rc = verbs_progress(l->ctx);
	if (rc < 0)
		return rc;
	reap_failed(l);
	struct verbs_ep *ep = l->pending;
	if (!ep)
		return WCCL_EAGAIN;
	l->pending = ep->next_pending;
	ep->next_pending = NULL;
	ep->accepted = true;
	ep->base.cq = cq;
	/* Early completions that do not fit wait in early[] for progress. */
	uint32_t i = 0;
	for (; i < ep->n_early && verbs_cq_room(ep->ctx, cq); i++)
		verbs_cq_push(cq, &ep->early[i]);
	memmove(ep->early, ep->early + i,
		(ep->n_early - i) * sizeof(ep->early[0]));
	ep->n_early -= i;
	*out = &ep->base;
	return 0;
}

/* ---- close ---------------------------------------------------------- */

static bool ep_drained(const struct verbs_ep *ep)
{
	if (ep->rq_done != ep->rq_post || ep->tx_done != ep->tx_post)
		return false;
	for (uint32_t i = 0; i < ep->nqps; i++)
		if (ep->qp[i].qp && ep->qp[i].sq_done != ep->qp[i].sq_rung)
			return false;
	return true;
}

static void ep_destroy(struct verbs_ep *ep)
{
	struct verbs_ctx *ctx = ep->ctx;
	/* Flush: every WR the HCA holds completes (in error) before its QP
	 * goes, so no stale work completion names a freed QP. Bounded. */
	uint64_t until = wccl_deadline_ns(2000);
	while (!ep_drained(ep) && wccl_now_ns() < until) {
		verbs_progress(ctx);
		if (!ep_drained(ep)) {
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
		}
	}
	if (!ep_drained(ep))
		WCCL_WARN(WCCL_SUB_VERBS,
			  "closing %s: the HCA did not flush every work "
			  "request within 2 s",
			  ep->base.peer);
	for (uint32_t i = 0; i < ep->nqps; i++)
		qp_teardown(ctx, &ep->qp[i]);
	for (struct verbs_ep **pp = &ctx->eps; *pp; pp = &(*pp)->next)
		if (*pp == ep) {
			*pp = ep->next;
			break;
		}
	for (struct verbs_qp **pp = &ctx->dirty; *pp;)
		if ((*pp)->ep == ep)
			*pp = (*pp)->next_dirty;
		else
			pp = &(*pp)->next_dirty;
	verbs_dereg_mr(ctx, ep->cts_mr);
	free(ep->cts);
	free(ep->cts_out);
	free(ep->tx);
	free(ep->rq);
	free(ep);
}

void verbs_endpoint_close(struct wccl_endpoint *e)
{
	struct verbs_ep *ep = VERBS_EP(e);
	ep->closing = true;
	if (ep->state != VERBS_EP_FAILED)
		verbs_ep_fail(ep, WCCL_ECANCELED);
	ep_destroy(ep);
}
