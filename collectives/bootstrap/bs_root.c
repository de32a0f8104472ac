/* SPDX-License-Identifier: MIT */
/*
 * The bootstrap root: one thread, one poll loop over the listening socket
 * and every connection. Connections are read without blocking into
 * per-connection frame buffers, so a stranger that stalls or sends junk
 * costs one slot until its handshake deadline, never the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <wccl/errors.h>

#include "bootstrap.h"
#include "bs_wire.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "core/sock.h"

/* Joined ranks hold a connection each; at most BS_MAX_PENDING more may be
 * unauthenticated. The table grows to fit, so the only limit on a job is
 * this and the root's open file limit. */
#define BS_MAX_RANKS (1 << 16)
#define BS_MAX_PENDING 64
#define BS_INITIAL_CONNS 128
#define BS_ACCEPT_PAUSE_MS 100

enum conn_state { CONN_FREE = 0, CONN_HELLO, CONN_PROOF, CONN_JOINED };

/* A payload queued to one or more ranks (a RESULT is the same for all). */
struct bs_buf {
	int refs;
	size_t len;
	uint8_t data[];
};

/* One frame waiting to go out on a joined rank's connection. */
struct bs_out {
	struct bs_out *next;
	uint8_t hdr[BS_HDR_LEN];
	struct bs_buf *pay; /* NULL: header only */
};

struct bs_conn {
	int fd;
	enum conn_state state;
	char addr[WCCL_BOOTSTRAP_ADDR_LEN];
	uint64_t deadline_ns; /* handshake must finish by then */
	uint64_t since_ns; /* accepted at */
	uint8_t nonce[BS_NONCE_LEN];
	uint32_t rank, nranks;
	uint8_t hdr_raw[BS_HDR_LEN];
	size_t hdr_fill;
	int have_hdr;
	struct bs_hdr hdr;
	uint8_t *payload;
	size_t pay_fill;
	int said_bye;
	/* Frames to a joined rank go out from the poll loop, never blocking
	 * it: one rank that stops reading must not stall the others. */
	struct bs_out *out_head, *out_tail;
	size_t out_off; /* bytes of out_head already sent */
	uint64_t out_stall_ns; /* no progress by then: the rank is stuck */
};

struct wccl_bootstrap_root {
	pthread_t thread;
	int listen_fd;
	int wake[2]; /* pipe: stop request */
	int stopping;
	uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN];
	char addr[WCCL_BOOTSTRAP_ADDR_LEN];

	struct bs_conn **conns; /* allocated one by one: pointers stay */
	int nconns;
	int nranks; /* 0 until the first rank joins */
	struct bs_conn **by_rank;
	int first_left; /* first rank that said BYE, or -1 */
	char left_addr[WCCL_BOOTSTRAP_ADDR_LEN]; /* its host */
	int joined;
	int pending;

	uint32_t round;
	size_t gather_len;
	int n_gathered;
	struct bs_buf *gather_buf;
	uint8_t *gathered;

	int aborted;
	char abort_why[192];

	uint64_t accept_paused_until; /* out of fds: listener not polled */
	int fd_starved; /* logged this episode */

	struct pollfd *pfd; /* nconns + 2 */
	struct bs_conn **owner;
	int npoll;
};

static struct bs_buf *buf_new(size_t len)
{
	struct bs_buf *b = malloc(sizeof(*b) + len + 1);
	if (b) {
		b->refs = 1;
		b->len = len;
	}
	return b;
}

static void buf_put(struct bs_buf *b)
{
	if (b && --b->refs == 0)
		free(b);
}

/* Queue a frame to a joined rank; conn_flush sends it. */
static int conn_queue(struct bs_conn *c, uint16_t type, uint32_t rank,
		      uint32_t round, int32_t status, struct bs_buf *pay)
{
	struct bs_out *o = calloc(1, sizeof(*o));
	if (!o)
		return WCCL_ENOMEM;
	struct bs_hdr h = { .magic = BS_MAGIC,
			    .version = BS_VERSION,
			    .type = type,
			    .rank = rank,
			    .nranks = c->nranks,
			    .round = round,
			    .status = status,
			    .len = pay ? pay->len : 0 };
	bs_hdr_encode(&h, o->hdr);
	if (pay)
		pay->refs++;
	o->pay = pay;
	if (!c->out_head)
		c->out_stall_ns = wccl_deadline_ns(
			wccl_param_int(WCCL_PARAM_BOOTSTRAP_SEND_TIMEOUT_MS));
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	return 0;
}

