/* SPDX-License-Identifier: MIT */
/*
 * The shm provider against a peer that misbehaves, or against traffic
 * that once confused it, in one process: both ends are contexts here, so
 * the test can reach into the peer's ring or hand-craft its hello.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/params.h"
#include "transport/shm/shm.h"
#include "wccl/transport.h"

struct pair {
	struct wccl_context *ca, *cb;
	struct wccl_cq *qa, *qb;
	struct wccl_endpoint *ea, *eb;
	struct wccl_listener *l;
};

static void pair_open(struct pair *p)
{
	assert_int_equal(wccl_context_open("shm", &p->ca), 0);
	assert_int_equal(wccl_context_open("shm", &p->cb), 0);
	assert_int_equal(wccl_cq_create(p->ca, 0, &p->qa), 0);
	assert_int_equal(wccl_cq_create(p->cb, 0, &p->qb), 0);
	assert_int_equal(wccl_listen(p->cb, NULL, &p->l), 0);
	char addr[WCCL_ADDR_MAX];
	assert_int_equal(wccl_listener_addr(p->l, addr, sizeof(addr)), 0);
	assert_int_equal(wccl_connect(p->ca, addr, p->qa, &p->ea), 0);
	int rc;
	while ((rc = wccl_accept(p->l, p->qb, &p->eb)) == WCCL_EAGAIN)
		wccl_endpoint_established(p->ea);
	assert_int_equal(rc, 0);
	for (int i = 0; i < 20000; i++) {
		int a = wccl_endpoint_established(p->ea);
		int b = wccl_endpoint_established(p->eb);
		if (!a && !b)
			return;
		assert_true(a == 0 || a == WCCL_EAGAIN);
		assert_true(b == 0 || b == WCCL_EAGAIN);
		usleep(100);
	}
	fail_msg("the pair never connected");
}

static void pair_close(struct pair *p)
{
	wccl_endpoint_close(p->ea);
	wccl_endpoint_close(p->eb);
	wccl_listener_close(p->l);
	wccl_cq_destroy(p->qa);
	wccl_cq_destroy(p->qb);
	wccl_context_close(p->ca);
	wccl_context_close(p->cb);
}

/* Poll both CQs @rounds times; completions of @q with @cookie counted
 * into *@n (status must be 0). */
static void pump(struct pair *p, int rounds, uint64_t cookie, int *n)
{
	struct wccl_completion wc[16];
	for (int i = 0; i < rounds; i++) {
		wccl_cq_poll(p->qa, wc, 16);
		int k = wccl_cq_poll(p->qb, wc, 16);
		for (int j = 0; j < k; j++) {
			if (wc[j].cookie != cookie)
				continue;
			assert_int_equal(wc[j].status, 0);
			(*n)++;
		}
	}
}

/* @len bytes at @buf registered at the pair's target for remote writes;
 * their key in *@rk. */
static struct wccl_mr *writable(struct pair *p, void *buf, size_t len,
				struct wccl_rkey *rk)
{
	struct wccl_mr *mr;
	assert_int_equal(wccl_mr_register(p->cb, buf, len,
					  WCCL_ACCESS_LOCAL |
						  WCCL_ACCESS_REMOTE_WRITE,
					  &mr),
			 0);
	assert_int_equal(wccl_mr_rkey(mr, rk), 0);
	return mr;
}

/* Both copies by process_vm_readv, in slices, or nothing to test. */
static int cma_pair(struct pair *p)
{
	pair_open(p);
	int n = 0;
	pump(p, 100, 0, &n); /* the CMA verdicts cross */
	struct shm_ep *b = (struct shm_ep *)p->eb;
	if (!b->i_read_peer) {
		pair_close(p);
		return 0;
	}
	shm_cma_chunk = 64u << 10;
	return 1;
}

/*
 * A SEND that found no receive waits in the unexpected queue while a
 * WRITE at the ring's head is copied in slices: each has its own count of
 * bytes copied (one count for both put the SEND's bytes at the WRITE's
 * offset, 64 KiB past a 16 KiB receive).
 */
