/* SPDX-License-Identifier: MIT */
/*
 * verbs data path: posting (chained WRs, inline, striping, fences), work
 * completions back to wccl completions in posting order, and the meaning
 * of each work-completion error.
 */
#include <arpa/inet.h>
#include <string.h>

#include "core/log.h"
#include "verbs.h"

static inline bool qp_live(const struct verbs_qp *q)
{
	return q->qp && q->up && !q->dead;
}

static inline bool qp_room(const struct verbs_qp *q, uint32_t n)
{
	return q->sq_post - q->sq_done + n <= q->sq_cap;
}

void verbs_ep_push(struct verbs_ep *ep, const struct wccl_completion *c)
{
	/* Completions held back at accept go first (progress drains them). */
	if (ep->base.cq && !ep->n_early) {
		verbs_cq_push(ep->base.cq, c);
	} else if (ep->n_early < sizeof(ep->early) / sizeof(ep->early[0])) {
		ep->early[ep->n_early++] = *c;
	} else {
		WCCL_WARN(WCCL_SUB_VERBS,
			  "%s: completion before wccl_accept dropped",
			  ep->base.peer);
	}
}

static void mark_dirty(struct verbs_qp *q)
{
	if (!q->dirty) {
		q->dirty = true;
		q->next_dirty = q->ep->ctx->dirty;
		q->ep->ctx->dirty = q;
	}
}

/* ---- work-completion errors ------------------------------------------ */

const char *verbs_wc_explain(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_RETRY_EXC_ERR:
		return "no ACK after all retransmissions: the peer is gone or "
		       "the path is broken (or WCCL_VERBS_TIMEOUT is shorter "
		       "than the RTT with a full queue)";
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return "the peer had no receive posted for too long";
	case IBV_WC_REM_ACCESS_ERR:
		return "the target's HCA rejected the access: stale or foreign "
		       "key, out of bounds, or no remote write";
	case IBV_WC_REM_INV_REQ_ERR:
		return "the target rejected the request: message longer than "
		       "its posted receive, or beyond its limits";
	case IBV_WC_REM_OP_ERR:
		return "the target's HCA could not complete the operation";
	case IBV_WC_LOC_LEN_ERR:
		return "message longer than the posted receive";
	case IBV_WC_LOC_PROT_ERR:
		return "local buffer outside its memory registration";
	case IBV_WC_LOC_QP_OP_ERR:
		return "local QP error (bad work request)";
	case IBV_WC_WR_FLUSH_ERR:
		return "flushed: the QP was already in error";
	default:
		return ibv_wc_status_str(st);
	}
}

static int map_status(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return WCCL_EPEER_LOST;
	case IBV_WC_REM_ACCESS_ERR:
		return WCCL_EREMOTE_KEY;
	case IBV_WC_REM_INV_REQ_ERR:
	case IBV_WC_LOC_LEN_ERR:
		return WCCL_ETRUNCATED;
	case IBV_WC_REM_OP_ERR:
		return WCCL_EREMOTE;
	case IBV_WC_LOC_PROT_ERR:
		return WCCL_EFAULT;
	case IBV_WC_WR_FLUSH_ERR:
		return WCCL_ECONNRESET;
	default:
		return WCCL_EIO;
	}
}

static struct verbs_qp *first_live_data(struct verbs_ep *ep)
{
	for (uint32_t i = 1; i < ep->nqps; i++)
		if (qp_live(&ep->qp[i]))
			return &ep->qp[i];
	return NULL;
}

static void chain_add(struct verbs_qp *q, enum ibv_wr_opcode opc,
		      const void *buf, uint64_t len, uint32_t lkey, bool inl,
		      uint64_t raddr, uint32_t rkey, uint32_t imm,
		      uint64_t opseq);

/* Tell the target that a write into it was rejected (so it reports a
 * WCCL_OP_ERROR) and, if the rejection killed a data QP, which. */
static void send_ctl(struct verbs_ep *ep, int code, uint32_t dead_idx,
		     bool was_imm)
{
	struct verbs_qp *q = first_live_data(ep);
	if (!q || !qp_room(q, 1)) {
		WCCL_INFO(WCCL_SUB_VERBS,
			  "%s: cannot tell the target about a rejected write "
			  "(no data QP room)",
			  ep->base.peer);
		return;
	}
	uint32_t imm = VERBS_CTL_REJECT << 28 | (dead_idx & 0xffu) << 16 |
		       ((uint32_t)-code & 0xffffu) |
		       (was_imm ? VERBS_CTL_WAS_IMM : 0);
	chain_add(q, IBV_WR_SEND_WITH_IMM, NULL, 0, 0, false, 0, 0, imm,
		  VERBS_INTERNAL);
}

