/* SPDX-License-Identifier: MIT */
/*
 * The sender's own stops. The provider has no thread: it moves only
 * while the application calls into it (dpdk_progress). Time off the CPU
 * between two calls, with data out, is time in which nothing was sent,
 * received or acknowledged. Rate samples over such a stop measure us,
 * not the path (rate_sample in dpdk_proto.c).
 *
 * A sender that stops often is CPU-bound: the case is both ends spinning
 * on one shared core, each running one time slice of ms while the other
 * waits. Paced as on a link, it sent one window (2 x btlbw x a min RTT of
 * 0.1 ms) per pair of slices, whose rate made the next window smaller: a
 * 1 MiB write-poll round trip took 2.1 s. Pacing cannot space packets out
 * across a slice it is not on the CPU for, so a CPU-bound sender sends as
 * WCCL_DPDK_PACE_MODEL=0 does (dpdk_model_paces: the port's bucket at
 * the ceiling, halved on timeouts, regrown by ACKs) until a 100 ms bucket
 * passes without many stops. Time on the CPU (a slow call, the
 * application computing between calls) is not a stop: a busy sender on
 * its own core keeps the model.
 */
#include <time.h>

#include "core/log.h"
#include "dpdk.h"

/* A gap this long is a stop, not a turn of the application's loop. */
#define STALL_MIN_NS 200000ull
#define STALL_BUCKET_NS 100000000ull
#define STALL_BOUND_MIN 4u /* stops in a bucket, with a quarter of it */
/* A time slice is a few ms (up to 8 seen): a stop counts up to this in
 * its bucket, so one long one (90 ms as the memif link comes up) and a
 * few preemptions after it are no CPU-bound sender. */
#define STALL_COUNT_MAX_NS 10000000ull

static bool bucket_bound(uint32_t n, uint64_t ns)
{
	return n >= STALL_BOUND_MIN &&
	       DPDK_STALL_SHARE * ns >= STALL_BUCKET_NS;
}

/* Move the buckets on, count a stop of @gap ns (0: none) in this one;
 * CPU-bound while the last full bucket or this one says so. */
static void stall_update(struct dpdk_ctx *ctx, uint64_t gap)
{
	if (ctx->now - ctx->stall_stamp >= STALL_BUCKET_NS) {
		bool last = ctx->now - ctx->stall_stamp < 2 * STALL_BUCKET_NS;
		ctx->stall_prev_ns = last ? ctx->stall_cur_ns : 0;
		ctx->stall_prev_n = last ? ctx->stall_cur_n : 0;
		ctx->stall_cur_ns = 0;
		ctx->stall_cur_n = 0;
		ctx->stall_stamp = ctx->now;
	}
	if (gap) {
		ctx->stall_cur_ns +=
		    gap < STALL_COUNT_MAX_NS ? gap : STALL_COUNT_MAX_NS;
		ctx->stall_cur_n++;
	}
	bool was = ctx->cpu_bound;
	ctx->cpu_bound = bucket_bound(ctx->stall_prev_n, ctx->stall_prev_ns) ||
			 bucket_bound(ctx->stall_cur_n, ctx->stall_cur_ns);
	if (ctx->cpu_bound && !was && !ctx->st.cpu_bound++)
		WCCL_INFO(WCCL_SUB_DPDK,
			  "port %u: CPU-bound sender (%u stops of >= 200 us, "
			  "%.1f ms of the last 100 ms): the fixed rate until "
			  "they end", ctx->port, ctx->stall_cur_n,
			  ctx->stall_cur_ns / 1e6);
	/* Back to the model: the port's bucket caps again, at its ceiling
	 * (timeouts in between may have halved it). */
	if (was && !ctx->cpu_bound)
		ctx->pace.rate = ctx->rate_max;
}

/* A stop of @gap ns ending now: connections with data out lost it. */
static void note_stall(struct dpdk_ctx *ctx, uint64_t gap)
{
	bool out = false;
	for (uint32_t i = 0; i < DPDK_EP_SLOTS; i++) {
		struct dpdk_ep *ep = ctx->eps[i];
		if (!ep || !dpdk_ep_has_data_out(ep))
			continue;
		struct dpdk_stop *st = &ep->stops[ep->n_stops++ %
						  DPDK_EP_STOPS];
		st->from = ctx->now - gap;
		st->to = ctx->now;
		out = true;
	}
	if (out)
		stall_update(ctx, gap);
}

uint64_t dpdk_stall_within(const struct dpdk_ep *ep, uint64_t from,
			   uint64_t to)
{
	uint64_t sum = 0;
	uint32_t n = ep->n_stops < DPDK_EP_STOPS ? ep->n_stops : DPDK_EP_STOPS;
	for (uint32_t i = 0; i < n; i++) {
		const struct dpdk_stop *st = &ep->stops[i];
		uint64_t a = st->from > from ? st->from : from;
		uint64_t b = st->to < to ? st->to : to;
		if (b > a)
			sum += b - a;
	}
	return sum;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Time off the CPU since the last reading: wall time less ours. */
static uint64_t off_cpu_ns(struct dpdk_ctx *ctx)
{
	uint64_t cpu = ctx->cpu_clock ? ctx->cpu_clock() : thread_cpu_ns();
	uint64_t wall = ctx->now - ctx->cpu_wall_ns, used = cpu - ctx->cpu_ns;
	bool first = !ctx->cpu_wall_ns;
	ctx->cpu_wall_ns = ctx->now;
	ctx->cpu_ns = cpu;
	return first || used >= wall ? 0 : wall - used;
}

/* A stop is time off the CPU: a call that is slow on it (a burst built,
 * 256 frames taken in) is ours, and an application computing elsewhere
 * still drives its sends soon after (or it is on a long path, which the
 * model keeps). The CPU clock is read only after a gap of 200 us. A gap
 * begun with nothing out (computing, then posting) lost nothing. */
void dpdk_stall_check(struct dpdk_ctx *ctx)
{
	uint64_t gap = ctx->poll_ns && ctx->now > ctx->poll_ns
			   ? ctx->now - ctx->poll_ns
			   : 0;
	if (!ctx->poll_ns || gap >= STALL_MIN_NS) {
		uint64_t off = off_cpu_ns(ctx);
		gap = off < gap ? off : gap;
	}
	ctx->poll_ns = ctx->now;
	if (gap >= STALL_MIN_NS) {
		ctx->st.stalls++;
		ctx->st.stall_ns += gap;
		if (gap > ctx->st.stall_max_ns)
			ctx->st.stall_max_ns = gap;
		if (ctx->model && ctx->poll_out)
			note_stall(ctx, gap);
	}
	if (ctx->cpu_bound) /* until the stops end */
		stall_update(ctx, 0);
}

void dpdk_stall_end(struct dpdk_ctx *ctx, bool out)
{
	ctx->poll_out = out;
}
