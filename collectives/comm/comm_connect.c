/* SPDX-License-Identifier: MIT */
/*
 * Wiring a communicator: one context (+ CQ + listener) per usable provider,
 * an all-gather of every rank's addresses, then one endpoint per peer
 * (full mesh), or several to a peer in another region (WCCL_CROSS_STREAMS,
 * the fewer of the two ranks' values): one TCP flow collapses on a lossy
 * long-haul path, several striped ones keep it full. With eager messages on
 * (coll_eager.c) each peer gets one more connection, for small messages
 * only, whose receives are always posted. The lower rank of a
 * pair connects and names itself (and the stripe) in its first message;
 * the higher one accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "comm_internal.h"
#include "core/clock.h"
#include "core/host.h"
#include "core/log.h"
#include "core/params.h"
#include "core/sha256.h"
#include "core/sock.h"

#define HELLO_MAGIC 0x4c484357u /* "WCHL" */

int comm_open_contexts(struct wccl_comm *c, const char *bind_ip)
{
	/* A test that plays a stranger must know where to connect. */
	int64_t test_port = wccl_param_int(WCCL_PARAM_COMM_TEST_LISTEN_PORT);
	if (test_port < 0 || test_port > 65535)
		test_port = 0;
	for (int i = 0; i < wccl_provider_count() && c->nctx < COMM_MAX_PROVIDERS;
	     i++) {
		struct wccl_provider_info info;
		if (wccl_provider_info(i, &info) || info.available)
			continue;
		struct comm_ctx *x = &c->ctx[c->nctx];
		char bind[WCCL_ADDR_MAX];
		const char *b = NULL;
		if (info.caps & WCCL_CAP_REMOTE_HOST) {
			snprintf(bind, sizeof(bind), "%s:%d", bind_ip,
				 (int)test_port);
			test_port = 0;
			b = bind;
		}
		int rc = wccl_context_open(info.name, &x->ctx);
		if (!rc)
			rc = wccl_cq_create(x->ctx, 0, &x->cq);
		if (!rc)
			rc = wccl_listen(x->ctx, b, &x->listener);
		/* Kernel-bypass providers have addresses of their own. */
		if (rc == WCCL_EADDRNOTAVAIL && b)
			rc = wccl_listen(x->ctx, NULL, &x->listener);
		if (rc) {
			WCCL_WARN(WCCL_SUB_COLL,
				  "rank %d: provider %s not used: %s", c->rank,
				  info.name, wccl_strerror(rc));
			if (x->cq)
				wccl_cq_destroy(x->cq);
			if (x->ctx)
				wccl_context_close(x->ctx);
			memset(x, 0, sizeof(*x));
			continue;
		}
		x->caps = info.caps;
		c->nctx++;
	}
	return c->nctx ? 0 : WCCL_ENODEV;
}

struct wccl_mr *comm_mr_for(struct wccl_comm *c, int ctx_index,
			    const struct wccl_mem_span *span)
{
	if (!span->id)
		return NULL;
	struct comm_ctx *x = &c->ctx[ctx_index];
	struct comm_mr_entry *victim = &x->mrs[0];
	for (int i = 0; i < COMM_MR_CACHE; i++) {
		struct comm_mr_entry *e = &x->mrs[i];
		if (e->id == span->id) {
			e->last_use = ++c->plan_clock;
			return e->mr;
		}
		if (e->last_use < victim->last_use)
			victim = e;
	}
	/* First use of this allocation here: register it whole, once. */
	if (victim->mr)
		wccl_mr_deregister(victim->mr);
	victim->mr = NULL;
	victim->id = 0;
	/* Remote reads too: same-host peers map it (coll_direct.c). */
	if (wccl_mr_register(x->ctx, span->base, span->len,
			     WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE |
				     WCCL_ACCESS_REMOTE_READ,
			     &victim->mr))
		return NULL;
	victim->id = span->id;
	victim->last_use = ++c->plan_clock;
	return victim->mr;
}

