/* SPDX-License-Identifier: MIT */
#ifndef WCCL_URING_H
#define WCCL_URING_H

/*
 * uring provider internals: TCP over io_uring, one ring per context, no
 * threads. Progress (uring_progress) reaps CQEs in batches, then services
 * the endpoints that have work ("dirty"), then submits once.
 *
 * Per endpoint and direction, operations carry a sequence number and live
 * in a fixed array indexed by seq & mask. The initiator completes an op
 * only when the target has ACKed it (and, for SEND_ZC, the kernel has
 * released the pages), so a completion means "data is at the target".
 *
 *   tx:  done <= acked-ish <= wire <= post      (seq numbers, 1-based)
 *   rx:  posted receives rq_done .. rq_post
 *
 * Two-sided sends are credit-based: every ACK also carries how many
 * receives its sender has posted so far, and a SEND goes on the wire only
 * while the peer has a receive posted for it. So no SEND ever waits in the
 * byte stream for a receive, and nothing behind it (ACKs above all) is
 * held up by one: the contract's "an unmatched send holds up nothing".
 */
#include <liburing.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "transport/provider.h"
#include "uring_wire.h"

#define URING_MR_SLOTS 4096u   /* registered regions per context */
#define URING_FIXED_SLOTS 64u  /* io_uring fixed-buffer table size */
#define URING_IOV_MAX 64u      /* iovecs in one coalesced sendmsg */
#define URING_BATCH_BYTES (256u * 1024u)
#define URING_CHUNK_MAX (1u << 30) /* one SQE moves at most this */
#define URING_PARK_PASSES 4096u    /* silent this long: not polled */
#define URING_FRESH_MSGS 64u       /* fewer in so far: barely used */
#define URING_FRESH_PASSES 64u     /* barely used, silent: not polled */

/* CQE user_data = object pointer | tag (objects are 8-byte aligned). */
enum uring_tag {
	URING_TAG_IGNORE = 0,
	URING_TAG_RX = 1,
	URING_TAG_TX = 2,
	URING_TAG_ZC = 3, /* zero-copy payload: pointer is the txop */
	URING_TAG_CONNECT = 4,
	URING_TAG_MASK = 7,
};

struct uring_mr {
	struct wccl_mr base;
	uint32_t slot;
	int fixed; /* fixed-buffer index, or -1 */
};

struct uring_cq {
	struct wccl_cq base;
	struct wccl_completion *ring;
	uint32_t cap, head, count;
	uint32_t reserved; /* slots promised to receives in progress */
};

struct uring_ep;

struct uring_ctx {
	struct wccl_context base;
	struct io_uring ring;
	bool has_zc, fixed_ok;
	bool zc_local; /* SEND_ZC also to loopback / same-host peers */
	bool sleeping; /* progress leaves the submit to the wait */
	bool no_cork;  /* the early service of a pass: never cork an ACK */
	bool yield;    /* sched_yield() on an empty poll */
	uint64_t zc_min, eager_max;
	uint32_t staging, depth;
	uint32_t mr_gen;
	struct uring_ep *dirty;   /* endpoints with work for progress */
	struct uring_ep *zombies; /* closed, awaiting kernel notifications */
	struct uring_ep *polled;  /* waiting for data, read directly */
	struct uring_ep *all;     /* every endpoint not yet freed */
	uint32_t n_polled, rx_poll_max;
	uint64_t pass; /* progress passes so far */
	bool fixed_used[URING_FIXED_SLOTS];
	struct uring_mr *mrs[URING_MR_SLOTS];
};

struct uring_txop {
	uint8_t hdr[URING_WIRE_HDR_LEN];
	struct uring_ep *ep;
	const uint8_t *buf;
	uint64_t len;
	uint64_t cookie;
	int fixed;
	int32_t status;
	uint16_t notif_pending; /* SEND_ZC notifications still due */
	uint8_t wop;            /* enum wccl_op at completion */
	bool local;             /* completes on the wire, no ACK wanted */
};

struct uring_rxpost {
	uint8_t *buf;
	uint64_t len;
	uint64_t cookie;
};

struct uring_nak {
	uint64_t seq;
	uint32_t err; /* positive wccl code */
};

enum uring_ep_state {
	URING_EP_CONNECTING,
	URING_EP_HANDSHAKE, /* TCP up, peer's HELLO not yet read */
	URING_EP_READY,
	URING_EP_FAILED,
};

enum uring_rx_state {
	URING_RX_HDR,
	URING_RX_PAYLOAD,
	URING_RX_WAIT_RECV, /* SEND header but no posted receive */
	URING_RX_WAIT_CQ,   /* no room in the CQ for what comes next */
};

