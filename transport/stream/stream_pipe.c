/* SPDX-License-Identifier: MIT */
/* How many striped connections and chunk buffers a path needs. */
#include "stream.h"

void stream_size_pipe(uint64_t rtt_ns, uint64_t rate_Bps, uint32_t chunk,
		      int max_depth, int *nstreams, int *depth)
{
	/* One connection per 256 KiB of BDP, up to one short of the most
	 * endpoints (the path probe takes the last). On a lossy long path
	 * each TCP connection is loss-limited (Mathis: ~11 Mbit/s at 0.1 %
	 * and 40 ms), and the kernel pacing cap leaves each only ~10 %
	 * above its share: while one is in loss recovery the others carry
	 * the rate only if there are ~11 of them. In the VM on lossy at
	 * 100 Mbit/s, 40 ms: 15 connections 82 / 83 Mbit/s, 12 64 / 73, 6
	 * (one per MiB, as before) 56 / 51; at 40 Mbit/s 36.4 (15), 35.9
	 * (12), 34.4 (6), means of 2-3. More than 15 did worse (20: 59 /
	 * 36, in a build with more endpoints): a rate sample spans 2 chunks
	 * per connection, and startup's estimate lagged. */
	double bdp = (double)rate_Bps * (double)rtt_ns / 1e9;
	int n = (int)(bdp / (256 << 10)) + 1;
	if (n > STREAM_MAX_STREAMS)
		n = STREAM_MAX_STREAMS;
	/* + 2 per stream + 6: a chunk's RTT includes its own read, CRC and
	 * write, and two more are being read ahead by the I/O thread, so a
	 * few more than the BDP keep those stages busy. */
	int d = (int)(2 * bdp / chunk) + 2 * n + 6;
	if (d > max_depth)
		d = max_depth;
	if (d < 2 * n)
		d = 2 * n;
	*nstreams = n;
	*depth = d;
}

uint32_t stream_pick_chunk(uint64_t rtt_ns, uint64_t rate_Bps, uint32_t dflt)
{
	/* A short path is CPU-bound: the largest chunks cost least. */
	if (rtt_ns < STREAM_LONG_PATH_NS)
		return dflt;
	/* 32 chunks to the BDP (128 KiB at 40 ms for 1 Gbit/s): the window
	 * (2 BDP + a chunk per connection + 1) holds little more than the
	 * path needs, a round (a chunk's RTT) stays near the path's, and
	 * the last chunks, on connections whose windows carry 1/15 of the
	 * link each, end sooner. Against 16 (256 KiB), 3 alternating pairs
	 * in the VM: 100 Mbit/s lossy 88.0 vs 85.9 Mbit/s, east-west 79.4
	 * vs 81.2; 40 Mbit/s east-west 36.3 vs 35.0, lossy 35.7 vs 35.8
	 * with probe p99 55 vs 59 ms. (Session 11 had seen
	 * 128 KiB leave startup's estimate low at 40 Mbit/s; that was
	 * probe_bw's rate window over 2 chunks per connection, since gone.) */
	double want = (double)rate_Bps * (double)rtt_ns / 1e9 / 32;
	uint32_t c = STREAM_AUTO_CHUNK_MIN;
	while (c < dflt && (double)c * 2 <= want)
		c *= 2;
	return c < dflt ? c : dflt;
}

int stream_pace_caps(int n, const uint64_t *unsent, const uint64_t *cwnd_rate,
		     uint64_t base, uint64_t pct, uint64_t *cap, int *busy)
{
	int k = 0, lent = 0;
	for (int i = 0; i < n; i++)
		k += unsent[i] > 0;
	uint64_t share = k > 1 ? base / (uint64_t)k : base;
	uint64_t spare = 0;
	for (int i = 0; pct > 100 && k > 1 && i < n; i++) {
		if (!unsent[i] || !cwnd_rate[i] || cwnd_rate[i] >= share)
			continue;
		spare += share - cwnd_rate[i];
		lent++;
	}
	uint64_t own = share * pct / 100;
	uint64_t more = lent < k ? spare / (uint64_t)(k - lent) : 0;
	for (int i = 0; i < n; i++) {
		int lends = unsent[i] && cwnd_rate[i] && cwnd_rate[i] < share;
		cap[i] = own + (lends ? 0 : more);
	}
	*busy = k;
	return lent;
}

uint64_t stream_pace_headroom(uint64_t pct, uint64_t base, uint64_t learned)
{
	if (!base || !learned || learned >= base * pct / 100)
		return pct;
	uint64_t room = learned * 100 / base;
	return room > 100 ? room : 100;
}

int stream_pick_conn(int n, const int *ready, const int *held, int from)
{
	int best = -1;
	for (int k = 0; k < n; k++) {
		int i = (from + k) % n;
		if (ready[i] && (best < 0 || held[i] < held[best]))
			best = i;
	}
	return best;
}
