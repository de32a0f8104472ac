/* SPDX-License-Identifier: MIT */
/*
 * lat --op write-poll: ping-pong the way ib_write_lat does it. Each side
 * RDMA-writes (no immediate) into the peer's region; the message's last
 * byte is a per-round marker, and the peer spins on that byte in its own
 * memory instead of waiting for a completion. The spin calls wccl_cq_poll,
 * which is what drives providers whose target copies the data itself
 * (uring, shm inline writes), and reaps our own write completions.
 *
 *   slots 0/1  this side's outgoing messages, alternating by write count
 *   slots 2/3  incoming: round k lands in slot 2 + (k & 1)
 *
 *   client: t0, write ping k -> server slot 2+(k&1), spin on own slot
 *           2+(k&1), t1
 *   server: spin on slot 2+(k&1), write pong k -> client slot 2+(k&1)
 *
 * Markers are 1 + k % 255: never 0 (perf_lat_poll_arm zeroes the polled
 * bytes before each run) and never the value of round k - 2, the last
 * message that slot held. A source slot is reused two writes later, and
 * only after the write that last used it has completed (the contract gives
 * a buffer back with its completion); the wait for that is inside the
 * timed part (on rxe in the VM it waited in up to half the rounds, 7-63 us
 * on average: ib_write_lat waits for every write's completion).
 *
 * At the end of a run each side waits for its last write's completion, so
 * nothing is in flight when the session closes.
 *
 * -c: each message is the pattern of its round plus the marker. It is
 * checked when the next one arrives (or after the run's RESULT): seeing the
 * last byte says that byte landed, and nothing in the contract orders the
 * others before it (a large shm write is one memcpy by the initiator, which
 * may store its head last). The peer only writes round k + 1 after seeing
 * our answer to k, so by then round k is whole, and slot k & 1 is not
 * written again before we answer k + 1.
 */
#include <stdio.h>

#include "core/clock.h"
#include "perf.h"

enum { POLL_LANDED = 0, POLL_CTRL = 1 }; /* poll_spin's results */
#define POLL_SPINS_PER_CLOCK 256	 /* spins between looks at the clock */

static inline uint8_t poll_marker(uint64_t k)
{
	return (uint8_t)(1 + k % 255);
}

static uint8_t *poll_rx(struct perf_session *s, uint64_t k)
{
	return perf_slot(s, 2 + (unsigned)(k & 1));
}

void perf_lat_poll_arm(struct perf_session *s, uint64_t size)
{
	poll_rx(s, 0)[size - 1] = 0;
	poll_rx(s, 1)[size - 1] = 0;
}

/* One completion during a spin. Only our writes and control traffic can
 * come: nothing else is posted in this mode. */
static int poll_event(struct perf_session *s, const struct wccl_completion *c)
{
	unsigned kind = PERF_KIND(c->cookie);
	if (kind == PERF_K_CTRL_RX || kind == PERF_K_CTRL_TX)
		return perf_ctrl_event(s, c);
	if (c->status)
		return perf_fail(s, c->ep, c->status, "write-poll ping-pong");
	if (kind != PERF_K_DATA || c->op != WCCL_OP_WRITE || !s->poll_busy) {
		fprintf(stderr,
			"wccl-perf: unexpected completion (op %u) on the "
			"connection to %s during write-poll\n",
			c->op, s->peer);
		return WCCL_EPROTO;
	}
	s->poll_busy--;
	return 0;
}

/* Handle what control waits stashed, then poll the CQ once. 0, POLL_CTRL
 * if a control message waits, or a negative code. */
static int poll_reap(struct perf_session *s)
{
	struct wccl_completion wc[8];
	int rc, n;
	while (s->n_stash) {
		if ((n = perf_wait_data(s, wc, 8, "write-poll")) < 0)
			return n;
		for (int i = 0; i < n; i++)
			if ((rc = poll_event(s, &wc[i])))
				return rc;
	}
	if ((n = wccl_cq_poll(s->cq, wc, 8)) < 0)
		return perf_fail(s, NULL, n, "polling the CQ");
	for (int i = 0; i < n; i++)
		if ((rc = poll_event(s, &wc[i])))
			return rc;
	return s->ctrl_rx_full ? POLL_CTRL : 0;
}