static void conn_drop_output(struct bs_conn *c)
{
	while (c->out_head) {
		struct bs_out *o = c->out_head;
		c->out_head = o->next;
		buf_put(o->pay);
		free(o);
	}
	c->out_tail = NULL;
	c->out_off = 0;
}

static void conn_close(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	if (c->state == CONN_HELLO || c->state == CONN_PROOF)
		r->pending--;
	conn_drop_output(c);
	close(c->fd);
	free(c->payload);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Drop a connection that is not (yet) a rank, saying why in the log. */
static void conn_reject(struct wccl_bootstrap_root *r, struct bs_conn *c,
			int status, const char *why)
{
	WCCL_WARN(WCCL_SUB_BOOTSTRAP,
		  "bootstrap root %s: dropped connection from %s: %s", r->addr,
		  c->addr, why);
	if (c->state == CONN_PROOF || c->state == CONN_HELLO)
		bs_send(c->fd, BS_REJECT, c->rank, c->nranks, 0, status, why,
			strlen(why) + 1, wccl_deadline_ns(100));
	conn_close(r, c);
}

/* The rank a rank's ABORT blames (see BS_BLAME_UNKNOWN), -1 for none. */
static int abort_culprit(const struct wccl_bootstrap_root *r,
			 const struct bs_conn *c)
{
	uint32_t blamed = c->hdr.round;
	if (blamed == 0)
		return (int)c->rank;
	if (blamed > (uint32_t)r->nranks)
		return -1; /* BS_BLAME_NOBODY, or nonsense */
	return (int)blamed - 1;
}

/* The job is over: tell every joined rank why. */
static void abort_all(struct wccl_bootstrap_root *r, int status, int culprit,
		      const char *why)
{
	if (r->aborted)
		return;
	r->aborted = 1;
	snprintf(r->abort_why, sizeof(r->abort_why), "%s", why);
	WCCL_WARN(WCCL_SUB_BOOTSTRAP, "bootstrap root %s: aborting job: %s",
		  r->addr, why);
	struct bs_buf *b = buf_new(strlen(why) + 1);
	if (!b)
		return;
	memcpy(b->data, why, b->len);
	for (int i = 0; i < r->nranks; i++) {
		struct bs_conn *c = r->by_rank[i];
		if (c)
			conn_queue(c, BS_ABORT, (uint32_t)culprit, r->round,
				   status, b);
	}
	buf_put(b);
}

/* A joined rank is gone (@what: "left the job", "stopped reading"). */
static void rank_lost(struct wccl_bootstrap_root *r, struct bs_conn *c,
		      const char *what)
{
	char why[160];
	uint32_t rank = c->rank;
	snprintf(why, sizeof(why), "rank %u (host %s) %s", rank, c->addr,
		 what);
	r->by_rank[rank] = NULL;
	r->joined--;
	int bye = c->said_bye;
	conn_close(r, c);
	if (!bye)
		abort_all(r, WCCL_EPEER_LOST, (int)rank, why);
}

/* Send what the socket takes now; a rank that takes nothing for
 * WCCL_BOOTSTRAP_SEND_TIMEOUT_MS is lost. */
static void conn_flush(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	while (c->out_head) {
		struct bs_out *o = c->out_head;
		size_t plen = o->pay ? o->pay->len : 0;
		struct iovec iov[2];
		int n = 0;
		if (c->out_off < BS_HDR_LEN)
			iov[n++] = (struct iovec){
				.iov_base = o->hdr + c->out_off,
				.iov_len = BS_HDR_LEN - c->out_off };
		size_t poff = c->out_off > BS_HDR_LEN
				      ? c->out_off - BS_HDR_LEN
				      : 0;
		if (plen > poff)
			iov[n++] = (struct iovec){
				.iov_base = o->pay->data + poff,
				.iov_len = plen - poff };
		ssize_t k = 0;
		if (n) {
			struct msghdr m = { .msg_iov = iov,
					    .msg_iovlen = (size_t)n };
			k = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (k < 0)
				return rank_lost(r, c, "left the job");
		}
		c->out_off += (size_t)k;
		c->out_stall_ns = wccl_deadline_ns(
			wccl_param_int(WCCL_PARAM_BOOTSTRAP_SEND_TIMEOUT_MS));
		if (c->out_off < BS_HDR_LEN + plen)
			return;
		c->out_head = o->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->out_off = 0;
		buf_put(o->pay);
		free(o);
	}
}

static void on_hello(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	if (c->hdr.type != BS_HELLO || c->hdr.len != BS_NONCE_LEN)
		return conn_reject(r, c, WCCL_EPROTO, "expected HELLO");
	c->rank = c->hdr.rank;
	c->nranks = c->hdr.nranks;
	uint8_t reply[BS_NONCE_LEN + WCCL_SHA256_LEN];
	if (wccl_random_bytes(c->nonce, BS_NONCE_LEN))
		return conn_reject(r, c, WCCL_EIO, "no randomness");
	memcpy(reply, c->nonce, BS_NONCE_LEN);
	bs_root_mac(r->secret, c->payload, reply + BS_NONCE_LEN);
	if (bs_send(c->fd, BS_CHALLENGE, c->rank, c->nranks, 0, 0, reply,
		    sizeof(reply), wccl_deadline_ns(1000)))
		return conn_reject(r, c, WCCL_EPEER_LOST, "hung up");
	c->state = CONN_PROOF;
}

/*
 * Every joined rank holds one of the root's file descriptors: make sure a
 * job of @nranks fits, raising the soft limit toward the hard one if need
 * be. 0 (with the reason in @why) if it cannot.
 */
static int fd_limit_fits(struct wccl_bootstrap_root *r, uint32_t nranks,
			 char *why, size_t len)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)nranks + BS_MAX_PENDING + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return 1;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (rl.rlim_cur > was && !setrlimit(RLIMIT_NOFILE, &rl))
		WCCL_INFO(WCCL_SUB_BOOTSTRAP,
			  "bootstrap root %s: raised the open file limit "
			  "from %llu to %llu for %u ranks",
			  r->addr, (unsigned long long)was,
			  (unsigned long long)rl.rlim_cur, nranks);
	else
		rl.rlim_cur = was;
	/* Short of the margin for strangers: warn; short of one per rank
	 * the job cannot start, say so now rather than hang. */
	if (rl.rlim_cur >= need)
		return 1;
	if (rl.rlim_cur >= (rlim_t)nranks + 16) {
		WCCL_WARN(WCCL_SUB_BOOTSTRAP,
			  "bootstrap root %s: open file limit %llu is tight "
			  "for %u ranks; raise ulimit -n",
			  r->addr, (unsigned long long)rl.rlim_cur, nranks);
		return 1;
	}
	snprintf(why, len,
		 "a job of %u ranks needs about %llu open files at the "
		 "bootstrap root %s; its limit is %llu: raise ulimit -n",
		 nranks, (unsigned long long)need, r->addr,
		 (unsigned long long)rl.rlim_cur);
	return 0;
}

