/* SPDX-License-Identifier: MIT */
/*
 * Data path: posting, progress and the copies. Per-endpoint state lives in
 * fixed arrays made at handshake time; nothing here allocates or locks.
 *
 * Initiator: an op takes a txq slot (seq = its index); progress pushes its
 * header (plus inline payload, or FRAG chunks when the peer cannot use
 * CMA) into the tx ring; the peer's ACK marks it done; done ops retire to
 * the CQ strictly in posting order.
 * Target: progress reads the rx ring, validates, copies (memcpy from the
 * ring or process_vm_readv from the initiator) and queues an ACK.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "shm.h"

static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

static uint32_t shm_pow2(uint32_t n)
{
	uint32_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

int shm_ep_queues_alloc(struct shm_ep *ep, uint32_t peer_qd)
{
	uint32_t cap = shm_pow2(ep->ctx->qdepth);
	uint32_t pcap = shm_pow2(peer_qd);
	ep->qd = ep->ctx->qdepth;
	ep->tx_mask = ep->rx_mask = cap - 1;
	ep->uq_mask = pcap - 1;
	ep->txq = calloc(cap, sizeof(*ep->txq));
	ep->rxq = calloc(cap, sizeof(*ep->rxq));
	ep->uq = calloc(pcap, sizeof(*ep->uq));
	ep->ackq = calloc(pcap, sizeof(*ep->ackq));
	ep->uq_buf = malloc((size_t)pcap * ep->inline_max + 1);
	if (!ep->txq || !ep->rxq || !ep->uq || !ep->ackq || !ep->uq_buf)
		return WCCL_ENOMEM;
	for (uint32_t i = 0; i < pcap; i++)
		ep->uq[i].payload = ep->uq_buf + (size_t)i * ep->inline_max;
	return 0;
}

void shm_ep_queues_free(struct shm_ep *ep)
{
	free(ep->txq);
	free(ep->rxq);
	free(ep->uq);
	free(ep->ackq);
	free(ep->uq_buf);
}

/* ---- completions ------------------------------------------------------ */

static inline int shm_cq_room(const struct shm_cq *cq)
{
	return cq->tail - cq->head <= cq->mask;
}

static inline void shm_cq_put(struct shm_ep *ep, uint32_t op, uint64_t cookie,
			      uint64_t len, int status, uint32_t imm)
{
	struct shm_cq *cq = shm_cq_of(ep->base.cq);
	if (!shm_cq_room(cq)) {
		/* Every caller checks room first: a bug if we get here. */
		WCCL_WARN(WCCL_SUB_SHM, "CQ full: completion for %s dropped",
			  ep->base.peer);
		return;
	}
	struct wccl_completion *wc = &cq->wc[cq->tail++ & cq->mask];
	wc->cookie = cookie;
	wc->ep = &ep->base;
	wc->len = len;
	wc->status = status;
	wc->imm = imm;
	wc->op = op;
	wc->reserved = 0;
}

/* ---- failure ---------------------------------------------------------- */

/* A failed endpoint's operations, completed with its error as the CQ has
 * room; progress calls again for the rest, so none is lost to a full CQ
 * (every posted operation completes exactly once). */
static void shm_ep_flush(struct shm_ep *ep)
{
	struct shm_cq *cq = shm_cq_of(ep->base.cq);
	for (; ep->tx_head != ep->tx_tail && shm_cq_room(cq); ep->tx_head++) {
		struct shm_tx *t = &ep->txq[ep->tx_head & ep->tx_mask];
		shm_cq_put(ep,
			   t->type == SHM_MSG_SEND ? WCCL_OP_SEND
						   : WCCL_OP_WRITE,
			   t->cookie, t->len, t->done ? t->status : ep->err,
			   0);
	}
	for (; ep->rx_head != ep->rx_tail && shm_cq_room(cq); ep->rx_head++) {
		struct shm_rx *r = &ep->rxq[ep->rx_head & ep->rx_mask];
		shm_cq_put(ep, WCCL_OP_RECV, r->cookie, 0, ep->err, 0);
	}
}

void shm_ep_abort(struct shm_ep *ep, int err)
{
	if (ep->state != SHM_EP_UP)
		return;
	ep->state = SHM_EP_FAILED;
	ep->err = err;
	ep->tx_push = ep->tx_tail; /* nothing more goes out */
	ep->uq_head = ep->uq_tail;
	ep->ack_head = ep->ack_tail;
	ep->st.active = 0;
	ep->pull_off = ep->uq_pull_off = 0;
	shm_ep_flush(ep);
}

