/* SPDX-License-Identifier: MIT */
/* Pairwise-exchange alltoall; contract in schedule.h. */
#include <wccl/errors.h>

#include "collectives/sched_build.h"

int wccl_sched_alltoall(const struct wccl_sched_args *args,
			struct wccl_step *steps, size_t max_steps)
{
	if (!sched_args_ok(args))
		return WCCL_EINVAL;
	struct sched_out out = sched_out_init(steps, max_steps);
	int n = args->nranks, r = args->rank;
	uint64_t per = args->count;
	for (int s = 0; s < n; s++) {
		int to = (r + s) % n, from = (r - s + n) % n;
		struct wccl_block sb = {(uint64_t)to * per, per};
		struct wccl_block rb = {(uint64_t)from * per, per};
		sched_emit(&out, to, sb, from, rb, WCCL_RECV_COPY);
	}
	/* Send and receive buffers differ: no dependency between steps. */
	return sched_finish(&out, false);
}
