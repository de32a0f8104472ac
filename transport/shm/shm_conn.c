/* SPDX-License-Identifier: MIT */
/*
 * Listen, accept, connect and the handshake. A listener is an abstract
 * AF_UNIX SOCK_SEQPACKET socket (record boundaries, so a hello is read
 * whole). The connector creates the segment with both rings and sends it
 * with its hello and doorbell (SCM_RIGHTS); the acceptor answers with its
 * hello and doorbell. The socket then stays open only as a liveness wire.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/params.h"
#include "shm.h"

struct shm_hello {
	uint64_t magic;
	uint32_t version;
	int32_t pid;
	uint64_t ring_bytes; /* data bytes of each ring (connector decides) */
	uint64_t probe_addr; /* a word holding SHM_MAGIC, to test CMA */
	uint32_t qdepth;
	uint32_t inline_max;
	uint32_t cma; /* reply: the acceptor can read the connector */
	uint32_t resv;
};

static _Atomic uint32_t name_counter;

static socklen_t shm_sockaddr(struct sockaddr_un *sa, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	size_t n = strlen(name); /* callers bound it to < 108 */
	if (n > sizeof(sa->sun_path) - 1)
		n = sizeof(sa->sun_path) - 1;
	memcpy(sa->sun_path + 1, name, n); /* sun_path[0] = 0: abstract */
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/*
 * Segment layout: data rings connector->acceptor and back, then ACK rings
 * the same way, then the connector's copy line and the acceptor's. ACKs
 * get rings of their own so that a data ring stalled on a streamed send
 * with no receive posted yet cannot hold them up.
 */
static size_t shm_seg_bytes(uint64_t rb)
{
	return 2 * shm_ring_footprint(rb) +
	       2 * shm_ring_footprint(SHM_ACK_RING) +
	       2 * sizeof(struct shm_copy_line);
}

static void shm_seg_attach(struct shm_ep *ep, uint64_t rb, int connector)
{
	uint8_t *d0 = ep->seg, *d1 = d0 + shm_ring_footprint(rb);
	uint8_t *a0 = d1 + shm_ring_footprint(rb);
	uint8_t *a1 = a0 + shm_ring_footprint(SHM_ACK_RING);
	shm_ring_attach(&ep->tx, connector ? d0 : d1, rb);
	shm_ring_attach(&ep->rx, connector ? d1 : d0, rb);
	shm_ring_attach(&ep->atx, connector ? a0 : a1, SHM_ACK_RING);
	shm_ring_attach(&ep->arx, connector ? a1 : a0, SHM_ACK_RING);
	struct shm_copy_line *cl = (struct shm_copy_line *)(
		a1 + shm_ring_footprint(SHM_ACK_RING));
	ep->my_copy = connector ? &cl[0] : &cl[1];
	ep->peer_copy = connector ? &cl[1] : &cl[0];
}

/* ---- listener --------------------------------------------------------- */

int shm_listen(struct wccl_context *ctx, const char *bind_addr,
	       struct wccl_listener **out)
{
	(void)ctx;
	(void)bind_addr; /* names are always ours to pick */
	struct shm_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return WCCL_ENOMEM;
	l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (l->fd < 0) {
		int rc = -errno;
		free(l);
		return rc;
	}
	snprintf(l->name, sizeof(l->name), "wccl-%d-%u", (int)getpid(),
		 atomic_fetch_add(&name_counter, 1));
	struct sockaddr_un sa;
	socklen_t sl = shm_sockaddr(&sa, l->name);
	if (bind(l->fd, (struct sockaddr *)&sa, sl) < 0 ||
	    listen(l->fd, 128) < 0) {
		int rc = -errno;
		WCCL_WARN(WCCL_SUB_SHM, "cannot listen on abstract socket %s: %s",
			  l->name, wccl_strerror(rc));
		close(l->fd);
		free(l);
		return rc;
	}
	WCCL_INFO(WCCL_SUB_SHM, "listening on shm:%s:%s", shm_hostid(),
		  l->name);
	*out = &l->base;
	return 0;
}

int shm_listener_addr(const struct wccl_listener *base, char *buf, size_t len)
{
	const struct shm_listener *l =
		container_of(base, const struct shm_listener, base);
	int n = snprintf(buf, len, "%s:%s", shm_hostid(), l->name);
	return n < 0 || (size_t)n >= len ? WCCL_ENOSPC : 0;
}

void shm_listener_close(struct wccl_listener *base)
{
	struct shm_listener *l = container_of(base, struct shm_listener, base);
	close(l->fd);
	free(l);
}

/* ---- endpoint lifetime ------------------------------------------------ */

static struct shm_ep *shm_ep_new(struct shm_ctx *c, struct wccl_cq *cq)
{
	struct shm_ep *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->base.ctx = &c->base;
	ep->base.cq = cq;
	ep->ctx = c;
	ep->sock = -1;
	ep->pidfd = -1;
	ep->peer_reads_me = -1;
	ep->deadline_ns = wccl_deadline_ns(
		wccl_param_int(WCCL_PARAM_CONNECT_TIMEOUT_MS));
	ep->next = c->eps;
	if (c->eps)
		c->eps->prev = ep;
	c->eps = ep;
	c->n_eps++;
	c->n_pending++;
	return ep;
}

static void shm_ep_set_up(struct shm_ep *ep)
{
	ep->state = SHM_EP_UP;
	ep->ctx->n_pending--;
}

/* Fail during the handshake: no ops can be in flight yet. */
static int shm_hs_fail(struct shm_ep *ep, int err, const char *what)
{
	if (ep->state != SHM_EP_FAILED) {
		wccl_ep_fail(&ep->base, WCCL_SUB_SHM, err, "%s", what);
		ep->ctx->n_pending--;
		ep->state = SHM_EP_FAILED;
		ep->err = err;
	}
	return err;
}

void shm_endpoint_close(struct wccl_endpoint *base)
{
	struct shm_ep *ep = shm_ep_of(base);
	struct shm_ctx *c = ep->ctx;
	if (ep->state == SHM_EP_UP)
		shm_ep_abort(ep, WCCL_ECANCELED);
	else if (ep->state != SHM_EP_FAILED)
		c->n_pending--;
	if (ep->prev)
		ep->prev->next = ep->next;
	else
		c->eps = ep->next;
	if (ep->next)
		ep->next->prev = ep->prev;
	c->n_eps--;
	if (ep->my_copy) {
		/* The peer may be copying into our memory: once we are gone,
		 * a deregistration would not wait for it (shm_copy_line). */
		atomic_store_explicit(&ep->my_copy->closed, 1,
				      memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		shm_wait_copy(ep, 0);
	}
	if (ep->sock >= 0)
		close(ep->sock);
	if (ep->seg)
		munmap(ep->seg, ep->seg_len);
	shm_doorbell_unmap(ep->peer_db);
	shm_mrt_unmap(ep->peer_mrt);
	shm_maps_release(ep);
	if (ep->pidfd >= 0)
		close(ep->pidfd);
	shm_ep_queues_free(ep);
	free(ep);
}

int shm_peer_hung_up(struct shm_ep *ep)
{
	struct pollfd p = { .fd = ep->sock, .events = POLLIN | POLLRDHUP };
	return poll(&p, 1, 0) > 0 &&
	       (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

int shm_peer_exited(struct shm_ep *ep)
{
	/* A child that inherited the socket keeps it open: ask the pidfd. */
	struct pollfd p = { .fd = ep->pidfd, .events = POLLIN };
	return ep->pidfd >= 0 && poll(&p, 1, 0) > 0;
}

/* ---- hello exchange --------------------------------------------------- */

static int shm_send_hello(int sock, const struct shm_hello *h, const int *fds,
			  int nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = { .iov_base = (void *)h, .iov_len = sizeof(*h) };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = CMSG_SPACE(nfds * sizeof(int)) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return n == sizeof(*h) ? 0 : WCCL_EPROTO;
}

/* Returns fds received (0..2), -WCCL_EAGAIN, or a failure. */
static int shm_recv_hello(int sock, struct shm_hello *h, int fds[2])
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = h, .iov_len = sizeof(*h) };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? WCCL_EAGAIN : -errno;
	if (n == 0)
		return WCCL_ECONNRESET;
	int nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
	     cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (nfds < 2)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	/* The pid we read from and open is the socket's peer as the kernel
	 * saw it connect, not whatever the hello claims: else a peer could
	 * point our copies at a third process. (0 when the peer's pid
	 * namespace hides it from ours: then no copies from it at all.) */
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl))
		n = -1;
	else
		h->pid = cred.pid;
	if (n != sizeof(*h) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    h->magic != SHM_MAGIC) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return WCCL_EPROTO;
	}
	return nfds;
}

