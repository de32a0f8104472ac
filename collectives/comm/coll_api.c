/* SPDX-License-Identifier: MIT */
/* The public collective calls: argument checks, a request from the
 * communicator's fixed pool, and the wait/test loop. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "coll_exec.h"
#include "coll_plan.h"
#include "comm_internal.h"
#include "collectives/dtype.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"

static int check_comm(struct wccl_comm *c)
{
	if (!c)
		return WCCL_EINVAL;
	if (c->broken)
		return c->async_error ? c->async_error : WCCL_EABORTED;
	return 0;
}

static int enqueue(struct wccl_comm *c, const struct coll_shape *shape,
		   const void *sendbuf, void *recvbuf,
		   struct wccl_request **out)
{
	int rc = check_comm(c);
	if (rc)
		return rc;
	if (shape->kind != COLL_BARRIER &&
	    (shape->dtype >= WCCL_DTYPE_COUNT || shape->op >= WCCL_REDOP_COUNT))
		return WCCL_EINVAL;
	struct wccl_request *r = NULL;
	for (int i = 0; i < COMM_MAX_REQUESTS && !r; i++)
		if (!c->reqs[i].in_use)
			r = &c->reqs[i];
	if (!r)
		return WCCL_EAGAIN;
	/* Point to point needs no schedule. */
	struct coll_plan *p = NULL;
	if (shape->kind != COLL_SEND && shape->kind != COLL_RECV) {
		p = coll_plan_get(c, shape, &rc);
		if (!p)
			return rc;
	}
	memset(r, 0, sizeof(*r));
	r->in_use = 1;
	r->comm = c;
	r->plan = p;
	r->shape = *shape;
	r->sendbuf = sendbuf;
	r->recvbuf = recvbuf;
	/* Collectives are numbered on every rank alike; point to point
	 * involves two ranks only and is not numbered. */
	if (shape->kind != COLL_SEND && shape->kind != COLL_RECV)
		r->seq = ++c->seq;
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	*out = r;
	comm_progress(c);
	return 0;
}

static int request_result(struct wccl_request *r)
{
	int rc = r->status;
	r->in_use = 0;
	return rc;
}

/*
 * One more progress pass once a request is done: a transport may hold back
 * the acknowledgement of the last message this rank received for a pass
 * (to let it ride on an answer), and the sender's request is not done
 * until it arrives. Without this pass it would wait until this rank next
 * calls in, which could be a whole compute step later.
 */
static void finish_pass(struct wccl_comm *c)
{
	comm_progress(c);
}

int wccl_test(struct wccl_request *r, int *done)
{
	if (!r || !done || !r->in_use)
		return WCCL_EINVAL;
	comm_progress(r->comm);
	if (r->done && !r->status)
		finish_pass(r->comm);
	*done = r->done;
	return r->done ? request_result(r) : 0;
}

/*
 * After a pass (@got: what it brought). With a core to spare, spin a few
 * microseconds (a reply is usually that close), then keep polling but
 * yield between polls: if the rank we wait for shares our core (more
 * ranks than cores, or a busy host), it runs now instead of after our
 * time slice; on an idle core the yield returns at once. With more ranks
 * than cores, yield from the start, except right after a pass with news:
 * the next round it started is often answered before a switch away and
 * back would be over (4 ranks on 2 cores, uring, 8 B..2 KiB: 0.85-0.94x
 * the time). Past 2 ms, sleep in the provider (woken by the arrival
 * itself) when there is one context, else in short naps. With more ranks
 * than cores, providers leave the yielding to us (caller_yields).
 */
static void idle(struct wccl_comm *c, uint64_t idle_since, uint64_t now,
		 int got)
{
	uint64_t spin_ns = c->oversubscribed ? 0 : 5000;
	if (now - idle_since < spin_ns || got > 0)
		return;
	if (now - idle_since < 2000000) {
		sched_yield();
		return;
	}
	/* A mailbox allreduce (small or direct) is not announced by any
	 * completion: never sleep in the provider while one is waiting. */
	if (c->nctx == 1 &&
	    !(c->head && ((c->head->plan && c->head->plan->ll) ||
			  c->head->direct_phase))) {
		struct wccl_completion wc[64];
		int n = wccl_cq_wait(c->ctx[0].cq, wc, 64, 1);
		for (int k = 0; k < n; k++)
			comm_on_completion(c, &wc[k]);
		return;
	}
	struct timespec ts = { 0, 50000 };
	nanosleep(&ts, NULL);
}

/*
 * The wait ran out. A rank that knows who never started the call says so
 * at once; the others give the root a moment to relay that verdict before
 * reporting their own view, so every rank names the same culprit.
 */
