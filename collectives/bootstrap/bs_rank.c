/* SPDX-License-Identifier: MIT */
/* The rank side of the bootstrap: join, all-gather, abort, leave. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wccl/errors.h>

#include "bootstrap.h"
#include "bs_wire.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/sock.h"

/* How long a rank whose all-gather timed out waits for the root to name
 * the ranks that kept it waiting. */
#define BS_VERDICT_WAIT_MS 1000

struct wccl_bootstrap {
	int fd;
	int rank, nranks;
	uint32_t round;
	int failed; /* sticky: after an abort every call fails */
	int err_rank; /* the rank an ABORT blamed, or -1 */
	char root[WCCL_BOOTSTRAP_ADDR_LEN];
	char err[256];
};

static int fail(struct wccl_bootstrap *bs, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct wccl_bootstrap *bs, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bs->err, sizeof(bs->err), fmt, ap);
	va_end(ap);
	WCCL_WARN(WCCL_SUB_BOOTSTRAP, "rank %d: %s (%s)", bs->rank, bs->err,
		  wccl_err_name(rc));
	return rc;
}

/* Receive one frame of at most @max payload bytes into a malloc'd buffer
 * (control path). */
static int recv_frame(struct wccl_bootstrap *bs, struct bs_hdr *h,
		      uint8_t **payload, uint64_t max, uint64_t deadline_ns)
{
	uint8_t raw[BS_HDR_LEN];
	int rc = wccl_sock_recv_all(bs->fd, raw, sizeof(raw), deadline_ns);
	if (rc)
		return rc;
	rc = bs_hdr_decode(raw, max, h);
	if (rc)
		return rc;
	*payload = malloc(h->len + 1);
	if (!*payload)
		return WCCL_ENOMEM;
	rc = wccl_sock_recv_all(bs->fd, *payload, h->len, deadline_ns);
	(*payload)[h->len] = '\0'; /* text reasons are NUL-terminated */
	if (rc) {
		free(*payload);
		*payload = NULL;
	}
	return rc;
}

/* REJECT / ABORT carry a reason; make it this rank's error. */
static int remote_failure(struct wccl_bootstrap *bs, const struct bs_hdr *h,
			  const uint8_t *payload)
{
	int rc = h->status < 0 ? h->status : WCCL_EREMOTE;
	bs->failed = rc;
	if (h->type == BS_ABORT)
		bs->err_rank = h->rank < (uint32_t)bs->nranks ? (int)h->rank : -1;
	return fail(bs, rc, "bootstrap root %s: %s", bs->root,
		    (const char *)payload);
}

/*
 * One handshake on bs->fd. *again is set when the root dropped us before
 * its CHALLENGE (closed, or evicted us to make room for a newer
 * connection): nothing was decided about us, so the caller may retry.
 */