static void shm_hello_fill(struct shm_ep *ep, struct shm_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = SHM_MAGIC;
	h->version = SHM_VERSION;
	h->pid = ep->ctx->pid;
	h->ring_bytes = ep->ctx->ring_bytes;
	h->probe_addr = (uint64_t)(uintptr_t)&shm_probe_word;
	h->qdepth = ep->ctx->qdepth;
	h->inline_max = ep->ctx->inline_max;
}

/* Common to both sides once the peer's hello is in: limits and queues. */
static int shm_adopt_peer(struct shm_ep *ep, const struct shm_hello *h,
			  int db_fd)
{
	int rc = shm_doorbell_map(db_fd, &ep->peer_db);
	if (!rc && shm_mrt_map(db_fd, 0, &ep->peer_mrt))
		ep->peer_mrt = NULL; /* no direct writes into it */
	close(db_fd);
	if (rc)
		return shm_hs_fail(ep, rc, "cannot map the peer's doorbell");
	ep->peer_pid = h->pid;
	ep->inline_max = h->inline_max < ep->ctx->inline_max
				 ? h->inline_max
				 : ep->ctx->inline_max;
	uint64_t fm = ep->tx.size / 4 - sizeof(struct shm_msg);
	ep->frag_max = (uint32_t)(fm < (256u << 10) ? fm : (256u << 10));
	ep->i_read_peer = ep->ctx->cma && shm_cma_probe(h->pid, h->probe_addr);
	/* Direct copies need what CMA needs (ptrace access to the peer). */
	if (ep->i_read_peer)
		ep->pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
	ep->direct = ep->pidfd >= 0;
	static _Atomic int told;
	if (ep->ctx->cma && !ep->i_read_peer && !atomic_exchange(&told, 1))
		WCCL_INFO(WCCL_SUB_SHM,
			  "process_vm_readv of pid %d refused (ptrace permission, "
			  "e.g. yama ptrace_scope): large payloads from such peers "
			  "stream through the ring (two copies)",
			  (int)h->pid);
	if (h->qdepth == 0 || h->qdepth > (1u << 20))
		return shm_hs_fail(ep, WCCL_EPROTO, "peer's queue depth is absurd");
	if (shm_ep_queues_alloc(ep, h->qdepth))
		return shm_hs_fail(ep, WCCL_ENOMEM,
				   "cannot allocate endpoint queues");
	return 0;
}

