/* SPDX-License-Identifier: MIT */
/* How many striped connections and chunk buffers a path needs. */
#include "stream.h"

void stream_size_pipe(uint64_t rtt_ns, uint64_t rate_Bps, uint32_t chunk,
		      int max_depth, int *nstreams, int *depth)
{
	/* One connection per MiB of BDP: a Mathis-limited TCP stream at
	 * 0.1 % loss and 40 ms keeps only ~1 MiB in flight. */
	double bdp = (double)rate_Bps * (double)rtt_ns / 1e9;
	int n = (int)(bdp / (1 << 20)) + 1;
	if (n > 8)
		n = 8;
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
	/* Sixteen chunks to the BDP: the window (2 BDP + a chunk per
	 * connection + 1) then holds little more than the path needs, and
	 * a round (a chunk's RTT) stays near the path's. */
	double want = (double)rate_Bps * (double)rtt_ns / 1e9 / 16;
	uint32_t c = STREAM_AUTO_CHUNK_MIN;
	while (c < dflt && (double)c * 2 <= want)
		c *= 2;
	return c < dflt ? c : dflt;
}