/* An error work completion of @op's piece on @q: the wccl code, with the
 * message recorded on the endpoint; fails the endpoint unless only this
 * data QP died and the others carry on. */
static int tx_error(struct verbs_ep *ep, struct verbs_qp *q,
		    struct verbs_txop *op, enum ibv_wc_status st)
{
	static const char *const kind[] = {"?", "send", "write",
					   "write with immediate"};
	if (st == IBV_WC_WR_FLUSH_ERR) {
		if (ep->state == VERBS_EP_FAILED)
			return ep->err;
		if (q->dead)
			return WCCL_ECONNRESET;
	}
	int code = map_status(st);
	if (st == IBV_WC_REM_ACCESS_ERR && q->idx > 0) {
		q->dead = true;
		wccl_ep_fail(&ep->base, WCCL_SUB_VERBS, WCCL_EREMOTE_KEY,
			     "%s of %llu bytes rejected by the target's HCA "
			     "(remote access error) although the key passed "
			     "the local checks: the region was probably "
			     "deregistered (stale key) or belongs to another "
			     "context; data QP %u is closed",
			     kind[op->kind], (unsigned long long)op->len,
			     q->idx);
		if (first_live_data(ep)) {
			send_ctl(ep, WCCL_EREMOTE_KEY, q->idx,
				 op->kind == VERBS_WRITE_IMM);
			return WCCL_EREMOTE_KEY;
		}
		verbs_ep_fail(ep, WCCL_EREMOTE_KEY);
		return WCCL_EREMOTE_KEY;
	}
	if (st == IBV_WC_REM_INV_REQ_ERR && op->kind != VERBS_SEND)
		code = WCCL_EREMOTE_BOUNDS;
	/* A send whose receive failed at the peer: on RC that is, above all,
	 * a message longer than the posted receive (rxe: REM_OP_ERR). */
	if (op->kind == VERBS_SEND &&
	    (st == IBV_WC_REM_INV_REQ_ERR || st == IBV_WC_REM_OP_ERR))
		code = WCCL_ETRUNCATED;
	verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS, code,
				       "%s of %llu bytes on QP %u failed: %s "
				       "(%s)%s",
				       kind[op->kind],
				       (unsigned long long)op->len, q->idx,
				       verbs_wc_explain(st),
				       ibv_wc_status_str(st),
				       code == WCCL_ETRUNCATED
					   ? "; RC closes the connection"
					   : ""));
	return code;
}

/* ---- send queue ------------------------------------------------------ */

/* Hand finished operations to the CQ in posting order, as far as it has
 * room; the rest stay done in the ring and progress delivers them later
 * (verbs_tx_advance), so the CQ never grows. */
void verbs_tx_advance(struct verbs_ep *ep)
{
	while (ep->tx_done != ep->tx_issue) {
		struct verbs_txop *op = &ep->tx[ep->tx_done & ep->mask];
		if (op->state != VERBS_OP_DONE)
			break;
		if (ep->base.cq && !verbs_cq_room(ep->ctx, ep->base.cq))
			break;
		struct wccl_completion c = {
			.cookie = op->cookie,
			.ep = &ep->base,
			.len = op->status ? 0 : op->len,
			.status = op->status,
			.op = op->kind == VERBS_SEND ? WCCL_OP_SEND
						     : WCCL_OP_WRITE,
		};
		op->state = 0;
		ep->tx_done++;
		verbs_ep_push(ep, &c);
	}
}

static void op_finish(struct verbs_ep *ep, struct verbs_txop *op)
{
	if (op->kind == VERBS_WRITE)
		ep->plain_out--;
	else if (op->kind == VERBS_WRITE_IMM)
		ep->imm_out--;
	verbs_mrc_put(ep->ctx, op->tmp);
	op->tmp = NULL;
	op->state = VERBS_OP_DONE;
}

static void pieces_all_done(struct verbs_ep *ep, struct verbs_txop *op);

static void piece_done(struct verbs_ep *ep, struct verbs_qp *q,
		       uint64_t opseq, enum ibv_wc_status st)
{
	if (opseq == VERBS_INTERNAL) {
		if (st != IBV_WC_SUCCESS && st != IBV_WC_WR_FLUSH_ERR)
			WCCL_INFO(WCCL_SUB_VERBS,
				  "%s: control message on QP %u: %s",
				  ep->base.peer, q->idx, verbs_wc_explain(st));
		return;
	}
	struct verbs_txop *op = &ep->tx[opseq & ep->mask];
	if (st != IBV_WC_SUCCESS && !op->status)
		op->status = tx_error(ep, q, op, st);
	/* Done when no piece is out and none is left to issue. */
	if (--op->pieces || op->sent < op->len)
		return;
	pieces_all_done(ep, op);
}

