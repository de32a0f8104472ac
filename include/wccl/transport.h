/* SPDX-License-Identifier: MIT */
#ifndef WCCL_TRANSPORT_H
#define WCCL_TRANSPORT_H

/*
 * The transport contract: one zero-copy endpoint API, many providers
 * (uring = TCP over io_uring, shm = same host, verbs, dpdk).
 *
 *   context   one per process per provider; owns the progress engine
 *   listener  accepts endpoints on a provider address
 *   endpoint  a reliable, ordered connection to one peer
 *   mr        memory registered once; a peer names it by its wccl_rkey
 *   cq        completion queue; polling it drives the context's progress
 *
 * Rules every provider keeps:
 * - Nothing blocks unless its name says wait, and every wait has a timeout.
 *   Connect and accept return -WCCL_EAGAIN for "not yet"; call again.
 * - A full send queue returns -WCCL_EAGAIN; the operation was not posted.
 * - Each posted operation produces exactly one completion carrying the
 *   caller's cookie unchanged, in posting order per endpoint and direction.
 * - Buffers passed to post_* belong to wccl until their completion arrives.
 * - A send that finds no posted receive waits for one, and holds up nothing
 *   else: other operations on the endpoint, in both directions, go on.
 * - A write into a peer's region is checked by the target against its own
 *   registrations before a byte lands (key, bounds, access); a rejected
 *   write completes with an error at both ends and touches nothing.
 * - Operations fail with the peer's address in wccl_endpoint_last_error().
 *
 * Where providers differ (all within the rules above):
 * - verbs: a send longer than the posted receive fails with
 *   -WCCL_ETRUNCATED at both ends and then closes the connection (RC QPs
 *   cannot recover); a write with a stale key that passes the initiator's
 *   checks is refused by the target's HCA and closes one data QP; the
 *   target's WCCL_OP_ERROR arrives after the initiator's completion. A
 *   peer that dies fails the operations in flight with whatever the HCA
 *   saw first (e.g. -WCCL_ETRUNCATED, -WCCL_EREMOTE_KEY) before the
 *   disconnect; the endpoint then fails with -WCCL_EPEER_LOST.
 * - uring: an initiator's completion waits for the target's
 *   acknowledgement, which the target sends from its progress (any poll,
 *   wait or close). In request/response traffic the target holds a lone
 *   acknowledgement back for one pass so it can ride on the answer; a
 *   target that stops calling in right after a message releases it within
 *   ~200 ms (TCP's probe timer), so poll once more before going quiet.
 * - dpdk: addresses name a port number; the EAL is configured with
 *   WCCL_DPDK_EAL, and the provider is offered only when that is set.
 *
 * Addresses are strings "provider:detail", e.g. "uring:127.0.0.1:40123" or
 * "shm:<host-id>:<name>". wccl_connect() also takes a bare "host:port"
 * for the uring provider.
 */
#include <stddef.h>
#include <stdint.h>
#include <wccl/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wccl_context;
struct wccl_listener;
struct wccl_endpoint;
struct wccl_mr;
struct wccl_cq;

#define WCCL_ADDR_MAX 128

/* What a provider can do, reported before any object is made. */
enum wccl_cap {
	WCCL_CAP_SEND_RECV = 1u << 0,  /* two-sided messages */
	WCCL_CAP_WRITE = 1u << 1,      /* one-sided write into a peer's mr */
	WCCL_CAP_WRITE_IMM = 1u << 2,  /* write + 32-bit immediate at target */
	WCCL_CAP_ZCOPY_TX = 1u << 3,   /* large sends leave without a copy */
	WCCL_CAP_ZCOPY_RX = 1u << 4,   /* payload lands in place at target */
	WCCL_CAP_SAME_HOST = 1u << 5,  /* reaches peers on this host only */
	WCCL_CAP_REMOTE_HOST = 1u << 6 /* reaches peers on other hosts */
};

struct wccl_provider_info {
	const char *name;	 /* "uring", "shm", ... */
	const char *description; /* one line */
	int priority;		 /* higher is preferred when both can connect */
	uint32_t caps;		 /* enum wccl_cap bits */
	int available;		 /* 0, or why not: negative code from probe */
};

/* Number of providers compiled into this libwccl. */
int wccl_provider_count(void);

/* Describe provider @index (0 .. count-1). Probes it once, so @available
 * says whether it can be opened on this host. Returns 0 or -WCCL_EINVAL. */
int wccl_provider_info(int index, struct wccl_provider_info *info);

/* Write a human-readable list of the provider's devices/interfaces into
 * @buf (NUL-terminated, truncated to @len). Returns 0 or a negative code. */
int wccl_provider_describe(const char *name, char *buf, size_t len);

/*
 * Choose the provider for a peer that listens on @peer_addrs (@n addresses,
 * one per provider it offers). Providers are tried in priority order; the
 * first that is available here and whose can_connect accepts one of the
 * addresses wins. WCCL_TRANSPORT=name forces one provider. On success
 * *@index is the address to use. Returns 0, -WCCL_ENODEV (nothing fits)
 * or -WCCL_EINVAL.
 */
