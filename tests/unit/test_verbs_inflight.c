/* SPDX-License-Identifier: MIT */
/* The verbs provider's bytes-in-flight accounting (verbs_inflight.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transport/verbs/verbs_inflight.h"

static void no_cap_never_waits(void **state)
{
	(void)state;
	struct verbs_inflight f = {0};
	for (int i = 0; i < 100; i++) {
		assert_true(verbs_inflight_may(&f, 1 << 20));
		verbs_inflight_add(&f, 1 << 20);
	}
	assert_int_equal(f.bytes, 100ull << 20);
	assert_int_equal(f.peak, 100ull << 20);
	assert_int_equal(f.waits, 0);
}

static void cap_holds_and_counts_waits(void **state)
{
	(void)state;
	struct verbs_inflight f = {.cap = 1000};
	assert_true(verbs_inflight_may(&f, 600));
	verbs_inflight_add(&f, 600);
	assert_true(verbs_inflight_may(&f, 400)); /* exactly the cap */
	verbs_inflight_add(&f, 400);
	assert_false(verbs_inflight_may(&f, 1));
	assert_false(verbs_inflight_may(&f, 1)); /* the same wait */
	assert_int_equal(f.waits, 1);
	verbs_inflight_done(&f, 600);
	assert_false(verbs_inflight_may(&f, 601));
	assert_int_equal(f.waits, 1); /* still the same stop */
	assert_true(verbs_inflight_may(&f, 600));
	verbs_inflight_add(&f, 600);
	assert_false(verbs_inflight_may(&f, 1));
	assert_int_equal(f.waits, 2);
	assert_int_equal(f.peak, 1000);
}

static void oversize_goes_alone(void **state)
{
	(void)state;
	/* An operation that cannot be cut goes when nothing is in flight,
	 * so it never waits forever; the peak then says so. */
	struct verbs_inflight f = {.cap = 1000};
	assert_true(verbs_inflight_may(&f, 5000));
	verbs_inflight_add(&f, 5000);
	assert_false(verbs_inflight_may(&f, 0 + 1));
	verbs_inflight_done(&f, 5000);
	assert_int_equal(f.bytes, 0);
	assert_int_equal(f.peak, 5000);
	verbs_inflight_done(&f, 7); /* never below zero */
	assert_int_equal(f.bytes, 0);
}

static void piece_len_shares(void **state)
{
	(void)state;
	/* No cap: an even share per QP, page-rounded (as before the cap). */
	assert_int_equal(verbs_piece_len(4 << 20, 16, 0), 256 << 10);
	assert_int_equal(verbs_piece_len((4 << 20) + 1, 16, 0),
			 (256 << 10) + 4096);
	assert_int_equal(verbs_piece_len(1, 4, 0), 4096);
	assert_int_equal(verbs_piece_len(8192, 0, 0), 8192);
	/* Under a cap: n pieces fit in it together. */
	assert_int_equal(verbs_piece_len(4 << 20, 16, 1 << 20), 64 << 10);
	assert_int_equal(verbs_piece_len(4 << 20, 16, (1 << 20) + 100),
			 64 << 10);
	assert_int_equal(verbs_piece_len(100 << 10, 4, 1 << 20), 28 << 10);
	assert_int_equal(verbs_piece_len(4 << 20, 16, 1000), 4096);
}

/* Issue 64 MiB of writes in pieces over 16 QPs under a 1 MiB cap, with
 * acknowledgements returning in random order and batches: the bytes in
 * flight never pass the cap, every byte goes, and the cap was felt. */
static void simulated_stripes_stay_under_cap(void **state)
{
	(void)state;
	const uint64_t cap = 1 << 20, msg = 4 << 20;
	const uint32_t n = 16;
	struct verbs_inflight f = {.cap = cap};
	uint64_t out[64], nout = 0, issued = 0, total = 16 * msg;
	uint64_t piece = verbs_piece_len(msg, n, cap);
	srand(7);
	while (issued < total || nout) {
		uint64_t left = msg - issued % msg;
		uint64_t l = left < piece ? left : piece;
		if (issued < total && nout < 64 && verbs_inflight_may(&f, l)) {
			verbs_inflight_add(&f, l);
			out[nout++] = l;
			issued += l;
			assert_true(f.bytes <= cap);
			continue;
		}
		/* Some acknowledgements: a random one and those before it
		 * on its QP, modelled as a random batch. */
		uint64_t k = 1 + (uint64_t)rand() % nout;
		for (uint64_t i = 0; i < k; i++) {
			uint64_t j = (uint64_t)rand() % nout;
			verbs_inflight_done(&f, out[j]);
			out[j] = out[--nout];
		}
	}
	assert_int_equal(issued, total);
	assert_int_equal(f.bytes, 0);
	assert_true(f.peak <= cap);
	assert_true(f.peak > cap - piece);
	assert_true(f.waits > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(no_cap_never_waits),
	    cmocka_unit_test(cap_holds_and_counts_waits),
	    cmocka_unit_test(oversize_goes_alone),
	    cmocka_unit_test(piece_len_shares),
	    cmocka_unit_test(simulated_stripes_stay_under_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
