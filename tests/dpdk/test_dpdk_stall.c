/* SPDX-License-Identifier: MIT */
/* The dpdk sender's own stops (dpdk_stall.c) on a made-up clock: when it
 * turns CPU-bound, which connections then leave the model, and when it
 * goes back. No EAL: a context and a connection as plain structs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dpdk_rig.h"

#define MS 1000000ull
#define US 1000ull

static uint64_t fake_cpu; /* the thread's CPU time, ns */

static uint64_t fake_cpu_clock(void)
{
	return fake_cpu;
}

static struct rig rig_new(void)
{
	struct rig r = rig_alloc();
	r.ctx->model = true;
	r.ctx->rate_max = 2500.0; /* 20 Gbit/s in bytes per us */
	r.ctx->pace.rate = r.ctx->rate_max;
	r.ctx->eps[0] = r.ep;
	r.ep->state = DPDK_EP_READY;
	r.ep->snd_nxt = 45; /* data out: 45 packets unacknowledged */
	r.ep->cc.min_rtt_ns = 200 * US;
	r.ctx->cpu_clock = fake_cpu_clock;
	fake_cpu = 7 * MS;
	dpdk_stall_check(r.ctx); /* the first call: no gap yet */
	dpdk_stall_end(r.ctx, dpdk_ep_has_data_out(r.ep));
	return r;
}

/* The process is off the CPU for @off, then calls progress, which runs
 * @took on the CPU. */
static void call(struct rig *r, uint64_t off, uint64_t took)
{
	r->ctx->now += off;
	dpdk_stall_check(r->ctx);
	r->ctx->now += took;
	fake_cpu += took;
	dpdk_stall_end(r->ctx, dpdk_ep_has_data_out(r->ep));
}

static void stop(struct rig *r, uint64_t off)
{
	call(r, off, 0);
}

/* Calls of 10 us each, back to back on the CPU, for @span. */
static void spin(struct rig *r, uint64_t span)
{
	for (uint64_t t = 0; t < span; t += 10 * US)
		call(r, 0, 10 * US);
}

/* @n time slices of the peer's: 4 ms away, then 1 ms on the CPU. */
static void slices(struct rig *r, int n)
{
	for (int i = 0; i < n; i++) {
		stop(r, 4 * MS);
		spin(r, 1 * MS);
	}
}

/* Time slices of 4 ms: three (12 ms) are not a quarter of 100 ms; the
 * seventh (28 ms) is. The short-path connection leaves the model. */
static void shared_core_turns_cpu_bound(void **state)
{
	(void)state;
	struct rig r = rig_new();
	slices(&r, 3);
	assert_false(r.ctx->cpu_bound);
	assert_true(dpdk_model_paces(r.ep));
	slices(&r, 4);
	assert_true(r.ctx->cpu_bound);
	assert_false(dpdk_model_paces(r.ep));
	assert_int_equal(r.ctx->st.cpu_bound, 1);
	assert_int_equal(r.ctx->st.stalls, 7);
	assert_int_equal(r.ctx->st.stall_max_ns, 4 * MS);
	/* The stops are marked on the connection for its rate samples:
	 * the last slice was 4 ms away, then 1 ms on the CPU. */
	uint64_t now = r.ctx->now;
	assert_int_equal(dpdk_stall_within(r.ep, now - 5 * MS, now), 4 * MS);
	assert_int_equal(dpdk_stall_within(r.ep, now - MS, now), 0);
	rig_free(&r);
}

/* On a long path (min RTT 40 ms) the model keeps pacing, CPU-bound or
 * not; so does a connection with no RTT yet. */
static void long_path_keeps_the_model(void **state)
{
	(void)state;
	struct rig r = rig_new();
	slices(&r, 8);
	assert_true(r.ctx->cpu_bound);
	r.ep->cc.min_rtt_ns = 40 * MS;
	assert_true(dpdk_model_paces(r.ep));
	r.ep->cc.min_rtt_ns = 0;
	assert_true(dpdk_model_paces(r.ep));
	r.ctx->model = false; /* WCCL_DPDK_PACE_MODEL=0: never */
	assert_false(dpdk_model_paces(r.ep));
	rig_free(&r);
}

/* One long stop (the memif link coming up: 90 ms) is not a CPU-bound
 * sender, nor are many short ones that add up to little. */
static void one_long_or_many_short_stops_are_not(void **state)
{
	(void)state;
	struct rig r = rig_new();
	stop(&r, 90 * MS);
	spin(&r, 1 * MS);
	assert_false(r.ctx->cpu_bound);
	for (int i = 0; i < 40; i++) {
		stop(&r, 300 * US);
		spin(&r, 1 * MS);
	}
	assert_false(r.ctx->cpu_bound);
	assert_int_equal(r.ctx->st.stalls, 41);
	rig_free(&r);
}

/* A process with nothing out is not stopped from sending: its gaps are
 * counted but make nothing CPU-bound. Nor do gaps that began with nothing
 * out and end with data queued (an application computing, then posting),
 * or a connection that failed with data unacknowledged. */
