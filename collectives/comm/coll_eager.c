/* SPDX-License-Identifier: MIT */
/*
 * Eager messages. A collective's small messages, and every signature, go
 * at once on a connection of their own to each peer, into receive slots
 * that stay posted there. The rendezvous they replace lets a message go
 * only after the receiver's credit for it came back, which made a 2-rank
 * allreduce of a few bytes four one-way trips instead of two.
 *
 * Per peer, EAGER_SLOTS inbox slots are always posted. Messages arrive in
 * order on the one connection; they are matched in that order to what the
 * head request expects from the peer (its signature first, then its eager
 * receives in step order) and released (posted again) in the same order,
 * a data slot once its step is finished. The signature travels in front
 * of the first data message to the peer when that one is eager, else
 * alone (see plan_sig_inline). Each message starts with a
 * header naming the request's sequence number and what it is, so a peer
 * already in its next collective waits in the inbox, and a stream out of
 * step fails naming the peer. The sender copies the message into one of
 * its outbox slots, so the caller's buffer is free at once; the slot comes
 * back with the send's completion, which a call still waits for before it
 * returns (over uring that is when the message is in the socket: the
 * eager connections complete sends themselves, no ACK asked for).
 *
 * Both ends choose "eager" from the message length and the size all ranks
 * agreed on at init, so a message always takes the connection its
 * receiver looks on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_exec.h"
#include "coll_plan.h"
#include "comm_internal.h"
#include "core/log.h"
#include "transport/provider.h"

#define EAGER_SLOTS 8u
#define EAGER_MAGIC 0x52474145u /* "EAGR" */
/* Inbox and outbox slots of every peer together, at most. */
#define EAGER_BUDGET (64ull << 20)
#define EAGER_MIN 256u

/* Cookies of eager transfers: no request slot (a send may complete after
 * its request), bits 47..40 in/out, 39..8 peer, 7..0 slot. */
#define EAGER_COOKIE (0xffffull << 48)
enum { EAGER_IN = 1, EAGER_OUT = 2 };


struct eager_hdr {
	uint32_t magic;
	uint32_t kind;
	uint64_t seq;
};
#define EAGER_HDR ((uint32_t)sizeof(struct eager_hdr))

struct eager_peer {
	uint8_t *in, *out;
	uint32_t in_len[EAGER_SLOTS];
	uint32_t arrived;  /* bitmap: slots holding a message not matched */
	uint32_t out_free; /* bitmap */
	uint32_t match;    /* counts messages matched */
	uint32_t release;  /* counts slots posted again */
};

struct comm_eager {
	size_t slot_bytes;
	uint8_t *mem;
	struct eager_peer *peer; /* per rank */
};

/* Room for the header, a signature riding in front and the data. */
static size_t slot_bytes_for(size_t max)
{
	return (EAGER_HDR + COMM_SIG_LEN + max + 63) & ~(size_t)63;
}

void comm_eager_agree(struct wccl_comm *c)
{
	uint64_t max = UINT32_MAX;
	for (int r = 0; r < c->nranks; r++)
		if (c->peers[r].info.eager_bytes < max)
			max = c->peers[r].info.eager_bytes;
	/* The same figures on every rank give the same answer. */
	while (max >= EAGER_MIN &&
	       (uint64_t)c->nranks * 2 * EAGER_SLOTS * slot_bytes_for(max) >
		       EAGER_BUDGET)
		max /= 2;
	c->eager_max = c->nranks > 1 && max >= EAGER_MIN ? (size_t)max : 0;
}

static struct wccl_endpoint *eager_ep(struct wccl_comm *c, int peer)
{
	return c->peers[peer].eps[c->peers[peer].nstripes];
}

static struct wccl_mr *eager_mr(struct wccl_comm *c, int peer)
{
	return c->ctx[c->peers[peer].ctx_index].eager_mr;
}

static uint64_t eager_cookie(int dir, int peer, uint32_t slot)
{
	return EAGER_COOKIE | (uint64_t)dir << 40 | (uint64_t)peer << 8 | slot;
}

static int post_inbox(struct wccl_comm *c, int peer, uint32_t slot)
{
	struct comm_eager *e = c->eager;
	return wccl_post_recv(eager_ep(c, peer),
			      e->peer[peer].in + slot * e->slot_bytes,
			      e->slot_bytes, eager_mr(c, peer),
			      eager_cookie(EAGER_IN, peer, slot));
}