void comm_close_contexts(struct wccl_comm *c)
{
	/* Endpoints accepted but never named (a failed set-up). */
	for (int i = 0; c->accepted && i < c->naccepted; i++)
		if (c->accepted[i]) {
			wccl_endpoint_close(c->accepted[i]);
			c->accepted[i] = NULL;
		}
	for (int r = 0; c->peers && r < c->nranks; r++) {
		for (int k = 0; k < COMM_MAX_CONNS; k++)
			if (c->peers[r].eps[k]) {
				wccl_endpoint_close(c->peers[r].eps[k]);
				c->peers[r].eps[k] = NULL;
			}
		c->peers[r].ep = NULL;
	}
	for (int i = 0; i < c->nctx; i++) {
		struct comm_ctx *x = &c->ctx[i];
		for (int k = 0; k < COMM_MR_CACHE; k++)
			if (x->mrs[k].mr)
				wccl_mr_deregister(x->mrs[k].mr);
		if (x->eager_mr)
			wccl_mr_deregister(x->eager_mr);
		if (x->listener)
			wccl_listener_close(x->listener);
		if (x->cq)
			wccl_cq_destroy(x->cq);
		if (x->ctx)
			wccl_context_close(x->ctx);
		memset(x, 0, sizeof(*x));
	}
	c->nctx = 0;
}

static int region_index(struct wccl_comm *c, const char *name)
{
	for (int i = 0; i < c->nregions; i++)
		if (strcmp(c->region_names[i], name) == 0)
			return i;
	if (c->nregions == COMM_MAX_REGIONS)
		return -1;
	snprintf(c->region_names[c->nregions], COMM_REGION_LEN, "%s", name);
	return c->nregions++;
}

int comm_exchange_info(struct wccl_comm *c, const char *region)
{
	int64_t streams = wccl_param_int(WCCL_PARAM_CROSS_STREAMS);
	struct comm_peer_info me = {
		.rank = (uint32_t)c->rank,
		.pid = (uint32_t)getpid(),
		.host_id = wccl_host_id(),
		.cross_streams = streams < 1 ? 1u
				 : streams > COMM_MAX_STRIPES ? COMM_MAX_STRIPES
							      : (uint32_t)streams,
		.eager_bytes = (uint32_t)wccl_param_int(WCCL_PARAM_EAGER_BYTES),
		.topo = c->topo_decl,
	};
	int rc = wccl_random_bytes(me.hello_nonce, sizeof(me.hello_nonce));
	if (rc)
		return rc;
	gethostname(me.hostname, sizeof(me.hostname) - 1);
	snprintf(me.region, sizeof(me.region), "%s", region);
	for (int i = 0; i < c->nctx; i++)
		wccl_listener_addr(c->ctx[i].listener, me.addrs[i],
				   sizeof(me.addrs[i]));
	struct comm_peer_info *all = calloc((size_t)c->nranks, sizeof(*all));
	if (!all)
		return WCCL_ENOMEM;
	rc = wccl_bootstrap_allgather(c->bs, &me, sizeof(me), all,
				      c->timeout_ms);
	if (rc) {
		free(all);
		return rc;
	}
	uint64_t hosts[COMM_MAX_HOSTS];
	int nhosts = 0;
	for (int r = 0; r < c->nranks; r++) {
		struct comm_peer *p = &c->peers[r];
		p->info = all[r];
		p->info.hostname[COMM_HOSTNAME_LEN - 1] = '\0';
		p->info.region[COMM_REGION_LEN - 1] = '\0';
		p->info.topo.why[sizeof(p->info.topo.why) - 1] = '\0';
		p->region_id = region_index(c, p->info.region);
		if (p->region_id < 0) {
			free(all);
			return WCCL_ERANGE;
		}
		int h = 0;
		while (h < nhosts && hosts[h] != p->info.host_id)
			h++;
		if (h == nhosts && nhosts < COMM_MAX_HOSTS)
			hosts[nhosts++] = p->info.host_id;
		p->host_index = h;
		c->region_of[r] = p->region_id;
		c->host_of[r] = h;
	}
	free(all);
	comm_eager_agree(c);
	rc = comm_topo_agree(c);
	return rc ? rc : comm_check_addresses(c);
}

/*
 * Two ranks that advertise the same address would connect to themselves
 * (seen with a DPDK default IP shared by two ranks): say so now instead of
 * timing out in the connection set-up.
 */
struct addr_ref {
	const char *addr;
	int rank;
};

static int cmp_addr(const void *a, const void *b)
{
	return strcmp(((const struct addr_ref *)a)->addr,
		      ((const struct addr_ref *)b)->addr);
}

