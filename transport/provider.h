/* SPDX-License-Identifier: MIT */
#ifndef WCCL_PROVIDER_H
#define WCCL_PROVIDER_H

/*
 * What a provider implements. Each provider defines one
 * `static const struct wccl_provider` with designated initializers; slots it
 * leaves NULL are filled with stubs returning -WCCL_EOPNOTSUPP when the
 * core loads the table (transport/registry.c), so no call site checks for
 * NULL.
 *
 * Provider objects embed the base object below as their FIRST member and
 * get back to their own type with container_of(). The core fills the base
 * fields it owns (fast, ctx, cq, and the mr's addr/len/access) after the
 * provider's constructor returns; providers may set them earlier too. The
 * provider fills the rest: mr->key, and ep->peer ("provider:detail", set in
 * accept/connect, used in every error message).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <wccl/transport.h>

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr)-offsetof(type, member)))
#endif

struct wccl_provider;

/* Fast path: one flat table, copied into each endpoint/cq at creation so
 * a post is one indirect call. */
struct wccl_fast_ops {
	int (*post_send)(struct wccl_endpoint *ep, const void *buf, size_t len,
			 struct wccl_mr *mr, uint64_t cookie);
	int (*post_recv)(struct wccl_endpoint *ep, void *buf, size_t len,
			 struct wccl_mr *mr, uint64_t cookie);
	int (*post_write)(struct wccl_endpoint *ep, const void *buf, size_t len,
			  struct wccl_mr *mr, const struct wccl_rkey *rk,
			  uint64_t offset, uint32_t imm, uint32_t flags,
			  uint64_t cookie);
	int (*cq_poll)(struct wccl_cq *cq, struct wccl_completion *wc, int max);
};

/* Control path: object lifetimes and connection management. */
struct wccl_ctrl_ops {
	/* 0 if usable on this host, else a negative code (logged at INFO). */
	int (*probe)(void);
	/* Nonzero if this provider can reach the peer listening on @addr
	 * (the detail part, after "name:"). */
	int (*can_connect)(const char *addr);
	int (*describe)(char *buf, size_t len);

	int (*context_open)(struct wccl_context **ctx);
	void (*context_close)(struct wccl_context *ctx);

	int (*cq_create)(struct wccl_context *ctx, uint32_t depth,
			 struct wccl_cq **cq);
	void (*cq_destroy)(struct wccl_cq *cq);
	/* Sleep until the CQ may have completions, at most @timeout_ms.
	 * Returns 0 (woken or timed out) or a negative code. */
	int (*cq_sleep)(struct wccl_cq *cq, int timeout_ms);

	int (*mr_register)(struct wccl_context *ctx, void *addr, size_t len,
			   uint32_t access, struct wccl_mr **mr);
	void (*mr_deregister)(struct wccl_mr *mr);

	int (*listen)(struct wccl_context *ctx, const char *bind_addr,
		      struct wccl_listener **l);
	/* Write the detail part of the listening address. */
	int (*listener_addr)(const struct wccl_listener *l, char *buf,
			     size_t len);
	void (*listener_close)(struct wccl_listener *l);
	int (*accept)(struct wccl_listener *l, struct wccl_cq *cq,
		      struct wccl_endpoint **ep);
	/* @addr is the detail part. */
	int (*connect)(struct wccl_context *ctx, const char *addr,
		       struct wccl_cq *cq, struct wccl_endpoint **ep);
	int (*established)(struct wccl_endpoint *ep);
	/* Flush in-flight operations as -WCCL_ECANCELED, then free. */
	void (*endpoint_close)(struct wccl_endpoint *ep);
	/* Set one wccl_ep_attr on an established endpoint. 0, or
	 * -WCCL_EOPNOTSUPP when the provider has no such knob (the stub),
	 * -WCCL_EINVAL for a bad value. Control path: never blocks. */
	int (*endpoint_set_attr)(struct wccl_endpoint *ep, int attr,
				 uint64_t value);
	/* Read one wccl_ep_attr into *@value; errors as for set. */
	int (*endpoint_get_attr)(struct wccl_endpoint *ep, int attr,
				 uint64_t *value);
	/* Same-host providers: map the peer's region @rk (registered with
	 * REMOTE_READ, and REMOTE_WRITE too with WCCL_MAP_WRITE) for loads
	 * (and stores); *@addr is its first byte, valid until the endpoint
	 * closes, or with WCCL_MAP_TRANSIENT only until a few more transient
	 * mappings on this endpoint (a per-call use; no slot is held for
	 * good). -WCCL_EOPNOTSUPP elsewhere (the stub), or when no slot is
	 * left. */
	int (*map_remote)(struct wccl_endpoint *ep, const struct wccl_rkey *rk,
			  unsigned flags, void **addr);
};

enum wccl_map_flags {
	WCCL_MAP_WRITE = 1u << 0,
	WCCL_MAP_TRANSIENT = 1u << 1,
};

