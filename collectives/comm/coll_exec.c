/* SPDX-License-Identifier: MIT */
/*
 * The executor: runs the head request's schedule over the endpoints.
 *
 * Each step has at most one send and one receive. Receives are posted
 * ahead of the step being finished (REDUCE receives into staging slots,
 * COPY receives straight into place), sends as soon as the data they read
 * is final, and steps are finished (staging reduced into the buffer) in
 * order. Two rules keep it correct while it overlaps:
 *   - nothing is written into a byte range an in-flight send still reads;
 *   - nothing is sent from a range an unfinished receive will still write.
 * Every wait the sequential schedule would not have had is one of these,
 * so the overlap cannot deadlock a schedule that is deadlock-free when run
 * step by step.
 *
 * Before any data, each rank sends a signature (kind, dtype, op, root,
 * count, sequence number) to every peer it will send to, and checks the
 * ones it receives: ranks that disagree fail with -WCCL_EMISMATCH naming
 * the other rank instead of corrupting data or hanging.
 *
 * A message of COMM_STRIPE_MIN bytes or more to a peer reached by several
 * connections (another region) goes as equal parts, part k on connection
 * k; both ends split alike, so parts match up per connection in order.
 *
 * Cookies: bits 63..48 request slot, 47..40 kind, 39..32 part, 31..0 step
 * (or peer).
 */
#include <stdio.h>
#include <string.h>

#include "coll_exec.h"
#include "coll_plan.h"
#include "comm_internal.h"
#include "collectives/dtype.h"
#include "collectives/reduce.h"
#include "core/log.h"

enum xfer_kind { XF_SEND = 1, XF_RECV, XF_SIG_SEND, XF_SIG_RECV };

#define SIG_MAGIC 0x47495343u /* "CSIG" */

static uint64_t cookie(const struct wccl_request *r, enum xfer_kind k,
		       uint64_t idx)
{
	return (uint64_t)(r - r->comm->reqs) << 48 | (uint64_t)k << 40 | idx;
}

#define COOKIE_PART_SHIFT 32

static int parts_for(const struct comm_peer *peer, size_t len)
{
	return peer->nstripes > 1 && len >= COMM_STRIPE_MIN ? peer->nstripes
							   : 1;
}

/* Part @k of @parts of a @len-byte message: whole elements of @es bytes. */
static void part_range(size_t len, size_t es, int parts, int k, size_t *off,
		       size_t *n)
{
	size_t elems = len / es;
	size_t lo = elems * (size_t)k / (size_t)parts;
	size_t hi = elems * (size_t)(k + 1) / (size_t)parts;
	*off = lo * es;
	*n = (hi - lo) * es;
}

static int overlaps(struct wccl_block a, struct wccl_block b)
{
	return a.count && b.count && a.offset < b.offset + b.count &&
	       b.offset < a.offset + a.count;
}

static uint8_t *sig_out(struct wccl_comm *c, int peer)
{
	return c->sig + (size_t)peer * COMM_SIG_LEN;
}

static uint8_t *sig_in(struct wccl_comm *c, int peer)
{
	return c->sig + ((size_t)c->nranks + (size_t)peer) * COMM_SIG_LEN;
}

void coll_sig_encode(const struct wccl_request *r, uint8_t *out)
{
	uint64_t f[6] = { SIG_MAGIC, r->seq, r->shape.kind, r->shape.dtype,
			  (uint64_t)r->shape.op << 32 | (uint32_t)r->shape.root,
			  r->shape.count };
	memcpy(out, f, sizeof(f));
}

static void describe(const uint64_t *f, char *buf, size_t len)
{
	int root = (int)(uint32_t)f[4];
	snprintf(buf, len, "#%llu %s(count=%llu, %s, %s, root=%d)",
		 (unsigned long long)f[1], coll_kind_name((uint32_t)f[2]),
		 (unsigned long long)f[5], wccl_dtype_name((int)f[3]),
		 wccl_redop_name((int)(f[4] >> 32)), root);
}

static const char *host_of(struct wccl_comm *c, int rank)
{
	return rank >= 0 && rank < c->nranks ? c->peers[rank].info.hostname
					     : "?";
}

/*
 * A failed collective leaves the streams out of step, so the communicator
 * is finished. The other ranks are told through the bootstrap root (see
 * comm_announce_failure) so they fail now, naming the rank at fault.
 */