int comm_check_addresses(struct wccl_comm *c)
{
	size_t n = 0, cap = (size_t)c->nranks * COMM_MAX_PROVIDERS;
	struct addr_ref *v = calloc(cap, sizeof(*v));
	if (!v)
		return WCCL_ENOMEM;
	for (int r = 0; r < c->nranks; r++)
		for (int i = 0; i < COMM_MAX_PROVIDERS; i++)
			if (c->peers[r].info.addrs[i][0])
				v[n++] = (struct addr_ref){
					c->peers[r].info.addrs[i], r };
	qsort(v, n, sizeof(*v), cmp_addr);
	int rc = 0;
	for (size_t k = 1; k < n && !rc; k++)
		if (v[k].rank != v[k - 1].rank &&
		    !strcmp(v[k].addr, v[k - 1].addr)) {
			int a = v[k - 1].rank, b = v[k].rank;
			rc = comm_fail(c, WCCL_EADDRINUSE, a == c->rank ? b : a,
				       "rank %d and rank %d both listen at %s",
				       a < b ? a : b, a < b ? b : a, v[k].addr);
		}
	free(v);
	return rc;
}

/*
 * Pick the provider for @peer: the best one both sides have, except that
 * ranks in different regions never use a same-host-only provider (the
 * regions may be emulated on one host, and the path must be the network).
 */
static int choose_ctx(struct wccl_comm *c, struct comm_peer *peer,
		      const char **addr)
{
	const char *cand[COMM_MAX_PROVIDERS];
	int ctx_of[COMM_MAX_PROVIDERS], n = 0;
	int cross = peer->region_id != c->peers[c->rank].region_id;
	for (int a = 0; a < COMM_MAX_PROVIDERS; a++) {
		const char *pa = peer->info.addrs[a];
		if (!pa[0])
			continue;
		for (int i = 0; i < c->nctx; i++) {
			const char *name = wccl_context_provider(c->ctx[i].ctx);
			size_t len = strlen(name);
			if (strncmp(pa, name, len) || pa[len] != ':')
				continue;
			if (cross && !(c->ctx[i].caps & WCCL_CAP_REMOTE_HOST))
				continue;
			cand[n] = pa;
			ctx_of[n++] = i;
		}
	}
	int pick;
	if (wccl_select_address(cand, n, &pick))
		return -1;
	*addr = cand[pick];
	return ctx_of[pick];
}

/*
 * A connection's first message, naming its sender. The MAC (keyed with
 * the job's secret, over the fields and the receiver's nonce from this
 * init's info exchange) keeps anyone else who reaches the listener from
 * taking a rank's place.
 */
struct hello {
	uint32_t magic;
	uint32_t rank;
	uint64_t host_id;
	uint32_t stripe;
	uint32_t to_rank;
	uint8_t mac[WCCL_SHA256_LEN];
};

static void hello_mac(const struct wccl_comm *c, const struct hello *h,
		      uint8_t out[WCCL_SHA256_LEN])
{
	const struct comm_peer_info *to = &c->peers[h->to_rank].info;
	uint8_t msg[offsetof(struct hello, mac) + sizeof(to->hello_nonce)];
	memcpy(msg, h, offsetof(struct hello, mac));
	memcpy(msg + offsetof(struct hello, mac), to->hello_nonce,
	       sizeof(to->hello_nonce));
	wccl_hmac_sha256(c->secret, sizeof(c->secret), msg, sizeof(msg), out);
}

/* @h is for us and made with the job's secret. */
static int hello_signed(const struct wccl_comm *c, const struct hello *h)
{
	uint8_t mac[WCCL_SHA256_LEN];
	if (h->to_rank != (uint32_t)c->rank)
		return 0;
	hello_mac(c, h, mac);
	return !wccl_ct_memcmp(mac, h->mac, sizeof(mac));
}

/* Connections to @peer: several across regions over a network provider. */
static int stripes_to(const struct wccl_comm *c, const struct comm_peer *p)
{
	const struct comm_peer *me = &c->peers[c->rank];
	if (p->region_id == me->region_id ||
	    !(c->ctx[p->ctx_index].caps & WCCL_CAP_REMOTE_HOST))
		return 1;
	uint32_t s = p->info.cross_streams < me->info.cross_streams
			     ? p->info.cross_streams
			     : me->info.cross_streams;
	return s < 1 ? 1 : s > COMM_MAX_STRIPES ? COMM_MAX_STRIPES : (int)s;
}

/*
 * Accepting. Anyone can connect to a listener (a port scanner, a stray
 * client, a rank of another job), so connections are not counted: the
 * set-up waits until every expected (rank, stripe) is named by a valid
 * hello, and drops, with a warning naming the remote address, each one
 * that fails, sends anything else or names a connection already named.
 * There are slots for a few beyond those expected; when all are taken,
 * the one held longest goes (a peer names itself within a round trip).
 */