static int handshake(struct wccl_bootstrap *bs, const uint8_t *secret,
		     uint64_t deadline_ns, int *again)
{
	uint8_t nonce[BS_NONCE_LEN], mac[WCCL_SHA256_LEN];
	int rc = wccl_random_bytes(nonce, sizeof(nonce));
	if (rc)
		return rc;
	rc = bs_send(bs->fd, BS_HELLO, (uint32_t)bs->rank,
		     (uint32_t)bs->nranks, 0, 0, nonce, sizeof(nonce),
		     deadline_ns);
	struct bs_hdr h;
	uint8_t *p = NULL;
	if (!rc)
		rc = recv_frame(bs, &h, &p, BS_MAX_HANDSHAKE_PAYLOAD,
				deadline_ns);
	*again = rc == WCCL_EPEER_LOST ||
		 (!rc && h.type == BS_REJECT && h.status == WCCL_EBUSY);
	if (*again) {
		free(p);
		return rc ? rc : WCCL_EBUSY;
	}
	if (rc)
		return fail(bs, rc, "bootstrap root %s: handshake failed: %s",
			    bs->root, wccl_strerror(rc));
	if (h.type == BS_REJECT) {
		rc = remote_failure(bs, &h, p);
		free(p);
		return rc;
	}
	if (h.type != BS_CHALLENGE ||
	    h.len != BS_NONCE_LEN + WCCL_SHA256_LEN) {
		free(p);
		return fail(bs, WCCL_EPROTO,
			    "bootstrap root %s: expected CHALLENGE", bs->root);
	}
	bs_root_mac(secret, nonce, mac);
	if (wccl_ct_memcmp(mac, p + BS_NONCE_LEN, WCCL_SHA256_LEN)) {
		free(p);
		return fail(bs, WCCL_EAUTH,
			    "bootstrap root %s does not know the job's secret "
			    "(wrong unique id or WCCL_AUTH_KEY?)",
			    bs->root);
	}
	bs_rank_mac(secret, p, (uint32_t)bs->rank, (uint32_t)bs->nranks, mac);
	free(p);
	p = NULL;
	rc = bs_send(bs->fd, BS_PROOF, (uint32_t)bs->rank, (uint32_t)bs->nranks,
		     0, 0, mac, sizeof(mac), deadline_ns);
	if (!rc)
		rc = recv_frame(bs, &h, &p, 4096, deadline_ns);
	if (rc)
		return fail(bs, rc == WCCL_EPEER_LOST ? WCCL_EAUTH : rc,
			    "bootstrap root %s closed the connection during "
			    "the handshake",
			    bs->root);
	if (h.type != BS_WELCOME) {
		rc = h.type == BS_REJECT
			     ? remote_failure(bs, &h, p)
			     : fail(bs, WCCL_EPROTO,
				    "bootstrap root %s: expected WELCOME",
				    bs->root);
		free(p);
		return rc;
	}
	free(p);
	return 0;
}

/* Connect to the root; it may not be up yet (launchers start ranks in any
 * order), so a refused connection is retried until @deadline. */