static void request_fail(struct wccl_request *r, int err)
{
	if (!r->status)
		r->status = err;
	r->comm->broken = 1;
}

/* A failure this rank has seen for certain (a signature that differs):
 * announce it at once. */
static void request_fail_sure(struct wccl_request *r, int err)
{
	request_fail(r, err);
	r->comm->failure_is_sure = 1;
	comm_announce_failure(r->comm);
}

void coll_request_fail(struct wccl_request *r, int err)
{
	request_fail(r, err);
}

/* Check a peer's signature against ours. */
void coll_sig_compare(struct wccl_request *r, int peer, const uint8_t *sig)
{
	struct wccl_comm *c = r->comm;
	uint64_t mine[6], theirs[6];
	coll_sig_encode(r, (uint8_t *)mine);
	memcpy(theirs, sig, sizeof(theirs));
	if (memcmp(mine, theirs, sizeof(mine)) == 0)
		return;
	char a[128], b[128];
	describe(mine, a, sizeof(a));
	describe(theirs, b, sizeof(b));
	request_fail_sure(r, comm_fail(c, WCCL_EMISMATCH, peer,
				  "rank %d called %s but rank %d (host %s) "
				  "called %s",
				  c->rank, a, peer, host_of(c, peer), b));
}

static int post_sigs(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	for (int i = 0; i < p->n_sig_recv; i++) {
		int peer = p->sig_recv_peers[i];
		c->sig_got[peer] = 0;
		if (c->eager) {
			r->sigs_pending++; /* coll_eager_match takes it */
			continue;
		}
		int rc = wccl_post_recv(c->peers[peer].ep, sig_in(c, peer),
					COMM_SIG_LEN, NULL,
					cookie(r, XF_SIG_RECV, (uint64_t)peer));
		if (rc)
			return rc;
		r->sigs_pending++;
	}
	if (c->eager)
		return 0; /* they go eagerly, first thing in post_sends */
	for (int i = 0; i < p->n_sig_send; i++) {
		int peer = p->sig_send_peers[i];
		coll_sig_encode(r, sig_out(c, peer));
		int rc = wccl_post_send(c->peers[peer].ep, sig_out(c, peer),
					COMM_SIG_LEN, NULL,
					cookie(r, XF_SIG_SEND, (uint64_t)peer));
		if (rc)
			return rc;
		r->sigs_pending++;
	}
	return 0;
}

/* Is some send of a step before @upto, still in flight, reading @b? */
static int send_in_flight_over(struct wccl_request *r, int upto,
			       struct wccl_block b)
{
	const struct coll_plan *p = r->plan;
	/* Sends complete in order per peer, not globally: skip the prefix
	 * that is all done, then look at the rest. */
	while (r->send_low < r->next_send &&
	       (p->state[r->send_low].flags & STEP_SEND_DONE ||
		p->steps[r->send_low].send_peer < 0))
		r->send_low++;
	/* <= next_send: a step whose parts are partly posted reads too. */
	for (int j = r->send_low; j < upto && j <= r->next_send &&
				  j < p->nsteps; j++) {
		uint8_t f = p->state[j].flags;
		if ((f & STEP_SEND_POSTED) && !(f & STEP_SEND_DONE) &&
		    overlaps(p->steps[j].send, b))
			return 1;
	}
	return 0;
}

/* Has step @i a send over its own receive block that has not read it yet
 * (recursive doubling: both are the whole buffer)? */
static int own_send_unread(const struct wccl_request *r, int i)
{
	const struct wccl_step *s = &r->plan->steps[i];
	return s->send_peer >= 0 && overlaps(s->send, s->recv) &&
	       !(r->plan->state[i].flags & STEP_SEND_DONE);
}

/* Will an unfinished receive of a step before @upto still write @b? */
static int recv_pending_over(const struct wccl_request *r, int upto,
			     struct wccl_block b)
{
	const struct coll_plan *p = r->plan;
	for (int j = r->next_finish; j < upto; j++)
		if (p->steps[j].recv_peer >= 0 &&
		    overlaps(p->steps[j].recv, b))
			return 1;
	return 0;
}

static int take_slot(struct coll_plan *p)
{
	if (!p->stage_free)
		return -1;
	int s = __builtin_ctz(p->stage_free);
	p->stage_free &= ~(1u << s);
	return s;
}