static void pieces_all_done(struct verbs_ep *ep, struct verbs_txop *op)
{
	if (op->phase == 1) {
		/* Pieces of a striped send: the final write consumes the
		 * receive. Without it the receives would pair up wrongly
		 * from here on, so a failed piece fails the endpoint. */
		if (op->status && ep->state != VERBS_EP_FAILED)
			verbs_ep_fail(ep, op->status);
		if (ep->state != VERBS_EP_READY) {
			if (!op->status)
				op->status = ep->err;
			op->phase = 2;
			ep->p2_pending--;
			op_finish(ep, op);
			return;
		}
		op->p1done = true;
		verbs_post_phase2(ep);
		return;
	}
	op_finish(ep, op);
}

/* Final writes of striped sends whose pieces are all acked, in send
 * order (each consumes the target's next receive). */
void verbs_post_phase2(struct verbs_ep *ep)
{
	struct verbs_qp *q = &ep->qp[0];
	while (ep->p2_pending && ep->state == VERBS_EP_READY) {
		struct verbs_txop *op = &ep->tx[ep->p2_seq & ep->mask];
		if (op->kind != VERBS_SEND || op->phase != 1) {
			ep->p2_seq++;
			continue;
		}
		if (!op->p1done || !qp_room(q, 1))
			break;
		op->phase = 2;
		op->pieces = 1;
		ep->p2_pending--;
		ep->p2_seq++;
		chain_add(q, IBV_WR_RDMA_WRITE_WITH_IMM, NULL, 0, 0, false,
			  op->raddr, op->rkey, (uint32_t)op->len,
			  ep->p2_seq - 1);
	}
}

/* WRs up to and including @upto completed; the last with @st. */
static void sq_retire(struct verbs_qp *q, uint64_t upto,
		      enum ibv_wc_status st)
{
	while (q->sq_done <= upto && q->sq_done < q->sq_post) {
		uint64_t seq = q->sq_done++;
		const struct verbs_sqe *e = &q->sq_op[seq & q->sq_mask];
		verbs_inflight_done(&q->ep->inflight, e->bytes);
		piece_done(q->ep, q, e->op, seq == upto ? st : IBV_WC_SUCCESS);
	}
}

/* Hand the chain to the HCA with one doorbell; its last WR is signalled.
 * On a failed endpoint or dead QP the chain is retired as flushed once
 * everything before it has (order is kept). */
void verbs_ring(struct verbs_qp *q)
{
	if (!q->nchain)
		return;
	struct verbs_ep *ep = q->ep;
	if (ep->state == VERBS_EP_FAILED || q->dead || !q->qp) {
		if (q->sq_done != q->sq_rung) {
			mark_dirty(q);
			return;
		}
		q->nchain = 0;
		q->sq_rung = q->sq_post;
		sq_retire(q, q->sq_post - 1, IBV_WC_WR_FLUSH_ERR);
		verbs_tx_advance(ep);
		return;
	}
	for (uint32_t i = 0; i + 1 < q->nchain; i++)
		q->wr[i].next = &q->wr[i + 1];
	q->wr[q->nchain - 1].next = NULL;
	q->wr[q->nchain - 1].send_flags |= IBV_SEND_SIGNALED;
	struct ibv_send_wr *bad = NULL;
	int rc = ibv_post_send(q->qp, q->wr, &bad);
	uint32_t n = q->nchain;
	q->nchain = 0;
	if (!rc) {
		q->sq_rung = q->sq_post;
		return;
	}
	/* WRs from @bad on were not taken: the signalled one among them was
	 * lost, so retire the taken ones only after the endpoint fails. */
	uint32_t taken = bad ? (uint32_t)(bad - q->wr) : 0;
	wccl_ep_fail(&ep->base, WCCL_SUB_VERBS, WCCL_EIO,
		     "ibv_post_send on QP %u refused %u of %u work requests: "
		     "%s",
		     q->idx, n - taken, n, strerror(rc));
	verbs_ep_fail(ep, WCCL_EIO);
	q->sq_rung = q->sq_post - (n - taken);
	/* Re-chain the refused tail so it retires as flushed in order. */
	uint32_t j = 0;
	for (uint32_t i = taken; i < n; i++, j++) {
		q->wr[j] = q->wr[i];
		q->sge[j] = q->sge[i];
	}
	q->nchain = j;
	verbs_ring(q);
}

/* Ring the marked chains, and those marked while ringing. A chain on a
 * dead QP or failed endpoint waits for the QP's older WRs to flush and
 * marks itself again; only reaping retires those, so the passes are
 * bounded (looping until none is marked spins for ever when the flushes
 * are not in the CQ yet). */
void verbs_ring_dirty(struct verbs_ctx *ctx)
{
	for (int pass = 0; ctx->dirty && pass < 4; pass++) {
		struct verbs_qp *q = ctx->dirty;
		ctx->dirty = NULL;
		while (q) {
			struct verbs_qp *next = q->next_dirty;
			q->dirty = false;
			verbs_ring(q);
			q = next;
		}
	}
}

