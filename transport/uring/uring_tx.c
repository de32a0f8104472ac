/* SPDX-License-Identifier: MIT */
/*
 * Send path. One socket send in flight per endpoint (a TCP stream must not
 * interleave), so while one is out, posts only queue. When idle we gather:
 * control headers owed to the peer (HELLO, NAKs, one cumulative ACK), then
 * small ops as [hdr, payload, hdr, payload, ...] in ONE sendmsg. A payload
 * of at least URING_ZC_MIN ends the batch and goes next as its own
 * SEND_ZC straight from the user's buffer (fixed buffer when registered).
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "core/log.h"
#include "uring.h"

static int uring_tx_post(struct uring_ep *ep, const struct uring_wire_hdr *h,
			 const void *buf, struct wccl_mr *mr, uint64_t cookie,
			 uint8_t wop)
{
	if (ep->state == URING_EP_FAILED)
		return ep->err;
	if (h->len > URING_WIRE_MAX_MSG)
		return WCCL_EMSGSIZE;
	if (!buf && h->len)
		return WCCL_EINVAL;
	if (ep->tx_post - ep->tx_done >= ep->depth)
		return WCCL_EAGAIN;
	struct uring_txop *op = &ep->tx[ep->tx_post & ep->mask];
	struct uring_wire_hdr wh = *h;
	wh.seq = ep->tx_post;
	uring_wire_encode(&wh, op->hdr);
	op->buf = buf;
	op->len = h->len;
	op->cookie = cookie;
	op->status = 0;
	op->notif_pending = 0;
	op->wop = wop;
	op->local = wop == WCCL_OP_SEND && (h->imm & URING_SEND_NOACK);
	op->fixed = -1;
	if (mr && (const uint8_t *)buf >= (const uint8_t *)mr->addr &&
	    h->len <= mr->len &&
	    (size_t)((const uint8_t *)buf - (const uint8_t *)mr->addr) <=
		    mr->len - h->len)
		op->fixed = URING_MR(mr)->fixed;
	ep->tx_post++;
	WCCL_DP_TRACE(WCCL_SUB_URING, "%s: post %s seq %llu len %llu",
		      ep->base.peer, uring_wire_op_name(h->op),
		      (unsigned long long)wh.seq, (unsigned long long)h->len);
	uring_mark_dirty(ep);
	return 0;
}

int uring_post_send(struct wccl_endpoint *e, const void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie)
{
	if (!e)
		return WCCL_EINVAL;
	struct uring_ep *ep = URING_EP(e);
	struct uring_wire_hdr h = { .op = URING_OP_SEND, .len = len,
				    .imm = ep->send_local ? URING_SEND_NOACK
							  : 0 };
	return uring_tx_post(URING_EP(e), &h, buf, mr, cookie, WCCL_OP_SEND);
}

int uring_post_write(struct wccl_endpoint *e, const void *buf, size_t len,
		     struct wccl_mr *mr, const struct wccl_rkey *rk,
		     uint64_t offset, uint32_t imm, uint32_t flags,
		     uint64_t cookie)
{
	if (!e || !rk || (flags & ~(uint32_t)WCCL_WRITE_IMM))
		return WCCL_EINVAL;
	struct uring_wire_hdr h = {
		.op = (flags & WCCL_WRITE_IMM) ? URING_OP_WRITE_IMM
					       : URING_OP_WRITE,
		.imm = imm,
		.len = len,
		.key = rk->key,
		.offset = offset,
	};
	return uring_tx_post(URING_EP(e), &h, buf, mr, cookie, WCCL_OP_WRITE);
}

/* ---- acknowledgements ---- */

static int32_t uring_nak_status(uint32_t code)
{
	switch (-(int32_t)code) {
	case WCCL_EREMOTE_KEY:
	case WCCL_EREMOTE_BOUNDS:
	case WCCL_EREMOTE_ACCESS:
	case WCCL_ETRUNCATED:
		return -(int32_t)code;
	default:
		return WCCL_EREMOTE;
	}
}

