/* SPDX-License-Identifier: MIT */
/* perftest-shaped tables, or one JSON object per line with --json. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "perf.h"

#define RULE                                                                   \
	"--------------------------------------------------------------------" \
	"-------------------\n"

static const char *prov_of(const struct perf_session *s)
{
	return wccl_context_provider(s->ctx);
}

void perf_report_bw_header(const struct perf_opts *o,
			   const struct perf_session *s)
{
	if (o->json || o->quiet)
		return;
	printf(RULE);
	printf("                    wccl-perf bw: provider %s, op %s, %u "
	       "connection%s, tx depth %u%s\n",
	       prov_of(s), perf_op_name(s->p.op), s->p.conns,
	       s->p.conns == 1 ? "" : "s", s->p.depth,
	       s->p.check ? ", data checked" : "");
	printf("                    MB = 2^20 bytes; peak = best window of "
	       "tx depth x connections ops\n");
	printf(RULE);
	printf(" #bytes     #iterations    BW peak[MB/sec]    BW "
	       "average[MB/sec]   MsgRate[Mpps]\n");
	fflush(stdout);
}

void perf_report_bw(const struct perf_opts *o, const struct perf_session *s,
		    const struct perf_bw_result *r)
{
	double gbps = r->avg_mibps * 1048576.0 * 8 / 1e9;
	if (o->json)
		printf(
		    "{\"test\": \"bw\", \"provider\": \"%s\", \"op\": \"%s\", "
		    "\"bytes\": %" PRIu64 ", \"iterations\": %" PRIu64
		    ", \"connections\": %u, \"tx_depth\": %u, "
		    "\"seconds\": %.6f, \"bw_peak_MBps\": %.2f, "
		    "\"bw_avg_MBps\": %.2f, \"bw_avg_Gbps\": %.3f, "
		    "\"msg_rate_Mpps\": %.6f, \"MB\": 1048576, "
		    "\"checked\": %s}\n",
		    prov_of(s), perf_op_name(s->p.op), r->bytes, r->iters,
		    s->p.conns, s->p.depth, r->seconds, r->peak_mibps,
		    r->avg_mibps, gbps, r->mpps, s->p.check ? "true" : "false");
	else if (!o->quiet)
		printf(" %-10" PRIu64 " %-14" PRIu64 " %-18.2f %-20.2f %.6f\n",
		       r->bytes, r->iters, r->peak_mibps, r->avg_mibps,
		       r->mpps);
	fflush(stdout);
}

void perf_report_lat_header(const struct perf_opts *o,
			    const struct perf_session *s)
{
	if (o->json || o->quiet)
		return;
	printf(RULE);
	printf("                    wccl-perf lat: provider %s, op %s "
	       "ping-pong%s, %u warm-up rounds not counted\n",
	       prov_of(s),
	       s->p.op == PERF_OP_WRITE	       ? "write_imm"
	       : s->p.op == PERF_OP_WRITE_POLL ? "write (peer polls memory)"
					       : "send",
	       s->p.check ? ", data checked" : "", o->warmup);
	printf("                    times are half round trips; typical = "
	       "median\n");
	printf(RULE);
	printf(" #bytes #iterations    t_min[usec]    t_max[usec]  "
	       "t_typical[usec]    t_avg[usec]    t_stdev[usec]   99%% "
	       "percentile[usec]   99.9%% percentile[usec]\n");
	fflush(stdout);
}

void perf_report_lat(const struct perf_opts *o, const struct perf_session *s,
		     const struct perf_lat_result *r)
{
	if (o->json)
		printf("{\"test\": \"lat\", \"provider\": \"%s\", \"op\": "
		       "\"%s\", \"bytes\": %" PRIu64
		       ", \"iterations\": %" PRIu64
		       ", \"t_min_us\": %.3f, \"t_max_us\": %.3f, "
		       "\"t_typical_us\": %.3f, \"t_avg_us\": %.3f, "
		       "\"t_stdev_us\": %.3f, \"t_p99_us\": %.3f, "
		       "\"t_p999_us\": %.3f, \"half_round_trip\": true, "
		       "\"checked\": %s}\n",
		       prov_of(s), perf_op_name(s->p.op), r->bytes, r->iters,
		       r->min, r->max, r->typical, r->avg, r->stdev, r->p99,
		       r->p999, s->p.check ? "true" : "false");
	else if (!o->quiet)
		printf(" %-6" PRIu64 " %-11" PRIu64
		       " %-14.2f %-14.2f %-18.2f %-14.2f %-15.2f %-22.2f "
		       "%.2f\n",
		       r->bytes, r->iters, r->min, r->max, r->typical, r->avg,
		       r->stdev, r->p99, r->p999);
	fflush(stdout);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, uint64_t n, double p)
{
	uint64_t i = (uint64_t)ceil(p * (double)n);
	return (double)v[i ? i - 1 : 0] / 2000.0;
}

void perf_lat_stats(uint64_t *ns, uint64_t n, struct perf_lat_result *r)
{
	*r = (struct perf_lat_result){.iters = n};
	if (!n)
		return;
	qsort(ns, n, sizeof(*ns), cmp_u64);
	double sum = 0, sq = 0;
	for (uint64_t i = 0; i < n; i++) {
		double us = (double)ns[i] / 2000.0;
		sum += us;
		sq += us * us;
	}
	r->min = (double)ns[0] / 2000.0;
	r->max = (double)ns[n - 1] / 2000.0;
	r->typical = (double)ns[n / 2] / 2000.0;
	r->avg = sum / (double)n;
	double var = sq / (double)n - r->avg * r->avg;
	r->stdev = var > 0 ? sqrt(var) : 0;
	r->p99 = pct(ns, n, 0.99);
	r->p999 = pct(ns, n, 0.999);
}