static void chain_add(struct verbs_qp *q, enum ibv_wr_opcode opc,
		      const void *buf, uint64_t len, uint32_t lkey, bool inl,
		      uint64_t raddr, uint32_t rkey, uint32_t imm,
		      uint64_t opseq)
{
	uint64_t seq = q->sq_post++;
	/* Internal WRs (clear-to-send entries, control messages) are a few
	 * bytes and never wait: not counted in flight. */
	uint64_t bytes = opseq == VERBS_INTERNAL ? 0 : len;
	q->sq_op[seq & q->sq_mask] = (struct verbs_sqe){opseq, bytes};
	verbs_inflight_add(&q->ep->inflight, bytes);
	struct ibv_send_wr *w = &q->wr[q->nchain];
	struct ibv_sge *s = &q->sge[q->nchain];
	memset(w, 0, sizeof(*w));
	w->wr_id = seq;
	w->opcode = opc;
	if (len) {
		s->addr = (uint64_t)(uintptr_t)buf;
		s->length = (uint32_t)len;
		s->lkey = lkey;
		w->sg_list = s;
		w->num_sge = 1;
	}
	if (inl)
		w->send_flags = IBV_SEND_INLINE;
	w->wr.rdma.remote_addr = raddr;
	w->wr.rdma.rkey = rkey;
	w->imm_data = htonl(imm);
	q->nchain++;
	/* An idle QP rings at once (latency); a busy one batches. */
	if (q->nchain >= q->ep->ctx->batch || q->sq_rung == q->sq_done)
		verbs_ring(q);
	else
		mark_dirty(q);
}

/* Issue @op (a plain write, or a striped send into the receive the peer
 * offered: op->raddr/rkey) as RDMA writes of page-rounded pieces
 * (verbs_piece_len) round-robin over the @n QPs of @live, as far as QP
 * room and the in-flight cap allow; the rest goes on a later call. True
 * once every byte is issued (the endpoint then moves to its next op). */
static bool issue_pieces(struct verbs_ep *ep, struct verbs_txop *op,
			 struct verbs_qp *const *live, uint32_t n, uint64_t seq)
{
	uint64_t piece = verbs_piece_len(op->len, n, ep->inflight.cap);
	while (op->sent < op->len) {
		struct verbs_qp *q = live[ep->rr % n];
		uint64_t l = op->len - op->sent;
		if (l > piece)
			l = piece;
		if (!qp_room(q, 1) || !verbs_inflight_may(&ep->inflight, l))
			return false;
		if (op->state == VERBS_OP_WAIT) {
			/* First piece: it counts as issued from now on. */
			op->state = VERBS_OP_ISSUED;
			if (op->kind == VERBS_WRITE) {
				ep->plain_out++;
			} else {
				op->phase = 1;
				if (!ep->p2_pending++)
					ep->p2_seq = seq;
				ep->n_striped++;
			}
		}
		uint64_t off = op->sent;
		ep->rr++;
		op->pieces++;
		op->sent += l;
		chain_add(q, IBV_WR_RDMA_WRITE, op->buf + off, l, op->lkey,
			  false, op->raddr + off, op->rkey, 0, seq);
		if (ep->state != VERBS_EP_READY)
			return false; /* failed: flushed with the rest */
	}
	ep->tx_issue++;
	return true;
}

/* The peer's clear-to-send entry for send @op if it is there and the
 * message fits (struct verbs_cts), else NULL: send it the ordinary way. */
static const struct verbs_cts *send_cts(const struct verbs_ep *ep,
					const struct verbs_txop *op)
{
	if (op->len < ep->ctx->stripe_min || !op->len || op->inl ||
	    !ep->cts_slots)
		return NULL;
	const struct verbs_cts *c = &ep->cts[op->sidx % ep->cts_slots];
	if (__atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) != op->sidx + 1)
		return NULL;
	return c->len >= op->len ? c : NULL;
}

