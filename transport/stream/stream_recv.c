/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "crc32c.h"
#include "stream.h"
#include "stream_common.h"
#include "stream_io.h"

#define TX_PER_EP 32
#define TXQ 512 /* control messages waiting for a free send buffer */
/* The longest read of the byte counts that still gives them one stamp */
#define RCV_STAMP_SPAN_NS 500000ull

/* Work for the I/O thread: one job per data receive buffer (ep, i), and
 * one for FIN (the whole-file check). */
#define NJOBS (STREAM_MAX_EPS * STREAM_RX_PER_EP + 1)
#define JOB_FIN (NJOBS - 1)
enum { JOB_ACK, JOB_NAK, JOB_ERR, JOB_FIN_OK, JOB_FIN_BAD };

struct rcv_job {
	struct smsg m;
	uint64_t plen, recv_ts;
	uint64_t recv_bytes; /* rcv_bytes() at recv_ts (0: unknown) */
	int result;
	int status; /* JOB_ERR / JOB_FIN_BAD: the code, text in io_text */
};

struct wccl_stream_server {
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_listener *l;
	char dir[4096];
	char host[256];
	int dirfd; /* @dir: files are opened relative to it */
	/* first receive of each endpoint (HELLO or JOIN) */
	uint8_t *hreg;
	struct wccl_mr *hmr;
};

struct rcv_ep {
	struct wccl_endpoint *ep;
	int state; /* 0 waiting first message, 1 data, 2 dead, 3 turned
		      away, 4 path probe (pings only), 5 handshaking, 6 free
		      slot (closed) */
	/* Bumped when the slot's endpoint is closed: completions of an
	 * earlier occupant, still in the CQ, carry the old one. */
	uint16_t gen;
	uint64_t hs_deadline; /* state 5: drop it after this */
	int slot; /* which data connection's receive buffers (state 1) */
	int tx_busy[TX_PER_EP];
	struct smsg q[TXQ]; /* queued, payload-less control replies */
	int qh, qt;
};

struct rcv {
	struct wccl_stream_server *srv;
	struct rcv_ep eps[STREAM_MAX_EPS];
	int nep;
	int have_hello;
	int no_bytes_attr; /* the provider has no byte count (below) */
	int bytes_attr;	   /* WCCL_EP_ATTR_BYTES_ARRIVED, or _RECEIVED */
	uint64_t sid, size, nchunks;
	int64_t mtime_ns;
	uint32_t chunk;
	int max_streams;
	/* Data connections so far. The sender opens its connections at
	 * once, so the accept order (the eps index) mixes the path probe
	 * in among them: buffers go by this count instead. */
	int ndata;
	char name[STREAM_CTRL_MAX];
	char path[8192], jpath[8192];
	int fd;
	struct stream_journal j;
	int jopen;
	uint8_t *dreg; /* data receives + send buffers */
	size_t dreg_len;
	struct wccl_mr *dmr;
	uint8_t *big_tx; /* HELLO_ACK with bitmap, or texts */
	size_t big_len;
	int big_busy;
	uint8_t *vbuf; /* re-read for the whole-file check */
	uint32_t *ccrc;	  /* CRC of each chunk written this run */
	uint8_t *cknown;  /* ... if set (bitmap) */
	int readback;	  /* WCCL_STREAM_READBACK */
	uint64_t since_sync, last_sync_ns, sync_ns; /* I/O thread's */
	/* I/O thread: CRC32C, pwrite, journal, sync, the final re-read */
	pthread_t io;
	int io_started, io_stop, io_failed, io_inline;
	/* The I/O thread did not end when asked (a hung disk): everything it
	 * may touch, this struct included, is left to it. */
	int io_stuck;
	int io_stall_ms; /* test hook */
	/* When the I/O thread last showed progress (its clock) while it had
	 * work: a job begun or ended, a chunk read back at FIN. */
	uint64_t io_beat;
	struct stream_waker io_wake;
	struct stream_ring to_io, from_io; /* job ids */
	struct rcv_job jobs[NJOBS];
	int io_pending; /* jobs handed over, not yet answered */
	char io_text[STREAM_CTRL_MAX];
	int done, failed, fin_sent, fin_recv;
	int drop_journal; /* FIN failed over chunks of an earlier run */
	int pending_big; /* sends still to complete before we return */
	struct wccl_stream_stats st;
	uint64_t t0, last_msg_ns;
	char *err;
	size_t errlen;
	int rc;
};