int comm_eager_setup(struct wccl_comm *c)
{
	if (!c->eager_max)
		return 0;
	struct comm_eager *e = calloc(1, sizeof(*e));
	if (!e)
		return WCCL_ENOMEM;
	c->eager = e;
	e->slot_bytes = slot_bytes_for(c->eager_max);
	c->eager_local = 1;
	size_t per_peer = 2 * EAGER_SLOTS * e->slot_bytes;
	size_t len = (size_t)c->nranks * per_peer;
	e->peer = calloc((size_t)c->nranks, sizeof(*e->peer));
	if (!e->peer)
		return WCCL_ENOMEM;
	int rc = wccl_mem_alloc(len, (void **)&e->mem);
	if (rc)
		return rc;
	for (int i = 0; i < c->nctx; i++)
		/* Unregistered slots still work, through a bounce. */
		if (c->ctx[i].npeers &&
		    wccl_mr_register(c->ctx[i].ctx, e->mem, len,
				     WCCL_ACCESS_LOCAL, &c->ctx[i].eager_mr))
			c->ctx[i].eager_mr = NULL;
	for (int r = 0; r < c->nranks; r++) {
		struct eager_peer *p = &e->peer[r];
		p->in = e->mem + (size_t)r * per_peer;
		p->out = p->in + EAGER_SLOTS * e->slot_bytes;
		p->out_free = (1u << EAGER_SLOTS) - 1;
		if (r == c->rank)
			continue;
		/* Slots are sized for the largest message: a send cannot be
		 * refused, so it need not wait to hear it arrived. */
		rc = wccl_endpoint_set_attr(eager_ep(c, r),
					    WCCL_EP_ATTR_SEND_LOCAL_COMPLETION,
					    1);
		if (rc)
			c->eager_local = 0;
		if (rc && rc != WCCL_EOPNOTSUPP)
			return comm_fail(c, rc, r, "rank %d: eager connection "
					 "to rank %d: %s", c->rank, r,
					 wccl_strerror(rc));
		for (uint32_t k = 0; k < EAGER_SLOTS; k++) {
			rc = post_inbox(c, r, k);
			if (rc)
				return comm_fail(c, rc, r,
						 "rank %d: eager slots for rank "
						 "%d: %s",
						 c->rank, r, wccl_strerror(rc));
		}
	}
	WCCL_INFO(WCCL_SUB_COLL,
		  "rank %d: messages up to %zu bytes go eagerly (%u slots "
		  "per peer and direction)",
		  c->rank, c->eager_max, EAGER_SLOTS);
	return 0;
}

void comm_eager_free(struct wccl_comm *c)
{
	if (!c->eager)
		return;
	if (c->eager->mem)
		wccl_mem_free(c->eager->mem);
	free(c->eager->peer);
	free(c->eager);
	c->eager = NULL;
}

int coll_eager_cookie(uint64_t cookie)
{
	return (cookie & EAGER_COOKIE) == EAGER_COOKIE;
}

void coll_eager_completion(struct wccl_comm *c,
			   const struct wccl_completion *wc)
{
	int dir = (int)(wc->cookie >> 40 & 0xff);
	int peer = (int)(wc->cookie >> 8 & 0xffffffffu);
	uint32_t slot = (uint32_t)(wc->cookie & 0xff);
	if (!c->eager || peer >= c->nranks || slot >= EAGER_SLOTS)
		return;
	struct eager_peer *p = &c->eager->peer[peer];
	if (dir == EAGER_OUT && c->eager_sends_out)
		c->eager_sends_out--;
	if (wc->status) {
		int rc = comm_fail(c, wc->status, peer,
				   "eager messages with rank %d (host %s): %s",
				   peer, c->peers[peer].info.hostname,
				   wccl_endpoint_last_error(wc->ep));
		if (c->head)
			coll_request_fail(c->head, rc);
		c->broken = 1;
		return;
	}
	if (dir == EAGER_OUT) {
		p->out_free |= 1u << slot;
		return;
	}
	p->arrived |= 1u << slot;
	p->in_len[slot] = (uint32_t)wc->len;
}

int coll_eager_on(const struct wccl_comm *c, size_t len)
{
	return c->eager && len <= c->eager_max;
}

int coll_eager_send(struct wccl_request *r, int peer,
		    enum coll_eager_kind kind, const void *src, size_t len)
{
	struct wccl_comm *c = r->comm;
	struct comm_eager *e = c->eager;
	struct eager_peer *p = &e->peer[peer];
	if (!p->out_free)
		return WCCL_EAGAIN; /* all in flight: their completions free one */
	uint32_t slot = (uint32_t)__builtin_ctz(p->out_free);
	uint8_t *msg = p->out + slot * e->slot_bytes;
	struct eager_hdr h = { EAGER_MAGIC, kind, r->seq };
	uint32_t at = EAGER_HDR;
	memcpy(msg, &h, sizeof(h));
	if (kind == COLL_EAGER_SIG_DATA) {
		coll_sig_encode(r, msg + at);
		at += COMM_SIG_LEN;
	}
	if (len)
		memcpy(msg + at, src, len);
	int rc = wccl_post_send(eager_ep(c, peer), msg, at + len,
				eager_mr(c, peer),
				eager_cookie(EAGER_OUT, peer, slot));
	if (!rc) {
		p->out_free &= ~(1u << slot);
		c->eager_sends_out++;
	}
	return rc;
}

