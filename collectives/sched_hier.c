/* SPDX-License-Identifier: MIT */
/*
 * Region-aware (hierarchical) allreduce; diagram and contract in
 * schedule.h. The groups are described without tables: a region's members
 * are found by scanning region_of, so the builder needs no storage that
 * grows with nranks.
 */
#include <wccl/errors.h>

#include "collectives/sched_build.h"

/* The group of ring members, either "the first M members of my region" or
 * "local index i in every region", turned into a small table per phase.
 * Tables are bounded by WCCL_SCHED_MAX_GROUP; larger groups are refused. */
#define WCCL_SCHED_MAX_GROUP 1024

struct layout {
	int nranks;
	const int *region_of;
	int my_region;
	int my_local;      /* our index among our region's members */
	int my_region_idx; /* our region's index among regions, by first rank */
	int nregions;
	int min_size; /* M */
};

/* Is 'rank' the first member of its region (regions are ordered by it)? */
static bool first_of_region(const int *region_of, int rank)
{
	for (int i = 0; i < rank; i++)
		if (region_of[i] == region_of[rank])
			return false;
	return true;
}

static int region_size(const struct layout *l, int region)
{
	int m = 0;
	for (int i = 0; i < l->nranks; i++)
		m += l->region_of[i] == region;
	return m;
}

/* The rank with local index 'local' in 'region', or -1. */
static int member(const struct layout *l, int region, int local)
{
	for (int i = 0; i < l->nranks; i++)
		if (l->region_of[i] == region && local-- == 0)
			return i;
	return -1;
}

static int describe(const struct wccl_sched_args *args, struct layout *l)
{
	l->nranks = args->nranks;
	l->region_of = args->region_of;
	l->my_region = args->region_of[args->rank];
	l->my_local = 0;
	for (int i = 0; i < args->rank; i++)
		l->my_local += args->region_of[i] == l->my_region;
	l->nregions = 0;
	l->min_size = args->nranks;
	l->my_region_idx = -1;
	for (int i = 0; i < args->nranks; i++) {
		if (args->region_of[i] < 0)
			return WCCL_EINVAL;
		if (!first_of_region(args->region_of, i))
			continue;
		if (args->region_of[i] == l->my_region)
			l->my_region_idx = l->nregions;
		l->nregions++;
		int m = region_size(l, args->region_of[i]);
		if (m < l->min_size)
			l->min_size = m;
	}
	if (l->nregions > WCCL_SCHED_MAX_GROUP ||
	    l->min_size > WCCL_SCHED_MAX_GROUP)
		return WCCL_EINVAL;
	return 0;
}

int wccl_sched_hier_allreduce(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps)
{
	if (!sched_args_ok(args) || !args->region_of)
		return WCCL_EINVAL;
	struct layout l;
	int err = describe(args, &l);
	if (err)
		return err;
	struct sched_out out = sched_out_init(steps, max_steps);
	if (args->nranks < 2 || args->count == 0)
		return sched_finish(&out, true);

	int M = l.min_size;
	int my_size = region_size(&l, l.my_region);
	struct wccl_block all = {0, args->count};
	uint64_t nc = sched_nchunks(args->count, args->chunk_bytes,
				    args->elem_size);

	/* 0. Fold extras (local index >= M) into holder (index mod M). */
	if (l.my_local >= M) {
		int holder = member(&l, l.my_region, l.my_local % M);
		sched_send_range(&out, holder, all, nc);
		sched_recv_range(&out, holder, all, nc, WCCL_RECV_COPY);
		return sched_finish(&out, true);
	}
	for (int x = l.my_local + M; x < my_size; x += M)
		sched_recv_range(&out, member(&l, l.my_region, x), all, nc,
				 WCCL_RECV_REDUCE);

	/* 1. Ring reduce-scatter among the M holders of our region. */
	int table[WCCL_SCHED_MAX_GROUP];
	for (int i = 0; i < M; i++)
		table[i] = member(&l, l.my_region, i);
	struct sched_group region = {table, M, l.my_local};
	sched_ring_reduce_scatter(&out, &region, all, args->chunk_bytes,
				  args->elem_size);

	/* 2. Ring allreduce of our shard among the holders of the same
	 * index in every region, regions ordered by their first rank. */
	int cross[WCCL_SCHED_MAX_GROUP];
	int k = 0;
	for (int i = 0; i < args->nranks; i++)
		if (first_of_region(args->region_of, i))
			cross[k++] = member(&l, args->region_of[i], l.my_local);
	struct sched_group shard_group = {cross, k, l.my_region_idx};
	struct wccl_block shard = wccl_sched_block(args->count, M, l.my_local);
	sched_ring_reduce_scatter(&out, &shard_group, shard, args->chunk_bytes,
				  args->elem_size);
	sched_ring_allgather(&out, &shard_group, shard, args->chunk_bytes,
			     args->elem_size);

	/* 3. Ring allgather among the region's holders. */
	sched_ring_allgather(&out, &region, all, args->chunk_bytes,
			     args->elem_size);

	/* 4. Hand the result back to our extras. */
	for (int x = l.my_local + M; x < my_size; x += M)
		sched_send_range(&out, member(&l, l.my_region, x), all, nc);
	return sched_finish(&out, true);
}
