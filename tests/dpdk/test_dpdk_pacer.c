/* SPDX-License-Identifier: MIT */
/*
 * The dpdk sender's pacing model against a bottleneck it does not know.
 * Over one memif link the client writes SIZE bytes to the server (1 MiB
 * writes, WINDOW outstanding) while WCCL_DPDK_TEST_LINK_MBPS=R sends its
 * data frames through an emulated link of rate R behind a 64 KiB
 * drop-tail queue (on the client's transmit path; the pacer never reads
 * it). Two runs:
 *
 *   paced     the model (WCCL_DPDK_PACE_MODEL=1, default ceiling)
 *   unpaced   WCCL_DPDK_PACE_MODEL=0 WCCL_DPDK_PACE_MBPS=0 (no pacing)
 *
 * and the checks:
 *   (a) each run: every byte arrives intact (the server compares);
 *   (b) paced: the model's bottleneck estimate (WCCL_EP_ATTR_BTLBW, wire
 *       bytes/s) over the second half of the transfer stays within TOL_PCT
 *       of R, and at the end too;
 *   (c) paced retransmissions are below a tenth of the unpaced run's.
 * R = WCCL_TEST_BOTTLENECK_MBPS (default 400). Exit 0 / 1 / 77.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memif_pair.h"
#include "transport/dpdk/dpdk_stats.h"
#include "transport/provider.h"

#define SIZE (48u << 20)
#define CHUNK (1u << 20)
#define WINDOW 16u
#define SEED 4242u
#define TOL_PCT 20
#define RUN_S 140

struct result {
	unsigned long long btlbw, bw_lo, bw_hi, pacing, min_rtt_us;
	unsigned long long retx, link_drops, data_pkts;
	double secs;
};

static struct wccl_completion wait_long(struct wccl_cq *cq, uint32_t op,
					const char *what)
{
	struct wccl_completion c;
	int n = 0;
	for (int i = 0; i < RUN_S && (n == 0 || n == WCCL_ETIMEDOUT); i++)
		n = wccl_cq_wait(cq, &c, 1, 1000);
	CHECK(n == 1, "%s: waiting: %s", what, n ? wccl_strerror(n) : "timeout");
	CHECK(c.op == op && c.status == 0, "%s: op %u status %s", what, c.op,
	      wccl_strerror(c.status));
	return c;
}

static int server(void)
{
	struct memif_conn mc;
	memif_accept(&mc);
	uint8_t *region = calloc(1, SIZE);
	CHECK(region, "out of memory");
	struct wccl_mr *mr;
	CHECK(wccl_mr_register(mc.ctx, region, SIZE,
			       WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE,
			       &mr) == 0, "mr");
	struct wccl_rkey rk;
	wccl_mr_rkey(mr, &rk);
	uint8_t key[WCCL_RKEY_PACKED_LEN], done[8];
	wccl_rkey_pack(&rk, key);
	CHECK(wccl_post_recv(mc.ep, done, sizeof(done), NULL, 2) == 0, "recv");
	CHECK(wccl_post_send(mc.ep, key, sizeof(key), NULL, 1) == 0, "send");
	wait_long(mc.cq, WCCL_OP_SEND, "key sent");
	wait_long(mc.cq, WCCL_OP_RECV, "client done");
	memif_verify(region, SIZE, SEED, "written region");
	fprintf(stderr, "[server] %u MiB intact\n", SIZE >> 20);
	wccl_endpoint_close(mc.ep);
	wccl_listener_close(mc.l);
	wccl_mr_deregister(mr);
	wccl_cq_destroy(mc.cq);
	wccl_context_close(mc.ctx);
	free(region);
	return 0;
}

static uint64_t attr(struct wccl_endpoint *ep, int a)
{
	uint64_t v = 0;
	CHECK(wccl_endpoint_get_attr(ep, a, &v) == 0, "get_attr %d", a);
	return v;
}

static int client(void)
{
	struct memif_conn mc;
	memif_connect(&mc);
	int rc;
	uint8_t key[WCCL_RKEY_PACKED_LEN];
	CHECK(wccl_post_recv(mc.ep, key, sizeof(key), NULL, 1) == 0, "recv");
	wait_long(mc.cq, WCCL_OP_RECV, "key");
	struct wccl_rkey rk;
	wccl_rkey_unpack(key, &rk);
	uint8_t *src = malloc(SIZE);
	CHECK(src, "out of memory");
	memif_fill(src, SIZE, SEED);
	struct wccl_mr *mr;
	CHECK(wccl_mr_register(mc.ctx, src, SIZE, WCCL_ACCESS_LOCAL, &mr) == 0,
	      "mr");

	struct result r = { .bw_lo = ~0ull };
	uint32_t n = SIZE / CHUNK, posted = 0, done = 0;
	double t0 = memif_now_s();
	while (done < n) {
		while (posted < n && posted - done < WINDOW) {
			rc = wccl_post_write(mc.ep, src + (size_t)posted * CHUNK,
					     CHUNK, mr, &rk,
					     (uint64_t)posted * CHUNK, 0, 0,
					     posted);
			CHECK(rc == 0, "post_write: %s", wccl_strerror(rc));
			posted++;
		}
		struct wccl_completion c[WINDOW];
		int k = wccl_cq_wait(mc.cq, c, WINDOW, 1000);
		if (k == WCCL_ETIMEDOUT)
			k = 0;
		CHECK(k >= 0, "cq_wait: %s", wccl_strerror(k));
		CHECK(memif_now_s() - t0 < RUN_S,
		      "transfer stalled at %u of %u", done, n);
		for (int i = 0; i < k; i++) {
			CHECK(c[i].status == 0 && c[i].cookie == done,
			      "write %u: %s (cookie %llu)", done,
			      wccl_strerror(c[i].status),
			      (unsigned long long)c[i].cookie);
			done++;
		}
		if (k && done > n / 2) {
			uint64_t bw = attr(mc.ep, WCCL_EP_ATTR_BTLBW);
			r.bw_lo = bw < r.bw_lo ? bw : r.bw_lo;
			r.bw_hi = bw > r.bw_hi ? bw : r.bw_hi;
		}
	}
	r.secs = memif_now_s() - t0;
	r.btlbw = attr(mc.ep, WCCL_EP_ATTR_BTLBW);
	r.pacing = attr(mc.ep, WCCL_EP_ATTR_PACING_RATE);
	r.min_rtt_us = attr(mc.ep, WCCL_EP_ATTR_MIN_RTT_US);
	uint8_t bye = 1;
	CHECK(wccl_post_send(mc.ep, &bye, 1, NULL, 99) == 0, "send");
	wait_long(mc.cq, WCCL_OP_SEND, "done sent");
	struct dpdk_stats st;
	CHECK(dpdk_context_stats(mc.ctx, &st) == 0, "stats");
	r.retx = st.retransmits;
	r.link_drops = st.test_link_drops;
	r.data_pkts = st.tx_data;
	FILE *f = fopen(getenv("WCCL_TEST_PACER_OUT"), "w");
	CHECK(f, "result file");
	fprintf(f, "%llu %llu %llu %llu %llu %llu %llu %llu %.6f\n", r.btlbw,
		r.bw_lo, r.bw_hi, r.pacing, r.min_rtt_us, r.retx, r.link_drops,
		r.data_pkts, r.secs);
	fclose(f);
	wccl_endpoint_close(mc.ep);
	wccl_mr_deregister(mr);
	wccl_cq_destroy(mc.cq);
	wccl_context_close(mc.ctx);
	free(src);
	return 0;
}

/* One run with the environment as set; 0 and @r filled, or the exit code. */
static int run(struct result *r)
{
	return memif_pair_run_scan(
	    "/proc/self/exe", "WCCL_TEST_PACER_OUT", 9,
	    "%llu %llu %llu %llu %llu %llu %llu %llu %lf", &r->btlbw,
	    &r->bw_lo, &r->bw_hi, &r->pacing, &r->min_rtt_us, &r->retx,
	    &r->link_drops, &r->data_pkts, &r->secs);
}