enum uring_tx_phase { URING_TX_BATCH, URING_TX_PAYLOAD };

struct uring_ep {
	struct wccl_endpoint base;
	struct uring_ctx *ctx;
	int fd;
	int state;
	int err;
	uint32_t depth, mask;
	uint64_t deadline_ns;
	unsigned inflight; /* CQEs still due that point at this ep */
	bool dirty, closing, hello_queued;
	bool zc; /* SEND_ZC for large payloads on this connection */
	bool polled; /* on ctx->polled: no recv armed, read each pass */
	struct uring_ep *next_dirty, *next_zombie, *next_polled;
	struct uring_ep *next_all, *prev_all;
	struct sockaddr_storage sa;
	socklen_t salen;

	/* tx */
	struct uring_txop *tx;
	uint64_t tx_post, tx_wire, tx_done, tx_acked;
	bool tx_busy;
	int tx_phase;
	uint64_t batch_end;     /* ops [tx_wire, batch_end) are in the batch */
	bool batch_has_payload; /* last op's payload goes separately */
	struct msghdr msg;
	struct iovec iov[2 * URING_IOV_MAX + 2];
	uint32_t iov_at, iov_cnt;
	uint64_t pay_off;

	/* control headers owed to the peer */
	struct uring_nak *naks;
	uint32_t nak_head, nak_count;
	uint64_t ack_to, ack_sent;
	uint64_t ack_want; /* last op applied whose sender waits for an ACK */
	bool send_local;   /* WCCL_EP_ATTR_SEND_LOCAL_COMPLETION */
	bool ack_corked;    /* a lone ACK sits in the socket (MSG_MORE) */
	bool rx_answered;   /* we posted between the last two messages in */
	uint64_t tx_post_at_rx;
	uint64_t cork_pass; /* the progress pass that corked it */
	uint64_t credits_sent; /* rq_post as last told to the peer */
	uint64_t peer_credits; /* receives the peer has posted, in total */
	uint64_t sends_wired;  /* SENDs put on the wire, in total */
	uint8_t ctrl[URING_IOV_MAX + 2][URING_WIRE_HDR_LEN];

	/* rx */
	struct uring_rxpost *rq;
	uint64_t rq_post, rq_done;
	uint64_t rx_seq; /* next expected op seq from the peer */
	uint8_t *stg;
	uint32_t stg_lo, stg_hi;
	int rx_state;
	bool rx_busy, rx_direct, rx_reserved, hello_rx;
	bool rx_more; /* the last recv filled its buffer: more is likely */
	uint64_t rx_pass; /* the progress pass that last got bytes */
	uint64_t rx_msgs; /* headers read since HELLO */
	struct uring_wire_hdr cur;
	uint8_t *dest;      /* NULL: drain the payload */
	uint64_t remaining; /* payload bytes still to come */
	int32_t cur_status;
	const struct uring_mr *cur_mr; /* a WRITE's region, while it lands */
	bool rx_stopping; /* a recv into it is being canceled */
	/* WCCL_EP_ATTR_BYTES_ARRIVED: its count, and the kernel's data
	 * segment count when it was last read */
	uint64_t arrived_bytes;
	uint32_t arrived_segs;
};

/* ---- uring_rx.c ---- */
/* @mr is going: a peer's write into it that @ep is receiving stops
 * landing there (see uring_mr_deregister). */
void uring_rx_forget_mr(struct uring_ep *ep, const struct uring_mr *mr);

#define URING_EP(e) container_of((e), struct uring_ep, base)
#define URING_CTX(c) container_of((c), struct uring_ctx, base)
#define URING_CQ(q) container_of((q), struct uring_cq, base)
#define URING_MR(m) container_of((m), struct uring_mr, base)

/* ---- uring_provider.c: progress ---- */
int uring_progress(struct uring_ctx *ctx);
struct io_uring_sqe *uring_sqe(struct uring_ctx *ctx);
static inline void uring_mark_dirty(struct uring_ep *ep)
{
	if (!ep->dirty) {
		ep->dirty = true;
		ep->next_dirty = ep->ctx->dirty;
		ep->ctx->dirty = ep;
	}
}

/* Ops posted and not yet acknowledged by the peer (acked ones may still
 * wait for progress to complete them). */
static inline uint64_t uring_tx_unacked(const struct uring_ep *ep)
{
	uint64_t from = ep->tx_acked + 1 > ep->tx_done ? ep->tx_acked + 1
						       : ep->tx_done;
	return ep->tx_post > from ? ep->tx_post - from : 0;
}

