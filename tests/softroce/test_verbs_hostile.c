/* SPDX-License-Identifier: MIT */
/*
 * The verbs provider against a hostile peer: librdmacm used directly, with
 * hand-made hellos (struct verbs_hello) and raw work requests.
 *   - a second connect request with a known nonce but another QP count
 *     (QP 5 of 17 for an endpoint of 1 QP) is rejected, not accepted on a
 *     QP slot outside the endpoint (that crashed at ESTABLISHED);
 *   - one for a QP already connected is rejected;
 *   - a zero-length RDMA WRITE WITH IMM (imm 0xffffffff) into qp[0], which
 *     consumes a small receive that was never offered to a striped send,
 *     does not complete it with a length of ~4 GiB: the receive fails;
 *   - at most VERBS_MAX_PENDING connections wait for wccl_accept (QP 0 of
 *     2 each, never completed); the next is rejected; once they time out
 *     they are freed and a new connection is accepted.
 * One process: the wccl listener and the raw peer on the same device.
 * Exit 0 pass, 1 fail, 77 no usable verbs device (run it in the VM:
 * tests/softroce/guest-hostile.sh).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wccl/transport.h>

#include "core/clock.h"
#include "transport/verbs/verbs.h"

#include "softroce_check.h"

static struct wccl_cq *cq;
static struct wccl_completion got[64];
static int ngot;

/* Drive wccl (and so the listener's rdma_cm events); keep completions. */
static void pump(void)
{
	struct wccl_completion wc[8];
	int n = wccl_cq_poll(cq, wc, 8);
	if (n < 0) {
		fprintf(stderr, "cq_poll: %s\n", wccl_strerror(n));
		exit(1);
	}
	for (int i = 0; i < n && ngot < 64; i++)
		got[ngot++] = wc[i];
}

/* The raw peer: one rdma_cm id and RC QP of its own. */
struct raw {
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct ibv_cq *cq;
};

/* Next rdma_cm event of @r (pumping wccl meanwhile), or -1 after 5 s. */
static int raw_event(struct raw *r, int *status)
{
	uint64_t end = wccl_deadline_ns(5000);
	while (wccl_now_ns() < end) {
		struct rdma_cm_event *ev;
		pump();
		if (rdma_get_cm_event(r->ech, &ev) == 0) {
			int type = ev->event;
			*status = ev->status;
			rdma_ack_cm_event(ev);
			return type;
		}
	}
	return -1;
}

static void raw_close(struct raw *r)
{
	if (r->id && r->id->qp)
		rdma_destroy_qp(r->id);
	if (r->id)
		rdma_destroy_id(r->id);
	if (r->cq)
		ibv_destroy_cq(r->cq);
	if (r->ech)
		rdma_destroy_event_channel(r->ech);
	memset(r, 0, sizeof(*r));
}

/* Connect with a hand-made hello; returns the final rdma_cm event. */
static int raw_connect_once(struct raw *r, const struct sockaddr_in *dst,
			    uint64_t nonce, uint16_t nqps, uint16_t idx)
{
	int st;
	memset(r, 0, sizeof(*r));
	r->ech = rdma_create_event_channel();
	if (!r->ech || fcntl(r->ech->fd, F_SETFL, O_NONBLOCK) ||
	    rdma_create_id(r->ech, &r->id, NULL, RDMA_PS_TCP) ||
	    rdma_resolve_addr(r->id, NULL, (struct sockaddr *)dst, 2000)) {
		perror("raw peer: rdma_cm setup");
		exit(1);
	}
	if (raw_event(r, &st) != RDMA_CM_EVENT_ADDR_RESOLVED ||
	    rdma_resolve_route(r->id, 2000) ||
	    raw_event(r, &st) != RDMA_CM_EVENT_ROUTE_RESOLVED) {
		fprintf(stderr, "raw peer: cannot resolve the listener\n");
		exit(1);
	}
	r->cq = ibv_create_cq(r->id->verbs, 32, NULL, NULL, 0);
	struct ibv_qp_init_attr ia = {
	    .send_cq = r->cq,
	    .recv_cq = r->cq,
	    .cap = {.max_send_wr = 16, .max_recv_wr = 16,
		    .max_send_sge = 1, .max_recv_sge = 1},
	    .qp_type = IBV_QPT_RC,
	};
	if (!r->cq || rdma_create_qp(r->id, NULL, &ia)) {
		perror("raw peer: QP");
		exit(1);
	}
	/* No clear-to-send ring: the provider must never offer to it. */
	struct verbs_hello h = {.magic = VERBS_MAGIC,
				.idx = idx,
				.nqps = nqps,
				.nonce = nonce};
	struct rdma_conn_param p = {.private_data = &h,
				    .private_data_len = sizeof(h),
				    .retry_count = 7,
				    .rnr_retry_count = 7};
	if (rdma_connect(r->id, &p)) {
		perror("raw peer: rdma_connect");
		exit(1);
	}
	int type = raw_event(r, &st);
	if (type == RDMA_CM_EVENT_REJECTED && st == 8)
		return -8; /* the rxe flake of verbs_conn.c: retry */
	return type;
}

