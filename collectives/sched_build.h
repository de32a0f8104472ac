/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_SCHED_BUILD_H
#define WCCL_COLLECTIVES_SCHED_BUILD_H

/*
 * Internal helpers shared by the schedule builders. A builder writes through
 * a sched_out, which counts every step and stores the ones that fit, so one
 * code path both sizes and fills the caller's array.
 */
#include <stdbool.h>

#include "collectives/schedule.h"

struct sched_out {
	struct wccl_step *steps; /* NULL when only counting */
	size_t cap;
	size_t n; /* steps emitted so far, stored or not */
};

/* A set of ranks running a sub-algorithm; me is our index in the set.
 * ranks == NULL means the identity (index i is rank i), so the flat
 * schedules need no table of nranks entries. */
struct sched_group {
	const int *ranks;
	int size;
	int me;
};

static inline int sched_group_rank(const struct sched_group *g, int i)
{
	return g->ranks ? g->ranks[i] : i;
}

static inline struct sched_out sched_out_init(struct wccl_step *steps,
					      size_t cap)
{
	struct sched_out out = {.steps = steps, .cap = steps ? cap : 0};
	return out;
}

/* Append one step; a zero-length side is left out, an empty step dropped. */
void sched_emit(struct sched_out *out, int send_peer, struct wccl_block send,
		int recv_peer, struct wccl_block recv,
		enum wccl_recv_action action);

/* Set the dependency flags and turn the count into the return value. */
int sched_finish(struct sched_out *out, bool one_buffer);

/* Validate the common arguments. */
bool sched_args_ok(const struct wccl_sched_args *args);

/* Number of chunks a block of up to max_block elements moves in. */
uint64_t sched_nchunks(uint64_t max_block, uint64_t chunk_bytes,
		       size_t elem_size);

/* Piece c of nchunks of block b (the same split as wccl_sched_block). */
struct wccl_block sched_chunk(struct wccl_block b, uint64_t nchunks,
			      uint64_t c);

/* Ring phases over a group and a range of the buffer [offset, offset+len). */
void sched_ring_reduce_scatter(struct sched_out *out,
			       const struct sched_group *g,
			       struct wccl_block range, uint64_t chunk_bytes,
			       size_t elem_size);
void sched_ring_allgather(struct sched_out *out, const struct sched_group *g,
			  struct wccl_block range, uint64_t chunk_bytes,
			  size_t elem_size);

/* Whole-range transfer in chunks: to (send) or from (recv) one peer. */
void sched_send_range(struct sched_out *out, int peer, struct wccl_block range,
		      uint64_t nchunks);
void sched_recv_range(struct sched_out *out, int peer, struct wccl_block range,
		      uint64_t nchunks, enum wccl_recv_action action);

#endif
