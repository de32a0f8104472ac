/* SPDX-License-Identifier: MIT */
/*
 * Plans: a schedule plus the memory to run it, built on the first call of
 * a shape and reused after, so a collective run allocates nothing. The
 * cache is small and least-recently-used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_exec.h"
#include "coll_plan.h"
#include "comm_internal.h"
#include "collectives/dtype.h"
#include "core/log.h"
#include "core/params.h"

#define STAGE_BUDGET (64u << 20) /* bytes of staging per plan, at most */
#define STAGE_MAX_SLOTS 8

typedef int (*sched_fn)(const struct wccl_sched_args *, struct wccl_step *,
			size_t);

static const char *const kind_names[COLL_KIND_COUNT] = {
	[COLL_ALLREDUCE] = "allreduce",
	[COLL_BROADCAST] = "broadcast",
	[COLL_REDUCE] = "reduce",
	[COLL_ALLGATHER] = "allgather",
	[COLL_REDUCE_SCATTER] = "reduce_scatter",
	[COLL_ALLTOALL] = "alltoall",
	[COLL_BARRIER] = "barrier",
	[COLL_SEND] = "send",
	[COLL_RECV] = "recv",
};

const char *coll_kind_name(uint32_t kind)
{
	return kind < COLL_KIND_COUNT ? kind_names[kind] : "?";
}

static void plan_release(struct coll_plan *p)
{
	free(p->steps);
	free(p->state);
	wccl_mem_free(p->stage);
	wccl_mem_free(p->work);
	free(p->sig_send_peers);
	free(p->sig_recv_peers);
	free(p->sig_inline);
	free(p->step_sig);
	free(p->sig_late);
	free(p->seg_bound);
	free(p->seg_in_out);
	memset(p, 0, sizeof(*p));
}

void comm_free_plans(struct wccl_comm *c)
{
	for (int i = 0; i < COMM_PLAN_CACHE; i++)
		if (c->plans[i].in_use)
			plan_release(&c->plans[i]);
}

static int parse_algo(const char *s)
{
	for (int a = 0; a < WCCL_ALGO_COUNT; a++)
		if (strcmp(s, wccl_algo_name(a)) == 0)
			return a;
	return -1;
}

/* Allreduce: WCCL_ALGO if set, else the cost model's choice. */
static int choose_allreduce(struct wccl_comm *c, struct coll_plan *p,
			    uint64_t bytes)
{
	const char *force = wccl_param_str(WCCL_PARAM_ALGO);
	if (*force) {
		int a = parse_algo(force);
		if (a >= 0) {
			snprintf(p->why, sizeof(p->why), "WCCL_ALGO=%s", force);
			return a;
		}
		WCCL_WARN(WCCL_SUB_TUNER,
			  "WCCL_ALGO='%s' is not ring, tree, rhd, rd or hier; "
			  "choosing by cost",
			  force);
	}
	int a = wccl_cost_choose_allreduce(&c->topo, bytes, p->why,
					   sizeof(p->why));
	return a < 0 ? WCCL_ALGO_RING : a;
}

static sched_fn pick_schedule(struct wccl_comm *c, struct coll_plan *p)
{
	static const sched_fn allreduce[WCCL_ALGO_COUNT] = {
		[WCCL_ALGO_RING] = wccl_sched_ring_allreduce,
		[WCCL_ALGO_TREE] = wccl_sched_tree_allreduce,
		[WCCL_ALGO_RHD] = wccl_sched_rhd_allreduce,
		[WCCL_ALGO_HIER] = wccl_sched_hier_allreduce,
		[WCCL_ALGO_RD] = wccl_sched_rd_allreduce,
	};
	p->algo = -1;
	switch (p->shape.kind) {
	case COLL_ALLREDUCE:
		p->algo = choose_allreduce(c, p, p->elems * p->elem_size);
		return allreduce[p->algo];
	case COLL_BARRIER:
		return wccl_sched_rd_allreduce;
	case COLL_BROADCAST:
		return wccl_sched_chain_broadcast;
	case COLL_REDUCE:
		return wccl_sched_chain_reduce;
	case COLL_ALLGATHER:
		return wccl_sched_ring_allgather;
	case COLL_REDUCE_SCATTER:
		return wccl_sched_ring_reduce_scatter;
	case COLL_ALLTOALL:
		return wccl_sched_alltoall;
	default:
		return NULL;
	}
}

static int add_peer(int *list, int *n, int peer)
{
	for (int i = 0; i < *n; i++)
		if (list[i] == peer)
			return 0;
	list[(*n)++] = peer;
	return 1;
}

