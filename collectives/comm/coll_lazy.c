/* SPDX-License-Identifier: MIT */
/*
 * Out-of-place allreduce without the up-front copy of the input into the
 * output. Schedules work in place on one buffer (the output); instead of
 * copying the whole input there first, each stretch of the output is
 * brought in the first time the schedule touches it:
 *   - a send of a stretch not yet touched reads the input directly;
 *   - a reduction into it reads the input and writes the output
 *     (out = in + received) in the same pass;
 *   - a receive that overwrites it needs nothing (the segments count as
 *     held once its step is finished: marking them when it is posted
 *     would let an earlier step's send read the output before the data
 *     lands);
 *   - whatever is still untouched at the end is copied then.
 * That saves one full pass over the buffer (a memcpy of the whole
 * message) for every out-of-place allreduce.
 *
 * "Stretches" are the segments between all block boundaries of the plan's
 * steps, so every block is a whole number of segments; one byte per
 * segment says whether the output holds it yet.
 */
#include <stdlib.h>
#include <string.h>

#include "coll_exec.h"
#include "collectives/reduce.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int coll_lazy_plan(struct coll_plan *p)
{
	size_t cap = 4 * (size_t)p->nsteps + 2, n = 0;
	uint64_t *b = malloc(cap * sizeof(*b));
	if (!b)
		return WCCL_ENOMEM;
	b[n++] = 0;
	b[n++] = p->elems;
	for (int i = 0; i < p->nsteps; i++) {
		const struct wccl_step *s = &p->steps[i];
		if (s->send_peer >= 0 && s->send.count) {
			b[n++] = s->send.offset;
			b[n++] = s->send.offset + s->send.count;
		}
		if (s->recv_peer >= 0 && s->recv.count) {
			b[n++] = s->recv.offset;
			b[n++] = s->recv.offset + s->recv.count;
		}
	}
	qsort(b, n, sizeof(*b), cmp_u64);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || b[i] != b[u - 1])
			b[u++] = b[i];
	p->seg_bound = b;
	p->nseg = (uint32_t)(u - 1);
	p->seg_in_out = calloc(p->nseg ? p->nseg : 1, 1);
	return p->seg_in_out ? 0 : WCCL_ENOMEM;
}

/* The segment starting at element @off (always a boundary). */
static uint32_t seg_at(const struct coll_plan *p, uint64_t off)
{
	uint32_t lo = 0, hi = p->nseg;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (p->seg_bound[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void coll_lazy_start(struct wccl_request *r, const uint8_t *in)
{
	r->lazy_in = in;
	memset(r->plan->seg_in_out, 0, r->plan->nseg);
}

/* Copy the segments of @b the output does not hold yet. */
static void fill(struct wccl_request *r, struct wccl_block b)
{
	struct coll_plan *p = r->plan;
	size_t es = p->elem_size;
	uint64_t end = b.offset + b.count;
	for (uint32_t s = seg_at(p, b.offset);
	     s < p->nseg && p->seg_bound[s] < end; s++) {
		if (p->seg_in_out[s])
			continue;
		uint64_t o = p->seg_bound[s], n = p->seg_bound[s + 1] - o;
		memcpy(r->buf + o * es, r->lazy_in + o * es, n * es);
		p->seg_in_out[s] = 1;
	}
}

const uint8_t *coll_lazy_send_src(struct wccl_request *r, struct wccl_block b,
				  int *from_input)
{
	struct coll_plan *p = r->plan;
	size_t es = p->elem_size;
	*from_input = 0;
	if (!r->lazy_in || !b.count)
		return r->buf + b.offset * es;
	uint64_t end = b.offset + b.count;
	int any = 0, all = 1;
	for (uint32_t s = seg_at(p, b.offset);
	     s < p->nseg && p->seg_bound[s] < end; s++) {
		any |= p->seg_in_out[s];
		all &= p->seg_in_out[s];
	}
	if (!any) {
		*from_input = 1;
		return r->lazy_in + b.offset * es;
	}
	if (!all)
		fill(r, b);
	return r->buf + b.offset * es;
}

void coll_lazy_overwritten(struct wccl_request *r, struct wccl_block b)
{
	struct coll_plan *p = r->plan;
	if (!r->lazy_in || !b.count)
		return;
	uint64_t end = b.offset + b.count;
	for (uint32_t s = seg_at(p, b.offset);
	     s < p->nseg && p->seg_bound[s] < end; s++)
		p->seg_in_out[s] = 1;
}

int coll_lazy_reduce(struct wccl_request *r, struct wccl_block b,
		     const uint8_t *staged)
{
	struct coll_plan *p = r->plan;
	size_t es = p->elem_size;
	uint8_t *dst = r->buf + b.offset * es;
	if (!r->lazy_in)
		return wccl_reduce_local(dst, dst, staged, b.count,
					 r->shape.dtype, r->shape.op);
	/* Runs of segments alike: one kernel call per run. */
	uint64_t end = b.offset + b.count;
	uint32_t s = seg_at(p, b.offset);
	while (s < p->nseg && p->seg_bound[s] < end) {
		uint8_t held = p->seg_in_out[s];
		uint32_t e = s;
		while (e < p->nseg && p->seg_bound[e] < end &&
		       p->seg_in_out[e] == held)
			p->seg_in_out[e++] = 1;
		uint64_t o = p->seg_bound[s], n = p->seg_bound[e] - o;
		const uint8_t *a = held ? r->buf : r->lazy_in;
		int rc = wccl_reduce_local(r->buf + o * es, a + o * es,
					   staged + (o - b.offset) * es, n,
					   r->shape.dtype, r->shape.op);
		if (rc)
			return rc;
		s = e;
	}
	return 0;
}

void coll_lazy_finish(struct wccl_request *r)
{
	if (!r->lazy_in)
		return;
	fill(r, (struct wccl_block){ .offset = 0, .count = r->plan->elems });
	r->lazy_in = NULL;
}