#define STRANGER_SLOTS 16
/* A hello receive's cookie: tag, slot generation, slot. The receive of a
 * slot's earlier occupant, flushed when it was closed, then matches no
 * endpoint. Send cookies are peer ranks, far below the tag. */
#define HELLO_RECV_TAG (1ull << 62)
#define HELLO_GEN_MASK 0xffffffu

struct accept_table {
	struct wccl_endpoint **ep; /* c->accepted */
	struct hello *in;	   /* per slot: the hello received */
	uint64_t *since;	   /* per slot: when accepted */
	uint32_t *gen;		   /* per slot: occupants so far */
	uint8_t *posted;	   /* per slot: hello receive posted */
	int *free;		   /* free slots, a stack */
	int nfree, n;
};

static uint64_t hello_cookie(const struct accept_table *t, int i)
{
	return HELLO_RECV_TAG | (uint64_t)(t->gen[i] & HELLO_GEN_MASK) << 32 |
	       (uint64_t)i;
}

static void release_slot(struct accept_table *t, int i)
{
	t->ep[i] = NULL;
	t->posted[i] = 0;
	t->free[t->nfree++] = i;
}

static void drop_unnamed(struct wccl_comm *c, struct accept_table *t, int i,
			 const char *why)
{
	WCCL_WARN(WCCL_SUB_COLL,
		  "rank %d: dropped connection from %s during set-up: %s",
		  c->rank, wccl_endpoint_peer(t->ep[i]), why);
	wccl_endpoint_close(t->ep[i]);
	release_slot(t, i);
}

static void accept_pending(struct wccl_comm *c, int ci, struct accept_table *t)
{
	struct wccl_endpoint *ep;
	while (wccl_accept(c->ctx[ci].listener, c->ctx[ci].cq, &ep) == 0) {
		if (!t->nfree) {
			int old = 0;
			for (int k = 1; k < t->n; k++)
				if (t->since[k] < t->since[old])
					old = k;
			drop_unnamed(c, t, old,
				     "too many unnamed connections; held "
				     "longest");
		}
		int i = t->free[--t->nfree];
		t->ep[i] = ep;
		t->since[i] = wccl_now_ns();
		t->gen[i]++;
	}
}

/* Post the hello receive on each accepted endpoint once its transport
 * handshake is done; drop those whose handshake failed. */
static void post_hello_recvs(struct wccl_comm *c, struct accept_table *t)
{
	for (int i = 0; i < t->n; i++) {
		struct wccl_endpoint *ep = t->ep[i];
		if (!ep || t->posted[i])
			continue;
		int st = wccl_endpoint_established(ep);
		if (st == WCCL_EAGAIN)
			continue;
		if (!st) {
			memset(&t->in[i], 0, sizeof(t->in[i]));
			st = wccl_post_recv(ep, &t->in[i], sizeof(t->in[i]),
					    NULL, hello_cookie(t, i));
		}
		if (st)
			drop_unnamed(c, t, i,
				     wccl_endpoint_last_error(ep)[0]
					     ? wccl_endpoint_last_error(ep)
					     : wccl_strerror(st));
		else
			t->posted[i] = 1;
	}
}

/* A hello receive completed: 1 if it named an expected connection. */
static int on_hello(struct wccl_comm *c, struct accept_table *t,
		    const struct wccl_completion *wc)
{
	uint64_t i = wc->cookie & 0xffffffffu;
	uint32_t gen = (uint32_t)(wc->cookie >> 32) & HELLO_GEN_MASK;
	if (i >= (uint64_t)t->n || !t->ep[i] || t->ep[i] != wc->ep ||
	    (t->gen[i] & HELLO_GEN_MASK) != gen)
		return 0; /* a dropped endpoint's flushed receive */
	const struct hello *h = &t->in[i];
	char why[160] = "";
	if (wc->status) {
		snprintf(why, sizeof(why), "%s",
			 wccl_endpoint_last_error(wc->ep)[0]
				 ? wccl_endpoint_last_error(wc->ep)
				 : wccl_strerror(wc->status));
	} else if (wc->op != WCCL_OP_RECV || wc->len != sizeof(*h) ||
		   h->magic != HELLO_MAGIC) {
		snprintf(why, sizeof(why), "not a wccl hello");
	} else if (!hello_signed(c, h)) {
		snprintf(why, sizeof(why),
			 "hello not signed for rank %d with this job's secret",
			 c->rank);
	} else if (h->rank >= (uint32_t)c->rank) {
		snprintf(why, sizeof(why),
			 "hello names rank %u, which does not connect to "
			 "rank %d",
			 h->rank, c->rank);
	} else if (h->stripe >= (uint32_t)c->peers[h->rank].nconns) {
		snprintf(why, sizeof(why),
			 "hello names connection %u of rank %u, which has %d",
			 h->stripe, h->rank, c->peers[h->rank].nconns);
	} else if (h->host_id != c->peers[h->rank].info.host_id) {
		snprintf(why, sizeof(why),
			 "hello names rank %u, but not from its host %s",
			 h->rank, c->peers[h->rank].info.hostname);
	} else if (c->peers[h->rank].eps[h->stripe]) {
		snprintf(why, sizeof(why),
			 "hello names connection %u of rank %u, which is "
			 "already connected",
			 h->stripe, h->rank);
	}
	if (why[0]) {
		drop_unnamed(c, t, (int)i, why);
		return 0;
	}
	struct comm_peer *from = &c->peers[h->rank];
	from->eps[h->stripe] = t->ep[i];
	from->ep = from->eps[0];
	release_slot(t, (int)i); /* owned by peers[] now */
	return 1;
}