static void idle_gaps_do_not_count(void **state)
{
	(void)state;
	struct rig r = rig_new();
	r.ep->snd_una = r.ep->snd_nxt;
	slices(&r, 10);
	assert_false(r.ctx->cpu_bound);
	assert_int_equal(r.ctx->st.stalls, 10);
	for (int i = 0; i < 10; i++) {
		r.ctx->now += 4 * MS;
		r.ep->tx_post++; /* posted just before progress */
		dpdk_stall_check(r.ctx);
		r.ep->tx_seg_op = r.ep->tx_post; /* sent, and acked */
		dpdk_stall_end(r.ctx, dpdk_ep_has_data_out(r.ep));
	}
	assert_false(r.ctx->cpu_bound);
	assert_int_equal(dpdk_stall_within(r.ep, 0, UINT64_MAX), 0);
	r.ep->snd_nxt += 7;
	r.ep->state = DPDK_EP_FAILED;
	slices(&r, 10);
	assert_false(r.ctx->cpu_bound);
	assert_int_equal(dpdk_stall_within(r.ep, 0, UINT64_MAX), 0);
	assert_int_equal(r.ctx->st.stalls, 30);
	rig_free(&r);
}

/* The time spent on the CPU, in progress (a burst built, frames taken
 * in) or in the application, is ours, not a stop: calls of 300 us with
 * 250 us of computing between them are none. Preempted inside a call,
 * the time off the CPU counts. */
static void time_on_the_cpu_is_not_a_stop(void **state)
{
	(void)state;
	struct rig r = rig_new();
	for (int i = 0; i < 1000; i++) {
		r.ctx->now += 250 * US;
		fake_cpu += 250 * US;
		call(&r, 0, 300 * US);
	}
	assert_false(r.ctx->cpu_bound);
	assert_int_equal(r.ctx->st.stalls, 0);
	for (int i = 0; i < 8; i++) {
		r.ctx->now += 4 * MS; /* a slice lost, in or out of a call */
		call(&r, 0, 300 * US);
		spin(&r, 1 * MS);
	}
	assert_true(r.ctx->cpu_bound);
	assert_int_equal(r.ctx->st.stalls, 8);
	rig_free(&r);
}

/* The stops end: within two buckets (200 ms) the model is back, and the
 * port's rate (halved by a timeout meanwhile) is at its ceiling again. */
static void back_to_the_model_when_stops_end(void **state)
{
	(void)state;
	struct rig r = rig_new();
	slices(&r, 8);
	assert_true(r.ctx->cpu_bound);
	r.ctx->pace.rate = r.ctx->rate_max / 4;
	spin(&r, 90 * MS);
	assert_true(r.ctx->cpu_bound); /* this bucket still says so */
	spin(&r, 120 * MS);
	assert_false(r.ctx->cpu_bound);
	assert_true(dpdk_model_paces(r.ep));
	assert_true(r.ctx->pace.rate == r.ctx->rate_max);
	rig_free(&r);
}

/* A rate sample over a long path (40 ms) can span several short stops:
 * all of them count toward its share, the oldest beyond DPDK_EP_STOPS
 * forgotten. */
static void several_stops_in_one_sample(void **state)
{
	(void)state;
	struct rig r = rig_new();
	r.ep->cc.min_rtt_ns = 40 * MS;
	uint64_t t0 = r.ctx->now;
	for (int i = 0; i < 5; i++) {
		stop(&r, 2 * MS);
		spin(&r, 6 * MS);
	}
	uint64_t now = r.ctx->now;
	assert_int_equal(now - t0, 40 * MS);
	/* 10 ms of 40: a quarter, in stops of 2 ms each. */
	assert_int_equal(dpdk_stall_within(r.ep, t0, now), 10 * MS);
	assert_int_equal(dpdk_stall_within(r.ep, t0 + 9 * MS, now), 7 * MS);
	assert_int_equal(dpdk_stall_within(r.ep, t0 + 7 * MS, t0 + 9 * MS),
			 MS);
	for (unsigned i = 0; i < DPDK_EP_STOPS; i++) {
		stop(&r, 1 * MS);
		spin(&r, 1 * MS);
	}
	assert_int_equal(dpdk_stall_within(r.ep, t0, now), 0);
	assert_int_equal(dpdk_stall_within(r.ep, now, r.ctx->now),
			 DPDK_EP_STOPS * MS);
	rig_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shared_core_turns_cpu_bound),
		cmocka_unit_test(long_path_keeps_the_model),
		cmocka_unit_test(one_long_or_many_short_stops_are_not),
		cmocka_unit_test(idle_gaps_do_not_count),
		cmocka_unit_test(time_on_the_cpu_is_not_a_stop),
		cmocka_unit_test(back_to_the_model_when_stops_end),
		cmocka_unit_test(several_stops_in_one_sample),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
