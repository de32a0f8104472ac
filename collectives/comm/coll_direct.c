/* SPDX-License-Identifier: MIT */
/*
 * Large allreduce among the ranks of one host, straight between the
 * callers' buffers: every rank maps every other rank's input (read) and
 * output (write), reduces its own 1/n of the elements from all inputs in
 * rank order and writes the result into every output in the same pass
 * (wccl_reduce_fused; rank order, so the bits do not depend on which rank
 * computes them). Each byte of input is read once and each byte of output
 * written once, by one rank, with no staging and no messages: per rank
 * n/n reads and n/n writes of the buffer, where a ring over the shm
 * transport also copies every block into staging and back out.
 *
 * It needs the buffers in wccl_mem memory (the memfd is what a peer maps).
 * The call goes through the mailboxes of coll_ll.c in three rounds, each
 * a flag every rank raises in its own slot and waits to see raised by all:
 *   1. signature + registration keys of its buffers (or "cannot": plain
 *      memory, a registration refused);
 *   2. "mapped" (or "cannot": no mapping slot left), once it mapped all;
 *   3. "written", once its share is in every output.
 * If any rank cannot, all see it in the same round and run the schedule
 * instead (the plan has one). After round 3 nobody reads an input or
 * writes an output any more, so the call returns.
 *
 * Round 2 is skipped when every rank's keys are those of the last call
 * that got through it and every rank says, in round 1, that it still
 * holds those mappings: then all already know that all can map. Each
 * round is a wait for every rank to be scheduled, which with more ranks
 * than cores costs tens of microseconds.
 *
 * In place works too: the rank that owns a block is the only one that
 * reads or writes that block anywhere, and it reads a chunk from every
 * input before writing that chunk to every output.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "coll_exec.h"
#include "comm_internal.h"
#include "collectives/copy_stream.h"
#include "collectives/dtype.h"
#include "collectives/reduce.h"
#include "collectives/schedule.h"
#include "core/log.h"
#include "core/params.h"
#include "transport/provider.h"

/* Past the cache (streaming below), reduce this much into our own
 * output, then copy it to the others while it is in cache. */
#define DIRECT_CHUNK (64u * 1024u)

struct direct_card {
	uint32_t ok;
	uint32_t kept; /* holds the mappings of c->direct_kept */
	struct comm_direct_keys keys;
	_Atomic uint64_t mapped; /* round 2: seq << 1 | ok */
	_Atomic uint64_t written; /* round 3: seq */
};

static struct direct_card *my_card(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	return (struct direct_card *)(uintptr_t)(coll_ll_slot(c, c->rank,
							      r->ll_slot) +
						 COMM_LL_DATA_OFF);
}

static const struct direct_card *card_of(struct wccl_request *r, int p)
{
	return (const struct direct_card *)(coll_ll_slot(r->comm, p,
							 r->ll_slot) +
					    COMM_LL_DATA_OFF);
}

int coll_direct_eligible(const struct wccl_comm *c, const struct coll_shape *s)
{
	return c->ll_on && s->kind == COLL_ALLREDUCE &&
	       s->count * wccl_dtype_size(s->dtype) >= COMM_DIRECT_MIN;
}

/* The registration key of wccl_mem buffer @buf (@len bytes) and its
 * offset in the allocation; 0, or nonzero when it has none. */
static int buffer_key(struct wccl_comm *c, int ctx, const void *buf,
		      size_t len, uint8_t *rk_out, uint64_t *off)
{
	struct wccl_mem_span span;
	struct wccl_rkey rk;
	if (wccl_mem_find(buf, len, &span))
		return -1;
	struct wccl_mr *mr = comm_mr_for(c, ctx, &span);
	if (!mr || wccl_mr_rkey(mr, &rk))
		return -1;
	wccl_rkey_pack(&rk, rk_out);
	*off = (uint64_t)((const uint8_t *)buf - (const uint8_t *)span.base);
	return 0;
}

/* Map every peer's buffers of the last call that mapped them all, again
 * (a cache lookup unless the provider dropped one); 1 if all are. */
static int remap_kept(struct wccl_comm *c)
{
	if (!c->direct_kept_bytes)
		return 0;
	for (int p = 0; p < c->nranks; p++) {
		if (p == c->rank)
			continue;
		const struct comm_direct_keys *k = &c->direct_kept[p];
		struct wccl_rkey in, out;
		void *a = NULL, *b = NULL;
		wccl_rkey_unpack(k->in_rk, &in);
		wccl_rkey_unpack(k->out_rk, &out);
		if (wccl_endpoint_map_remote(c->peers[p].ep, &in,
					     WCCL_MAP_TRANSIENT, &a) ||
		    wccl_endpoint_map_remote(c->peers[p].ep, &out,
					     WCCL_MAP_TRANSIENT |
						     WCCL_MAP_WRITE,
					     &b)) {
			c->direct_kept_bytes = 0;
			return 0;
		}
		c->direct_in[p] = (const uint8_t *)a + k->in_off;
		c->direct_out[p] = (uint8_t *)b + k->out_off;
	}
	return 1;
}

