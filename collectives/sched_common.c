/* SPDX-License-Identifier: MIT */
#include <wccl/errors.h>

#include "collectives/sched_build.h"

struct wccl_block wccl_sched_block(uint64_t count, int nblocks, int i)
{
	uint64_t n = (uint64_t)nblocks, idx = (uint64_t)i;
	uint64_t base = count / n, extra = count % n;
	struct wccl_block b = {
		.offset = idx * base + (idx < extra ? idx : extra),
		.count = base + (idx < extra ? 1 : 0),
	};
	return b;
}

void sched_emit(struct sched_out *out, int send_peer, struct wccl_block send,
		int recv_peer, struct wccl_block recv,
		enum wccl_recv_action action)
{
	static const struct wccl_block none;
	if (send.count == 0)
		send_peer = -1;
	if (recv.count == 0)
		recv_peer = -1;
	if (send_peer < 0 && recv_peer < 0)
		return;
	if (out->n < out->cap) {
		struct wccl_step *s = &out->steps[out->n];
		s->send_peer = send_peer;
		s->send = send_peer < 0 ? none : send;
		s->recv_peer = recv_peer;
		s->recv = recv_peer < 0 ? none : recv;
		s->recv_action = recv_peer < 0 ? WCCL_RECV_NONE : action;
		s->flags = 0;
	}
	out->n++;
}

static bool blocks_overlap(struct wccl_block a, struct wccl_block b)
{
	return a.count && b.count && a.offset < b.offset + b.count &&
	       b.offset < a.offset + a.count;
}

int sched_finish(struct sched_out *out, bool one_buffer)
{
	if (!out->steps)
		return (int)out->n;
	if (out->n > out->cap)
		return WCCL_ENOSPC;
	for (size_t i = 1; one_buffer && i < out->n; i++) {
		const struct wccl_step *prev = &out->steps[i - 1];
		struct wccl_step *s = &out->steps[i];
		if (s->send_peer >= 0 && prev->recv_peer >= 0 &&
		    blocks_overlap(s->send, prev->recv))
			s->flags |= WCCL_STEP_SEND_NEEDS_PREV_RECV;
	}
	return (int)out->n;
}

bool sched_args_ok(const struct wccl_sched_args *args)
{
	return args && args->nranks > 0 && args->rank >= 0 &&
	       args->rank < args->nranks && args->elem_size > 0;
}

uint64_t sched_nchunks(uint64_t max_block, uint64_t chunk_bytes,
		       size_t elem_size)
{
	if (chunk_bytes == 0 || max_block == 0)
		return 1;
	uint64_t chunk = chunk_bytes / elem_size;
	if (chunk == 0)
		chunk = 1;
	return (max_block + chunk - 1) / chunk;
}

struct wccl_block sched_chunk(struct wccl_block b, uint64_t nchunks,
			      uint64_t c)
{
	uint64_t base = b.count / nchunks, extra = b.count % nchunks;
	struct wccl_block piece = {
		.offset = b.offset + c * base + (c < extra ? c : extra),
		.count = base + (c < extra ? 1 : 0),
	};
	return piece;
}

void sched_send_range(struct sched_out *out, int peer, struct wccl_block range,
		      uint64_t nchunks)
{
	static const struct wccl_block none;
	for (uint64_t c = 0; c < nchunks; c++)
		sched_emit(out, peer, sched_chunk(range, nchunks, c), -1, none,
			   WCCL_RECV_NONE);
}

void sched_recv_range(struct sched_out *out, int peer, struct wccl_block range,
		      uint64_t nchunks, enum wccl_recv_action action)
{
	static const struct wccl_block none;
	for (uint64_t c = 0; c < nchunks; c++)
		sched_emit(out, -1, none, peer, sched_chunk(range, nchunks, c),
			   action);
}