/* Pipeline chunk: WCCL_CHUNK_BYTES, or (0, the default) a quarter of a
 * rank's block in powers of two, 256..512 KiB. With two ranks at 2 MiB,
 * 512 KiB chunks left each 1 MiB block in two pieces and little to
 * overlap: 582-715 us against Open MPI's 406-627 in the same loop, 256
 * KiB chunks 441-661 (uring, loopback); from 8 MiB up both sizes tie. */
static uint64_t pick_chunk(const struct wccl_comm *c, uint64_t bytes)
{
	int64_t set = wccl_param_int(WCCL_PARAM_CHUNK_BYTES);
	if (set > 0)
		return (uint64_t)set;
	uint64_t want = bytes / (uint64_t)c->nranks / 4, chunk = 256 << 10;
	while (chunk < (512 << 10) && chunk * 2 <= want)
		chunk *= 2;
	return chunk;
}

/*
 * Does @peer's signature for us ride in a message it sends only after
 * receiving something? Its schedule is a pure function of the same
 * arguments: build it and find its first send to us. The answer errs
 * towards "late" (then a timeout names nobody as never having started).
 */
static int peer_sig_late(struct wccl_comm *c, sched_fn fn,
			 const struct wccl_sched_args *a, int peer)
{
	struct wccl_sched_args pa = *a;
	pa.rank = peer;
	int n = fn(&pa, NULL, 0);
	if (n <= 0)
		return 1;
	struct wccl_step *st = calloc((size_t)n, sizeof(*st));
	if (!st)
		return 1;
	int late = 1, recv_before = 0;
	if (fn(&pa, st, (size_t)n) == n) {
		for (int i = 0; i < n; i++) {
			if (st[i].send_peer == c->rank) {
				late = recv_before &&
				       coll_eager_on(c, st[i].send.count *
							       a->elem_size);
				break;
			}
			if (st[i].recv_peer >= 0)
				recv_before = 1;
		}
	}
	free(st);
	return late;
}

/*
 * With eager messages, a signature needs no message of its own when our
 * first message to the peer is eager: it goes in front of that message's
 * data. At 4 ranks recursive doubling then sends 2 messages per call, not
 * 3 (the second partner's signature went alone, ahead of the data).
 */
static int plan_sig_inline(struct wccl_comm *c, struct coll_plan *p,
			   sched_fn fn, const struct wccl_sched_args *a)
{
	p->sig_inline = calloc((size_t)c->nranks, 1);
	p->sig_late = calloc((size_t)c->nranks, 1);
	p->step_sig = calloc((size_t)p->nsteps + 1, 1);
	if (!p->sig_inline || !p->sig_late || !p->step_sig)
		return WCCL_ENOMEM;
	if (!c->eager || !fn)
		return 0;
	for (int k = 0; k < p->n_sig_send; k++) {
		int i = 0;
		while (p->steps[i].send_peer != p->sig_send_peers[k])
			i++;
		if (coll_eager_on(c, p->steps[i].send.count * p->elem_size)) {
			p->sig_inline[k] = 1;
			p->step_sig[i] = 1;
		}
	}
	for (int k = 0; k < p->n_sig_recv; k++)
		p->sig_late[k] = (uint8_t)peer_sig_late(c, fn, a,
							p->sig_recv_peers[k]);
	return 0;
}

