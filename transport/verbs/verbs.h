/* SPDX-License-Identifier: MIT */
#ifndef WCCL_VERBS_H
#define WCCL_VERBS_H

/*
 * verbs provider internals: RDMA RC over libibverbs, connections made with
 * librdmacm, no threads. One device, PD, ibv_cq (with a completion channel)
 * and SRQ per context; progress (verbs_progress) reads rdma_cm events from
 * the non-blocking event channel, reaps the ibv_cq in batches and rings the
 * doorbells of the QPs that have chained work.
 *
 * One endpoint = 1 + N RC QPs to the same peer, each its own rdma_cm id:
 *
 *   qp[0]      "message QP": own receive queue holding the user's posted
 *              receives (so a receive belongs to its endpoint and a too
 *              long message is rejected by the HCA), carries sends.
 *   qp[1..N]   "data QPs" (WCCL_VERBS_QPS): receive through the context's
 *              SRQ of zero-length internal receives, so WRITE_WITH_IMM
 *              needs no user receive. Plain writes go round-robin over
 *              them, large ones striped; writes with immediate stay on the
 *              first live data QP, so immediates arrive in posting order.
 *
 * Per endpoint, operations take a sequence number and live in a fixed ring;
 * they complete to the user strictly in posting order (a write striped over
 * QPs completes when every piece did). A send waits for earlier writes and a
 * write with immediate for earlier plain writes to be acked ("fence"), so
 * data written before a notification is in place when it arrives.
 *
 * Work requests are chained per QP and posted with one ibv_post_send when the
 * chain is full, at progress, or at once on an idle QP; only the last WR of a
 * chain is signalled (RC completes in order, so its completion retires all
 * WRs before it). wr_id = the QP's own WR sequence number; the QP's ring
 * maps it back to the endpoint operation.
 */
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/provider.h"
#include "verbs_inflight.h"

#define VERBS_MAX_DATA_QPS 16u
#define VERBS_MAX_QPS (VERBS_MAX_DATA_QPS + 1u)
#define VERBS_CHAIN_MAX 64u
/* Endpoints a listener holds for wccl_accept: each has an MR, QPs and CQ
 * room, so a peer must not be able to make them without bound. */
#define VERBS_MAX_PENDING 64u
#define VERBS_QP_HASH 4096u /* qp_num -> QP, open addressing */
#define VERBS_INTERNAL UINT64_MAX /* sq ring entry of an internal WR */
#define VERBS_MAGIC 0x77636332u	  /* "wcc2" in connect private data */
#define VERBS_RQ_BIT (1ull << 63)  /* wr_id of a user receive on qp[0] */
#define VERBS_SRQ_BIT (1ull << 62) /* wr_id of an internal SRQ receive */

/* Immediate of an internal SEND_WITH_IMM on a data QP (control message). */
#define VERBS_CTL_REJECT 0x1u /* arg: positive wccl code | dead qp << 16 */
#define VERBS_CTL_WAS_IMM (1u << 24) /* the rejected write had an imm */

struct verbs_mr {
	struct wccl_mr base;
	struct ibv_mr *mr; /* NULL for an empty region */
	struct verbs_mrc *shared; /* mr borrowed from the cache, or NULL */
	struct verbs_ctx *ctx;
};

/* A wccl CQ: a fixed ring sized at creation. The context's one ibv_cq
 * feeds every wccl CQ of the context, so progress reaps only as many work
 * completions as the fullest CQ in use has room for (each work completion
 * yields at most one completion that cannot wait: a receive, an immediate,
 * an error); sends and writes wait in their endpoint's ring, done, until
 * there is room. A full CQ therefore stops reaping until its owner polls. */
struct verbs_cq {
	struct wccl_cq base;
	struct wccl_completion *ring;
	uint32_t cap, head, count;
	struct verbs_cq *next; /* the context's CQs */
};

/* A local-only registration: of a whole wccl_mem_alloc allocation, kept
 * in the context's cache (cached), or of one user buffer for one operation
 * (mr == NULL on memory wccl does not own). See verbs_mr.c. */
struct verbs_mrc {
	uintptr_t lo, hi;
	struct ibv_mr *mr;
	uint32_t refs;
	bool cached, stale; /* stale: its allocation was freed */
	uint64_t used, mem_id;
};

#define VERBS_MCACHE 32u /* cached wccl_mem registrations per context */

struct verbs_ep;
struct verbs_listener;

