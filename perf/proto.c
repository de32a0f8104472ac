/* SPDX-License-Identifier: MIT */
/*
 * Control messages between client and server, carried by wccl itself on the
 * control endpoint: fixed 128-byte little-endian blocks, one outstanding
 * receive always posted, one send at a time.
 *
 *   client                      server
 *   HELLO (params, [rkey]) -->
 *                          <--  READY (rkey)        after data endpoints
 *   RUN (size, iters)      -->                      per message size
 *                          <--  GO                  receives are posted
 *   ... data ...
 *   DONE (ops posted)      -->
 *                          <--  RESULT (check)      all data seen
 *   BYE                    -->
 *                          <--  BYE
 */
#include <stdio.h>
#include <string.h>

#include "perf.h"

#define PERF_MAGIC 0x46525057u /* "WPRF" */
#define PERF_VERSION 1

static void put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void msg_pack(const struct perf_msg *m, uint8_t *b)
{
	memset(b, 0, PERF_MSG_LEN);
	put(b + 0, PERF_MAGIC, 4);
	put(b + 4, PERF_VERSION, 2);
	put(b + 6, m->type, 2);
	put(b + 8, (uint32_t)m->status, 4);
	put(b + 12, m->expect, 1);
	put(b + 13, m->got, 1);
	put(b + 14, m->p.check, 1);
	put(b + 16, m->size, 8);
	put(b + 24, m->count, 8);
	put(b + 32, m->bad_iter, 8);
	put(b + 40, m->bad_off, 8);
	put(b + 48, m->errors, 8);
	put(b + 56, m->p.test, 1);
	put(b + 57, m->p.op, 1);
	put(b + 58, m->p.conns, 2);
	put(b + 60, m->p.depth, 4);
	put(b + 64, m->p.max_size, 8);
	wccl_rkey_pack(&m->rk, b + 72);
}

static int msg_unpack(const uint8_t *b, struct perf_msg *m)
{
	if (get(b, 4) != PERF_MAGIC || get(b + 4, 2) != PERF_VERSION)
		return WCCL_EPROTO;
	memset(m, 0, sizeof(*m));
	m->type = (uint32_t)get(b + 6, 2);
	m->status = (int32_t)(uint32_t)get(b + 8, 4);
	m->expect = (uint32_t)get(b + 12, 1);
	m->got = (uint32_t)get(b + 13, 1);
	m->p.check = get(b + 14, 1) != 0;
	m->size = get(b + 16, 8);
	m->count = get(b + 24, 8);
	m->bad_iter = get(b + 32, 8);
	m->bad_off = get(b + 40, 8);
	m->errors = get(b + 48, 8);
	m->p.test = (enum perf_test)get(b + 56, 1);
	m->p.op = (enum perf_op)get(b + 57, 1);
	m->p.conns = (unsigned)get(b + 58, 2);
	m->p.depth = (unsigned)get(b + 60, 4);
	m->p.max_size = get(b + 64, 8);
	wccl_rkey_unpack(b + 72, &m->rk);
	return 0;
}

int perf_fail(struct perf_session *s, struct wccl_endpoint *ep, int err,
	      const char *what)
{
	const char *why = ep ? wccl_endpoint_last_error(ep) : "";
	const char *peer = ep ? wccl_endpoint_peer(ep) : s->peer;
	const char *role = s->server ? " server" : "";
	if (*why)
		fprintf(stderr, "wccl-perf%s: %s: %s\n", role, what, why);
	else
		fprintf(stderr, "wccl-perf%s: %s (peer %s): %s\n", role, what,
			*peer ? peer : "?", wccl_strerror(err));
	return err;
}

int perf_wait(struct perf_session *s, struct wccl_completion *wc, int max,
	      const char *what)
{
	int n = wccl_cq_wait(s->cq, wc, max, s->o->timeout_ms);
	if (n == WCCL_ETIMEDOUT)
		fprintf(stderr,
			"wccl-perf%s: %s: nothing from peer %s within %d ms\n",
			s->server ? " server" : "", what,
			*s->peer ? s->peer : "?", s->o->timeout_ms);
	else if (n < 0)
		perf_fail(s, NULL, n, what);
	return n;
}

int perf_wait_data(struct perf_session *s, struct wccl_completion *wc, int max,
		   const char *what)
{
	if (!s->n_stash)
		return perf_wait(s, wc, max, what);
	unsigned n = s->n_stash < (unsigned)max ? s->n_stash : (unsigned)max;
	memcpy(wc, s->stash, n * sizeof(*wc));
	memmove(s->stash, s->stash + n, (s->n_stash - n) * sizeof(*wc));
	s->n_stash -= n;
	return (int)n;
}

int perf_ctrl_post_recv(struct perf_session *s)
{
	int rc = wccl_post_recv(s->ctrl, s->cbuf, PERF_MSG_LEN, s->cmr,
				PERF_COOKIE(PERF_K_CTRL_RX, 0));
	if (rc)
		return perf_fail(s, s->ctrl, rc, "posting a control receive");
	return 0;
}