static int shm_ep_error(struct shm_ep *ep, int err, const char *what)
{
	wccl_ep_fail(&ep->base, WCCL_SUB_SHM, err, "%s", what);
	shm_ep_abort(ep, err);
	return err;
}

/* The peer hung up. Quiet if nothing was in flight (an orderly close). */
static void shm_ep_lost(struct shm_ep *ep)
{
	if (ep->tx_head != ep->tx_tail || ep->rx_head != ep->rx_tail) {
		shm_ep_error(ep, WCCL_EPEER_LOST,
			     "peer process exited or closed the connection");
		return;
	}
	snprintf(ep->base.last_error, sizeof(ep->base.last_error),
		 "peer %s: closed the connection (WCCL_EPEER_LOST)",
		 ep->base.peer);
	WCCL_INFO(WCCL_SUB_SHM, "%s", ep->base.last_error);
	shm_ep_abort(ep, WCCL_EPEER_LOST);
}

/* ---- initiator: pushing ----------------------------------------------- */

static void shm_push_acks(struct shm_ep *ep)
{
	while (ep->ack_head != ep->ack_tail) {
		/* The ACK ring first; if the peer has not drained it, the data
		 * ring, so that what we owe never waits on our next poll. */
		struct shm_ring *r = &ep->atx;
		struct shm_msg *m = shm_ring_reserve(r, SHM_LINE);
		if (!m) {
			r = &ep->tx;
			m = shm_ring_reserve(r, SHM_LINE);
		}
		if (!m)
			return;
		const struct shm_ack *a = &ep->ackq[ep->ack_head & ep->uq_mask];
		memset(m, 0, sizeof(*m));
		m->size = SHM_LINE;
		m->type = SHM_MSG_ACK;
		m->seq = a->seq;
		m->status = a->status;
		shm_ring_commit(r, SHM_LINE);
		ep->ack_head++;
		ep->rung = 1;
	}
}

/*
 * The start of the target's region @key in our mapping of its memory, if
 * it published the region as wccl_mem and the table says the key is live,
 * allows @access and is at least @need bytes long; NULL otherwise. The
 * table entry is a seqlock on gen.
 */
uint8_t *shm_peer_region(struct shm_ep *ep, uint64_t key, uint32_t access,
			 uint64_t need, int pinned)
{
	uint32_t slot = (uint32_t)key, kgen = (uint32_t)(key >> 32);
	if (!ep->direct || !ep->peer_mrt || slot >= SHM_MR_MAX || !kgen)
		return NULL;
	struct shm_mrt_ent *e = &ep->peer_mrt[slot];
	uint32_t g = atomic_load_explicit(&e->gen, memory_order_acquire);
	if (g != kgen)
		return NULL;
	uint32_t acc = e->access;
	uint64_t len = e->len, ino = e->mem_ino, off = e->mem_off;
	int32_t fd = e->mem_fd;
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&e->gen, memory_order_relaxed) != g)
		return NULL;
	if ((acc & access) != access || need > len)
		return NULL;
	uint64_t size;
	int writable = !!(access & WCCL_ACCESS_REMOTE_WRITE);
	uint8_t *base = pinned ? shm_map_pinned(ep, fd, ino, writable, &size)
			       : shm_map_get(ep, fd, ino, writable, &size);
	if (!base || off > size || len > size - off)
		return NULL;
	return base + off;
}

static void shm_copy_done(struct shm_ep *ep)
{
	atomic_store_explicit(&ep->my_copy->key, 0, memory_order_release);
}

/* Whether the target's region @key is still live in its table. */
static int shm_peer_key_live(const struct shm_ep *ep, uint64_t key)
{
	const struct shm_mrt_ent *e = &ep->peer_mrt[(uint32_t)key];
	return atomic_load_explicit(&e->gen, memory_order_relaxed) ==
	       (uint32_t)(key >> 32);
}

/* Copy a WRITE into our mapping of the target's memory, in slices: once
 * the target deregisters the region (or closes), the rest is dropped (the
 * target then rejects the message, so the write fails at both ends), and
 * its wait for us lasts a slice. */
static void shm_direct_copy(struct shm_ep *ep, const struct shm_tx *t,
			    uint8_t *dst)
{
	for (uint64_t off = 0; off < t->len; off += SHM_COPY_SLICE) {
		uint64_t n = t->len - off;
		if (n > SHM_COPY_SLICE)
			n = SHM_COPY_SLICE;
		if (off && (!shm_peer_key_live(ep, t->key) ||
			    atomic_load_explicit(&ep->peer_copy->closed,
						 memory_order_relaxed)))
			break;
		memcpy(dst + off, t->buf + off, n);
	}
	shm_copy_done(ep);
}