static void shm_set_peer(struct shm_ep *ep, const char *detail)
{
	snprintf(ep->base.peer, sizeof(ep->base.peer), "shm:%s", detail);
}

/* ---- connector -------------------------------------------------------- */

int shm_connect(struct wccl_context *ctx, const char *addr,
		struct wccl_cq *cq, struct wccl_endpoint **out)
{
	struct shm_ctx *c = shm_ctx_of(ctx);
	const char *colon = strchr(addr, ':');
	if (!colon || colon - addr != 16 || !colon[1] ||
	    strlen(colon + 1) > 100) {
		WCCL_WARN(WCCL_SUB_SHM,
			  "bad shm address '%s' (want <host-id>:<name>)", addr);
		return WCCL_EINVAL;
	}
	if (strncmp(addr, shm_hostid(), 16) != 0) {
		WCCL_WARN(WCCL_SUB_SHM,
			  "shm:%s is on another host or namespace (we are %s)",
			  addr, shm_hostid());
		return WCCL_EHOSTUNREACH;
	}
	struct shm_ep *ep = shm_ep_new(c, cq);
	if (!ep)
		return WCCL_ENOMEM;
	shm_set_peer(ep, addr);
	ep->state = SHM_EP_CONNECTING;
	*out = &ep->base;

	ep->seg_len = shm_seg_bytes(c->ring_bytes);
	int fd = shm_memfd_sealed("wccl-shm-rings", ep->seg_len);
	if (fd < 0) {
		shm_hs_fail(ep, fd, "cannot create the ring segment");
		return 0;
	}
	ep->seg = mmap(NULL, ep->seg_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	if (ep->seg == MAP_FAILED) {
		ep->seg = NULL;
		close(fd);
		shm_hs_fail(ep, -errno, "cannot map the ring segment");
		return 0;
	}
	/* Fresh memfd pages are zero: every ring index starts at 0. */
	shm_seg_attach(ep, c->ring_bytes, 1);

	ep->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
			  0);
	if (ep->sock < 0) {
		close(fd);
		shm_hs_fail(ep, -errno, "cannot create a unix socket");
		return 0;
	}
	struct sockaddr_un sa;
	socklen_t sl = shm_sockaddr(&sa, colon + 1);
	int rc = 0;
	/* A full backlog says EAGAIN; retry briefly, this is a local call. */
	for (int i = 0; i < 1000; i++) {
		rc = connect(ep->sock, (struct sockaddr *)&sa, sl) < 0 ? -errno
								       : 0;
		if (rc != WCCL_EAGAIN || wccl_now_ns() > ep->deadline_ns)
			break;
		usleep(100);
	}
	if (rc) {
		close(fd);
		shm_hs_fail(ep, rc == WCCL_ENOENT ? WCCL_ECONNREFUSED : rc,
			    rc == WCCL_ECONNREFUSED || rc == WCCL_ENOENT
				    ? "nobody listens on that name"
				    : "cannot connect the unix socket");
		return 0;
	}
	struct shm_hello h;
	shm_hello_fill(ep, &h);
	int fds[2] = { fd, c->db_fd };
	rc = shm_send_hello(ep->sock, &h, fds, 2);
	close(fd); /* the mapping and the peer keep the segment alive */
	if (rc)
		shm_hs_fail(ep, rc, "cannot send the hello");
	return 0;
}