struct verbs_ctx {
	struct wccl_context base;
	struct rdma_event_channel *ech;
	struct ibv_context **devs; /* rdma_get_devices() */
	struct ibv_context *dev;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cch;
	struct ibv_cq *cq;
	struct ibv_srq *srq;
	struct ibv_device_attr attr;
	char dev_name[64];
	char ip[64]; /* default local address */
	uint8_t port_num;
	enum ibv_mtu mtu;
	uint32_t max_msg; /* port's max_msg_sz */
	int cqe, cqe_need;
	unsigned cq_unacked;
	uint32_t srq_depth, srq_posted;
	/* tunables, read once */
	uint32_t depth, nqps, batch, inline_max;
	uint64_t stripe_min;
	uint64_t max_inflight; /* per endpoint, bytes; 0 = no cap */
	uint8_t timeout, retry;
	uint64_t yield_ns;   /* WCCL_VERBS_YIELD_US; 0 = never */
	uint64_t idle_since; /* first empty CQ poll since a yield or a hit */
	struct verbs_qp *qps[VERBS_QP_HASH];
	struct verbs_ep *eps;	   /* every endpoint, for progress */
	struct verbs_qp *dirty;	   /* QPs with chained, unposted WRs */
	struct verbs_listener *ls; /* open listeners */
	struct verbs_mrc mcache[VERBS_MCACHE];
	uint64_t mcache_clock, mem_frees;
	uint64_t n_reg_mr, n_dereg_mr; /* ibv_reg_mr / ibv_dereg_mr calls */
	uint64_t cm_last_ns; /* last look at the rdma_cm channel */
	bool cm_busy;	     /* an endpoint is connecting */
	bool peer_closed;    /* an endpoint has peer_closed_ns set */
	struct verbs_cq *cqs;  /* every wccl CQ of this context */
	uint32_t reap_reserve; /* CQ room kept for work completions reaped
				* but not yet processed */
};

struct verbs_qp {
	struct verbs_ep *ep;
	struct rdma_cm_id *id;
	struct ibv_qp *qp;
	uint32_t idx;
	uint32_t qp_num;
	bool up, dead, dirty, resolved_route, listed;
	int retries; /* connect attempts left after a REJECTED(8) */
	uint64_t retry_at_ns;
	/* send queue: WR seq numbers, sq_op maps seq & sq_mask to tx seq
	 * and the payload bytes the WR counts in flight */
	uint32_t sq_cap, sq_mask;
	uint64_t sq_post, sq_done, sq_rung; /* rung: handed to the HCA */
	struct verbs_sqe {
		uint64_t op;
		uint64_t bytes;
	} *sq_op;
	uint32_t max_inline;
	uint32_t nchain;
	struct ibv_send_wr wr[VERBS_CHAIN_MAX];
	struct ibv_sge sge[VERBS_CHAIN_MAX];
	struct verbs_qp *next_dirty;
};

enum verbs_kind { VERBS_SEND = 1, VERBS_WRITE, VERBS_WRITE_IMM };
enum verbs_opstate { VERBS_OP_WAIT = 1, VERBS_OP_ISSUED, VERBS_OP_DONE };

struct verbs_txop {
	const uint8_t *buf;
	uint64_t len, cookie, raddr;
	uint64_t sidx; /* sends: number among the endpoint's sends */
	uint32_t lkey, rkey, imm;
	uint64_t sent; /* bytes issued so far (pieces of a large one) */
	int32_t status;
	uint32_t pieces; /* issued, not yet completed */
	uint8_t kind, state;
	uint8_t phase; /* striped send: 1 pieces out, 2 final write out */
	bool inl, p1done;
	struct verbs_mrc *tmp; /* on-the-fly registration, or NULL */
};

/* A user receive. Done ones are handed out in order once the peer's
 * writes with immediate posted before the send that filled it (@need,
 * carried in the send's immediate) have arrived: data written before a
 * send is in place when its receive completes, without a fence at the
 * sender (which would cost a round trip). */
struct verbs_rxop {
	uint64_t cookie, len;
	uint64_t posted; /* buffer length: a striped send's imm is checked */
	struct verbs_mrc *tmp;
	struct ibv_mr *rmr; /* remote-writable, for a striped send */
	int32_t status;
	uint32_t need;
	bool done, wait;
	bool offered; /* a clear-to-send entry went to the peer for it */
};

