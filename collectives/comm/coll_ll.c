/* SPDX-License-Identifier: MIT */
/*
 * Small allreduce (<= 64 KiB; barrier: flags only) among the ranks of one host,
 * through mailboxes instead of messages. Each rank owns a mailbox in shared memory (wccl_mem,
 * registered with the shm provider for remote reads) that every other
 * rank has mapped. A call copies the input into the rank's own mailbox
 * slot with the call's signature, then publishes the call's sequence
 * number (release); each rank waits until every other rank's slot shows
 * that number (acquire), checks the signatures, and reduces the inputs in
 * rank order (so every rank computes the same bits). No message, no
 * completion, no acknowledgement: one copy in and n - 1 reads.
 *
 * Two slots, used alternately: a rank starts call k + 2 only after it saw
 * every rank's flag for call k + 1, which each raised only after it had
 * finished call k, reading our slot for k. So a slot is never rewritten
 * while someone may still read it.
 *
 * Used when every rank is on this host, every peer is reached by shm,
 * the message is at most COMM_LL_MAX bytes and no algorithm is forced;
 * all ranks agree at init whether it is on.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_exec.h"
#include "comm_internal.h"
#include "collectives/dtype.h"
#include "collectives/reduce.h"
#include "core/log.h"
#include "core/params.h"
#include "transport/provider.h"

#define LL_FLAG_OFF COMM_SIG_LEN /* after the signature */
#define LL_DATA_OFF COMM_LL_DATA_OFF
/* Slots start on a cache line, so each slot's flag line is its first. */
#define LL_SLOT ((LL_DATA_OFF + COMM_LL_MAX + 63u) & ~63u)
/* A call of up to 8 bytes is one line to write and one to read: the
 * second line cost a cross-core transfer per peer (2 ranks, 8 B: 0.81x
 * the time with it in the first line, paired launches). */
_Static_assert(LL_FLAG_OFF + 8 <= LL_DATA_OFF && LL_DATA_OFF + 8 <= 64,
	       "flag and the first 8 data bytes share a cache line");
_Static_assert(LL_SLOT % 64 == 0, "slots start on a cache line");

_Atomic uint64_t *coll_ll_flag(const uint8_t *slot)
{
	return (_Atomic uint64_t *)(uintptr_t)(slot + LL_FLAG_OFF);
}

const uint8_t *coll_ll_slot(const struct wccl_comm *c, int peer, int s)
{
	return c->ll_peer[peer] + (size_t)s * LL_SLOT;
}

/* The context the mailboxes are registered with: shm, which reaches
 * every peer when they are on. */
int coll_ll_ctx(const struct wccl_comm *c)
{
	return c->peers[(c->rank + 1) % c->nranks].ctx_index;
}

/* This rank's own reasons against the mailboxes, before asking others. */
static int ll_possible_here(struct wccl_comm *c)
{
	if (c->nranks < 2 || *wccl_param_str(WCCL_PARAM_ALGO))
		return 0;
	for (int r = 0; r < c->nranks; r++) {
		const struct comm_peer *p = &c->peers[r];
		if (r == c->rank)
			continue;
		if (c->host_of[r] != c->host_of[c->rank] || !p->ep ||
		    strcmp(wccl_context_provider(c->ctx[p->ctx_index].ctx),
			   "shm"))
			return 0;
	}
	return 1;
}

struct ll_card {
	uint8_t rkey[WCCL_RKEY_PACKED_LEN];
	uint32_t ok;
	uint32_t pad;
};

int comm_ll_setup(struct wccl_comm *c)
{
	struct ll_card me = { .ok = (uint32_t)ll_possible_here(c) };
	int ctx = me.ok ? coll_ll_ctx(c) : 0;
	if (me.ok && wccl_mem_alloc(2 * LL_SLOT, (void **)&c->ll_box))
		me.ok = 0;
	if (me.ok && wccl_mr_register(c->ctx[ctx].ctx, c->ll_box, 2 * LL_SLOT,
				      WCCL_ACCESS_LOCAL |
					      WCCL_ACCESS_REMOTE_READ,
				      &c->ll_mr))
		me.ok = 0;
	if (me.ok) {
		struct wccl_rkey rk;
		if (wccl_mr_rkey(c->ll_mr, &rk))
			me.ok = 0;
		else
			wccl_rkey_pack(&rk, me.rkey);
	}
	/* Everyone takes part in both rounds, whatever its own verdict. */
	struct ll_card *all = calloc((size_t)c->nranks, sizeof(*all));
	uint32_t *oks = calloc((size_t)c->nranks, sizeof(*oks));
	c->ll_peer = calloc((size_t)c->nranks, sizeof(*c->ll_peer));
	if (!all || !oks || !c->ll_peer) {
		free(all);
		free(oks);
		return WCCL_ENOMEM;
	}
	int rc = wccl_bootstrap_allgather(c->bs, &me, sizeof(me), all,
					  c->timeout_ms);
	uint32_t ok = me.ok;
	for (int r = 0; !rc && r < c->nranks; r++) {
		if (!all[r].ok) {
			ok = 0;
			continue;
		}
		if (r == c->rank || !ok)
			continue;
		struct wccl_rkey rk;
		void *p = NULL;
		wccl_rkey_unpack(all[r].rkey, &rk);
		if (rk.len < 2 * LL_SLOT ||
		    wccl_endpoint_map_remote(c->peers[r].ep, &rk, 0, &p))
			ok = 0;
		c->ll_peer[r] = p;
	}
	if (!rc)
		rc = wccl_bootstrap_allgather(c->bs, &ok, sizeof(ok), oks,
					      c->timeout_ms);
	int on = !rc;
	for (int r = 0; !rc && r < c->nranks; r++)
		on &= oks[r] != 0;
	c->ll_on = on;
	if (on) {
		c->ll_peer[c->rank] = c->ll_box;
		/* (if these fail, each direct call says "cannot") */
		c->direct_in = calloc((size_t)c->nranks, sizeof(*c->direct_in));
		c->direct_out =
			calloc((size_t)c->nranks, sizeof(*c->direct_out));
		c->direct_kept =
			calloc((size_t)c->nranks, sizeof(*c->direct_kept));
	}
	WCCL_INFO(WCCL_SUB_COLL, "rank %d: small-allreduce mailboxes %s",
		  c->rank, on ? "on" : "off");
	free(all);
	free(oks);
	return rc;
}