static void poll_timeout(const struct perf_session *s, const char *what)
{
	fprintf(stderr, "wccl-perf%s: %s: nothing from peer %s within %d ms\n",
		s->server ? " server" : "", what, *s->peer ? s->peer : "?",
		s->o->timeout_ms);
}

/* Spin until @byte reads @want (POLL_LANDED), a control message arrives
 * (POLL_CTRL), or the run's timeout passes. The clock is read only every
 * POLL_SPINS_PER_CLOCK spins, so the first ones cost one load and a poll. */
static int poll_spin(struct perf_session *s, const uint8_t *byte, uint8_t want,
		     const char *what)
{
	uint64_t deadline = 0;
	for (unsigned spins = 1;; spins++) {
		if (__atomic_load_n(byte, __ATOMIC_ACQUIRE) == want)
			return POLL_LANDED;
		int rc = poll_reap(s);
		if (rc)
			return rc;
		if (spins % POLL_SPINS_PER_CLOCK)
			continue;
		if (!deadline) {
			deadline = wccl_deadline_ns(s->o->timeout_ms);
		} else if (wccl_now_ns() >= deadline) {
			poll_timeout(s, what);
			return WCCL_ETIMEDOUT;
		}
	}
}

/* One reap while poll_send waits for @what; the deadline starts on the
 * first call. A control message here means the peer gave up. */
static int poll_wait_step(struct perf_session *s, uint64_t *deadline,
			  const char *what)
{
	int rc = poll_reap(s);
	if (rc == POLL_CTRL) {
		fprintf(stderr, "wccl-perf: %s stopped the run\n", s->peer);
		return WCCL_EPROTO;
	}
	if (rc)
		return rc;
	if (!*deadline) {
		*deadline = wccl_deadline_ns(s->o->timeout_ms);
	} else if (wccl_now_ns() >= *deadline) {
		poll_timeout(s, what);
		return WCCL_ETIMEDOUT;
	}
	return 0;
}

/* Write round @k's message of @size bytes into the peer's slot for it. */
static int poll_send(struct perf_session *s, uint64_t size, uint64_t k)
{
	struct wccl_endpoint *ep = s->data[0];
	uint64_t deadline = 0;
	int rc;
	/* The slot we refill was the source of our write before last. */
	while (s->poll_busy > 1)
		if ((rc = poll_wait_step(s, &deadline,
					 "waiting for a write to complete")))
			return rc;
	uint8_t *tx = perf_slot(s, (unsigned)(s->poll_posted & 1));
	if (s->p.check)
		perf_pattern_fill(tx, size - 1, k);
	tx[size - 1] = poll_marker(k);
	const uint64_t off = (2 + (k & 1)) * s->p.max_size;
	/* A full queue (two writes in flight should never fill one): reap
	 * and try again. */
	while ((rc = wccl_post_write(ep, tx, size, s->mr, &s->peer_rk, off, 0,
				     0, PERF_COOKIE(PERF_K_DATA, k))) ==
	       WCCL_EAGAIN)
		if ((rc = poll_wait_step(s, &deadline,
					 "waiting for room to write")))
			return rc;
	if (rc)
		return perf_fail(s, ep, rc, "writing a message");
	s->poll_posted++;
	s->poll_busy++;
	return 0;
}

/* -c: round @k's message in @buf. 0 if good, 1 after recording it. */
static int poll_check(struct perf_check *c, const uint8_t *buf, uint64_t size,
		      uint64_t k, const char *peer)
{
	if (perf_check_msg(c, buf, size - 1, size - 1, k, peer))
		return 1;
	uint8_t got = buf[size - 1], want = poll_marker(k);
	if (got == want)
		return 0;
	if (!c->errors++) {
		c->bad_iter = k;
		c->bad_off = size - 1;
		c->expect = want;
		c->got = got;
		fprintf(stderr,
			"wccl-perf: data check failed on data from %s: "
			"iteration %llu offset %llu (the marker): expected "
			"0x%02x got 0x%02x\n",
			peer, (unsigned long long)k,
			(unsigned long long)(size - 1), want, got);
	}
	return 1;
}