/* Where a WRITE of @t lands in our mapping of the target's memory, or
 * NULL (then the target checks and copies as usual). */
static uint8_t *shm_direct_dst(struct shm_ep *ep, const struct shm_tx *t)
{
	if (t->offset > UINT64_MAX - t->len)
		return NULL;
	uint8_t *base = shm_peer_region(ep, t->key, WCCL_ACCESS_REMOTE_WRITE,
					t->offset + t->len, 0);
	return base ? base + t->offset : NULL;
}

int shm_map_remote(struct wccl_endpoint *e, const struct wccl_rkey *rk,
		   unsigned flags, void **addr)
{
	if (!e || !rk || !addr)
		return WCCL_EINVAL;
	/* Pinned unless transient: a caller that keeps the pointer must not
	 * lose the mapping to the direct-copy cache (which evicts the
	 * oldest of SHM_MAPS, so the last few transient ones stay). */
	uint8_t *p = shm_peer_region(
		shm_ep_of(e), rk->key,
		WCCL_ACCESS_REMOTE_READ |
			(flags & WCCL_MAP_WRITE ? WCCL_ACCESS_REMOTE_WRITE : 0),
		rk->len, !(flags & WCCL_MAP_TRANSIENT));
	if (!p)
		return WCCL_EOPNOTSUPP;
	*addr = p;
	return 0;
}

/* Push one op (or more of its fragments). 1 when it is all in the ring. */
static int shm_push_op(struct shm_ep *ep, struct shm_tx *t, uint32_t seq)
{
	if (!t->started) {
		int inl = t->len <= ep->inline_max, stream = 0, direct = 0;
		uint8_t *dst = NULL;
		if (!inl && t->type == SHM_MSG_WRITE && ep->direct &&
		    ep->peer_mrt) {
			/* Announced before the checks: see shm_copy_line. */
			atomic_store_explicit(&ep->my_copy->key, t->key,
					      memory_order_relaxed);
			atomic_thread_fence(memory_order_seq_cst);
			if (!atomic_load_explicit(&ep->peer_copy->closed,
						  memory_order_relaxed))
				dst = shm_direct_dst(ep, t);
			direct = dst != NULL;
			if (!direct)
				shm_copy_done(ep);
		}
		if (!inl && !direct) {
			if (ep->peer_reads_me < 0)
				return 0; /* its CMA verdict is on the way */
			stream = !ep->peer_reads_me;
			/* A SEND from wccl_mem: the receiver may map it. */
			direct = !stream && t->type == SHM_MSG_SEND &&
				 t->mem_fd >= 0;
		}
		uint32_t bytes = shm_msg_bytes(inl ? t->len : 0);
		struct shm_msg *m = shm_ring_reserve(&ep->tx, bytes);
		if (!m) {
			if (dst) /* checked again when there is room */
				shm_copy_done(ep);
			return 0;
		}
		m->size = bytes;
		m->type = t->type;
		m->flags = (uint8_t)(t->flags | (inl ? SHM_F_INLINE : 0) |
				     (stream ? SHM_F_STREAM : 0) |
				     (direct ? SHM_F_DIRECT : 0));
		m->resv = 0;
		m->seq = seq;
		m->status = 0;
		m->len = t->len;
		m->key = t->key;
		m->offset = t->offset;
		m->src = (uint64_t)(uintptr_t)t->buf;
		m->imm = t->imm;
		m->resv2 = 0;
		m->resv3 = 0;
		if (inl && t->len)
			memcpy(m + 1, t->buf, t->len);
		if (dst) {
			shm_direct_copy(ep, t, dst);
		} else if (direct) {
			m->key = t->mem_ino;
			m->resv2 = (uint32_t)t->mem_fd;
			m->resv3 = t->mem_off;
		}
		shm_ring_commit(&ep->tx, bytes);
		ep->rung = 1;
		t->started = 1;
		if (!stream)
			return 1;
	}
	while (t->sent < t->len) {
		uint64_t n = t->len - t->sent;
		if (n > ep->frag_max)
			n = ep->frag_max;
		uint32_t bytes = shm_msg_bytes(n);
		struct shm_msg *m = shm_ring_reserve(&ep->tx, bytes);
		if (!m)
			return 0;
		memset(m, 0, sizeof(*m));
		m->size = bytes;
		m->type = SHM_MSG_FRAG;
		m->seq = seq;
		m->len = n;
		m->offset = t->sent;
		memcpy(m + 1, t->buf + t->sent, n);
		shm_ring_commit(&ep->tx, bytes);
		t->sent += n;
		ep->rung = 1;
	}
	return 1;
}

