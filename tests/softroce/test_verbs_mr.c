/* SPDX-License-Identifier: MIT */
/*
 * The verbs registration cache (transport/verbs/verbs_mr.c), counted in
 * ibv_reg_mr / ibv_dereg_mr calls:
 *   - two local registrations in one wccl_mem buffer: one ibv_reg_mr;
 *   - a remote-writable one in it: registered exactly (its own ibv_reg_mr);
 *   - sends and receives with mr == NULL from / into wccl_mem buffers reuse
 *     the cached registration, and the bytes arrive intact;
 *   - wccl_mem_free invalidates: the next progress deregisters, and a new
 *     allocation (even at the same address) is registered anew;
 *   - malloc'd memory is never cached (one registration per operation);
 *   - striped sends: a large receive posted ahead is offered to the
 *     sender, which then writes the message over the data QPs; the bytes
 *     and the length arrive intact; a small receive is not offered.
 * One process, listener and connector on the same device.
 * Exit 0 pass, 1 fail, 77 no usable verbs device (run it in the VM:
 * tests/softroce/guest-mr.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wccl/transport.h>

#include "core/clock.h"
#include "transport/verbs/verbs.h"

#include "softroce_check.h"

static struct verbs_ctx *vc;
static struct wccl_cq *cq;

static uint64_t regs(void) { return vc->n_reg_mr; }
static uint64_t deregs(void) { return vc->n_dereg_mr; }

/* Poll until @n completions arrived (all must succeed), 10 s at most. */
static void reap(int n)
{
	uint64_t end = wccl_deadline_ns(10000);
	while (n > 0) {
		struct wccl_completion wc[8];
		int got = wccl_cq_poll(cq, wc, 8);
		if (got < 0) {
			fprintf(stderr, "cq_poll: %s\n", wccl_strerror(got));
			exit(1);
		}
		for (int i = 0; i < got; i++)
			CHECK(wc[i].status == 0, "completion op %u status %s",
			      wc[i].op, wccl_strerror(wc[i].status));
		n -= got;
		if (wccl_now_ns() > end) {
			fprintf(stderr, "timed out with %d completions "
					"missing\n", n);
			exit(1);
		}
	}
}

/* One message @len bytes from @src to @dst (both mr == NULL), checked. */
static void transfer(struct wccl_endpoint *tx, struct wccl_endpoint *rx,
		     uint8_t *src, uint8_t *dst, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		src[i] = (uint8_t)(seed + i * 7);
	memset(dst, 0, len);
	MUST(wccl_post_recv(rx, dst, len, NULL, 1));
	MUST(wccl_post_send(tx, src, len, NULL, 2));
	reap(2);
	CHECK(memcmp(src, dst, len) == 0, "%zu bytes arrived corrupted", len);
}

