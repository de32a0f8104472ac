/* SPDX-License-Identifier: MIT */
/*
 * Ring and chain schedules. Diagrams and contracts are in schedule.h.
 */
#include <wccl/errors.h>

#include "collectives/sched_build.h"

/* Block j of the group's range (the n-way split, shifted by the range). */
static struct wccl_block range_block(struct wccl_block range, int n, int j)
{
	struct wccl_block b = wccl_sched_block(range.count, n, j);
	b.offset += range.offset;
	return b;
}

static int mod(int x, int n)
{
	return ((x % n) + n) % n;
}

/* One ring pass of n-1 steps. 'first' picks which block a rank sends in
 * step 0: its left neighbour's block (me-1) for reduce-scatter, so it ends
 * owning block me; its own block (me) for allgather. */
static void ring_pass(struct sched_out *out, const struct sched_group *g,
		      struct wccl_block range, uint64_t chunk_bytes,
		      size_t elem_size, int first, enum wccl_recv_action action)
{
	int n = g->size;
	if (n < 2 || range.count == 0)
		return;
	int next = sched_group_rank(g, mod(g->me + 1, n));
	int prev = sched_group_rank(g, mod(g->me - 1, n));
	/* Every block moves in the same number of chunks, so the k-th chunk
	 * a rank sends is the k-th its neighbour expects. */
	uint64_t max_block = range_block(range, n, 0).count;
	uint64_t nc = sched_nchunks(max_block, chunk_bytes, elem_size);
	for (int s = 0; s < n - 1; s++) {
		struct wccl_block sb = range_block(range, n, mod(first - s, n));
		struct wccl_block rb =
			range_block(range, n, mod(first - s - 1, n));
		for (uint64_t c = 0; c < nc; c++)
			sched_emit(out, next, sched_chunk(sb, nc, c), prev,
				   sched_chunk(rb, nc, c), action);
	}
}

void sched_ring_reduce_scatter(struct sched_out *out,
			       const struct sched_group *g,
			       struct wccl_block range, uint64_t chunk_bytes,
			       size_t elem_size)
{
	ring_pass(out, g, range, chunk_bytes, elem_size, g->me - 1,
		  WCCL_RECV_REDUCE);
}

void sched_ring_allgather(struct sched_out *out, const struct sched_group *g,
			  struct wccl_block range, uint64_t chunk_bytes,
			  size_t elem_size)
{
	ring_pass(out, g, range, chunk_bytes, elem_size, g->me,
		  WCCL_RECV_COPY);
}

enum ring_phases { RING_RS = 1, RING_AG = 2 };

static int flat_ring(const struct wccl_sched_args *args,
		     struct wccl_step *steps, size_t max_steps, int phases)
{
	if (!sched_args_ok(args))
		return WCCL_EINVAL;
	struct sched_out out = sched_out_init(steps, max_steps);
	struct sched_group all_ranks = {NULL, args->nranks, args->rank};
	struct wccl_block all = {0, args->count};
	if (phases & RING_RS)
		sched_ring_reduce_scatter(&out, &all_ranks, all,
					  args->chunk_bytes, args->elem_size);
	if (phases & RING_AG)
		sched_ring_allgather(&out, &all_ranks, all, args->chunk_bytes,
				     args->elem_size);
	return sched_finish(&out, true);
}

int wccl_sched_ring_reduce_scatter(const struct wccl_sched_args *args,
				   struct wccl_step *steps, size_t max_steps)
{
	return flat_ring(args, steps, max_steps, RING_RS);
}

int wccl_sched_ring_allgather(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps)
{
	return flat_ring(args, steps, max_steps, RING_AG);
}

int wccl_sched_ring_allreduce(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps)
{
	return flat_ring(args, steps, max_steps, RING_RS | RING_AG);
}

/* Chain position p = distance from the root along the chain. In step t a
 * middle rank receives chunk t from upstream and forwards chunk t-1 down,
 * so the two blocks of a step never overlap. 'toward_root' reverses the
 * flow for reduce: upstream is p+1 and the root is the end of the chain. */
static int chain(const struct wccl_sched_args *args, struct wccl_step *steps,
		 size_t max_steps, bool toward_root)
{
	static const struct wccl_block none;
	if (!sched_args_ok(args) || args->root < 0 ||
	    args->root >= args->nranks)
		return WCCL_EINVAL;
	struct sched_out out = sched_out_init(steps, max_steps);
	int n = args->nranks;
	int p = mod(args->rank - args->root, n);
	struct wccl_block all = {0, args->count};
	uint64_t nc = sched_nchunks(args->count, args->chunk_bytes,
				    args->elem_size);
	if (n < 2 || args->count == 0)
		return sched_finish(&out, true);

	/* Chain ends: 'head' only sends, 'tail' only receives. */
	int head = toward_root ? n - 1 : 0;
	int tail = toward_root ? 0 : n - 1;
	int up = toward_root ? p + 1 : p - 1;   /* we receive from here */
	int down = toward_root ? p - 1 : p + 1; /* we send to here */
	int up_rank = mod(args->root + up, n);
	int down_rank = mod(args->root + down, n);
	enum wccl_recv_action action =
		toward_root ? WCCL_RECV_REDUCE : WCCL_RECV_COPY;

	if (p == head) {
		sched_send_range(&out, down_rank, all, nc);
	} else if (p == tail) {
		sched_recv_range(&out, up_rank, all, nc, action);
	} else {
		for (uint64_t t = 0; t <= nc; t++) {
			struct wccl_block rb =
				t < nc ? sched_chunk(all, nc, t) : none;
			struct wccl_block sb =
				t > 0 ? sched_chunk(all, nc, t - 1) : none;
			sched_emit(&out, down_rank, sb, up_rank, rb, action);
		}
	}
	return sched_finish(&out, true);
}

int wccl_sched_chain_broadcast(const struct wccl_sched_args *args,
			       struct wccl_step *steps, size_t max_steps)
{
	return chain(args, steps, max_steps, false);
}

int wccl_sched_chain_reduce(const struct wccl_sched_args *args,
			    struct wccl_step *steps, size_t max_steps)
{
	return chain(args, steps, max_steps, true);
}