int uring_tx_ack(struct uring_ep *ep, const struct uring_wire_hdr *h)
{
	if (h->seq >= ep->tx_post)
		return uring_ep_failf(ep, WCCL_EPROTO,
				      "%s for seq %llu, but only %llu were sent",
				      uring_wire_op_name(h->op),
				      (unsigned long long)h->seq,
				      (unsigned long long)ep->tx_post - 1);
	if (h->op == URING_OP_NAK) {
		/* (an op completed locally is never NAKed: its slot may
		 * hold a newer op already) */
		if (h->seq <= ep->tx_acked || h->seq < ep->tx_done)
			return uring_ep_failf(ep, WCCL_EPROTO,
					      "NAK for seq %llu already acked",
					      (unsigned long long)h->seq);
		ep->tx[h->seq & ep->mask].status = uring_nak_status(h->imm);
	}
	if (h->seq > ep->tx_acked) {
		ep->tx_acked = h->seq;
		uring_mark_dirty(ep);
	}
	if (h->offset > ep->peer_credits) {
		ep->peer_credits = h->offset; /* SENDs may go on */
		uring_mark_dirty(ep);
	}
	return 0;
}

void uring_tx_queue_nak(struct uring_ep *ep, uint64_t seq, int err)
{
	if (ep->nak_count == ep->depth) {
		uring_ep_failf(ep, WCCL_EPROTO,
			       "peer has more than %u operations outstanding",
			       ep->depth);
		return;
	}
	struct uring_nak *n = &ep->naks[(ep->nak_head + ep->nak_count) &
					ep->mask];
	n->seq = seq;
	n->err = (uint32_t)-err;
	ep->nak_count++;
	uring_mark_dirty(ep);
}

/* Complete, in order, ops the target has acked (or that want no ACK) and
 * the kernel released. */
static bool uring_tx_complete(struct uring_ep *ep)
{
	struct uring_cq *cq = URING_CQ(ep->base.cq);
	while (ep->tx_done < ep->tx_wire) {
		struct uring_txop *op = &ep->tx[ep->tx_done & ep->mask];
		if (ep->tx_done > ep->tx_acked && !op->local)
			return true;
		if (op->notif_pending)
			return true;
		struct wccl_completion c = { .cookie = op->cookie,
					     .ep = &ep->base,
					     .len = op->len,
					     .status = op->status,
					     .op = op->wop };
		if (!uring_cq_push(cq, &c, false))
			return false;
		ep->tx_done++;
	}
	return true;
}

bool uring_tx_flush(struct uring_ep *ep, int err)
{
	struct uring_cq *cq = URING_CQ(ep->base.cq);
	unsigned dropped = 0;
	while (ep->tx_done < ep->tx_post) {
		struct uring_txop *op = &ep->tx[ep->tx_done & ep->mask];
		/* The kernel may still read the buffer until it says not. */
		if (op->notif_pending && !ep->closing)
			return false;
		bool acked = ep->tx_done < ep->tx_wire &&
			     (ep->tx_done <= ep->tx_acked || op->local);
		struct wccl_completion c = { .cookie = op->cookie,
					     .ep = &ep->base,
					     .len = op->len,
					     .status = acked ? op->status : err,
					     .op = op->wop };
		if (!uring_cq_push(cq, &c, false)) {
			if (!ep->closing)
				return false;
			dropped++;
		}
		ep->tx_done++;
	}
	if (dropped)
		WCCL_WARN(WCCL_SUB_URING,
			  "%s: CQ full, %u canceled send completions lost",
			  ep->base.peer, dropped);
	if (ep->tx_wire < ep->tx_done)
		ep->tx_wire = ep->tx_done;
	return true;
}

/* ---- the socket send ---- */

static const char *uring_tx_doing(struct uring_ep *ep)
{
	if (ep->tx_phase == URING_TX_PAYLOAD)
		return ep->tx[(ep->batch_end - 1) & ep->mask].hdr[3] ==
				       URING_OP_SEND
			       ? "sending a message payload"
			       : "sending a write payload";
	return "sending headers";
}

static void uring_tx_error(struct uring_ep *ep, int res)
{
	if (res == -EPIPE || res == -ECONNRESET)
		uring_ep_failf(ep, res == -EPIPE ? WCCL_EPEER_LOST
						 : WCCL_ECONNRESET,
			       "connection %s while %s",
			       res == -EPIPE ? "closed by peer" : "reset",
			       uring_tx_doing(ep));
	else if (res == -ETIMEDOUT)
		uring_ep_failf(ep, WCCL_ETIMEDOUT,
			       "peer stopped acknowledging TCP data while %s",
			       uring_tx_doing(ep));
	else
		uring_ep_failf(ep, res, "send failed while %s: %s",
			       uring_tx_doing(ep), strerror(-res));
}