static int shm_connector_step(struct shm_ep *ep)
{
	struct shm_hello h;
	int fds[2];
	int n = shm_recv_hello(ep->sock, &h, fds);
	if (n == WCCL_EAGAIN)
		return n;
	if (n < 0)
		return shm_hs_fail(ep, n == WCCL_ECONNRESET ? WCCL_ECONNREFUSED
							    : n,
				   "handshake: bad or missing reply");
	if (n != 1) {
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return shm_hs_fail(ep, WCCL_EPROTO,
				   "handshake: reply without a doorbell");
	}
	if (h.version != SHM_VERSION) {
		close(fds[0]);
		return shm_hs_fail(ep, WCCL_EPROTONOSUPPORT,
				   "handshake: peer speaks another version");
	}
	int rc = shm_adopt_peer(ep, &h, fds[0]);
	if (rc)
		return rc;
	ep->peer_reads_me = h.cma ? 1 : 0;
	/* Tell the acceptor whether we can read it: first message in the
	 * ring, so it precedes anything that depends on it. */
	struct shm_msg *m = shm_ring_reserve(&ep->tx, SHM_LINE);
	if (!m) /* cannot happen: the ring is fresh */
		return shm_hs_fail(ep, WCCL_EINTERNAL, "fresh ring is full");
	memset(m, 0, sizeof(*m));
	m->size = SHM_LINE;
	m->type = SHM_MSG_CMA;
	m->status = ep->i_read_peer;
	shm_ring_commit(&ep->tx, SHM_LINE);
	ep->rung = 1;
	shm_ep_set_up(ep);
	WCCL_INFO(WCCL_SUB_SHM, "connected to %s (pid %d), large payloads %s",
		  ep->base.peer, (int)ep->peer_pid,
		  ep->peer_reads_me ? "by CMA" : "streamed");
	return 0;
}