/* Issue waiting operations in order, as far as fences and room allow. */
void verbs_tx_issue(struct verbs_ep *ep)
{
	if (ep->state != VERBS_EP_READY)
		return;
	if (ep->p2_pending)
		verbs_post_phase2(ep);
	struct verbs_ctx *ctx = ep->ctx;
	while (ep->tx_issue != ep->tx_post) {
		uint64_t seq = ep->tx_issue;
		struct verbs_txop *op = &ep->tx[seq & ep->mask];
		if (op->status && op->state == VERBS_OP_WAIT) {
			/* rejected before sending */
			send_ctl(ep, op->status, 0, false);
			op->state = VERBS_OP_DONE;
			ep->tx_issue++;
			continue;
		}
		struct verbs_qp *live[VERBS_MAX_DATA_QPS];
		uint32_t nlive = 0;
		for (uint32_t i = 1; i < ep->nqps; i++)
			if (qp_live(&ep->qp[i]))
				live[nlive++] = &ep->qp[i];
		if (op->state == VERBS_OP_ISSUED && nlive) {
			/* Pieces of it are out: the rest as room allows. */
			if (!issue_pieces(ep, op, live, nlive, seq))
				break;
			continue;
		}
		if (op->kind == VERBS_SEND && op->state == VERBS_OP_WAIT) {
			const struct verbs_cts *c =
			    nlive > 1 ? send_cts(ep, op) : NULL;
			if (c) {
				/* Earlier writes of any kind acked first: the
				 * final write may overtake nothing. */
				if (ep->plain_out + ep->imm_out)
					break;
				op->raddr = c->addr;
				op->rkey = c->rkey;
				if (!issue_pieces(ep, op, live, nlive, seq))
					break;
				continue;
			}
			struct verbs_qp *q = &ep->qp[0];
			/* Earlier plain writes must be acked (the target sees
			 * no completion for them); earlier writes with imm
			 * are waited for by the target (verbs_rxop); earlier
			 * striped sends must have consumed their receives. */
			if (ep->plain_out || ep->p2_pending || !qp_room(q, 1) ||
			    !verbs_inflight_may(&ep->inflight, op->len))
				break;
			op->pieces = 1;
			op->sent = op->len;
			op->state = VERBS_OP_ISSUED;
			ep->tx_issue++;
			chain_add(q, IBV_WR_SEND_WITH_IMM, op->buf, op->len,
				  op->lkey, op->inl, 0, 0, ep->imm_tx, seq);
			continue;
		}
		if (!nlive) {
			verbs_ep_fail(ep, wccl_ep_fail(&ep->base,
						       WCCL_SUB_VERBS,
						       WCCL_ECONNRESET,
						       "every data QP is closed"));
			return;
		}
		if (op->kind == VERBS_WRITE_IMM) {
			struct verbs_qp *q = live[0];
			if (ep->plain_out || !qp_room(q, 1) ||
			    !verbs_inflight_may(&ep->inflight, op->len))
				break;
			op->pieces = 1;
			op->sent = op->len;
			op->state = VERBS_OP_ISSUED;
			ep->imm_out++;
			ep->imm_tx++;
			ep->tx_issue++;
			chain_add(q, IBV_WR_RDMA_WRITE_WITH_IMM, op->buf,
				  op->len, op->lkey, op->inl, op->raddr,
				  op->rkey, op->imm, seq);
			continue;
		}
		if (op->len >= ctx->stripe_min) {
			if (!issue_pieces(ep, op, live, nlive, seq))
				break;
			continue;
		}
		struct verbs_qp *q = live[ep->rr % nlive];
		if (!qp_room(q, 1) ||
		    !verbs_inflight_may(&ep->inflight, op->len))
			break;
		ep->rr++;
		op->pieces = 1;
		op->sent = op->len;
		op->state = VERBS_OP_ISSUED;
		ep->plain_out++;
		ep->tx_issue++;
		chain_add(q, IBV_WR_RDMA_WRITE, op->buf, op->len, op->lkey,
			  op->inl, op->raddr, op->rkey, 0, seq);
	}
	verbs_tx_advance(ep);
}

/* The endpoint failed: operations not yet issued complete with its code. */
void verbs_ep_flush_waiting(struct verbs_ep *ep)
{
	/* Striped sends whose pieces are done but whose final write never
	 * went out: done now, with the endpoint's error. */
	for (uint64_t sq = ep->tx_done; ep->p2_pending && sq != ep->tx_issue;
	     sq++) {
		struct verbs_txop *op = &ep->tx[sq & ep->mask];
		if (op->kind == VERBS_SEND && op->phase == 1 && op->p1done) {
			if (!op->status)
				op->status = ep->err;
			op->phase = 2;
			ep->p2_pending--;
			op_finish(ep, op);
		}
	}
	while (ep->tx_issue != ep->tx_post) {
		struct verbs_txop *op = &ep->tx[ep->tx_issue & ep->mask];
		if (!op->status)
			op->status = ep->err;
		if (op->state == VERBS_OP_ISSUED) {
			/* Some pieces went out, the rest never will: it
			 * finishes as those retire (flushed), or now. */
			ep->tx_issue++;
			op->sent = op->len;
			if (!op->pieces)
				pieces_all_done(ep, op);
			continue;
		}
		verbs_mrc_put(ep->ctx, op->tmp);
		op->tmp = NULL;
		op->state = VERBS_OP_DONE;
		ep->tx_issue++;
	}
	for (uint32_t i = 0; i < ep->nqps; i++)
		if (ep->qp[i].nchain)
			mark_dirty(&ep->qp[i]);
	verbs_tx_advance(ep);
	verbs_rx_advance(ep); /* no more immediates will come */
}