static void shm_push(struct shm_ep *ep)
{
	shm_push_acks(ep);
	while (ep->tx_push != ep->tx_tail &&
	       shm_push_op(ep, &ep->txq[ep->tx_push & ep->tx_mask],
			   (uint32_t)ep->tx_push))
		ep->tx_push++;
}

static void shm_retire(struct shm_ep *ep)
{
	struct shm_cq *cq = shm_cq_of(ep->base.cq);
	while (ep->tx_head != ep->tx_push && shm_cq_room(cq)) {
		struct shm_tx *t = &ep->txq[ep->tx_head & ep->tx_mask];
		if (!t->done)
			return;
		shm_cq_put(ep,
			   t->type == SHM_MSG_SEND ? WCCL_OP_SEND
						   : WCCL_OP_WRITE,
			   t->cookie, t->len, t->status, 0);
		ep->tx_head++;
	}
}

/* ---- posting ---------------------------------------------------------- */

static inline int shm_can_post(struct shm_ep *ep)
{
	if (ep->state != SHM_EP_UP)
		return ep->state == SHM_EP_FAILED ? ep->err : WCCL_ENOTCONN;
	return ep->tx_tail - ep->tx_head >= ep->qd ? WCCL_EAGAIN : 0;
}

/* A buffer said to be in @mr must lie inside it (other providers trust the
 * mr's registration; callers must not get away with it here either). */
static inline int shm_buf_ok(const void *buf, size_t len,
			     const struct wccl_mr *mr)
{
	if (!buf && len)
		return 0;
	if (!mr || !len)
		return 1;
	uintptr_t b = (uintptr_t)buf, base = (uintptr_t)mr->addr;
	return b >= base && b - base <= mr->len && len <= mr->len - (b - base);
}

static inline void shm_post_tail(struct shm_ep *ep)
{
	ep->tx_tail++;
	/* Push now: the common case is an empty queue and a free ring. */
	shm_push(ep);
	if (ep->rung) {
		ep->rung = 0;
		shm_doorbell_ring(ep->peer_db);
	}
}

int shm_post_send(struct wccl_endpoint *base, const void *buf, size_t len,
		  struct wccl_mr *mr, uint64_t cookie)
{
	struct shm_ep *ep = shm_ep_of(base);
	int rc = shm_can_post(ep);
	if (rc)
		return rc;
	if (!shm_buf_ok(buf, len, mr))
		return WCCL_EINVAL;
	struct shm_tx *t = &ep->txq[ep->tx_tail & ep->tx_mask];
	*t = (struct shm_tx){ .cookie = cookie,
			      .buf = buf,
			      .len = len,
			      .mem_fd = -1,
			      .type = SHM_MSG_SEND };
	const struct shm_mr *smr =
		mr ? container_of(mr, const struct shm_mr, base) : NULL;
	if (smr && smr->mem_fd >= 0 && len) {
		t->mem_fd = smr->mem_fd;
		t->mem_ino = smr->mem_ino;
		t->mem_off = smr->mem_off +
			     (uint64_t)((const uint8_t *)buf -
					(const uint8_t *)mr->addr);
	}
	shm_post_tail(ep);
	return 0;
}

int shm_post_write(struct wccl_endpoint *base, const void *buf, size_t len,
		   struct wccl_mr *mr, const struct wccl_rkey *rk,
		   uint64_t offset, uint32_t imm, uint32_t flags,
		   uint64_t cookie)
{
	struct shm_ep *ep = shm_ep_of(base);
	int rc = shm_can_post(ep);
	if (rc)
		return rc;
	if (!shm_buf_ok(buf, len, mr) || !rk ||
	    (flags & ~(uint32_t)WCCL_WRITE_IMM))
		return WCCL_EINVAL;
	struct shm_tx *t = &ep->txq[ep->tx_tail & ep->tx_mask];
	*t = (struct shm_tx){ .cookie = cookie,
			      .buf = buf,
			      .len = len,
			      .key = rk->key,
			      .offset = offset,
			      .imm = imm,
			      .mem_fd = -1,
			      .type = SHM_MSG_WRITE,
			      .flags = (flags & WCCL_WRITE_IMM) ? SHM_F_IMM
								: 0 };
	shm_post_tail(ep);
	return 0;
}

int shm_post_recv(struct wccl_endpoint *base, void *buf, size_t len,
		  struct wccl_mr *mr, uint64_t cookie)
{
	struct shm_ep *ep = shm_ep_of(base);
	if (ep->state != SHM_EP_UP)
		return ep->state == SHM_EP_FAILED ? ep->err : WCCL_ENOTCONN;
	if (ep->rx_tail - ep->rx_head >= ep->qd)
		return WCCL_EAGAIN;
	if (!shm_buf_ok(buf, len, mr))
		return WCCL_EINVAL;
	struct shm_rx *r = &ep->rxq[ep->rx_tail++ & ep->rx_mask];
	r->cookie = cookie;
	r->buf = buf;
	r->len = len;
	return 0;
}

