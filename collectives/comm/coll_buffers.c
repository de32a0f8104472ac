/* SPDX-License-Identifier: MIT */
/*
 * Which memory each collective's schedule works on, and the copies in and
 * out that the buffer model needs (schedules work in place on one buffer).
 */
#include <string.h>

#include "coll_exec.h"
#include "collectives/reduce.h"

int coll_prepare_buffers(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	size_t es = p->elem_size;
	size_t bytes = r->shape.count * es;
	const uint8_t *in = r->sendbuf;
	uint8_t *out = r->recvbuf;
	switch (r->shape.kind) {
	case COLL_ALLREDUCE:
		r->buf = out;
		if (in != out && bytes)
			coll_lazy_start(r, in);
		break;
	case COLL_BROADCAST:
		r->buf = out;
		if (c->rank == r->shape.root && in != out && bytes)
			memcpy(out, in, bytes);
		break;
	case COLL_REDUCE:
		/* Non-roots end with partial sums: never in their buffers. */
		r->buf = c->rank == r->shape.root ? out : p->work;
		if (r->buf != in && bytes)
			memcpy(r->buf, in, bytes);
		break;
	case COLL_ALLGATHER:
		r->buf = out;
		if (in != out + (size_t)c->rank * bytes && bytes)
			memmove(out + (size_t)c->rank * bytes, in, bytes);
		break;
	case COLL_REDUCE_SCATTER:
		r->buf = p->work;
		if (p->work_bytes)
			memcpy(p->work, in, p->work_bytes);
		break;
	case COLL_ALLTOALL:
		r->buf = out;
		/* In place: the sends must read the original data. */
		if (in == out && p->work_bytes) {
			memcpy(p->work, in, p->work_bytes);
			in = p->work;
		}
		break;
	case COLL_BARRIER:
		r->buf = p->work;
		p->work[0] = 1;
		break;
	default:
		return WCCL_EINVAL;
	}
	r->send_base = r->shape.kind == COLL_ALLTOALL ? (uint8_t *)(uintptr_t)in
						      : r->buf;
	return 0;
}

int coll_finish_buffers(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *p = r->plan;
	size_t es = p->elem_size;
	int avg = r->shape.op == WCCL_AVG;
	switch (r->shape.kind) {
	case COLL_ALLREDUCE:
		coll_lazy_finish(r);
		if (avg)
			return wccl_reduce_avg_finish(r->buf, r->shape.count,
						      r->shape.dtype,
						      (uint32_t)c->nranks);
		break;
	case COLL_REDUCE:
		if (avg && c->rank == r->shape.root)
			return wccl_reduce_avg_finish(r->buf, r->shape.count,
						      r->shape.dtype,
						      (uint32_t)c->nranks);
		break;
	case COLL_REDUCE_SCATTER: {
		size_t bytes = r->shape.count * es;
		uint8_t *mine = p->work + (size_t)c->rank * bytes;
		if (bytes)
			memcpy(r->recvbuf, mine, bytes);
		if (avg)
			return wccl_reduce_avg_finish(r->recvbuf,
						      r->shape.count,
						      r->shape.dtype,
						      (uint32_t)c->nranks);
		break;
	}
	default:
		break;
	}
	return 0;
}