static int tx_prepare(struct verbs_ep *ep, const void *buf, size_t len,
		      struct wccl_mr *mr, struct verbs_txop **out)
{
	if (!buf && len)
		return WCCL_EINVAL;
	if (ep->state != VERBS_EP_READY)
		return WCCL_ENOTCONN;
	if (len > ep->ctx->max_msg)
		return WCCL_EMSGSIZE;
	if (ep->tx_post - ep->tx_done >= ep->depth)
		return WCCL_EAGAIN;
	struct verbs_txop *op = &ep->tx[ep->tx_post & ep->mask];
	memset(op, 0, sizeof(*op));
	op->buf = buf;
	op->len = len;
	op->inl = len <= ep->qp[0].max_inline;
	if (len && !op->inl) {
		if (mr) {
			op->lkey = VERBS_MR(mr)->mr->lkey;
		} else {
			int rc = verbs_mrc_get(ep->ctx, buf, len, &op->tmp);
			if (rc)
				return rc;
			op->lkey = op->tmp->mr->lkey;
		}
	}
	op->state = VERBS_OP_WAIT;
	*out = op;
	return 0;
}

int verbs_post_send(struct wccl_endpoint *e, const void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie)
{
	struct verbs_ep *ep = VERBS_EP(e);
	struct verbs_txop *op;
	int rc = tx_prepare(ep, buf, len, mr, &op);
	if (rc)
		return rc;
	op->kind = VERBS_SEND;
	op->cookie = cookie;
	op->sidx = ep->send_idx++;
	ep->tx_post++;
	verbs_tx_issue(ep);
	return 0;
}

int verbs_post_write(struct wccl_endpoint *e, const void *buf, size_t len,
		     struct wccl_mr *mr, const struct wccl_rkey *rk,
		     uint64_t offset, uint32_t imm, uint32_t flags,
		     uint64_t cookie)
{
	struct verbs_ep *ep = VERBS_EP(e);
	if (!rk || (!buf && len))
		return WCCL_EINVAL;
	const char *why = NULL;
	int bad = verbs_key_check(rk, offset, len, &why);
	struct verbs_txop *op;
	/* A rejected write needs no buffer registration. */
	int rc = tx_prepare(ep, buf, bad ? 0 : len, bad ? NULL : mr, &op);
	if (rc)
		return rc;
	op->len = len;
	op->kind = flags & WCCL_WRITE_IMM ? VERBS_WRITE_IMM : VERBS_WRITE;
	op->cookie = cookie;
	op->imm = imm;
	op->raddr = rk->addr + offset;
	op->rkey = (uint32_t)rk->key;
	if (bad) {
		op->status = bad;
		wccl_ep_fail(e, WCCL_SUB_VERBS, bad,
			     "write of %zu bytes at offset %llu into a %llu-byte "
			     "region not sent: %s",
			     len, (unsigned long long)offset,
			     (unsigned long long)rk->len, why);
	}
	ep->tx_post++;
	verbs_tx_issue(ep);
	return 0;
}

/* ---- receives -------------------------------------------------------- */