void coll_direct_start(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	size_t bytes = r->shape.count * wccl_dtype_size(r->shape.dtype);
	r->ll_slot = (int)(c->ll_calls++ & 1);
	struct direct_card *me = my_card(r);
	int ctx = coll_ll_ctx(c);
	me->ok = c->direct_in && c->direct_out &&
		 !buffer_key(c, ctx, r->sendbuf, bytes, me->keys.in_rk,
			     &me->keys.in_off) &&
		 !buffer_key(c, ctx, r->recvbuf, bytes, me->keys.out_rk,
			     &me->keys.out_off);
	me->kept = me->ok && c->direct_kept && remap_kept(c);
	uint8_t *slot = (uint8_t *)(uintptr_t)coll_ll_slot(c, c->rank,
							   r->ll_slot);
	coll_sig_encode(r, slot);
	atomic_store_explicit(coll_ll_flag(slot), r->seq, memory_order_release);
	r->direct_phase = 1;
	r->started = 1;
}

/* The call number rank @p's flag of @round shows. */
static uint64_t raised(struct wccl_request *r, int p, int round)
{
	const struct direct_card *k = card_of(r, p);
	if (round == 1)
		return atomic_load_explicit(
			coll_ll_flag(coll_ll_slot(r->comm, p, r->ll_slot)),
			memory_order_acquire);
	if (round == 2)
		return atomic_load_explicit(&k->mapped, memory_order_acquire) >>
		       1;
	return atomic_load_explicit(&k->written, memory_order_acquire);
}

/* Has every rank raised @round's flag for @r? */
static int all_raised(struct wccl_request *r, int round)
{
	for (int p = 0; p < r->comm->nranks; p++)
		if (raised(r, p, round) != r->seq)
			return 0;
	return 1;
}

/* Map every peer's buffers; 1 if all are. */
static int map_all(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	size_t bytes = r->shape.count * wccl_dtype_size(r->shape.dtype);
	c->direct_in[c->rank] = r->sendbuf;
	c->direct_out[c->rank] = r->recvbuf;
	for (int p = 0; p < c->nranks; p++) {
		if (p == c->rank)
			continue;
		const struct direct_card *k = card_of(r, p);
		struct wccl_rkey in, out;
		void *a = NULL, *b = NULL;
		wccl_rkey_unpack(k->keys.in_rk, &in);
		wccl_rkey_unpack(k->keys.out_rk, &out);
		if (k->keys.in_off > in.len || bytes > in.len - k->keys.in_off ||
		    k->keys.out_off > out.len ||
		    bytes > out.len - k->keys.out_off ||
		    wccl_endpoint_map_remote(c->peers[p].ep, &in,
					     WCCL_MAP_TRANSIENT, &a) ||
		    wccl_endpoint_map_remote(c->peers[p].ep, &out,
					     WCCL_MAP_TRANSIENT |
						     WCCL_MAP_WRITE,
					     &b))
			return 0;
		c->direct_in[p] = (const uint8_t *)a + k->keys.in_off;
		c->direct_out[p] = (uint8_t *)b + k->keys.out_off;
	}
	return 1;
}

/* Does every rank still hold the mappings of the last call that mapped
 * them all, for the same buffers? The same answer on every rank. */
static int all_kept(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	size_t bytes = r->shape.count * wccl_dtype_size(r->shape.dtype);
	if (!c->direct_kept_bytes || bytes > c->direct_kept_bytes)
		return 0;
	for (int p = 0; p < c->nranks; p++) {
		const struct direct_card *k = card_of(r, p);
		if (!k->kept || memcmp(&k->keys, &c->direct_kept[p],
				       sizeof(k->keys)))
			return 0;
	}
	return 1;
}

/*
 * Out of place and past the cache (all ranks' buffers together reach
 * WCCL_DIRECT_NT_BYTES), results go to the other outputs with stores that
 * skip the cache: this rank never reads them again, and it halves the
 * traffic of writing them (bench, 2 and 4 ranks, 8-128 MiB: 1.2-1.5x). In
 * place they are the next call's inputs of our block: there streaming
 * measured 20 % slower with 2 ranks and 17 % faster with 4, so it is left
 * out.
 */
static int streaming(const struct wccl_request *r)
{
	size_t es = wccl_dtype_size(r->shape.dtype);
	uint64_t nt = (uint64_t)wccl_param_int(WCCL_PARAM_DIRECT_NT_BYTES);
	uint64_t all = 2ull * (uint64_t)r->comm->nranks * r->shape.count * es;
	return nt && r->sendbuf != r->recvbuf && all >= nt;
}

