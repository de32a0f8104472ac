/* SPDX-License-Identifier: MIT */
/*
 * Bandwidth. The client keeps -t operations in flight per data endpoint,
 * striping operation i onto endpoint i % q, and times first post to last
 * completion (a write completes once its data is at the target). Operation
 * i owns slot i % (t * q); a slot is posted again only when every event it
 * waits for has arrived: the local completion, and with -c --op write also
 * the server's credit saying it has checked the data.
 *
 * Peak bandwidth is the best window of at least one pipeline's worth of
 * completions (t * q); the windows double in length when the fixed sample
 * array fills, so long runs allocate nothing.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "perf.h"

#define BATCH 64

static void window_add(struct perf_window *w, uint64_t done, uint64_t now)
{
	if (done % w->every)
		return;
	if (w->n == PERF_WINDOWS) {
		for (unsigned i = 0; i < PERF_WINDOWS / 2; i++)
			w->t[i] = w->t[2 * i];
		w->n = PERF_WINDOWS / 2;
		w->every *= 2;
		if (done % w->every)
			return;
	}
	w->t[w->n++] = now;
}

static double window_peak(const struct perf_window *w, uint64_t size)
{
	double best = 0;
	for (unsigned i = 1; i < w->n; i++) {
		uint64_t dt = w->t[i] - w->t[i - 1];
		double bw =
		    dt ? (double)(w->every * size) * 1e9 / (double)dt : 0;
		if (bw > best)
			best = bw;
	}
	return best / (1024.0 * 1024.0);
}

static uint8_t *credit_word(struct perf_session *s, unsigned slot)
{
	return s->buf + (size_t)s->slots * s->p.max_size + 8u * slot;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool check_write(const struct perf_session *s)
{
	return s->p.check && s->p.op == PERF_OP_WRITE;
}

/* Client with -c --op write: one credit receive per op slot, kept posted
 * for the whole session. */
static int post_credit_recvs(struct perf_session *s)
{
	unsigned ops = s->p.depth * s->p.conns;
	for (unsigned slot = 0; slot < ops; slot++) {
		int rc = wccl_post_recv(s->data[slot % s->p.conns],
					credit_word(s, slot), 8, s->mr,
					PERF_COOKIE(PERF_K_CREDIT_RX, slot));
		if (rc)
			return perf_fail(s, s->data[slot % s->p.conns], rc,
					 "posting a credit receive");
	}
	s->recvs_posted = true;
	return 0;
}

/* An unexpected control message mid-run: the server gave up. */
static int ctrl_mid_run(struct perf_session *s,
			const struct wccl_completion *wc)
{
	int rc = perf_ctrl_event(s, wc);
	struct perf_msg m;
	if (rc || perf_ctrl_take(s, &m) <= 0)
		return rc;
	fprintf(stderr, "wccl-perf: %s stopped the run: %s\n", s->peer,
		wccl_strerror(m.status ? m.status : WCCL_EPROTO));
	return m.status ? m.status : WCCL_EPROTO;
}

int perf_bw_client(struct perf_session *s, uint64_t size,
		   struct perf_bw_result *r)
{
	const struct perf_opts *o = s->o;
	const unsigned q = s->p.conns, ops = s->p.depth * q;
	const uint8_t need = check_write(s) ? 2 : 1;
	struct perf_window *w = &s->window;
	struct wccl_completion wc[BATCH];
	int rc;

	if (check_write(s) && !s->recvs_posted && (rc = post_credit_recvs(s)))
		return rc;
	struct perf_msg m = {.type = PERF_MSG_RUN,
			     .size = size,
			     .count = o->duration_ms ? 0 : o->iters};
	if ((rc = perf_msg_send(s, &m)) ||
	    (rc = perf_msg_recv(s, PERF_MSG_GO, &m)))
		return rc;

	memset(s->pending, 0, ops);
	w->n = 0;
	w->every = ops;
	const uint64_t total = o->duration_ms ? UINT64_MAX : o->iters;
	uint64_t posted = 0, done = 0;
	bool stop = false;
	const uint64_t t0 = wccl_now_ns();
	const uint64_t end = t0 + (uint64_t)o->duration_ms * 1000000ull;
	uint64_t t_last = t0;
	w->t[w->n++] = t0;

