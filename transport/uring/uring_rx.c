/* SPDX-License-Identifier: MIT */
/*
 * Receive path. One recv in flight per endpoint: either into the staging
 * buffer (headers and small payloads, parsed in place) or, for the bulk of
 * a payload larger than URING_EAGER_MAX, straight into its destination
 * (MSG_WAITALL), so large data is never bounced through staging.
 *
 * A write is checked against our registrations (key, bounds, access)
 * before a byte lands; a bad one is drained to nowhere and NAKed. A SEND
 * with no posted receive stops reading this socket (TCP backpressure)
 * until one is posted.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"
#include "uring.h"

int uring_post_recv(struct wccl_endpoint *e, void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie)
{
	(void)mr;
	if (!e || (!buf && len))
		return WCCL_EINVAL;
	struct uring_ep *ep = URING_EP(e);
	if (ep->state == URING_EP_FAILED)
		return ep->err;
	if (ep->rq_post - ep->rq_done >= ep->depth)
		return WCCL_EAGAIN;
	struct uring_rxpost *r = &ep->rq[ep->rq_post & ep->mask];
	r->buf = buf;
	r->len = len;
	r->cookie = cookie;
	ep->rq_post++;
	/* The peer learns of the new credit in our next control header. */
	uring_mark_dirty(ep);
	return 0;
}

/* Account a recv result; false if the connection failed on it. */
static bool uring_rx_result(struct uring_ep *ep, int res);

/*
 * Park an endpoint that waits for data on the context's poll list: while
 * the application busy-polls, each pass reads its socket directly (one
 * recv, as a plain socket ping-pong would) instead of arming an io_uring
 * recv whose completion costs a submit and a task-work run. The sleeping
 * pass arms io_uring for all of them (uring_rx_poll), so a wait still
 * wakes on data. false when the list is full, or the connection has been
 * silent too long (uring_rx_pollworthy: a recv per pass on a connection
 * nobody uses now, such as the bulk one beside the collectives' eager
 * one, would only slow the others' polling down): arm io_uring instead.
 */
static bool uring_rx_park(struct uring_ep *ep)
{
	struct uring_ctx *ctx = ep->ctx;
	if (ep->polled)
		return true;
	if (ctx->sleeping || ctx->n_polled >= ctx->rx_poll_max ||
	    !uring_rx_pollworthy(ctx->pass - ep->rx_pass, ep->rx_msgs,
				 uring_tx_unacked(ep) > 0))
		return false;
	ep->polled = true;
	ep->next_polled = ctx->polled;
	ctx->polled = ep;
	ctx->n_polled++;
	return true;
}

void uring_rx_unpoll(struct uring_ep *ep)
{
	if (!ep->polled)
		return;
	struct uring_ep **pp = &ep->ctx->polled;
	while (*pp && *pp != ep)
		pp = &(*pp)->next_polled;
	if (*pp)
		*pp = ep->next_polled;
	ep->polled = false;
	ep->next_polled = NULL;
	ep->ctx->n_polled--;
}

/*
 * Receive into staging (headers, small payloads) or straight into the
 * destination. The socket is read at once, without waiting, when more
 * data is likely there or the endpoint may be parked for polling: true if
 * that got bytes (the caller parses on). Otherwise the endpoint is parked,
 * or one recv is armed in io_uring, and false returned.
 */
static bool uring_rx_recv(struct uring_ep *ep, bool direct, bool may_read)
{
	uint8_t *p;
	size_t n;
	if (direct) {
		n = ep->remaining > URING_CHUNK_MAX ? URING_CHUNK_MAX
						    : (size_t)ep->remaining;
		p = ep->dest;
	} else {
		/* Only a partial header (< 40 bytes) is ever left over. */
		uint32_t left = ep->stg_hi - ep->stg_lo;
		if (ep->stg_lo) {
			memmove(ep->stg, ep->stg + ep->stg_lo, left);
			ep->stg_lo = 0;
			ep->stg_hi = left;
		}
		p = ep->stg + left;
		n = ep->ctx->staging - left;
	}
	ep->rx_direct = direct;
	bool pollable = ep->state == URING_EP_READY && !ep->ctx->sleeping &&
			ep->ctx->rx_poll_max;
	if (may_read && (ep->rx_more || pollable)) {
		ssize_t r = recv(ep->fd, p, n, MSG_DONTWAIT);
		if (r > 0 || (r == 0 && n)) {
			ep->rx_more = (size_t)r == n;
			return uring_rx_result(ep, (int)r);
		}
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			uring_rx_result(ep, -errno);
			return false;
		}
	}
	ep->rx_more = false;
	if (pollable && uring_rx_park(ep))
		return false;
	struct io_uring_sqe *sqe = uring_sqe(ep->ctx);
	if (!sqe) {
		uring_ep_failf(ep, WCCL_EINTERNAL, "io_uring SQ exhausted");
		return false;
	}
	io_uring_prep_recv(sqe, ep->fd, p, n, direct ? MSG_WAITALL : 0);
	io_uring_sqe_set_data(sqe, (void *)((uintptr_t)ep | URING_TAG_RX));
	ep->rx_busy = true;
	ep->inflight++;
	return false;
}

