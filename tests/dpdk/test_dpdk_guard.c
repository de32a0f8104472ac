/* SPDX-License-Identifier: MIT */
/*
 * The PMD guard (transport/dpdk/dpdk_guard.c) must keep the EAL interrupt
 * thread's callbacks and the data path's bursts apart: memif unmaps its
 * rings from a callback there when the peer dies.
 *
 * One process, one memif port with no peer. A callback of this test on
 * the interrupt thread stands in for the PMD's disconnect handler, a loop
 * on the main thread for the bursts. Each marks itself busy for a few
 * microseconds and counts the times it finds the other busy.
 *   unguarded (the control: this test can see an overlap): overlaps show;
 *   guarded: none, and both sides still run.
 * Exit 0 pass, 1 fail, 77 skip (no EAL here).
 */
/* The interrupt handle calls are experimental in DPDK 22.11. */
#define ALLOW_EXPERIMENTAL_API
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_interrupts.h>

#include <wccl/errors.h>
#include <wccl/transport.h>

#include "transport/dpdk/dpdk_guard.h"

#define BUSY_NS 20000

static atomic_int data_busy, intr_busy;
/* Registered until exit; global, so that the store stays (LSan). */
struct rte_intr_handle *stand_in;
static atomic_long data_saw, intr_saw, intr_runs;

static long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void busy(long ns)
{
	long until = now_ns() + ns;
	while (now_ns() < until)
		;
}

/* One side's turn: marked busy for BUSY_NS, counting in @saw the times
 * the other side is found busy too. */
static void turn(atomic_int *mine, atomic_int *other, atomic_long *saw)
{
	atomic_store(mine, 1);
	if (atomic_load(other))
		atomic_fetch_add(saw, 1);
	busy(BUSY_NS);
	if (atomic_load(other))
		atomic_fetch_add(saw, 1);
	atomic_store(mine, 0);
}

/* On the interrupt thread: the PMD's handler, as far as the guard knows. */
static void stand_in_handler(void *arg)
{
	(void)arg;
	turn(&intr_busy, &data_busy, &intr_saw);
	atomic_fetch_add(&intr_runs, 1);
}

/* On the main thread for @ms: "bursts" wherever the guard lets them. */
static long bursts(long ms)
{
	long until = now_ns() + ms * 1000000L, entered = 0;
	while (now_ns() < until) {
		if (!dpdk_pmd_enter())
			continue;
		turn(&data_busy, &intr_busy, &data_saw);
		dpdk_pmd_leave();
		entered++;
	}
	return entered;
}

static void reset(void)
{
	atomic_store(&data_saw, 0);
	atomic_store(&intr_saw, 0);
	atomic_store(&intr_runs, 0);
}

int main(void)
{
	char dir[] = "/tmp/wccl-guard.XXXXXX", eal[512];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(eal, sizeof(eal),
		 "--no-huge -m 128 --no-shconf --no-pci "
		 "--file-prefix=wccl-guard-%d --log-level=error "
		 "--vdev=net_memif0,role=server,socket=%s/memif.sock",
		 (int)getpid(), dir);
	setenv("WCCL_DPDK_EAL", eal, 1);
	struct wccl_context *ctx;
	int rc = wccl_context_open("dpdk", &ctx);
	if (rc == WCCL_ENODEV) {
		fprintf(stderr, "SKIP: dpdk EAL/port unavailable here\n");
		rmdir(dir);
		return 77;
	}
	int fail = 0;
	if (rc) {
		fprintf(stderr, "FAIL: context_open: %s\n", wccl_strerror(rc));
		return 1;
	}
	if (!dpdk_pmd_guard.on) {
		fprintf(stderr, "FAIL: no guard on a memif port\n");
		fail = 1;
	}
	/* Always readable, never read: the handler runs every time the
	 * interrupt thread goes round its loop. */
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	stand_in = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
	if (fd < 0 || !stand_in || rte_intr_fd_set(stand_in, fd) ||
	    rte_intr_type_set(stand_in, RTE_INTR_HANDLE_EXT) ||
	    rte_intr_callback_register(stand_in, stand_in_handler, NULL)) {
		fprintf(stderr, "FAIL: cannot register the stand-in handler\n");
		return 1;
	}

	dpdk_pmd_guard.on = false;
	reset();
	long n = bursts(300);
	long saw = atomic_load(&data_saw) + atomic_load(&intr_saw);
	printf("unguarded: %ld bursts, %ld handler runs, %ld overlaps\n", n,
	       atomic_load(&intr_runs), saw);
	if (!saw) {
		fprintf(stderr, "FAIL: no overlap without the guard: this "
				"test cannot see one here\n");
		fail = 1;
	}

	dpdk_pmd_guard.on = true;
	reset();
	n = bursts(500);
	saw = atomic_load(&data_saw) + atomic_load(&intr_saw);
	long runs = atomic_load(&intr_runs);
	printf("guarded:   %ld bursts, %ld handler runs, %ld overlaps\n", n,
	       runs, saw);
	if (saw) {
		fprintf(stderr, "FAIL: %ld overlaps with the guard on\n", saw);
		fail = 1;
	}
	/* The park is 1 ms with the link down: some 200-400 rounds when idle,
	 * 90-150 on a loaded 2-core box. */
	if (n < 200 || runs < 20) {
		fprintf(stderr,
			"FAIL: a side starved: %ld bursts, %ld handler "
			"runs in 500 ms\n",
			n, runs);
		fail = 1;
	}
	wccl_context_close(ctx);
	rmdir(dir);
	printf("%s\n", fail ? "FAIL" : "PASS");
	return fail;
}