/* Account @n sent bytes against the batch iovec; true when all went. */
static bool uring_tx_advance(struct uring_ep *ep, size_t n)
{
	while (ep->iov_at < ep->iov_cnt && n >= ep->iov[ep->iov_at].iov_len)
		n -= ep->iov[ep->iov_at++].iov_len;
	if (ep->iov_at == ep->iov_cnt)
		return true;
	ep->iov[ep->iov_at].iov_base = (uint8_t *)ep->iov[ep->iov_at].iov_base + n;
	ep->iov[ep->iov_at].iov_len -= n;
	return false;
}

static bool uring_tx_submit_payload(struct uring_ep *ep)
{
	struct uring_txop *op = &ep->tx[(ep->batch_end - 1) & ep->mask];
	struct io_uring_sqe *sqe = uring_sqe(ep->ctx);
	if (!sqe)
		return false;
	uint64_t left = op->len - ep->pay_off;
	size_t n = left > URING_CHUNK_MAX ? URING_CHUNK_MAX : (size_t)left;
	const uint8_t *p = op->buf + ep->pay_off;
	int fl = MSG_WAITALL | MSG_NOSIGNAL;
	if (op->fixed >= 0)
		io_uring_prep_send_zc_fixed(sqe, ep->fd, p, n, fl, 0,
					    (unsigned)op->fixed);
	else
		io_uring_prep_send_zc(sqe, ep->fd, p, n, fl, 0);
	io_uring_sqe_set_data(sqe, (void *)((uintptr_t)op | URING_TAG_ZC));
	ep->inflight++;
	ep->tx_busy = true;
	return true;
}

/* Ops up to @end are on the wire: those that want no ACK can complete. */
static void uring_tx_wired(struct uring_ep *ep, uint64_t end)
{
	ep->tx_wire = end;
	if (ep->tx_done < end && ep->tx[ep->tx_done & ep->mask].local)
		uring_mark_dirty(ep);
}

/* The batch's bytes are all in the socket: its zero-copy payload next, or
 * the batch is on the wire. */
static void uring_tx_batch_sent(struct uring_ep *ep)
{
	if (ep->batch_has_payload) {
		ep->tx_phase = URING_TX_PAYLOAD;
		ep->pay_off = 0;
		if (!uring_tx_submit_payload(ep))
			uring_tx_error(ep, -ENOBUFS);
		return;
	}
	uring_tx_wired(ep, ep->batch_end);
	ep->tx_phase = URING_TX_BATCH;
}

/*
 * Send what is left of the batch. The socket is tried first without
 * waiting (an idle socket takes it all: no SQE, no CQE, no extra pass);
 * what it does not take goes to io_uring, which waits for room.
 */
static void uring_tx_push_batch(struct uring_ep *ep, int more)
{
	ep->msg.msg_iov = ep->iov + ep->iov_at;
	ep->msg.msg_iovlen = ep->iov_cnt - ep->iov_at;
	/* An error is left for io_uring to report, in a later pass as ever:
	 * failing the endpoint here would race the caller's next post. */
	ssize_t n = sendmsg(ep->fd, &ep->msg,
			    MSG_DONTWAIT | MSG_NOSIGNAL | more);
	if (n >= 0 && uring_tx_advance(ep, (size_t)n)) {
		uring_tx_batch_sent(ep);
		return;
	}
	struct io_uring_sqe *sqe = uring_sqe(ep->ctx);
	if (!sqe) {
		uring_tx_error(ep, -ENOBUFS);
		return;
	}
	ep->msg.msg_iov = ep->iov + ep->iov_at;
	ep->msg.msg_iovlen = ep->iov_cnt - ep->iov_at;
	io_uring_prep_sendmsg(sqe, ep->fd, &ep->msg,
			      MSG_WAITALL | MSG_NOSIGNAL | more);
	io_uring_sqe_set_data(sqe, (void *)((uintptr_t)ep | URING_TAG_TX));
	ep->inflight++;
	ep->tx_busy = true;
}