static int connect_root(struct wccl_bootstrap *bs, uint64_t deadline)
{
	int rc;
	for (;;) {
		rc = wccl_sock_connect(bs->root, deadline);
		if (rc >= 0 || (rc != WCCL_ECONNREFUSED && rc != WCCL_EAGAIN) ||
		    wccl_now_ns() >= deadline)
			break;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (rc < 0)
		return fail(bs, rc, "cannot reach bootstrap root %s: %s",
			    bs->root, wccl_strerror(rc));
	bs->fd = rc;
	return 0;
}

int wccl_bootstrap_join(const char *root_addr,
			const uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN],
			int rank, int nranks, int timeout_ms,
			struct wccl_bootstrap **out)
{
	if (!root_addr || !secret || !out || nranks <= 0 || rank < 0 ||
	    rank >= nranks || timeout_ms < 0)
		return WCCL_EINVAL;
	struct wccl_bootstrap *bs = calloc(1, sizeof(*bs));
	if (!bs)
		return WCCL_ENOMEM;
	bs->rank = rank;
	bs->nranks = nranks;
	bs->err_rank = -1;
	bs->fd = -1;
	snprintf(bs->root, sizeof(bs->root), "%s", root_addr);
	uint64_t deadline = wccl_deadline_ns(timeout_ms);
	int rc, again = 0, tries = 0;
	long backoff_ms = 10;
	for (;;) {
		again = 0;
		rc = connect_root(bs, deadline);
		if (rc)
			break;
		rc = handshake(bs, secret, deadline, &again);
		if (!rc || !again || wccl_now_ns() >= deadline)
			break;
		/* Dropped before the CHALLENGE: the root is busy (strangers
		 * filling its pending table); try again until our deadline. */
		close(bs->fd);
		bs->fd = -1;
		if (!tries++)
			WCCL_INFO(WCCL_SUB_BOOTSTRAP,
				  "rank %d: bootstrap root %s dropped us "
				  "before its challenge (%s); retrying",
				  rank, root_addr, wccl_err_name(rc));
		struct timespec ts = { 0, backoff_ms * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (backoff_ms < 200)
			backoff_ms *= 2;
	}
	if (rc && again)
		fail(bs, rc,
		     "bootstrap root %s kept dropping us before its challenge "
		     "(%d tries): too many strangers connected to it?",
		     root_addr, tries);
	if (rc) {
		if (bs->fd >= 0)
			close(bs->fd);
		free(bs);
		return rc;
	}
	*out = bs;
	return 0;
}

/*
 * Our all-gather timed out: we cannot tell who is missing, the root can.
 * Ask it to abort the job naming the ranks that never entered the round,
 * and take its verdict (briefly waited for) as our error. 1 if we got it.
 */
static int blame_the_missing(struct wccl_bootstrap *bs)
{
	char why[96];
	snprintf(why, sizeof(why), "rank %d timed out in all-gather round %u",
		 bs->rank, bs->round);
	uint64_t deadline = wccl_deadline_ns(BS_VERDICT_WAIT_MS);
	if (bs_send(bs->fd, BS_ABORT, (uint32_t)bs->rank,
		    (uint32_t)bs->nranks, BS_BLAME_UNKNOWN, WCCL_ETIMEDOUT, why,
		    strlen(why) + 1, deadline))
		return 0;
	for (;;) {
		struct bs_hdr h;
		uint8_t *p = NULL;
		if (recv_frame(bs, &h, &p, BS_MAX_PAYLOAD, deadline))
			return 0;
		if (h.type == BS_ABORT || h.type == BS_REJECT) {
			remote_failure(bs, &h, p);
			free(p);
			return 1;
		}
		free(p); /* a late RESULT: the job is aborted anyway */
	}
}

int wccl_bootstrap_allgather(struct wccl_bootstrap *bs, const void *mine,
			     size_t len, void *all, int timeout_ms)
{
	if (!bs || (len && (!mine || !all)))
		return WCCL_EINVAL;
	if (bs->failed)
		return bs->failed;
	if (len > BS_MAX_PAYLOAD / (size_t)bs->nranks) {
		/* The root would refuse it: fail before sending (and reading)
		 * it, and tell the others rather than leave them waiting. */
		char why[160];
		snprintf(why, sizeof(why),
			 "rank %d: all-gather of %zu bytes x %d ranks exceeds "
			 "the bootstrap's %u MiB",
			 bs->rank, len, bs->nranks, BS_MAX_PAYLOAD >> 20);
		wccl_bootstrap_abort(bs, WCCL_EMSGSIZE, bs->rank, why);
		return fail(bs, WCCL_EMSGSIZE, "%s", why);
	}
	uint64_t deadline = wccl_deadline_ns(timeout_ms);
	int rc = bs_send(bs->fd, BS_GATHER, (uint32_t)bs->rank,
			 (uint32_t)bs->nranks, bs->round, 0, mine, len,
			 deadline);
	for (; !rc;) {
		struct bs_hdr h;
		uint8_t *p = NULL;
		rc = recv_frame(bs, &h, &p, BS_MAX_PAYLOAD, deadline);
		if (rc)
			break;
		if (h.type == BS_ABORT || h.type == BS_REJECT) {
			rc = remote_failure(bs, &h, p);
			free(p);
			return rc;
		} else if (h.type != BS_RESULT || h.round != bs->round ||
			   h.len != len * (size_t)bs->nranks) {
			rc = fail(bs, WCCL_EPROTO,
				  "bootstrap root %s: unexpected reply to "
				  "all-gather round %u",
				  bs->root, bs->round);
		} else {
			if (len)
				memcpy(all, p, h.len);
			bs->round++;
			free(p);
			return 0;
		}
		free(p);
	}
	if (rc == WCCL_ETIMEDOUT && blame_the_missing(bs))
		return bs->failed;
	if (rc != WCCL_EPROTO)
		rc = fail(bs, rc,
			  "all-gather round %u via bootstrap root %s: %s",
			  bs->round, bs->root,
			  rc == WCCL_ETIMEDOUT
				  ? "timed out waiting for the other ranks"
				  : wccl_strerror(rc));
	bs->failed = rc;
	return rc;
}

int wccl_bootstrap_barrier(struct wccl_bootstrap *bs, int timeout_ms)
{
	return wccl_bootstrap_allgather(bs, NULL, 0, NULL, timeout_ms);
}

int wccl_bootstrap_abort(struct wccl_bootstrap *bs, int err, int culprit,
			 const char *why)
{
	if (!bs || !why || err >= 0)
		return WCCL_EINVAL;
	if (bs->failed)
		return 0; /* the job is already over for everyone */
	bs->failed = err;
	bs->err_rank = culprit;
	snprintf(bs->err, sizeof(bs->err), "%s", why);
	/* Not "ourselves" when we do not know: the others would look for
	 * the fault on our host. */
	uint32_t blamed = culprit >= 0 && culprit < bs->nranks
				  ? (uint32_t)culprit + 1
				  : BS_BLAME_NOBODY;
	return bs_send(bs->fd, BS_ABORT, (uint32_t)bs->rank,
		       (uint32_t)bs->nranks, blamed, err, why, strlen(why) + 1,
		       wccl_deadline_ns(1000));
}

const char *wccl_bootstrap_error(const struct wccl_bootstrap *bs)
{
	return bs ? bs->err : "";
}

void wccl_bootstrap_close(struct wccl_bootstrap *bs)
{
	if (!bs)
		return;
	if (!bs->failed)
		bs_send(bs->fd, BS_BYE, (uint32_t)bs->rank,
			(uint32_t)bs->nranks, bs->round, 0, NULL, 0,
			wccl_deadline_ns(1000));
	close(bs->fd);
	free(bs);
}

int wccl_bootstrap_local_ip(const struct wccl_bootstrap *bs, char *buf,
			    size_t len)
{
	char addr[WCCL_BOOTSTRAP_ADDR_LEN];
	int rc = wccl_sock_local_addr(bs->fd, addr, sizeof(addr));
	if (rc)
		return rc;
	/* Strip ":port" (and the brackets of an IPv6 address). */
	char *colon = strrchr(addr, ':');
	if (colon)
		*colon = '\0';
	const char *ip = addr;
	if (ip[0] == '[') {
		ip++;
		char *end = strchr(addr, ']');
		if (end)
			*end = '\0';
	}
	snprintf(buf, len, "%s", ip);
	return 0;
}

int wccl_bootstrap_check_abort(struct wccl_bootstrap *bs)
{
	if (bs->failed)
		return bs->failed;
	/* Between all-gathers the only thing the root sends is ABORT. */
	uint8_t b;
	ssize_t n = recv(bs->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0)
		return 0;
	struct bs_hdr h;
	uint8_t *p = NULL;
	int rc = n == 0 ? WCCL_EPEER_LOST
			: recv_frame(bs, &h, &p, 4096, wccl_deadline_ns(1000));
	if (rc == 0 && (h.type == BS_ABORT || h.type == BS_REJECT))
		rc = remote_failure(bs, &h, p);
	else if (rc == 0)
		rc = fail(bs, WCCL_EPROTO,
			  "bootstrap root %s sent frame %u between all-gathers",
			  bs->root, h.type);
	else
		rc = fail(bs, rc, "lost the bootstrap root %s: %s", bs->root,
			  wccl_strerror(rc));
	free(p);
	bs->failed = rc;
	return rc;
}

int wccl_bootstrap_error_rank(const struct wccl_bootstrap *bs)
{
	return bs ? bs->err_rank : -1;
}

int wccl_bootstrap_rank(const struct wccl_bootstrap *bs)
{
	return bs->rank;
}

int wccl_bootstrap_nranks(const struct wccl_bootstrap *bs)
{
	return bs->nranks;
}