/*
 * Post the parts of step @i's message (@kind XF_SEND or XF_RECV) that are
 * not posted yet, part k on the peer's connection k. 0 when all are, else
 * the first error (-WCCL_EAGAIN: the rest go on a later pass).
 */
static int post_parts(struct wccl_request *r, int i, struct comm_peer *peer,
		      enum xfer_kind kind, uint8_t *buf, size_t len,
		      struct wccl_mr *mr)
{
	struct coll_plan *p = r->plan;
	struct step_state *st = &p->state[i];
	int send = kind == XF_SEND;
	uint8_t *posted = send ? &st->send_parts : &st->recv_parts;
	uint8_t *left = send ? &st->send_left : &st->recv_left;
	int parts = parts_for(peer, len);
	r->rendezvous = 1;
	while (*posted < parts) {
		size_t off, n;
		part_range(len, p->elem_size, parts, *posted, &off, &n);
		uint64_t ck = cookie(r, kind,
				     (uint64_t)i |
					     (uint64_t)*posted << COOKIE_PART_SHIFT);
		struct wccl_endpoint *ep = peer->eps[*posted];
		int rc = send ? wccl_post_send(ep, buf + off, n, mr, ck)
			      : wccl_post_recv(ep, buf + off, n, mr, ck);
		if (rc)
			return rc;
		(*posted)++;
		(*left)++;
		st->flags |= send ? STEP_SEND_POSTED : STEP_RECV_POSTED;
		if (send)
			r->sends_pending++;
	}
	return 0;
}

/* A receive step is done when all its parts are posted and have arrived;
 * their lengths must add up to the block. */
static void recv_step_check(struct wccl_request *r, int i)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	struct step_state *st = &p->state[i];
	if (st->recv_left || (st->flags & STEP_RECV_DONE) ||
	    i >= r->next_recv)
		return;
	st->flags |= STEP_RECV_DONE;
	uint64_t want = p->steps[i].recv.count * p->elem_size;
	if (!r->status && st->recv_len != want) {
		int peer = p->steps[i].recv_peer;
		request_fail(r, comm_fail(c, WCCL_EMISMATCH, peer,
					  "%s #%llu: rank %d (host %s) sent "
					  "%llu bytes, expected %llu",
					  coll_kind_name(r->shape.kind),
					  (unsigned long long)r->seq, peer,
					  host_of(c, peer),
					  (unsigned long long)st->recv_len,
					  (unsigned long long)want));
	}
}

/* Post the receives we can, in step order. */
static int post_recvs(struct wccl_request *r, int window)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	while (r->next_recv < p->nsteps && r->next_recv < r->next_finish + window) {
		int i = r->next_recv;
		const struct wccl_step *s = &p->steps[i];
		struct step_state *st = &p->state[i];
		if (s->recv_peer < 0 || s->recv_peer == c->rank) {
			r->next_recv++;
			continue;
		}
		size_t len = s->recv.count * p->elem_size;
		if (coll_eager_on(c, len)) {
			/* Nothing to post: it lands in an inbox slot, and
			 * finish_steps takes it from there. */
			st->flags |= STEP_RECV_POSTED;
			r->next_recv++;
			continue;
		}
		uint8_t *dst;
		if (s->recv_action == WCCL_RECV_REDUCE) {
			if (st->slot < 0) {
				int slot = take_slot(p);
				if (slot < 0)
					break;
				st->slot = (int8_t)slot;
			}
			dst = p->stage + (size_t)st->slot * p->stage_slot_bytes;
		} else {
			if (!st->recv_parts &&
			    (send_in_flight_over(r, i, s->recv) ||
			     recv_pending_over(r, i, s->recv)))
				break;
			dst = r->buf + s->recv.offset * p->elem_size;
		}
		struct comm_peer *peer = &c->peers[s->recv_peer];
		struct wccl_mr *mr =
			s->recv_action == WCCL_RECV_REDUCE
				? comm_mr_for(c, peer->ctx_index, &p->stage_span)
				: comm_mr_for(c, peer->ctx_index, &r->buf_span);
		int rc = post_parts(r, i, peer, XF_RECV, dst, len, mr);
		if (rc == WCCL_EAGAIN) {
			if (!st->recv_parts && st->slot >= 0) {
				p->stage_free |= 1u << st->slot;
				st->slot = -1;
			}
			break;
		}
		if (rc)
			return rc;
		r->next_recv++;
		recv_step_check(r, i);
	}
	return 0;
}