static int rcv_fail(struct rcv *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rcv_io_start(struct rcv *r);
static int rcv_fail(struct rcv *r, int rc, const char *fmt, ...)
{
	if (r->err && !r->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	if (!r->rc)
		r->rc = rc;
	return rc;
}

/* snprintf that truncates on purpose (messages, bounded paths). */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static size_t dslot(const struct rcv *r)
{
	return SMSG_LEN + (size_t)r->chunk;
}

static uint8_t *rx_buf(struct rcv *r, int ep, int i)
{
	return r->dreg + ((size_t)r->eps[ep].slot * STREAM_RX_PER_EP +
			  (size_t)i) *
			     dslot(r);
}

static uint8_t *tx_buf(struct rcv *r, int ep, int i)
{
	size_t base = (size_t)r->max_streams * STREAM_RX_PER_EP * dslot(r);
	return r->dreg + base + ((size_t)ep * TX_PER_EP + (size_t)i) * SMSG_LEN;
}

static uint8_t *hello_buf(struct wccl_stream_server *srv, int ep)
{
	return srv->hreg + (size_t)ep * STREAM_CTRL_BUF;
}

/* CK() with the slot's generation in the index's upper half. */
static uint64_t rck(const struct rcv *r, int kind, int ep, uint64_t idx)
{
	return CK(kind, ep, (uint64_t)r->eps[ep].gen << 32 | idx);
}

/* A session endpoint: its failure is the transfer's. */
static int rcv_member(const struct rcv_ep *e)
{
	return e->state == 1 || e->state == 4;
}

/* Close one endpoint that is not part of the session (a stray or
 * hostile connection) and free its slot; the transfer goes on. */
static void rcv_drop(struct rcv *r, int ep, const char *why)
{
	struct rcv_ep *e = &r->eps[ep];
	WCCL_WARN(WCCL_SUB_TRANSPORT, "stream: closed connection from %s: %s",
		  wccl_endpoint_peer(e->ep), why);
	wccl_endpoint_close(e->ep);
	e->ep = NULL;
	e->state = 6;
	e->gen++;
}

/* Receive slot @i (1-based, as in the cookie) of the path probe's
 * connection: after the hello buffers; one probe at a time per server. */
static uint8_t *probe_buf(struct wccl_stream_server *srv, int i)
{
	return srv->hreg + (size_t)(STREAM_MAX_EPS + i - 1) * STREAM_CTRL_BUF;
}

static int rcv_post_probe(struct rcv *r, int ep, int i)
{
	int rc = wccl_post_recv(r->eps[ep].ep, probe_buf(r->srv, i),
				STREAM_CTRL_BUF, r->srv->hmr,
				rck(r, K_RX_FIRST, ep, i));
	if (rc)
		return rcv_fail(r, rc, "post receive: %s", wccl_strerror(rc));
	return 0;
}

/* Send what is queued on @ep while send buffers are free. */
static int rcv_flush_q(struct rcv *r, int ep)
{
	struct rcv_ep *e = &r->eps[ep];
	while (e->qh != e->qt) {
		int i;
		for (i = 0; i < TX_PER_EP && e->tx_busy[i]; i++)
			;
		if (i == TX_PER_EP)
			return 0;
		uint8_t *b = tx_buf(r, ep, i);
		smsg_put(b, &e->q[e->qh % TXQ]);
		int rc = wccl_post_send(e->ep, b, SMSG_LEN, r->dmr,
					rck(r, K_TX_CTRL, ep, i));
		if (rc == WCCL_EAGAIN)
			return 0;
		if (rc)
			return rc;
		e->tx_busy[i] = 1;
		e->qh++;
	}
	return 0;
}

static int rcv_reply(struct rcv *r, int ep, const struct smsg *m)
{
	struct rcv_ep *e = &r->eps[ep];
	if (e->qt - e->qh >= TXQ)
		return rcv_fail(r, WCCL_EINTERNAL, "reply queue overflow");
	e->q[e->qt++ % TXQ] = *m;
	return rcv_flush_q(r, ep);
}

/* A reply with a payload, from the one big send buffer. */
static int rcv_reply_big(struct rcv *r, int ep, const struct smsg *m,
			 const void *p, size_t plen)
{
	if (r->big_busy || SMSG_LEN + plen > r->big_len || !r->dmr)
		return WCCL_EAGAIN;
	smsg_put(r->big_tx, m);
	memcpy(r->big_tx + SMSG_LEN, p, plen);
	int rc = wccl_post_send(r->eps[ep].ep, r->big_tx, SMSG_LEN + plen,
				r->dmr, rck(r, K_TX_DATA, ep, 0));
	if (!rc)
		r->big_busy = 1;
	return rc;
}

/* Tell the sender why we stop; best effort. */
static void rcv_send_error(struct rcv *r, int ep, int code, const char *text)
{
	struct smsg m = {.magic = SMSG_MAGIC,
			 .type = SM_ERROR,
			 .sid = r->sid,
			 .aux1 = (uint64_t)(int64_t)code};
	if (r->dmr) {
		if (rcv_reply_big(r, ep, &m, text, strlen(text) + 1) == 0)
			r->pending_big = 1;
		return;
	}
	/* No session buffers yet: answer in the endpoint's hello buffer. */
	uint8_t *b = hello_buf(r->srv, ep);
	size_t tl = strlen(text) + 1;
	if (tl > STREAM_CTRL_MAX)
		tl = STREAM_CTRL_MAX;
	m.type = SM_HELLO_ACK;
	smsg_put(b, &m);
	memcpy(b + SMSG_LEN, text, tl);
	b[SMSG_LEN + tl - 1] = 0;
	if (wccl_post_send(r->eps[ep].ep, b, SMSG_LEN + tl, r->srv->hmr,
			   rck(r, K_TX_DATA, ep, 0)) == 0)
		r->pending_big = 1;
}

/* Turn away one endpoint (a second sender, a stray join) without
 * disturbing the session: the answer goes out of its hello buffer. */
static int rcv_reject(struct rcv *r, int ep, const char *why)
{
	char text[STREAM_CTRL_MAX];
	struct smsg m = {.magic = SMSG_MAGIC,
			 .type = SM_HELLO_ACK,
			 .aux1 = (uint64_t)(int64_t)WCCL_EBUSY};
	uint8_t *b = hello_buf(r->srv, ep);
	textf(text, sizeof(text), "receiver %s: %s", r->srv->host, why);
	size_t tl = strlen(text) + 1;
	smsg_put(b, &m);
	memcpy(b + SMSG_LEN, text, tl);
	WCCL_WARN(WCCL_SUB_TRANSPORT, "stream: turned away %s: %s",
		  wccl_endpoint_peer(r->eps[ep].ep), why);
	r->eps[ep].state = 3;
	wccl_post_send(r->eps[ep].ep, b, SMSG_LEN + tl, r->srv->hmr,
		       rck(r, K_TX_REJECT, ep, 0));
	return 0;
}

static int rcv_sync(struct rcv *r)
{
	if (!r->jopen || !r->j.dirty)
		return 0;
	if (fdatasync(r->fd))
		return -errno;
	int rc = stream_journal_flush(&r->j);
	r->since_sync = 0;
	r->last_sync_ns = wccl_now_ns();
	return rc;
}

static int rcv_post_data(struct rcv *r, int ep)
{
	if (r->eps[ep].state != 1)
		r->eps[ep].slot = r->ndata++;
	for (int i = 0; i < STREAM_RX_PER_EP; i++) {
		int rc = wccl_post_recv(r->eps[ep].ep, rx_buf(r, ep, i),
					dslot(r), r->dmr, rck(r, K_RX, ep, i));
		if (rc)
			return rc;
	}
	r->eps[ep].state = 1;
	return 0;
}

/* Open (create) @name in the receive directory for writing: never
 * through a symbolic link (-ELOOP), never a FIFO or device (-EINVAL;
 * O_NONBLOCK: opening one does not wait). Returns the fd or -errno. */
static int rcv_open_data(struct rcv *r, const char *name, struct stat *sb)
{
	int fd = openat(r->srv->dirfd, name,
			O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
			0644);
	if (fd < 0)
		return -errno;
	int rc = fstat(fd, sb) ? -errno : 0;
	if (!rc && !S_ISREG(sb->st_mode))
		rc = -EINVAL;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

/* What an open of ours failed with, in words. */
static const char *open_why(int rc)
{
	if (rc == -ELOOP)
		return "a symbolic link, not written through";
	if (rc == -EINVAL)
		return "not a regular file";
	return strerror(-rc);
}

static int path_ok(const char *n)
{
	return n[0] && strcmp(n, ".") && strcmp(n, "..") && !strchr(n, '/');
}

static int rcv_hello(struct rcv *r, int ep, const struct smsg *m,
		     const char *name, size_t nlen)
{
	char text[STREAM_CTRL_MAX];
	if (r->have_hello)
		return rcv_reject(r, ep, "busy with another transfer");
	if (m->offset > (uint64_t)INT64_MAX - STREAM_MAX_CHUNK) {
		/* nchunks would wrap and no file can be that long */
		textf(text, sizeof(text),
		      "receiver %s: bad hello: file size %llu too large",
		      r->srv->host, (unsigned long long)m->offset);
		rcv_send_error(r, ep, WCCL_EPROTO, text);
		return rcv_fail(r, WCCL_EPROTO,
				"sender %s: bad hello: file size %llu too large",
				wccl_endpoint_peer(r->eps[ep].ep),
				(unsigned long long)m->offset);
	}
	if (!nlen || name[nlen - 1] || !path_ok(name) || m->len < 4096 ||
	    m->len > STREAM_MAX_CHUNK || !m->aux2 || m->aux2 > STREAM_MAX_EPS ||
	    m->index != (m->offset + m->len - 1) / m->len) {
		textf(text, sizeof(text), "receiver %s: bad hello",
		      r->srv->host);
		rcv_send_error(r, ep, WCCL_EPROTO, text);
		return rcv_fail(r, WCCL_EPROTO, "sender %s: bad hello",
				wccl_endpoint_peer(r->eps[ep].ep));
	}
	r->have_hello = 1;
	r->sid = m->sid;
	r->size = m->offset;
	r->nchunks = m->index;
	r->chunk = m->len;
	r->mtime_ns = (int64_t)m->aux1;
	r->max_streams = (int)m->aux2;
	textf(r->name, sizeof(r->name), "%s", name);
	textf(r->path, sizeof(r->path), "%s/%s", r->srv->dir, name);
	textf(r->jpath, sizeof(r->jpath), "%s/%s.wccl-part", r->srv->dir, name);
	int resumed = 0, rc;
	/* A resume whose sender picked its chunk size from the path (which
	 * may pick another size from one run to the next): the journal's
	 * size, so what was verified is kept. */
	uint32_t jc = (m->flags & STREAM_HELLO_RESUME) &&
			      (m->flags & STREAM_HELLO_CHUNK_AUTO)
			  ? stream_journal_chunk(r->jpath, r->size,
						 r->mtime_ns)
			  : 0;
	if (jc && jc != r->chunk && jc >= STREAM_AUTO_CHUNK_MIN &&
	    jc <= STREAM_MAX_CHUNK) {
		WCCL_INFO(WCCL_SUB_TRANSPORT,
			  "stream %s: resuming with the journal's %u-byte "
			  "chunks (the sender picked %u)",
			  r->path, jc, r->chunk);
		r->chunk = jc;
		r->nchunks = (r->size + jc - 1) / jc;
	}
	rc = stream_journal_open(&r->j, r->jpath, r->size, r->mtime_ns,
				 r->chunk, m->flags & STREAM_HELLO_RESUME,
				 &resumed);
	if (rc) {
		textf(text, sizeof(text), "receiver %s: %s: %s", r->srv->host,
		      r->jpath, open_why(rc));
		rcv_send_error(r, ep, rc, text);
		return rcv_fail(r, rc, "%s: %s", r->jpath, open_why(rc));
	}
	r->jopen = 1;
	struct stat sb;
	r->fd = rcv_open_data(r, name, &sb);
	/* The journal vouches for bytes in the data file: a file deleted or
	 * cut short since (or grown) has not got them. Start over. */
	if (r->fd >= 0 && resumed && (uint64_t)sb.st_size != r->size) {
		WCCL_WARN(WCCL_SUB_TRANSPORT,
			  "stream %s: is %lld bytes, not %llu: journal "
			  "discarded, starting over",
			  r->path, (long long)sb.st_size,
			  (unsigned long long)r->size);
		stream_journal_close(&r->j);
		r->jopen = 0;
		rc = stream_journal_open(&r->j, r->jpath, r->size, r->mtime_ns,
					 r->chunk, 0, &resumed);
		if (rc) {
			close(r->fd);
			r->fd = -1;
			textf(text, sizeof(text), "receiver %s: %s: %s",
			      r->srv->host, r->jpath, open_why(rc));
			rcv_send_error(r, ep, rc, text);
			return rcv_fail(r, rc, "%s: %s", r->jpath,
					open_why(rc));
		}
		r->jopen = 1;
	}
	rc = r->fd < 0 ? r->fd : 0;
	if (!rc && ((!resumed && ftruncate(r->fd, 0)) ||
			ftruncate(r->fd, (off_t)r->size)))
		rc = -errno;
	if (rc) {
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
		textf(text, sizeof(text), "receiver %s: %s: %s", r->srv->host,
		      r->path, open_why(rc));
		rcv_send_error(r, ep, rc, text);
		return rcv_fail(r, rc, "%s: %s", r->path, open_why(rc));
	}
	if (resumed)
		WCCL_INFO(WCCL_SUB_TRANSPORT,
			  "stream %s: resuming, %llu of %llu chunks verified",
			  r->path, (unsigned long long)r->j.verified,
			  (unsigned long long)r->nchunks);
	r->st.file_bytes = r->size;
	r->st.chunk_bytes = r->chunk;
	r->st.bytes_skipped = r->j.verified * r->chunk;
	size_t bm = (r->nchunks + 7) / 8;
	r->big_len = SMSG_LEN + (bm > STREAM_CTRL_MAX ? bm : STREAM_CTRL_MAX);
	/* Receive buffers for the data streams; control sends for every
	 * endpoint (the sender's path probe comes on top of its streams). */
	r->dreg_len = (size_t)r->max_streams * STREAM_RX_PER_EP * dslot(r) +
		      (size_t)STREAM_MAX_EPS * TX_PER_EP * SMSG_LEN +
		      r->big_len;
	r->vbuf = malloc(r->chunk);
	r->ccrc = malloc((r->nchunks ? r->nchunks : 1) * sizeof(uint32_t));
	r->cknown = calloc(bm ? bm : 1, 1);
	r->readback = (int)wccl_param_int(WCCL_PARAM_STREAM_READBACK);
	rc = r->vbuf && r->ccrc && r->cknown ? wccl_mem_alloc(r->dreg_len, (void **)&r->dreg)
		     : WCCL_ENOMEM;
	if (!rc)
		rc = wccl_mr_register(r->srv->ctx, r->dreg, r->dreg_len,
				      WCCL_ACCESS_LOCAL, &r->dmr);
	if (rc) {
		textf(text, sizeof(text), "receiver %s: buffers: %s",
		      r->srv->host, wccl_strerror(rc));
		rcv_send_error(r, ep, rc, text);
		return rcv_fail(r, rc, "%s", text);
	}
	r->big_tx = r->dreg + r->dreg_len - r->big_len;
	if ((rc = rcv_io_start(r))) {
		textf(text, sizeof(text), "receiver %s: I/O thread: %s",
		      r->srv->host, strerror(-rc));
		rcv_send_error(r, ep, rc, text);
		return rcv_fail(r, rc, "%s", text);
	}
	if ((rc = rcv_post_data(r, ep)))
		return rcv_fail(r, rc, "post receive: %s", wccl_strerror(rc));
	struct smsg a = {.magic = SMSG_MAGIC,
			 .type = SM_HELLO_ACK,
			 .sid = r->sid,
			 .index = r->j.verified,
			 .len = r->chunk};
	rc = rcv_reply_big(r, ep, &a, r->j.bitmap, r->j.verified ? bm : 0);
	if (rc)
		return rcv_fail(r, rc, "hello ack: %s", wccl_strerror(rc));
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return WCCL_EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* ---- I/O thread ---------------------------------------------------- */

/* Verify and store one chunk. Sets job->result; JOB_ERR leaves the reason
 * in io_text. */
static void io_data(struct rcv *r, struct rcv_job *job, const uint8_t *payload)
{
	const struct smsg *m = &job->m;
	uint64_t plen = job->plen;
	if (wccl_crc32c(0, payload, plen) != m->crc) {
		/* Never delivered: ask for it again. */
		r->st.crc_errors++;
		WCCL_WARN(WCCL_SUB_TRANSPORT,
			  "stream %s: chunk %llu failed its crc32c, "
			  "requesting it again",
			  r->path, (unsigned long long)m->index);
		job->result = JOB_NAK;
		return;
	}
	job->result = JOB_ACK;
	if (!stream_journal_has(&r->j, m->index)) {
		int rc = pwrite_all(r->fd, payload, plen, (off_t)m->offset);
		if (rc) {
			rcv_sync(r);
			textf(r->io_text, sizeof(r->io_text),
			      "receiver %s: writing %s at offset %llu: %s "
			      "(%llu of %llu bytes verified and kept for "
			      "--resume)",
			      r->srv->host, r->path,
			      (unsigned long long)m->offset, strerror(-rc),
			      (unsigned long long)(r->j.verified * r->chunk),
			      (unsigned long long)r->size);
			job->result = JOB_ERR;
			job->status = rc;
			return;
		}
		stream_journal_set(&r->j, m->index);
		r->ccrc[m->index] = m->crc;
		r->cknown[m->index >> 3] |= (uint8_t)(1u << (m->index & 7));
		r->st.bytes_delivered += plen;
		r->st.chunks++;
		r->since_sync++;
	}
	if (r->since_sync >= 16 ||
	    wccl_now_ns() - r->last_sync_ns > r->sync_ns) {
		int rc = rcv_sync(r);
		if (rc) {
			textf(r->io_text, sizeof(r->io_text),
			      "receiver %s: journal %s: %s", r->srv->host,
			      r->jpath, strerror(-rc));
			job->result = JOB_ERR;
			job->status = rc;
		}
	}
}

/* FIN: everything is written; sync, re-read the file, compare. */
static void io_fin(struct rcv *r, struct rcv_job *job)
{
	char *text = r->io_text;
	size_t tl = sizeof(r->io_text);
	int status = 0, earlier = 0;
	text[0] = 0;
	if (r->j.verified != r->nchunks) {
		status = WCCL_EPROTO;
		textf(text, tl, "receiver %s: fin with %llu of %llu chunks",
		      r->srv->host, (unsigned long long)r->j.verified,
		      (unsigned long long)r->nchunks);
	} else {
		int rc = rcv_sync(r);
		uint32_t crc = 0;
		/* Chunks verified and written this run count by their CRCs
		 * (unless WCCL_STREAM_READBACK); the rest, verified by an
		 * earlier run, are read back. */
		for (uint64_t i = 0; !rc && i < r->nchunks; i++) {
			__atomic_store_n(&r->io_beat, wccl_now_ns(),
					 __ATOMIC_RELAXED);
			uint64_t off = i * r->chunk;
			size_t n =
			    r->size - off < r->chunk ? r->size - off : r->chunk;
			int known = (r->cknown[i >> 3] >> (i & 7)) & 1;
			earlier |= !known;
			if (!r->readback && known) {
				crc = wccl_crc32c_combine(crc, r->ccrc[i], n);
				continue;
			}
			for (size_t done = 0; done < n;) {
				ssize_t got = pread(r->fd, r->vbuf + done,
						    n - done,
						    (off_t)(off + done));
				if (got < 0 && errno == EINTR)
					continue;
				if (got <= 0) {
					rc = got < 0 ? -errno : WCCL_EIO;
					break;
				}
				done += (size_t)got;
			}
			if (!rc)
				crc = wccl_crc32c(crc, r->vbuf, n);
		}
		if (rc) {
			status = rc;
			textf(text, tl, "receiver %s: %s: %s", r->srv->host,
			      r->path, strerror(-rc));
		} else if (crc != job->m.crc && earlier) {
			/* A journal that vouches for bytes no longer there
			 * would fail every --resume: drop it (network
			 * thread, once this one is stopped). */
			status = WCCL_EIO;
			r->drop_journal = 1;
			textf(text, tl,
			      "receiver %s: %s: whole-file crc32c %08x, "
			      "sender has %08x; chunks kept from an earlier "
			      "run do not match, journal %s deleted: send "
			      "again",
			      r->srv->host, r->path, crc, job->m.crc, r->jpath);
		} else if (crc != job->m.crc) {
			status = WCCL_EIO;
			textf(text, tl,
			      "receiver %s: %s: whole-file crc32c %08x, "
			      "sender has %08x",
			      r->srv->host, r->path, crc, job->m.crc);
		} else {
			r->st.file_crc = crc;
			r->j.file_crc = crc;
			r->j.flags |= 1;
		}
	}
	job->result = status ? JOB_FIN_BAD : JOB_FIN_OK;
	job->status = status;
}

/* One job. 1 done, 0 nothing to do. */
static int rcv_io_step(struct rcv *r)
{
	uint32_t id;
	if (r->io_failed || stream_ring_pop(&r->to_io, &id))
		return 0;
	if (r->io_stall_ms) { /* test hook: a write that hangs */
		usleep((useconds_t)r->io_stall_ms * 1000u);
		r->io_stall_ms = 0;
	}
	__atomic_store_n(&r->io_beat, wccl_now_ns(), __ATOMIC_RELAXED);
	struct rcv_job *job = &r->jobs[id];
	if (id == JOB_FIN) {
		io_fin(r, job);
	} else {
		int ep = (int)id / STREAM_RX_PER_EP;
		int i = (int)id % STREAM_RX_PER_EP;
		io_data(r, job, rx_buf(r, ep, i) + SMSG_LEN);
		if (job->result == JOB_ERR)
			r->io_failed = 1;
	}
	__atomic_store_n(&r->io_beat, wccl_now_ns(), __ATOMIC_RELAXED);
	stream_ring_push(&r->from_io, id);
	return 1;
}

/* The periodic sync bounds what a crash loses. */
static void rcv_io_idle(struct rcv *r)
{
	if (!r->io_failed && r->jopen && r->j.dirty &&
	    wccl_now_ns() - r->last_sync_ns > r->sync_ns)
		rcv_sync(r);
}

static void *rcv_io_main(void *arg)
{
	struct rcv *r = arg;
	while (!__atomic_load_n(&r->io_stop, __ATOMIC_ACQUIRE)) {
		uint32_t seen = stream_waker_seen(&r->io_wake);
		if (!rcv_io_step(r)) {
			rcv_io_idle(r);
			stream_waker_wait(&r->io_wake, seen, 20);
		}
	}
	return NULL;
}

static int rcv_io_start(struct rcv *r)
{
	if (stream_ring_init(&r->to_io, NJOBS + 1) ||
	    stream_ring_init(&r->from_io, NJOBS + 1))
		return WCCL_ENOMEM;
	r->last_sync_ns = wccl_now_ns();
	r->io_inline = !wccl_param_int(WCCL_PARAM_STREAM_IO_THREAD);
	r->io_stall_ms = (int)wccl_param_int(WCCL_PARAM_STREAM_TEST_IO_STALL_MS);
	if (r->io_inline)
		return 0;
	int rc = pthread_create(&r->io, NULL, rcv_io_main, r);
	if (rc)
		return -rc;
	r->io_started = 1;
	return 0;
}

/* Stop the I/O thread; its rings stay (answers may wait in from_io). A
 * thread stuck in a system call is left behind (io_stuck). */
static void rcv_io_join(struct rcv *r)
{
	if (r->io_started) {
		__atomic_store_n(&r->io_stop, 1, __ATOMIC_RELEASE);
		stream_waker_kick(&r->io_wake);
		if (stream_io_join(r->io, 2000)) {
			r->io_stuck = 1;
			WCCL_WARN(WCCL_SUB_TRANSPORT,
				  "stream %s: the I/O thread is stuck in the "
				  "kernel (a hung disk?); left behind with its "
				  "memory",
				  r->path);
		}
		r->io_started = 0;
	}
}

static void rcv_io_stop(struct rcv *r)
{
	rcv_io_join(r);
	if (r->io_stuck)
		return;
	stream_ring_fini(&r->to_io);
	stream_ring_fini(&r->from_io);
}

static void rcv_io_submit(struct rcv *r, uint32_t id)
{
	if (!r->io_pending) /* a stall counts from the oldest job's hand-off */
		__atomic_store_n(&r->io_beat, wccl_now_ns(), __ATOMIC_RELAXED);
	stream_ring_push(&r->to_io, id);
	r->io_pending++;
	if (r->io_inline)
		rcv_io_step(r);
	else
		stream_waker_kick(&r->io_wake);
}

/* ---- network thread ----------------------------------------------- */

/* Bytes arrived so far over all data connections, as the kernel counts
 * them (partial chunks included), or 0 if a provider cannot say. Sent
 * with each ACK next to the arrival stamp: the sender's delivery rate
 * from them has no chunk granularity (a chunk held back by loss recovery
 * would count whole when it completes, though most of its bytes arrived
 * earlier: an estimate 18 % above the link in the VM). Out-of-order
 * bytes count when they arrive (WCCL_EP_ATTR_BYTES_ARRIVED) where the
 * provider can say so, for the same reason one level down: an in-order
 * count holds a lost segment's successors back until the retransmission
 * fills the hole. */
static uint64_t rcv_bytes(struct rcv *r)
{
	if (r->no_bytes_attr)
		return 0;
	uint64_t sum = 0;
	for (int i = 0; i < r->nep; i++) {
		uint64_t b;
		if (r->eps[i].state != 1)
			continue;
		int rc = wccl_endpoint_get_attr(r->eps[i].ep, r->bytes_attr,
						&b);
		if (rc && r->bytes_attr == WCCL_EP_ATTR_BYTES_ARRIVED) {
			r->bytes_attr = WCCL_EP_ATTR_BYTES_RECEIVED;
			return rcv_bytes(r);
		}
		if (rc) {
			r->no_bytes_attr = 1;
			return 0;
		}
		sum += b;
	}
	return sum;
}

/* A data chunk: check the header here, hand CRC + write to the I/O
 * thread; the buffer is posted again when it answers. */
static int rcv_data(struct rcv *r, int ep, int i, const struct smsg *m,
		    uint64_t plen, uint64_t now)
{
	if (m->sid != r->sid || m->index >= r->nchunks ||
	    m->offset != m->index * r->chunk || m->len != plen ||
	    plen != (r->size - m->offset < r->chunk ? r->size - m->offset
						    : r->chunk))
		return rcv_fail(r, WCCL_EPROTO, "sender %s: bad chunk header",
				wccl_endpoint_peer(r->eps[ep].ep));
	uint32_t id = (uint32_t)(ep * STREAM_RX_PER_EP + i);
	struct rcv_job *job = &r->jobs[id];
	job->m = *m;
	job->plen = plen;
	/* The sender's rate samples divide the byte count by the time
	 * between two stamps, so the stamp is when the count was read: the
	 * batch's time (@now) comes before up to 32 chunks' reads of every
	 * connection's TCP_INFO (ms under an emulator), and a count read
	 * after its stamp reads as a faster link. A read that took long
	 * (this thread preempted between two connections: 5 % of reads
	 * over 1 ms, some over 5, in the VM) has no one time: read again. */
	uint64_t t0, t1;
	int tries = 0;
	do {
		t0 = wccl_now_ns();
		job->recv_bytes = rcv_bytes(r);
		t1 = wccl_now_ns();
	} while (job->recv_bytes && t1 - t0 > RCV_STAMP_SPAN_NS &&
		 ++tries < 3);
	job->recv_ts = job->recv_bytes ? t0 / 2 + t1 / 2 : now;
	rcv_io_submit(r, id);
	return 0;
}

static int rcv_fin(struct rcv *r, const struct smsg *m, int ep, uint64_t now)
{
	struct rcv_job *job = &r->jobs[JOB_FIN];
	job->m = *m;
	job->m.aux2 = (uint64_t)ep; /* where to answer */
	job->recv_ts = now;
	rcv_io_submit(r, JOB_FIN);
	return 0;
}

/* Answers from the I/O thread: ACK / NAK (with how long we held the
 * chunk), the next receive, errors, the FIN verdict. */
static int rcv_io_drain(struct rcv *r)
{
	uint32_t id;
	while (!r->rc && !stream_ring_pop(&r->from_io, &id)) {
		struct rcv_job *job = &r->jobs[id];
		uint64_t now = wccl_now_ns();
		r->io_pending--;
		if (id == JOB_FIN) {
			int ep = (int)job->m.aux2;
			int status = job->result == JOB_FIN_OK ? 0 : job->status;
			/* The verdict is in and nothing follows FIN: stop the
			 * I/O thread, then finish the journal here. */
			if (!status || r->drop_journal) {
				rcv_io_join(r);
				stream_journal_close(&r->j);
				r->jopen = 0;
				unlink(r->jpath);
			}
			struct smsg a = {.magic = SMSG_MAGIC,
					 .type = SM_FIN_ACK,
					 .sid = r->sid,
					 .aux1 = (uint64_t)(int64_t)status};
			int rc = rcv_reply_big(r, ep, &a, r->io_text,
					       strlen(r->io_text) + 1);
			if (rc)
				return rcv_fail(r, rc, "fin ack: %s",
						wccl_strerror(rc));
			r->fin_sent = 1;
			r->pending_big = 1;
			if (status)
				return rcv_fail(r, status, "%s", r->io_text);
			r->done = 1;
			continue;
		}
		int ep = (int)id / STREAM_RX_PER_EP;
		int i = (int)id % STREAM_RX_PER_EP;
		if (job->result == JOB_ERR) {
			rcv_send_error(r, ep, job->status, r->io_text);
			return rcv_fail(r, job->status, "%s", r->io_text);
		}
		struct smsg a = {.magic = SMSG_MAGIC,
				 .type = job->result == JOB_NAK ? SM_NAK
								: SM_ACK,
				 .sid = r->sid,
				 .index = job->m.index,
				 .offset = job->recv_bytes,
				 .send_ts = job->m.send_ts,
				 .aux1 = job->recv_ts,
				 .aux2 = now - job->recv_ts};
		int rc = rcv_reply(r, ep, &a);
		if (rc)
			return rc;
		if (r->eps[ep].state == 1 && !r->fin_recv) {
			rc = wccl_post_recv(r->eps[ep].ep, rx_buf(r, ep, i),
					    dslot(r), r->dmr, rck(r, K_RX, ep, i));
			if (rc)
				return rcv_fail(r, rc, "post receive: %s",
						wccl_strerror(rc));
		}
	}
	return r->rc;
}

static int rcv_handle(struct rcv *r, const struct wccl_completion *wc,
		      uint64_t now)
{
	int kind = CK_KIND(wc->cookie), ep = CK_EP(wc->cookie);
	int idx = (int)(CK_IDX(wc->cookie) & 0xffffffffu);
	struct rcv_ep *e = &r->eps[ep];
	char why[128];
	if (CK_IDX(wc->cookie) >> 32 != e->gen || e->state == 6)
		return 0; /* an earlier occupant of the slot */
	if (wc->status) {
		if (e->state == 2)
			return 0;
		const char *le = wccl_endpoint_last_error(e->ep);
		if (!rcv_member(e) && !r->done) {
			/* a stray or turned-away connection went away */
			rcv_drop(r, ep, le[0] ? le : wccl_strerror(wc->status));
			return 0;
		}
		e->state = 2;
		if (r->done) /* the sender hung up after the verdict */
			return 0;
		return rcv_fail(r, wc->status, "sender %s: %s",
				wccl_endpoint_peer(e->ep),
				le[0] ? le : wccl_strerror(wc->status));
	}
	if (kind == K_TX_REJECT || e->state == 3)
		return 0; /* turned away: nothing of ours */
	if (kind == K_TX_CTRL) {
		e->tx_busy[idx] = 0;
		return rcv_flush_q(r, ep);
	}
	if (kind == K_TX_DATA) {
		r->big_busy = 0;
		r->pending_big = 0;
		return 0;
	}
	const uint8_t *b = kind != K_RX_FIRST ? rx_buf(r, ep, idx)
			   : idx	       ? probe_buf(r->srv, idx)
					       : hello_buf(r->srv, ep);
	if (e->state == 2)
		return 0; /* arrived before the failure we acted on */
	struct smsg m;
	if (smsg_get(b, wc->len, &m)) {
		if (!rcv_member(e)) {
			rcv_drop(r, ep, "malformed first message");
			return 0;
		}
		return rcv_fail(r, WCCL_EPROTO, "sender %s: malformed message",
				wccl_endpoint_peer(e->ep));
	}
	/* What each state may receive, before anything is touched: a new
	 * connection has no session buffers (HELLO / JOIN only), a session
	 * one no second HELLO or JOIN, and FIN / DATA only on a data one. */
	if (e->state == 0 && m.type != SM_HELLO && m.type != SM_JOIN) {
		textf(why, sizeof(why), "message type %u before hello or join",
		      m.type);
		rcv_drop(r, ep, why);
		return 0;
	}
	if (e->state != 0 &&
	    (m.type == SM_HELLO || m.type == SM_JOIN || m.sid != r->sid ||
	     (e->state != 1 && m.type != SM_PING)))
		return rcv_fail(r, WCCL_EPROTO,
				"sender %s: unexpected type %u (session %llx) "
				"on a joined connection",
				wccl_endpoint_peer(e->ep), m.type,
				(unsigned long long)m.sid);
	r->last_msg_ns = now;
	int rc = 0;
	switch (m.type) {
	case SM_HELLO:
		if (!r->t0)
			r->t0 = now;
		return rcv_hello(r, ep, &m, (const char *)b + SMSG_LEN,
				 wc->len - SMSG_LEN);
	case SM_JOIN: {
		struct smsg a = {
		    .magic = SMSG_MAGIC, .type = SM_JOIN_ACK, .sid = m.sid};
		if (r->have_hello && m.sid == r->sid && (m.flags & 2)) {
			/* The sender's path probe: pings only, as many in
			 * flight as there are receives (aux2). */
			e->state = 4;
			for (int i = 1; i <= STREAM_PROBE_RX; i++)
				if ((rc = rcv_post_probe(r, ep, i)))
					return rc;
			a.aux2 = STREAM_PROBE_RX;
			return rcv_reply(r, ep, &a);
		}
		if (!r->have_hello || m.sid != r->sid ||
		    r->ndata >= r->max_streams)
			return rcv_reject(r, ep,
					  "join without a matching hello");
		if ((rc = rcv_post_data(r, ep)))
			return rcv_fail(r, rc, "post receive: %s",
					wccl_strerror(rc));
		return rcv_reply(r, ep, &a);
	}
	case SM_DATA:
		/* After FIN the file is being checked: a late chunk must not
		 * reach the I/O thread, nor its buffer be posted again. */
		if (r->fin_recv)
			return 0;
		/* The buffer is the I/O thread's until it answers. */
		return rcv_data(r, ep, idx, &m, wc->len - SMSG_LEN, now);
	case SM_PING: {
		struct smsg a = {.magic = SMSG_MAGIC,
				 .type = SM_PONG,
				 .sid = r->sid,
				 .send_ts = m.send_ts};
		rc = rcv_reply(r, ep, &a);
		break;
	}
	case SM_FIN:
		/* One FIN: a second would overwrite the job being checked. */
		if (r->fin_recv)
			return rcv_fail(r, WCCL_EPROTO, "sender %s: second fin",
					wccl_endpoint_peer(e->ep));
		r->fin_recv = 1;
		rc = rcv_fin(r, &m, ep, now);
		break;
	default:
		return rcv_fail(r, WCCL_EPROTO, "sender %s: unexpected type %u",
				wccl_endpoint_peer(e->ep), m.type);
	}
	if (rc)
		return rc;
	if (e->state == 4 && !r->fin_sent && idx) {
		if ((rc = rcv_post_probe(r, ep, idx)))
			return rc;
	} else if (e->state == 1 && !r->fin_sent) {
		rc = wccl_post_recv(e->ep, rx_buf(r, ep, idx), dslot(r), r->dmr,
				    rck(r, K_RX, ep, idx));
		if (rc)
			return rcv_fail(r, rc, "post receive: %s",
					wccl_strerror(rc));
	}
	return 0;
}

#define RCV_ACCEPT_POLL_NS 5000000ull

/* Accepted endpoints finish their handshake here, polled each pass: a
 * connection that never completes one (a port scan, a bare TCP connect)
 * must not stall the session, and is closed at its deadline. */
static void rcv_handshake(struct rcv *r)
{
	uint64_t now = wccl_now_ns();
	for (int i = 0; i < r->nep; i++) {
		struct rcv_ep *e = &r->eps[i];
		if (e->state != 5)
			continue;
		int rc = wccl_endpoint_established(e->ep);
		if (rc == WCCL_EAGAIN && now < e->hs_deadline)
			continue;
		if (rc == WCCL_EAGAIN)
			rc = WCCL_ETIMEDOUT;
		e->state = 0;
		if (!rc)
			rc = wccl_post_recv(e->ep, hello_buf(r->srv, i),
					    STREAM_CTRL_BUF, r->srv->hmr,
					    rck(r, K_RX_FIRST, i, 0));
		if (rc) {
			const char *le = wccl_endpoint_last_error(e->ep);
			rcv_drop(r, i, le[0] ? le : wccl_strerror(rc));
		}
	}
}

static int rcv_accept(struct rcv *r)
{
	int hs_ms = (int)wccl_param_int(WCCL_PARAM_CONNECT_TIMEOUT_MS);
	for (;;) {
		int i;
		for (i = 0; i < r->nep && r->eps[i].state != 6; i++)
			;
		if (i == STREAM_MAX_EPS)
			break; /* the rest wait in the backlog */
		struct wccl_endpoint *ep;
		int rc = wccl_accept(r->srv->l, r->srv->cq, &ep);
		if (rc == WCCL_EAGAIN)
			break;
		if (rc)
			return rc;
		if (i == r->nep)
			r->nep++;
		uint16_t gen = r->eps[i].gen;
		memset(&r->eps[i], 0, sizeof(r->eps[i]));
		r->eps[i].gen = gen;
		r->eps[i].ep = ep;
		r->eps[i].state = 5;
		r->eps[i].hs_deadline = wccl_deadline_ns(hs_ms);
	}
	rcv_handshake(r);
	return 0;
}

int wccl_stream_server_open(const char *provider, const char *bind,
			    const char *dir, struct wccl_stream_server **out,
			    char *addr_out, size_t addrlen)
{
	struct stat sb;
	if (stat(dir, &sb))
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return WCCL_EINVAL;
	struct wccl_stream_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return WCCL_ENOMEM;
	snprintf(srv->dir, sizeof(srv->dir), "%s", dir);
	srv->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srv->dirfd < 0) {
		int rc = -errno;
		free(srv);
		return rc;
	}
	int rc = wccl_context_open(provider ? provider : "uring", &srv->ctx);
	if (!rc)
		rc = wccl_cq_create(srv->ctx, 0, &srv->cq);
	if (!rc)
		rc = wccl_listen(srv->ctx, bind, &srv->l);
	if (!rc)
		rc = wccl_listener_addr(srv->l, addr_out, addrlen);
	/* A hello buffer per endpoint, then the probe's receives. */
	size_t hlen =
	    (size_t)(STREAM_MAX_EPS + STREAM_PROBE_RX) * STREAM_CTRL_BUF;
	if (!rc)
		rc = wccl_mem_alloc(hlen, (void **)&srv->hreg);
	if (!rc)
		rc = wccl_mr_register(srv->ctx, srv->hreg, hlen,
				      WCCL_ACCESS_LOCAL, &srv->hmr);
	if (rc) {
		wccl_stream_server_close(srv);
		return rc;
	}
	/* Messages name this receiver by host name and address. */
	char hn[128];
	if (gethostname(hn, sizeof(hn)))
		snprintf(hn, sizeof(hn), "?");
	hn[sizeof(hn) - 1] = 0;
	textf(srv->host, sizeof(srv->host), "%s (%s)", hn, addr_out);
	*out = srv;
	return 0;
}

void wccl_stream_server_close(struct wccl_stream_server *srv)
{
	if (!srv)
		return;
	if (srv->hmr)
		wccl_mr_deregister(srv->hmr);
	if (srv->hreg)
		wccl_mem_free(srv->hreg);
	if (srv->l)
		wccl_listener_close(srv->l);
	if (srv->cq)
		wccl_cq_destroy(srv->cq);
	if (srv->ctx)
		wccl_context_close(srv->ctx);
	if (srv->dirfd >= 0)
		close(srv->dirfd);
	free(srv);
}

int wccl_stream_server_run_one(struct wccl_stream_server *srv,
			       int accept_timeout_ms,
			       struct wccl_stream_stats *st, char *err,
			       size_t errlen)
{
	struct rcv *r = calloc(1, sizeof(*r));
	if (!r)
		return WCCL_ENOMEM;
	r->srv = srv;
	r->fd = -1;
	r->bytes_attr = WCCL_EP_ATTR_BYTES_ARRIVED;
	r->err = err;
	r->errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	int timeout = (int)wccl_param_int(WCCL_PARAM_TIMEOUT_MS);
	r->sync_ns =
	    (uint64_t)wccl_param_int(WCCL_PARAM_STREAM_JOURNAL_SYNC_MS) *
	    1000000ull;
	struct wccl_completion wc[32];
	uint64_t dl = accept_timeout_ms >= 0
			  ? wccl_deadline_ns(accept_timeout_ms)
			  : UINT64_MAX;
	while (!r->nep) {
		int rc = rcv_accept(r);
		if (rc) {
			rcv_fail(r, rc, "accept: %s", wccl_strerror(rc));
			goto out;
		}
		if (r->nep)
			break;
		if (wccl_now_ns() > dl) {
			rcv_fail(r, WCCL_ETIMEDOUT, "no sender arrived");
			goto out;
		}
		wccl_cq_poll(srv->cq, wc, 32);
		usleep(1000);
	}
	r->last_msg_ns = r->last_sync_ns = wccl_now_ns();
	uint64_t last_accept_ns = 0;
	while (!r->rc && !(r->done && !r->pending_big)) {
		/* Joins (the other streams, a reconnect) can wait a few ms:
		 * an accept on an empty backlog allocates and frees a socket
		 * and a file, and this loop passes ~1000 times a second. */
		uint64_t t = wccl_now_ns();
		if (t - last_accept_ns >= RCV_ACCEPT_POLL_NS) {
			last_accept_ns = t;
			if (rcv_accept(r)) {
				rcv_fail(r, WCCL_EIO, "accept failed");
				break;
			}
		}
		/* Answers from the I/O thread are polled: wait briefly
		 * while it has work. */
		int n = stream_cq_wait(srv->cq, wc, 32, r->io_pending ? 1 : 20);
		if (n == WCCL_ETIMEDOUT)
			n = 0;
		if (n < 0) {
			rcv_fail(r, n, "completion queue: %s",
				 wccl_strerror(n));
			break;
		}
		uint64_t now = wccl_now_ns();
		for (int i = 0; i < n && !r->rc; i++)
			rcv_handle(r, &wc[i], now);
		if (!r->rc && (r->io_started || r->io_inline)) {
			if (r->io_inline)
				rcv_io_idle(r);
			rcv_io_drain(r);
		}
		if (!r->rc && !r->io_pending &&
		    now - r->last_msg_ns > (uint64_t)timeout * 1000000ull)
			rcv_fail(r, WCCL_ETIMEDOUT, "sender silent for %d ms",
				 timeout);
		/* The sender waits on us meanwhile: the disk has the same
		 * deadline. */
		uint64_t beat = __atomic_load_n(&r->io_beat, __ATOMIC_RELAXED);
		if (!r->rc && r->io_pending && now > beat &&
		    now - beat > (uint64_t)timeout * 1000000ull) {
			char text[STREAM_CTRL_MAX];
			textf(text, sizeof(text),
			      "receiver %s: writing %s: the disk made no "
			      "progress for %d ms",
			      srv->host, r->path, timeout);
			for (int i = 0; i < r->nep; i++)
				if (r->eps[i].state == 1) {
					rcv_send_error(r, i, WCCL_ETIMEDOUT,
						       text);
					break;
				}
			rcv_fail(r, WCCL_ETIMEDOUT,
				 "writing %s: the disk made no progress for "
				 "%d ms",
				 r->path, timeout);
		}
	}
	/* Let an error / verdict reach the sender (bounded), keep what was
	 * verified, then drop the connections. */
	for (uint64_t d = wccl_deadline_ns(2000);
	     r->pending_big && wccl_now_ns() < d;) {
		int n = stream_cq_wait(srv->cq, wc, 32, 20);
		for (int i = 0; i < n; i++)
			if (CK_KIND(wc[i].cookie) == K_TX_DATA)
				r->pending_big = 0;
	}
out:
	rcv_io_stop(r);
	if (r->io_stuck) {
		/* The stuck thread holds r, its buffers, the file and the
		 * journal: close the connections only, leave the rest. */
		for (int i = 0; i < r->nep; i++)
			if (r->eps[i].ep)
				wccl_endpoint_close(r->eps[i].ep);
		while (wccl_cq_poll(srv->cq, wc, 32) > 0)
			;
		if (st)
			*st = r->st;
		return r->rc;
	}
	if (r->jopen) {
		rcv_sync(r);
		stream_journal_close(&r->j);
	}
	if (r->fd >= 0)
		close(r->fd);
	for (int i = 0; i < r->nep; i++)
		if (r->eps[i].ep)
			wccl_endpoint_close(r->eps[i].ep);
	/* Drain flushed completions before the buffers go. */
	while (wccl_cq_poll(srv->cq, wc, 32) > 0)
		;
	if (r->dmr)
		wccl_mr_deregister(r->dmr);
	if (r->dreg)
		wccl_mem_free(r->dreg);
	free(r->vbuf);
	free(r->ccrc);
	free(r->cknown);
	if (r->t0)
		r->st.seconds = (double)(wccl_now_ns() - r->t0) / 1e9;
	if (r->st.seconds > 0)
		r->st.goodput_bps =
		    (double)r->st.bytes_delivered * 8 / r->st.seconds;
	r->st.done = r->done && !r->rc;
	if (st)
		*st = r->st;
	int rc = r->rc;
	free(r);
	return rc;
}