int wccl_select_address(const char *const *peer_addrs, int n, int *index);

/* ---- context ---------------------------------------------------------- */

/* Open a context of provider @name (NULL: the highest-priority available
 * one). Returns 0, -WCCL_ENODEV if that provider is not compiled in or not
 * usable here, -WCCL_ENOMEM. */
int wccl_context_open(const char *name, struct wccl_context **ctx);

/* Close a context. Returns -WCCL_EBUSY (and closes nothing) while
 * endpoints, listeners, CQs or MRs made from it are still open. */
int wccl_context_close(struct wccl_context *ctx);

const char *wccl_context_provider(const struct wccl_context *ctx);

/* ---- completion queue ------------------------------------------------- */

enum wccl_op {
	WCCL_OP_SEND = 1,  /* local: a send completed */
	WCCL_OP_RECV,	   /* local: a posted receive got a message */
	WCCL_OP_WRITE,	   /* local: a write (with or without imm) completed */
	WCCL_OP_WRITE_IMM, /* target: a peer's write with immediate landed */
	WCCL_OP_ERROR	   /* target: a peer's write into us was rejected */
};

struct wccl_completion {
	uint64_t cookie;	  /* as posted; 0 for WRITE_IMM / ERROR */
	struct wccl_endpoint *ep; /* the endpoint it happened on */
	uint64_t len;		  /* bytes moved (RECV: message length) */
	int32_t status;		  /* 0 or a negative wccl code */
	uint32_t imm;		  /* WRITE_IMM: the immediate */
	uint32_t op;		  /* enum wccl_op */
	uint32_t reserved;
};

/* Make a CQ that holds up to @depth completions (0: default). */
int wccl_cq_create(struct wccl_context *ctx, uint32_t depth,
		   struct wccl_cq **cq);

/* Destroy a CQ. -WCCL_EBUSY while endpoints still report into it. */
int wccl_cq_destroy(struct wccl_cq *cq);

/* Make progress and reap up to @max completions into @wc without blocking.
 * Returns how many (0 if none) or a negative code for a context failure. */
int wccl_cq_poll(struct wccl_cq *cq, struct wccl_completion *wc, int max);

/* As wccl_cq_poll, but waits up to @timeout_ms (< 0: the WCCL_TIMEOUT_MS
 * tunable) for at least one completion: spins briefly, then sleeps in the
 * kernel. Returns the count (>= 1) or -WCCL_ETIMEDOUT. */
int wccl_cq_wait(struct wccl_cq *cq, struct wccl_completion *wc, int max,
		 int timeout_ms);

/* ---- memory regions --------------------------------------------------- */

enum wccl_access {
	WCCL_ACCESS_LOCAL = 1u << 0,	    /* source/sink of local ops */
	WCCL_ACCESS_REMOTE_WRITE = 1u << 1, /* peers may write into it */
	/* Same-host peers may map it and read it directly (shm; the
	 * collectives' small-message mailboxes). Ignored by the others. */
	WCCL_ACCESS_REMOTE_READ = 1u << 2,
};

/*
 * What a peer needs to write into a region: plain data, 32 bytes, sent to
 * the peer by any means (the bootstrap does it for collectives). Fields are
 * in host byte order; wccl_rkey_pack/unpack give a fixed little-endian form.
 */
struct wccl_rkey {
	uint64_t key;	 /* provider's name for the region */
	uint64_t addr;	 /* base address at the owner (verbs uses it) */
	uint64_t len;	 /* bytes */
	uint32_t access; /* enum wccl_access */
	uint32_t reserved;
};

#define WCCL_RKEY_PACKED_LEN 32
void wccl_rkey_pack(const struct wccl_rkey *rk,
		    uint8_t out[WCCL_RKEY_PACKED_LEN]);
void wccl_rkey_unpack(const uint8_t in[WCCL_RKEY_PACKED_LEN],
		      struct wccl_rkey *rk);

/* Register [@addr, @addr + @len) once; reuse it for every operation.
 * @len may be 0 only if @addr is NULL (an empty region). Returns 0,
 * -WCCL_EINVAL, -WCCL_ENOMEM, -WCCL_ENOSPC (too many regions). */
int wccl_mr_register(struct wccl_context *ctx, void *addr, size_t len,
		     uint32_t access, struct wccl_mr **mr);

/* Deregister. The caller must have no operation in flight on it. */
int wccl_mr_deregister(struct wccl_mr *mr);

/* The descriptor a peer needs to write into @mr. */
int wccl_mr_rkey(const struct wccl_mr *mr, struct wccl_rkey *rk);

/* ---- listener / endpoint --------------------------------------------- */

/* Listen on @bind_addr (NULL: the provider's default, loopback for uring).
 * uring takes "host:port" (port 0 picks one); shm ignores it. */
int wccl_listen(struct wccl_context *ctx, const char *bind_addr,
		struct wccl_listener **l);