int perf_lat_poll_round(struct perf_session *s, uint64_t size, uint64_t k,
			uint64_t *rtt)
{
	uint64_t t0 = wccl_now_ns();
	int rc = poll_send(s, size, k);
	if (rc)
		return rc;
	rc = poll_spin(s, poll_rx(s, k) + size - 1, poll_marker(k),
		       "waiting for a pong");
	uint64_t t1 = wccl_now_ns();
	if (rc == POLL_CTRL) {
		fprintf(stderr, "wccl-perf: %s stopped the run\n", s->peer);
		return WCCL_EPROTO;
	}
	if (rc)
		return rc;
	*rtt = t1 - t0;
	if (s->p.check && k &&
	    poll_check(&s->lat_check, poll_rx(s, k - 1), size, k - 1, s->peer))
		s->check_rc = WCCL_EIO;
	return 0;
}

int perf_lat_poll_drain(struct perf_session *s)
{
	uint64_t deadline = 0;
	int rc;
	while (s->poll_busy)
		if ((rc = poll_wait_step(s, &deadline,
					 "waiting for the last write to "
					 "complete")))
			return rc;
	return 0;
}

void perf_lat_poll_end(struct perf_session *s, uint64_t size, uint64_t k)
{
	if (s->p.check && k &&
	    poll_check(&s->lat_check, poll_rx(s, k - 1), size, k - 1, s->peer))
		s->check_rc = WCCL_EIO;
}

/* The client's DONE: check the last ping, answer with RESULT. */
static int poll_done(struct perf_session *s, uint64_t size, uint64_t k,
		     struct perf_check *chk)
{
	struct perf_msg m;
	int rc = perf_ctrl_take(s, &m);
	if (rc < 0)
		return rc;
	if (m.type != PERF_MSG_DONE || m.count != k) {
		fprintf(stderr,
			"wccl-perf: %s ended after %llu pings, %llu served\n",
			s->peer, (unsigned long long)m.count,
			(unsigned long long)k);
		return WCCL_EPROTO;
	}
	if ((rc = perf_lat_poll_drain(s)))
		return rc;
	if (s->p.check && k)
		poll_check(chk, poll_rx(s, k - 1), size, k - 1, s->peer);
	struct perf_msg res = {.type = PERF_MSG_RESULT,
			       .errors = chk->errors,
			       .bad_iter = chk->bad_iter,
			       .bad_off = chk->bad_off,
			       .expect = chk->expect,
			       .got = chk->got};
	if (chk->errors)
		s->check_rc = WCCL_EIO;
	return perf_msg_send(s, &res);
}

int perf_lat_poll_serve(struct perf_session *s, const struct perf_msg *run)
{
	const uint64_t size = run->size;
	struct perf_check chk = {0};
	int rc;

	perf_lat_poll_arm(s, size);
	struct perf_msg go = {.type = PERF_MSG_GO};
	if ((rc = perf_msg_send(s, &go)))
		return rc;
	for (uint64_t k = 0;; k++) {
		rc = poll_spin(s, poll_rx(s, k) + size - 1, poll_marker(k),
			       "waiting for a ping");
		if (rc == POLL_CTRL)
			return poll_done(s, size, k, &chk);
		if (!rc && s->p.check && k)
			poll_check(&chk, poll_rx(s, k - 1), size, k - 1,
				   s->peer);
		if (!rc)
			rc = poll_send(s, size, k);
		if (rc) {
			fprintf(stderr,
				"wccl-perf server: %llu pings answered in "
				"this run\n",
				(unsigned long long)k);
			return rc;
		}
	}
}