void uring_rx_start(struct uring_ep *ep)
{
	ep->stg_lo = ep->stg_hi = 0;
	ep->rx_state = URING_RX_HDR;
	uring_rx_recv(ep, false, true);
}

/* Where a write may land, or the error the target reports for it. */
static int uring_rx_check_write(struct uring_ep *ep,
				const struct uring_wire_hdr *h, uint8_t **dest)
{
	struct uring_mr *mr = uring_mr_lookup(ep->ctx, h->key);
	if (!mr)
		return WCCL_EREMOTE_KEY;
	if (h->offset > mr->base.len || h->len > mr->base.len - h->offset)
		return WCCL_EREMOTE_BOUNDS;
	if (!(mr->base.access & WCCL_ACCESS_REMOTE_WRITE))
		return WCCL_EREMOTE_ACCESS;
	*dest = mr->base.addr ? (uint8_t *)mr->base.addr + h->offset : NULL;
	ep->cur_mr = mr;
	return 0;
}

void uring_rx_forget_mr(struct uring_ep *ep, const struct uring_mr *mr)
{
	if (ep->cur_mr != mr)
		return;
	ep->cur_mr = NULL;
	/* The rest of the payload is read and dropped; the peer's write
	 * completes with the error (NAK), and ours with WCCL_OP_ERROR. */
	ep->dest = NULL;
	if (!ep->cur_status)
		ep->cur_status = WCCL_EREMOTE_KEY;
	if (!ep->rx_busy || !ep->rx_direct)
		return;
	/* A recv armed into the region: the kernel may fill it at any
	 * syscall of ours. Cancel it and wait (bounded) for its CQE; past
	 * that, shut the socket, which ends every receive on it. */
	struct uring_ctx *ctx = ep->ctx;
	struct io_uring_sqe *sqe = uring_sqe(ctx);
	if (sqe) {
		io_uring_prep_cancel(sqe,
				     (void *)((uintptr_t)ep | URING_TAG_RX), 0);
		io_uring_sqe_set_data(sqe, NULL);
	}
	ep->rx_stopping = true;
	uint64_t deadline = wccl_deadline_ns(2000);
	for (int shut = 0; ep->rx_busy;) {
		if (wccl_now_ns() >= deadline) {
			if (shut)
				break;
			shutdown(ep->fd, SHUT_RDWR);
			uring_ep_failf(ep, WCCL_EREMOTE_KEY,
				       "a peer's write into a region being "
				       "deregistered did not stop");
			deadline = wccl_deadline_ns(1000);
			shut = 1;
		}
		struct __kernel_timespec ts = {.tv_nsec = 1000000};
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&ctx->ring, &cqe, 1, &ts,
						 NULL);
		uring_progress(ctx);
	}
	if (ep->rx_busy)
		WCCL_WARN(WCCL_SUB_URING,
			  "%s: a receive into a deregistered region is still "
			  "armed",
			  ep->base.peer);
}