	while (done < posted || (!stop && posted < total)) {
		while (!stop && posted < total) {
			unsigned slot = (unsigned)(posted % ops);
			if (s->pending[slot])
				break;
			struct wccl_endpoint *ep = s->data[posted % q];
			uint8_t *src = s->p.check ? perf_slot(s, slot) : s->buf;
			if (s->p.check)
				perf_pattern_fill(src, size, posted);
			uint64_t cookie = PERF_COOKIE(PERF_K_DATA, posted);
			if (s->p.op == PERF_OP_WRITE)
				rc = wccl_post_write(
				    ep, src, size, s->mr, &s->peer_rk,
				    s->p.check ? (uint64_t)slot * s->p.max_size
					       : 0,
				    (uint32_t)posted,
				    s->p.check ? WCCL_WRITE_IMM : 0, cookie);
			else
				rc = wccl_post_send(ep, src, size, s->mr,
						    cookie);
			if (rc == WCCL_EAGAIN)
				break;
			if (rc)
				return perf_fail(s, ep, rc, "posting data");
			s->pending[slot] = need;
			posted++;
		}
		int n = perf_wait_data(s, wc, BATCH,
				       "waiting for data completions");
		if (n < 0)
			return n;
		uint64_t now = wccl_now_ns();
		for (int i = 0; i < n; i++) {
			unsigned kind = PERF_KIND(wc[i].cookie);
			uint64_t iter;
			if (kind == PERF_K_DATA) {
				iter = PERF_VAL(wc[i].cookie);
			} else if (kind == PERF_K_CREDIT_RX) {
				if (wc[i].status)
					return perf_fail(s, wc[i].ep,
							 wc[i].status,
							 "receiving a credit");
				unsigned cs = (unsigned)PERF_VAL(wc[i].cookie);
				iter = get64(credit_word(s, cs));
				rc =
				    wccl_post_recv(wc[i].ep, credit_word(s, cs),
						   8, s->mr, wc[i].cookie);
				if (rc)
					return perf_fail(
					    s, wc[i].ep, rc,
					    "posting a credit receive");
			} else if (kind == PERF_K_CTRL_RX ||
				   kind == PERF_K_CTRL_TX) {
				if ((rc = ctrl_mid_run(s, &wc[i])))
					return rc;
				continue;
			} else {
				continue;
			}
			if (wc[i].status)
				return perf_fail(s, wc[i].ep, wc[i].status,
						 "data transfer");
			unsigned slot = (unsigned)(iter % ops);
			if (!s->pending[slot]) {
				fprintf(stderr,
					"wccl-perf: completion for idle "
					"operation %llu from %s\n",
					(unsigned long long)iter, s->peer);
				return WCCL_EPROTO;
			}
			if (--s->pending[slot] == 0) {
				done++;
				t_last = now;
				window_add(w, done, now);
			}
		}
		if (o->duration_ms && now >= end)
			stop = true;
	}

	double secs = (double)(t_last - t0) / 1e9;
	memset(r, 0, sizeof(*r));
	r->bytes = size;
	r->iters = done;
	r->seconds = secs;
	if (secs > 0) {
		r->avg_mibps =
		    (double)done * (double)size / secs / (1024.0 * 1024.0);
		r->mpps = (double)done / secs / 1e6;
	}
	r->peak_mibps = window_peak(w, size);
	if (r->peak_mibps < r->avg_mibps)
		r->peak_mibps = r->avg_mibps;
	return perf_client_finish(s, posted);
}

/* ---- server ------------------------------------------------------------ */

static int post_data_recvs(struct perf_session *s)
{
	for (unsigned e = 0; e < s->p.conns; e++)
		for (unsigned j = 0; j < s->p.depth; j++) {
			unsigned slot = s->p.check ? e * s->p.depth + j : 0;
			int rc = wccl_post_recv(s->data[e], perf_slot(s, slot),
						s->p.max_size, s->mr,
						PERF_COOKIE(PERF_K_DATA, slot));
			if (rc)
				return perf_fail(s, s->data[e], rc,
						 "posting a receive");
		}
	s->recvs_posted = true;
	return 0;
}

/* Send the credits owed on each endpoint; a full queue defers the rest. */
static int send_credits(struct perf_session *s)
{
	const unsigned q = s->p.conns, ops = s->p.depth * q;
	for (unsigned e = 0; e < q; e++)
		while (s->credit_sent[e] < s->rx_count[e]) {
			uint64_t iter = s->credit_sent[e] * q + e;
			unsigned slot = (unsigned)(iter % ops);
			put64(credit_word(s, slot), iter);
			int rc = wccl_post_send(
			    s->data[e], credit_word(s, slot), 8, s->mr,
			    PERF_COOKIE(PERF_K_CREDIT_TX, slot));
			if (rc == WCCL_EAGAIN)
				break;
			if (rc)
				return perf_fail(s, s->data[e], rc,
						 "sending a credit");
			s->credit_sent[e]++;
		}
	return 0;
}

