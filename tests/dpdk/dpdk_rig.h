/* SPDX-License-Identifier: MIT */
#ifndef WCCL_TEST_DPDK_RIG_H
#define WCCL_TEST_DPDK_RIG_H

/*
 * A dpdk context and one connection as plain structs, no EAL: the rig of
 * the unit tests of the provider's rules (test_dpdk_stall, test_dpdk_loss).
 * Zeroed, linked to each other, the clock at 1 s. Include after cmocka.h.
 */
#include <stdlib.h>

#include "transport/dpdk/dpdk.h"

struct rig {
	struct dpdk_ctx *ctx;
	struct dpdk_ep *ep;
};

static inline struct rig rig_alloc(void)
{
	struct rig r = { calloc(1, sizeof(*r.ctx)), calloc(1, sizeof(*r.ep)) };
	assert_non_null(r.ctx);
	assert_non_null(r.ep);
	r.ep->ctx = r.ctx;
	r.ctx->now = 1000000000ull;
	return r;
}

static inline void rig_free(struct rig *r)
{
	free(r->ep->pkts);
	free(r->ep);
	free(r->ctx);
}

#endif
