/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLL_H
#define WCCL_COLL_H

/*
 * Collectives over a communicator (wccl/comm.h). Every collective exists
 * blocking (wccl_allreduce) and non-blocking (wccl_iallreduce, which hands
 * out a request to wccl_wait / wccl_test). In-place: pass the same pointer
 * as send and receive buffer. All ranks must call the same collectives in
 * the same order with matching count, dtype, op and root; a mismatch is
 * detected and fails with -WCCL_EMISMATCH on every rank instead of hanging.
 *
 * Blocking calls wait at most the communicator's timeout; a rank that dies
 * or never calls makes the others fail with -WCCL_EPEER_LOST or
 * -WCCL_ETIMEDOUT, and wccl_comm_get_async_error() names it.
 */
#include <stddef.h>
#include <stdint.h>
#include <wccl/comm.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wccl_dtype {
	WCCL_INT8,
	WCCL_UINT8,
	WCCL_INT32,
	WCCL_UINT32,
	WCCL_INT64,
	WCCL_UINT64,
	WCCL_FP16, /* IEEE 754 binary16 */
	WCCL_BF16, /* bfloat16 */
	WCCL_FP32,
	WCCL_FP64,
	WCCL_DTYPE_COUNT
};

enum wccl_redop {
	WCCL_SUM,
	WCCL_PROD,
	WCCL_MIN,
	WCCL_MAX,
	WCCL_AVG, /* sum, then divided once by the number of ranks */
	WCCL_REDOP_COUNT
};

struct wccl_request;

/* Wait up to @timeout_ms (< 0: the communicator's timeout) for @req, then
 * free it. Returns the operation's result, or -WCCL_ETIMEDOUT (the request
 * stays valid: wait again or abort the communicator). */
int wccl_wait(struct wccl_request *req, int timeout_ms);

/* Make progress; *@done = 1 (and @req freed, its result returned) when it
 * has finished, else 0. */
int wccl_test(struct wccl_request *req, int *done);

int wccl_allreduce(const void *sendbuf, void *recvbuf, size_t count,
		   enum wccl_dtype dtype, enum wccl_redop op,
		   struct wccl_comm *comm);
int wccl_iallreduce(const void *sendbuf, void *recvbuf, size_t count,
		    enum wccl_dtype dtype, enum wccl_redop op,
		    struct wccl_comm *comm, struct wccl_request **req);

/* @count elements from @root's @sendbuf into every rank's @recvbuf. */
int wccl_broadcast(const void *sendbuf, void *recvbuf, size_t count,
		   enum wccl_dtype dtype, int root, struct wccl_comm *comm);
int wccl_ibroadcast(const void *sendbuf, void *recvbuf, size_t count,
		    enum wccl_dtype dtype, int root, struct wccl_comm *comm,
		    struct wccl_request **req);

/* The reduction lands in @root's @recvbuf only. */
int wccl_reduce(const void *sendbuf, void *recvbuf, size_t count,
		enum wccl_dtype dtype, enum wccl_redop op, int root,
		struct wccl_comm *comm);
int wccl_ireduce(const void *sendbuf, void *recvbuf, size_t count,
		 enum wccl_dtype dtype, enum wccl_redop op, int root,
		 struct wccl_comm *comm, struct wccl_request **req);

/* @recvbuf holds nranks * @sendcount elements, rank order. */
int wccl_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
		   enum wccl_dtype dtype, struct wccl_comm *comm);
int wccl_iallgather(const void *sendbuf, void *recvbuf, size_t sendcount,
		    enum wccl_dtype dtype, struct wccl_comm *comm,
		    struct wccl_request **req);

/* @sendbuf holds nranks * @recvcount elements; rank r gets block r. */
int wccl_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
			enum wccl_dtype dtype, enum wccl_redop op,
			struct wccl_comm *comm);
int wccl_ireduce_scatter(const void *sendbuf, void *recvbuf,
			 size_t recvcount, enum wccl_dtype dtype,
			 enum wccl_redop op, struct wccl_comm *comm,
			 struct wccl_request **req);

/* Block j (@count elements) of @sendbuf goes to rank j; block j of @recvbuf
 * comes from rank j. */
int wccl_alltoall(const void *sendbuf, void *recvbuf, size_t count,
		  enum wccl_dtype dtype, struct wccl_comm *comm);
int wccl_ialltoall(const void *sendbuf, void *recvbuf, size_t count,
		   enum wccl_dtype dtype, struct wccl_comm *comm,
		   struct wccl_request **req);

int wccl_barrier(struct wccl_comm *comm);
int wccl_ibarrier(struct wccl_comm *comm, struct wccl_request **req);

/* Point to point; matched in order per (sender, receiver) pair. */
int wccl_send(const void *buf, size_t count, enum wccl_dtype dtype, int peer,
	      struct wccl_comm *comm);
int wccl_recv(void *buf, size_t count, enum wccl_dtype dtype, int peer,
	      struct wccl_comm *comm);
int wccl_isend(const void *buf, size_t count, enum wccl_dtype dtype,
	       int peer, struct wccl_comm *comm, struct wccl_request **req);
int wccl_irecv(void *buf, size_t count, enum wccl_dtype dtype, int peer,
	       struct wccl_comm *comm, struct wccl_request **req);

#ifdef __cplusplus
}
#endif
#endif