/* The full "provider:detail" address peers pass to wccl_connect(). */
int wccl_listener_addr(const struct wccl_listener *l, char *buf, size_t len);

int wccl_listener_close(struct wccl_listener *l);

/*
 * Accept one pending connection without blocking. Returns 0 with *@ep set
 * (completions go to @cq), -WCCL_EAGAIN if none is pending yet. The new
 * endpoint may still be finishing its handshake: see
 * wccl_endpoint_established().
 */
int wccl_accept(struct wccl_listener *l, struct wccl_cq *cq,
		struct wccl_endpoint **ep);

/*
 * Start connecting to @addr without blocking. On 0, *@ep exists and its
 * completions go to @cq; poll wccl_endpoint_established() until it returns
 * 0. The attempt fails after the WCCL_CONNECT_TIMEOUT_MS tunable.
 */
int wccl_connect(struct wccl_context *ctx, const char *addr, struct wccl_cq *cq,
		 struct wccl_endpoint **ep);

/* 0 once the endpoint can carry operations, -WCCL_EAGAIN while the
 * connection or handshake is under way, or the negative code it failed
 * with (wccl_endpoint_last_error() says why, naming the peer). Makes
 * progress on the connection itself. */
int wccl_endpoint_established(struct wccl_endpoint *ep);

/* Poll wccl_endpoint_established() for up to @timeout_ms (< 0: the
 * WCCL_CONNECT_TIMEOUT_MS tunable). Returns 0 or a negative code. */
int wccl_endpoint_wait_established(struct wccl_endpoint *ep, int timeout_ms);

/* Close the endpoint; operations still in flight complete with
 * -WCCL_ECANCELED on its CQ before this returns. */
int wccl_endpoint_close(struct wccl_endpoint *ep);

/* The peer's address as text (for messages). Never NULL. */
const char *wccl_endpoint_peer(const struct wccl_endpoint *ep);

/* The last failure on this endpoint, naming the peer and what happened,
 * e.g. "peer uring:127.0.0.1:4001: connection reset while receiving a
 * write payload". Empty string if none. Never NULL. */
const char *wccl_endpoint_last_error(const struct wccl_endpoint *ep);

/* ---- data path -------------------------------------------------------- */

/*
 * Post a two-sided send of @len bytes at @buf (inside @mr, which may be NULL
 * for an unregistered buffer at some providers' cost). Completes locally as
 * WCCL_OP_SEND once the peer has the message. The peer's next posted
 * receive takes it; a message larger than that receive fails with
 * -WCCL_ETRUNCATED at both ends. Returns 0, -WCCL_EAGAIN (queue full),
 * -WCCL_ENOTCONN, -WCCL_EINVAL, -WCCL_EMSGSIZE.
 */
int wccl_post_send(struct wccl_endpoint *ep, const void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie);

/* Post a receive buffer for the next message from this endpoint.
 * Completes as WCCL_OP_RECV with the message length. */
int wccl_post_recv(struct wccl_endpoint *ep, void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie);

enum wccl_write_flags {
	WCCL_WRITE_IMM = 1u
			 << 0 /* deliver @imm as WCCL_OP_WRITE_IMM at target */
};

/*
 * Write @len bytes from @buf into the peer's region @rk at @offset
 * (RDMA WRITE). With WCCL_WRITE_IMM the target gets a WCCL_OP_WRITE_IMM
 * completion carrying @imm after the data is in place; it needs no posted
 * receive. Completes locally as WCCL_OP_WRITE once the data is at the
 * target; a rejected write completes with -WCCL_EREMOTE_KEY,
 * -WCCL_EREMOTE_BOUNDS or -WCCL_EREMOTE_ACCESS here and an WCCL_OP_ERROR
 * completion at the target. Returns as wccl_post_send().
 */
int wccl_post_write(struct wccl_endpoint *ep, const void *buf, size_t len,
		    struct wccl_mr *mr, const struct wccl_rkey *rk,
		    uint64_t offset, uint32_t imm, uint32_t flags,
		    uint64_t cookie);

/* ---- shareable memory ------------------------------------------------ */

/*
 * Memory any provider can register; the shm provider maps such regions
 * into same-host peers, so a one-sided write into it is a single memcpy by
 * the initiator (no syscall), and a large send from it is a single memcpy
 * by the receiver. Other memory works everywhere too, at the providers'
 * usual cost.
 *
 * wccl_mem_alloc gives @len bytes (rounded up to whole pages, zeroed,
 * page-aligned) in *@ptr. Returns 0, -WCCL_EINVAL (@len 0 or @ptr NULL),
 * -WCCL_ENOMEM or another negative code from the kernel. Thread-safe;
 * does not block. Allocations survive fork() shared with the child.
 *
 * wccl_mem_free releases memory from wccl_mem_alloc (NULL: nothing).
 * Deregister every mr in it first. Returns 0 or -WCCL_EINVAL (@ptr is not
 * the start of a live allocation).
 */
int wccl_mem_alloc(size_t len, void **ptr);
int wccl_mem_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