static void unexpected_send_during_sliced_write(void **state)
{
	(void)state;
	struct pair p;
	if (!cma_pair(&p))
		skip();
	const size_t S = 16u << 10, W = 256u << 10, GUARD = 1u << 20;
	uint8_t *sbuf = malloc(S), *wbuf = malloc(W), *region = calloc(1, W);
	uint8_t *rarea = malloc(S + GUARD);
	memset(sbuf, 0x55, S);
	memset(wbuf, 0x77, W);
	memset(rarea, 0xee, S + GUARD);
	struct wccl_rkey rk;
	struct wccl_mr *mr = writable(&p, region, W, &rk);
	assert_int_equal(wccl_post_send(p.ea, sbuf, S, NULL, 1), 0);
	int n = 0;
	pump(&p, 10, 0, &n); /* the SEND: unexpected */
	assert_int_equal(
		wccl_post_write(p.ea, wbuf, W, NULL, &rk, 0, 0, 0, 2), 0);
	assert_int_equal(wccl_post_recv(p.eb, rarea, S, NULL, 3), 0);
	pump(&p, 200, 3, &n);
	assert_int_equal(n, 1);
	for (size_t i = 0; i < S; i++)
		if (rarea[i] != 0x55)
			fail_msg("receive byte %zu is %#x", i, rarea[i]);
	for (size_t i = S; i < S + GUARD; i++)
		if (rarea[i] != 0xee)
			fail_msg("byte %zu past the receive overwritten", i - S);
	for (size_t i = 0; i < W; i++)
		if (region[i] != 0x77)
			fail_msg("written byte %zu is %#x", i, region[i]);
	wccl_mr_deregister(mr);
	pair_close(&p);
	free(sbuf);
	free(wbuf);
	free(region);
	free(rarea);
	shm_cma_chunk = 4ull << 20;
}

/*
 * The peer rewrites a WRITE's header in its ring while we copy it in
 * slices: the header we checked is the one we use, so nothing lands
 * outside the region.
 */
static void header_rewritten_mid_copy(void **state)
{
	(void)state;
	struct pair p;
	if (!cma_pair(&p))
		skip();
	const size_t R = 100u << 10, AREA = 1u << 20;
	uint8_t *src = malloc(AREA), *area = malloc(AREA);
	memset(src, 0x5a, AREA);
	memset(area, 0xee, AREA);
	struct wccl_rkey rk;
	struct wccl_mr *mr = writable(&p, area, R, &rk);
	struct shm_ep *a = (struct shm_ep *)p.ea;
	uint64_t at = a->tx.pos;
	assert_int_equal(wccl_post_write(p.ea, src, R, NULL, &rk, 0, 0, 0, 1),
			 0);
	struct shm_msg *m = (struct shm_msg *)(a->tx.data + (at & a->tx.mask));
	assert_int_equal(m->type, SHM_MSG_WRITE);
	struct wccl_completion wc[4];
	wccl_cq_poll(p.qb, wc, 4); /* the first 64 KiB */
	m->len = 1;
	int n = 0;
	pump(&p, 20, 0, &n);
	for (size_t i = R; i < AREA; i++)
		if (area[i] != 0xee)
			fail_msg("byte %zu past the region written", i - R);
	wccl_mr_deregister(mr);
	pair_close(&p);
	free(src);
	free(area);
	shm_cma_chunk = 4ull << 20;
}

/*
 * Without CMA a large WRITE streams through the ring in fragments. The
 * target deregisters its region part-way: no fragment lands there after
 * that, and the write fails at both ends (it went on landing, status 0).
 */