int verbs_post_recv(struct wccl_endpoint *e, void *buf, size_t len,
		    struct wccl_mr *mr, uint64_t cookie)
{
	struct verbs_ep *ep = VERBS_EP(e);
	if (!buf && len)
		return WCCL_EINVAL;
	if (ep->state != VERBS_EP_READY)
		return WCCL_ENOTCONN;
	if (ep->rq_post - ep->rq_deliver >= ep->depth)
		return WCCL_EAGAIN;
	if (len > ep->ctx->max_msg)
		len = ep->ctx->max_msg;
	struct verbs_rxop *r = &ep->rq[ep->rq_post & ep->mask];
	memset(r, 0, sizeof(*r));
	r->cookie = cookie;
	r->posted = len;
	struct ibv_sge sge = {.addr = (uint64_t)(uintptr_t)buf,
			      .length = (uint32_t)len};
	/* A large receive is offered to a striped send (struct verbs_cts):
	 * remote-writable, exactly this range unless the user's region is
	 * remote-writable already. */
	struct verbs_ctx *ctx = ep->ctx;
	struct verbs_qp *q0 = &ep->qp[0];
	uint32_t rkey = 0;
	bool offer = len >= ctx->stripe_min && ep->nqps > 2 &&
		     ep->peer_cts_slots && qp_room(q0, 1) &&
		     q0->max_inline >= sizeof(struct verbs_cts);
	if (offer) {
		struct verbs_mr *vm = mr ? VERBS_MR(mr) : NULL;
		if (vm && (mr->access & WCCL_ACCESS_REMOTE_WRITE) && vm->mr &&
		    !vm->shared) {
			rkey = vm->mr->rkey;
		} else {
			r->rmr = verbs_reg_mr(ctx, buf, len,
					      IBV_ACCESS_LOCAL_WRITE |
						  IBV_ACCESS_REMOTE_WRITE);
			offer = r->rmr != NULL;
			rkey = offer ? r->rmr->rkey : 0;
		}
	}
	if (len) {
		if (mr) {
			sge.lkey = VERBS_MR(mr)->mr->lkey;
		} else if (r->rmr) {
			sge.lkey = r->rmr->lkey;
		} else {
			int rc = verbs_mrc_get(ctx, buf, len, &r->tmp);
			if (rc)
				return rc;
			sge.lkey = r->tmp->mr->lkey;
		}
	}
	struct ibv_recv_wr wr = {.wr_id = VERBS_RQ_BIT | ep->rq_post,
				 .sg_list = &sge,
				 .num_sge = len ? 1 : 0};
	struct ibv_recv_wr *bad;
	int rc = ibv_post_recv(q0->qp, &wr, &bad);
	if (rc) {
		verbs_mrc_put(ctx, r->tmp);
		verbs_dereg_mr(ctx, r->rmr);
		r->tmp = NULL;
		r->rmr = NULL;
		return wccl_ep_fail(e, WCCL_SUB_VERBS, WCCL_EIO,
				    "ibv_post_recv: %s", strerror(rc));
	}
	if (offer) {
		r->offered = true;
		struct verbs_cts *c = &ep->cts_out[ep->rq_post & ep->mask];
		*c = (struct verbs_cts){.addr = (uint64_t)(uintptr_t)buf,
					.len = len,
					.rkey = rkey,
					.seq = ep->rq_post + 1};
		uint64_t slot = ep->rq_post % ep->peer_cts_slots;
		chain_add(q0, IBV_WR_RDMA_WRITE, c, sizeof(*c), 0, true,
			  ep->peer_cts_addr + slot * sizeof(*c),
			  ep->peer_cts_rkey, 0, VERBS_INTERNAL);
	}
	ep->rq_post++;
	return 0;
}

static void rx_done(struct verbs_ep *ep, const struct ibv_wc *wc)
{
	uint64_t seq = wc->wr_id & ~VERBS_RQ_BIT;
	if (seq != ep->rq_done)
		WCCL_WARN(WCCL_SUB_VERBS,
			  "%s: receive %llu completed, expected %llu",
			  ep->base.peer, (unsigned long long)seq,
			  (unsigned long long)ep->rq_done);
	struct verbs_rxop *r = &ep->rq[seq & ep->mask];
	int32_t status = 0;
	switch (wc->status) {
	case IBV_WC_SUCCESS:
		break;
	case IBV_WC_WR_FLUSH_ERR:
		status = ep->state == VERBS_EP_FAILED ? ep->err
						       : WCCL_ECONNRESET;
		break;
	case IBV_WC_LOC_LEN_ERR:
	case IBV_WC_REM_INV_REQ_ERR:
	case IBV_WC_LOC_QP_OP_ERR: /* rxe: receive WQE too short */
		status = WCCL_ETRUNCATED;
		verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
					       status,
					       "a message longer than the "
					       "posted receive arrived (%s: "
					       "the receive was too short); "
					       "RC closes the connection",
					       ibv_wc_status_str(wc->status)));
		break;
	default:
		status = map_status(wc->status);
		verbs_ep_fail(ep, wccl_ep_fail(&ep->base, WCCL_SUB_VERBS,
					       status, "receive failed: %s (%s)",
					       verbs_wc_explain(wc->status),
					       ibv_wc_status_str(wc->status)));
		break;
	}
	r->status = status;
	r->len = status ? 0 : wc->byte_len;
	r->wait = !status && (wc->wc_flags & IBV_WC_WITH_IMM);
	r->need = ntohl(wc->imm_data);
	if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
		/* The final write of a striped send: imm = its length. Only
		 * an offered receive can take one, and the HCA checked the
		 * pieces against the offered range, not this length. */
		uint32_t len = ntohl(wc->imm_data);
		r->wait = false;
		if (!status && (!r->offered || len > r->posted)) {
			status = WCCL_EPROTO;
			const char *how = r->offered ? "" : "never offered ";
			verbs_ep_fail(ep, wccl_ep_fail(
					      &ep->base, WCCL_SUB_VERBS, status,
					      "striped send of %u bytes into "
					      "a %s%llu-byte receive",
					      len, how,
					      (unsigned long long)r->posted));
			r->status = status;
		}
		r->len = status ? 0 : len;
	}
	r->done = true;
	verbs_mrc_put(ep->ctx, r->tmp);
	r->tmp = NULL;
	verbs_dereg_mr(ep->ctx, r->rmr);
	r->rmr = NULL;
	ep->rq_done = seq + 1;
	verbs_rx_advance(ep);
}