/*
 * Worth a direct read every pass, after @silent passes without a byte?
 * Within URING_PARK_PASSES of the last bytes, unless the connection has
 * carried fewer than URING_FRESH_MSGS messages (setup traffic: hellos,
 * pings) and owes us no ACK: then only URING_FRESH_PASSES. A
 * collective's first size would otherwise pay a recv per pass for
 * thousands of passes on connections its schedule never reads. Either
 * way an io_uring recv replaces the reads, so a late message still
 * arrives (one completion later); the next read parks it again.
 */
static inline bool uring_rx_pollworthy(uint64_t silent, uint64_t msgs,
				       bool awaits_ack)
{
	if (msgs < URING_FRESH_MSGS && !awaits_ack)
		return silent <= URING_FRESH_PASSES;
	return silent <= URING_PARK_PASSES;
}

/* ---- CQ slots ---- */
static inline bool uring_cq_room(const struct uring_cq *cq)
{
	return cq->count + cq->reserved < cq->cap;
}

/* Append; false if full (the caller keeps the completion pending). */
static inline bool uring_cq_push(struct uring_cq *cq,
				 const struct wccl_completion *c, bool reserved)
{
	if (reserved)
		cq->reserved--;
	else if (!uring_cq_room(cq))
		return false;
	uint32_t at = cq->head + cq->count;
	if (at >= cq->cap)
		at -= cq->cap;
	cq->ring[at] = *c;
	cq->count++;
	return true;
}

/* ---- uring_conn.c ---- */
int uring_listen(struct wccl_context *c, const char *bind_addr,
		 struct wccl_listener **l);
int uring_listener_addr(const struct wccl_listener *l, char *buf, size_t len);
void uring_listener_close(struct wccl_listener *l);
int uring_accept(struct wccl_listener *l, struct wccl_cq *cq,
		 struct wccl_endpoint **ep);
int uring_connect(struct wccl_context *c, const char *addr, struct wccl_cq *cq,
		  struct wccl_endpoint **ep);
int uring_established(struct wccl_endpoint *ep);
void uring_endpoint_close(struct wccl_endpoint *ep);
int uring_endpoint_set_attr(struct wccl_endpoint *ep, int attr, uint64_t v);
int uring_endpoint_get_attr(struct wccl_endpoint *ep, int attr, uint64_t *v);
void uring_conn_cqe(struct uring_ep *ep, int res);
int uring_ep_failf(struct uring_ep *ep, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void uring_ep_free(struct uring_ep *ep);

/* ---- uring_tx.c ---- */
int uring_post_send(struct wccl_endpoint *ep, const void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie);
int uring_post_write(struct wccl_endpoint *ep, const void *buf, size_t len,
		     struct wccl_mr *mr, const struct wccl_rkey *rk,
		     uint64_t offset, uint32_t imm, uint32_t flags,
		     uint64_t cookie);
void uring_tx_service(struct uring_ep *ep);
void uring_tx_cqe(struct uring_ep *ep, int res);
void uring_zc_cqe(struct uring_txop *op, int res, unsigned flags);
int uring_tx_ack(struct uring_ep *ep, const struct uring_wire_hdr *h);
void uring_tx_queue_nak(struct uring_ep *ep, uint64_t seq, int err);
bool uring_tx_flush(struct uring_ep *ep, int err);

/* ---- uring_rx.c ---- */
int uring_post_recv(struct wccl_endpoint *ep, void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie);
void uring_rx_start(struct uring_ep *ep);
void uring_rx_poll(struct uring_ctx *ctx);
void uring_rx_unpoll(struct uring_ep *ep);
void uring_rx_service(struct uring_ep *ep);
void uring_rx_cqe(struct uring_ep *ep, int res);
bool uring_rx_flush(struct uring_ep *ep, int err);
void uring_ep_set_zc(struct uring_ep *ep);

/* ---- uring_mr.c ---- */
int uring_mr_register(struct wccl_context *c, void *addr, size_t len,
		      uint32_t access, struct wccl_mr **mr);
void uring_mr_deregister(struct wccl_mr *mr);
/* The region @key names, or NULL if it names none (stale or foreign). */
static inline struct uring_mr *uring_mr_lookup(struct uring_ctx *ctx,
					       uint64_t key)
{
	struct uring_mr *mr = ctx->mrs[(uint32_t)key % URING_MR_SLOTS];
	return mr && mr->base.key == key ? mr : NULL;
}

#endif