static int raw_connect(struct raw *r, const struct sockaddr_in *dst,
		       uint64_t nonce, uint16_t nqps, uint16_t idx)
{
	for (int i = 0;; i++) {
		int type = raw_connect_once(r, dst, nonce, nqps, idx);
		if (type != -8 || i == 3)
			return type == -8 ? RDMA_CM_EVENT_REJECTED : type;
		raw_close(r);
	}
}

/* Pump for @ms: let the listener see what the raw peer did. */
static void settle(int ms)
{
	uint64_t end = wccl_deadline_ns(ms);
	while (wccl_now_ns() < end)
		pump();
}

int main(void)
{
	/* Small endpoints (CQ room for VERBS_MAX_PENDING of them) and a
	 * short connect timeout for the half-open ones. */
	setenv("WCCL_QUEUE_DEPTH", "16", 0);
	setenv("WCCL_CONNECT_TIMEOUT_MS", "8000", 0);
	struct wccl_context *ctx = verbs_or_skip();
	int rc;
	MUST(wccl_cq_create(ctx, 64, &cq));
	struct wccl_listener *l;
	char addr[WCCL_ADDR_MAX];
	struct sockaddr_in dst;
	MUST(wccl_listen(ctx, NULL, &l));
	MUST(wccl_listener_addr(l, addr, sizeof(addr)));
	/* "verbs:IP:PORT" */
	MUST(verbs_parse_addr(strchr(addr, ':') + 1, &dst));

	/* -- a hello that does not fit the endpoint of its nonce -- */
	const uint64_t nonce = 0x686f7374696c6531ull;
	struct raw r1, r2, r3;
	int type = raw_connect(&r1, &dst, nonce, 1, 0);
	if (type != RDMA_CM_EVENT_ESTABLISHED) {
		fprintf(stderr, "raw peer: QP 0 of 1 not established (%s)\n",
			type < 0 ? "timeout" : rdma_event_str(type));
		return 1;
	}
	type = raw_connect(&r2, &dst, nonce, VERBS_MAX_QPS, 5);
	settle(200); /* an accepted QP 5 reaches ESTABLISHED here */
	CHECK(type == RDMA_CM_EVENT_REJECTED,
	      "QP 5 of %u for a 1-QP endpoint: %s, want REJECTED",
	      VERBS_MAX_QPS, type < 0 ? "timeout" : rdma_event_str(type));
	type = raw_connect(&r3, &dst, nonce, 1, 0);
	settle(200);
	CHECK(type == RDMA_CM_EVENT_REJECTED,
	      "QP 0 of 1 a second time: %s, want REJECTED",
	      type < 0 ? "timeout" : rdma_event_str(type));
	raw_close(&r2);
	raw_close(&r3);

	struct wccl_endpoint *s = NULL, *extra = NULL;
	uint64_t end = wccl_deadline_ns(5000);
	while ((rc = wccl_accept(l, cq, &s)) == WCCL_EAGAIN &&
	       wccl_now_ns() < end)
		;
	MUST(rc);
	MUST(wccl_endpoint_wait_established(s, 5000));
	CHECK(wccl_accept(l, cq, &extra) == WCCL_EAGAIN,
	      "a second endpoint was accepted for one nonce");

	/* -- WRITE_WITH_IMM claiming 4 GiB into a receive never offered -- */
	uint8_t buf[64];
	MUST(wccl_post_recv(s, buf, sizeof(buf), NULL, 77));
	struct ibv_send_wr wr = {.wr_id = 1,
				 .opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
				 .send_flags = IBV_SEND_SIGNALED,
				 .imm_data = htonl(0xffffffffu)};
	struct ibv_send_wr *bad;
	if (ibv_post_send(r1.id->qp, &wr, &bad)) {
		perror("raw peer: ibv_post_send");
		return 1;
	}
	const struct wccl_completion *rx = NULL;
	end = wccl_deadline_ns(5000);
	while (!rx && wccl_now_ns() < end) {
		pump();
		for (int i = 0; i < ngot; i++)
			if (got[i].op == WCCL_OP_RECV && got[i].cookie == 77)
				rx = &got[i];
	}
	CHECK(rx != NULL, "the receive did not complete");
	if (rx) {
		printf("receive: status %s, len %llu\n",
		       wccl_strerror(rx->status),
		       (unsigned long long)rx->len);
		CHECK(rx->status != 0 || rx->len <= sizeof(buf),
		      "a %zu-byte receive completed with len %llu",
		      sizeof(buf), (unsigned long long)rx->len);
		CHECK(rx->status != 0,
		      "a write with immediate into a receive never offered "
		      "completed it");
	}

	MUST(wccl_endpoint_close(s));
	raw_close(&r1);

	/* -- half-open connections: capped, then freed on timeout -- */
	static struct raw half[VERBS_MAX_PENDING + 1];
	int up = 0;
	uint64_t t0 = wccl_now_ns();
	for (int i = 0; i < (int)VERBS_MAX_PENDING; i++)
		up += raw_connect(&half[i], &dst, nonce + 1 + i, 2, 0) ==
		      RDMA_CM_EVENT_ESTABLISHED;
	CHECK(up == (int)VERBS_MAX_PENDING, "%d of %u half-open QPs up", up,
	      VERBS_MAX_PENDING);
	type = raw_connect(&half[VERBS_MAX_PENDING], &dst, nonce + 1000, 2, 0);
	/* Slower than the timeout, the first ones were freed already. */
	if (wccl_now_ns() - t0 < 7000000000ull)
		CHECK(type == RDMA_CM_EVENT_REJECTED,
		      "connection %u beyond the pending cap: %s, want "
		      "REJECTED",
		      VERBS_MAX_PENDING + 1,
		      type < 0 ? "timeout" : rdma_event_str(type));
	else
		printf("pending cap not checked: %u connections took over "
		       "7 s\n",
		       VERBS_MAX_PENDING);
	settle(8500); /* WCCL_CONNECT_TIMEOUT_MS: they fail */
	struct raw r4;
	type = raw_connect(&r4, &dst, nonce + 2000, 1, 0);
	CHECK(type == RDMA_CM_EVENT_ESTABLISHED,
	      "a connection after the half-open ones timed out: %s",
	      type < 0 ? "timeout" : rdma_event_str(type));
	s = NULL;
	rc = wccl_accept(l, cq, &s);
	CHECK(rc == 0 && s && wccl_endpoint_wait_established(s, 5000) == 0,
	      "accept after the half-open ones timed out: %s",
	      wccl_strerror(rc));
	CHECK(wccl_accept(l, cq, &extra) == WCCL_EAGAIN,
	      "a timed-out half-open connection was handed to accept");
	if (s)
		MUST(wccl_endpoint_close(s));
	raw_close(&r4);
	for (int i = 0; i <= (int)VERBS_MAX_PENDING; i++)
		raw_close(&half[i]);
	MUST(wccl_listener_close(l));
	MUST(wccl_cq_destroy(cq));
	MUST(wccl_context_close(ctx));
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