void coll_eager_release(struct wccl_comm *c, int peer)
{
	struct eager_peer *p = &c->eager->peer[peer];
	uint32_t slot = p->release++ % EAGER_SLOTS;
	int rc = post_inbox(c, peer, slot);
	if (rc && c->head)
		coll_request_fail(c->head,
				  comm_fail(c, rc, peer,
					    "eager slot for rank %d: %s", peer,
					    wccl_strerror(rc)));
}

/* The first eager receive from @peer not yet matched, or -1. */
static int next_eager_recv(struct wccl_request *r, int peer)
{
	struct coll_plan *p = r->plan;
	for (int i = r->next_finish; i < p->nsteps; i++) {
		const struct wccl_step *s = &p->steps[i];
		if (s->recv_peer == peer && !(p->state[i].flags & STEP_RECV_DONE) &&
		    coll_eager_on(r->comm, s->recv.count * p->elem_size))
			return i;
	}
	return -1;
}

static void out_of_step(struct wccl_request *r, int peer, const char *what)
{
	struct wccl_comm *c = r->comm;
	coll_request_fail(r, comm_fail(c, WCCL_EPROTO, peer,
				       "rank %d (host %s) sent %s during "
				       "call #%llu",
				       peer, c->peers[peer].info.hostname, what,
				       (unsigned long long)r->seq));
}

/* Match what has arrived from @peer to what @r expects from it. */
static void match_peer(struct wccl_request *r, int peer)
{
	struct wccl_comm *c = r->comm;
	struct coll_plan *pl = r->plan;
	struct eager_peer *p = &c->eager->peer[peer];
	while (!r->status) {
		uint32_t slot = p->match % EAGER_SLOTS;
		if (!(p->arrived & 1u << slot))
			return;
		const uint8_t *msg = p->in + slot * c->eager->slot_bytes;
		uint32_t len = p->in_len[slot];
		struct eager_hdr h;
		if (len < EAGER_HDR) {
			out_of_step(r, peer, "a runt message");
			return;
		}
		memcpy(&h, msg, sizeof(h));
		if (h.magic != EAGER_MAGIC) {
			out_of_step(r, peer, "a message without the header");
			return;
		}
		if (h.seq > r->seq)
			return; /* it is in its next call already */
		if (h.seq < r->seq) {
			out_of_step(r, peer, "a message of an earlier call");
			return;
		}
		len -= EAGER_HDR;
		msg += EAGER_HDR;
		int has_sig = h.kind == COLL_EAGER_SIG ||
			      h.kind == COLL_EAGER_SIG_DATA;
		if (has_sig) {
			if (c->sig_got[peer]) {
				out_of_step(r, peer, "a second signature");
				return;
			}
			if (len < COMM_SIG_LEN ||
			    (h.kind == COLL_EAGER_SIG && len != COMM_SIG_LEN)) {
				out_of_step(r, peer, "a cut signature");
				return;
			}
			c->sig_got[peer] = 1;
			r->sigs_pending--;
			coll_sig_compare(r, peer, msg);
		}
		if (h.kind == COLL_EAGER_SIG) {
			p->arrived &= ~(1u << slot);
			p->match++;
			coll_eager_release(c, peer);
			continue;
		}
		if (r->status)
			return; /* the signature differs */
		if (has_sig) {
			msg += COMM_SIG_LEN;
			len -= COMM_SIG_LEN;
		}
		int i = next_eager_recv(r, peer);
		if ((h.kind != COLL_EAGER_DATA && !has_sig) ||
		    !c->sig_got[peer] || i < 0) {
			out_of_step(r, peer, "a message nothing waits for");
			return;
		}
		struct step_state *st = &pl->state[i];
		uint64_t want = pl->steps[i].recv.count * pl->elem_size;
		if (len != want) {
			coll_request_fail(
				r, comm_fail(c, WCCL_EMISMATCH, peer,
					     "%s #%llu: rank %d (host %s) sent "
					     "%u bytes, expected %llu",
					     coll_kind_name(r->shape.kind),
					     (unsigned long long)r->seq, peer,
					     c->peers[peer].info.hostname, len,
					     (unsigned long long)want));
			return;
		}
		st->eager = msg;
		st->recv_len = len;
		st->flags |= STEP_RECV_POSTED | STEP_RECV_DONE;
		p->arrived &= ~(1u << slot);
		p->match++;
	}
}

void coll_eager_match(struct wccl_request *r)
{
	struct coll_plan *p = r->plan;
	for (int k = 0; k < p->n_sig_recv && !r->status; k++)
		match_peer(r, p->sig_recv_peers[k]);
}