/* ---- acceptor --------------------------------------------------------- */

int shm_accept(struct wccl_listener *lbase, struct wccl_cq *cq,
	       struct wccl_endpoint **out)
{
	struct shm_listener *l = container_of(lbase, struct shm_listener, base);
	int s = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0)
		return errno == EAGAIN || errno == EINTR ? WCCL_EAGAIN : -errno;
	struct shm_ep *ep = shm_ep_new(shm_ctx_of(lbase->ctx), cq);
	if (!ep) {
		close(s);
		return WCCL_ENOMEM;
	}
	ep->sock = s;
	ep->state = SHM_EP_ACCEPTING;
	snprintf(ep->base.peer, sizeof(ep->base.peer), "shm:%s:%s/peer",
		 shm_hostid(), l->name);
	*out = &ep->base;
	shm_handshake(ep);
	return 0;
}

static int shm_acceptor_step(struct shm_ep *ep)
{
	struct shm_hello h;
	int fds[2];
	int n = shm_recv_hello(ep->sock, &h, fds);
	if (n == WCCL_EAGAIN)
		return n;
	if (n < 0)
		return shm_hs_fail(ep, n, "handshake: bad hello");
	if (n != 2) {
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return shm_hs_fail(ep, WCCL_EPROTO,
				   "handshake: hello without segment/doorbell");
	}
	snprintf(ep->base.peer, sizeof(ep->base.peer), "shm:%s:pid-%d",
		 shm_hostid(), (int)h.pid);
	struct stat st;
	uint64_t rb = h.ring_bytes;
	/* Ours are at most SHM_RING_MAX (shm_ring_round); a larger size
	 * would overflow the segment's arithmetic. The segment must be
	 * sealed: shrunk under our mapping, it would fault us. */
	if (h.version != SHM_VERSION || rb < 65536 || rb > SHM_RING_MAX ||
	    (rb & (rb - 1)) || fstat(fds[0], &st) < 0 ||
	    (uint64_t)st.st_size != shm_seg_bytes(rb) ||
	    shm_memfd_check(fds[0], shm_seg_bytes(rb))) {
		close(fds[0]);
		close(fds[1]);
		return shm_hs_fail(ep,
				   h.version != SHM_VERSION
					   ? WCCL_EPROTONOSUPPORT
					   : WCCL_EPROTO,
				   "handshake: unusable hello or segment");
	}
	ep->seg_len = (size_t)st.st_size;
	ep->seg = mmap(NULL, ep->seg_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fds[0], 0);
	close(fds[0]);
	if (ep->seg == MAP_FAILED) {
		ep->seg = NULL;
		close(fds[1]);
		return shm_hs_fail(ep, WCCL_ENOMEM, "cannot map the segment");
	}
	shm_seg_attach(ep, rb, 0);
	int rc = shm_adopt_peer(ep, &h, fds[1]);
	if (rc)
		return rc;
	struct shm_hello r;
	shm_hello_fill(ep, &r);
	r.ring_bytes = rb;
	r.cma = (uint32_t)ep->i_read_peer;
	rc = shm_send_hello(ep->sock, &r, &ep->ctx->db_fd, 1);
	if (rc)
		return shm_hs_fail(ep, rc, "handshake: cannot reply");
	shm_ep_set_up(ep);
	WCCL_INFO(WCCL_SUB_SHM, "accepted %s", ep->base.peer);
	return 0;
}

int shm_handshake(struct shm_ep *ep)
{
	int rc;
	switch (ep->state) {
	case SHM_EP_UP:
		return 0;
	case SHM_EP_FAILED:
		return ep->err;
	case SHM_EP_CONNECTING:
		rc = shm_connector_step(ep);
		break;
	default:
		rc = shm_acceptor_step(ep);
		break;
	}
	if (rc == WCCL_EAGAIN && wccl_now_ns() > ep->deadline_ns)
		rc = shm_hs_fail(ep, WCCL_ETIMEDOUT,
				 "handshake not finished in time");
	return rc;
}

int shm_established(struct wccl_endpoint *base)
{
	return shm_handshake(shm_ep_of(base));
}
