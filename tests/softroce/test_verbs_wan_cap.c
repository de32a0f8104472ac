/* SPDX-License-Identifier: MIT */
/*
 * The verbs bytes-in-flight cap (WCCL_VERBS_MAX_INFLIGHT) behind a shallow
 * bottleneck: test_verbs_wan_cap
 *
 * One process, two contexts: the target on WCCL_CAP_TARGET_DEV, the
 * initiator on WCCL_CAP_INIT_DEV (rxe1 / rxe0 across the guest's veth pair
 * with netem + tbf, tests/softroce/guest-wan.sh cap). The initiator keeps
 * WCCL_CAP_DEPTH (8) writes of WCCL_CAP_MSG (4 MiB) outstanding until
 * WCCL_CAP_TOTAL (48 MiB) went, each striped over the data QPs
 * (WCCL_VERBS_QPS, 16 in the suite): 8 MiB may be in flight without a cap,
 * far more than the tbf queue holds. Checks: every write completes (no
 * stall within WCCL_CAP_DEADLINE_S) and its bytes land intact; with a cap,
 * the endpoint's peak bytes in flight (WCCL_EP_ATTR_INFLIGHT_PEAK) is at
 * most the cap and the cap held work back (INFLIGHT_WAITS > 0). Prints one
 * line "cap: ..." with the numbers. Exit 0 pass, 1 fail, 77 no verbs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wccl/transport.h>

#include "core/clock.h"
#include "core/params.h"
#include "transport/provider.h"

#define MUST(expr)                                                          \
	do {                                                                \
		int rc_ = (expr);                                           \
		if (rc_) {                                                  \
			fprintf(stderr, "cap: FAIL %s:%d: %s: %s\n",         \
				__FILE__, __LINE__, #expr,                  \
				wccl_strerror(rc_));                        \
			exit(1);                                            \
		}                                                           \
	} while (0)

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* Open a verbs context on @dev ("" = the default device). */
static int open_on(const char *dev, struct wccl_context **ctx)
{
	if (dev && *dev)
		setenv("WCCL_VERBS_DEVICE", dev, 1);
	else
		unsetenv("WCCL_VERBS_DEVICE");
	wccl_param_reload();
	return wccl_context_open("verbs", ctx);
}

static uint8_t pattern(uint64_t i, uint64_t msg_no)
{
	return (uint8_t)(i * 131 + msg_no * 7 + (i >> 12));
}

