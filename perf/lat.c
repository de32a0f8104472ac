/* SPDX-License-Identifier: MIT */
/*
 * Ping-pong latency on one data endpoint. --op send: the client sends, the
 * server answers each message by sending it back. --op write: the client
 * writes with an immediate into the server's region, the server writes it
 * back into the client's with the same immediate. --op write-poll: plain
 * writes whose last byte the peer polls (lat_poll.c). The client times each
 * round trip; warm-up rounds are not recorded; reports are half round trips.
 *
 * Buffer slots: 0/1 client pings (alternating, so the next ping never
 * reuses a buffer a send may still read), 2/3 pongs. The server keeps one
 * receive posted across runs, alternating slots 0/1.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/params.h"
#include "perf.h"

#define LAT_CAP (4u << 20) /* samples kept in -D mode */

/* WCCL_PERF_SCHEDSTAT: where this process ran during a timed run and how
 * often it was switched out (on soft-RoCE the protocol runs in kworkers,
 * which take the core from whichever side shares it with them). */
struct lat_sched {
	int cpu;
	unsigned long long run_ns, wait_ns, slices;
};

static void lat_sched_take(struct lat_sched *x)
{
	x->cpu = sched_getcpu();
	x->run_ns = x->wait_ns = x->slices = 0;
	FILE *f = fopen("/proc/self/schedstat", "r");
	if (!f)
		return;
	if (fscanf(f, "%llu %llu %llu", &x->run_ns, &x->wait_ns, &x->slices) !=
	    3)
		x->run_ns = x->wait_ns = x->slices = 0;
	fclose(f);
}

static void lat_sched_print(const char *side, const struct lat_sched *a,
			    uint64_t rounds)
{
	struct lat_sched b;
	lat_sched_take(&b);
	unsigned long long n = b.slices - a->slices;
	fprintf(stderr,
		"SCHED %s cpu %d->%d run %.1f ms wait %.1f ms slices %llu",
		side, a->cpu, b.cpu, (double)(b.run_ns - a->run_ns) / 1e6,
		(double)(b.wait_ns - a->wait_ns) / 1e6, n);
	if (rounds)
		fprintf(stderr, " (%.2f a round)", (double)n / (double)rounds);
	fputc('\n', stderr);
}

/* One round trip: post the ping, wait for its pong. */
static int round_trip(struct perf_session *s, uint64_t size, uint64_t k,
		      uint64_t *rtt)
{
	struct wccl_endpoint *ep = s->data[0];
	const uint64_t ms = s->p.max_size;
	const uint64_t g = s->lat_seq; /* buffer parity across runs */
	uint8_t *tx = perf_slot(s, (unsigned)(g & 1));
	struct wccl_completion wc[8];
	int rc;

	if (s->p.check)
		perf_pattern_fill(tx, size, k);
	uint64_t t0 = wccl_now_ns();
	if (s->p.op == PERF_OP_WRITE)
		rc = wccl_post_write(ep, tx, size, s->mr, &s->peer_rk, 0,
				     (uint32_t)k, WCCL_WRITE_IMM,
				     PERF_COOKIE(PERF_K_DATA, k));
	else
		rc = wccl_post_send(ep, tx, size, s->mr,
				    PERF_COOKIE(PERF_K_DATA, k));
	if (rc)
		return perf_fail(s, ep, rc, "sending a ping");
	for (;;) {
		int n = perf_wait_data(s, wc, 8, "waiting for a pong");
		if (n < 0)
			return n;
		uint64_t t1 = wccl_now_ns();
		bool got = false;
		uint64_t len = 0;
		for (int i = 0; i < n; i++) {
			unsigned kind = PERF_KIND(wc[i].cookie);
			if (kind == PERF_K_CTRL_RX || kind == PERF_K_CTRL_TX) {
				if ((rc = perf_ctrl_event(s, &wc[i])))
					return rc;
				fprintf(stderr,
					"wccl-perf: %s stopped the run\n",
					s->peer);
				return WCCL_EPROTO;
			}
			if (wc[i].status)
				return perf_fail(s, wc[i].ep, wc[i].status,
						 "ping-pong");
			if (wc[i].op == WCCL_OP_RECV ||
			    wc[i].op == WCCL_OP_WRITE_IMM) {
				got = true;
				len =
				    wc[i].op == WCCL_OP_RECV ? wc[i].len : size;
			}
		}
		if (!got)
			continue;
		*rtt = t1 - t0;
		if (s->p.op == PERF_OP_SEND) {
			/* The next pong's buffer, before the next ping. */
			rc = wccl_post_recv(ep, perf_slot(s, 2 + ((g + 1) & 1)),
					    ms, s->mr,
					    PERF_COOKIE(PERF_K_DATA, g + 1));
			if (rc)
				return perf_fail(s, ep, rc,
						 "posting a receive");
		}
		s->lat_seq++;
		if (s->p.check &&
		    perf_check_msg(
			&s->lat_check,
			perf_slot(s, s->p.op == PERF_OP_SEND ? 2 + (g & 1) : 2),
			size, len, k, s->peer))
			s->check_rc = WCCL_EIO;
		return 0;
	}
}