/* Endpoint attributes (internal for now; used by transport/stream). */
enum wccl_ep_attr {
	/* Cap on the connection's sending rate, bytes/s, enforced by the
	 * kernel's pacing (uring: SO_MAX_PACING_RATE); 0 = no cap (also
	 * what get reads back for an uncapped connection). */
	WCCL_EP_ATTR_MAX_PACING_RATE = 1,
	/* Read only: the connection's round trip as the kernel measures it
	 * per segment (uring: TCP_INFO), in us: the smoothed value and the
	 * windowed minimum. Free of the application's scheduling. */
	WCCL_EP_ATTR_SRTT_US = 2,
	WCCL_EP_ATTR_MIN_RTT_US = 3,
	/* Read only, providers that pace by a model (dpdk): its bottleneck
	 * rate estimate and its current pacing rate, bytes/s (wire bytes);
	 * 0 = no sample yet. */
	WCCL_EP_ATTR_BTLBW = 4,
	WCCL_EP_ATTR_PACING_RATE = 5,
	/* 1: a SEND completes once its buffer may be reused, without waiting
	 * to be told it arrived (uring: no ACK is asked for). An error at the
	 * target (a receive too small) is then reported there only. For
	 * traffic whose receives are sized to fit, such as the collectives'
	 * eager slots. Set it before posting. */
	WCCL_EP_ATTR_SEND_LOCAL_COMPLETION = 6,
	/* Cap on the payload bytes in flight across the endpoint's
	 * connections (verbs: WCCL_VERBS_MAX_INFLIGHT); 0 = no cap. */
	WCCL_EP_ATTR_MAX_INFLIGHT = 7,
	/* Read only, since the endpoint opened: the most bytes in flight at
	 * once, and how often an operation waited for the cap. */
	WCCL_EP_ATTR_INFLIGHT_PEAK = 8,
	WCCL_EP_ATTR_INFLIGHT_WAITS = 9,
	/* Read only: payload bytes the connection has received in order so
	 * far, as the kernel counts them (uring: TCP_INFO's
	 * tcpi_bytes_received), partial messages included. */
	WCCL_EP_ATTR_BYTES_RECEIVED = 10,
	/* Read only: bytes written to the connection that the kernel has
	 * not sent yet (uring: TCP_INFO's tcpi_notsent_bytes). */
	WCCL_EP_ATTR_NOTSENT_BYTES = 11,
	/* Read only: the rate the congestion window allows, window over
	 * smoothed RTT, bytes/s (uring: TCP_INFO's tcpi_snd_cwnd x
	 * tcpi_snd_mss / tcpi_rtt); 0 = no RTT sample yet. */
	WCCL_EP_ATTR_CWND_RATE = 12,
	/* Read only: payload bytes that have arrived on the connection,
	 * out-of-order ones included (uring: each TCP_INFO read adds the
	 * new tcpi_data_segs_in x tcpi_rcv_mss, so a short segment counts
	 * whole). BYTES_RECEIVED holds a loss's later bytes back until the
	 * retransmission fills the hole and then counts them at once, so a
	 * rate over a short window at the receiver can read above the link
	 * (in the VM's lossy profile the effect on the stream's estimate
	 * was within noise: perf/RESULTS.md, session 16). */
	WCCL_EP_ATTR_BYTES_ARRIVED = 13,
};


struct wccl_provider {
	const char *name;
	const char *description;
	int priority;
	uint32_t caps;
	struct wccl_ctrl_ops ctrl;
	struct wccl_fast_ops fast;
};

/* ---- base objects (provider objects embed these first) ---------------- */

struct wccl_context {
	const struct wccl_provider *prov; /* with stubs filled in */
	int n_objects;			  /* open children, for EBUSY */
	/* Set by a caller with a waiting policy of its own (the
	 * collectives, when ranks outnumber cores): an empty cq_poll then
	 * does not yield the core itself (uring), so a wait yields once per
	 * pass, not twice. */
	int caller_yields;
};

struct wccl_cq {
	const struct wccl_fast_ops *fast;
	struct wccl_context *ctx;
	int n_endpoints;
};

struct wccl_mr {
	struct wccl_context *ctx;
	void *addr;
	size_t len;
	uint32_t access;
	uint64_t key; /* set by the provider */
};

struct wccl_listener {
	struct wccl_context *ctx;
};

#define WCCL_ERRMSG_MAX 256

struct wccl_endpoint {
	const struct wccl_fast_ops *fast;
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	char peer[WCCL_ADDR_MAX]; /* "provider:detail" */
	char last_error[WCCL_ERRMSG_MAX];
};

/* Set @attr on @ep through its provider's table (a stub answers
 * -WCCL_EOPNOTSUPP where the provider has none). */
static inline int wccl_endpoint_set_attr(struct wccl_endpoint *ep, int attr,
					 uint64_t value)
{
	return ep->ctx->prov->ctrl.endpoint_set_attr(ep, attr, value);
}

static inline int wccl_endpoint_map_remote(struct wccl_endpoint *ep,
					   const struct wccl_rkey *rk,
					   unsigned flags, void **addr)
{
	return ep->ctx->prov->ctrl.map_remote(ep, rk, flags, addr);
}

static inline int wccl_endpoint_get_attr(struct wccl_endpoint *ep, int attr,
					 uint64_t *value)
{
	return ep->ctx->prov->ctrl.endpoint_get_attr(ep, attr, value);
}

/*
 * Record a failure on @ep: formats "peer <addr>: <what>" into
 * ep->last_error, logs it at WARN under @subsys and returns @err, so a
 * provider can write `return wccl_ep_fail(ep, sub, err, "...")`.
 */
int wccl_ep_fail(struct wccl_endpoint *ep, unsigned subsys, int err,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* As wccl_ep_fail, logged at INFO: an orderly close with nothing in
 * flight is news, not a problem. */
int wccl_ep_closed(struct wccl_endpoint *ep, unsigned subsys, int err,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Providers compiled in (transport/registry.c, generated list). */
extern const struct wccl_provider wccl_provider_uring;
extern const struct wccl_provider wccl_provider_shm;
extern const struct wccl_provider wccl_provider_verbs;
extern const struct wccl_provider wccl_provider_dpdk;

#endif