void comm_ll_teardown(struct wccl_comm *c)
{
	if (c->ll_mr)
		wccl_mr_deregister(c->ll_mr);
	if (c->ll_box)
		wccl_mem_free(c->ll_box);
	free(c->ll_peer);
	free(c->direct_in);
	free(c->direct_out);
	free(c->direct_kept);
	c->direct_in = NULL;
	c->direct_out = NULL;
	c->direct_kept = NULL;
	c->direct_kept_bytes = 0;
	c->ll_mr = NULL;
	c->ll_box = NULL;
	c->ll_peer = NULL;
	c->ll_on = 0;
}

int coll_ll_eligible(const struct wccl_comm *c, const struct coll_shape *s)
{
	if (!c->ll_on)
		return 0;
	if (s->kind == COLL_BARRIER)
		return 1; /* flags only */
	return s->kind == COLL_ALLREDUCE && s->count &&
	       s->count * wccl_dtype_size(s->dtype) <= COMM_LL_MAX;
}

void coll_ll_start(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	size_t bytes = r->shape.count * wccl_dtype_size(r->shape.dtype);
	r->ll_slot = (int)(c->ll_calls++ & 1);
	uint8_t *slot = c->ll_box + (size_t)r->ll_slot * LL_SLOT;
	if (r->shape.kind != COLL_BARRIER)
		memcpy(slot + LL_DATA_OFF, r->sendbuf, bytes);
	coll_sig_encode(r, slot);
	atomic_store_explicit(coll_ll_flag(slot), r->seq, memory_order_release);
	r->started = 1;
}

void coll_ll_advance(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	for (int p = 0; p < c->nranks; p++)
		if (atomic_load_explicit(coll_ll_flag(coll_ll_slot(c, p, r->ll_slot)),
					 memory_order_acquire) != r->seq)
			return;
	for (int p = 0; p < c->nranks && !r->status; p++)
		if (p != c->rank)
			coll_sig_compare(r, p, coll_ll_slot(c, p, r->ll_slot));
	if (r->status || r->shape.kind == COLL_BARRIER) {
		r->done = 1;
		return;
	}
	/* Rank order on every rank: the same bits everywhere. Inputs come
	 * from the mailboxes (ours too: in place, recvbuf is our input). */
	size_t count = r->shape.count;
	uint8_t *out = r->recvbuf;
	memcpy(out, coll_ll_slot(c, 0, r->ll_slot) + LL_DATA_OFF,
	       count * wccl_dtype_size(r->shape.dtype));
	int rc = 0;
	for (int p = 1; p < c->nranks && !rc; p++)
		rc = wccl_reduce_local(out, out,
				       coll_ll_slot(c, p, r->ll_slot) + LL_DATA_OFF,
				       count, r->shape.dtype, r->shape.op);
	if (!rc && r->shape.op == WCCL_AVG)
		rc = wccl_reduce_avg_finish(out, count, r->shape.dtype,
					    (uint32_t)c->nranks);
	if (rc)
		coll_request_fail(r, rc);
	r->done = 1;
}

int coll_ll_waiting_on(struct wccl_request *r, char *buf, size_t len,
		       int *never_called)
{
	struct wccl_comm *c = r->comm;
	for (int p = 0; p < c->nranks; p++) {
		if (p == c->rank ||
		    atomic_load_explicit(coll_ll_flag(coll_ll_slot(c, p, r->ll_slot)),
					 memory_order_acquire) == r->seq)
			continue;
		snprintf(buf, len, "rank %d (host %s), which never started it",
			 p, c->peers[p].info.hostname);
		*never_called = 1;
		return p;
	}
	snprintf(buf, len, "nobody (all mailboxes are in)");
	return -1;
}
