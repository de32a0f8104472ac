/* SPDX-License-Identifier: MIT */
/*
 * The PMD guard: keeps the EAL interrupt thread out of a port's shared
 * memory while the data path is in a burst (see dpdk_guard.c for why).
 * Wrap every call that reaches the PMD's rings:
 *
 *	if (dpdk_pmd_enter()) {
 *		n = rte_eth_rx_burst(...);
 *		dpdk_pmd_leave();
 *	}
 *
 * When enter says no, skip the call: the interrupt thread is out for a
 * moment, and the next progress call tries again. Off (always yes) unless
 * the port needs it.
 */
#ifndef WCCL_DPDK_GUARD_H
#define WCCL_DPDK_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct rte_intr_handle;

struct dpdk_guard {
	bool on; /* set once, by the thread that starts the port */
	/* Ours, kept until exit as the port is (DPDK registers a copy). */
	struct rte_intr_handle *handle;
	atomic_int in_pmd;   /* the data path is inside a PMD call */
	atomic_int intr_out; /* the interrupt thread is not parked */
};

extern struct dpdk_guard dpdk_pmd_guard;

/* Guard port @port if its driver needs it (once per process: the port
 * is kept until exit). Without it, a warning says what is at risk. */
void dpdk_guard_install(uint16_t port);

/* The flags are a Dekker pair (both sides store their own, then load the
 * other's, sequentially consistent), so at most one side is ever in. */
static inline bool dpdk_pmd_enter(void)
{
	struct dpdk_guard *g = &dpdk_pmd_guard;
	if (!g->on)
		return true;
	atomic_store(&g->in_pmd, 1);
	if (!atomic_load(&g->intr_out))
		return true;
	atomic_store_explicit(&g->in_pmd, 0, memory_order_release);
	return false;
}

static inline void dpdk_pmd_leave(void)
{
	if (dpdk_pmd_guard.on)
		atomic_store_explicit(&dpdk_pmd_guard.in_pmd, 0,
				      memory_order_release);
}

#endif