static void on_proof(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	uint8_t want[WCCL_SHA256_LEN];
	if (c->hdr.type != BS_PROOF || c->hdr.len != WCCL_SHA256_LEN)
		return conn_reject(r, c, WCCL_EPROTO, "expected PROOF");
	bs_rank_mac(r->secret, c->nonce, c->rank, c->nranks, want);
	if (wccl_ct_memcmp(want, c->payload, WCCL_SHA256_LEN))
		return conn_reject(r, c, WCCL_EAUTH,
				   "authentication failed (wrong secret)");
	/* Authenticated: only now do its claims count. */
	char why[256];
	if (r->aborted) {
		snprintf(why, sizeof(why), "job already aborted: %s",
			 r->abort_why);
		return conn_reject(r, c, WCCL_EABORTED, why);
	}
	if (c->nranks == 0 || c->rank >= c->nranks) {
		snprintf(why, sizeof(why), "rank %u of %u is out of range",
			 c->rank, c->nranks);
		return conn_reject(r, c, WCCL_EINVAL, why);
	}
	if (c->nranks > BS_MAX_RANKS) {
		snprintf(why, sizeof(why),
			 "a job of %u ranks: the bootstrap root supports at "
			 "most %d",
			 c->nranks, BS_MAX_RANKS);
		return conn_reject(r, c, WCCL_ERANGE, why);
	}
	if (!r->nranks && !fd_limit_fits(r, c->nranks, why, sizeof(why)))
		return conn_reject(r, c, WCCL_ERANGE, why);
	if (!r->nranks) {
		r->by_rank = calloc(c->nranks, sizeof(*r->by_rank));
		r->gathered = calloc(c->nranks, 1);
		if (!r->by_rank || !r->gathered)
			return conn_reject(r, c, WCCL_ENOMEM, "out of memory");
		r->nranks = (int)c->nranks;
	}
	if ((int)c->nranks != r->nranks) {
		snprintf(why, sizeof(why),
			 "rank %u says nranks=%u but the job has %d", c->rank,
			 c->nranks, r->nranks);
		return conn_reject(r, c, WCCL_EMISMATCH, why);
	}
	if (r->by_rank[c->rank]) {
		snprintf(why, sizeof(why), "rank %u joined twice (first from %s)",
			 c->rank, r->by_rank[c->rank]->addr);
		return conn_reject(r, c, WCCL_EINVAL, why);
	}
	if (bs_send(c->fd, BS_WELCOME, c->rank, c->nranks, 0, 0, NULL, 0,
		    wccl_deadline_ns(1000)))
		return conn_reject(r, c, WCCL_EPEER_LOST, "hung up");
	r->pending--;
	c->state = CONN_JOINED;
	r->by_rank[c->rank] = c;
	r->joined++;
	WCCL_INFO(WCCL_SUB_BOOTSTRAP, "bootstrap: rank %u/%d joined from %s",
		  c->rank, r->nranks, c->addr);
}