/* ---- target ----------------------------------------------------------- */

static inline int shm_ack(struct shm_ep *ep, uint32_t seq, int status)
{
	if (ep->ack_tail - ep->ack_head > ep->uq_mask)
		return shm_ep_error(ep, WCCL_EPROTO,
				    "peer exceeded its queue depth");
	struct shm_ack *a = &ep->ackq[ep->ack_tail++ & ep->uq_mask];
	a->seq = seq;
	a->status = status;
	return 0;
}

/* Copy the next slice of a large payload from the initiator, one chunk per
 * call so a big transfer cannot hold up progress for long. Returns 1 while
 * bytes remain (call again with the same message), 0 when done, or a
 * negative status; if the peer is gone the endpoint is aborted and *lost
 * set. */
static int shm_pull(struct shm_ep *ep, uint8_t *dst, const struct shm_msg *h,
		    uint64_t *pull_off, int *lost)
{
	uint64_t off = *pull_off, n = h->len - off;
	if (n > shm_cma_chunk)
		n = shm_cma_chunk;
	int rc = shm_cma_read(ep->peer_pid, dst + off, h->src + off, n);
	if (rc == WCCL_EPEER_LOST) {
		*lost = 1;
		*pull_off = 0;
		return shm_ep_error(ep, rc,
				    "peer process gone while copying from it");
	}
	if (rc) {
		*pull_off = 0;
		return wccl_ep_fail(&ep->base, WCCL_SUB_SHM, rc,
				    "process_vm_readv of %llu bytes from pid %d "
				    "failed",
				    (unsigned long long)h->len, (int)ep->peer_pid);
	}
	*pull_off = off + n;
	if (*pull_off < h->len)
		return 1;
	*pull_off = 0;
	return 0;
}

/* A SEND from the peer's wccl_mem: one memcpy from our mapping of it.
 * 0 if it cannot be done (then CMA). */
static int shm_direct_read(struct shm_ep *ep, uint8_t *dst,
			   const struct shm_msg *h, uint64_t pull_off)
{
	uint64_t size;
	if (!(h->flags & SHM_F_DIRECT) || pull_off)
		return 0;
	const uint8_t *base =
		shm_map_get(ep, (int32_t)h->resv2, h->key, 0, &size);
	if (!base || h->resv3 > size || h->len > size - h->resv3)
		return 0;
	memcpy(dst, base + h->resv3, h->len);
	return 1;
}

/* Deliver a (non-streamed) SEND into the oldest posted receive;
 * @pull_off counts what is copied of it so far. */
static int shm_deliver(struct shm_ep *ep, const struct shm_msg *h,
		       const void *inl, uint64_t *pull_off)
{
	struct shm_rx *r = &ep->rxq[ep->rx_head & ep->rx_mask];
	int status = 0, lost = 0;
	if (h->len > r->len)
		status = WCCL_ETRUNCATED;
	else if (h->flags & SHM_F_INLINE)
		memcpy(r->buf, inl, h->len);
	else if (!shm_direct_read(ep, r->buf, h, *pull_off))
		status = shm_pull(ep, r->buf, h, pull_off, &lost);
	if (lost)
		return -1;
	if (status == 1)
		return 0; /* more to copy on the next call */
	ep->rx_head++;
	shm_cq_put(ep, WCCL_OP_RECV, r->cookie, h->len, status, 0);
	return shm_ack(ep, h->seq, status) ? -1 : 1;
}

/* 1 consumed, 0 stall (leave it in the ring), -1 endpoint failed. @m is
 * our copy of the header, @pl the inline payload in the ring. */
static int shm_rx_send(struct shm_ep *ep, const struct shm_msg *m,
		       const uint8_t *pl)
{
	int matchable = ep->uq_head == ep->uq_tail && ep->rx_head != ep->rx_tail;
	if (m->flags & SHM_F_STREAM) {
		/* Fragments follow in the ring: it needs a buffer now. */
		if (!matchable)
			return 0;
		struct shm_rx *r = &ep->rxq[ep->rx_head++ & ep->rx_mask];
		struct shm_stream *st = &ep->st;
		*st = (struct shm_stream){ .active = 1,
					   .type = SHM_MSG_SEND,
					   .seq = m->seq,
					   .dest = r->buf,
					   .len = m->len,
					   .cookie = r->cookie };
		if (m->len > r->len) {
			st->discard = 1;
			shm_cq_put(ep, WCCL_OP_RECV, r->cookie, m->len,
				   WCCL_ETRUNCATED, 0);
			return shm_ack(ep, m->seq, WCCL_ETRUNCATED) ? -1 : 1;
		}
		return 1;
	}
	if (matchable)
		return shm_deliver(ep, m, pl, &ep->pull_off);
	if (ep->uq_tail - ep->uq_head > ep->uq_mask)
		return shm_ep_error(ep, WCCL_EPROTO,
				    "peer exceeded its queue depth"),
		       -1;
	struct shm_unexp *u = &ep->uq[ep->uq_tail++ & ep->uq_mask];
	u->hdr = *m;
	if ((m->flags & SHM_F_INLINE) && m->len)
		memcpy(u->payload, pl, m->len);
	return 1;
}