int main(void)
{
	const uint64_t msg = env_u64("WCCL_CAP_MSG", 4u << 20);
	const uint64_t total = env_u64("WCCL_CAP_TOTAL", 48u << 20);
	const uint64_t depth = env_u64("WCCL_CAP_DEPTH", 8);
	const uint64_t deadline_s = env_u64("WCCL_CAP_DEADLINE_S", 30);
	const uint64_t nmsg = total / msg;
	struct wccl_context *tctx, *ictx;
	int rc = open_on(getenv("WCCL_CAP_TARGET_DEV"), &tctx);
	if (rc) {
		printf("SKIP: no usable verbs device here (%s)\n",
		       wccl_strerror(rc));
		return 77;
	}
	MUST(open_on(getenv("WCCL_CAP_INIT_DEV"), &ictx));
	struct wccl_cq *tcq, *icq;
	MUST(wccl_cq_create(tctx, 256, &tcq));
	MUST(wccl_cq_create(ictx, 256, &icq));

	struct wccl_listener *l;
	char addr[WCCL_ADDR_MAX];
	MUST(wccl_listen(tctx, NULL, &l));
	MUST(wccl_listener_addr(l, addr, sizeof(addr)));
	struct wccl_endpoint *ie = NULL, *te = NULL;
	MUST(wccl_connect(ictx, addr, icq, &ie));
	uint64_t end = wccl_deadline_ns(30000);
	while (!te || wccl_endpoint_established(ie) == WCCL_EAGAIN) {
		struct wccl_completion wc[4];
		wccl_cq_poll(tcq, wc, 4); /* progress drives both sides */
		wccl_cq_poll(icq, wc, 4);
		if (!te) {
			rc = wccl_accept(l, tcq, &te);
			if (rc && rc != WCCL_EAGAIN)
				MUST(rc);
		}
		if (wccl_now_ns() > end) {
			fprintf(stderr, "cap: FAIL: no connection within 30 s\n");
			return 1;
		}
	}
	MUST(wccl_endpoint_established(ie));
	MUST(wccl_endpoint_wait_established(te, 30000));

	uint8_t *dst, *src;
	MUST(wccl_mem_alloc(total, (void **)&dst));
	MUST(wccl_mem_alloc(depth * msg, (void **)&src));
	memset(dst, 0, total);
	struct wccl_mr *dmr, *smr;
	struct wccl_rkey rk;
	MUST(wccl_mr_register(tctx, dst, total,
			      WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE,
			      &dmr));
	MUST(wccl_mr_rkey(dmr, &rk));
	MUST(wccl_mr_register(ictx, src, depth * msg, WCCL_ACCESS_LOCAL, &smr));

	uint64_t cap = 0, peak = 0, waits = 0;
	MUST(wccl_endpoint_get_attr(ie, WCCL_EP_ATTR_MAX_INFLIGHT, &cap));

	/* Write k goes from slot k % depth to offset k * msg; a slot is
	 * refilled when its write completed (cookie = k). */
	uint64_t posted = 0, done = 0, t0 = wccl_now_ns();
	int failures = 0;
	end = wccl_deadline_ns((int)(deadline_s * 1000));
	while (done < nmsg) {
		while (posted < nmsg && posted - done < depth) {
			uint8_t *s = src + (posted % depth) * msg;
			for (uint64_t i = 0; i < msg; i++)
				s[i] = pattern(i, posted);
			rc = wccl_post_write(ie, s, msg, smr, &rk, posted * msg,
					     0, 0, posted);
			if (rc == WCCL_EAGAIN)
				break;
			MUST(rc);
			posted++;
		}
		struct wccl_completion wc[16];
		int n = wccl_cq_poll(icq, wc, 16);
		if (n < 0)
			MUST(n);
		for (int i = 0; i < n; i++) {
			if (wc[i].status) {
				fprintf(stderr,
					"cap: FAIL: write %llu: %s (%s)\n",
					(unsigned long long)wc[i].cookie,
					wccl_strerror(wc[i].status),
					wccl_endpoint_last_error(ie));
				failures++;
			}
			done++;
		}
		/* The target's side needs no call for writes; poll it so
		 * its connection stays serviced. */
		wccl_cq_poll(tcq, wc, 16);
		if (wccl_now_ns() > end) {
			fprintf(stderr,
				"cap: FAIL: stalled: %llu of %llu writes "
				"completed within %llu s\n",
				(unsigned long long)done,
				(unsigned long long)nmsg,
				(unsigned long long)deadline_s);
			failures++;
			break;
		}
	}
	double secs = (double)(wccl_now_ns() - t0) / 1e9;
	MUST(wccl_endpoint_get_attr(ie, WCCL_EP_ATTR_INFLIGHT_PEAK, &peak));
	MUST(wccl_endpoint_get_attr(ie, WCCL_EP_ATTR_INFLIGHT_WAITS, &waits));
	for (uint64_t k = 0; k < done && !failures; k++)
		for (uint64_t i = 0; i < msg; i++)
			if (dst[k * msg + i] != pattern(i, k)) {
				fprintf(stderr,
					"cap: FAIL: write %llu byte %llu "
					"wrong\n",
					(unsigned long long)k,
					(unsigned long long)i);
				failures++;
				break;
			}
	if (cap && peak > cap) {
		fprintf(stderr, "cap: FAIL: %llu bytes in flight, cap %llu\n",
			(unsigned long long)peak, (unsigned long long)cap);
		failures++;
	}
	if (cap && cap < depth * msg && !waits) {
		fprintf(stderr, "cap: FAIL: the cap never held a write back\n");
		failures++;
	}
	printf("cap: %llu x %llu KiB writes, %llu outstanding: %.2f s, "
	       "%.3f Gb/s; cap %llu B, peak in flight %llu B, %llu waits: "
	       "%s\n",
	       (unsigned long long)nmsg, (unsigned long long)(msg >> 10),
	       (unsigned long long)depth, secs,
	       (double)(done * msg) * 8 / secs / 1e9, (unsigned long long)cap,
	       (unsigned long long)peak, (unsigned long long)waits,
	       failures ? "FAIL" : "ok");
	fflush(stdout);
	if (failures)
		_exit(1); /* a stalled endpoint would only slow teardown */
	wccl_endpoint_close(ie);
	wccl_endpoint_close(te);
	wccl_listener_close(l);
	wccl_mr_deregister(dmr);
	wccl_mr_deregister(smr);
	wccl_cq_destroy(icq);
	wccl_cq_destroy(tcq);
	wccl_context_close(ictx);
	wccl_context_close(tctx);
	wccl_mem_free(src);
	wccl_mem_free(dst);
	return 0;
}
