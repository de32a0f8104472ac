/* SPDX-License-Identifier: MIT */
/*
 * Session setup and teardown. The client connects a control endpoint, sends
 * HELLO, then connects the -q data endpoints; the server accepts them in
 * that order, registers its buffer and answers READY with its rkey. Data
 * never travels on the control endpoint, so control receives and data
 * receives never compete for the same posted buffers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "perf.h"

static int is_provider_name(const char *s, size_t n)
{
	for (int i = 0; i < wccl_provider_count(); i++) {
		struct wccl_provider_info pi;
		if (wccl_provider_info(i, &pi) == 0 && strlen(pi.name) == n &&
		    strncmp(pi.name, s, n) == 0)
			return 1;
	}
	return 0;
}

/* HOST, HOST:PORT or a full "provider:..." address -> full address. */
static int client_address(const struct perf_opts *o, char *addr, size_t len,
			  char *prov, size_t prov_len)
{
	const char *colon = strchr(o->host, ':');
	int n;
	if (colon && is_provider_name(o->host, (size_t)(colon - o->host)))
		n = snprintf(addr, len, "%s", o->host);
	else if (colon)
		n = snprintf(addr, len, "%s:%s",
			     o->provider ? o->provider : "uring", o->host);
	else
		n = snprintf(addr, len, "%s:%s:%u",
			     o->provider ? o->provider : "uring", o->host,
			     o->port);
	if (n < 0 || (size_t)n >= len)
		return WCCL_EINVAL;
	colon = strchr(addr, ':');
	if ((size_t)(colon - addr) >= prov_len)
		return WCCL_EINVAL;
	memcpy(prov, addr, (size_t)(colon - addr));
	prov[colon - addr] = '\0';
	return 0;
}

static void *alloc_pages(size_t len)
{
	size_t rounded = (len + 4095) & ~(size_t)4095;
	void *p = aligned_alloc(4096, rounded ? rounded : 4096);
	if (p)
		memset(p, 0, rounded ? rounded : 4096);
	return p;
}

static int common_open(struct perf_session *s, const char *provider)
{
	int rc = wccl_context_open(provider, &s->ctx);
	if (rc) {
		fprintf(stderr, "wccl-perf: cannot open provider %s: %s\n",
			provider ? provider : "(auto)", wccl_strerror(rc));
		return rc;
	}
	/* Room for every completion that can be due at once: a server does
	 * not know -t and -q yet, so it takes the most a client may ask. */
	uint32_t depth = 4096;
	uint64_t want =
	    2ull * (s->server ? PERF_MAX_OPS : s->o->tx_depth * s->o->conns) +
	    64;
	if (want > depth)
		depth = (uint32_t)want;
	if ((rc = wccl_cq_create(s->ctx, depth, &s->cq))) {
		fprintf(stderr, "wccl-perf: cannot create a CQ: %s\n",
			wccl_strerror(rc));
		return rc;
	}
	s->cbuf_len = 2 * PERF_MSG_LEN;
	if (!(s->cbuf = alloc_pages(s->cbuf_len)))
		return WCCL_ENOMEM;
	if ((rc = wccl_mr_register(s->ctx, s->cbuf, s->cbuf_len,
				   WCCL_ACCESS_LOCAL, &s->cmr))) {
		fprintf(stderr, "wccl-perf: cannot register memory: %s\n",
			wccl_strerror(rc));
		return rc;
	}
	return 0;
}

/* Slots of max_size bytes, then credit words for write -c. */
static int alloc_data(struct perf_session *s)
{
	const struct perf_params *p = &s->p;
	unsigned ops = p->depth * p->conns;
	if (p->test == PERF_LAT)
		s->slots = 4; /* tx 0/1, rx 0/1 */
	else
		s->slots = p->check ? ops : 1;
	size_t credits = (p->check && p->op == PERF_OP_WRITE) ? 8u * ops : 0;
	s->buf_len = s->slots * p->max_size + credits;
	/* Shareable memory, so same-host peers copy into/out of it directly;
	 * plain pages if that fails. */
	void *mem;
	if (wccl_mem_alloc(s->buf_len ? s->buf_len : 1, &mem) == 0) {
		s->buf = mem;
		s->buf_shm = true;
	} else if (!(s->buf = alloc_pages(s->buf_len))) {
		fprintf(stderr, "wccl-perf: cannot allocate %zu bytes\n",
			s->buf_len);
		return WCCL_ENOMEM;
	}
	if (!(s->pending = calloc(ops, 1)))
		return WCCL_ENOMEM;
	uint32_t access = WCCL_ACCESS_LOCAL;
	if (p->op == PERF_OP_WRITE || p->op == PERF_OP_WRITE_POLL)
		access |= WCCL_ACCESS_REMOTE_WRITE;
	int rc = wccl_mr_register(s->ctx, s->buf, s->buf_len, access, &s->mr);
	if (rc)
		fprintf(stderr, "wccl-perf: cannot register %zu bytes: %s\n",
			s->buf_len, wccl_strerror(rc));
	return rc;
}