static int shm_rx_write(struct shm_ep *ep, const struct shm_msg *m,
			const uint8_t *pl)
{
	struct wccl_mr *mr = shm_mr_lookup(ep->ctx, m->key);
	int status = 0;
	if (!mr)
		status = WCCL_EREMOTE_KEY;
	else if (!(mr->access & WCCL_ACCESS_REMOTE_WRITE))
		status = WCCL_EREMOTE_ACCESS;
	else if (m->offset > mr->len || m->len > mr->len - m->offset)
		status = WCCL_EREMOTE_BOUNDS;
	if (status) {
		/* Also a region deregistered while we copied into it in
		 * slices: the rest is not copied, and the next message's
		 * count starts at 0. */
		ep->pull_off = 0;
		WCCL_DP_TRACE(WCCL_SUB_SHM, "rejected write from %s: %d",
			      ep->base.peer, status);
		if (m->flags & SHM_F_STREAM)
			ep->st = (struct shm_stream){ .active = 1,
						      .discard = 1,
						      .seq = m->seq,
						      .len = m->len };
		shm_cq_put(ep, WCCL_OP_ERROR, 0, m->len, status, 0);
		return shm_ack(ep, m->seq, status) ? -1 : 1;
	}
	uint8_t *dst = (uint8_t *)mr->addr + m->offset;
	if (m->flags & SHM_F_STREAM) {
		ep->st = (struct shm_stream){ .active = 1,
					      .type = SHM_MSG_WRITE,
					      .flags = m->flags,
					      .seq = m->seq,
					      .imm = m->imm,
					      .dest = dst,
					      .len = m->len,
					      .key = m->key };
		return 1;
	}
	int lost = 0;
	if (m->flags & SHM_F_DIRECT) {
		/* The initiator copied it after checking our table. */
	} else if (m->flags & SHM_F_INLINE) {
		if (m->len)
			memcpy(dst, pl, m->len);
	} else {
		status = shm_pull(ep, dst, m, &ep->pull_off, &lost);
		if (lost)
			return -1;
		if (status == 1)
			return 0; /* more to copy on the next call */
	}
	if (status)
		shm_cq_put(ep, WCCL_OP_ERROR, 0, m->len, status, 0);
	else if (m->flags & SHM_F_IMM)
		shm_cq_put(ep, WCCL_OP_WRITE_IMM, 0, m->len, 0, m->imm);
	return shm_ack(ep, m->seq, status) ? -1 : 1;
}

static int shm_rx_frag(struct shm_ep *ep, const struct shm_msg *m,
		       const uint8_t *pl)
{
	struct shm_stream *st = &ep->st;
	if (!st->active || m->seq != st->seq || m->offset != st->got ||
	    m->len > st->len - st->got)
		return shm_ep_error(ep, WCCL_EPROTO,
				    "unexpected payload fragment"),
		       -1;
	if (!st->discard)
		memcpy(st->dest + st->got, pl, m->len);
	st->got += m->len;
	if (st->got < st->len)
		return 1;
	st->active = 0;
	if (st->discard && st->status) { /* its region went meanwhile */
		shm_cq_put(ep, WCCL_OP_ERROR, 0, st->len, st->status, 0);
		return shm_ack(ep, st->seq, st->status) ? -1 : 1;
	}
	if (st->discard)
		return 1;
	if (st->type == SHM_MSG_SEND)
		shm_cq_put(ep, WCCL_OP_RECV, st->cookie, st->len, 0, 0);
	else if (st->flags & SHM_F_IMM)
		shm_cq_put(ep, WCCL_OP_WRITE_IMM, 0, st->len, 0, st->imm);
	return shm_ack(ep, st->seq, 0) ? -1 : 1;
}