/* Hand done receives out in order, each once the writes with immediate
 * sent before it have arrived (or the endpoint failed: none will), as far
 * as the CQ has room; progress calls again for the rest. */
void verbs_rx_advance(struct verbs_ep *ep)
{
	while (ep->rq_deliver != ep->rq_done) {
		struct verbs_rxop *r = &ep->rq[ep->rq_deliver & ep->mask];
		if (!r->done)
			break;
		if (r->wait && ep->state != VERBS_EP_FAILED &&
		    (int32_t)(ep->imm_rx - r->need) < 0)
			break;
		if (ep->base.cq && !verbs_cq_room(ep->ctx, ep->base.cq))
			break;
		struct wccl_completion c = {.cookie = r->cookie,
					    .ep = &ep->base,
					    .len = r->len,
					    .status = r->status,
					    .op = WCCL_OP_RECV};
		r->done = false;
		ep->rq_deliver++;
		verbs_ep_push(ep, &c);
	}
}

int verbs_srq_fill(struct verbs_ctx *ctx)
{
	struct ibv_recv_wr wr[32];
	while (ctx->srq_posted < ctx->srq_depth) {
		uint32_t n = ctx->srq_depth - ctx->srq_posted;
		if (n > 32)
			n = 32;
		for (uint32_t i = 0; i < n; i++)
			wr[i] = (struct ibv_recv_wr){
			    .wr_id = VERBS_SRQ_BIT,
			    .next = i + 1 < n ? &wr[i + 1] : NULL};
		struct ibv_recv_wr *bad;
		int rc = ibv_post_srq_recv(ctx->srq, wr, &bad);
		if (rc) {
			WCCL_WARN(WCCL_SUB_VERBS, "ibv_post_srq_recv: %s",
				  strerror(rc));
			return WCCL_EIO;
		}
		ctx->srq_posted += n;
	}
	return 0;
}

static void srq_done(struct verbs_ctx *ctx, const struct ibv_wc *wc)
{
	ctx->srq_posted--;
	struct verbs_qp *q = verbs_qp_lookup(ctx, wc->qp_num);
	if (!q)
		return;
	struct verbs_ep *ep = q->ep;
	if (wc->status != IBV_WC_SUCCESS) {
		if (wc->status != IBV_WC_WR_FLUSH_ERR)
			verbs_ep_fail(ep, wccl_ep_fail(
					      &ep->base, WCCL_SUB_VERBS,
					      map_status(wc->status),
					      "immediate receive on QP %u: %s",
					      q->idx,
					      verbs_wc_explain(wc->status)));
		return;
	}
	uint32_t imm = ntohl(wc->imm_data);
	if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
		struct wccl_completion c = {.ep = &ep->base,
					    .len = wc->byte_len,
					    .imm = imm,
					    .op = WCCL_OP_WRITE_IMM};
		ep->imm_rx++;
		verbs_ep_push(ep, &c);
		verbs_rx_advance(ep);
		return;
	}
	if (wc->opcode == IBV_WC_RECV && (wc->wc_flags & IBV_WC_WITH_IMM) &&
	    imm >> 28 == VERBS_CTL_REJECT) {
		uint32_t dead = (imm >> 16) & 0xffu;
		if (dead && dead < ep->nqps)
			ep->qp[dead].dead = true;
		if (imm & VERBS_CTL_WAS_IMM)
			ep->imm_rx++; /* a send after it need not wait */
		struct wccl_completion c = {.ep = &ep->base,
					    .status = -(int32_t)(imm & 0xffffu),
					    .op = WCCL_OP_ERROR};
		wccl_ep_fail(&ep->base, WCCL_SUB_VERBS, c.status,
			     "the peer's write into this process was "
			     "rejected (%s)",
			     wccl_strerror(c.status));
		verbs_ep_push(ep, &c);
		verbs_rx_advance(ep);
	}
}

void verbs_wc(struct verbs_ctx *ctx, const struct ibv_wc *wc)
{
	if (wc->wr_id & VERBS_SRQ_BIT && !(wc->wr_id & VERBS_RQ_BIT)) {
		srq_done(ctx, wc);
		return;
	}
	struct verbs_qp *q = verbs_qp_lookup(ctx, wc->qp_num);
	if (!q)
		return; /* a QP already destroyed */
	if (wc->wr_id & VERBS_RQ_BIT) {
		rx_done(q->ep, wc);
		return;
	}
	sq_retire(q, wc->wr_id, wc->status);
	verbs_tx_advance(q->ep);
}