static void uring_iov_add(struct uring_ep *ep, const void *p, size_t n)
{
	ep->iov[ep->iov_cnt].iov_base = (void *)p;
	ep->iov[ep->iov_cnt].iov_len = n;
	ep->iov_cnt++;
}

static void uring_ctrl_add(struct uring_ep *ep, uint32_t *nctrl, uint8_t op,
			   uint64_t seq, uint32_t imm)
{
	/* Every control header carries our receive credits (offset). */
	struct uring_wire_hdr h = { .op = op, .seq = seq, .imm = imm,
				    .offset = ep->rq_post };
	uring_wire_encode(&h, ep->ctrl[*nctrl]);
	uring_iov_add(ep, ep->ctrl[*nctrl], URING_WIRE_HDR_LEN);
	(*nctrl)++;
}

/*
 * Should a control header tell the peer our receive credits now? When it
 * knows of fewer than half the receives we have free: then it may be
 * about to wait for one (so never later than when it knows of none), and
 * otherwise the news rides on our next SEND or ACK.
 */
static bool uring_credits_low(const struct uring_ep *ep)
{
	uint64_t known = ep->credits_sent > ep->rq_done
				 ? ep->credits_sent - ep->rq_done
				 : 0;
	return ep->rq_post > ep->credits_sent &&
	       2 * known < ep->rq_post - ep->rq_done;
}

/* Does the next op to go out carry our credits (a SEND that may go)? */
static bool uring_tx_send_next(const struct uring_ep *ep)
{
	return ep->tx_wire < ep->tx_post &&
	       ep->tx[ep->tx_wire & ep->mask].wop == WCCL_OP_SEND &&
	       ep->sends_wired < ep->peer_credits;
}

/* Whether an op can go on the wire now (a SEND needs a peer credit). */
static bool uring_tx_ready(const struct uring_ep *ep)
{
	if (ep->tx_wire == ep->tx_post)
		return false;
	return ep->tx[ep->tx_wire & ep->mask].wop != WCCL_OP_SEND ||
	       ep->sends_wired < ep->peer_credits;
}

/*
 * A lone ACK is corked (MSG_MORE: copied into the socket, not sent) when
 * the caller is likely to answer the message it acknowledges (it answered
 * the one before; one-way streams never cork): the ACK then
 * leaves with the answer in one segment, which on loopback halves a
 * ping-pong. The cork lasts one progress pass at most (uring_tx_service
 * pushes it, and so does any pass before sleeping); if the caller stops
 * calling in altogether, the kernel sends it within its probe timer
 * (~200 ms), so an ACK is delayed, never lost.
 */
static bool uring_tx_may_cork(const struct uring_ep *ep)
{
	return ep->rx_answered && !ep->ack_corked && !ep->ctx->sleeping &&
	       !ep->ctx->no_cork && !uring_tx_ready(ep);
}