/* An accepted endpoint not named yet, or -1. Only for completions that
 * are no hello receive: rare, so a scan is fine. */
static int unnamed_slot(const struct accept_table *t,
			const struct wccl_endpoint *ep)
{
	for (int i = 0; i < t->n; i++)
		if (t->ep[i] && t->ep[i] == ep)
			return i;
	return -1;
}

/* Handle @n completions during set-up; count hellos named and our hello
 * sends done. 0, or the error that ends the set-up. */
static int setup_completions(struct wccl_comm *c, struct accept_table *t,
			     const struct wccl_completion *wc, int n,
			     int *named, int *pending)
{
	for (int k = 0; k < n; k++) {
		if (wc[k].cookie & HELLO_RECV_TAG) {
			*named += on_hello(c, t, &wc[k]);
			continue;
		}
		int s = unnamed_slot(t, wc[k].ep);
		if (s >= 0) {
			drop_unnamed(c, t, s, "unexpected operation");
			continue;
		}
		if (wc[k].status)
			return comm_fail(c, wc[k].status, -1,
					 "connection set-up: %s",
					 wccl_endpoint_last_error(wc[k].ep));
		if (wc[k].op != WCCL_OP_SEND)
			return comm_fail(c, WCCL_EPROTO, -1,
					 "connection set-up: unexpected "
					 "operation %u from %s",
					 wc[k].op,
					 wccl_endpoint_peer(wc[k].ep));
		(*pending)--;
	}
	return 0;
}

/* Set-up done: close what never named itself, and reap the receives that
 * closing cancels, so that no stale completion reaches later stages. */
static int drop_strangers(struct wccl_comm *c, struct accept_table *t)
{
	int dropped = 0, named = 0, pending = 0, rc = 0;
	for (int i = 0; i < t->n; i++)
		if (t->ep[i]) {
			drop_unnamed(c, t, i, "it never sent a valid hello");
			dropped++;
		}
	for (int i = 0; dropped && !rc && i < c->nctx; i++) {
		struct wccl_completion wc[16];
		int n;
		while (!rc && (n = wccl_cq_poll(c->ctx[i].cq, wc, 16)) > 0)
			rc = setup_completions(c, t, wc, n, &named, &pending);
	}
	return rc;
}

/* The lower rank that has not named all its connections, or -1. */
static int missing_rank(const struct wccl_comm *c)
{
	for (int r = 0; r < c->rank; r++)
		for (int k = 0; k < c->peers[r].nconns; k++)
			if (!c->peers[r].eps[k])
				return r;
	return -1;
}

