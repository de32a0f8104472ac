/* SPDX-License-Identifier: MIT */
#ifndef WCCL_ITEST_H
#define WCCL_ITEST_H

/*
 * Process plumbing for the multi-process transport tests.
 *
 * The cmocka runner never touches wccl itself: each case forks two sides,
 * A (listens, accepts) and B (connects), joined by a SOCK_SEQPACKET control
 * socket for addresses, rkeys and barriers. The runner only supervises: it
 * reaps both with a deadline, kills what is left and says which side failed
 * and how (exit code or signal), so a provider crash or hang fails one case
 * instead of the whole program.
 *
 * Inside a side, ICHECK* print "[prov A] file:line: ..." and _exit(1):
 * no cleanup on failure, so ASan/LSan only judges the paths that succeed.
 */
#include <stddef.h>
#include <stdint.h>

#include <wccl/transport.h>

#define ITEST_STASH_MAX 256

struct itest_side {
	const char *prov;
	char role;	   /* 'A' or 'B' (or 'S' for a single-process case) */
	int ctl;	   /* control socket to the other side, -1 if none */
	int peer_may_exit; /* 0: waits fail at once when the other side exits */
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_listener *l;
	struct wccl_endpoint *ep;
	char addr[WCCL_ADDR_MAX]; /* A: own listener address; B: A's */
	uint32_t cq_depth;	  /* for itest_open; 0: default */
	/* Completions reaped while waiting for something else, FIFO. */
	struct wccl_completion stash[ITEST_STASH_MAX];
	int stash_head, stash_n;
};

typedef int (*itest_side_fn)(struct itest_side *s);

struct itest_case {
	const char *name;
	itest_side_fn a, b;	/* b NULL: a single process runs a */
	const char *const *env; /* NULL-terminated "WCCL_X=v", set in sides */
	int manual;		/* 1: sides open/connect/close themselves */
	int b_dies;		/* 1: B must end by SIGKILL */
	int timeout_ms;		/* whole case, supervisor kills after */
	uint32_t cq_depth;	/* CQ depth of both sides (0: default) */
};

/* Run a case; 0 if every side ended as expected, else -1 (and printed). */
int itest_run(const char *prov, const struct itest_case *c);

/* ---- inside a side ---------------------------------------------------- */

void itest_fail_exit(const struct itest_side *s, const char *file, int line,
		     const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
void itest_note(const struct itest_side *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ICHECK(s, cond, ...)                                     \
	do {                                                     \
		if (!(cond))                                     \
			itest_fail_exit((s), __FILE__, __LINE__, \
					"check failed: " #cond   \
					": " __VA_ARGS__);       \
	} while (0)

/* @expr must return exactly @want (a wccl code). */
#define ICHECK_RC(s, expr, want)                                               \
	do {                                                                   \
		int rc_ = (expr);                                              \
		int want_ = (want);                                            \
		if (rc_ != want_)                                              \
			itest_fail_exit((s), __FILE__, __LINE__,               \
					"%s returned %d (%s), want %s", #expr, \
					rc_, wccl_err_name(rc_),               \
					wccl_err_name(want_));                 \
	} while (0)

#define ICHECK_OK(s, expr) ICHECK_RC(s, expr, 0)

/* Open ctx + cq of s->prov; A also listens (NULL bind address). */
void itest_open(struct itest_side *s);
/* A: send address, accept; B: receive address, connect; both wait until
 * established and pass a barrier. */
void itest_connect(struct itest_side *s);
/* Barrier (unless @peer_gone), then close ep, listener, cq, context, each
 * of which must return 0. */
void itest_close(struct itest_side *s, int peer_gone);

/* Control channel. Receiving polls the CQ meanwhile (targets must poll for
 * data to move) and keeps what it reaps in the stash; @poll_cq 0 waits
 * without driving wccl at all. Returns the length; fails on timeout/EOF. */
void itest_ctl_send(struct itest_side *s, const void *buf, size_t len);
size_t itest_ctl_recv(struct itest_side *s, void *buf, size_t cap,
		      int timeout_ms, int poll_cq);
/* Wait until the peer's control socket closes (it died or finished);
 * polls the CQ meanwhile. Returns 0, or -1 on timeout. */
int itest_ctl_wait_eof(struct itest_side *s, int timeout_ms);
void itest_barrier(struct itest_side *s);

/* Reap completions into the stash without blocking; returns how many. */
int itest_poll_stash(struct itest_side *s);
/* Next completion (stash first, then wccl_cq_wait); 0, or -1 on timeout. */
int itest_next(struct itest_side *s, struct wccl_completion *wc,
	       int timeout_ms);
/* Next completion must be @op/@cookie/@status (and @len unless
 * UINT64_MAX) on s->ep; prints the whole completion if not. */
void itest_expect(struct itest_side *s, uint32_t op, uint64_t cookie,
		  int32_t status, uint64_t len, int timeout_ms,
		  const char *what);
const char *itest_op_name(uint32_t op);
void itest_print_wc(const struct itest_side *s, const char *what,
		    const struct wccl_completion *wc);

/* ---- data ------------------------------------------------------------- */

/* Deterministic pseudo-random bytes: byte i of stream @seed is a function
 * of (seed, i), so either side can make or check any sub-range. */
void itest_fill(void *buf, size_t len, uint64_t seed);
/* First offset where @buf differs from stream @seed, or -1. */
long long itest_verify(const void *buf, size_t len, uint64_t seed);
/* First offset where @buf is not all @byte, or -1. */
long long itest_check_byte(const void *buf, size_t len, uint8_t byte);

/* mmap'd (not malloc'd: 64 MiB buffers, fork-friendly); fails the side. */
void *itest_alloc(struct itest_side *s, size_t len);
void itest_free(void *p, size_t len);

uint64_t itest_now_ms(void);

#endif
