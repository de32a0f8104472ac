/* SPDX-License-Identifier: MIT */
/*
 * Why a guard: the memif PMD (DPDK 22.11) tears a connection down on the
 * EAL interrupt thread. When the peer process dies, memif_disconnect
 * clears the port's "connected" flag and then unmaps the shared regions,
 * while this process's data path may be inside a burst that checked the
 * flag a moment earlier: the survivor of a peer's death crashed in the
 * PMD's memcpy into an unmapped ring (dpdk-contract,
 * peer_killed_while_written_to, about 1 run in 10 on a busy machine).
 *
 * So the interrupt thread spends its time parked in a callback of ours,
 * on an eventfd that is always readable, and comes out for one round of
 * its other callbacks (the PMD's control messages) after each park
 * (below). It waits for a burst in flight before it goes, and bursts are
 * skipped while it is out (dpdk_guard.h). The data path takes no lock
 * and never waits; the PMD's control traffic (connect, peer gone) is
 * late by at most one park.
 */
/* The interrupt handle calls are experimental in DPDK 22.11 (Debian 12). */
#define ALLOW_EXPERIMENTAL_API
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_interrupts.h>

#include "core/log.h"
#include "dpdk_guard.h"

/* Parked this long while the link is up, so a peer's death is seen this
 * much later. 1 ms cost 14 % of memif goodput (1000 wake-ups a second on
 * each side of a 2-core box), 10 ms 0-3 % (dpdk-pacer). While the link is
 * down the connect handshake goes through, a round per park: 1 ms. */
#define DPDK_GUARD_PARK_UP_NS 10000000L
#define DPDK_GUARD_PARK_DOWN_NS 1000000L

struct dpdk_guard dpdk_pmd_guard = {.intr_out = 1};
static uint16_t guard_port;

/* On the EAL interrupt thread, each time round its loop. */
static void guard_park(void *arg)
{
	struct dpdk_guard *g = arg;
	atomic_store(&g->intr_out, 0);
	struct rte_eth_link link;
	memset(&link, 0, sizeof(link));
	bool up = rte_eth_link_get_nowait(guard_port, &link) == 0 &&
		  link.link_status == RTE_ETH_LINK_UP;
	struct timespec ts = {
	    0, up ? DPDK_GUARD_PARK_UP_NS : DPDK_GUARD_PARK_DOWN_NS};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	atomic_store(&g->intr_out, 1);
	while (atomic_load(&g->in_pmd))
		sched_yield();
}

/* Drivers whose control path frees what the data path is using. */
static bool needs_guard(const char *driver)
{
	return !strcmp(driver, "net_memif");
}

void dpdk_guard_install(uint16_t port)
{
	struct rte_eth_dev_info info;
	if (dpdk_pmd_guard.on || rte_eth_dev_info_get(port, &info) ||
	    !needs_guard(info.driver_name))
		return;
	guard_port = port;
	/* A count of 1, never read: level-triggered, always ready. */
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	struct rte_intr_handle *h =
	    rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
	int rc = fd < 0 || !h ? -ENOMEM : rte_intr_fd_set(h, fd);
	if (!rc)
		rc = rte_intr_type_set(h, RTE_INTR_HANDLE_EXT);
	if (!rc)
		rc = rte_intr_callback_register(h, guard_park,
						&dpdk_pmd_guard);
	if (rc) {
		WCCL_WARN(WCCL_SUB_DPDK,
			  "port %u (%s): cannot park the interrupt thread "
			  "(%s); a peer that disconnects mid-burst may crash "
			  "this process",
			  port, info.driver_name, strerror(-rc));
		if (fd >= 0)
			close(fd);
		rte_intr_instance_free(h);
		return;
	}
	dpdk_pmd_guard.handle = h;
	dpdk_pmd_guard.on = true;
	WCCL_INFO(WCCL_SUB_DPDK,
		  "port %u (%s): bursts guarded against its disconnect "
		  "handler", port, info.driver_name);
}
