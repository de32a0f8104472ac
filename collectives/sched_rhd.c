/* SPDX-License-Identifier: MIT */
/*
 * Recursive halving-doubling (Rabenseifner) and recursive doubling
 * allreduce; diagrams and contract in schedule.h. They share the fold of
 * a non-power-of-two rank count. Blocks are the p-way split of the buffer,
 * so a window of consecutive blocks is one contiguous range.
 */
#include <wccl/errors.h>

#include "collectives/sched_build.h"

/* Elements [first block, last block) of the p-way split. */
static struct wccl_block window(uint64_t count, int p, int lo, int hi)
{
	struct wccl_block a = wccl_sched_block(count, p, lo);
	struct wccl_block b = wccl_sched_block(count, p, hi - 1);
	struct wccl_block w = {a.offset, b.offset + b.count - a.offset};
	return w;
}

/* Chunks per exchange of a window of @blocks blocks. It depends only on
 * the level, so both partners split alike and their k-th pieces match. */
static uint64_t level_chunks(const struct wccl_sched_args *args, int p,
			     int blocks)
{
	uint64_t max_block = wccl_sched_block(args->count, p, 0).count;
	return sched_nchunks(max_block * (uint64_t)blocks, args->chunk_bytes,
			     args->elem_size);
}

static int rhd_allreduce(const struct wccl_sched_args *args,
			 struct wccl_step *steps, size_t max_steps, bool whole)
{
	static const struct wccl_block none;
	if (!sched_args_ok(args))
		return WCCL_EINVAL;
	struct sched_out out = sched_out_init(steps, max_steps);
	int n = args->nranks, r = args->rank;
	if (n < 2 || args->count == 0)
		return sched_finish(&out, true);

	int p = 1;
	while (p * 2 <= n)
		p *= 2;
	int rem = n - p;
	struct wccl_block all = {0, args->count};

	/* Fold: the first 2*rem ranks pair up (even -> odd). */
	int newrank;
	if (r < 2 * rem) {
		if (r % 2 == 0) {
			sched_emit(&out, r + 1, all, -1, none,
				   WCCL_RECV_NONE);
			sched_emit(&out, -1, none, r + 1, all,
				   WCCL_RECV_COPY);
			return sched_finish(&out, true);
		}
		sched_emit(&out, -1, none, r - 1, all, WCCL_RECV_REDUCE);
		newrank = r / 2;
	} else {
		newrank = r - rem;
	}

	/* Recursive doubling: the whole buffer each time, reduced on both
	 * sides (the operations commute, so every rank gets the same bits). */
	for (int d = 1; whole && d < p; d *= 2) {
		int partner_new = newrank ^ d;
		int partner = partner_new < rem ? partner_new * 2 + 1
						: partner_new + rem;
		sched_emit(&out, partner, all, partner, all, WCCL_RECV_REDUCE);
	}

	/* Halving: window [lo, hi) of blocks shrinks to our own block. The
	 * largest halves travel first, at the largest distance. */
	int lo = 0, hi = p;
	for (int d = p / 2; !whole && d >= 1; d /= 2) {
		int partner_new = newrank ^ d;
		int partner = partner_new < rem ? partner_new * 2 + 1
						: partner_new + rem;
		int mid = lo + (hi - lo) / 2;
		bool keep_low = !(newrank & d);
		struct wccl_block keep = keep_low ? window(args->count, p, lo, mid)
						  : window(args->count, p, mid, hi);
		struct wccl_block give = keep_low ? window(args->count, p, mid, hi)
						  : window(args->count, p, lo, mid);
		uint64_t nc = level_chunks(args, p, d);
		for (uint64_t c = 0; c < nc; c++)
			sched_emit(&out, partner, sched_chunk(give, nc, c),
				   partner, sched_chunk(keep, nc, c),
				   WCCL_RECV_REDUCE);
		if (keep_low)
			hi = mid;
		else
			lo = mid;
	}

	/* Doubling: the reverse, each exchange doubling the window. */
	for (int d = 1; !whole && d < p; d *= 2) {
		int partner_new = newrank ^ d;
		int partner = partner_new < rem ? partner_new * 2 + 1
						: partner_new + rem;
		int size = hi - lo;
		bool we_are_low = !(newrank & d);
		int plo = we_are_low ? hi : lo - size;
		uint64_t nc = level_chunks(args, p, size);
		struct wccl_block mine = window(args->count, p, lo, hi);
		struct wccl_block theirs = window(args->count, p, plo, plo + size);
		for (uint64_t c = 0; c < nc; c++)
			sched_emit(&out, partner, sched_chunk(mine, nc, c),
				   partner, sched_chunk(theirs, nc, c),
				   WCCL_RECV_COPY);
		if (we_are_low)
			hi += size;
		else
			lo -= size;
	}

	/* Unfold: give the result back to the even partner. */
	if (r < 2 * rem)
		sched_emit(&out, r - 1, all, -1, none, WCCL_RECV_NONE);
	return sched_finish(&out, true);
}

int wccl_sched_rhd_allreduce(const struct wccl_sched_args *args,
			     struct wccl_step *steps, size_t max_steps)
{
	return rhd_allreduce(args, steps, max_steps, false);
}

int wccl_sched_rd_allreduce(const struct wccl_sched_args *args,
			    struct wccl_step *steps, size_t max_steps)
{
	return rhd_allreduce(args, steps, max_steps, true);
}