static int shm_rx_ack(struct shm_ep *ep, const struct shm_msg *m)
{
	uint64_t idx = ep->tx_head + (uint32_t)(m->seq - (uint32_t)ep->tx_head);
	struct shm_tx *t = &ep->txq[idx & ep->tx_mask];
	if (idx >= ep->tx_tail || t->done)
		return shm_ep_error(ep, WCCL_EPROTO,
				    "acknowledgement for no operation"),
		       -1;
	t->done = 1;
	t->status = m->status;
	return 1;
}

static int shm_rx_one(struct shm_ep *ep, const struct shm_msg *m,
		      const uint8_t *pl)
{
	/* Payload bytes claimed must be in the message (and fit our copy of
	 * an unexpected one): a confused peer must not make us overrun. */
	int inl = (m->flags & SHM_F_INLINE) || m->type == SHM_MSG_FRAG;
	if (inl && (m->len > m->size - sizeof(*m) ||
		    (m->type != SHM_MSG_FRAG && m->len > ep->inline_max)))
		return shm_ep_error(ep, WCCL_EPROTO,
				    "message claims more payload than it holds"),
		       -1;
	switch (m->type) {
	case SHM_MSG_ACK: /* overflow from the ACK ring */
		return shm_rx_ack(ep, m);
	case SHM_MSG_SEND:
		return shm_rx_send(ep, m, pl);
	case SHM_MSG_WRITE:
		return shm_rx_write(ep, m, pl);
	case SHM_MSG_FRAG:
		return shm_rx_frag(ep, m, pl);
	case SHM_MSG_CMA:
		ep->peer_reads_me = m->status ? 1 : 0;
		return 1;
	default:
		return shm_ep_error(ep, WCCL_EPROTO, "unknown message type"),
		       -1;
	}
}

/* ---- progress --------------------------------------------------------- */

static void shm_ep_progress(struct shm_ep *ep)
{
	if (ep->state != SHM_EP_UP) {
		if (ep->state == SHM_EP_FAILED)
			shm_ep_flush(ep);
		else
			shm_handshake(ep);
		return;
	}
	struct shm_cq *cq = shm_cq_of(ep->base.cq);
	int consumed = 0, bad = 0;
	/* ACKs need no CQ room and never stall: take them all. */
	struct shm_msg h;
	while (shm_ring_peek(&ep->arx, &h, &bad)) {
		if (h.type != SHM_MSG_ACK) {
			shm_ep_error(ep, WCCL_EPROTO, "non-ACK in the ACK ring");
			return;
		}
		if (shm_rx_ack(ep, &h) < 0)
			return;
		shm_ring_release(&ep->arx, &h);
		consumed = 1;
	}
	if (bad) {
		shm_ep_error(ep, WCCL_EPROTO, "malformed message in the ring");
		return;
	}
	/* A budget keeps one busy peer from starving the others. */
	for (int budget = 64; budget > 0 && shm_cq_room(cq); budget--) {
		const struct shm_msg *m = shm_ring_peek(&ep->rx, &h, &bad);
		if (!m) {
			if (bad)
				shm_ep_error(ep, WCCL_EPROTO,
					     "malformed message in the ring");
			break;
		}
		/* Part-way through pulling it, the copy taken when it began
		 * stays the message. */
		if (!ep->pull_off)
			ep->rx_hdr = h;
		int rc = shm_rx_one(ep, &ep->rx_hdr, (const uint8_t *)(m + 1));
		if (rc < 0)
			return;
		if (rc == 0)
			break;
		shm_ring_release(&ep->rx, &ep->rx_hdr);
		consumed = 1;
	}
	while (ep->uq_head != ep->uq_tail && ep->rx_head != ep->rx_tail &&
	       shm_cq_room(cq)) {
		struct shm_unexp *u = &ep->uq[ep->uq_head & ep->uq_mask];
		int rc = shm_deliver(ep, &u->hdr, u->payload,
				     &ep->uq_pull_off);
		if (rc < 0)
			return;
		if (rc == 0)
			break;
		ep->uq_head++;
	}
	shm_push(ep);
	shm_retire(ep);
	ep->ctx->work += (uint64_t)consumed;
	/* Freed ring space may be what a sleeping peer waits for. */
	if (ep->rung || consumed) {
		ep->rung = 0;
		shm_doorbell_ring(ep->peer_db);
	}
}

void shm_wait_copy(struct shm_ep *ep, uint64_t key)
{
	uint64_t deadline = 0;
	for (;;) {
		uint64_t k = atomic_load_explicit(&ep->peer_copy->key,
						  memory_order_acquire);
		if (!k || (key && k != key))
			return;
		uint64_t now = wccl_now_ns();
		if (!deadline)
			deadline = now + SHM_COPY_WAIT_MS * 1000000ull;
		if (shm_peer_hung_up(ep) || shm_peer_exited(ep))
			return; /* it copies nothing more */
		if (now > deadline) {
			WCCL_WARN(WCCL_SUB_SHM,
				  "peer %s (pid %d) still copying into our "
				  "memory after %d ms (stopped?); going on",
				  ep->base.peer, (int)ep->peer_pid,
				  SHM_COPY_WAIT_MS);
			return;
		}
		sched_yield();
	}
}