static void deregister_while_streamed(void **state)
{
	(void)state;
	shm_cma_disabled = 1;
	struct pair p;
	pair_open(&p);
	const size_t W = 8u << 20;
	uint8_t *src = malloc(W), *region = calloc(1, W);
	memset(src, 0x5a, W);
	struct wccl_rkey rk;
	struct wccl_mr *mr = writable(&p, region, W, &rk);
	assert_int_equal(wccl_post_write(p.ea, src, W, NULL, &rk, 0, 0, 0, 9),
			 0);
	struct wccl_completion wc[16];
	size_t landed = 0;
	for (int i = 0; i < 100000 && landed < 4; i++) {
		wccl_cq_poll(p.qa, wc, 16);
		wccl_cq_poll(p.qb, wc, 16);
		landed = 0;
		for (size_t k = 0; k < W; k += 4096)
			landed += region[k] == 0x5a;
	}
	assert_true(landed >= 4 && landed < W / 4096);
	assert_int_equal(wccl_mr_deregister(mr), 0);
	int status = 1, target_error = 0;
	for (int i = 0; i < 100000 && status == 1; i++) {
		int k = wccl_cq_poll(p.qa, wc, 16);
		for (int j = 0; j < k; j++)
			if (wc[j].cookie == 9)
				status = wc[j].status;
		k = wccl_cq_poll(p.qb, wc, 16);
		for (int j = 0; j < k; j++)
			target_error |= wc[j].op == WCCL_OP_ERROR &&
					wc[j].status == WCCL_EREMOTE_KEY;
	}
	assert_int_equal(status, WCCL_EREMOTE_KEY);
	assert_true(target_error);
	size_t after = 0;
	for (size_t k = 0; k < W; k += 4096)
		after += region[k] == 0x5a;
	if (after != landed)
		fail_msg("%zu pages landed after deregistration", after - landed);
	pair_close(&p);
	free(src);
	free(region);
	shm_cma_disabled = 0;
}

/* ---- a hand-made hello ------------------------------------------------ */

struct hello { /* shm_conn.c's struct shm_hello */
	uint64_t magic;
	uint32_t version;
	int32_t pid;
	uint64_t ring_bytes, probe_addr;
	uint32_t qdepth, inline_max, cma, resv;
};

enum bad_hello { HUGE_RING, EMPTY_DOORBELL, UNSEALED_SEGMENT };