/* Eager signatures go before any data (a receiver matches them first),
 * alone unless they ride in front of the first data (plan_sig_inline). */
static int send_eager_sigs(struct wccl_request *r)
{
	struct coll_plan *p = r->plan;
	while (r->next_sig < p->n_sig_send) {
		if (p->sig_inline[r->next_sig]) {
			r->next_sig++;
			continue;
		}
		uint8_t sig[COMM_SIG_LEN];
		coll_sig_encode(r, sig);
		int rc = coll_eager_send(r, p->sig_send_peers[r->next_sig],
					 COLL_EAGER_SIG, sig, sizeof(sig));
		if (rc)
			return rc;
		r->next_sig++;
	}
	return 0;
}

/* Post the sends whose data is final, in step order. */
static int post_sends(struct wccl_request *r, int window)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	if (c->eager) {
		int rc = send_eager_sigs(r);
		if (rc)
			return rc == WCCL_EAGAIN ? 0 : rc;
	}
	while (r->next_send < p->nsteps && r->next_send < r->next_finish + window) {
		int i = r->next_send;
		const struct wccl_step *s = &p->steps[i];
		struct step_state *st = &p->state[i];
		if (s->send_peer < 0) {
			r->next_send++;
			continue;
		}
		if (recv_pending_over(r, i, s->send))
			break;
		int from_input = 0;
		const uint8_t *src =
			r->send_base == r->buf
				? coll_lazy_send_src(r, s->send, &from_input)
				: r->send_base + s->send.offset * p->elem_size;
		size_t len = s->send.count * p->elem_size;
		if (s->send_peer == c->rank) {
			/* Alltoall's exchange with itself. */
			memcpy(r->buf + s->recv.offset * p->elem_size, src, len);
			st->flags |= STEP_SEND_POSTED | STEP_SEND_DONE |
				     STEP_RECV_DONE;
			r->next_send++;
			continue;
		}
		if (coll_eager_on(c, len)) {
			/* Copied out at once: the step's range is free again. */
			int rc = coll_eager_send(r, s->send_peer,
						 p->step_sig[i]
							 ? COLL_EAGER_SIG_DATA
							 : COLL_EAGER_DATA,
						 src, len);
			if (rc == WCCL_EAGAIN)
				break;
			if (rc)
				return rc;
			st->flags |= STEP_SEND_POSTED | STEP_SEND_DONE;
			r->next_send++;
			continue;
		}
		struct comm_peer *peer = &c->peers[s->send_peer];
		struct wccl_mr *mr = comm_mr_for(
			c, peer->ctx_index,
			from_input ? &r->in_span : &r->send_span);
		int rc = post_parts(r, i, peer, XF_SEND, (uint8_t *)(uintptr_t)src,
				    len, mr);
		if (rc == WCCL_EAGAIN)
			break;
		if (rc)
			return rc;
		r->next_send++;
	}
	return 0;
}

/* An eager receive's data, in its inbox slot: into the buffer. */
static int finish_eager(struct wccl_request *r, const struct wccl_step *s,
			struct step_state *st)
{
	struct coll_plan *p = r->plan;
	int rc = 0;
	if (s->recv_action == WCCL_RECV_REDUCE) {
		rc = coll_lazy_reduce(r, s->recv, st->eager);
	} else {
		memcpy(r->buf + s->recv.offset * p->elem_size, st->eager,
		       s->recv.count * p->elem_size);
		coll_lazy_overwritten(r, s->recv);
	}
	st->eager = NULL;
	coll_eager_release(r->comm, s->recv_peer);
	return rc;
}

