/* SPDX-License-Identifier: MIT */
/*
 * Double binary tree allreduce (diagram in tree.h, contract in schedule.h).
 * Half h of the buffer travels on tree h. For each chunk, each tree: receive
 * and reduce from each child, then send to the parent; after all chunks are
 * reduced, the same walk in reverse broadcasts the result down.
 */
#include <wccl/errors.h>

#include "collectives/sched_build.h"
#include "collectives/tree.h"

int wccl_sched_tree_allreduce(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps)
{
	static const struct wccl_block none;
	if (!sched_args_ok(args))
		return WCCL_EINVAL;
	struct sched_out out = sched_out_init(steps, max_steps);
	if (args->nranks < 2 || args->count == 0)
		return sched_finish(&out, true);

	struct wccl_tree_node tree[2];
	wccl_double_btree(args->nranks, args->rank, tree);
	struct wccl_block half[2] = {wccl_sched_block(args->count, 2, 0),
				     wccl_sched_block(args->count, 2, 1)};
	uint64_t nc = sched_nchunks(half[0].count, args->chunk_bytes,
				    args->elem_size);

	for (uint64_t c = 0; c < nc; c++) {
		for (int t = 0; t < 2; t++) {
			struct wccl_block piece = sched_chunk(half[t], nc, c);
			for (int k = 0; k < 2; k++)
				if (tree[t].child[k] >= 0)
					sched_emit(&out, -1, none,
						   tree[t].child[k], piece,
						   WCCL_RECV_REDUCE);
			if (tree[t].parent >= 0)
				sched_emit(&out, tree[t].parent, piece, -1,
					   none, WCCL_RECV_NONE);
		}
	}
	for (uint64_t c = 0; c < nc; c++) {
		for (int t = 0; t < 2; t++) {
			struct wccl_block piece = sched_chunk(half[t], nc, c);
			if (tree[t].parent >= 0)
				sched_emit(&out, -1, none, tree[t].parent,
					   piece, WCCL_RECV_COPY);
			for (int k = 0; k < 2; k++)
				if (tree[t].child[k] >= 0)
					sched_emit(&out, tree[t].child[k],
						   piece, -1, none,
						   WCCL_RECV_NONE);
		}
	}
	return sched_finish(&out, true);
}
