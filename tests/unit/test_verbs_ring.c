/* SPDX-License-Identifier: MIT */
/* The verbs provider's ringing of batched chains (verbs_ring_dirty): a
 * chain on a dead QP must wait for the QP's older WRs to flush without
 * spinning, then retire as flushed. No device needed: a dead QP is never
 * handed to the HCA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transport/verbs/verbs.h"

struct bed {
	struct verbs_ctx ctx;
	struct verbs_ep ep;
	struct verbs_sqe sqe[2][8];
};

/* Endpoint with two data QPs, each with one WR on the wire (posted and
 * rung, not completed) and one control message chained after it. */
static struct bed *bed_new(void)
{
	struct bed *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	b->ep.ctx = &b->ctx;
	b->ep.state = VERBS_EP_READY;
	b->ep.nqps = 3;
	for (uint32_t i = 1; i < 3; i++) {
		struct verbs_qp *q = &b->ep.qp[i];
		q->ep = &b->ep;
		q->idx = i;
		q->dead = true;
		q->sq_cap = 8;
		q->sq_mask = 7;
		q->sq_op = b->sqe[i - 1];
		q->sq_op[0] = (struct verbs_sqe){VERBS_INTERNAL, 0};
		q->sq_op[1] = (struct verbs_sqe){VERBS_INTERNAL, 0};
		q->sq_post = 2;
		q->sq_rung = 1;
		q->nchain = 1;
		q->dirty = true;
		q->next_dirty = b->ctx.dirty;
		b->ctx.dirty = q;
	}
	return b;
}

static void dead_qp_chain_waits_without_spinning(void **state)
{
	(void)state;
	struct bed *b = bed_new();
	/* Before the fix this call never returned. */
	verbs_ring_dirty(&b->ctx);
	for (uint32_t i = 1; i < 3; i++) {
		struct verbs_qp *q = &b->ep.qp[i];
		assert_int_equal(q->nchain, 1);
		assert_int_equal(q->sq_done, 0);
		assert_true(q->dirty); /* still listed for the next call */
	}
	int listed = 0;
	for (struct verbs_qp *q = b->ctx.dirty; q; q = q->next_dirty)
		listed++;
	assert_int_equal(listed, 2);
	free(b);
}

static void chain_retires_once_older_wrs_flushed(void **state)
{
	(void)state;
	struct bed *b = bed_new();
	verbs_ring_dirty(&b->ctx);
	/* QP 1's WR on the wire flushed (reaped); QP 2's not yet. */
	b->ep.qp[1].sq_done = 1;
	verbs_ring_dirty(&b->ctx);
	assert_int_equal(b->ep.qp[1].nchain, 0);
	assert_int_equal(b->ep.qp[1].sq_done, 2);
	assert_int_equal(b->ep.qp[1].sq_rung, 2);
	assert_false(b->ep.qp[1].dirty);
	assert_int_equal(b->ep.qp[2].nchain, 1);
	assert_true(b->ep.qp[2].dirty);
	assert_ptr_equal(b->ctx.dirty, &b->ep.qp[2]);
	assert_null(b->ep.qp[2].next_dirty);
	b->ep.qp[2].sq_done = 1;
	verbs_ring_dirty(&b->ctx);
	assert_int_equal(b->ep.qp[2].sq_done, 2);
	assert_null(b->ctx.dirty);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dead_qp_chain_waits_without_spinning),
	    cmocka_unit_test(chain_retires_once_older_wrs_flushed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
