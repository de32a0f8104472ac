/* SPDX-License-Identifier: MIT */
/*
 * ARP against the kernel (run by arp_kernel.sh inside a namespace, the
 * DPDK port on one veth end, the kernel with KERNEL_IP on the other):
 *
 *   test_dpdk_arp KERNEL_IP DEAD_IP STOP_FILE
 *
 * 1. resolve KERNEL_IP's MAC by ARP (a connect to it triggers the
 *    request); print "kernel-mac XX:XX:..." for the script to compare;
 * 2. a connect to DEAD_IP (nobody) fails with -WCCL_EHOSTUNREACH within
 *    WCCL_DPDK_ARP_TIMEOUT_MS, the error naming DEAD_IP;
 * 3. print "ready", keep polling (answering ARP and ping) until STOP_FILE
 *    exists (at most 60 s); then the ARP replies and echo replies we sent
 *    must be counted (the script has pinged us meanwhile).
 * Exit 0 pass, 1 fail, 77 skip (EAL cannot start here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wccl/errors.h>
#include <wccl/transport.h>

#include "transport/dpdk/dpdk_stats.h"

#define CHECK(c, ...)                                                   \
	do {                                                            \
		if (!(c)) {                                             \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ",   \
				__FILE__, __LINE__, #c);                \
			fprintf(stderr, __VA_ARGS__);                   \
			fputc('\n', stderr);                            \
			exit(1);                                        \
		}                                                       \
	} while (0)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: test_dpdk_arp KERNEL_IP DEAD_IP STOP\n");
		return 2;
	}
	const char *kip = argv[1], *dead = argv[2], *stop = argv[3];
	struct wccl_context *ctx;
	int rc = wccl_context_open("dpdk", &ctx);
	if (rc == WCCL_ENODEV) {
		printf("SKIP: dpdk context cannot open here\n");
		return 77;
	}
	CHECK(rc == 0, "context_open: %s", wccl_strerror(rc));
	struct wccl_cq *cq;
	CHECK(wccl_cq_create(ctx, 0, &cq) == 0, "cq");
	struct wccl_completion wc[4];

	/* 1: the kernel's MAC, by ARP. */
	char addr[64];
	snprintf(addr, sizeof(addr), "%s:47999", kip);
	struct wccl_endpoint *ep;
	rc = wccl_connect(ctx, addr, cq, &ep);
	CHECK(rc == 0, "connect %s: %s", addr, wccl_strerror(rc));
	uint8_t mac[6];
	double t0 = now_s();
	while ((rc = dpdk_context_neigh(ctx, kip, mac)) == WCCL_EAGAIN &&
	       now_s() - t0 < 5)
		wccl_cq_poll(cq, wc, 4);
	CHECK(rc == 0, "no MAC for %s after 5 s: %s", kip, wccl_strerror(rc));
	printf("kernel-mac %02x:%02x:%02x:%02x:%02x:%02x (%.1f ms)\n", mac[0],
	       mac[1], mac[2], mac[3], mac[4], mac[5], (now_s() - t0) * 1e3);
	fflush(stdout);
	wccl_endpoint_close(ep);

	/* 2: nobody at DEAD_IP: a clear error naming it, in bounded time. */
	snprintf(addr, sizeof(addr), "%s:47999", dead);
	rc = wccl_connect(ctx, addr, cq, &ep);
	CHECK(rc == 0, "connect %s: %s", addr, wccl_strerror(rc));
	t0 = now_s();
	rc = wccl_endpoint_wait_established(ep, 20000);
	double took = now_s() - t0;
	const char *err = wccl_endpoint_last_error(ep);
	printf("dead peer: %s after %.2f s: %s\n", wccl_err_name(rc), took,
	       err);
	CHECK(rc == WCCL_EHOSTUNREACH, "want EHOSTUNREACH, got %s",
	      wccl_err_name(rc));
	CHECK(strstr(err, dead) && strstr(err, "ARP"),
	      "error does not name %s / ARP: %s", dead, err);
	CHECK(took < 10, "ARP timeout took %.2f s", took);
	wccl_endpoint_close(ep);

	/* 3: answer the kernel's ARP and pings until told to stop. */
	printf("ready\n");
	fflush(stdout);
	t0 = now_s();
	while (access(stop, F_OK) != 0 && now_s() - t0 < 60)
		wccl_cq_wait(cq, wc, 4, 10);
	CHECK(access(stop, F_OK) == 0, "never told to stop");
	struct dpdk_stats st;
	CHECK(dpdk_context_stats(ctx, &st) == 0, "stats");
	printf("arp rx %llu requests %llu replies %llu, icmp echo %llu\n",
	       (unsigned long long)st.arp_rx,
	       (unsigned long long)st.arp_requests,
	       (unsigned long long)st.arp_replies,
	       (unsigned long long)st.icmp_echo);
	CHECK(st.arp_replies > 0, "no ARP reply sent");
	CHECK(st.icmp_echo > 0, "no echo reply sent");
	wccl_cq_destroy(cq);
	wccl_context_close(ctx);
	return 0;
}
