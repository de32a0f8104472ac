/* SPDX-License-Identifier: MIT */
/* Allreduce cost model (collectives/cost_model.c) with handmade links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "collectives/cost_model.h"

/* Shared memory, a datacenter network, and a WAN at 40 ms RTT. */
static const struct wccl_link_cost links[WCCL_LINK_CLASSES] = {
	[WCCL_LINK_HOST] = {.alpha_us = 1, .gbytes_per_s = 20},
	[WCCL_LINK_REGION] = {.alpha_us = 10, .gbytes_per_s = 10},
	[WCCL_LINK_CROSS] = {.alpha_us = 20000, .gbytes_per_s = 1},
};

static struct wccl_cost_topology topo(int n, const int *region_of)
{
	struct wccl_cost_topology t = {.nranks = n, .region_of = region_of};
	memcpy(t.link, links, sizeof(links));
	return t;
}

static void tiny_messages_pick_a_log_algorithm(void **state)
{
	(void)state;
	int region[12] = {0};
	struct wccl_cost_topology t = topo(12, region);
	char why[256];
	int algo = wccl_cost_choose_allreduce(&t, 64, why, sizeof(why));
	print_message("64 B, 12 ranks: %s\n", why);
	assert_true(algo == WCCL_ALGO_TREE || algo == WCCL_ALGO_RHD ||
		    algo == WCCL_ALGO_RD);
	assert_true(strstr(why, " ms predicted vs ") != NULL);
}

static void large_messages_pick_ring(void **state)
{
	(void)state;
	int region[12] = {0};
	struct wccl_cost_topology t = topo(12, region);
	char why[256];
	int algo = wccl_cost_choose_allreduce(&t, 256 << 20, why, sizeof(why));
	print_message("256 MiB, 12 ranks: %s\n", why);
	assert_int_equal(algo, WCCL_ALGO_RING);
}

static void multi_region_large_picks_hierarchical(void **state)
{
	(void)state;
	int region[12] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2};
	struct wccl_cost_topology t = topo(12, region);
	char why[256];
	int algo = wccl_cost_choose_allreduce(&t, 256 << 20, why, sizeof(why));
	print_message("256 MiB, 3 regions: %s\n", why);
	assert_int_equal(algo, WCCL_ALGO_HIER);
	assert_true(strncmp(why, "hier: ", 6) == 0);
}

static void bad_topology(void **state)
{
	(void)state;
	struct wccl_cost_topology t = topo(4, NULL);
	assert_int_equal(wccl_cost_choose_allreduce(&t, 1, NULL, 0),
			 WCCL_EINVAL);
	int region[4] = {0};
	t = topo(4, region);
	t.link[WCCL_LINK_CROSS].gbytes_per_s = 0;
	assert_true(wccl_cost_allreduce_us(&t, WCCL_ALGO_RING, 1) < 0);
	assert_string_equal(wccl_algo_name(WCCL_ALGO_HIER), "hier");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tiny_messages_pick_a_log_algorithm),
		cmocka_unit_test(large_messages_pick_ring),
		cmocka_unit_test(multi_region_large_picks_hierarchical),
		cmocka_unit_test(bad_topology),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
