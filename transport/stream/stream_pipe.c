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