/* The ranks that have not sent their part of the open round, as text
 * ("rank 1 (host H), rank 3 (not joined)"); the first of them or -1. */
static int missing_ranks(const struct wccl_bootstrap_root *r, char *buf,
			 size_t len)
{
	int first = -1, n = 0;
	size_t o = 0;
	buf[0] = '\0';
	for (int i = 0; i < r->nranks; i++) {
		if (r->gathered[i])
			continue;
		if (first < 0)
			first = i;
		if (n++ >= 4)
			continue;
		const struct bs_conn *c = r->by_rank[i];
		int k = snprintf(buf + o, len - o, "%srank %d (%s%s)",
				 n > 1 ? ", " : "", i, c ? "host " : "",
				 c ? c->addr : "not joined");
		if (k < 0 || (size_t)k >= len - o)
			break;
		o += (size_t)k;
	}
	if (n > 4 && o < len)
		snprintf(buf + o, len - o, " and %d more", n - 4);
	return first;
}

/* A rank's all-gather timed out: blame those that never entered it. */
static void round_timed_out(struct wccl_bootstrap_root *r,
			    struct bs_conn *c, int status)
{
	char missing[128], why[192];
	int culprit = r->n_gathered ? missing_ranks(r, missing,
						    sizeof(missing))
				    : -1;
	if (culprit < 0)
		snprintf(why, sizeof(why), "%.*s",
			 (int)(c->hdr.len ? c->hdr.len - 1 : 0),
			 (const char *)c->payload);
	else
		snprintf(why, sizeof(why),
			 "all-gather round %u timed out at rank %u: never "
			 "entered it: %s",
			 r->round, c->rank, missing);
	abort_all(r, status, culprit, why);
}

