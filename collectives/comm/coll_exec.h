/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLL_EXEC_H
#define WCCL_COLL_EXEC_H

#include "comm.h"

/* coll_buffers.c: set r->buf / r->send_base and copy inputs where the
 * schedule works on a copy; after the run, copy results out and finish
 * averages. Return 0 or a negative code. */
int coll_prepare_buffers(struct wccl_request *r);
int coll_finish_buffers(struct wccl_request *r);

/* coll_lazy.c: out-of-place allreduce without the up-front input copy. */
int coll_lazy_plan(struct coll_plan *p);
void coll_lazy_start(struct wccl_request *r, const uint8_t *in);
/* Where a send of @b reads from (*from_input: the caller's input). */
const uint8_t *coll_lazy_send_src(struct wccl_request *r, struct wccl_block b,
				  int *from_input);
/* A finished receive has overwritten @b whole. */
void coll_lazy_overwritten(struct wccl_request *r, struct wccl_block b);
/* buf[b] = (buf or input)[b] op staged. */
int coll_lazy_reduce(struct wccl_request *r, struct wccl_block b,
		     const uint8_t *staged);
void coll_lazy_finish(struct wccl_request *r);

/* coll_ll.c: small allreduce through shared mailboxes on one host. */
int coll_ll_eligible(const struct wccl_comm *c, const struct coll_shape *s);
void coll_ll_start(struct wccl_request *r);
void coll_ll_advance(struct wccl_request *r);
int coll_ll_waiting_on(struct wccl_request *r, char *buf, size_t len,
		       int *never_called);
/* coll_eager.c: small messages and signatures without a rendezvous. */
/* Does a @len-byte message go eagerly? (Both ends answer alike.) */
int coll_eager_on(const struct wccl_comm *c, size_t len);
/* What an eager message holds: a signature (@src), data, or @r's
 * signature followed by data. */
enum coll_eager_kind {
	COLL_EAGER_SIG = 1,
	COLL_EAGER_DATA = 2,
	COLL_EAGER_SIG_DATA = 3,
};
/* Copy @len bytes (after @r's signature for COLL_EAGER_SIG_DATA) into an
 * outbox slot and send it to @peer; -WCCL_EAGAIN while every slot is in
 * flight. */
int coll_eager_send(struct wccl_request *r, int peer,
		    enum coll_eager_kind kind, const void *src, size_t len);
/* Match what arrived for @r: signatures are checked, data lands in its
 * step's state (->eager, STEP_RECV_DONE). */
void coll_eager_match(struct wccl_request *r);
/* The step holding @peer's oldest matched slot is finished with it. */
void coll_eager_release(struct wccl_comm *c, int peer);
int coll_eager_cookie(uint64_t cookie);
void coll_eager_completion(struct wccl_comm *c,
			   const struct wccl_completion *wc);

/* coll_ll.c: mailbox slot @s of rank @peer (ours too), and its flag. */
const uint8_t *coll_ll_slot(const struct wccl_comm *c, int peer, int s);
_Atomic uint64_t *coll_ll_flag(const uint8_t *slot);
int coll_ll_ctx(const struct wccl_comm *c);

/* coll_direct.c: large allreduce between mapped buffers on one host.
 * advance returns 1 when the call must run its schedule instead (every
 * rank learns it in the same round). */
int coll_direct_eligible(const struct wccl_comm *c, const struct coll_shape *s);
void coll_direct_start(struct wccl_request *r);
int coll_direct_advance(struct wccl_request *r);
int coll_direct_waiting_on(struct wccl_request *r, char *buf, size_t len,
			   int *never_called);

/* coll_exec.c: @r's signature (COMM_SIG_LEN bytes), and the check of a
 * peer's against it (a difference fails @r naming the peer). */
void coll_sig_encode(const struct wccl_request *r, uint8_t *out);
void coll_sig_compare(struct wccl_request *r, int peer, const uint8_t *theirs);

/* Text naming who @r still waits for; returns that rank or -1, and
 * *@never_called = 1 when that rank has not even started the call. */
int coll_waiting_on(struct wccl_request *r, char *buf, size_t len,
		    int *never_called);

/* Fail @r (and the communicator), telling the other ranks. */
void coll_request_fail(struct wccl_request *r, int err);

#endif