enum verbs_ep_state {
	VERBS_EP_CONNECTING = 1,
	VERBS_EP_READY,
	VERBS_EP_FAILED,
};

struct verbs_ep {
	struct wccl_endpoint base;
	struct verbs_ctx *ctx;
	struct verbs_listener *lis; /* accepting side, until accepted */
	int state, err;
	bool active, accepted, closing;
	/* When the peer's disconnect arrived (0: it has not). The endpoint
	 * fails once the answers the peer sent before it have completed. */
	uint64_t peer_closed_ns;
	uint64_t nonce;
	uint64_t deadline_ns;
	uint32_t nqps, n_up, rr;
	struct verbs_qp qp[VERBS_MAX_QPS];
	struct sockaddr_storage dst;
	struct verbs_ep *next, *next_pending;
	/* tx: ops [tx_done, tx_issue) issued, [tx_issue, tx_post) waiting */
	uint32_t depth, mask;
	struct verbs_txop *tx;
	uint64_t tx_post, tx_issue, tx_done;
	uint32_t plain_out, imm_out; /* issued, not done: for the fences */
	/* rx: user receives on qp[0]: [rq_deliver, rq_done) done, waiting to
	 * be handed out; [rq_done, rq_post) posted */
	struct verbs_rxop *rq;
	uint64_t rq_post, rq_done, rq_deliver;
	/* striped sends: our clear-to-send ring (the peer writes it), the
	 * entries we write into the peer's, and the peer's ring */
	struct verbs_cts *cts, *cts_out;
	struct ibv_mr *cts_mr;
	uint32_t cts_slots, peer_cts_slots, peer_cts_rkey;
	uint64_t peer_cts_addr;
	uint64_t send_idx;    /* sends posted */
	uint32_t p2_pending;  /* striped sends whose final write is not out */
	uint64_t p2_seq;      /* tx seq to look for the next one from */
	uint64_t n_striped;   /* striped sends issued (tests count them) */
	struct verbs_inflight inflight; /* WCCL_VERBS_MAX_INFLIGHT */
	uint32_t imm_tx; /* writes with immediate issued to the peer */
	uint32_t imm_rx; /* ... and received from it (incl. rejected ones) */
	/* completions that arrived before wccl_accept gave us a CQ */
	struct wccl_completion early[16];
	uint32_t n_early;
};

struct verbs_listener {
	struct wccl_listener base;
	struct verbs_ctx *ctx;
	struct rdma_cm_id *id;
	char addr[WCCL_ADDR_MAX];
	struct verbs_ep *pending; /* awaiting wccl_accept, FIFO */
	struct verbs_listener *next;
};

/* Private data of a connect request and of its accept: also where the
 * sender's clear-to-send ring is (see struct verbs_cts). */
struct verbs_hello {
	uint32_t magic;
	uint16_t idx, nqps;
	uint64_t nonce;
	uint64_t cts_addr;
	uint32_t cts_rkey, cts_slots;
};

/*
 * Striped sends. A receiver that posts a receive of at least
 * WCCL_VERBS_STRIPE_MIN bytes registers it for remote write (exactly that
 * range) and RDMA-writes a clear-to-send entry for it into the sender's
 * ring (slot = receive number % slots; seq = receive number + 1, last).
 * When the sender issues its send number k (sends and receives pair up in
 * order) and slot k holds seq k + 1 with room for the message, it writes
 * the message in pieces over the data QPs straight into that buffer, and
 * once every piece is acked, a zero-length WRITE_WITH_IMM on qp[0] (imm =
 * length) consumes receive k: it completes at the target with the length
 * and in order with the other sends (which wait behind it). No entry yet
 * (receive posted late, small, or the message does not fit): an ordinary
 * send on qp[0], so the contract's semantics (truncation included) hold.
 */
struct verbs_cts {
	uint64_t addr, len;
	uint32_t rkey, pad;
	uint64_t seq; /* receive number + 1; written last */
};

#define VERBS_EP(e) container_of((e), struct verbs_ep, base)
#define VERBS_CTX(c) container_of((c), struct verbs_ctx, base)
#define VERBS_CQ(q) container_of((q), struct verbs_cq, base)
#define VERBS_MR(m) container_of((m), struct verbs_mr, base)
#define VERBS_LIS(l) container_of((l), struct verbs_listener, base)