int perf_ctrl_event(struct perf_session *s, const struct wccl_completion *wc)
{
	if (PERF_KIND(wc->cookie) == PERF_K_CTRL_TX) {
		s->ctrl_tx_pending--;
		if (wc->status)
			return perf_fail(s, wc->ep, wc->status,
					 "sending a control message");
		return 0;
	}
	if (wc->status)
		return perf_fail(s, wc->ep, wc->status,
				 "receiving a control message");
	if (s->ctrl_rx_full || wc->len != PERF_MSG_LEN) {
		fprintf(stderr,
			"wccl-perf: unexpected control message "
			"(%llu bytes) from %s\n",
			(unsigned long long)wc->len, s->peer);
		return WCCL_EPROTO;
	}
	memcpy(s->ctrl_msg, s->cbuf, PERF_MSG_LEN);
	s->ctrl_rx_full = true;
	return perf_ctrl_post_recv(s);
}

int perf_ctrl_take(struct perf_session *s, struct perf_msg *m)
{
	if (!s->ctrl_rx_full)
		return 0;
	s->ctrl_rx_full = false;
	if (msg_unpack(s->ctrl_msg, m)) {
		fprintf(stderr,
			"wccl-perf: %s is not a wccl-perf peer of this "
			"version\n",
			s->peer);
		return WCCL_EPROTONOSUPPORT;
	}
	return 1;
}

/* A control wait may see data completions: the peer can start as soon as
 * it has our message, before our send completes here. Keep them for the
 * data loop. */
static int other_event(struct perf_session *s, const struct wccl_completion *wc)
{
	unsigned k = PERF_KIND(wc->cookie);
	if (k == PERF_K_CTRL_RX || k == PERF_K_CTRL_TX)
		return perf_ctrl_event(s, wc);
	/* After our BYE the server closes its data endpoints as soon as it
	 * has answered, so a receive left posted may be flushed before its
	 * answer is read: not a failure. */
	if (wc->status && s->bye_sent)
		return 0;
	if (wc->status)
		return perf_fail(s, wc->ep, wc->status, "data transfer");
	if (k == PERF_K_CREDIT_TX)
		return 0;
	if (s->n_stash == PERF_STASH) {
		fprintf(stderr,
			"wccl-perf: too much data from %s while "
			"waiting for a control message\n",
			s->peer);
		return WCCL_EPROTO;
	}
	s->stash[s->n_stash++] = *wc;
	return 0;
}

int perf_ctrl_flush(struct perf_session *s)
{
	struct wccl_completion wc[8];
	while (s->ctrl_tx_pending) {
		int n = perf_wait(s, wc, 8, "sending a control message");
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			int rc = other_event(s, &wc[i]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int perf_msg_send(struct perf_session *s, const struct perf_msg *m)
{
	uint8_t *tx = s->cbuf + PERF_MSG_LEN;
	int rc = perf_ctrl_flush(s);
	if (rc)
		return rc;
	msg_pack(m, tx);
	while ((rc = wccl_post_send(s->ctrl, tx, PERF_MSG_LEN, s->cmr,
				    PERF_COOKIE(PERF_K_CTRL_TX, 0))) ==
	       WCCL_EAGAIN) {
		struct wccl_completion wc[8];
		int n = perf_wait(s, wc, 8, "sending a control message");
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			if ((rc = other_event(s, &wc[i])))
				return rc;
	}
	if (rc)
		return perf_fail(s, s->ctrl, rc, "sending a control message");
	s->ctrl_tx_pending++;
	return 0;
}

static const char *type_name(uint32_t t)
{
	static const char *const names[] = {"?",      "HELLO", "READY",
					    "RUN",    "GO",    "DONE",
					    "RESULT", "BYE",   "ERROR"};
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

int perf_msg_recv(struct perf_session *s, uint32_t type, struct perf_msg *m)
{
	struct wccl_completion wc[8];
	int rc;
	char what[64];
	snprintf(what, sizeof(what), "waiting for %s",
		 type ? type_name(type) : "a request");
	while ((rc = perf_ctrl_take(s, m)) == 0) {
		int n = perf_wait(s, wc, 8, what);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			if ((rc = other_event(s, &wc[i])))
				return rc;
	}
	if (rc < 0)
		return rc;
	if (m->type == type || (type == 0 && m->type != PERF_MSG_ERROR))
		return 0;
	if (m->type == PERF_MSG_ERROR) {
		fprintf(stderr, "wccl-perf: peer %s reports: %s\n", s->peer,
			wccl_strerror(m->status));
		return m->status ? m->status : WCCL_EREMOTE;
	}
	fprintf(stderr, "wccl-perf: expected %s from %s, got %s\n",
		type_name(type), s->peer, type_name(m->type));
	return WCCL_EPROTO;
}