int main(void)
{
	struct wccl_context *ctx = verbs_or_skip();
	int rc;
	vc = container_of(ctx, struct verbs_ctx, base);
	MUST(wccl_cq_create(ctx, 64, &cq));

	/* -- registrations -- */
	const size_t big = 1 << 20, msg = 64 << 10;
	uint8_t *a;
	MUST(wccl_mem_alloc(big, (void **)&a));
	uint64_t r0 = regs(), d0 = deregs();
	struct wccl_mr *m1, *m2, *m3;
	MUST(wccl_mr_register(ctx, a, 4096, WCCL_ACCESS_LOCAL, &m1));
	CHECK(regs() == r0 + 1, "first registration: %llu ibv_reg_mr",
	      (unsigned long long)(regs() - r0));
	MUST(wccl_mr_register(ctx, a + 8192, 65536, WCCL_ACCESS_LOCAL, &m2));
	CHECK(regs() == r0 + 1,
	      "second registration in the same wccl_mem buffer: %llu "
	      "ibv_reg_mr in all, want 1",
	      (unsigned long long)(regs() - r0));
	MUST(wccl_mr_register(ctx, a + 4096, 4096,
			      WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE,
			      &m3));
	CHECK(regs() == r0 + 2, "remote-writable registration not exact");
	MUST(wccl_mr_deregister(m3));
	CHECK(deregs() == d0 + 1, "remote-writable registration not freed");
	MUST(wccl_mr_deregister(m1));
	MUST(wccl_mr_deregister(m2));
	CHECK(deregs() == d0 + 1, "idle cached registration dropped early");

	/* -- data through cached registrations (mr == NULL) -- */
	struct wccl_listener *l;
	char addr[WCCL_ADDR_MAX];
	MUST(wccl_listen(ctx, NULL, &l));
	MUST(wccl_listener_addr(l, addr, sizeof(addr)));
	struct wccl_endpoint *c = NULL, *s = NULL;
	MUST(wccl_connect(ctx, addr, cq, &c));
	uint64_t end = wccl_deadline_ns(20000);
	while (!s || wccl_endpoint_established(c) == WCCL_EAGAIN) {
		if (!s) {
			rc = wccl_accept(l, cq, &s);
			if (rc && rc != WCCL_EAGAIN)
				MUST(rc);
		}
		if (wccl_now_ns() > end) {
			fprintf(stderr, "no connection within 20 s\n");
			return 1;
		}
	}
	MUST(wccl_endpoint_established(c));
	MUST(wccl_endpoint_wait_established(s, 20000));

	uint8_t *b;
	MUST(wccl_mem_alloc(big, (void **)&b));
	r0 = regs();
	d0 = deregs();
	for (int i = 0; i < 3; i++)
		transfer(c, s, a + 4096 * i, b + 8192 * i, msg, (uint8_t)i);
	transfer(s, c, b, a, msg, 9);
	CHECK(regs() == r0 + 1,
	      "4 messages between two wccl_mem buffers: %llu ibv_reg_mr, "
	      "want 1 (a was cached already, b once)",
	      (unsigned long long)(regs() - r0));
	CHECK(deregs() == d0, "cached registrations dropped while in use");

	/* -- free invalidates -- */
	void *old_b = b;
	MUST(wccl_mem_free(b));
	struct wccl_completion wc;
	CHECK(wccl_cq_poll(cq, &wc, 1) == 0, "stray completion");
	CHECK(deregs() == d0 + 1,
	      "wccl_mem_free + progress: %llu ibv_dereg_mr, want 1",
	      (unsigned long long)(deregs() - d0));
	MUST(wccl_mem_alloc(big, (void **)&b));
	printf("new allocation %s the freed one's address\n",
	       (void *)b == old_b ? "reuses" : "does not reuse");
	r0 = regs();
	transfer(c, s, a, b, msg, 17);
	CHECK(regs() == r0 + 1,
	      "a new allocation must be registered anew (%llu ibv_reg_mr)",
	      (unsigned long long)(regs() - r0));

	/* -- malloc'd memory is not cached -- */
	uint8_t *h = malloc(msg);
	CHECK(h != NULL, "malloc");
	if (h) {
		r0 = regs();
		d0 = deregs();
		transfer(c, s, h, b, msg, 23);
		transfer(c, s, h, b, msg, 29);
		CHECK(regs() == r0 + 2 && deregs() == d0 + 2,
		      "malloc'd buffer: %llu reg / %llu dereg, want 2 / 2 "
		      "(never cached)",
		      (unsigned long long)(regs() - r0),
		      (unsigned long long)(deregs() - d0));
		free(h);
	}

	/* -- striped sends: a large receive posted early is offered to the
	 * sender, which writes the message over the data QPs -- */
	struct verbs_ep *vtx = container_of(c, struct verbs_ep, base);
	if (vtx->nqps > 2) {
		const size_t slen = big; /* >= WCCL_VERBS_STRIPE_MIN */
		for (int round = 0; round < 3; round++) {
			uint64_t n0 = vtx->n_striped;
			for (size_t i = 0; i < slen; i++)
				a[i] = (uint8_t)(round * 31 + i * 13);
			memset(b, 0, slen);
			MUST(wccl_post_recv(s, b, slen, NULL, 5));
			/* Wait for the offer to land in the sender's ring. */
			const struct verbs_cts *slot =
			    &vtx->cts[vtx->send_idx % vtx->cts_slots];
			end = wccl_deadline_ns(5000);
			while (__atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE) !=
				   vtx->send_idx + 1 &&
			       wccl_now_ns() < end)
				CHECK(wccl_cq_poll(cq, &wc, 1) == 0,
				      "stray completion");
			MUST(wccl_post_send(c, a, slen - round, NULL, 6));
			reap(2);
			CHECK(memcmp(a, b, slen - round) == 0,
			      "striped send of %zu bytes corrupted",
			      slen - round);
			CHECK(vtx->n_striped == n0 + 1,
			      "a %zu-byte send into an offered receive was "
			      "not striped",
			      slen - round);
		}
		/* A small receive is not offered: an ordinary send. */
		uint64_t n0 = vtx->n_striped;
		transfer(c, s, a, b, msg, 41);
		CHECK(vtx->n_striped == n0, "64 KiB send was striped");
	} else {
		printf("striped sends not checked: WCCL_VERBS_QPS < 2\n");
	}

	MUST(wccl_endpoint_close(c));
	MUST(wccl_endpoint_close(s));
	MUST(wccl_listener_close(l));
	MUST(wccl_mem_free(a));
	MUST(wccl_mem_free(b));
	MUST(wccl_cq_destroy(cq));
	MUST(wccl_context_close(ctx));
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