void shm_forget_mr(struct shm_ctx *c, uint64_t key)
{
	/* Pairs with the writer's fence (shm_copy_line). */
	atomic_thread_fence(memory_order_seq_cst);
	for (struct shm_ep *ep = c->eps; ep; ep = ep->next) {
		struct shm_stream *st = &ep->st;
		if (st->active && !st->discard && st->type == SHM_MSG_WRITE &&
		    st->key == key) {
			st->discard = 1;
			st->status = WCCL_EREMOTE_KEY;
		}
		if (ep->peer_copy)
			shm_wait_copy(ep, key);
	}
}

static void shm_check_liveness(struct shm_ctx *c)
{
	uint64_t now = wccl_now_ns();
	if (now < c->next_live_ns)
		return;
	c->next_live_ns = now + SHM_LIVE_NS;
	for (struct shm_ep *ep = c->eps; ep; ep = ep->next) {
		if (ep->state != SHM_EP_UP || !shm_peer_hung_up(ep))
			continue;
		/* Take what it sent before it went, then fail the rest. */
		shm_ep_progress(ep);
		shm_ep_lost(ep);
	}
}

static void shm_progress(struct shm_ctx *c)
{
	for (struct shm_ep *ep = c->eps; ep; ep = ep->next)
		shm_ep_progress(ep);
	if ((++c->idle & 1023) == 0)
		shm_check_liveness(c);
}

int shm_cq_poll(struct wccl_cq *base, struct wccl_completion *wc, int max)
{
	struct shm_cq *cq = shm_cq_of(base);
	shm_progress(shm_ctx_of(base->ctx));
	int n = 0;
	while (n < max && cq->head != cq->tail)
		wc[n++] = cq->wc[cq->head++ & cq->mask];
	return n;
}

static int shm_has_work(void *arg)
{
	struct shm_ctx *c = arg;
	for (struct shm_ep *ep = c->eps; ep; ep = ep->next) {
		/* A failed one's completions waiting for CQ room. */
		if (ep->state == SHM_EP_FAILED &&
		    (ep->tx_head != ep->tx_tail || ep->rx_head != ep->rx_tail) &&
		    shm_cq_room(shm_cq_of(ep->base.cq)))
			return 1;
		if (ep->state != SHM_EP_UP)
			continue;
		if (shm_ring_readable(&ep->rx) || shm_ring_readable(&ep->arx))
			return 1;
		/* Blocked on a full ring and the peer has since made room. */
		if ((ep->tx_push != ep->tx_tail || ep->ack_head != ep->ack_tail) &&
		    atomic_load_explicit(&ep->tx.sh->tail,
					 memory_order_acquire) != ep->tx.cached)
			return 1;
		if (ep->ack_head != ep->ack_tail &&
		    atomic_load_explicit(&ep->atx.sh->tail,
					 memory_order_acquire) != ep->atx.cached)
			return 1;
	}
	return 0;
}

int shm_cq_sleep(struct wccl_cq *base, int timeout_ms)
{
	struct shm_cq *cq = shm_cq_of(base);
	struct shm_ctx *c = shm_ctx_of(base->ctx);
	if (cq->head != cq->tail || timeout_ms <= 0)
		return 0;
	/* A peer that talked to us lately will likely talk again before a
	 * futex round trip (wake + reschedule, tens of us) would end: poll
	 * on, yielding now and then in case it waits for our CPU. */
	uint64_t now = wccl_now_ns();
	if (c->work != c->work_seen) {
		c->work_seen = c->work;
		c->active_until = now + SHM_ACTIVE_NS;
	}
	for (uint64_t yield_at = now + SHM_YIELD_NS; now < c->active_until;) {
		if (shm_has_work(c))
			return 0;
		shm_cpu_relax();
		now = wccl_now_ns();
		if (now >= yield_at) { /* the peer may be waiting for our CPU */
			sched_yield();
			yield_at = now + SHM_YIELD_NS;
		}
	}
	/* Short naps: liveness and handshakes are not doorbell-driven. */
	int ms = timeout_ms < 10 ? timeout_ms : 10;
	if (c->n_pending)
		ms = 1;
	shm_doorbell_wait(c->db, ms, shm_has_work, c);
	shm_check_liveness(c);
	return 0;
}