/* Finish steps in order: reduce what arrived into the buffer. */
static int finish_steps(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	while (r->next_finish < p->nsteps) {
		int i = r->next_finish;
		const struct wccl_step *s = &p->steps[i];
		struct step_state *st = &p->state[i];
		int has_recv = s->recv_peer >= 0;
		if (has_recv && !(st->flags & STEP_RECV_DONE))
			break;
		/* Reducing (or copying an eager arrival) writes the block:
		 * no send may still read it. */
		if ((st->eager || s->recv_action == WCCL_RECV_REDUCE) &&
		    (send_in_flight_over(r, i + 1, s->recv) ||
		     own_send_unread(r, i)))
			break;
		if (st->eager) {
			int rc = finish_eager(r, s, st);
			if (rc)
				return rc;
		} else if (s->recv_action == WCCL_RECV_REDUCE) {
			int rc = coll_lazy_reduce(
				r, s->recv,
				p->stage + (size_t)st->slot * p->stage_slot_bytes);
			if (rc)
				return rc;
			p->stage_free |= 1u << st->slot;
			st->slot = -1;
		} else if (has_recv) {
			coll_lazy_overwritten(r, s->recv);
		}
		(void)c;
		st->flags |= STEP_FINISHED;
		r->next_finish++;
	}
	return 0;
}

/* Start @r on its schedule. */
static void schedule_start(struct wccl_request *r)
{
	struct coll_plan *p = r->plan;
	for (int i = 0; i < p->nsteps; i++)
		p->state[i] = (struct step_state){ .slot = -1 };
	p->stage_free = p->stage_slots >= 32 ? ~0u
					     : (1u << p->stage_slots) - 1;
	r->next_recv = r->next_send = r->next_finish = r->send_low = 0;
	r->sends_pending = r->sigs_pending = r->next_sig = 0;
	r->rendezvous = !r->comm->eager; /* signatures too, then */
	r->started = 1;
	int rc = coll_prepare_buffers(r);
	if (!rc) {
		/* Buffers in wccl_mem memory travel with their registration
		 * (one memcpy into a same-host peer, fixed buffers for uring). */
		size_t span = p->elems * p->elem_size;
		if (r->shape.kind == COLL_ALLTOALL)
			span = p->work_bytes;
		if (!r->buf || wccl_mem_find(r->buf, span, &r->buf_span))
			r->buf_span.id = 0;
		if (!r->lazy_in || wccl_mem_find(r->lazy_in, span, &r->in_span))
			r->in_span.id = 0;
		if (r->send_base == r->buf)
			r->send_span = r->buf_span;
		else if (!r->send_base ||
			 wccl_mem_find(r->send_base, span, &r->send_span))
			r->send_span.id = 0;
		rc = post_sigs(r);
	}
	if (rc)
		request_fail(r, comm_fail(r->comm, rc, -1,
					  "rank %d: cannot start %s: %s",
					  r->comm->rank,
					  coll_kind_name(r->shape.kind),
					  wccl_strerror(rc)));
}

static void request_start(struct wccl_request *r)
{
	struct coll_plan *p = r->plan;
	if (p->ll)
		coll_ll_start(r);
	else if (p->direct)
		coll_direct_start(r);
	else
		schedule_start(r);
}

/* Drive the head request as far as it can go now. */
static void advance(struct wccl_request *r)
{
	struct coll_plan *p = r->plan;
	if (p->ll) {
		coll_ll_advance(r);
		return;
	}
	if (r->direct_phase) {
		if (!coll_direct_advance(r))
			return;
		schedule_start(r); /* some rank could not: all fall back */
		if (r->status)
			return;
	}
	int window = p->stage_slots > 0 ? p->stage_slots + 2 : 8;
	for (int round = 0; round < 4 && !r->status; round++) {
		int before = r->next_recv + r->next_send + r->next_finish;
		if (r->comm->eager)
			coll_eager_match(r);
		int rc = post_recvs(r, window);
		if (!rc)
			rc = post_sends(r, window);
		if (!rc)
			rc = finish_steps(r);
		if (rc) {
			request_fail(r, comm_fail(r->comm, rc, -1,
						  "%s step failed: %s",
						  coll_kind_name(r->shape.kind),
						  wccl_strerror(rc)));
			break;
		}
		if (r->next_recv + r->next_send + r->next_finish == before)
			break;
	}
	/* Done when every step is finished and every send posted and
	 * complete: a step that only sends finishes before its (eager) send
	 * may go, if the outbox was full, and an eager send posted is not
	 * yet on its way. */
	if (r->status || (r->next_finish == p->nsteps &&
			  r->next_send == p->nsteps && !r->sends_pending &&
			  !r->sigs_pending && !r->comm->eager_sends_out &&
			  (!r->comm->eager || r->next_sig == p->n_sig_send))) {
		if (!r->status)
			r->status = coll_finish_buffers(r);
		r->done = 1;
	}
}

