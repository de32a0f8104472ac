/* SPDX-License-Identifier: MIT */
#ifndef WCCL_BOOTSTRAP_H
#define WCCL_BOOTSTRAP_H

/*
 * Bootstrap: how ranks that know only a root address and a shared secret
 * find each other. The root is a thread in one process (the one that made
 * the unique id, or rank 0 under a launcher); every rank joins it over TCP,
 * proves it knows the secret (HMAC-SHA-256 challenge both ways), and then
 * uses it for small all-gathers (addresses, rkeys, split colors) until the
 * communicator is destroyed.
 *
 *   rank --HELLO(rank, nranks, nonce_r)----------------> root
 *   rank <-CHALLENGE(nonce_s, HMAC(k, "root"|nonce_r))-- root
 *   rank --PROOF(HMAC(k, "rank"|nonce_s|rank|nranks))--> root
 *   rank <-WELCOME------------------------------------- root
 *   rank --GATHER(round, blob)-------------------------> root
 *   rank <-RESULT(round, blob[0] .. blob[n-1])--------- root  (or ABORT)
 *
 * A connection that fails the proof, sends malformed or oversized frames,
 * or stalls past the handshake timeout is dropped and logged with its
 * address; it never joins and never stops the root.
 */
#include <stddef.h>
#include <stdint.h>

#define WCCL_BOOTSTRAP_SECRET_LEN 32
#define WCCL_BOOTSTRAP_ADDR_LEN 64

struct wccl_bootstrap_root;
struct wccl_bootstrap;

/*
 * Start a root listening on @bind_addr ("ip:port", port 0 = any; NULL =
 * this host's first non-loopback IPv4 address, else 127.0.0.1). Writes the
 * address ranks must join to @addr_out. Returns 0 or a negative code.
 */
int wccl_bootstrap_root_start(const char *bind_addr,
			      const uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN],
			      struct wccl_bootstrap_root **root,
			      char addr_out[WCCL_BOOTSTRAP_ADDR_LEN]);

/* Stop the root thread and free it. Ranks still joined see PEER_LOST. */
void wccl_bootstrap_root_stop(struct wccl_bootstrap_root *root);

/*
 * Join the root at @root_addr as @rank of @nranks, retrying refused
 * connections until @timeout_ms (the root may start later). Returns 0,
 * -WCCL_EAUTH (root failed its proof or rejected ours), -WCCL_ETIMEDOUT,
 * -WCCL_EINVAL (rank out of range / joined twice / nranks differs: the
 * root's reason is logged).
 */
int wccl_bootstrap_join(const char *root_addr,
			const uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN],
			int rank, int nranks, int timeout_ms,
			struct wccl_bootstrap **bs);

/*
 * All-gather @len bytes from every rank into @all (nranks * len bytes,
 * rank order). Every rank must pass the same @len (else -WCCL_EMISMATCH
 * everywhere, naming the rank). A rank that leaves or dies makes it fail
 * with -WCCL_EPEER_LOST; wccl_bootstrap_error() says which rank and host.
 */
int wccl_bootstrap_allgather(struct wccl_bootstrap *bs, const void *mine,
			     size_t len, void *all, int timeout_ms);

/* All-gather of nothing. */
int wccl_bootstrap_barrier(struct wccl_bootstrap *bs, int timeout_ms);

/* Tell every rank (through the root) that the job failed with @err because
 * of rank @culprit (-1: unknown), @why naming it; their pending and future
 * bootstrap calls and wccl_bootstrap_check_abort() then fail with @err. */
int wccl_bootstrap_abort(struct wccl_bootstrap *bs, int err, int culprit,
			 const char *why);

/* Last failure as text ("rank 3 (host 10.0.0.2:5111) left"), "" if none. */
const char *wccl_bootstrap_error(const struct wccl_bootstrap *bs);

/* The rank the last abort blamed (a dead or mismatched rank), or -1. */
int wccl_bootstrap_error_rank(const struct wccl_bootstrap *bs);

/* Leave (politely: the root tells nobody) and free. */
void wccl_bootstrap_close(struct wccl_bootstrap *bs);

/* The local IP this rank reaches the root from ("10.0.0.7"): the address
 * its data listeners should bind to so the other ranks can reach them. */
int wccl_bootstrap_local_ip(const struct wccl_bootstrap *bs, char *buf,
			    size_t len);

/*
 * Non-blocking: if the root has announced an abort (a rank died, or one
 * called wccl_comm_abort), return its code and make wccl_bootstrap_error()
 * say why; else 0. Call it while waiting on anything else.
 */
int wccl_bootstrap_check_abort(struct wccl_bootstrap *bs);

int wccl_bootstrap_rank(const struct wccl_bootstrap *bs);
int wccl_bootstrap_nranks(const struct wccl_bootstrap *bs);

#endif