/* Nothing but DONE is due while the client writes without -c; a silent
 * wait is fine as long as the endpoints are alive. */
static int still_alive(struct perf_session *s)
{
	int rc = wccl_endpoint_established(s->ctrl);
	if (rc && rc != WCCL_EAGAIN)
		return perf_fail(s, s->ctrl, rc, "waiting for the client");
	return 0;
}

int perf_bw_serve(struct perf_session *s, const struct perf_msg *run)
{
	const unsigned q = s->p.conns, ops = s->p.depth * q;
	const bool sink_only = s->p.op == PERF_OP_WRITE && !s->p.check;
	struct perf_check chk = {0};
	struct wccl_completion wc[BATCH];
	uint64_t received = 0, expected = UINT64_MAX;
	int rc;

	if (s->p.op == PERF_OP_SEND && !s->recvs_posted &&
	    (rc = post_data_recvs(s)))
		return rc;
	memset(s->rx_count, 0, sizeof(s->rx_count));
	memset(s->credit_sent, 0, sizeof(s->credit_sent));
	struct perf_msg go = {.type = PERF_MSG_GO};
	if ((rc = perf_msg_send(s, &go)))
		return rc;

	while (received < expected) {
		int n = s->n_stash
			    ? perf_wait_data(s, wc, BATCH, "")
			    : wccl_cq_wait(s->cq, wc, BATCH, s->o->timeout_ms);
		if (n == WCCL_ETIMEDOUT && sink_only) {
			if ((rc = still_alive(s)))
				return rc;
			continue;
		}
		if (n < 0) {
			if (n == WCCL_ETIMEDOUT)
				fprintf(stderr,
					"wccl-perf: no data from %s within "
					"%d ms\n",
					s->peer, s->o->timeout_ms);
			return n < 0 ? n : WCCL_EIO;
		}
		for (int i = 0; i < n; i++) {
			const struct wccl_completion *c = &wc[i];
			unsigned kind = PERF_KIND(c->cookie);
			if (kind == PERF_K_CTRL_RX || kind == PERF_K_CTRL_TX) {
				struct perf_msg m;
				if ((rc = perf_ctrl_event(s, c)))
					return rc;
				if ((rc = perf_ctrl_take(s, &m)) < 0)
					return rc;
				if (rc == 0)
					continue;
				if (m.type != PERF_MSG_DONE) {
					fprintf(stderr,
						"wccl-perf: unexpected control "
						"message from %s mid-run\n",
						s->peer);
					return WCCL_EPROTO;
				}
				expected = sink_only ? 0 : m.count;
				continue;
			}
			if (c->status)
				return perf_fail(s, c->ep, c->status,
						 "receiving data");
			if (kind == PERF_K_CREDIT_TX)
				continue;
			unsigned e = perf_ep_index(s, c->ep);
			uint64_t iter = s->rx_count[e]++ * q + e;
			received++;
			if (c->op == WCCL_OP_RECV) {
				unsigned slot = (unsigned)PERF_VAL(c->cookie);
				if (s->p.check)
					perf_check_msg(&chk, perf_slot(s, slot),
						       run->size, c->len, iter,
						       s->peer);
				rc = wccl_post_recv(c->ep, perf_slot(s, slot),
						    s->p.max_size, s->mr,
						    c->cookie);
				if (rc)
					return perf_fail(s, c->ep, rc,
							 "posting a receive");
			} else if (c->op == WCCL_OP_WRITE_IMM) {
				unsigned slot = (unsigned)(iter % ops);
				if (c->imm != (uint32_t)iter && !chk.errors++) {
					chk.bad_iter = iter;
					fprintf(stderr,
						"wccl-perf: write %llu arrived "
						"with immediate %u\n",
						(unsigned long long)iter,
						c->imm);
				}
				perf_check_msg(&chk, perf_slot(s, slot),
					       run->size, run->size, iter,
					       s->peer);
			} else if (c->op == WCCL_OP_ERROR) {
				return perf_fail(s, c->ep, WCCL_EREMOTE,
						 "a write from the client was "
						 "rejected");
			}
		}
		if (check_write(s) && (rc = send_credits(s)))
			return rc;
	}
	/* Credits still owed are moot: the client saw every completion. */
	struct perf_msg res = {.type = PERF_MSG_RESULT,
			       .errors = chk.errors,
			       .bad_iter = chk.bad_iter,
			       .bad_off = chk.bad_off,
			       .expect = chk.expect,
			       .got = chk.got};
	if (chk.errors)
		s->check_rc = WCCL_EIO;
	return perf_msg_send(s, &res);
}
