/* SPDX-License-Identifier: MIT */
#ifndef WCCL_STREAM_H
#define WCCL_STREAM_H

/*
 * Long-haul streaming: move one large file to a peer over a wide-area
 * path, in chunks striped over several connections, paced at the
 * bottleneck rate with a queueing-delay target, every chunk CRC32C-checked
 * by the receiver (a bad one is sent again, never written), resumable from
 * what the receiver verified. wccl-xfer is a thin main over these calls.
 *
 *   receiver: wccl_stream_server_open(NULL, "0.0.0.0:18600", dir, &srv, a, n)
 *             while (...) wccl_stream_server_run_one(srv, -1, &st, err, n)
 *             wccl_stream_server_close(srv)
 *   sender:   wccl_stream_send_file("big.img", "uring:host:18600", &opts,
 *                                   &st, err, n)
 *
 * Errors: 0 or a negative wccl code (wccl_strerror()); on failure @err
 * (may be NULL) gets one line naming the side, the peer and the cause,
 * e.g. "receiver host (uring:...): writing /d/f at offset ...: No space
 * left on device (... bytes verified and kept for --resume)".
 * Memory: a fixed pool of chunk buffers per transfer, allocated at its
 * start; nothing is allocated per chunk. Files larger than memory stream
 * through. Both calls block, each wait bounded by the no-progress timeout.
 * Threads: each side runs one I/O thread per transfer (file reads/writes
 * and CRC32C), joined before the call returns (WCCL_STREAM_IO_THREAD=0:
 * none). The structs below only grow at the end, into reserved space:
 * zero-initialise them (designated initialisers do).
 */
#include <stddef.h>
#include <stdint.h>

/* What a transfer did. Sender side unless noted; the receiver fills the
 * byte counts, crc_errors, seconds, goodput_bps and file_crc. */
struct wccl_stream_stats {
	uint64_t file_bytes;	  /* size of the source */
	uint64_t bytes_delivered; /* new application bytes acked this run */
	uint64_t bytes_skipped;	  /* already verified at the receiver */
	uint64_t bytes_wire;	  /* payload sent, retransmits included */
	uint64_t chunks;	  /* chunks acked this run */
	uint64_t retransmits;	  /* chunks sent again (crc NAK) */
	uint64_t crc_errors;	  /* chunks the receiver rejected */
	double seconds;		  /* first DATA to FIN_ACK */
	double goodput_bps;	  /* bytes_delivered * 8 / seconds */
	/* chunk round trips, the receiver's processing time taken off */
	double rtt_min_us, rtt_p50_us, rtt_p99_us, rtt_p999_us;
	double jitter_us; /* RFC 3550 one-way delay variation of chunks */
	/* the path probe: pings on a connection that carries no data */
	double probe_min_us, probe_p50_us, probe_p99_us;
	double pacing_bps;   /* current pacing rate (0: unpaced) */
	double btlbw_bps;    /* max recent delivery rate */
	uint64_t cwnd_bytes; /* current in-flight cap */
	int nstreams;
	int depth; /* chunk buffers (max chunks in flight) */
	uint32_t chunk_bytes;
	uint32_t file_crc; /* CRC32C of the whole file */
	int done;	   /* 1: complete and verified */
	uint64_t probe_samples; /* pongs the path probe got back */
	/* the ICMP echo probe (long paths, where the host allows it): the
	 * peer's kernel answers, ours stamps the reply */
	uint64_t icmp_samples;
	double icmp_min_us, icmp_p50_us, icmp_p99_us;
	uint64_t reserved[3];
};

struct wccl_stream_opts {
	const char *provider; /* NULL: from the address (uring) */
	int nstreams;	      /* 0: from the BDP estimate */
	uint64_t rate_bps;    /* cap, bits/s (0: none) */
	uint32_t chunk_bytes; /* 0: WCCL_STREAM_CHUNK_BYTES */
	int resume;	      /* keep what the receiver has verified */
	int timeout_ms;	      /* no-progress timeout; < 0: WCCL_TIMEOUT_MS */
	/* Called about every 250 ms and once at the end (may be NULL), on
	 * the calling thread. */
	void (*progress)(const struct wccl_stream_stats *st, void *arg);
	void *arg;
	uint64_t reserved[8];
};

/* Send file @path to the receiver at @addr ("uring:host:port",
 * "shm:..."), with @o (NULL: defaults). Fills @st (may be NULL) whether
 * or not it succeeds. Returns 0 when the receiver verified the whole file
 * (its CRC32C equals the source's), else the failure: -WCCL_EINVAL (bad
 * options, not a regular file), a negated errno reading the source,
 * -WCCL_ETIMEDOUT (no progress for the timeout), -WCCL_EPEER_LOST or the
 * code the receiver reported (disk full: -ENOSPC). Blocks until then. */
int wccl_stream_send_file(const char *path, const char *addr,
			  const struct wccl_stream_opts *o,
			  struct wccl_stream_stats *st, char *err,
			  size_t errlen);

struct wccl_stream_server;

/* Listen for senders on @bind (provider @provider, NULL = uring) and
 * store received files in directory @dir (files are named by the sender,
 * without any path; a journal "<name>.wccl-part" exists while a file is
 * incomplete). *@srv is the new server; @addr_out gets the address to give
 * senders. Returns 0, -WCCL_EINVAL (@dir not a directory), a negated
 * errno, or the provider's failure. Does not block. */
int wccl_stream_server_open(const char *provider, const char *bind,
			    const char *dir, struct wccl_stream_server **srv,
			    char *addr_out, size_t addrlen);

/* Serve one transfer: waits up to @accept_timeout_ms (< 0: forever) for a
 * sender, then runs the session (bounded by the no-progress timeout).
 * Returns 0 when a file arrived complete and verified, -WCCL_ETIMEDOUT if
 * nobody came, or the failure (@err says what, naming the sender); what
 * was verified stays on disk for a resume. @st may be NULL. */
int wccl_stream_server_run_one(struct wccl_stream_server *srv,
			       int accept_timeout_ms,
			       struct wccl_stream_stats *st, char *err,
			       size_t errlen);

/* Stop listening and free @srv (NULL is fine). */
void wccl_stream_server_close(struct wccl_stream_server *srv);

#endif