int perf_lat_client(struct perf_session *s, uint64_t size,
		    struct perf_lat_result *r)
{
	const struct perf_opts *o = s->o;
	const uint64_t cap = o->duration_ms ? LAT_CAP : o->iters;
	memset(&s->lat_check, 0, sizeof(s->lat_check));
	uint64_t *rtt = malloc(cap * sizeof(*rtt));
	if (!rtt)
		return WCCL_ENOMEM;
	struct perf_msg m = {.type = PERF_MSG_RUN, .size = size};
	const bool poll = s->p.op == PERF_OP_WRITE_POLL;
	int rc;
	if (poll)
		perf_lat_poll_arm(s, size);
	if ((rc = perf_msg_send(s, &m)) ||
	    (rc = perf_msg_recv(s, PERF_MSG_GO, &m)))
		goto out;
	if (s->p.op == PERF_OP_SEND && !s->recvs_posted) {
		rc = wccl_post_recv(s->data[0], perf_slot(s, 2), s->p.max_size,
				    s->mr, PERF_COOKIE(PERF_K_DATA, 0));
		if (rc) {
			rc = perf_fail(s, s->data[0], rc, "posting a receive");
			goto out;
		}
		s->recvs_posted = true;
	}
	uint64_t k = 0, n = 0, end = 0;
	const bool sched = wccl_param_int(WCCL_PARAM_PERF_SCHEDSTAT) > 0;
	struct lat_sched ss0;
	if (sched)
		lat_sched_take(&ss0);
	for (;; k++) {
		if (k == o->warmup && o->duration_ms)
			end = wccl_now_ns() +
			      (uint64_t)o->duration_ms * 1000000ull;
		if (k >= o->warmup &&
		    (n == cap || (end && wccl_now_ns() >= end)))
			break;
		uint64_t t = 0;
		rc = poll ? perf_lat_poll_round(s, size, k, &t)
			  : round_trip(s, size, k, &t);
		if (rc) {
			fprintf(stderr,
				"wccl-perf: lat %llu B stopped in round "
				"%llu\n",
				(unsigned long long)size,
				(unsigned long long)k);
			goto out;
		}
		if (k >= o->warmup)
			rtt[n++] = t;
	}
	if (sched)
		lat_sched_print("client", &ss0, k);
	if (poll && (rc = perf_lat_poll_drain(s)))
		goto out;
	/* The receive for the next round stays posted for the next run
	 * (or is canceled by the close). */
	rc = perf_client_finish(s, k);
	if (!rc && poll)
		perf_lat_poll_end(s, size, k);
	if (!rc) {
		perf_lat_stats(rtt, n, r);
		r->bytes = size;
	}
out:
	free(rtt);
	return rc;
}

