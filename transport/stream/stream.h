/* SPDX-License-Identifier: MIT */
#ifndef WCCL_STREAM_H_INTERNAL
#define WCCL_STREAM_H_INTERNAL

/*
 * Long-haul streaming engine: moves one large file (or buffer) to a peer
 * over the public transport API, in chunks striped over N endpoints.
 *
 *   sender                                         receiver
 *   ep0  HELLO{name,size,mtime,chunk,N,resume} -->  open file + journal
 *        <-- HELLO_ACK{status, chunk, verified bitmap}
 *        (resuming with a chunk size the sender picked itself: the
 *        receiver's journal names the size, the sender takes it)
 *        PING/PONG x3 (min RTT) -> N, in-flight depth from RTT x target
 *   ep1..N-1  JOIN{stream id} --> / <-- JOIN_ACK
 *   any ep  DATA{hdr: id, index, offset, len, crc32c, send_ts}+payload -->
 *        <-- ACK{index, send_ts echo, recv_ts} or NAK (crc bad: resend)
 *   ep0  FIN{whole-file crc32c} --> re-read file, compare, drop journal
 *        <-- FIN_ACK{status}
 *   either side: ERROR{code, "receiver host: path: cause"}
 *
 * Memory is bounded: a fixed pool of registered chunk buffers on each side
 * (pread into a slot, send; recv into a slot, verify, pwrite). Nothing
 * allocates per chunk. Every wait is bounded by @timeout_ms without
 * progress. Functions return 0 or a negative wccl code; on failure @err
 * holds one line naming the peer and the cause.
 */
#include <stddef.h>
#include <stdint.h>
#include <wccl/stream.h>

#include "transport/pacing/pace_model.h"

/* ---- pure pieces, exposed for unit tests ---------------------------- */

/* Streams and chunk buffers for @rtt_ns at @rate_Bps (bytes/s). */
void stream_size_pipe(uint64_t rtt_ns, uint64_t rate_Bps, uint32_t chunk,
		      int max_depth, int *nstreams, int *depth);

/* Below this path RTT the engine treats the path as short (LAN,
 * loopback), as the pacing model does (pace_model_long_path). */
#define STREAM_LONG_PATH_NS 2000000ull
#define STREAM_AUTO_CHUNK_MIN (64u << 10)
/* Data connections of one transfer: the endpoints less the path probe's
 * (STREAM_MAX_EPS in stream_common.h). */
#define STREAM_MAX_STREAMS 15
/* HELLO flags: resume from the receiver's journal; the chunk size is the
 * sender's own pick, so the receiver's journal may set it. */
#define STREAM_HELLO_RESUME 1u
#define STREAM_HELLO_CHUNK_AUTO 4u

/* Chunk size when the user set none: @dflt on a short path (@rtt_ns
 * below STREAM_LONG_PATH_NS); on a long one the largest power of two
 * from STREAM_AUTO_CHUNK_MIN up to @dflt that is at most 1/32 of
 * @rtt_ns x @rate_Bps. */
uint32_t stream_pick_chunk(uint64_t rtt_ns, uint64_t rate_Bps, uint32_t dflt);

/* Kernel pacing caps (bytes/s) of @n connections: each gets @pct % of its
 * share of @base, the share being @base over the connections with
 * @unsent bytes. While @pct > 100, a busy connection whose congestion
 * window carries less than its share (@cwnd_rate, bytes/s; 0 = unknown)
 * keeps its cap, and what it cannot use goes to the others' caps.
 * Returns how many lent; *@busy gets the count with unsent bytes. */
int stream_pace_caps(int n, const uint64_t *unsent, const uint64_t *cwnd_rate,
		     uint64_t base, uint64_t pct, uint64_t *cap, int *busy);

/* The kernel caps' @pct, lowered so that the connections together
 * (@base x pct / 100) go no higher than @learned, the rate that began the
 * path's last queue (0: none), nor under 100. The headroom is for a
 * connection catching up after a loss while the others keep their share;
 * above the learned rate it made queues instead: in the VM (lossy, 50
 * Mbit/s, 7 pairs) the time over 2 ms went from 10.0 to 7.5 %, and the
 * fewer cuts of the delay factor gave 45.0 Mbit/s, not 43.6. */
uint64_t stream_pace_headroom(uint64_t pct, uint64_t base, uint64_t learned);

/* Of @n connections, the @ready one holding the fewest chunk buffers
 * (@held), the first from @from on (wrapping) among equals; -1 if none
 * is ready. */
int stream_pick_conn(int n, const int *ready, const int *held, int from);

/* Journal of verified chunks ("<file>.wccl-part"). */
struct stream_journal {
	int fd;
	uint64_t size;
	int64_t mtime_ns;
	uint32_t chunk_bytes;
	uint64_t nchunks;
	uint64_t stream_id;
	uint32_t file_crc;
	uint32_t flags; /* bit 0: file_crc known */
	uint8_t *bitmap;
	uint64_t verified;
	int dirty;
};

/* Open @path: if it exists and matches (size, mtime, chunk) and @resume,
 * load its bitmap (*@resumed = 1); else start a fresh one, written out
 * whole so later updates need no new disk space. */
int stream_journal_open(struct stream_journal *j, const char *path,
			uint64_t size, int64_t mtime_ns, uint32_t chunk,
			int resume, int *resumed);
/* The chunk size of the journal at @path if it is one for a file of
 * @size and @mtime_ns, else 0. */
uint32_t stream_journal_chunk(const char *path, uint64_t size,
			      int64_t mtime_ns);
int stream_journal_flush(struct stream_journal *j);
void stream_journal_close(struct stream_journal *j);
static inline int stream_journal_has(const struct stream_journal *j, uint64_t i)
{
	return (j->bitmap[i >> 3] >> (i & 7)) & 1;
}
static inline void stream_journal_set(struct stream_journal *j, uint64_t i)
{
	if (!stream_journal_has(j, i)) {
		j->bitmap[i >> 3] |= (uint8_t)(1u << (i & 7));
		j->verified++;
		j->dirty = 1;
	}
}

#endif
