/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COMM_H
#define WCCL_COMM_H

/*
 * Communicators: a group of ranks that run collectives together, possibly
 * across regions. Shaped like NCCL's API so framework authors feel at home:
 *
 *   rank 0:     wccl_get_unique_id(&id);  (send id to the others)
 *   every rank: wccl_comm_init_rank(&comm, nranks, &id, rank, NULL);
 *
 * or, under torchrun / mpirun / srun, wccl_comm_init_env(&comm).
 *
 * The unique id carries the bootstrap root's address and a random secret;
 * every joiner proves it knows the secret, so a stranger on the bootstrap
 * port can neither join nor disturb the job. Every call that waits has a
 * timeout (config or WCCL_TIMEOUT_MS) and fails with a message naming the
 * rank and host at fault.
 */
#include <stddef.h>
#include <stdint.h>
#include <wccl/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WCCL_UNIQUE_ID_BYTES 128

/* Opaque, plain bytes: copy it to the other ranks by any means. */
struct wccl_unique_id {
	uint8_t internal[WCCL_UNIQUE_ID_BYTES];
};

struct wccl_comm;

struct wccl_config {
	size_t size;        /* sizeof(struct wccl_config), for growth */
	int timeout_ms;     /* every wait; 0 = WCCL_TIMEOUT_MS */
	const char *region; /* this rank's region; NULL = WCCL_REGION */
};

#define WCCL_CONFIG_INIT { sizeof(struct wccl_config), 0, NULL }

/*
 * Make a unique id and start the bootstrap root in this process (a thread
 * that lives until the last communicator made from the id is destroyed
 * here). Returns 0 or a negative code.
 */
int wccl_get_unique_id(struct wccl_unique_id *id);

/*
 * Join communicator @id as @rank of @nranks. Blocks (bounded by the
 * timeout) until every rank has joined and the connections are up.
 * @config may be NULL. Returns 0, -WCCL_EAUTH, -WCCL_ETIMEDOUT,
 * -WCCL_EINVAL, -WCCL_EPEER_LOST, ...
 */
int wccl_comm_init_rank(struct wccl_comm **comm, int nranks,
			const struct wccl_unique_id *id, int rank,
			const struct wccl_config *config);

/*
 * As wccl_comm_init_rank, with rank, size, root address and secret taken
 * from the launcher's environment: torchrun (RANK, WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT), Open MPI (OMPI_COMM_WORLD_RANK/SIZE), Slurm (SLURM_PROCID,
 * SLURM_NTASKS), with WCCL_ROOT_ADDR overriding the root address. Rank 0
 * starts the root on MASTER_PORT (or WCCL_ROOT_ADDR). The secret comes from
 * WCCL_AUTH_KEY (required when ranks are not all on this host).
 */
int wccl_comm_init_env(struct wccl_comm **comm);

/*
 * Split @comm: ranks with the same @color form a new communicator, ordered
 * by @key then by old rank. A negative color gives *@newcomm = NULL.
 * Collective over @comm.
 */
int wccl_comm_split(struct wccl_comm *comm, int color, int key,
		    struct wccl_comm **newcomm);

/* Collective: wait for the others, then free everything. */
int wccl_comm_destroy(struct wccl_comm *comm);

/* Local: fail every pending and future operation with -WCCL_EABORTED, tell
 * the other ranks, free everything. Never blocks for long. */
int wccl_comm_abort(struct wccl_comm *comm);

/*
 * The first asynchronous failure seen on @comm: its code (0 if none), the
 * failing rank (-1 if unknown) and a message naming rank and host. @msg may
 * be NULL.
 */
int wccl_comm_get_async_error(struct wccl_comm *comm, int *error, int *rank,
			      char *msg, size_t msg_len);

int wccl_comm_rank(const struct wccl_comm *comm);
int wccl_comm_size(const struct wccl_comm *comm);

/* Text: this rank's host and region, per peer the provider chosen, and the
 * link costs per class the algorithm choice uses, each with its source
 * ("rank 0 host a region 'east': 1:shm 2:uring links: host 2.1us(measured)
 * 4.20GB/s(measured); region 25.0us(default) 1.20GB/s(default); ..."). */
int wccl_comm_describe(struct wccl_comm *comm, char *buf, size_t len);

/*
 * Which algorithm an allreduce of @count elements of @dtype would use on
 * @comm, and why (the cost model's figures, or WCCL_ALGO). Local; builds
 * and caches the plan. Returns 0 or a negative code.
 */
int wccl_comm_explain_allreduce(struct wccl_comm *comm, size_t count,
				int dtype, char *algo, size_t algo_len,
				char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