int perf_lat_serve(struct perf_session *s, const struct perf_msg *run)
{
	struct wccl_endpoint *ep = s->data[0];
	const uint64_t ms = s->p.max_size;
	struct wccl_completion wc[8];
	struct perf_check chk = {0};
	uint64_t k = 0;
	int rc;

	const bool sched = wccl_param_int(WCCL_PARAM_PERF_SCHEDSTAT) > 0;
	struct lat_sched ss0;
	if (sched)
		lat_sched_take(&ss0);
	if (s->p.op == PERF_OP_WRITE_POLL) {
		rc = perf_lat_poll_serve(s, run);
		if (sched) /* its round count is not known here */
			lat_sched_print("server", &ss0, 0);
		return rc;
	}
	if (s->p.op == PERF_OP_SEND && !s->recvs_posted) {
		rc = wccl_post_recv(ep, perf_slot(s, 0), ms, s->mr,
				    PERF_COOKIE(PERF_K_DATA, 0));
		if (rc)
			return perf_fail(s, ep, rc, "posting a receive");
		s->recvs_posted = true;
	}
	struct perf_msg go = {.type = PERF_MSG_GO};
	if ((rc = perf_msg_send(s, &go)))
		return rc;
	for (;;) {
		int n = perf_wait_data(s, wc, 8, "waiting for a ping");
		if (n < 0) {
			fprintf(stderr,
				"wccl-perf server: %llu pings "
				"answered in this run\n",
				(unsigned long long)k);
			return n;
		}
		for (int i = 0; i < n; i++) {
			const struct wccl_completion *c = &wc[i];
			unsigned kind = PERF_KIND(c->cookie);
			if (kind == PERF_K_CTRL_RX || kind == PERF_K_CTRL_TX) {
				struct perf_msg m;
				if ((rc = perf_ctrl_event(s, c)))
					return rc;
				if ((rc = perf_ctrl_take(s, &m)) <= 0) {
					if (rc < 0)
						return rc;
					continue;
				}
				if (m.type != PERF_MSG_DONE || m.count != k) {
					fprintf(
					    stderr,
					    "wccl-perf: %s ended after %llu "
					    "pings, %llu served\n",
					    s->peer,
					    (unsigned long long)m.count,
					    (unsigned long long)k);
					return WCCL_EPROTO;
				}
				struct perf_msg res = {.type = PERF_MSG_RESULT,
						       .errors = chk.errors,
						       .bad_iter = chk.bad_iter,
						       .bad_off = chk.bad_off,
						       .expect = chk.expect,
						       .got = chk.got};
				if (chk.errors)
					s->check_rc = WCCL_EIO;
				if (sched)
					lat_sched_print("server", &ss0, k);
				return perf_msg_send(s, &res);
			}
			if (c->status)
				return perf_fail(s, c->ep, c->status,
						 "ping-pong");
			if (c->op != WCCL_OP_RECV && c->op != WCCL_OP_WRITE_IMM)
				continue; /* our send/write completed */
			unsigned slot = c->op == WCCL_OP_RECV
					    ? (unsigned)(s->lat_seq & 1)
					    : 0;
			uint8_t *buf = perf_slot(s, slot);
			uint64_t len =
			    c->op == WCCL_OP_RECV ? c->len : run->size;
			/* Check before answering: once answered, the next ping
			 * may land in this buffer. */
			if (s->p.check)
				perf_check_msg(&chk, buf, run->size, len, k,
					       s->peer);
			if (c->op == WCCL_OP_RECV) {
				rc = wccl_post_recv(
				    ep, perf_slot(s, slot ^ 1), ms, s->mr,
				    PERF_COOKIE(PERF_K_DATA, 0));
				if (!rc)
					rc = wccl_post_send(
					    ep, buf, len, s->mr,
					    PERF_COOKIE(PERF_K_DATA, 1));
			} else {
				rc = wccl_post_write(
				    ep, buf, len, s->mr, &s->peer_rk, 2 * ms,
				    c->imm, WCCL_WRITE_IMM,
				    PERF_COOKIE(PERF_K_DATA, 1));
			}
			if (rc)
				return perf_fail(s, ep, rc, "answering a ping");
			s->lat_seq++;
			k++;
		}
	}
}