uint8_t *perf_slot(struct perf_session *s, unsigned slot)
{
	return s->buf + (size_t)slot * s->p.max_size;
}

unsigned perf_ep_index(const struct perf_session *s,
		       const struct wccl_endpoint *ep)
{
	for (unsigned i = 0; i < s->n_data; i++)
		if (s->data[i] == ep)
			return i;
	return 0;
}

static int wait_up(struct wccl_endpoint *ep, const char *addr)
{
	int rc = wccl_endpoint_wait_established(ep, -1);
	if (rc)
		fprintf(stderr, "wccl-perf: cannot connect to %s: %s\n", addr,
			wccl_strerror(rc));
	return rc;
}

int perf_client_open(struct perf_session *s, const struct perf_opts *o)
{
	char addr[WCCL_ADDR_MAX], prov[32];
	memset(s, 0, sizeof(*s));
	s->o = o;
	if (client_address(o, addr, sizeof(addr), prov, sizeof(prov))) {
		fprintf(stderr, "wccl-perf: bad address '%s'\n", o->host);
		return WCCL_EINVAL;
	}
	snprintf(s->peer, sizeof(s->peer), "%s", addr);
	int rc = common_open(s, prov);
	if (rc)
		return rc;

	struct perf_params *p = &s->p;
	p->test = o->test;
	p->op = o->op;
	p->conns = o->test == PERF_LAT ? 1 : o->conns;
	p->depth = o->test == PERF_LAT ? 1 : o->tx_depth;
	p->check = o->check;
	for (int i = 0; i < o->n_sizes; i++)
		if (o->sizes[i] > p->max_size)
			p->max_size = o->sizes[i];
	if (p->check && p->test == PERF_BW) {
		uint64_t fit = PERF_MAX_SLOT_BYTES / p->max_size / p->conns;
		if (fit < 1)
			fit = 1;
		if (p->depth > fit) {
			fprintf(stderr,
				"wccl-perf: -c keeps a buffer per operation; "
				"tx depth %u -> %llu\n",
				p->depth, (unsigned long long)fit);
			p->depth = (unsigned)fit;
		}
	}

	if ((rc = wccl_connect(s->ctx, addr, s->cq, &s->ctrl))) {
		fprintf(stderr, "wccl-perf: cannot connect to %s: %s\n", addr,
			wccl_strerror(rc));
		return rc;
	}
	if ((rc = wait_up(s->ctrl, addr)) || (rc = perf_ctrl_post_recv(s)))
		return rc;
	snprintf(s->peer, sizeof(s->peer), "%s", wccl_endpoint_peer(s->ctrl));
	if ((rc = alloc_data(s)))
		return rc;

	struct perf_msg m = {.type = PERF_MSG_HELLO, .p = *p};
	wccl_mr_rkey(s->mr, &m.rk);
	if ((rc = perf_msg_send(s, &m)))
		return rc;
	for (unsigned i = 0; i < p->conns; i++) {
		if ((rc = wccl_connect(s->ctx, addr, s->cq, &s->data[i]))) {
			fprintf(stderr, "wccl-perf: cannot connect to %s: %s\n",
				addr, wccl_strerror(rc));
			return rc;
		}
		s->n_data++;
		if ((rc = wait_up(s->data[i], addr)))
			return rc;
	}
	if ((rc = perf_msg_recv(s, PERF_MSG_READY, &m)))
		return rc;
	s->peer_rk = m.rk;
	return 0;
}

