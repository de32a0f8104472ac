/* SPDX-License-Identifier: MIT */
/*
 * Which uring connections are read every progress pass (uring_rx_park,
 * uring_rx_pollworthy): a barely used one leaves the poll list after
 * URING_FRESH_PASSES silent passes and still gets its next message; one
 * in use stays on it. One process, loopback. Exit 77 without io_uring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "transport/uring/uring.h"
#include "wccl/transport.h"

#define DEADLINE_NS 5000000000ull

struct pair {
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_listener *l;
	struct wccl_endpoint *c, *a; /* connecting and accepted side */
	uint8_t buf[4][64];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pair_open(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(wccl_context_open("uring", &p->ctx), 0);
	assert_int_equal(wccl_cq_create(p->ctx, 0, &p->cq), 0);
	assert_int_equal(wccl_listen(p->ctx, NULL, &p->l), 0);
	char addr[WCCL_ADDR_MAX];
	assert_int_equal(wccl_listener_addr(p->l, addr, sizeof(addr)), 0);
	assert_int_equal(wccl_connect(p->ctx, addr, p->cq, &p->c), 0);
	uint64_t end = now_ns() + DEADLINE_NS;
	int rc;
	while ((rc = wccl_accept(p->l, p->cq, &p->a)) == WCCL_EAGAIN) {
		assert_true(now_ns() < end);
		wccl_endpoint_established(p->c);
	}
	assert_int_equal(rc, 0);
	while (
	    (rc = wccl_endpoint_established(p->c)) == WCCL_EAGAIN ||
	    (rc == 0 && (rc = wccl_endpoint_established(p->a)) == WCCL_EAGAIN))
		assert_true(now_ns() < end);
	assert_int_equal(rc, 0);
	*state = p;
	return 0;
}

static int pair_close(void **state)
{
	struct pair *p = *state;
	wccl_endpoint_close(p->c);
	wccl_endpoint_close(p->a);
	wccl_listener_close(p->l);
	wccl_cq_destroy(p->cq);
	wccl_context_close(p->ctx);
	free(p);
	return 0;
}

/* Poll until completions with cookies 1..@n have all arrived. */
static void wait_cookies(struct pair *p, unsigned n)
{
	unsigned seen = 0;
	uint64_t end = now_ns() + DEADLINE_NS;
	while (seen != (1u << n) - 1) {
		assert_true(now_ns() < end);
		struct wccl_completion wc;
		int k = wccl_cq_poll(p->cq, &wc, 1);
		assert_true(k >= 0);
		if (!k)
			continue;
		assert_int_equal(wc.status, 0);
		assert_true(wc.cookie >= 1 && wc.cookie <= n);
		seen |= 1u << (wc.cookie - 1);
	}
}

/* One message each way. */
static void round_trip(struct pair *p)
{
	assert_int_equal(wccl_post_recv(p->a, p->buf[0], 64, NULL, 1), 0);
	assert_int_equal(wccl_post_recv(p->c, p->buf[1], 64, NULL, 2), 0);
	assert_int_equal(wccl_post_send(p->c, p->buf[2], 64, NULL, 3), 0);
	assert_int_equal(wccl_post_send(p->a, p->buf[3], 64, NULL, 4), 0);
	wait_cookies(p, 4);
}

/* @passes progress passes with nothing on the wire. */
static void idle(struct pair *p, unsigned passes)
{
	struct wccl_completion wc;
	for (unsigned i = 0; i < passes; i++)
		assert_int_equal(wccl_cq_poll(p->cq, &wc, 1), 0);
}

static void rule(void **state)
{
	(void)state;
	assert_true(uring_rx_pollworthy(URING_FRESH_PASSES, 0, false));
	assert_false(uring_rx_pollworthy(URING_FRESH_PASSES + 1, 0, false));
	assert_false(uring_rx_pollworthy(URING_FRESH_PASSES + 1,
					 URING_FRESH_MSGS - 1, false));
	/* In use, or an ACK owed: the long limit. */
	assert_true(uring_rx_pollworthy(URING_FRESH_PASSES + 1,
					URING_FRESH_MSGS, false));
	assert_true(uring_rx_pollworthy(URING_PARK_PASSES, 0, true));
	assert_false(uring_rx_pollworthy(URING_PARK_PASSES + 1, 0, true));
	assert_false(uring_rx_pollworthy(URING_PARK_PASSES + 1,
					 URING_FRESH_MSGS, false));
}

/* Regression for the first size of a 4-rank uring run paying a recv per
 * pass on connections nobody sends on. */
static void fresh_connection_leaves_poll_list(void **state)
{
	struct pair *p = *state;
	struct uring_ep *a = URING_EP(p->a);
	assert_int_equal(wccl_post_recv(p->a, p->buf[0], 64, NULL, 1), 0);
	idle(p, 2 * URING_FRESH_PASSES);
	assert_true(a->rx_msgs < URING_FRESH_MSGS);
	assert_false(a->polled);
	assert_true(a->rx_busy); /* an io_uring recv in its place */
	/* A message still arrives, and the connection is polled again. */
	assert_int_equal(wccl_post_send(p->c, p->buf[2], 64, NULL, 2), 0);
	wait_cookies(p, 2);
	assert_true(a->polled);
}

static void busy_connection_stays_polled(void **state)
{
	struct pair *p = *state;
	struct uring_ep *a = URING_EP(p->a);
	for (unsigned i = 0; i < URING_FRESH_MSGS; i++)
		round_trip(p); /* at least one message in each */
	assert_true(a->rx_msgs >= URING_FRESH_MSGS);
	idle(p, 2 * URING_FRESH_PASSES);
	assert_true(a->polled);
}

int main(void)
{
	struct wccl_context *probe;
	if (wccl_context_open("uring", &probe) != 0)
		return 77;
	wccl_context_close(probe);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rule),
	    cmocka_unit_test_setup_teardown(fresh_connection_leaves_poll_list,
					    pair_open, pair_close),
	    cmocka_unit_test_setup_teardown(busy_connection_stays_polled,
					    pair_open, pair_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