static int memfd_of(size_t len, int sealed)
{
	int fd = memfd_create("t", sealed ? MFD_ALLOW_SEALING : 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	if (sealed)
		assert_int_equal(fcntl(fd, F_ADD_SEALS,
				       F_SEAL_SHRINK | F_SEAL_GROW),
				 0);
	return fd;
}

/* Connect to our own listener by hand, send @kind of bad hello, and see
 * the acceptor fail the endpoint with a message, not fault. */
static void bad_hello(enum bad_hello kind)
{
	struct wccl_context *c;
	struct wccl_cq *q;
	struct wccl_listener *l;
	assert_int_equal(wccl_context_open("shm", &c), 0);
	assert_int_equal(wccl_cq_create(c, 0, &q), 0);
	assert_int_equal(wccl_listen(c, NULL, &l), 0);
	char addr[WCCL_ADDR_MAX];
	assert_int_equal(wccl_listener_addr(l, addr, sizeof(addr)), 0);
	const char *name = strrchr(addr, ':') + 1; /* "...:<name>" */
	int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, name, strlen(name));
	assert_int_equal(connect(s, (struct sockaddr *)&sa,
				 (socklen_t)(offsetof(struct sockaddr_un,
						      sun_path) +
					     1 + strlen(name))),
			 0);
	uint64_t rb = kind == HUGE_RING ? 1ull << 63 : 1ull << 16;
	/* What the acceptor's size check computes, wrapped as it would. */
	uint64_t seg = 2 * (128 + rb) + 2 * (128 + 65536) +
		       2 * sizeof(struct shm_copy_line);
	int sfd = memfd_of(seg, kind != UNSEALED_SEGMENT);
	int dfd = memfd_of(kind == EMPTY_DOORBELL ? 0 : 4096 + 65536, 1);
	struct hello h = {.magic = SHM_MAGIC,
			  .version = SHM_VERSION,
			  .pid = getpid(),
			  .ring_bytes = rb,
			  .qdepth = 16,
			  .inline_max = 64};
	int fds[2] = {sfd, dfd};
	char cbuf[CMSG_SPACE(sizeof(fds))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {&h, sizeof(h)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	assert_int_equal(sendmsg(s, &msg, 0), (ssize_t)sizeof(h));
	struct wccl_endpoint *ep;
	int rc;
	for (int i = 0; (rc = wccl_accept(l, q, &ep)) == WCCL_EAGAIN; i++) {
		assert_true(i < 20000);
		usleep(100);
	}
	assert_int_equal(rc, 0);
	for (int i = 0; (rc = wccl_endpoint_established(ep)) == WCCL_EAGAIN;
	     i++) {
		assert_true(i < 20000);
		usleep(100);
	}
	/* Refused for what is wrong with it, not for its version. */
	assert_int_equal(rc, WCCL_EPROTO);
	const char *why = kind == EMPTY_DOORBELL ? "doorbell" : "segment";
	if (!strstr(wccl_endpoint_last_error(ep), why))
		fail_msg("error '%s' does not say %s",
			 wccl_endpoint_last_error(ep), why);
	wccl_endpoint_close(ep);
	close(s);
	close(sfd);
	close(dfd);
	wccl_listener_close(l);
	wccl_cq_destroy(q);
	wccl_context_close(c);
}

/* One bad hello per case (the case's state says which):
 * - HUGE_RING: a ring size whose segment size overflows (it passed the
 *   check, and the rings pointed outside the mapping);
 * - EMPTY_DOORBELL: a doorbell memfd of 0 bytes (mapped unchecked:
 *   SIGBUS at the first doorbell);
 * - UNSEALED_SEGMENT: a segment its owner could shrink under us. */
static void hello_refused(void **state)
{
	bad_hello(*(const enum bad_hello *)*state);
}

/*
 * The peer closes with more receives posted than the CQ holds: every one
 * still completes, as the CQ makes room (they were dropped past the CQ's
 * capacity).
 */
static void peer_close_with_full_cq(void **state)
{
	(void)state;
	struct pair p;
	setenv("WCCL_CQ_DEPTH", "16", 1);
	wccl_param_reload();
	pair_open(&p);
	static char buf[40][8];
	for (int i = 0; i < 40; i++)
		assert_int_equal(wccl_post_recv(p.eb, buf[i], 8, NULL,
						100 + (uint64_t)i),
				 0);
	assert_int_equal(wccl_endpoint_close(p.ea), 0);
	p.ea = NULL;
	int got = 0;
	struct wccl_completion wc;
	for (int i = 0; i < 200000 && got < 40; i++) {
		int k = wccl_cq_poll(p.qb, &wc, 1); /* slowly: the CQ fills */
		if (k == 1) {
			assert_int_equal(wc.cookie, 100 + (uint64_t)got);
			assert_true(wc.status < 0);
			got++;
		} else {
			usleep(20);
		}
	}
	assert_int_equal(got, 40);
	wccl_endpoint_close(p.eb);
	wccl_listener_close(p.l);
	wccl_cq_destroy(p.qa);
	wccl_cq_destroy(p.qb);
	wccl_context_close(p.ca);
	wccl_context_close(p.cb);
	unsetenv("WCCL_CQ_DEPTH");
	wccl_param_reload();
}

int main(void)
{
	static enum bad_hello kinds[] = {HUGE_RING, EMPTY_DOORBELL,
					 UNSEALED_SEGMENT};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unexpected_send_during_sliced_write),
		cmocka_unit_test(header_rewritten_mid_copy),
		cmocka_unit_test(deregister_while_streamed),
		{"hello_huge_ring", hello_refused, NULL, NULL, &kinds[0]},
		{"hello_empty_doorbell", hello_refused, NULL, NULL, &kinds[1]},
		{"hello_unsealed_segment", hello_refused, NULL, NULL,
		 &kinds[2]},
		cmocka_unit_test(peer_close_with_full_cq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