/* Elements [e, e + cnt) of every input, reduced in rank order into every
 * output. All inputs of an element are read before any output of it is
 * written: in place, each input is also an output. */
static int reduce_chunk(struct wccl_request *r, uint64_t e, size_t cnt,
			int stream)
{
	struct wccl_comm *c = r->comm;
	enum wccl_dtype t = (enum wccl_dtype)r->shape.dtype;
	enum wccl_redop op = (enum wccl_redop)r->shape.op;
	int n = c->nranks;
	const void *const *in = (const void *const *)c->direct_in;
	if (!stream)
		return wccl_reduce_fused((void *const *)c->direct_out, n, in, n,
					 e, cnt, t, op);
	void *mine = c->direct_out[c->rank];
	int rc = wccl_reduce_fused(&mine, 1, in, n, e, cnt, t, op);
	size_t es = wccl_dtype_size(t), at = e * es;
	for (int p = 0; p < n && !rc; p++)
		if (p != c->rank)
			wccl_copy_stream(c->direct_out[p] + at,
					 (const uint8_t *)mine + at, cnt * es);
	return rc;
}

/* Reduce our block from every input and write it to every output. */
static int reduce_share(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	size_t step = DIRECT_CHUNK / wccl_dtype_size(r->shape.dtype);
	struct wccl_block b = wccl_sched_block(r->shape.count, c->nranks,
					       c->rank);
	int stream = streaming(r);
	uint64_t end = b.offset + b.count;
	for (uint64_t e = b.offset; e < end; e += step) {
		size_t cnt = end - e < step ? (size_t)(end - e) : step;
		int rc = reduce_chunk(r, e, cnt, stream);
		if (rc)
			return rc;
	}
	if (stream)
		wccl_copy_stream_fence(); /* before the "written" flag */
	return 0;
}

/* Round 3: our share into every output, then the "written" flag. */
static void write_share(struct wccl_request *r)
{
	int rc = reduce_share(r);
	if (rc) {
		coll_request_fail(r, rc);
		r->done = 1;
		return;
	}
	atomic_store_explicit(&my_card(r)->written, r->seq,
			      memory_order_release);
	r->direct_phase = 3;
}

int coll_direct_advance(struct wccl_request *r)
{
	struct wccl_comm *c = r->comm;
	struct direct_card *me = my_card(r);
	switch (r->direct_phase) {
	case 1: {
		if (!all_raised(r, 1))
			return 0;
		int all_ok = 1;
		for (int p = 0; p < c->nranks && !r->status; p++) {
			if (p != c->rank)
				coll_sig_compare(r, p, coll_ll_slot(c, p,
								    r->ll_slot));
			all_ok &= card_of(r, p)->ok != 0;
		}
		if (r->status || !all_ok)
			c->direct_kept_bytes = 0;
		if (r->status) {
			r->done = 1;
			return 0;
		}
		if (!all_ok) {
			r->direct_phase = 0; /* everyone saw it: schedule */
			c->direct_fallbacks++;
			return 1;
		}
		if (all_kept(r)) {
			c->direct_in[c->rank] = r->sendbuf;
			c->direct_out[c->rank] = r->recvbuf;
			write_share(r);
			return 0;
		}
		int ok = map_all(r);
		atomic_store_explicit(&me->mapped, r->seq << 1 | (uint64_t)ok,
				      memory_order_release);
		r->direct_phase = 2;
		return 0;
	}
	case 2: {
		if (!all_raised(r, 2))
			return 0;
		for (int p = 0; p < c->nranks; p++)
			if (!(atomic_load_explicit(&card_of(r, p)->mapped,
						   memory_order_acquire) &
			      1)) {
				c->direct_kept_bytes = 0;
				r->direct_phase = 0;
				c->direct_fallbacks++;
				return 1;
			}
		/* All mapped all: the next call may skip this round. */
		if (c->direct_kept) {
			for (int p = 0; p < c->nranks; p++)
				c->direct_kept[p] = card_of(r, p)->keys;
			c->direct_kept_bytes =
				r->shape.count * wccl_dtype_size(r->shape.dtype);
		}
		write_share(r);
		return 0;
	}
	default:
		if (all_raised(r, 3)) {
			r->done = 1;
			c->direct_done++;
		}
		return 0;
	}
}

int coll_direct_waiting_on(struct wccl_request *r, char *buf, size_t len,
			   int *never_called)
{
	struct wccl_comm *c = r->comm;
	int round = r->direct_phase;
	for (int p = 0; p < c->nranks; p++) {
		if (p == c->rank || raised(r, p, round) == r->seq)
			continue;
		*never_called = round == 1;
		snprintf(buf, len, "rank %d (host %s), %s", p,
			 c->peers[p].info.hostname,
			 round == 1   ? "which never started it"
			 : round == 2 ? "mapping the buffers"
				      : "writing its share");
		return p;
	}
	snprintf(buf, len, "nobody (all flags are up)");
	return -1;
}