/* Start a data message. false: blocked (header left unconsumed). */
static bool uring_rx_begin(struct uring_ep *ep, const struct uring_wire_hdr *h)
{
	struct uring_cq *cq = URING_CQ(ep->base.cq);
	if (h->op == URING_OP_SEND && ep->rq_done == ep->rq_post) {
		ep->rx_state = URING_RX_WAIT_RECV;
		return false;
	}
	if (!uring_cq_room(cq)) {
		ep->rx_state = URING_RX_WAIT_CQ;
		uring_mark_dirty(ep);
		return false;
	}
	cq->reserved++;
	ep->rx_reserved = true;
	ep->cur = *h;
	ep->cur_status = 0;
	ep->remaining = h->len;
	ep->dest = NULL;
	if (h->op == URING_OP_SEND) {
		struct uring_rxpost *r = &ep->rq[ep->rq_done & ep->mask];
		if (h->len > r->len)
			ep->cur_status = WCCL_ETRUNCATED;
		else
			ep->dest = r->buf;
	} else {
		ep->cur_status = uring_rx_check_write(ep, h, &ep->dest);
	}
	if (ep->cur_status) {
		ep->dest = NULL;
		WCCL_INFO(WCCL_SUB_URING,
			  "%s: rejecting %s seq %llu (len %llu key 0x%llx "
			  "offset %llu): %s",
			  ep->base.peer, uring_wire_op_name(h->op),
			  (unsigned long long)h->seq,
			  (unsigned long long)h->len,
			  (unsigned long long)h->key,
			  (unsigned long long)h->offset,
			  wccl_strerror(ep->cur_status));
	}
	ep->rx_state = URING_RX_PAYLOAD;
	return true;
}

static void uring_rx_finish(struct uring_ep *ep)
{
	ep->cur_mr = NULL;
	struct uring_cq *cq = URING_CQ(ep->base.cq);
	const struct uring_wire_hdr *h = &ep->cur;
	struct wccl_completion c = { .ep = &ep->base,
				     .len = h->len,
				     .status = ep->cur_status };
	bool emit = true;
	if (h->op == URING_OP_SEND) {
		c.cookie = ep->rq[ep->rq_done & ep->mask].cookie;
		c.op = WCCL_OP_RECV;
		ep->rq_done++;
	} else if (ep->cur_status) {
		c.op = WCCL_OP_ERROR;
	} else if (h->op == URING_OP_WRITE_IMM) {
		c.op = WCCL_OP_WRITE_IMM;
		c.imm = h->imm;
	} else {
		emit = false;
	}
	ep->rx_reserved = false;
	if (emit)
		uring_cq_push(cq, &c, true);
	else
		cq->reserved--;
	/* A SEND its sender completed already wants neither (its receiver
	 * has the error, if any). */
	bool noack = h->op == URING_OP_SEND && (h->imm & URING_SEND_NOACK);
	if (ep->cur_status && !noack) {
		uring_tx_queue_nak(ep, h->seq, ep->cur_status);
	} else {
		ep->ack_to = h->seq;
		if (!noack)
			ep->ack_want = h->seq;
	}
	/* Request/response traffic: we posted something since the last
	 * message came in, so an answer to this one is likely too. */
	ep->rx_answered = ep->tx_post != ep->tx_post_at_rx;
	ep->tx_post_at_rx = ep->tx_post;
	uring_mark_dirty(ep);
	ep->rx_state = URING_RX_HDR;
}

static void uring_rx_bad_header(struct uring_ep *ep, int rc)
{
	const uint8_t *p = ep->stg + ep->stg_lo;
	if (rc == WCCL_EPROTONOSUPPORT)
		uring_ep_failf(ep, rc, "peer speaks wire version %u, we speak %u",
			       p[2], URING_WIRE_VERSION);
	else if ((p[0] | (unsigned)p[1] << 8) != URING_WIRE_MAGIC)
		uring_ep_failf(ep, WCCL_EPROTO,
			       "not a wccl peer (bad magic 0x%02x%02x)", p[1],
			       p[0]);
	else
		uring_ep_failf(ep, WCCL_EPROTO,
			       "malformed header (op %u, len %llu)", p[3],
			       (unsigned long long)(p[16] | (uint64_t)p[17] << 8 |
						    (uint64_t)p[18] << 16 |
						    (uint64_t)p[19] << 24));
}