static void show(const char *name, const struct result *r)
{
	fprintf(stderr,
		"[driver] %-8s %6.2f s %7.1f Mbit/s goodput | estimate %7.1f "
		"Mbit/s (2nd half %.1f .. %.1f) pacing %7.1f min-rtt %llu us "
		"| data pkts %llu retx %llu (%.2f %%) link drops %llu\n",
		name, r->secs, SIZE * 8.0 / r->secs / 1e6, r->btlbw * 8.0 / 1e6,
		r->bw_lo == ~0ull ? 0.0 : r->bw_lo * 8.0 / 1e6,
		r->bw_hi * 8.0 / 1e6, r->pacing * 8.0 / 1e6, r->min_rtt_us,
		r->data_pkts, r->retx,
		r->data_pkts ? 100.0 * (double)r->retx / (double)r->data_pkts
			     : 0.0,
		r->link_drops);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		memif_role = argv[1];
		alarm(RUN_S + 10);
		return strcmp(memif_role, "server") ? client() : server();
	}
	const char *e = getenv("WCCL_TEST_BOTTLENECK_MBPS");
	long mbps = e && atol(e) > 0 ? atol(e) : 400;
	char v[32];
	snprintf(v, sizeof(v), "%ld", mbps);
	setenv("WCCL_DPDK_TEST_LINK_MBPS", v, 1);
	struct result paced, unpaced;
	setenv("WCCL_DPDK_PACE_MODEL", "1", 1);
	int rc = run(&paced);
	setenv("WCCL_DPDK_PACE_MODEL", "0", 1);
	setenv("WCCL_DPDK_PACE_MBPS", "0", 1);
	if (!rc)
		rc = run(&unpaced);
	if (rc)
		return rc;
	fprintf(stderr, "[driver] bottleneck R = %ld Mbit/s (wire bytes), "
			"%u MiB written\n", mbps, SIZE >> 20);
	show("paced", &paced);
	show("unpaced", &unpaced);
	double want = (double)mbps * 1e6 / 8.0, tol = want * TOL_PCT / 100.0;
	CHECK(paced.btlbw > want - tol && paced.btlbw < want + tol &&
		      paced.bw_lo > want - tol && paced.bw_hi < want + tol,
	      "estimate %.1f (%.1f .. %.1f) Mbit/s, want %ld +- %d %%",
	      paced.btlbw * 8.0 / 1e6, paced.bw_lo * 8.0 / 1e6,
	      paced.bw_hi * 8.0 / 1e6, mbps, TOL_PCT);
	CHECK(unpaced.link_drops > 0, "the unpaced run never hit the bottleneck");
	CHECK(paced.retx * 10 < unpaced.retx,
	      "paced %llu retransmissions, unpaced %llu: want < 1/10",
	      paced.retx, unpaced.retx);
	fprintf(stderr, "[driver] PASS\n");
	return 0;
}
