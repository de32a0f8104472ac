/* SPDX-License-Identifier: MIT */
/* Pure pieces of the streaming engine: CRC32C (both implementations),
 * the pacing model, pipe sizing and the resume journal. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "transport/stream/crc32c.h"
#include "core/sock.h"
#include "transport/stream/stream.h"
#include "transport/stream/stream_icmp.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f)
{
	uint8_t buf[64];
	assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(f(0, "", 0), 0);
	memset(buf, 0, 32); /* RFC 3720 B.4 */
	assert_int_equal(f(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, 32);
	assert_int_equal(f(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(f(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(f(0, buf, 32), 0x113FDB5Cu);
	/* Combining chunk CRCs equals one pass. */
	assert_int_equal(
	    wccl_crc32c_combine(f(0, "12345", 5), f(0, "6789", 4), 4),
	    0xE3069283u);
	assert_int_equal(wccl_crc32c_combine(f(0, "123456789", 9), 0, 0),
			 0xE3069283u);
	/* Chaining equals one pass. */
	assert_int_equal(f(f(0, "12345", 5), "6789", 4), 0xE3069283u);
}

static void test_crc_sw(void **state)
{
	(void)state;
	check_vectors(wccl_crc32c_sw);
}

static void test_crc_hw(void **state)
{
	(void)state;
	if (!wccl_crc32c_have_hw())
		skip();
	check_vectors(wccl_crc32c_hw);
}

static void test_crc_agree(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	uint8_t *b = malloc(n + 16);
	assert_non_null(b);
	for (size_t i = 0; i < n + 16; i++)
		b[i] = (uint8_t)(i * 2654435761u >> 13);
	/* every alignment and tail length */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 40; len++)
			assert_int_equal(wccl_crc32c_sw(7, b + off, len),
					 wccl_crc32c_hw(7, b + off, len));
	assert_int_equal(wccl_crc32c_sw(0, b + 3, n), wccl_crc32c(0, b + 3, n));
	/* whole = combine of uneven pieces */
	uint32_t whole = wccl_crc32c(0, b, n), acc = 0;
	for (size_t o = 0, piece = 1; o < n;
	     o += piece, piece = piece * 3 + 7) {
		size_t len = piece < n - o ? piece : n - o;
		acc = wccl_crc32c_combine(acc, wccl_crc32c(0, b + o, len), len);
	}
	assert_int_equal(acc, whole);
	/* one flipped bit is always caught */
	uint32_t c = wccl_crc32c(0, b, n);
	b[n / 2] ^= 0x10;
	assert_int_not_equal(c, wccl_crc32c(0, b, n));
	free(b);
}

/* A fixed 100 MB/s, 40 ms pipe: the model must find the rate and keep
 * the window near 2 x BDP; queueing delay above the target slows it. */
static void test_cc_converges(void **state)
{
	(void)state;
	struct pace_model cc;
	uint64_t chunk = 1 << 20, rate = 100000000, rtt = 40000000;
	pace_model_init(&cc, 0, 5000000, 2 * chunk, 4 * chunk);
	assert_int_equal(cc.pacing_rate, 0); /* unpaced until a sample */
	uint64_t now = 1000000000, delivered = 0;
	for (int i = 0; i < 2000; i++) {
		uint64_t prior = delivered;
		delivered += chunk;
		now += chunk * 1000000000ull / rate;
		pace_model_on_ack(&cc, now, rtt, rate,
				  prior > 4 * chunk ? prior - 4 * chunk : 0,
				  delivered, 2 * chunk);
	}
	assert_int_equal(cc.phase, 2);
	assert_true(cc.btlbw == rate);
	assert_true(cc.pacing_rate >= rate * 3 / 4 &&
		    cc.pacing_rate <= rate * 5 / 4);
	double bdp = (double)rate * 0.04;
	assert_true(cc.cwnd >= (uint64_t)bdp && cc.cwnd <= (uint64_t)(3 * bdp));
	/* 50 ms of queue, over the target (chunk RTTs: at least 10 ms, plus
	 * the window floor's own 21 ms): the rate must drop. */
	uint64_t before = cc.pacing_rate;
	for (int i = 0; i < 50; i++) {
		now += 50000000;
		delivered += chunk;
		pace_model_on_ack(&cc, now, rtt + 50000000, rate,
				  delivered - chunk, delivered, 4 * chunk);
	}
	assert_true(cc.pacing_rate < before * 3 / 4);
	assert_true(cc.qfactor >= 0.25);
}

/* The path probe drives the delay target on a long path: a queue above
 * the target scales the rate down, an empty one lets it back up; on a
 * short path (loopback) its samples change nothing. */
static void test_cc_probe(void **state)
{
	(void)state;
	struct pace_model cc;
	uint64_t chunk = 1 << 20, rate = 25000000, rtt = 40000000;
	pace_model_init(&cc, 0, 1000000, 2 * chunk, 4 * chunk);
	uint64_t now = 1000000000, delivered = 0;
	for (int i = 0; i < 400; i++) {
		uint64_t prior = delivered;
		delivered += chunk;
		now += chunk * 1000000000ull / rate;
		pace_model_on_ack(&cc, now, rtt + 40000000, rate,
				  prior > 4 * chunk ? prior - 4 * chunk : 0,
				  delivered, chunk);
		pace_model_on_probe(&cc, now, rtt);
	}
	assert_true(pace_model_long_path(&cc));
	assert_int_equal(cc.phase, 2);
	uint64_t calm = cc.pacing_rate;
	assert_true(calm >= rate * 9 / 10 && calm <= rate * 11 / 10);
	/* 5 ms of queue over a 1 ms target, for a second: down, to the
	 * factor's floor (0.8 of the rate). */
	for (int i = 0; i < 100; i++) {
		now += 10000000;
		pace_model_on_probe(&cc, now, rtt + 5000000);
	}
	assert_true(cc.pacing_rate < calm * 85 / 100); /* floor 0.8 */
	/* Empty again: back up within a few seconds. */
	for (int i = 0; i < 500; i++) {
		now += 10000000;
		pace_model_on_probe(&cc, now, rtt);
	}
	assert_true(cc.qfactor > 0.99);

	/* A path that jitters by itself (+-2 ms per direction, no queue)
	 * must not be read as a queue for long. */
	uint32_t x = 12345;
	for (int i = 0; i < 1000; i++) {
		now += 10000000;
		x = x * 1103515245u + 12345u;
		uint64_t j1 = (x >> 8) % 4000000, j2 = (x >> 4) % 4000000;
		pace_model_on_probe(&cc, now, rtt - 4000000 + j1 + j2);
	}
	assert_true(cc.qfactor > 0.8);

	struct pace_model lo;
	pace_model_init(&lo, 0, 1000000, 2 * chunk, 4 * chunk);
	pace_model_on_ack(&lo, 1000, 100000, rate, 0, chunk, 0);
	for (int i = 0; i < 100; i++)
		pace_model_on_probe(&lo, 2000 + (uint64_t)i * 1000000,
				    50000 + (i & 1) * 3000000);
	assert_false(pace_model_long_path(&lo));
	assert_true(lo.qfactor == 1.0);
}

/*
 * Striped chunks through a 100 Mbit/s bottleneck, closed loop: the model's
 * pacing rate and window drive a sender that hands 1 MiB chunks to the
 * least busy of @nconn connections. Each connection sends its oldest
 * chunk at up to 1.25 x the pacing rate (the kernel cap) and at most its
 * own TCP limit, which differs between connections and changes every
 * 50 ms (windows under loss); the bottleneck queues what exceeds R and
 * serves them first in, first out. The receiver stamps each chunk's
 * arrival; each ack is held 0-30 ms (ack compression); 20 ms each way.
 * The path probe reads 40 ms + the queue. 1 ms steps, fixed arrays.
 */
#define SIM_SLOTS 64
#define SIM_FIFO (1 << 16)
struct sim_seg {
	int slot;
	double bytes;
};
static struct sim_seg fifo[SIM_FIFO];
struct sim_chunk {
	int state; /* 0 free, 1 being sent, 2 ack on its way */
	int conn;
	uint64_t seq, sent, rcv, ack, rcv_bytes;
	double unsent, inq;
	struct pace_rs_unit u;
};

struct sim_result {
	uint64_t bw_lo, bw_hi; /* btlbw over the second half */
	double goodput;	       /* of the link, second half */
	double q_ms;	       /* mean bottleneck queue, second half */
	double startup_s;      /* when startup ended (-1: never) */
	double q_peak_ms;      /* largest bottleneck queue, first 3 s */
	double inflight;       /* mean bytes in flight, second half */
	double sockbuf;	       /* of which not yet on the link (mean) */
	double chunk_rtt_ms;   /* mean chunk RTT, second half */
	uint64_t pacing_end;   /* pacing rate at the end */
};

/* The sender: the stream's window with @unit (cc.unit = the chunk, a
 * window of 4 chunks to start, as the engine on a long path) or, with
 * @unit 0, as before (a floor and first window of 2 chunks per connection
 * + 4, and 2 per connection). */
struct sim_cfg {
	double R;	/* bottleneck, bytes/s */
	uint64_t chunk; /* bytes */
	int nconn;
	uint64_t T;	   /* ns */
	uint64_t min_bytes; /* sampler window */
	int ack_only;
	int unit;
	int noise; /* 1: probe samples late by 0-8 ms, one in three (TCG) */
	/* 1: each connection, every 50 ms, stalls for those 50 ms with
	 * probability 1/6 (a loss and its recovery hold its chunk back) */
	int stall;
	/* 1: acks carry the receiver's byte count (all bytes through the
	 * bottleneck so far, partial chunks included) */
	int rcv_bytes;
};

static void sim_run(const struct sim_cfg *g, struct sim_result *res)
{
	const double R = g->R;
	const uint64_t chunk = g->chunk, owd = 20000000;
	const uint64_t step = 1000000, T = g->T;
	const int nconn = g->nconn;
	struct sim_chunk c[SIM_SLOTS];
	memset(c, 0, sizeof(c));
	struct pace_model cc;
	if (g->unit) {
		pace_model_init(&cc, 0, 1000000,
				(uint64_t)(2 * nconn + 4) * chunk, 4 * chunk);
		cc.unit_slack = (uint64_t)(nconn + 1) * chunk;
		cc.unit = chunk;
	} else {
		pace_model_init(&cc, 0, 1000000,
				(uint64_t)(2 * nconn + 4) * chunk,
				(uint64_t)2 * nconn * chunk);
	}
	cc.bw_slot_rtts = 2.5; /* as the stream */
	struct pace_rs rs;
	pace_rs_init(&rs, g->min_bytes);
	rs.ack_only = g->ack_only;
	uint64_t inflight = 0, next_send = 0, seq = 0, half_deliv = 0, nq = 0;
	uint64_t nrtt = 0;
	double lim[16], qsum = 0, q = 0, ifsum = 0, sbsum = 0, rttsum = 0;
	double served = 0; /* bytes through the bottleneck */
	uint64_t fhead = 0, ftail = 0;
	uint32_t x = 2463534242u;
	memset(res, 0, sizeof(*res));
	res->bw_lo = UINT64_MAX;
	res->startup_s = -1;
	for (uint64_t now = step; now <= T; now += step) {
		if (now % 50000000 == step)
			for (int i = 0; i < nconn; i++) {
				x ^= x << 13, x ^= x >> 17, x ^= x << 5;
				lim[i] = R * 1.6 / nconn *
					 (0.3 + (double)(x % 1400) / 1000.0);
				if (g->stall && (x >> 16) % 6 == 0)
					lim[i] = 0;
			}
		/* each connection offers its oldest unsent chunk */
		double cap =
		    cc.pacing_rate ? 1.25 * (double)cc.pacing_rate : 1e12;
		double sb = 0;
		for (int i = 0; i < nconn; i++) {
			int h = -1;
			for (int k = 0; k < SIM_SLOTS; k++)
				if (c[k].state == 1 && c[k].conn == i &&
				    c[k].unsent > 0 &&
				    (h < 0 || c[k].seq < c[h].seq))
					h = k;
			if (h < 0)
				continue;
			double o = (lim[i] < cap ? lim[i] : cap) * 1e-3;
			o = o < c[h].unsent ? o : c[h].unsent;
			c[h].unsent -= o;
			c[h].inq += o;
			q += o;
			fifo[fhead % SIM_FIFO] = (struct sim_seg){h, o};
			fhead++;
		}
		for (int k = 0; k < SIM_SLOTS; k++)
			if (c[k].state == 1)
				sb += c[k].unsent;
		/* the bottleneck (FIFO) serves R x 1 ms */
		double serve = R * 1e-3;
		while (serve > 0 && ftail < fhead) {
			struct sim_seg *sg = &fifo[ftail % SIM_FIFO];
			double b = sg->bytes < serve ? sg->bytes : serve;
			sg->bytes -= b;
			serve -= b;
			served += b;
			q -= b;
			struct sim_chunk *ck = &c[sg->slot];
			ck->inq -= b;
			if (sg->bytes <= 0)
				ftail++;
			if (ck->unsent <= 0 && ck->inq <= 1e-6 &&
			    ck->state == 1) {
				ck->state = 2;
				ck->rcv = now + owd;
				ck->rcv_bytes = (uint64_t)served;
				x ^= x << 13, x ^= x >> 17, x ^= x << 5;
				ck->ack = ck->rcv + owd +
					  (uint64_t)(x % 30) * 1000000;
			}
		}
		if (q < 0)
			q = 0;
		if (now <= 3000000000ull && q * 1e3 / R > res->q_peak_ms)
			res->q_peak_ms = q * 1e3 / R;
		/* acks due, oldest first */
		for (;;) {
			int a = -1;
			for (int k = 0; k < SIM_SLOTS; k++)
				if (c[k].state == 2 && c[k].ack <= now &&
				    (a < 0 || c[k].ack < c[a].ack))
					a = k;
			if (a < 0)
				break;
			struct pace_rs_sample smp;
			inflight -= chunk;
			/* as the stream: startup samples over 2 path RTTs */
			rs.rcv_window_ns =
			    !g->ack_only && cc.phase < 2 &&
				    pace_model_long_path(&cc)
				? 2 * cc.probe_min_ns
				: 0;
			cc.recent_samples = rs.rcv_window_ns && g->rcv_bytes;
			pace_rs_on_ack(&rs, &c[a].u, chunk, now, c[a].rcv,
				       g->rcv_bytes ? c[a].rcv_bytes : 0,
				       2 * owd, &smp);
			if (smp.app_limited && smp.rate <= cc.btlbw)
				smp.rate = 0;
			pace_model_on_ack(&cc, now, now - c[a].sent, smp.rate,
					  smp.prior_delivered, rs.delivered,
					  inflight);
			if (now > T / 2) {
				rttsum += (double)(now - c[a].sent) / 1e6;
				nrtt++;
			}
			c[a].state = 0;
		}
		if (cc.phase && res->startup_s < 0)
			res->startup_s = (double)now / 1e9;
		if (now % 10000000 == 0) {
			uint64_t late = 0;
			if (g->noise) {
				x ^= x << 13, x ^= x >> 17, x ^= x << 5;
				late = x % 3 ? 0 : (uint64_t)(x % 8000) * 1000;
			}
			pace_model_on_probe(&cc, now,
					    2 * owd + (uint64_t)(q * 1e9 / R) +
						late);
		}
		if (now > T / 2) {
			if (!half_deliv)
				half_deliv = rs.delivered;
			if (cc.btlbw < res->bw_lo)
				res->bw_lo = cc.btlbw;
			if (cc.btlbw > res->bw_hi)
				res->bw_hi = cc.btlbw;
			qsum += q * 1e3 / R;
			ifsum += (double)inflight;
			sbsum += sb;
			nq++;
		}
		/* the engine's pacer and window */
		while ((!cc.pacing_rate || now >= next_send) &&
		       (!inflight || inflight + chunk <= cc.cwnd)) {
			int k = 0, best = 0, cnt[16] = {0};
			while (k < SIM_SLOTS && c[k].state)
				k++;
			if (k == SIM_SLOTS)
				break;
			for (int j = 0; j < SIM_SLOTS; j++)
				if (c[j].state == 1)
					cnt[c[j].conn]++;
			for (int i = 1; i < nconn; i++)
				if (cnt[i] < cnt[best])
					best = i;
			pace_rs_on_send(&rs, &c[k].u, now, inflight);
			c[k].state = 1;
			c[k].conn = best;
			c[k].unsent = (double)chunk;
			c[k].inq = 0;
			c[k].seq = seq++;
			c[k].sent = now;
			inflight += chunk;
			if (cc.pacing_rate)
				next_send =
				    (next_send > now ? next_send : now) +
				    chunk * 1000000000ull / cc.pacing_rate;
		}
	}
	res->goodput =
	    (double)(rs.delivered - half_deliv) / (R * (double)T / 2e9);
	res->q_ms = nq ? qsum / (double)nq : 0;
	res->inflight = nq ? ifsum / (double)nq : 0;
	res->sockbuf = nq ? sbsum / (double)nq : 0;
	res->chunk_rtt_ms = nrtt ? rttsum / (double)nrtt : 0;
	res->pacing_end = cc.pacing_rate;
}

static void sim_striped(int nconn, uint64_t min_bytes, int ack_only,
			struct sim_result *res)
{
	struct sim_cfg g = {.R = 12500000,
			    .chunk = 1 << 20,
			    .nconn = nconn,
			    .T = 30000000000ull,
			    .min_bytes = min_bytes,
			    .ack_only = ack_only,
			    .unit = 1};
	sim_run(&g, res);
}

/* The bottleneck estimate stays within 10 % of the link when chunks are
 * striped over 5 and 8 connections (the stream's long-path window) and acks come bunched (the stream's
 * sampler: receiver stamps, send interval, a window of 2 chunks per
 * connection), with a small queue (5 connections: 90-105 Mbit/s, 8:
 * 93-98; with the hold ending at 0.9x instead of 0.95x the pacing rate,
 * 5 connections kept a startup overshoot, 107.6). The same loop with per-chunk
 * ack-interval samples (as the engine took them before the path probe had
 * samples) runs > 15 % high with a standing queue, so the scenario tests
 * what it claims to. */
static void test_rate_striped(void **state)
{
	(void)state;
	const double R = 12500000;
	const uint64_t chunk = 1 << 20;
	int conns[] = {5, 8};
	for (int i = 0; i < 2; i++) {
		struct sim_result r, r0;
		sim_striped(conns[i], 2ull * (uint64_t)conns[i] * chunk, 0, &r);
		sim_striped(conns[i], 0, 1, &r0);
		print_message(
		    "  %d conns: btlbw %.1f-%.1f Mbit/s, goodput %.0f %%, "
		    "queue %.1f ms; ack-interval samples: btlbw "
		    "%.1f-%.1f, goodput %.0f %%, queue %.1f ms\n",
		    conns[i], (double)r.bw_lo * 8e-6, (double)r.bw_hi * 8e-6,
		    r.goodput * 100, r.q_ms, (double)r0.bw_lo * 8e-6,
		    (double)r0.bw_hi * 8e-6, r0.goodput * 100, r0.q_ms);
		assert_true((double)r0.bw_hi > R * 1.15);
		assert_true((double)r.bw_hi <= R * 1.1);
		assert_true((double)r.bw_lo >= R * 0.85);
		/* the delay target may pace at 0.8x the estimate */
		assert_true(r.goodput >= 0.75);
		assert_true(r.q_ms < 10);
	}
}

/*
 * Issue 5, lossy in the VM: 40 Mbit/s, 40 ms, 5 connections, 256 KiB
 * chunks, each connection stalling now and then (loss recovery holds its
 * chunk back for a round trip or more; then it completes at once and
 * counts whole in one sample, though most of its bytes crossed the link
 * earlier). Seen in the VM: an estimate of 47.4 Mbit/s on the 40 Mbit/s
 * link and a standing queue (probe median +15 ms). Chunk counts alone:
 * 45.3 Mbit/s at most here, 7.4 ms of queue; with the receiver's byte
 * counts in the acks the estimate stays within 10 % of the link.
 */
static void test_rate_stalls(void **state)
{
	(void)state;
	const double R = 5000000;
	struct sim_cfg g = {.R = R,
			    .chunk = 256 << 10,
			    .nconn = 5,
			    .T = 20000000000ull,
			    .min_bytes = 2ull * 5 * (256 << 10),
			    .unit = 1,
			    .stall = 1};
	struct sim_result r0, r;
	sim_run(&g, &r0);
	g.rcv_bytes = 1;
	sim_run(&g, &r);
	print_message("  stalls: chunk counts: btlbw %.1f-%.1f Mbit/s on %.1f, "
		      "goodput %.0f %%, queue %.1f ms; receiver byte counts: "
		      "btlbw %.1f-%.1f, goodput %.0f %%, queue %.1f ms\n",
		      (double)r0.bw_lo * 8e-6, (double)r0.bw_hi * 8e-6,
		      R * 8e-6, r0.goodput * 100, r0.q_ms,
		      (double)r.bw_lo * 8e-6, (double)r.bw_hi * 8e-6,
		      r.goodput * 100, r.q_ms);
	/* the scenario bites: chunk counts read higher (since drain ends
	 * on the probe's empty queue, 41.4 on 40 here; 45.3 before) */
	assert_true(r0.bw_hi > r.bw_hi);
	assert_true((double)r.bw_hi <= R * 1.1);
	assert_true((double)r.bw_lo >= R * 0.85);
}

/*
 * Issue 5, east-west in the VM: 40 Mbit/s, 40 ms, 6 connections, 14 s.
 * The stream's long-path window (2 path BDPs + a chunk per connection + 1,
 * a first window of 4 chunks, startup left on the probe's queue) against
 * the one before (a floor and first window of 2 chunks per connection + 4,
 * startup's growth test alone). Before, with 1 MiB chunks: startup for the
 * whole run (13.9 s), 16.6 MB in flight, chunk RTT 3.3 s, a 2.4 s link
 * queue (this FIFO has no limit; the VM's tbf drops); with 256 KiB, startup
 * until 3.5 s. Now: startup ends at 4.6 / 1.2 s, 3.2 / 1.1 MB in flight,
 * queue 4.8 / 3.3 ms, goodput 78 / 85 %; with a third of the probe's
 * samples 0-8 ms late (TCG) 78 / 85 %. Against the previous pace_model.c
 * the startup bound fails.
 */
static void test_window_long_path(void **state)
{
	(void)state;
	const double R = 5000000;
	const double bdp = R * 0.04;
	const int nconn = 6;
	uint64_t chunks[] = {1 << 20, 256 << 10};
	double startup_max[] = {6, 2}, goodput_min[] = {0.7, 0.8};
	for (int i = 0; i < 2; i++) {
		struct sim_cfg g = {.R = R,
				    .chunk = chunks[i],
				    .nconn = nconn,
				    .T = 14000000000ull,
				    .min_bytes = 2ull * nconn * chunks[i],
				    .unit = 1,
				    .rcv_bytes = 1};
		struct sim_result r, r0;
		sim_run(&g, &r);
		g.unit = 0;
		g.rcv_bytes = 0;
		sim_run(&g, &r0);
		struct sim_result rn;
		g.unit = 1;
		g.rcv_bytes = 1;
		g.noise = 1;
		sim_run(&g, &rn);
		g.noise = 0;
		g.unit = 0;
		g.rcv_bytes = 0;
		print_message("  noisy probe, %u KiB: startup ends %.2f s, "
			      "goodput %.0f %%, btlbw %.1f-%.1f Mbit/s\n",
			      (unsigned)(chunks[i] >> 10), rn.startup_s,
			      rn.goodput * 100, (double)rn.bw_lo * 8e-6,
			      (double)rn.bw_hi * 8e-6);
		assert_true(rn.goodput >= goodput_min[i]);
		for (int k = 0; k < 2; k++) {
			struct sim_result *p = k ? &r0 : &r;
			print_message(
			    "  %s, %u KiB: startup ends %.2f s, in flight "
			    "%.0f KB (%.0f in socket buffers), chunk RTT "
			    "%.0f ms, queue %.1f ms (startup's peak %.0f ms), "
			    "goodput %.0f %%, pacing %.1f Mbit/s, btlbw "
			    "%.1f-%.1f\n",
			    k ? "before" : "now", (unsigned)(chunks[i] >> 10),
			    p->startup_s, p->inflight / 1e3, p->sockbuf / 1e3,
			    p->chunk_rtt_ms, p->q_ms, p->q_peak_ms,
			    p->goodput * 100, (double)p->pacing_end * 8e-6,
			    (double)p->bw_lo * 8e-6, (double)p->bw_hi * 8e-6);
		}
		/* the scenario bites: before, startup outlasts the bound */
		assert_true(r0.startup_s < 0 || r0.startup_s > startup_max[i]);
		assert_true(r.startup_s > 0 && r.startup_s < startup_max[i]);
		assert_true(r.inflight <=
			    2 * bdp + (double)(nconn + 1) * (double)chunks[i]);
		assert_true(r.q_ms < 10);
		assert_true(r.goodput >= goodput_min[i]);
		assert_true((double)r.pacing_end <= 1.1 * R);
	}
	/* 1 MiB chunks before: 5x the in flight, a queue of seconds */
	struct sim_cfg g = {.R = R,
			    .chunk = 1 << 20,
			    .nconn = nconn,
			    .T = 14000000000ull,
			    .min_bytes = 2ull * nconn << 20};
	struct sim_result r0;
	sim_run(&g, &r0);
	assert_true(r0.inflight > 2 * bdp + (double)(nconn + 1) * (1 << 20));
	assert_true(r0.q_ms > 100);
}

/* The stream's model on a long path: 1 ms target, a first window of 4
 * units, 7 units of slack, filter slots of 2.5 path RTTs. */
static void long_path_model(struct pace_model *cc, uint64_t unit)
{
	pace_model_init(cc, 0, 1000000, unit, 4 * unit);
	cc->unit_slack = 7 * unit;
	cc->bw_slot_rtts = 2.5;
}

/* 10 ms of a long path: a probe sample of @probe_rtt, then an ack with a
 * delivery sample of @rate (the path delivered @rate x 10 ms); @inflight
 * bytes still out. */
static void model_step(struct pace_model *cc, uint64_t *now, uint64_t *d,
		       uint64_t rate, uint64_t probe_rtt, uint64_t unit,
		       uint64_t inflight)
{
	*now += 10000000;
	*d += rate / 100;
	pace_model_on_probe(cc, *now, probe_rtt);
	pace_model_on_ack(cc, *now, 100000000, rate,
			  *d > 4 * unit ? *d - 4 * unit : 0, *d, inflight);
}

/* The stream's long path: an estimate left low (half the link) while the
 * probe holds the delay factor at its floor (a constant 1.5 ms over the
 * target: TCG noise) must still climb, by probing up unscaled. The path
 * delivers min(pacing rate, R). Before, pacing <= 0.8 x 1.05 x the
 * estimate: it never saw more than half the link. */
static void test_cc_probe_up_held(void **state)
{
	(void)state;
	const uint64_t R = 5000000, unit = 256 << 10;
	struct pace_model cc;
	long_path_model(&cc, unit);
	uint64_t now = 1000000000, d = 0;
	for (int i = 0; i < 300; i++) /* startup ends at R / 2 */
		model_step(&cc, &now, &d, R / 2, 40000000, unit, unit / 2);
	assert_int_equal(cc.phase, 2);
	assert_int_equal(cc.btlbw, R / 2);
	for (int i = 0; i < 2000; i++) { /* 20 s */
		uint64_t r = cc.pacing_rate < R ? cc.pacing_rate : R;
		model_step(&cc, &now, &d, r, i % 500 ? 42500000 : 40000000,
			   unit, unit / 2);
	}
	print_message("  held at qfactor %.2f: btlbw %.1f Mbit/s of %.1f\n",
		      cc.qfactor, (double)cc.btlbw * 8e-6, (double)R * 8e-6);
	assert_true(cc.qfactor < 0.8);
	assert_true(cc.btlbw >= R * 9 / 10);
}

/* The stream's long path: the queue startup built is drain's to empty;
 * the delay factor is not cut for it, in startup or in drain. Before, two
 * cuts in drain left it at 0.59, and the rate took 1 s to come back (seen
 * in the VM at 40 Mbit/s, 40 ms). Startup's gain is 2 once the caller's
 * samples are recent ones; drain lasts while the probe's last two
 * samples show the queue. */
static void test_cc_drain_keeps_factor(void **state)
{
	(void)state;
	const uint64_t R = 5000000, unit = 256 << 10;
	struct pace_model cc;
	long_path_model(&cc, unit);
	uint64_t now = 1000000000, d = 0;
	for (int i = 0; i <= 40; i++) { /* startup: x2 per 100 ms to R */
		uint64_t r = (uint64_t)((double)R * exp2((i - 40) / 10.0));
		model_step(&cc, &now, &d, r, 40000000, unit, 8 * unit);
	}
	assert_int_equal(cc.phase, 0);
	assert_true(cc.pacing_gain > 2.8); /* samples not known recent */
	cc.recent_samples = 1;		    /* as the stream's on uring */
	pace_model_on_ack(&cc, now, 100000000, R, d - 4 * unit, d, 8 * unit);
	assert_true(cc.pacing_gain == 1.5);
	int drained = 0;
	for (int i = 0; i < 30; i++) { /* 300 ms of a 30 ms queue */
		model_step(&cc, &now, &d, R, 70000000, unit, 8 * unit);
		drained |= cc.phase == 1;
	}
	assert_true(drained);
	assert_true(cc.qfactor == 1.0);
	for (int i = 0; i < 5; i++) { /* the queue gone */
		now += 10000000;
		pace_model_on_probe(&cc, now, 40000000);
	}
	assert_int_equal(cc.phase, 2);
	assert_true(cc.qfactor == 1.0);
	assert_true(cc.pacing_rate >= R);
}

/* The stream's long path: startup leaves on a queue above HyStart's delay
 * threshold (the path RTT / 8, 5 ms at 40 ms), not on one above the delay
 * target alone. A 3.5 ms reading is what east-west's jitter gives while
 * the jitter estimate is still low; before, startup left on it, and in
 * the VM one run in five left at 20-30 Mbit/s of 48. */
static void test_cc_startup_exit(void **state)
{
	(void)state;
	const uint64_t R = 5000000, unit = 128 << 10;
	struct pace_model cc;
	long_path_model(&cc, unit);
	cc.recent_samples = 1;
	uint64_t now = 1000000000, d = 0;
	for (int i = 0; i < 40; i++) /* past the first window's drain */
		model_step(&cc, &now, &d, R / 2, 40000000, unit, 4 * unit);
	for (int i = 0; i < 20; i++) /* 200 ms of 3.5 ms "queue" */
		model_step(&cc, &now, &d, R / 2, 43500000, unit, 4 * unit);
	print_message("  3.5 ms over the path RTT: phase %d, target %.1f ms\n",
		      cc.phase,
		      (double)(cc.qdelay_target_ns + 2 * cc.probe_jit_ns) /
			  1e6);
	assert_int_equal(cc.phase, 0);
	for (int i = 0; i < 2; i++) /* a queue of 6 ms */
		model_step(&cc, &now, &d, R / 2, 46000000, unit, 4 * unit);
	assert_int_equal(cc.phase, 1);
}

/* 0 to @ms ms from an LCG state's high 16 bits (a plain modulo of them
 * never reached 66 us). */
static uint64_t jitter_ns(uint32_t seed, int ms)
{
	return (uint64_t)((double)(seed >> 16) / 65536.0 * ms * 1e6);
}

/* 1 ms of a path that delivers min(pacing rate, @R) (bytes/s) and queues
 * the rest in *@q (bytes); *@d counts what it delivered. Returns the
 * delivery rate. */
static uint64_t path_ms(const struct pace_model *cc, uint64_t R,
			uint64_t *now, uint64_t *d, double *q)
{
	*now += 1000000;
	*q += (double)cc->pacing_rate / 1000 - (double)R / 1000;
	if (*q < 0)
		*q = 0;
	uint64_t r = cc->pacing_rate < R ? cc->pacing_rate : R;
	*d += r / 1000;
	return r;
}

/* 3 s of delivery samples at @rate (bytes/s), 10 ms apart, and a queue
 * of 6 ms on the probe after the first second (above startup's exit
 * threshold of 40 / 8 ms): startup leaves with the estimate at @rate. */
static void run_startup(struct pace_model *cc, uint64_t unit, uint64_t rate,
			uint64_t *now, uint64_t *d)
{
	for (int i = 0; i < 300; i++)
		model_step(cc, now, d, rate, i > 100 ? 46000000 : 40000000,
			   unit, unit / 2);
}

/* A long-path model of @unit chunks through run_startup at @rate, in
 * probe_bw. */
static void after_startup(struct pace_model *cc, uint64_t unit, uint64_t rate,
			  uint64_t *now, uint64_t *d)
{
	long_path_model(cc, unit);
	cc->unit = unit;
	run_startup(cc, unit, rate, now, d);
	assert_int_equal(cc->phase, 2);
}

/* The stream's long path: an estimate left at 0.8 of the link by startup
 * (seen in the VM at 40 Mbit/s: 32 Mbit/s after startup, 8 s to reach
 * the link at 5 % a cycle) reaches 0.95 of it within 1 s, while the queue
 * the probing builds stays small. The path delivers min(pacing rate, R)
 * and queues the excess; the probe reads 40 ms + that queue. Now 0.45 s,
 * queue peak 4.9 ms; with every probe-up at 1.05 (before) 1.35 s, 7.5 ms. */
static void test_cc_probe_up_grows(void **state)
{
	(void)state;
	const uint64_t R = 5000000, unit = 256 << 10;
	struct pace_model cc;
	uint64_t now = 1000000000, d = 0;
	after_startup(&cc, unit, R * 8 / 10, &now, &d); /* at 0.8 x R */
	uint64_t t0 = now;
	double q = 0, q_peak = 0, reached = -1;
	for (int i = 0; i < 10000; i++) { /* 10 s in 1 ms steps */
		uint64_t r = path_ms(&cc, R, &now, &d, &q);
		if (q * 1e3 / (double)R > q_peak)
			q_peak = q * 1e3 / (double)R;
		if (i % 10 == 0)
			pace_model_on_probe(&cc, now,
					    40000000 + (uint64_t)(q * 1e9 / R));
		/* a chunk's worth of delivery per sample, as the stream */
		if (i % 50 == 0)
			pace_model_on_ack(&cc, now, 100000000, r,
					  d > 4 * unit ? d - 4 * unit : 0, d,
					  unit / 2);
		if (reached < 0 && cc.btlbw >= R * 95 / 100)
			reached = (double)(now - t0) / 1e9;
	}
	print_message("  probe-up from 0.8 x the link: 0.95 reached after "
		      "%.2f s, queue peak %.1f ms, btlbw %.1f Mbit/s of %.1f\n",
		      reached, q_peak, (double)cc.btlbw * 8e-6,
		      (double)R * 8e-6);
	assert_true(reached >= 0 && reached < 1.0);
	assert_true(q_peak < 10);
	assert_true(cc.btlbw <= R * 11 / 10);
}

/* The stream's long path with the estimate at the link, the probe
 * jittering by up to 2 ms (the VM's noise; the delay target is then 1 ms +
 * 2 x the jitter estimate): the probing cycle keeps the queue's p99 under
 * 3.5 ms with the link 97 % used. Measured: p99 2.1 ms, use 0.981 (2.7
 * ms and 0.99 over 5 seeds when the jitter was, by mistake, 0-66 us).
 * The same run with every delivery sample 4.6 % above what the path
 * delivered (the VM's estimates: 99-101 Mbit/s on a link of 95.6) read
 * p99 6.0 ms, mean 2.1: the over-estimate, not the cycle, is the VM's
 * queue. */
static void test_cc_steady_at_link(void **state)
{
	(void)state;
	const uint64_t R = 12500000, unit = 128 << 10;
	struct pace_model cc;
	uint64_t now = 1000000000, d = 0;
	after_startup(&cc, unit, R, &now, &d);
	double q = 0, qsum = 0, sent = 0, qs[8000];
	uint32_t seed = 12345;
	int n = 0;
	for (int i = 0; i < 10000; i++) { /* 10 s in 1 ms steps */
		uint64_t r = path_ms(&cc, R, &now, &d, &q);
		double qms = q * 1e3 / (double)R;
		if (i >= 2000) {
			qs[n++] = qms;
			qsum += qms;
			sent += (double)r / 1000;
		}
		if (i % 10 == 0) {
			seed = seed * 1103515245u + 12345u;
			uint64_t noise = jitter_ns(seed, 2);
			pace_model_on_probe(&cc, now,
					    40000000 + (uint64_t)(qms * 1e6) +
						noise);
		}
		if (i % 10 == 0)
			pace_model_on_ack(&cc, now, 100000000, r,
					  d > 4 * unit ? d - 4 * unit : 0, d,
					  unit / 2);
	}
	for (int i = 1; i < n; i++) /* sort for the p99 */
		for (int j = i; j > 0 && qs[j] < qs[j - 1]; j--) {
			double t = qs[j];
			qs[j] = qs[j - 1];
			qs[j - 1] = t;
		}
	double p99 = qs[n * 99 / 100], use = sent / ((double)R / 1000 * n);
	print_message("  at the link, jitter 0-2 ms: queue mean %.2f ms, p99 "
		      "%.2f ms; link use %.3f\n",
		      qsum / n, p99, use);
	assert_true(p99 < 3.5);
	assert_true(use > 0.97);
}

/* The stream's long path behind a token bucket: every delivery sample
 * reads @excess x what the link delivered (tbf's 64 KiB bucket over the
 * sample's window at 50 Mbit/s put the VM's estimates 7 % high; 256 KiB,
 * 18 %), and the probe sees the queue as it was 20 ms ago, built by what
 * was paced 20 ms before that, jittering by up to 2 ms. The delay
 * factor's climb back to 1 and every probe-up then overshoot the link; the
 * rate that last began a queue stops both. From @grow_s on, the link is
 * @grow x as fast (another flow left). 1 ms steps, 15 s.
 */
struct bucket_run {
	uint32_t seed;
	double excess, grow;
	int grow_s;
	double p99;    /* the queue's p99 (ms), from 3 s until @grow_s */
	double use;    /* the link's use over the same time */
	double regain; /* s from @grow_s until 0.95 x the new rate is paced */
};

static void sim_bucket(struct bucket_run *b)
{
	const uint64_t R0 = 6250000, unit = 128 << 10;
	const int lag = 20; /* ms, each way */
	struct pace_model cc;
	uint64_t now = 1000000000, d = 0;
	after_startup(&cc, unit, R0, &now, &d);
	static double qs[15000];
	double q = 0, sent = 0, paced[64] = {0}, qhist[64] = {0};
	double R = (double)R0;
	uint32_t seed = b->seed;
	int n = 0;
	b->regain = -1;
	for (int i = 0; i < 15000; i++) {
		if (b->grow_s && i == b->grow_s * 1000)
			R *= b->grow;
		now += 1000000;
		paced[i % 64] = (double)cc.pacing_rate;
		double in = i >= lag ? paced[(i - lag) % 64] : 0;
		q += in / 1000 - R / 1000;
		if (q < 0)
			q = 0;
		qhist[i % 64] = q;
		double out = in < R ? in : R;
		d += (uint64_t)(out / 1000);
		if (i >= 3000 && (!b->grow_s || i < b->grow_s * 1000)) {
			qs[n++] = q * 1e3 / R;
			sent += out / 1000;
		}
		if (b->grow_s && i >= b->grow_s * 1000 && b->regain < 0 &&
		    (double)cc.pacing_rate >= 0.95 * R)
			b->regain = (i - b->grow_s * 1000) / 1e3;
		if (i % 10)
			continue;
		double seen = i >= lag ? qhist[(i - lag) % 64] : 0;
		seed = seed * 1103515245u + 12345u;
		uint64_t noise = jitter_ns(seed, 2);
		pace_model_on_probe(&cc, now,
				    40000000 + (uint64_t)(seen * 1e9 / R) +
					noise);
		pace_model_on_ack(&cc, now, 100000000,
				  (uint64_t)(out * b->excess),
				  d > 4 * unit ? d - 4 * unit : 0, d, unit / 2);
	}
	for (int i = 1; i < n; i++) /* sort for the p99 */
		for (int j = i; j > 0 && qs[j] < qs[j - 1]; j--) {
			double t = qs[j];
			qs[j] = qs[j - 1];
			qs[j - 1] = t;
		}
	b->use = sent / (R0 / 1000.0 * n);
	b->p99 = qs[n * 99 / 100];
}

/* Measured over 5 seeds, 7 % high: queue p99 1.8-2.4 ms, link use
 * 0.979-0.984; 12 % high: 2.3-2.6 ms, 0.983-0.984 (with the probe's
 * jitter really 0-2 ms: the numbers below, from before, had 0-66 us, and
 * there 1.5-2.0 ms, 0.991). Before the cruise stayed below the
 * learned rate and it rose step by step (it was forgotten after 2 s, and
 * the factor and the probe-ups went back above the link): 7 %, p99
 * 2.8-3.0 ms; 12 %, 7.8-9.8 ms and use down to 0.924. Without a learned
 * rate at all, 7 % (10 s from 2 s on): p99 9.6 ms, use 0.939. */
static void test_cc_queue_rate(void **state)
{
	(void)state;
	const double excess[2] = {1.07, 1.12};
	for (int e = 0; e < 2; e++)
		for (uint32_t seed = 1; seed <= 5; seed++) {
			struct bucket_run b = {.seed = seed * 7919u,
					       .excess = excess[e]};
			sim_bucket(&b);
			print_message("  estimate %.0f %% high, probe 20 ms "
				      "late, seed %u: queue p99 %.2f ms, "
				      "link use %.3f\n",
				      (excess[e] - 1) * 100, seed, b.p99,
				      b.use);
			assert_true(b.p99 < 3.0);
			assert_true(b.use > 0.97);
		}
	/* A probe-down under a learned rate keeps its gain (it was once
	 * lifted to the cruise). */
	const uint64_t R = 6250000, unit = 128 << 10;
	struct pace_model cc;
	uint64_t now = 1000000000, d = 0;
	after_startup(&cc, unit, R, &now, &d);
	cc.qfactor = 1.0;
	cc.pacing_gain = 0.95;
	cc.queue_rate = cc.btlbw * 9 / 10;
	cc.queue_rate_stamp = now;
	pace_model_on_probe(&cc, now + 10000000, 40000000);
	assert_true(cc.pacing_rate <= cc.btlbw * 96 / 100);
	/* Between probes the cruise stays 4 % under the learned rate: the
	 * sender's bursts (connections catching up after a loss) go above
	 * the rate paced. */
	cc.pacing_gain = 1.0;
	cc.cycle = 3;
	pace_model_on_probe(&cc, now + 20000000, 40000000);
	double cruise = (double)cc.pacing_rate / (double)cc.queue_rate;
	print_message("  cruise at %.3f of the learned rate\n", cruise);
	assert_true(cruise > 0.955 && cruise < 0.965);
}

/* A queue the probe reads while the sender cruises under the learned rate
 * (the path's jitter: netem's +-2 ms each way on east-west, TCG's late
 * wake-ups) lowers that rate to no less than 0.95 x the estimate. Before,
 * each such queue took it down by the cruise's 4 %, to the floor of 0.85
 * (in the VM: 49 -> 42 Mbit/s in 3 s on a link of 48, then held there):
 * here 0.885 after five of them, against 0.95 now. */
static void test_cc_queue_rate_cruise_floor(void **state)
{
	(void)state;
	const uint64_t R = 6250000, unit = 128 << 10;
	struct pace_model cc;
	uint64_t now = 1000000000, d = 0;
	after_startup(&cc, unit, R, &now, &d);
	cc.qfactor = 1.0;
	cc.queue_rate = cc.btlbw;
	cc.queue_rate_stamp = now;
	cc.pacing_gain = 1.0;
	cc.cycle = 3; /* cruising: no probe-up in what follows */
	for (int blip = 0; blip < 5; blip++) {
		for (int i = 0; i < 30; i++) { /* 300 ms without a queue */
			now += 10000000;
			pace_model_on_probe(&cc, now, 40000000);
		}
		for (int i = 0; i < 6; i++) { /* then 60 ms of "queue" */
			now += 10000000;
			pace_model_on_probe(&cc, now, 50000000);
		}
	}
	double learned = (double)cc.queue_rate / (double)cc.btlbw;
	print_message("  five queues read while cruising: learned rate %.3f "
		      "x the estimate\n",
		      learned);
	assert_true(cc.queue_rate != 0);
	assert_true(learned >= 0.949 && learned <= 0.961);
}

/* The learned rate is not a ceiling: when the link grows by a quarter
 * (another flow left), the pacing rate reaches 0.95 x the new rate within
 * 6 s, as each rise (1 s apart) that meets no queue doubles the next.
 * Measured 3.8-5.0 s; without the rises, never. (Forgotten after 2 s, as
 * before, it took 0.2-0.6 s: the price of a calmer queue.) */
static void test_cc_queue_rate_rises(void **state)
{
	(void)state;
	for (uint32_t seed = 1; seed <= 3; seed++) {
		struct bucket_run b = {.seed = seed * 7919u,
				       .excess = 1.07,
				       .grow = 1.25,
				       .grow_s = 6};
		sim_bucket(&b);
		print_message("  link 25 %% faster at 6 s, seed %u: 0.95 of it "
			      "paced after %.2f s\n",
			      seed, b.regain);
		assert_true(b.regain >= 0 && b.regain < 6.0);
	}
}

/* The stream's long path: delivery samples below the estimate while the
 * probe sees no queue are our side's (a connection in loss recovery):
 * the estimate stays. The same samples while the probe sees a queue are
 * the path's: it follows them down. Before, it fell to the low samples
 * within the filter's window either way (40 -> 31 Mbit/s in the
 * simulation, with stalls). */
static void test_cc_room_keeps_estimate(void **state)
{
	(void)state;
	const uint64_t R = 5000000, unit = 256 << 10;
	struct pace_model cc;
	long_path_model(&cc, unit);
	uint64_t now = 1000000000, d = 0;
	run_startup(&cc, unit, R, &now, &d);
	for (int i = 0; i < 100; i++) { /* the queue drains */
		now += 10000000;
		pace_model_on_probe(&cc, now, 40000000);
	}
	assert_int_equal(cc.phase, 2);
	assert_int_equal(cc.btlbw, R);
	for (int i = 0; i < 300; i++) /* 3 s of half-rate samples, no queue */
		model_step(&cc, &now, &d, R / 2, 40000000, unit, unit / 2);
	uint64_t kept = cc.btlbw;
	for (int i = 0; i < 300; i++) /* the same with a queue */
		model_step(&cc, &now, &d, R / 2, 48000000, unit, unit / 2);
	print_message("  half-rate samples: estimate %.1f Mbit/s without a "
		      "queue, %.1f with one (link %.1f)\n",
		      (double)kept * 8e-6, (double)cc.btlbw * 8e-6,
		      (double)R * 8e-6);
	assert_int_equal(kept, R);
	assert_true(cc.btlbw <= R * 6 / 10);
}

/* The path RTT forgets old minima without taking one sample for it:
 * 40.0 ms once, 40.5 ms for 10 s, then one sample 4.4 ms high. Before,
 * the 10 s min restarted from that sample; the filtered queue (min of
 * the last four, 40.5) then read below the path RTT, wrapped, and the
 * delay factor was halved (seen in the VM after 10 s of every run). */
static void test_cc_probe_min_window(void **state)
{
	(void)state;
	struct pace_model cc;
	pace_model_init(&cc, 0, 1000000, 1 << 20, 4 << 20);
	cc.unit_slack = 7 << 20;
	uint64_t now = 1000000000;
	pace_model_on_probe(&cc, now, 40000000);
	for (int i = 0; i < 1000; i++) { /* 10 s */
		now += 10000000;
		pace_model_on_probe(&cc, now, 40500000);
	}
	now += 5000000;
	pace_model_on_probe(&cc, now, 44900000);
	print_message("  path RTT after 10 s: %.1f ms, delay factor %.2f\n",
		      (double)cc.probe_min_ns / 1e6, cc.qfactor);
	assert_true(cc.probe_min_ns <= 40500000);
	assert_true(cc.qfactor == 1.0);
	for (int i = 0; i < 1100; i++) { /* the old minimum ages out */
		now += 10000000;
		pace_model_on_probe(&cc, now, 40500000);
	}
	assert_int_equal(cc.probe_min_ns, 40500000);
}

static void test_pick_chunk(void **state)
{
	(void)state;
	const uint32_t mib = 1 << 20;
	/* short paths keep the default (CPU-bound) */
	assert_int_equal(stream_pick_chunk(50000, 125000000, mib), mib);
	assert_int_equal(stream_pick_chunk(1999999, 125000000, mib), mib);
	/* 40 ms at the default target (1 Gbit/s): BDP 5 MB / 32 -> 128 KiB */
	assert_int_equal(stream_pick_chunk(40000000, 125000000, mib), 128 << 10);
	/* 40 ms at 40 Mbit/s: the floor */
	assert_int_equal(stream_pick_chunk(40000000, 5000000, mib),
			 STREAM_AUTO_CHUNK_MIN);
	/* 150 ms at 1 Gbit/s: BDP 18.75 MB / 32 -> 512 KiB; 300 ms: capped
	 * at the default */
	assert_int_equal(stream_pick_chunk(150000000, 125000000, mib),
			 512 << 10);
	assert_int_equal(stream_pick_chunk(300000000, 125000000, mib), mib);
	assert_int_equal(stream_pick_chunk(150000000, 125000000, 512 << 10),
			 512 << 10);
}

/* Kernel pacing caps: an equal share of the connections with unsent
 * bytes, and a window-bound one's unused share lent to the others.
 * Connections 0-3 are busy, 4 is idle; the rate is 400, a share 100. */
static void test_pace_caps(void **state)
{
	(void)state;
	static const struct {
		uint64_t cwr[5], pct;
		int lent;
		uint64_t want[5];
	} cases[] = {
		/* all windows wide: 110 each, the idle one too */
		{{500, 500, 500, 500, 0}, 110, 0, {110, 110, 110, 110, 110}},
		/* one window carries 40: it lends 60, 20 to each other */
		{{500, 40, 500, 500, 0}, 110, 1, {130, 110, 130, 130, 130}},
		/* no headroom (the probe sees a queue): nothing is lent */
		{{500, 40, 500, 500, 0}, 100, 0, {100, 100, 100, 100, 100}},
		/* an unknown window (0) lends nothing */
		{{500, 0, 500, 500, 0}, 110, 0, {110, 110, 110, 110, 110}},
		/* all bound: each keeps its own cap */
		{{10, 10, 10, 10, 0}, 110, 4, {110, 110, 110, 110, 110}},
	};
	const uint64_t unsent[5] = {1, 1, 1, 1, 0};
	uint64_t cap[5];
	int busy = -1;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int lent = stream_pace_caps(5, unsent, cases[c].cwr, 400,
					    cases[c].pct, cap, &busy);
		assert_int_equal(lent, cases[c].lent);
		assert_int_equal(busy, 4);
		for (int i = 0; i < 5; i++)
			assert_int_equal(cap[i], cases[c].want[i]);
	}
	/* one busy connection: the whole rate, nothing to lend to */
	const uint64_t one[3] = {0, 7, 0}, cwr[3] = {10, 10, 10};
	assert_int_equal(stream_pace_caps(3, one, cwr, 400, 110, cap, &busy),
			 0);
	assert_int_equal(busy, 1);
	assert_int_equal(cap[1], 440);
}

/* The headroom stops at the learned rate: 110 % of 400 is 440, so a
 * learned 420 leaves 105 %, one at or above 440 (or none) all 110, one
 * under the rate no less than 100; no rate (a short path), no change. */
static void test_pace_headroom(void **state)
{
	(void)state;
	assert_int_equal(stream_pace_headroom(110, 400, 0), 110);
	assert_int_equal(stream_pace_headroom(110, 400, 420), 105);
	assert_int_equal(stream_pace_headroom(110, 400, 440), 110);
	assert_int_equal(stream_pace_headroom(110, 400, 500), 110);
	assert_int_equal(stream_pace_headroom(110, 400, 392), 100);
	assert_int_equal(stream_pace_headroom(100, 400, 300), 100);
	assert_int_equal(stream_pace_headroom(110, 0, 420), 110);
	/* Mbit/s-sized rates do not overflow: 50 Mbit/s, learned 51 */
	assert_int_equal(stream_pace_headroom(110, 6250000, 6375000), 102);
}

static void test_pick_conn(void **state)
{
	(void)state;
	const int ready[4] = {1, 1, 0, 1};
	/* fewest held wins, wherever the scan starts */
	const int held[4] = {3, 1, 0, 2};
	for (int from = 0; from < 4; from++)
		assert_int_equal(stream_pick_conn(4, ready, held, from), 1);
	/* equals take turns from @from (2 is not ready) */
	const int even[4] = {2, 2, 2, 2};
	assert_int_equal(stream_pick_conn(4, ready, even, 0), 0);
	assert_int_equal(stream_pick_conn(4, ready, even, 1), 1);
	assert_int_equal(stream_pick_conn(4, ready, even, 2), 3);
	assert_int_equal(stream_pick_conn(4, ready, even, 3), 3);
	/* none ready */
	const int none[4] = {0, 0, 0, 0};
	assert_int_equal(stream_pick_conn(4, none, even, 0), -1);
	/* turns: eight picks with nothing given back spread over the three
	 * ready connections, none more than one ahead of another */
	int h[4] = {0, 0, 0, 0}, from = 0;
	for (int k = 0; k < 8; k++) {
		int i = stream_pick_conn(4, ready, h, from);
		h[i]++;
		from = (i + 1) % 4;
	}
	assert_int_equal(h[0] + h[1] + h[3], 8);
	assert_int_equal(h[2], 0);
	assert_true(h[0] >= 2 && h[0] <= 3 && h[1] >= 2 && h[1] <= 3 &&
		    h[3] >= 2 && h[3] <= 3);
}

/* One FIFO connection, small units, acks in irregular bursts: the
 * receiver's stamps and the send interval keep samples at the delivery
 * rate (0.95 R here), where the ack interval alone reads up to 1.5x;
 * samples over less than the min RTT are dropped; app-limited samples
 * below the estimate leave it alone. */
static void test_rate_ack_compression(void **state)
{
	(void)state;
	const uint64_t R = 12500000, unit = 64 << 10, owd = 20000000;
	const uint64_t tx = unit * 1000000000ull / R; /* 5.2 ms per unit */
	struct pace_rs rs;
	pace_rs_init(&rs, 0);
	struct pace_rs_unit u[64];
	uint64_t now0 = 1000000000, hi = 0, hi_ack = 0, inflight = 0;
	/* The sender paces at 0.95 R (no queue), the link drains at R; each
	 * ack is held 0-50 ms (the receiver's I/O thread, either side waiting
	 * for a CPU under TCG), in order: one held ack bunches the next. */
	enum { N = 4096 };
	static uint64_t sent_t[N], rcv_t[N], ack_t[N];
	uint32_t x = 88172645u;
	for (int i = 0; i < N; i++) {
		sent_t[i] = now0 + (uint64_t)i * tx * 20 / 19;
		uint64_t start = i ? rcv_t[i - 1] - owd : sent_t[i];
		if (start < sent_t[i])
			start = sent_t[i];
		rcv_t[i] = start + tx + owd;
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		ack_t[i] = rcv_t[i] + owd + (uint64_t)(x % 50) * 1000000;
		if (i && ack_t[i] < ack_t[i - 1])
			ack_t[i] = ack_t[i - 1];
	}
	/* events in time order (an ack before a send at the same time) */
	int snt = 0;
	for (int i = 0; i < N; i++) {
		while (snt < N && sent_t[snt] < ack_t[i]) {
			pace_rs_on_send(&rs, &u[snt % 64], sent_t[snt],
					inflight);
			inflight += unit;
			snt++;
		}
		uint64_t ack = ack_t[i];
		struct pace_rs_sample s;
		inflight -= unit;
		pace_rs_on_ack(&rs, &u[i % 64], unit, ack, rcv_t[i], 0, 40000000,
			       &s);
		if (s.rate > hi)
			hi = s.rate;
		if (s.rate)
			assert_true(s.interval_ns >= 40000000);
		uint64_t ae = ack - u[i % 64].delivered_ns;
		if (ae && s.delivered * 1000000000ull / ae > hi_ack)
			hi_ack = s.delivered * 1000000000ull / ae;
	}
	print_message("  ack-interval max %.1f, sampler max %.1f Mbit/s\n",
		      hi_ack * 8e-6, hi * 8e-6);
	assert_true(hi_ack > R * 5 / 4); /* bunched acks alone would */
	assert_true(hi <= R && hi >= R * 9 / 10);

	/* The stream's filter (slots of 2.5 path RTTs): the application
	 * stalls for seconds, its samples (rate 0 here) leave the estimate
	 * alone; fresh samples at half the rate replace it within the
	 * window (25 slots of 100 ms). */
	struct pace_model cc;
	pace_model_init(&cc, 0, 0, unit, 4 * unit);
	cc.bw_slot_rtts = 2.5;
	uint64_t now = 1000000000, d = 0;
	for (int i = 0; i < 200; i++) {
		now += tx;
		d += unit;
		pace_model_on_probe(&cc, now, 40000000);
		pace_model_on_ack(&cc, now, 40000000, R,
				  d > 8 * unit ? d - 8 * unit : 0, d, 8 * unit);
	}
	assert_true(pace_model_long_path(&cc));
	assert_int_equal(cc.btlbw, R);
	for (int i = 0; i < 100; i++) {
		now += 40000000;
		d += unit;
		pace_model_on_ack(&cc, now, 40000000, 0, d - unit, d, unit);
	}
	assert_int_equal(cc.btlbw, R);
	for (int i = 0; i < 100; i++) {
		now += 40000000;
		d += unit;
		pace_model_on_ack(&cc, now, 40000000, R / 2, d - unit, d, unit);
	}
	assert_int_equal(cc.btlbw, R / 2);
}

/* Startup's ramp at the receiver: the arrival rate doubles every 200 ms
 * until the link (40 Mbit/s) is full; one 256 KiB chunk completes per
 * ack, 6 connections' worth of sampler window (3 MiB, 0.6 s at the link).
 * Within 200 ms of the link filling, a window of two path RTTs of the
 * receiver's time (rcv_window_ns) reads the link; the byte window alone
 * still reads the ramp. */
static uint64_t startup_ramp_max(uint64_t rcv_window_ns)
{
	const double R = 5e6, dbl = 0.2, t_sat = 0.8;
	const uint64_t unit = 256 << 10, owd = 20000000, t0 = 1000000000;
	enum { N = 48 };
	uint64_t rcv[N], sent[N];
	double t = 0, bytes = 0;
	for (int i = 0; i < N; i++) {
		/* receiver time at which chunk i completes, 1 ms steps */
		while (bytes < (double)(i + 1) * (double)unit) {
			double r = t >= t_sat ? R
					      : R * exp2((t - t_sat) / dbl);
			bytes += r * 1e-3;
			t += 1e-3;
		}
		rcv[i] = t0 + (uint64_t)(t * 1e9);
		/* it left as the one before began to arrive */
		sent[i] = (i ? rcv[i - 1] : t0) - owd;
	}
	struct pace_rs rs;
	pace_rs_init(&rs, 12 * unit);
	rs.rcv_window_ns = rcv_window_ns;
	struct pace_rs_unit u[N];
	uint64_t hi = 0, inflight = 0;
	int snt = 0;
	for (int i = 0; i < N; i++) {
		uint64_t ack = rcv[i] + owd;
		while (snt < N && sent[snt] < ack) {
			pace_rs_on_send(&rs, &u[snt], sent[snt], inflight);
			inflight += unit;
			snt++;
		}
		struct pace_rs_sample smp;
		inflight -= unit;
		pace_rs_on_ack(&rs, &u[i], unit, ack, rcv[i],
			       (uint64_t)(i + 1) * unit, 2 * owd, &smp);
		assert_true(smp.rate <= (uint64_t)(R * 1.02));
		if (rcv[i] <= t0 + (uint64_t)((t_sat + 0.2) * 1e9) &&
		    smp.rate > hi)
			hi = smp.rate;
	}
	return hi;
}

static void test_rate_startup_window(void **state)
{
	(void)state;
	uint64_t bytes_only = startup_ramp_max(0);
	uint64_t timed = startup_ramp_max(80000000);
	print_message("  0.2 s after the link fills: %.1f Mbit/s by bytes, "
		      "%.1f by 80 ms of receiver time (link 40.0)\n",
		      bytes_only * 8e-6, timed * 8e-6);
	assert_true(timed >= 4900000);
	assert_true(bytes_only < 4000000);
}

static void test_cc_cap(void **state)
{
	(void)state;
	struct pace_model cc;
	pace_model_init(&cc, 1000000, 0, 1 << 21, 1 << 22);
	assert_int_equal(cc.pacing_rate, 1000000);
	pace_model_on_ack(&cc, 10, 1000000, 50000000, 0, 1 << 20, 0);
	assert_int_equal(cc.pacing_rate, 1000000);
}

static void test_size_pipe(void **state)
{
	(void)state;
	int n, d;
	stream_size_pipe(50000, 125000000, 1 << 20, 64, &n, &d); /* loopback */
	assert_int_equal(n, 1);
	assert_true(d >= 2 && d <= 8);
	/* 10 ms, 1G: BDP 1.25 MB, one connection per 256 KiB */
	stream_size_pipe(10000000, 125000000, 256 << 10, 64, &n, &d);
	assert_int_equal(n, 5);
	assert_true(d >= 2 * n && d >= 9);
	/* 40 ms, 1G: as many as a transfer has, less the path probe's */
	stream_size_pipe(40000000, 125000000, 256 << 10, 64, &n, &d);
	assert_int_equal(n, STREAM_MAX_STREAMS);
	assert_int_equal(d, 64);
	stream_size_pipe(150000000, 1250000000, 1 << 20, 64, &n, &d);
	assert_int_equal(n, STREAM_MAX_STREAMS);
	assert_int_equal(d, 64);
}

static void test_journal(void **state)
{
	(void)state;
	char path[] = "/tmp/wccl-journal-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct stream_journal j;
	int resumed;
	assert_int_equal(
	    stream_journal_open(&j, path, 10 << 20, 1234, 1 << 20, 1, &resumed),
	    0);
	assert_int_equal(resumed, 0);
	assert_int_equal(j.nchunks, 10);
	stream_journal_set(&j, 0);
	stream_journal_set(&j, 7);
	stream_journal_set(&j, 7);
	assert_int_equal(j.verified, 2);
	assert_int_equal(stream_journal_flush(&j), 0);
	stream_journal_close(&j);
	/* same source: bits come back */
	assert_int_equal(
	    stream_journal_open(&j, path, 10 << 20, 1234, 1 << 20, 1, &resumed),
	    0);
	assert_int_equal(resumed, 1);
	assert_int_equal(j.verified, 2);
	assert_true(stream_journal_has(&j, 7) && !stream_journal_has(&j, 6));
	stream_journal_close(&j);
	/* changed mtime: start over */
	assert_int_equal(
	    stream_journal_open(&j, path, 10 << 20, 1235, 1 << 20, 1, &resumed),
	    0);
	assert_int_equal(resumed, 0);
	assert_int_equal(j.verified, 0);
	stream_journal_close(&j);
	unlink(path);
}

/* The ICMP probe over loopback (IPv4 and, where the host has it, IPv6):
 * echoes come back as samples of a plausible RTT, and nothing else is
 * taken for one. Skipped where the host allows neither an unprivileged
 * nor a raw ICMP socket. */
static int icmp_round(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	assert_int_equal(wccl_sock_parse(addr, 0, &ss, &len), 0);
	struct stream_icmp p;
	int rc = stream_icmp_open(&p, (struct sockaddr *)&ss, len);
	if (rc == -EACCES || rc == -EPERM || rc == -EAFNOSUPPORT ||
	    rc == -EADDRNOTAVAIL || rc == -ENETUNREACH)
		return 0;
	assert_int_equal(rc, 0);
	uint64_t r = 0;
	assert_int_equal(stream_icmp_recv(&p, &r), 0); /* nothing yet */
	int got = 0;
	for (int i = 0; i < 5; i++)
		assert_int_equal(stream_icmp_send(&p), 0);
	for (int w = 0; w < 1000 && got < 5; w++) {
		while (stream_icmp_recv(&p, &r) == 1) {
			assert_true(r > 0 && r < 100000000ull);
			got++;
		}
		usleep(1000);
	}
	print_message("  %s (%s socket): %d of 5 echoes, last %.0f us\n",
		      addr, p.raw ? "raw" : "datagram", got, (double)r / 1e3);
	assert_int_equal(got, 5);
	stream_icmp_close(&p);
	return 1;
}

static void test_icmp_probe(void **state)
{
	(void)state;
	if (!icmp_round("127.0.0.1"))
		skip();
	icmp_round("[::1]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc_sw),
	    cmocka_unit_test(test_crc_hw),
	    cmocka_unit_test(test_crc_agree),
	    cmocka_unit_test(test_cc_converges),
	    cmocka_unit_test(test_cc_cap),
	    cmocka_unit_test(test_cc_probe),
	    cmocka_unit_test(test_cc_probe_up_held),
	    cmocka_unit_test(test_cc_probe_up_grows),
	    cmocka_unit_test(test_cc_steady_at_link),
	    cmocka_unit_test(test_cc_queue_rate),
	    cmocka_unit_test(test_cc_queue_rate_rises),
	    cmocka_unit_test(test_cc_queue_rate_cruise_floor),
	    cmocka_unit_test(test_cc_probe_min_window),
	    cmocka_unit_test(test_cc_room_keeps_estimate),
	    cmocka_unit_test(test_cc_drain_keeps_factor),
	    cmocka_unit_test(test_cc_startup_exit),
	    cmocka_unit_test(test_rate_ack_compression),
	    cmocka_unit_test(test_rate_startup_window),
	    cmocka_unit_test(test_rate_striped),
	    cmocka_unit_test(test_rate_stalls),
	    cmocka_unit_test(test_window_long_path),
	    cmocka_unit_test(test_size_pipe),
	    cmocka_unit_test(test_pick_chunk),
	    cmocka_unit_test(test_pace_caps),
	    cmocka_unit_test(test_pace_headroom),
	    cmocka_unit_test(test_pick_conn),
	    cmocka_unit_test(test_journal),
	    cmocka_unit_test(test_icmp_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