/* Handle one header at stg_lo. false: stop parsing (blocked or failed). */
static bool uring_rx_header(struct uring_ep *ep)
{
	struct uring_wire_hdr h;
	int rc = uring_wire_decode(ep->stg + ep->stg_lo,
				   ep->stg_hi - ep->stg_lo, &h);
	if (rc) {
		uring_rx_bad_header(ep, rc);
		return false;
	}
	if (!ep->hello_rx) {
		if (h.op != URING_OP_HELLO) {
			uring_ep_failf(ep, WCCL_EPROTO,
				       "expected HELLO, got %s",
				       uring_wire_op_name(h.op));
			return false;
		}
		ep->hello_rx = true;
		ep->peer_credits = h.offset; /* receives it had posted */
		uring_mark_dirty(ep);
		if (ep->state == URING_EP_HANDSHAKE)
			ep->state = URING_EP_READY;
		WCCL_INFO(WCCL_SUB_URING, "%s: connected", ep->base.peer);
		ep->stg_lo += URING_WIRE_HDR_LEN;
		return true;
	}
	ep->rx_msgs++;
	switch (h.op) {
	case URING_OP_ACK:
	case URING_OP_NAK:
		ep->stg_lo += URING_WIRE_HDR_LEN;
		return uring_tx_ack(ep, &h) == 0;
	case URING_OP_SEND:
	case URING_OP_WRITE:
	case URING_OP_WRITE_IMM:
		if (h.seq != ep->rx_seq) {
			uring_ep_failf(ep, WCCL_EPROTO,
				       "%s seq %llu out of order (expected %llu)",
				       uring_wire_op_name(h.op),
				       (unsigned long long)h.seq,
				       (unsigned long long)ep->rx_seq);
			return false;
		}
		if (h.op == URING_OP_SEND && h.offset > ep->peer_credits) {
			ep->peer_credits = h.offset; /* our SENDs may go on */
			uring_mark_dirty(ep);
		}
		if (!uring_rx_begin(ep, &h))
			return false;
		ep->stg_lo += URING_WIRE_HDR_LEN;
		ep->rx_seq++;
		return true;
	default:
		uring_ep_failf(ep, WCCL_EPROTO, "unexpected %s",
			       uring_wire_op_name(h.op));
		return false;
	}
}

/*
 * Consume what staging holds; end with one recv in flight, parked for
 * polling, or blocked. The socket is read directly at most 16 times per
 * call, so one busy peer cannot starve the others, and not again once a
 * read came back short (it was empty then: another recv now would only
 * delay handing on what arrived).
 */
static void uring_rx_advance(struct uring_ep *ep)
{
	unsigned reads = 0;
	bool drained = false;
	while (ep->state != URING_EP_FAILED) {
		bool direct = false;
		if (ep->rx_state == URING_RX_PAYLOAD) {
			uint64_t avail = ep->stg_hi - ep->stg_lo;
			uint64_t take = avail < ep->remaining ? avail
							      : ep->remaining;
			if (take && ep->dest) {
				memcpy(ep->dest, ep->stg + ep->stg_lo, take);
				ep->dest += take;
			}
			ep->stg_lo += (uint32_t)take;
			ep->remaining -= take;
			if (!ep->remaining) {
				uring_rx_finish(ep);
				continue;
			}
			direct = ep->dest && ep->remaining > ep->ctx->eager_max;
			/* The rest of a large payload is likely there. */
			if (direct)
				ep->rx_more = true;
		} else if (ep->rx_state != URING_RX_HDR) {
			return;
		} else if (ep->stg_hi - ep->stg_lo >= URING_WIRE_HDR_LEN) {
			if (!uring_rx_header(ep))
				return;
			continue;
		}
		if (uring_rx_recv(ep, direct, reads++ < 16 && !drained)) {
			drained = !ep->rx_more;
			continue;
		}
		return;
	}
}

/* One pass over the parked endpoints: read each socket, or (before a
 * sleep) arm io_uring for it. */
void uring_rx_poll(struct uring_ctx *ctx)
{
	struct uring_ep *ep = ctx->polled;
	ctx->polled = NULL;
	ctx->n_polled = 0;
	while (ep) {
		struct uring_ep *next = ep->next_polled;
		ep->polled = false;
		ep->next_polled = NULL;
		if (ep->state == URING_EP_FAILED)
			uring_mark_dirty(ep); /* flush its receives */
		else if (!ep->closing)
			uring_rx_advance(ep);
		ep = next;
	}
}