static void uring_tx_uncork(struct uring_ep *ep)
{
	int one = 1;
	/* Setting TCP_NODELAY pushes what MSG_MORE held back. */
	if (setsockopt(ep->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		WCCL_WARN(WCCL_SUB_URING, "%s: TCP_NODELAY: %s", ep->base.peer,
			  strerror(errno));
	ep->ack_corked = false;
}

/* Build and send one batch; false if there was nothing to send. */
static bool uring_tx_build(struct uring_ep *ep)
{
	uint32_t nctrl = 0;
	ep->iov_at = ep->iov_cnt = 0;
	if (!ep->hello_queued) {
		uring_ctrl_add(ep, &nctrl, URING_OP_HELLO, 0, ep->depth);
		ep->hello_queued = true;
	}
	while (ep->nak_count && nctrl < URING_IOV_MAX) {
		struct uring_nak *n = &ep->naks[ep->nak_head & ep->mask];
		uring_ctrl_add(ep, &nctrl, URING_OP_NAK, n->seq, n->err);
		ep->nak_head++;
		ep->nak_count--;
	}
	/* NAKs go first: ACK(n) after NAK(k <= n) keeps k's error. An ACK
	 * goes when an op waits for one, or with credits the peer needs and
	 * no SEND of ours would carry. Anything else rides along later. */
	bool cork = false;
	if (ep->ack_want > ep->ack_sent ||
	    (uring_credits_low(ep) && !uring_tx_send_next(ep))) {
		cork = !nctrl && uring_tx_may_cork(ep);
		uring_ctrl_add(ep, &nctrl, URING_OP_ACK, ep->ack_to, 0);
		ep->ack_sent = ep->ack_to;
		ep->credits_sent = ep->rq_post;
	}
	uint64_t seq = ep->tx_wire, bytes = 0;
	ep->batch_has_payload = false;
	while (seq < ep->tx_post && ep->iov_cnt + 2 <= 2 * URING_IOV_MAX &&
	       bytes < URING_BATCH_BYTES) {
		struct uring_txop *op = &ep->tx[seq & ep->mask];
		/* A SEND waits (and so does all behind it, to keep order)
		 * until the peer has a receive posted for it. */
		if (op->wop == WCCL_OP_SEND) {
			if (ep->sends_wired >= ep->peer_credits)
				break;
			ep->sends_wired++;
			/* Our credits ride in the offset, always current. */
			uring_wire_set_offset(op->hdr, ep->rq_post);
			ep->credits_sent = ep->rq_post;
		}
		uring_iov_add(ep, op->hdr, URING_WIRE_HDR_LEN);
		seq++;
		if (ep->zc && op->len >= ep->ctx->zc_min) {
			/* The payload follows as SEND_ZC from the buffer. */
			ep->batch_has_payload = true;
			break;
		}
		if (op->len)
			uring_iov_add(ep, op->buf, op->len);
		bytes += op->len + URING_WIRE_HDR_LEN;
	}
	if (!ep->iov_cnt)
		return false;
	ep->batch_end = seq;
	ep->tx_phase = URING_TX_BATCH;
	if (cork) {
		ep->ack_corked = true;
		ep->cork_pass = ep->ctx->pass;
		uring_mark_dirty(ep); /* the next pass pushes it */
	} else {
		ep->ack_corked = false; /* this send pushes it */
	}
	uring_tx_push_batch(ep, cork ? MSG_MORE : 0);
	return true;
}

void uring_tx_service(struct uring_ep *ep)
{
	if (ep->closing)
		return;
	if (ep->state == URING_EP_FAILED) {
		if (ep->tx_busy || !uring_tx_flush(ep, ep->err))
			uring_mark_dirty(ep);
		return;
	}
	if (!uring_tx_complete(ep))
		uring_mark_dirty(ep); /* CQ full: try again next pass */
	if (ep->state == URING_EP_CONNECTING)
		return;
	/* A batch the socket takes at once frees the way for the next; this
	 * ends when the queue is empty or the socket is full (tx_busy). */
	while (!ep->tx_busy && ep->state != URING_EP_FAILED)
		if (!uring_tx_build(ep))
			break;
	if (ep->ack_corked && ep->cork_pass != ep->ctx->pass &&
	    ep->state != URING_EP_FAILED)
		uring_tx_uncork(ep);
}

void uring_tx_cqe(struct uring_ep *ep, int res)
{
	ep->inflight--;
	ep->tx_busy = false;
	if (ep->closing || ep->state == URING_EP_FAILED) {
		uring_mark_dirty(ep);
		return;
	}
	if (res < 0) {
		uring_tx_error(ep, res);
		return;
	}
	uring_mark_dirty(ep);
	if (ep->tx_phase == URING_TX_BATCH) {
		if (uring_tx_advance(ep, (size_t)res))
			uring_tx_batch_sent(ep);
		else
			/* short send: the rest (uncorked: rare enough) */
			uring_tx_push_batch(ep, 0);
		return;
	}
	ep->pay_off += (uint64_t)res;
	if (ep->pay_off < ep->tx[(ep->batch_end - 1) & ep->mask].len) {
		if (!uring_tx_submit_payload(ep))
			uring_tx_error(ep, -ENOBUFS);
		return;
	}
	uring_tx_wired(ep, ep->batch_end);
	ep->tx_phase = URING_TX_BATCH;
}

void uring_zc_cqe(struct uring_txop *op, int res, unsigned flags)
{
	struct uring_ep *ep = op->ep;
	if (flags & IORING_CQE_F_NOTIF) {
		op->notif_pending--;
		ep->inflight--;
		if (!ep->closing)
			uring_mark_dirty(ep);
		return;
	}
	if (flags & IORING_CQE_F_MORE) {
		op->notif_pending++;
		ep->inflight++;
	}
	uring_tx_cqe(ep, res);
}
