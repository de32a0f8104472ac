/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_COST_MODEL_H
#define WCCL_COLLECTIVES_COST_MODEL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Alpha-beta cost model for choosing an allreduce algorithm. A message of
 * B bytes over a link of class c costs alpha[c] + B / bandwidth[c]. Each
 * algorithm is charged its step count times the slowest link class it
 * uses in a step (lock-step approximation; no contention, no overlap of
 * reduction with transfer, reduction cost ignored).
 */
enum wccl_link_class {
	WCCL_LINK_HOST,   /* same host */
	WCCL_LINK_REGION, /* same region, other host */
	WCCL_LINK_CROSS,  /* other region */
	WCCL_LINK_CLASSES
};

struct wccl_link_cost {
	double alpha_us;
	double gbytes_per_s;
};

struct wccl_cost_topology {
	int nranks;
	const int *region_of; /* region id per rank */
	const int *host_of;   /* host id per rank, or NULL: one rank per host */
	struct wccl_link_cost link[WCCL_LINK_CLASSES];
};

enum wccl_algo {
	WCCL_ALGO_RING,
	WCCL_ALGO_TREE,
	WCCL_ALGO_RHD,
	WCCL_ALGO_HIER,
	WCCL_ALGO_RD,
	WCCL_ALGO_COUNT
};

const char *wccl_algo_name(enum wccl_algo algo);

/* Predicted allreduce time in microseconds; < 0 on bad arguments. */
double wccl_cost_allreduce_us(const struct wccl_cost_topology *topo,
			      enum wccl_algo algo, uint64_t bytes);

/*
 * The algorithm with the lowest predicted time, and in 'reason' (if not
 * NULL) a line such as "hier: 12.3 ms predicted vs ring 15.1 ms, tree ...".
 * Returns the algorithm (>= 0) or WCCL_EINVAL.
 */
int wccl_cost_choose_allreduce(const struct wccl_cost_topology *topo,
			       uint64_t bytes, char *reason,
			       size_t reason_len);

#endif