/* Accept one endpoint within @timeout_ms, idling in the CQ meanwhile. */
static int accept_one(struct perf_session *s, struct wccl_endpoint **ep,
		      int timeout_ms)
{
	const uint64_t deadline = wccl_deadline_ns(timeout_ms);
	int rc;
	while ((rc = wccl_accept(s->lis, s->cq, ep)) == WCCL_EAGAIN) {
		if (wccl_now_ns() >= deadline) {
			fprintf(stderr,
				"wccl-perf server: no connection within %d "
				"ms\n",
				timeout_ms);
			return WCCL_ETIMEDOUT;
		}
		/* Idle in the CQ: it drives the provider's progress. Only
		 * control completions can come (a HELLO send, a dying
		 * client). */
		struct wccl_completion wc;
		int n = wccl_cq_wait(s->cq, &wc, 1, 10);
		if (n > 0 && wc.status)
			return perf_fail(s, wc.ep, wc.status,
					 "waiting for connections");
		if (n > 0 &&
		    (PERF_KIND(wc.cookie) == PERF_K_CTRL_RX ||
		     PERF_KIND(wc.cookie) == PERF_K_CTRL_TX) &&
		    (rc = perf_ctrl_event(s, &wc)))
			return rc;
	}
	if (rc)
		return perf_fail(s, NULL, rc, "accepting a connection");
	if ((rc = wccl_endpoint_wait_established(*ep, -1)))
		return perf_fail(s, *ep, rc, "accepting a connection");
	return 0;
}

static int server_setup(struct perf_session *s)
{
	struct perf_msg m;
	int rc = perf_msg_recv(s, PERF_MSG_HELLO, &m);
	if (rc)
		return rc;
	s->p = m.p;
	struct perf_params *p = &s->p;
	if ((p->test != PERF_BW && p->test != PERF_LAT) ||
	    (p->op != PERF_OP_WRITE && p->op != PERF_OP_SEND &&
	     !(p->op == PERF_OP_WRITE_POLL && p->test == PERF_LAT)) ||
	    !p->conns || p->conns > PERF_MAX_CONNS || !p->depth ||
	    (uint64_t)p->depth * p->conns > PERF_MAX_OPS || !p->max_size ||
	    p->max_size > (1ull << 32)) {
		fprintf(stderr, "wccl-perf: bad parameters from %s\n", s->peer);
		struct perf_msg e = {.type = PERF_MSG_ERROR,
				     .status = WCCL_EINVAL};
		if (!perf_msg_send(s, &e))
			perf_ctrl_flush(s);
		return WCCL_EINVAL;
	}
	s->peer_rk = m.rk;
	if ((rc = alloc_data(s)))
		return rc;
	for (unsigned i = 0; i < p->conns; i++) {
		if ((rc = accept_one(s, &s->data[i], s->o->timeout_ms)))
			return rc;
		s->n_data++;
	}
	struct perf_msg r = {.type = PERF_MSG_READY};
	wccl_mr_rkey(s->mr, &r.rk);
	return perf_msg_send(s, &r);
}

/* A standalone server without --provider serves clients that name it by
 * HOST: take the best provider that reaches other hosts (NULL: none, let
 * wccl_context_open pick). --local keeps wccl's own choice. */
static const char *server_provider(const struct perf_opts *o)
{
	if (o->provider || o->local)
		return o->provider;
	for (int i = 0; i < wccl_provider_count(); i++) {
		struct wccl_provider_info pi;
		if (wccl_provider_info(i, &pi) == 0 && !pi.available &&
		    (pi.caps & WCCL_CAP_REMOTE_HOST))
			return pi.name;
	}
	return NULL;
}

int perf_server_open(struct perf_session *s, const struct perf_opts *o,
		     int addr_fd)
{
	memset(s, 0, sizeof(*s));
	s->o = o;
	s->server = true;
	int rc = common_open(s, server_provider(o));
	if (rc)
		return rc;
	char bind[WCCL_ADDR_MAX], addr[WCCL_ADDR_MAX];
	const char *b = NULL;
	if (strcmp(wccl_context_provider(s->ctx), "uring") == 0) {
		snprintf(bind, sizeof(bind), "%s:%u", o->bind,
			 o->local && !o->port_set ? 0 : o->port);
		b = bind;
	}
	if ((rc = wccl_listen(s->ctx, b, &s->lis))) {
		fprintf(stderr, "wccl-perf: cannot listen on %s:%s: %s\n",
			wccl_context_provider(s->ctx), b ? b : "(default)",
			wccl_strerror(rc));
		return rc;
	}
	if ((rc = wccl_listener_addr(s->lis, addr, sizeof(addr)))) {
		fprintf(stderr, "wccl-perf: no listener address: %s\n",
			wccl_strerror(rc));
		return rc;
	}
	if (addr_fd >= 0) {
		size_t n = strlen(addr) + 1; /* with the NUL: one message */
		if (write(addr_fd, addr, n) != (ssize_t)n)
			return WCCL_EIO;
	} else {
		if (o->json)
			printf("{\"listening\": \"%s\", \"test\": \"%s\"}\n",
			       addr, o->test == PERF_BW ? "bw" : "lat");
		else
			printf("wccl-perf %s server: listening on %s\n",
			       o->test == PERF_BW ? "bw" : "lat", addr);
		fflush(stdout);
	}
	if ((rc = accept_one(s, &s->ctrl, o->accept_timeout_ms)))
		return rc;
	snprintf(s->peer, sizeof(s->peer), "%s", wccl_endpoint_peer(s->ctrl));
	if ((rc = perf_ctrl_post_recv(s)))
		return rc;
	return server_setup(s);
}