static void finish_round(struct wccl_bootstrap_root *r)
{
	for (int i = 0; i < r->nranks; i++) {
		struct bs_conn *c = r->by_rank[i];
		if (c && conn_queue(c, BS_RESULT, c->rank, r->round, 0,
				    r->gather_buf))
			return abort_all(r, WCCL_ENOMEM, -1, "out of memory");
	}
	buf_put(r->gather_buf);
	r->gather_buf = NULL;
	memset(r->gathered, 0, (size_t)r->nranks);
	r->n_gathered = 0;
	r->round++;
}

static void on_gather(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	char why[192];
	if (r->first_left >= 0) {
		snprintf(why, sizeof(why),
			 "rank %d (host %s) left before all-gather round %u",
			 r->first_left, r->left_addr, r->round);
		return abort_all(r, WCCL_EPEER_LOST, r->first_left, why);
	}
	if (c->hdr.round != r->round || r->gathered[c->rank]) {
		snprintf(why, sizeof(why),
			 "rank %u sent all-gather round %u while the job is at "
			 "round %u",
			 c->rank, c->hdr.round, r->round);
		return abort_all(r, WCCL_EMISMATCH, (int)c->rank, why);
	}
	if (r->n_gathered == 0) {
		r->gather_len = c->hdr.len;
		if ((uint64_t)r->gather_len * (uint64_t)r->nranks >
		    BS_MAX_PAYLOAD)
			return abort_all(r, WCCL_EMSGSIZE, (int)c->rank,
					 "all-gather larger than 64 MiB");
		r->gather_buf = buf_new(r->gather_len * (size_t)r->nranks);
		if (!r->gather_buf)
			return abort_all(r, WCCL_ENOMEM, -1, "out of memory");
	} else if (c->hdr.len != r->gather_len) {
		snprintf(why, sizeof(why),
			 "all-gather round %u: rank %u contributed %llu bytes, "
			 "others %zu",
			 r->round, c->rank, (unsigned long long)c->hdr.len,
			 r->gather_len);
		return abort_all(r, WCCL_EMISMATCH, (int)c->rank, why);
	}
	if (r->gather_len)
		memcpy(r->gather_buf->data + (size_t)c->rank * r->gather_len,
		       c->payload, r->gather_len);
	r->gathered[c->rank] = 1;
	if (++r->n_gathered == r->nranks)
		finish_round(r);
}

static void on_joined_frame(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	char why[192];
	switch (c->hdr.type) {
	case BS_GATHER:
		if (!r->aborted)
			on_gather(r, c);
		break;
	case BS_ABORT:
		if (c->hdr.round == BS_BLAME_UNKNOWN) {
			round_timed_out(r, c, c->hdr.status < 0
						      ? c->hdr.status
						      : WCCL_ETIMEDOUT);
			break;
		}
		snprintf(why, sizeof(why), "%.*s",
			 (int)(c->hdr.len ? c->hdr.len - 1 : 0),
			 (const char *)c->payload);
		abort_all(r,
			  c->hdr.status < 0 ? c->hdr.status : WCCL_EABORTED,
			  abort_culprit(r, c), why);
		break;
	case BS_BYE:
		/* Leaving while others gather leaves them waiting: say who,
		 * now, rather than let them time out blaming nobody. */
		c->said_bye = 1;
		if (r->first_left < 0) {
			r->first_left = (int)c->rank;
			snprintf(r->left_addr, sizeof(r->left_addr), "%s",
				 c->addr);
		}
		if (r->n_gathered && !r->gathered[c->rank] && !r->aborted) {
			snprintf(why, sizeof(why),
				 "rank %u (host %s) left during all-gather "
				 "round %u",
				 c->rank, c->addr, r->round);
			abort_all(r, WCCL_EPEER_LOST, (int)c->rank, why);
		}
		break;
	default:
		snprintf(why, sizeof(why), "rank %u sent unexpected frame %u",
			 c->rank, c->hdr.type);
		abort_all(r, WCCL_EPROTO, (int)c->rank, why);
	}
}