/* ---- verbs_provider.c ---- */
int verbs_progress(struct verbs_ctx *ctx);
void verbs_cq_push(struct wccl_cq *q, const struct wccl_completion *c);
/* Room left in @q beyond what reaping has reserved. */
static inline uint32_t verbs_cq_room(const struct verbs_ctx *ctx,
				     const struct wccl_cq *q)
{
	const struct verbs_cq *cq = container_of(q, struct verbs_cq, base);
	uint32_t room = cq->cap - cq->count;
	return room > ctx->reap_reserve ? room - ctx->reap_reserve : 0;
}
void verbs_ep_push(struct verbs_ep *ep, const struct wccl_completion *c);
int verbs_cq_reserve(struct verbs_ctx *ctx, int more);

/* ---- verbs_conn.c ---- */
int verbs_listen(struct wccl_context *c, const char *bind_addr,
		 struct wccl_listener **l);
int verbs_listener_addr(const struct wccl_listener *l, char *buf, size_t len);
void verbs_listener_close(struct wccl_listener *l);
int verbs_accept(struct wccl_listener *l, struct wccl_cq *cq,
		 struct wccl_endpoint **ep);
int verbs_connect(struct wccl_context *c, const char *addr,
		  struct wccl_cq *cq, struct wccl_endpoint **ep);
int verbs_established(struct wccl_endpoint *ep);
void verbs_endpoint_close(struct wccl_endpoint *ep);
void verbs_cm_event(struct verbs_ctx *ctx, struct rdma_cm_event *ev);
/* Connect deadlines and retries; true while an endpoint is connecting. */
bool verbs_conn_timers(struct verbs_ctx *ctx);
/* Read every pending rdma_cm event now. */
void verbs_cm_poll(struct verbs_ctx *ctx);
int verbs_parse_addr(const char *addr, struct sockaddr_in *sa);
void verbs_ep_fail(struct verbs_ep *ep, int err);
struct verbs_qp *verbs_qp_lookup(struct verbs_ctx *ctx, uint32_t qp_num);

/* ---- verbs_data.c ---- */
int verbs_post_send(struct wccl_endpoint *ep, const void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie);
int verbs_post_recv(struct wccl_endpoint *ep, void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie);
int verbs_post_write(struct wccl_endpoint *ep, const void *buf, size_t len,
		     struct wccl_mr *mr, const struct wccl_rkey *rk,
		     uint64_t offset, uint32_t imm, uint32_t flags,
		     uint64_t cookie);
void verbs_wc(struct verbs_ctx *ctx, const struct ibv_wc *wc);
void verbs_ring(struct verbs_qp *q);
void verbs_ring_dirty(struct verbs_ctx *ctx);
void verbs_tx_issue(struct verbs_ep *ep);
void verbs_tx_advance(struct verbs_ep *ep);
void verbs_rx_advance(struct verbs_ep *ep);
void verbs_post_phase2(struct verbs_ep *ep);
void verbs_ep_flush_waiting(struct verbs_ep *ep);
int verbs_srq_fill(struct verbs_ctx *ctx);
const char *verbs_wc_explain(enum ibv_wc_status st);

/* ---- verbs_mr.c ---- */
int verbs_mr_register(struct wccl_context *c, void *addr, size_t len,
		      uint32_t access, struct wccl_mr **mr);
void verbs_mr_deregister(struct wccl_mr *mr);
/* The 64-bit wccl key: rkey | check tag << 32 (see verbs_mr.c). */
uint64_t verbs_key_make(uint32_t rkey, uint64_t addr, uint64_t len,
			uint32_t access);
/* 0, or the code a write through @rk must fail with before it is sent. */
int verbs_key_check(const struct wccl_rkey *rk, uint64_t off, uint64_t len,
		    const char **why);
int verbs_mrc_get(struct verbs_ctx *ctx, const void *buf, size_t len,
		  struct verbs_mrc **out);
void verbs_mrc_put(struct verbs_ctx *ctx, struct verbs_mrc *m);
void verbs_mrc_clear(struct verbs_ctx *ctx);
/* Drop cached registrations of freed wccl_mem allocations; one atomic
 * load when nothing was freed. */
void verbs_mcache_check(struct verbs_ctx *ctx);
/* ibv_reg_mr / ibv_dereg_mr, counted in the context. */
struct ibv_mr *verbs_reg_mr(struct verbs_ctx *ctx, void *addr, size_t len,
			    int access);
void verbs_dereg_mr(struct verbs_ctx *ctx, struct ibv_mr *mr);

#endif