static int build(struct wccl_comm *c, struct coll_plan *p)
{
	const struct coll_shape *sh = &p->shape;
	p->elem_size = sh->kind == COLL_BARRIER ? 1 : wccl_dtype_size(sh->dtype);
	p->elems = sh->count;
	if (sh->kind == COLL_ALLGATHER || sh->kind == COLL_REDUCE_SCATTER)
		p->elems = sh->count * (uint64_t)c->nranks;
	if (sh->kind == COLL_BARRIER)
		p->elems = 1;
	int rc = 0;
	sched_fn fn = NULL;
	struct wccl_sched_args a = { 0 };
	p->ll = coll_ll_eligible(c, sh);
	if (p->ll) {
		p->algo = -1;
		snprintf(p->why, sizeof(p->why),
			 "%llu bytes, all ranks on one host: shared mailboxes",
			 (unsigned long long)(p->elems * p->elem_size));
		p->steps = calloc(1, sizeof(*p->steps));
		if (!p->steps)
			return WCCL_ENOMEM;
	} else {
		p->direct = coll_direct_eligible(c, sh);
		a = (struct wccl_sched_args){
			.nranks = c->nranks,
			.rank = c->rank,
			.count = sh->kind == COLL_ALLTOALL ? sh->count : p->elems,
			.elem_size = p->elem_size,
			.chunk_bytes = pick_chunk(c, p->elems * p->elem_size),
			.root = sh->root,
			.region_of = c->region_of,
		};
		fn = pick_schedule(c, p);
		rc = fn(&a, NULL, 0);
		if (rc >= 0) {
			p->nsteps = rc;
			p->steps = calloc((size_t)rc + 1, sizeof(*p->steps));
			rc = p->steps ? fn(&a, p->steps, (size_t)rc)
				      : WCCL_ENOMEM;
		}
		if (rc >= 0)
			rc = 0;
	}
	if (rc)
		return rc;

	p->state = calloc((size_t)p->nsteps + 1, sizeof(*p->state));
	p->sig_send_peers = calloc((size_t)c->nranks, sizeof(int));
	p->sig_recv_peers = calloc((size_t)c->nranks, sizeof(int));
	if (!p->state || !p->sig_send_peers || !p->sig_recv_peers)
		return WCCL_ENOMEM;
	size_t slot = 0;
	for (int i = 0; i < p->nsteps; i++) {
		const struct wccl_step *s = &p->steps[i];
		if (s->send_peer >= 0 && s->send_peer != c->rank)
			add_peer(p->sig_send_peers, &p->n_sig_send,
				 s->send_peer);
		if (s->recv_peer >= 0 && s->recv_peer != c->rank)
			add_peer(p->sig_recv_peers, &p->n_sig_recv,
				 s->recv_peer);
		if (s->recv_action == WCCL_RECV_REDUCE &&
		    s->recv.count * p->elem_size > slot)
			slot = s->recv.count * p->elem_size;
	}
	rc = plan_sig_inline(c, p, fn, &a);
	if (rc)
		return rc;
	if (slot) {
		p->stage_slot_bytes = (slot + 63) & ~(size_t)63;
		size_t n = STAGE_BUDGET / p->stage_slot_bytes;
		p->stage_slots = n < 1 ? 1 : n > STAGE_MAX_SLOTS ? STAGE_MAX_SLOTS
								: (int)n;
		/* Shareable memory: sends from it reach same-host peers in
		 * one memcpy. */
		size_t bytes = p->stage_slot_bytes * (size_t)p->stage_slots;
		if (wccl_mem_alloc(bytes, (void **)&p->stage) ||
		    wccl_mem_find(p->stage, bytes, &p->stage_span))
			return WCCL_ENOMEM;
	}
	/* Where the caller's buffers can't be the schedule's buffer. */
	if (sh->kind == COLL_REDUCE || sh->kind == COLL_REDUCE_SCATTER ||
	    sh->kind == COLL_BARRIER)
		p->work_bytes = p->elems * p->elem_size;
	if (sh->kind == COLL_ALLTOALL)
		p->work_bytes = sh->count * (uint64_t)c->nranks * p->elem_size;
	if (p->work_bytes) {
		if (wccl_mem_alloc(p->work_bytes, (void **)&p->work))
			return WCCL_ENOMEM;
	}
	if (sh->kind == COLL_ALLREDUCE)
		return coll_lazy_plan(p);
	return 0;
}

struct coll_plan *coll_plan_get(struct wccl_comm *c,
				const struct coll_shape *shape, int *err)
{
	struct coll_plan *victim = &c->plans[0];
	for (int i = 0; i < COMM_PLAN_CACHE; i++) {
		struct coll_plan *p = &c->plans[i];
		if (p->in_use && memcmp(&p->shape, shape, sizeof(*shape)) == 0) {
			p->last_use = ++c->plan_clock;
			return p;
		}
		if (!p->in_use || (victim->in_use &&
				   p->last_use < victim->last_use))
			victim = p;
	}
	/* Evicting a plan a queued request still uses would be a bug. */
	for (struct wccl_request *r = c->head; r; r = r->next)
		if (r->plan == victim) {
			*err = WCCL_EBUSY;
			return NULL;
		}
	if (victim->in_use)
		plan_release(victim);
	victim->shape = *shape;
	victim->in_use = 1;
	victim->last_use = ++c->plan_clock;
	int rc = build(c, victim);
	if (rc) {
		plan_release(victim);
		*err = rc;
		return NULL;
	}
	if (victim->algo >= 0)
		WCCL_INFO(WCCL_SUB_TUNER,
			  "rank %d: %s of %llu x %s: %s (%s), %d steps",
			  c->rank, coll_kind_name(shape->kind),
			  (unsigned long long)shape->count,
			  wccl_dtype_name(shape->dtype),
			  wccl_algo_name(victim->algo), victim->why,
			  victim->nsteps);
	return victim;
}