/* One complete frame is in c->hdr / c->payload. */
static void on_frame(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	switch (c->state) {
	case CONN_HELLO:
		on_hello(r, c);
		break;
	case CONN_PROOF:
		on_proof(r, c);
		break;
	case CONN_JOINED:
		on_joined_frame(r, c);
		break;
	default:
		break;
	}
	if (c->fd >= 0) {
		free(c->payload);
		c->payload = NULL;
		c->pay_fill = 0;
		c->hdr_fill = 0;
		c->have_hdr = 0;
	}
}

/* Read what is available; act on every complete frame. */
static void conn_readable(struct wccl_bootstrap_root *r, struct bs_conn *c)
{
	for (int frames = 0; c->fd >= 0 && frames < 64; frames++) {
		ssize_t n;
		if (!c->have_hdr) {
			n = recv(c->fd, c->hdr_raw + c->hdr_fill,
				 BS_HDR_LEN - c->hdr_fill, MSG_DONTWAIT);
		} else {
			n = recv(c->fd, c->payload + c->pay_fill,
				 c->hdr.len - c->pay_fill, MSG_DONTWAIT);
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			if (c->state == CONN_JOINED)
				rank_lost(r, c, "left the job");
			else
				conn_reject(r, c, WCCL_EPEER_LOST,
					    "closed during the handshake");
			return;
		}
		if (!c->have_hdr) {
			c->hdr_fill += (size_t)n;
			if (c->hdr_fill < BS_HDR_LEN)
				continue;
			uint64_t max = c->state == CONN_JOINED
					       ? BS_MAX_PAYLOAD
					       : BS_MAX_HANDSHAKE_PAYLOAD;
			int rc = bs_hdr_decode(c->hdr_raw, max, &c->hdr);
			if (rc) {
				char why[96];
				snprintf(why, sizeof(why),
					 "malformed frame (%s)",
					 wccl_strerror(rc));
				if (c->state == CONN_JOINED) {
					abort_all(r, rc, (int)c->rank, why);
					rank_lost(r, c, "left the job");
				} else {
					conn_reject(r, c, rc, why);
				}
				return;
			}
			c->have_hdr = 1;
			c->payload = malloc(c->hdr.len + 1);
			if (!c->payload)
				return conn_reject(r, c, WCCL_ENOMEM,
						   "out of memory");
		} else {
			c->pay_fill += (size_t)n;
		}
		if (c->have_hdr && c->pay_fill == c->hdr.len)
			on_frame(r, c);
	}
}

/*
 * The pending table is full: make room by dropping the oldest connection
 * that has not authenticated, so strangers that hold connections open
 * cannot lock real ranks out. Those that have not even sent HELLO go
 * first: a real rank sends it at once, a squatter never does.
 */
static void evict_oldest_pending(struct wccl_bootstrap_root *r)
{
	struct bs_conn *victim = NULL;
	for (int i = 0; i < r->nconns; i++) {
		struct bs_conn *c = r->conns[i];
		if (c->state != CONN_HELLO && c->state != CONN_PROOF)
			continue;
		if (!victim || (c->state == CONN_HELLO &&
				victim->state == CONN_PROOF) ||
		    (c->state == victim->state &&
		     c->since_ns < victim->since_ns))
			victim = c;
	}
	char why[96];
	snprintf(why, sizeof(why),
		 "evicted: oldest of %d unauthenticated connections",
		 BS_MAX_PENDING);
	if (victim)
		conn_reject(r, victim, WCCL_EBUSY, why);
}

/*
 * accept() failed for want of file descriptors: the connection stays in
 * the backlog and the listener stays readable, so polling it again at once
 * would spin. Leave it alone for a while, and say so once.
 */
static void accept_starved(struct wccl_bootstrap_root *r, int err)
{
	r->accept_paused_until = wccl_deadline_ns(BS_ACCEPT_PAUSE_MS);
	if (r->fd_starved)
		return;
	r->fd_starved = 1;
	WCCL_WARN(WCCL_SUB_BOOTSTRAP,
		  "bootstrap root %s: cannot accept connections: %s (%d "
		  "connections open); raise the open file limit (ulimit -n). "
		  "Retrying every %d ms",
		  r->addr, strerror(err), r->joined + r->pending,
		  BS_ACCEPT_PAUSE_MS);
}