/* Reap what closing flushed (-WCCL_ECANCELED) so the CQ can go. */
static void drain(struct perf_session *s)
{
	struct wccl_completion wc[32];
	while (s->cq && wccl_cq_poll(s->cq, wc, 32) > 0)
		;
}

int perf_session_close(struct perf_session *s, int rc)
{
	if (rc == 0 && !s->server && s->ctrl) {
		struct perf_msg m = {.type = PERF_MSG_BYE};
		s->bye_sent = true;
		if (!(rc = perf_msg_send(s, &m)))
			rc = perf_msg_recv(s, PERF_MSG_BYE, &m);
	}
	for (unsigned i = 0; i < s->n_data; i++)
		wccl_endpoint_close(s->data[i]);
	if (s->ctrl)
		wccl_endpoint_close(s->ctrl);
	drain(s);
	if (s->lis)
		wccl_listener_close(s->lis);
	if (s->mr)
		wccl_mr_deregister(s->mr);
	if (s->cmr)
		wccl_mr_deregister(s->cmr);
	if (s->cq)
		wccl_cq_destroy(s->cq);
	if (s->ctx)
		wccl_context_close(s->ctx);
	if (s->buf_shm)
		wccl_mem_free(s->buf);
	else
		free(s->buf);
	free(s->cbuf);
	free(s->pending);
	return rc;
}

/* The answer to BYE must leave before we close, but the client may close
 * as soon as it has it: from here on a lost peer is the normal end. */
static int bye_flush(struct perf_session *s)
{
	struct wccl_completion wc[8];
	while (s->ctrl_tx_pending) {
		int n = wccl_cq_wait(s->cq, wc, 8, s->o->timeout_ms);
		if (n < 0)
			return 0;
		for (int i = 0; i < n; i++) {
			if (PERF_KIND(wc[i].cookie) == PERF_K_CTRL_TX)
				s->ctrl_tx_pending--;
			if (wc[i].status)
				return 0;
		}
	}
	return 0;
}

int perf_serve(struct perf_session *s)
{
	struct perf_msg m;
	for (;;) {
		int rc = perf_msg_recv(s, 0, &m);
		if (rc)
			return rc;
		if (m.type == PERF_MSG_BYE) {
			struct perf_msg bye = {.type = PERF_MSG_BYE};
			if ((rc = perf_msg_send(s, &bye)))
				return rc;
			return bye_flush(s);
		}
		if (m.type != PERF_MSG_RUN || !m.size ||
		    m.size > s->p.max_size) {
			fprintf(stderr, "wccl-perf: bad request from %s\n",
				s->peer);
			return WCCL_EPROTO;
		}
		rc = s->p.test == PERF_BW ? perf_bw_serve(s, &m)
					  : perf_lat_serve(s, &m);
		if (rc)
			return rc;
	}
}

int perf_client_finish(struct perf_session *s, uint64_t count)
{
	struct perf_msg m = {.type = PERF_MSG_DONE, .count = count};
	int rc = perf_msg_send(s, &m);
	if (rc || (rc = perf_msg_recv(s, PERF_MSG_RESULT, &m)))
		return rc;
	if (m.errors) {
		fprintf(stderr,
			"wccl-perf: data check failed at %s: %llu bad "
			"messages; first: iteration %llu offset %llu: "
			"expected 0x%02x got 0x%02x\n",
			s->peer, (unsigned long long)m.errors,
			(unsigned long long)m.bad_iter,
			(unsigned long long)m.bad_off, m.expect, m.got);
		s->check_rc = WCCL_EIO;
	}
	return m.status;
}
