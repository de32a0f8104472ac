/* SPDX-License-Identifier: MIT */
#ifndef WCCL_VERBS_INFLIGHT_H
#define WCCL_VERBS_INFLIGHT_H

/*
 * Bytes in flight per endpoint (WCCL_VERBS_MAX_INFLIGHT): payload handed to
 * the HCA on any of the endpoint's QPs and not yet acknowledged. rxe (and
 * RoCE without congestion control) sends a QP's whole window at line rate:
 * 16 QPs x 128 packets x 4 KiB = 8 MiB against a shallow bottleneck queue
 * loses whole bursts, and every QP then waits out its ACK timeout. With a
 * cap, work past it stays queued in the endpoint (never failed) and goes
 * out as acknowledgements return.
 *
 * Large writes and striped sends are cut into pieces of at most
 * cap / QPs bytes, so all QPs stay busy under the cap; an operation that
 * cannot be cut (a send on the message QP, a write with immediate) goes
 * alone when nothing else is in flight, so it is never stuck: the peak is
 * max(cap, largest such operation). Pure: no verbs types (unit-tested in
 * tests/unit/test_verbs_inflight.c).
 */
#include <stdbool.h>
#include <stdint.h>

#define VERBS_PIECE_ALIGN 4096u

struct verbs_inflight {
	uint64_t cap;	/* 0 = no cap */
	uint64_t bytes; /* issued, not yet acknowledged */
	uint64_t peak;	/* most bytes ever in flight at once */
	uint64_t waits; /* times issuing stopped at the cap */
	bool held;	/* stopped there, nothing issued since */
};

/* May @len more bytes go now? When not, counts a wait (once per stop:
 * asking again before anything was issued is the same wait). */
static inline bool verbs_inflight_may(struct verbs_inflight *f, uint64_t len)
{
	if (!f->cap || !f->bytes || f->bytes + len <= f->cap)
		return true;
	if (!f->held)
		f->waits++;
	f->held = true;
	return false;
}

static inline void verbs_inflight_add(struct verbs_inflight *f, uint64_t len)
{
	f->held = false;
	f->bytes += len;
	if (f->bytes > f->peak)
		f->peak = f->bytes;
}

static inline void verbs_inflight_done(struct verbs_inflight *f, uint64_t len)
{
	f->bytes = len < f->bytes ? f->bytes - len : 0;
}

/* Piece size for @len bytes over @n QPs: an even share rounded up to a
 * page (at most @n pieces), and under a cap no more than cap / n (at
 * least a page), so n pieces fit in flight together. */
static inline uint64_t verbs_piece_len(uint64_t len, uint32_t n, uint64_t cap)
{
	if (!n)
		n = 1;
	uint64_t a = VERBS_PIECE_ALIGN;
	uint64_t p = ((len + n - 1) / n + a - 1) & ~(a - 1);
	if (cap) {
		uint64_t c = (cap / n) & ~(a - 1);
		if (c < a)
			c = a;
		if (c < p)
			p = c;
	}
	return p ? p : a;
}

#endif