/* A free connection slot, growing the table if all are taken. */
static struct bs_conn *conn_slot(struct wccl_bootstrap_root *r)
{
	for (int i = 0; i < r->nconns; i++)
		if (r->conns[i]->state == CONN_FREE)
			return r->conns[i];
	int n = r->nconns ? 2 * r->nconns : BS_INITIAL_CONNS;
	struct bs_conn **t = realloc(r->conns, (size_t)n * sizeof(*t));
	if (!t)
		return NULL;
	r->conns = t;
	for (; r->nconns < n; r->nconns++) {
		struct bs_conn *c = calloc(1, sizeof(*c));
		if (!c)
			break;
		c->fd = -1;
		t[r->nconns] = c;
	}
	return r->nconns > 0 && r->conns[r->nconns - 1]->state == CONN_FREE
		       ? r->conns[r->nconns - 1]
		       : NULL;
}

static void accept_new(struct wccl_bootstrap_root *r)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(r->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_starved(r, errno);
			return;
		}
		if (r->fd_starved) {
			WCCL_WARN(WCCL_SUB_BOOTSTRAP,
				  "bootstrap root %s: accepting connections "
				  "again", r->addr);
			r->fd_starved = 0;
		}
		char addr[WCCL_BOOTSTRAP_ADDR_LEN];
		wccl_sock_format((struct sockaddr *)&ss, addr, sizeof(addr));
		if (r->stopping) {
			close(fd);
			continue;
		}
		if (r->pending >= BS_MAX_PENDING)
			evict_oldest_pending(r);
		struct bs_conn *slot = conn_slot(r);
		if (!slot) {
			WCCL_WARN(WCCL_SUB_BOOTSTRAP,
				  "bootstrap root %s: refused %s: out of "
				  "memory for %d connections",
				  r->addr, addr, r->nconns + 1);
			close(fd);
			continue;
		}
		memset(slot, 0, sizeof(*slot));
		slot->fd = fd;
		slot->state = CONN_HELLO;
		snprintf(slot->addr, sizeof(slot->addr), "%s", addr);
		slot->since_ns = wccl_now_ns();
		slot->deadline_ns = wccl_deadline_ns(
			wccl_param_int(WCCL_PARAM_BOOTSTRAP_HANDSHAKE_MS));
		r->pending++;
	}
}

static int all_left(const struct wccl_bootstrap_root *r)
{
	for (int i = 0; i < r->nranks; i++)
		if (r->by_rank[i] && !r->by_rank[i]->said_bye)
			return 0;
	return 1;
}

static void *root_main(void *arg)
{
	struct wccl_bootstrap_root *r = arg;
	uint64_t stop_deadline = 0;
	for (;;) {
		if (r->npoll < r->nconns + 2) {
			/* accept_new grew the table: grow these with it. */
			int m = r->nconns + 2;
			struct pollfd *p = realloc(r->pfd, (size_t)m *
							   sizeof(*p));
			if (p)
				r->pfd = p;
			struct bs_conn **o = realloc(r->owner, (size_t)m *
								sizeof(*o));
			if (o)
				r->owner = o;
			if (p && o)
				r->npoll = m;
		}
		struct pollfd *pfd = r->pfd;
		struct bs_conn **owner = r->owner;
		int stopping = __atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE);
		if (stopping && !stop_deadline)
			stop_deadline = wccl_deadline_ns(5000);
		if (stopping &&
		    (all_left(r) || wccl_now_ns() >= stop_deadline))
			break;
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = r->wake[0], .events = POLLIN };
		uint64_t now = wccl_now_ns();
		pfd[n++] = (struct pollfd){
			.fd = now >= r->accept_paused_until ? r->listen_fd : -1,
			.events = POLLIN };
		for (int i = 0; i < r->nconns && n < r->npoll; i++) {
			struct bs_conn *c = r->conns[i];
			if (c->state == CONN_FREE)
				continue;
			if (c->state != CONN_JOINED && now >= c->deadline_ns) {
				conn_reject(r, c, WCCL_ETIMEDOUT,
					    "handshake timed out");
				continue;
			}
			if (c->out_head && now >= c->out_stall_ns) {
				/* Reset, not FIN: what is still queued is
				 * of no use to it and must not linger. */
				struct linger l = { 1, 0 };
				setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l,
					   sizeof(l));
				char what[80];
				snprintf(what, sizeof(what),
					 "stopped reading (took nothing for "
					 "%lld ms)",
					 (long long)wccl_param_int(
					 WCCL_PARAM_BOOTSTRAP_SEND_TIMEOUT_MS));
				rank_lost(r, c, what);
				continue;
			}
			short ev = POLLIN | (c->out_head ? POLLOUT : 0);
			owner[n] = c;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pfd, (nfds_t)n, 100) <= 0)
			continue;
		if (pfd[0].revents) {
			char b[8];
			(void)!read(r->wake[0], b, sizeof(b));
		}
		if (pfd[1].revents)
			accept_new(r);
		for (int i = 2; i < n; i++) {
			struct bs_conn *c = owner[i];
			if ((pfd[i].revents & POLLOUT) && c->fd == pfd[i].fd)
				conn_flush(r, c);
			if ((pfd[i].revents & ~POLLOUT) && c->fd == pfd[i].fd)
				conn_readable(r, c);
		}
	}
	return NULL;
}