int comm_connect_mesh(struct wccl_comm *c)
{
	uint64_t deadline = wccl_deadline_ns(c->timeout_ms);
	int rc = 0, pending = 0, to_name = 0, named = 0;
	struct accept_table t = { 0 };
	/* Lower ranks connect to higher ones. */
	for (int r = 0; r < c->nranks; r++) {
		struct comm_peer *p = &c->peers[r];
		if (r == c->rank)
			continue;
		const char *addr = NULL;
		p->ctx_index = choose_ctx(c, p, &addr);
		if (p->ctx_index < 0) {
			rc = comm_fail(c, WCCL_ENODEV, r,
				       "no provider reaches rank %d (host %s, "
				       "region '%s')",
				       r, p->info.hostname, p->info.region);
			goto out;
		}
		p->nstripes = stripes_to(c, p);
		p->nconns = p->nstripes + (c->eager_max > 0);
		c->ctx[p->ctx_index].npeers++;
		if (r < c->rank) {
			to_name += p->nconns;
			continue;
		}
		struct comm_ctx *x = &c->ctx[p->ctx_index];
		for (int k = 0; k < p->nconns; k++) {
			rc = wccl_connect(x->ctx, addr, x->cq, &p->eps[k]);
			if (rc) {
				rc = comm_fail(c, rc, r,
					       "cannot connect to rank %d at %s",
					       r, addr);
				goto out;
			}
		}
		p->ep = p->eps[0];
		WCCL_INFO(WCCL_SUB_COLL, "rank %d -> rank %d via %s (%d %s%s)",
			  c->rank, r, addr, p->nstripes,
			  p->nstripes > 1 ? "connections" : "connection",
			  p->nconns > p->nstripes ? " + 1 eager" : "");
	}
	/* Kept in the communicator: in-flight messages may outlive a failed
	 * set-up until the endpoints are closed. */
	const size_t out_slots = (size_t)c->nranks * COMM_MAX_CONNS;
	t.n = to_name + STRANGER_SLOTS;
	c->hello = calloc(out_slots + (size_t)t.n, sizeof(struct hello));
	c->accepted = calloc((size_t)t.n, sizeof(*c->accepted));
	c->naccepted = c->accepted ? t.n : 0;
	t.since = calloc((size_t)t.n, sizeof(*t.since));
	t.gen = calloc((size_t)t.n, sizeof(*t.gen));
	t.posted = calloc((size_t)t.n, 1);
	t.free = calloc((size_t)t.n, sizeof(*t.free));
	if (!c->hello || !c->accepted || !t.since || !t.gen || !t.posted ||
	    !t.free) {
		rc = WCCL_ENOMEM;
		goto out;
	}
	struct hello *hello_out = c->hello; /* [peer * MAX_CONNS + k] */
	t.ep = c->accepted;
	t.in = hello_out + out_slots;
	for (int i = t.n - 1; i >= 0; i--)
		t.free[t.nfree++] = i;
	for (int r = c->rank + 1; r < c->nranks; r++) {
		struct comm_peer *p = &c->peers[r];
		for (int k = 0; k < p->nconns; k++) {
			int ms = (int)((deadline - wccl_now_ns()) / 1000000);
			rc = wccl_endpoint_wait_established(p->eps[k],
							    ms > 0 ? ms : 1);
			if (rc) {
				rc = comm_fail(c, rc, r,
					       "connecting to rank %d: %s", r,
					       wccl_endpoint_last_error(
						       p->eps[k]));
				goto out;
			}
			struct hello *h = &hello_out[r * COMM_MAX_CONNS + k];
			*h = (struct hello){ .magic = HELLO_MAGIC,
					     .rank = (uint32_t)c->rank,
					     .host_id = c->peers[c->rank]
								.info.host_id,
					     .stripe = (uint32_t)k,
					     .to_rank = (uint32_t)r };
			hello_mac(c, h, h->mac);
			rc = wccl_post_send(p->eps[k], h, sizeof(*h), NULL,
					    (uint64_t)r);
			if (rc)
				goto out;
			pending++;
		}
	}
	/* Accept the lower ranks; each names itself in its first message. */
	while (named < to_name || pending) {
		post_hello_recvs(c, &t);
		if (wccl_now_ns() > deadline) {
			int r = missing_rank(c);
			if (r >= 0)
				rc = comm_fail(c, WCCL_ETIMEDOUT, r,
					       "rank %d (host %s) never "
					       "connected",
					       r, c->peers[r].info.hostname);
			else
				rc = comm_fail(c, WCCL_ETIMEDOUT, -1,
					       "connection set-up timed out");
			goto out;
		}
		for (int i = 0; i < c->nctx; i++) {
			accept_pending(c, i, &t);
			struct wccl_completion wc[16];
			int n = wccl_cq_poll(c->ctx[i].cq, wc, 16);
			rc = setup_completions(c, &t, wc, n, &named, &pending);
			if (rc)
				goto out;
		}
		if (named < to_name || pending)
			usleep(50);
	}
	rc = drop_strangers(c, &t);
out:
	free(t.since);
	free(t.gen);
	free(t.posted);
	free(t.free);
	return rc;
}