static const char *uring_rx_doing(struct uring_ep *ep, char *buf, size_t len)
{
	if (ep->rx_state == URING_RX_PAYLOAD) {
		snprintf(buf, len, "receiving a %s payload (%llu of %llu bytes "
				   "missing)",
			 ep->cur.op == URING_OP_SEND ? "message" : "write",
			 (unsigned long long)ep->remaining,
			 (unsigned long long)ep->cur.len);
	} else if (ep->state == URING_EP_HANDSHAKE) {
		snprintf(buf, len, "waiting for its HELLO");
	} else if (uring_tx_unacked(ep)) {
		snprintf(buf, len, "%llu operations awaited acknowledgement",
			 (unsigned long long)uring_tx_unacked(ep));
	} else {
		snprintf(buf, len, "idle");
	}
	return buf;
}

static bool uring_rx_result(struct uring_ep *ep, int res)
{
	char doing[128];
	if (ep->rx_stopping) {
		/* The recv canceled by uring_rx_forget_mr: what it got is
		 * counted, and the rest is read into staging and dropped. */
		ep->rx_stopping = false;
		if (res == -ECANCELED || res == -EINTR)
			res = 0;
		if (res >= 0 && ep->rx_direct) {
			ep->remaining -= (uint64_t)res;
			return true;
		}
	}
	if (res == 0) {
		uring_ep_failf(ep, WCCL_EPEER_LOST,
			       "peer closed the connection while %s",
			       uring_rx_doing(ep, doing, sizeof(doing)));
		return false;
	}
	if (res < 0) {
		if (res == -ECONNRESET)
			uring_ep_failf(ep, WCCL_ECONNRESET,
				       "connection reset while %s",
				       uring_rx_doing(ep, doing, sizeof(doing)));
		else
			uring_ep_failf(ep, res == -ETIMEDOUT ? WCCL_ETIMEDOUT
							     : res,
				       "receive failed while %s: %s",
				       uring_rx_doing(ep, doing, sizeof(doing)),
				       strerror(-res));
		return false;
	}
	ep->rx_pass = ep->ctx->pass;
	if (ep->rx_direct) {
		if (ep->dest) /* NULL: its region went meanwhile */
			ep->dest += res;
		ep->remaining -= (uint64_t)res;
	} else {
		ep->stg_hi += (uint32_t)res;
	}
	return true;
}

void uring_rx_cqe(struct uring_ep *ep, int res)
{
	ep->inflight--;
	ep->rx_busy = false;
	if (ep->closing || ep->state == URING_EP_FAILED) {
		uring_mark_dirty(ep);
		return;
	}
	/* A full buffer means the socket likely holds more right now. */
	ep->rx_more = res > 0 && !ep->rx_direct &&
		      ep->stg_hi + (uint32_t)res == ep->ctx->staging;
	if (uring_rx_result(ep, res))
		uring_rx_advance(ep);
}

bool uring_rx_flush(struct uring_ep *ep, int err)
{
	struct uring_cq *cq = URING_CQ(ep->base.cq);
	if (ep->rx_reserved) {
		cq->reserved--;
		ep->rx_reserved = false;
	}
	unsigned dropped = 0;
	while (ep->rq_done < ep->rq_post) {
		struct uring_rxpost *r = &ep->rq[ep->rq_done & ep->mask];
		struct wccl_completion c = { .cookie = r->cookie,
					     .ep = &ep->base,
					     .status = err,
					     .op = WCCL_OP_RECV };
		if (!uring_cq_push(cq, &c, false)) {
			if (!ep->closing)
				return false;
			dropped++;
		}
		ep->rq_done++;
	}
	if (dropped)
		WCCL_WARN(WCCL_SUB_URING,
			  "%s: CQ full, %u canceled receive completions lost",
			  ep->base.peer, dropped);
	return true;
}

void uring_rx_service(struct uring_ep *ep)
{
	if (ep->closing)
		return;
	if (ep->state == URING_EP_FAILED) {
		if (ep->rx_busy || !uring_rx_flush(ep, ep->err))
			uring_mark_dirty(ep);
		return;
	}
	if (ep->rx_busy)
		return;
	if ((ep->rx_state == URING_RX_WAIT_RECV && ep->rq_done < ep->rq_post) ||
	    (ep->rx_state == URING_RX_WAIT_CQ &&
	     uring_cq_room(URING_CQ(ep->base.cq)))) {
		ep->rx_state = URING_RX_HDR;
		uring_rx_advance(ep);
	} else if (ep->rx_state == URING_RX_WAIT_CQ) {
		uring_mark_dirty(ep);
	}
}