static void timed_out(struct wccl_comm *c, struct wccl_request *r,
		      int timeout_ms)
{
	char who[160];
	int never;
	struct wccl_request *head = c->head ? c->head : r;
	int peer = coll_waiting_on(head, who, sizeof(who), &never);
	if (!never) {
		uint64_t grace = wccl_deadline_ns(timeout_ms / 4 < 1000
							  ? timeout_ms / 4
							  : 1000);
		while (wccl_now_ns() < grace) {
			int rc = wccl_bootstrap_check_abort(c->bs);
			if (rc) {
				comm_take_relayed_error(c, rc);
				return;
			}
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	comm_fail(c, WCCL_ETIMEDOUT, peer,
		  "%s #%llu timed out after %d ms waiting for %s",
		  coll_kind_name(head->shape.kind),
		  (unsigned long long)head->seq, timeout_ms, who);
	if (never)
		c->failure_is_sure = 1;
	coll_request_fail(head, WCCL_ETIMEDOUT);
	comm_flush_requests(c, WCCL_ETIMEDOUT);
}

int wccl_wait(struct wccl_request *r, int timeout_ms)
{
	if (!r || !r->in_use)
		return WCCL_EINVAL;
	struct wccl_comm *c = r->comm;
	if (timeout_ms < 0)
		timeout_ms = c->timeout_ms;
	uint64_t start = wccl_now_ns();
	uint64_t deadline = start + (uint64_t)timeout_ms * 1000000ull;
	uint64_t idle_since = start, now = start;
	unsigned passes = 0;
	while (!r->done) {
		int got = comm_progress(c);
		if (r->done)
			break;
		/* The clock costs about as much as a mailbox pass: read it
		 * on news and every 16th pass. */
		if (got > 0 || (++passes & 15) == 0)
			now = wccl_now_ns();
		if (got > 0)
			idle_since = now;
		/* A rank that died or aborted, announced by the root. The
		 * check is a syscall: every 10 ms across calls, not once per
		 * call (a small call takes a fraction of a microsecond). */
		if (now >= c->next_abort_check_ns) {
			int rc = wccl_bootstrap_check_abort(c->bs);
			if (rc) {
				comm_take_relayed_error(c, rc);
				break;
			}
			c->next_abort_check_ns = now + 10000000;
		}
		if (now >= deadline) {
			timed_out(c, r, timeout_ms);
			break;
		}
		idle(c, idle_since, now, got);
	}
	/* One more pass pushes out what a peer may wait for (an ACK). A
	 * mailbox allreduce sent nothing; eager messages over connections
	 * that complete sends themselves want no ACK. */
	if (r->done && !r->status && !(r->plan && r->plan->ll) &&
	    (r->rendezvous || !c->eager_local))
		finish_pass(c);
	if (r->status) {
		/* Report the communicator's diagnosis (perhaps another rank's,
		 * relayed by the root), not just the symptom seen here. */
		comm_announce_failure(c);
		if (c->async_error)
			r->status = c->async_error;
	}
	return request_result(r);
}

static int bad_buffers(size_t count, const void *a, const void *b)
{
	return count && (!a || !b);
}

#define SHAPE(k, cnt, dt, o, rt) \
	((struct coll_shape){ .kind = (k), .dtype = (dt), .op = (o), \
			      .root = (rt), .count = (cnt) })

int wccl_iallreduce(const void *sendbuf, void *recvbuf, size_t count,
		    enum wccl_dtype dtype, enum wccl_redop op,
		    struct wccl_comm *comm, struct wccl_request **req)
{
	if (bad_buffers(count, sendbuf, recvbuf) || !req)
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_ALLREDUCE, count, dtype, op, 0);
	return enqueue(comm, &s, sendbuf, recvbuf, req);
}

int wccl_allreduce(const void *sendbuf, void *recvbuf, size_t count,
		   enum wccl_dtype dtype, enum wccl_redop op,
		   struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_iallreduce(sendbuf, recvbuf, count, dtype, op, comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

static int bad_root(struct wccl_comm *c, int root)
{
	return !c || root < 0 || root >= c->nranks;
}

int wccl_ibroadcast(const void *sendbuf, void *recvbuf, size_t count,
		    enum wccl_dtype dtype, int root, struct wccl_comm *comm,
		    struct wccl_request **req)
{
	if (bad_root(comm, root) || !req || (count && !recvbuf) ||
	    (count && comm->rank == root && !sendbuf))
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_BROADCAST, count, dtype, WCCL_SUM, root);
	return enqueue(comm, &s, sendbuf, recvbuf, req);
}

int wccl_broadcast(const void *sendbuf, void *recvbuf, size_t count,
		   enum wccl_dtype dtype, int root, struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_ibroadcast(sendbuf, recvbuf, count, dtype, root, comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

int wccl_ireduce(const void *sendbuf, void *recvbuf, size_t count,
		 enum wccl_dtype dtype, enum wccl_redop op, int root,
		 struct wccl_comm *comm, struct wccl_request **req)
{
	if (bad_root(comm, root) || !req || (count && !sendbuf) ||
	    (count && comm->rank == root && !recvbuf))
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_REDUCE, count, dtype, op, root);
	return enqueue(comm, &s, sendbuf, recvbuf, req);
}

int wccl_reduce(const void *sendbuf, void *recvbuf, size_t count,
		enum wccl_dtype dtype, enum wccl_redop op, int root,
		struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_ireduce(sendbuf, recvbuf, count, dtype, op, root, comm,
			      &r);
	return rc ? rc : wccl_wait(r, -1);
}

int wccl_iallgather(const void *sendbuf, void *recvbuf, size_t sendcount,
		    enum wccl_dtype dtype, struct wccl_comm *comm,
		    struct wccl_request **req)
{
	if (bad_buffers(sendcount, sendbuf, recvbuf) || !req)
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_ALLGATHER, sendcount, dtype, WCCL_SUM, 0);
	return enqueue(comm, &s, sendbuf, recvbuf, req);
}

int wccl_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
		   enum wccl_dtype dtype, struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_iallgather(sendbuf, recvbuf, sendcount, dtype, comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

int wccl_ireduce_scatter(const void *sendbuf, void *recvbuf,
			 size_t recvcount, enum wccl_dtype dtype,
			 enum wccl_redop op, struct wccl_comm *comm,
			 struct wccl_request **req)
{
	if (bad_buffers(recvcount, sendbuf, recvbuf) || !req)
		return WCCL_EINVAL;
	struct coll_shape s =
		SHAPE(COLL_REDUCE_SCATTER, recvcount, dtype, op, 0);
	return enqueue(comm, &s, sendbuf, recvbuf, req);
}

int wccl_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
			enum wccl_dtype dtype, enum wccl_redop op,
			struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_ireduce_scatter(sendbuf, recvbuf, recvcount, dtype, op,
				      comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

int wccl_ialltoall(const void *sendbuf, void *recvbuf, size_t count,
		   enum wccl_dtype dtype, struct wccl_comm *comm,
		   struct wccl_request **req)
{
	if (bad_buffers(count, sendbuf, recvbuf) || !req)
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_ALLTOALL, count, dtype, WCCL_SUM, 0);
	return enqueue(comm, &s, sendbuf, recvbuf, req);
}

int wccl_alltoall(const void *sendbuf, void *recvbuf, size_t count,
		  enum wccl_dtype dtype, struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_ialltoall(sendbuf, recvbuf, count, dtype, comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

int wccl_ibarrier(struct wccl_comm *comm, struct wccl_request **req)
{
	if (!req)
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_BARRIER, 1, WCCL_UINT8, WCCL_MAX, 0);
	return enqueue(comm, &s, NULL, NULL, req);
}

int wccl_barrier(struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_ibarrier(comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

static int bad_peer(struct wccl_comm *c, int peer)
{
	return !c || peer < 0 || peer >= c->nranks || peer == c->rank;
}

int wccl_isend(const void *buf, size_t count, enum wccl_dtype dtype,
	       int peer, struct wccl_comm *comm, struct wccl_request **req)
{
	if (bad_peer(comm, peer) || !req || (count && !buf))
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_SEND, count, dtype, WCCL_SUM, peer);
	return enqueue(comm, &s, buf, NULL, req);
}

int wccl_irecv(void *buf, size_t count, enum wccl_dtype dtype, int peer,
	       struct wccl_comm *comm, struct wccl_request **req)
{
	if (bad_peer(comm, peer) || !req || (count && !buf))
		return WCCL_EINVAL;
	struct coll_shape s = SHAPE(COLL_RECV, count, dtype, WCCL_SUM, peer);
	return enqueue(comm, &s, NULL, buf, req);
}

int wccl_send(const void *buf, size_t count, enum wccl_dtype dtype, int peer,
	      struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_isend(buf, count, dtype, peer, comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}

int wccl_recv(void *buf, size_t count, enum wccl_dtype dtype, int peer,
	      struct wccl_comm *comm)
{
	struct wccl_request *r;
	int rc = wccl_irecv(buf, count, dtype, peer, comm, &r);
	return rc ? rc : wccl_wait(r, -1);
}