/* This host's first non-loopback IPv4 address, else loopback. */
static void default_bind(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	snprintf(buf, len, "127.0.0.1:0");
	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET,
			  &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr,
			  ip, sizeof(ip));
		snprintf(buf, len, "%s:0", ip);
		break;
	}
	freeifaddrs(ifa);
}

int wccl_bootstrap_root_start(const char *bind_addr,
			      const uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN],
			      struct wccl_bootstrap_root **root,
			      char addr_out[WCCL_BOOTSTRAP_ADDR_LEN])
{
	char def[WCCL_BOOTSTRAP_ADDR_LEN];
	if (!bind_addr) {
		default_bind(def, sizeof(def));
		bind_addr = def;
	}
	struct wccl_bootstrap_root *r = calloc(1, sizeof(*r));
	if (!r)
		return WCCL_ENOMEM;
	r->first_left = -1;
	if (!conn_slot(r)) {
		free(r);
		return WCCL_ENOMEM;
	}
	memcpy(r->secret, secret, WCCL_BOOTSTRAP_SECRET_LEN);
	int rc = wccl_sock_listen(bind_addr, 128);
	if (rc < 0) {
		WCCL_WARN(WCCL_SUB_BOOTSTRAP,
			  "bootstrap root cannot listen on %s: %s", bind_addr,
			  wccl_strerror(rc));
		free(r);
		return rc;
	}
	r->listen_fd = rc;
	wccl_sock_local_addr(r->listen_fd, r->addr, sizeof(r->addr));
	if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK)) {
		close(r->listen_fd);
		free(r);
		return WCCL_EIO;
	}
	if (pthread_create(&r->thread, NULL, root_main, r)) {
		close(r->listen_fd);
		close(r->wake[0]);
		close(r->wake[1]);
		free(r);
		return WCCL_ENOMEM;
	}
	snprintf(addr_out, WCCL_BOOTSTRAP_ADDR_LEN, "%s", r->addr);
	WCCL_INFO(WCCL_SUB_BOOTSTRAP, "bootstrap root listening on %s", r->addr);
	*root = r;
	return 0;
}

void wccl_bootstrap_root_stop(struct wccl_bootstrap_root *r)
{
	if (!r)
		return;
	__atomic_store_n(&r->stopping, 1, __ATOMIC_RELEASE);
	(void)!write(r->wake[1], "x", 1);
	pthread_join(r->thread, NULL);
	for (int i = 0; i < r->nconns; i++) {
		if (r->conns[i]->state != CONN_FREE)
			conn_close(r, r->conns[i]);
		free(r->conns[i]);
	}
	free(r->conns);
	free(r->pfd);
	free(r->owner);
	close(r->listen_fd);
	close(r->wake[0]);
	close(r->wake[1]);
	free(r->by_rank);
	free(r->gathered);
	buf_put(r->gather_buf);
	free(r);
}