static int is_p2p(const struct wccl_request *r)
{
	return r->shape.kind == COLL_SEND || r->shape.kind == COLL_RECV;
}

/* Point to point: one transfer, posted whole when the request starts. */
static void p2p_start(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	size_t len = r->shape.count * wccl_dtype_size(r->shape.dtype);
	struct wccl_endpoint *ep = c->peers[r->shape.root].ep;
	int rc;
	r->started = 1;
	r->rendezvous = 1;
	if (r->shape.kind == COLL_SEND)
		rc = wccl_post_send(ep, r->sendbuf, len, NULL,
				    cookie(r, XF_SEND, 0));
	else
		rc = wccl_post_recv(ep, r->recvbuf, len, NULL,
				    cookie(r, XF_RECV, 0));
	if (rc == WCCL_EAGAIN) {
		r->started = 0; /* queue full: try again on the next pass */
		return;
	}
	if (rc)
		request_fail(r, comm_fail(c, rc, r->shape.root,
					  "%s with rank %d: %s",
					  coll_kind_name(r->shape.kind),
					  r->shape.root, wccl_strerror(rc)));
}

static void p2p_complete(struct wccl_request *r,
			 const struct wccl_completion *wc)
{
	struct wccl_comm *c = r->comm;
	int peer = r->shape.root;
	size_t want = r->shape.count * wccl_dtype_size(r->shape.dtype);
	if (wc->status)
		request_fail(r, comm_fail(c, wc->status, peer,
					  "%s with rank %d (host %s): %s",
					  coll_kind_name(r->shape.kind), peer,
					  host_of(c, peer),
					  wccl_endpoint_last_error(wc->ep)));
	else if (r->shape.kind == COLL_RECV && wc->len != want)
		request_fail(r, comm_fail(c, WCCL_EMISMATCH, peer,
					  "recv from rank %d (host %s): %llu "
					  "bytes arrived, %zu expected",
					  peer, host_of(c, peer),
					  (unsigned long long)wc->len, want));
	r->done = 1;
}

/* Has @r posted everything it will post (so later requests may post)? */
static int fully_posted(const struct wccl_request *r)
{
	if (!r->started)
		return 0;
	if (r->done || is_p2p(r))
		return 1;
	return r->next_recv == r->plan->nsteps &&
	       r->next_send == r->plan->nsteps;
}

static int rank_of_ep(struct wccl_comm *c, struct wccl_endpoint *ep)
{
	for (int i = 0; i < c->nranks; i++)
		for (int k = 0; k < c->peers[i].nconns; k++)
			if (c->peers[i].eps[k] == ep)
				return i;
	return -1;
}

void comm_on_completion(struct wccl_comm *c, const struct wccl_completion *wc)
{
	if (coll_eager_cookie(wc->cookie)) {
		coll_eager_completion(c, wc);
		return;
	}
	uint64_t slot = wc->cookie >> 48;
	enum xfer_kind kind = (enum xfer_kind)((wc->cookie >> 40) & 0xff);
	uint64_t idx = wc->cookie & ((1ull << 40) - 1);
	uint64_t step = idx & ((1ull << COOKIE_PART_SHIFT) - 1);
	if (slot >= COMM_MAX_REQUESTS || !c->reqs[slot].in_use)
		return; /* a flushed operation of a request already failed */
	struct wccl_request *r = &c->reqs[slot];
	if (wc->status) {
		int peer = rank_of_ep(c, wc->ep);
		request_fail(r, comm_fail(c, wc->status, peer,
					  "%s #%llu: rank %d (host %s): %s",
					  coll_kind_name(r->shape.kind),
					  (unsigned long long)r->seq, peer,
					  host_of(c, peer),
					  wccl_endpoint_last_error(wc->ep)));
	}
	struct coll_plan *p = r->plan;
	if (!p) {
		p2p_complete(r, wc);
		return;
	}
	switch (kind) {
	case XF_SIG_SEND:
		r->sigs_pending--;
		break;
	case XF_SIG_RECV:
		r->sigs_pending--;
		c->sig_got[idx] = 1;
		if (!wc->status)
			coll_sig_compare(r, (int)idx, sig_in(c, (int)idx));
		break;
	case XF_SEND: {
		struct step_state *st = &p->state[step];
		r->sends_pending--;
		/* Done once every part is posted and has completed. */
		if (!--st->send_left && (int)step < r->next_send)
			st->flags |= STEP_SEND_DONE;
		break;
	}
	case XF_RECV: {
		struct step_state *st = &p->state[step];
		st->recv_left--;
		st->recv_len += wc->len;
		recv_step_check(r, (int)step);
		break;
	}
	}
}

/*
 * Collectives run one at a time, in call order: one starts when every
 * earlier request has finished. Point-to-point requests start as soon as
 * every earlier request has posted all its transfers, so per-endpoint order
 * still follows call order while irecv + isend pairs run concurrently.
 */
int comm_progress(struct wccl_comm *c)
{
	struct wccl_completion wc[64];
	int total = 0;
	/* A lone mailbox allreduce waits for flags, not completions: look
	 * at them first, and poll the transports only every 16th pass while
	 * it waits (their polls cost more than the whole call). */
	struct wccl_request *h = c->head;
	int skip_polls = 0;
	if (h && !h->next && h->started && !h->done && h->plan && h->plan->ll) {
		coll_ll_advance(h);
		skip_polls = h->done || (++c->ll_quiet_passes & 15);
		if (skip_polls && !h->done)
			return 0; /* nothing else queued, nothing changed */
	}
	for (int i = 0; i < c->nctx && !skip_polls; i++) {
		/* A context no peer uses has nothing to say (and polling an
		 * idle one may yield the core). */
		if (!c->ctx[i].npeers)
			continue;
		int n = wccl_cq_poll(c->ctx[i].cq, wc, 64);
		for (int k = 0; k < n; k++)
			comm_on_completion(c, &wc[k]);
		if (n > 0)
			total += n;
	}
	int prior_posted = 1;
	for (struct wccl_request *r = c->head; r; r = r->next) {
		if (!r->started && !r->done) {
			if (c->broken) {
				r->status = c->async_error ? c->async_error
							   : WCCL_EABORTED;
				r->done = 1;
			} else if (is_p2p(r) && prior_posted) {
				p2p_start(r);
			} else if (!is_p2p(r) && r == c->head) {
				request_start(r);
			}
		}
		if (r->started && !r->done && !is_p2p(r))
			advance(r);
		if (!fully_posted(r))
			prior_posted = 0;
	}
	/* Unlink finished requests; their owners collect them with wait. */
	struct wccl_request **link = &c->head, *last = NULL;
	while (*link) {
		struct wccl_request *r = *link;
		if (r->done) {
			*link = r->next;
			total++;
			continue;
		}
		last = r;
		link = &r->next;
	}
	c->tail = last;
	return total;
}

void comm_flush_requests(struct wccl_comm *c, int err)
{
	for (struct wccl_request *r = c->head; r; r = r->next) {
		if (!r->status)
			r->status = err;
		r->done = 1;
	}
	c->head = c->tail = NULL;
}

int coll_waiting_on(struct wccl_request *r, char *buf, size_t len,
		    int *never_called)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	int first = -1;
	size_t o = 0;
	buf[0] = '\0';
	*never_called = 0;
	if (r->started && p->ll)
		return coll_ll_waiting_on(r, buf, len, never_called);
	if (r->started && r->direct_phase)
		return coll_direct_waiting_on(r, buf, len, never_called);
	/* A peer whose signature never came has not entered this call,
	 * unless the signature rides in a message it sends only later. */
	for (int i = 0; r->started && i < p->n_sig_recv; i++) {
		int peer = p->sig_recv_peers[i];
		if (!c->sig_got[peer] && !(c->eager && p->sig_late[i])) {
			snprintf(buf, len,
				 "rank %d (host %s), which never started it",
				 peer, host_of(c, peer));
			*never_called = 1;
			return peer;
		}
	}
	for (int i = r->next_finish; i < p->nsteps && o + 48 < len; i++) {
		const struct wccl_step *s = &p->steps[i];
		if (s->recv_peer < 0 || (p->state[i].flags & STEP_RECV_DONE))
			continue;
		if (first < 0)
			first = s->recv_peer;
		else if (s->recv_peer == first)
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%srank %d (host %s)",
				      o ? ", " : "", s->recv_peer,
				      host_of(c, s->recv_peer));
		break;
	}
	if (first < 0 && r->sigs_pending)
		snprintf(buf, len, "peers' signatures");
	else if (first < 0)
		snprintf(buf, len, "send completions");
	return first;
}
