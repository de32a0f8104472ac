/* SPDX-License-Identifier: MIT */
#ifndef WCCL_DPDK_STATS_H
#define WCCL_DPDK_STATS_H

/* Counters of one dpdk context (tests and wccl-info read them). */
#include <stdint.h>

struct wccl_context;

struct dpdk_stats {
	uint64_t tx_pkts, rx_pkts, tx_data, rx_data;
	uint64_t retransmits, rto_fires, fast_retx;
	uint64_t tlp_probes; /* tail loss probes (dpdk_loss.c) */
	uint64_t rx_malformed, rx_unknown, rx_dup, rx_out_of_window;
	uint64_t rx_reordered, test_dropped, tx_ring_full;
	uint64_t test_link_drops; /* WCCL_DPDK_TEST_LINK_MBPS queue full */
	uint64_t rejected_writes, rx_bad_csum, test_corrupted;
	uint64_t tx_zcopy; /* data frames whose payload was attached, not copied */
	uint64_t rx_multiseg, rx_max_frag; /* chained frames, largest payload */
	uint64_t arp_rx, arp_requests, arp_replies, arp_conflicts, icmp_echo;
	/* DATA dropped to bound the mbufs reorder rings hold: for a
	 * connection not yet accepted, or over DPDK_RX_HELD_MAX */
	uint64_t rx_not_held;
	/* Gaps of >= 200 us from the end of one dpdk_progress call to the
	 * start of the next (off the CPU, or the application busy
	 * elsewhere): how many, their sum, the longest. Over them nothing
	 * was sent, received or acknowledged. */
	uint64_t stalls, stall_ns, stall_max_ns;
	/* Times the sender turned CPU-bound (many stalls with data out):
	 * the fixed rate on short paths until they end (dpdk_stall.c) */
	uint64_t cpu_bound;
};

/* Copy @ctx's counters (a dpdk context) into @st. Returns 0 or
 * -WCCL_EINVAL if @ctx is not a dpdk context. */
int dpdk_context_stats(struct wccl_context *ctx, struct dpdk_stats *st);

/* The MAC @ctx (a dpdk context) has for IPv4 @ip (dotted quad), learned by
 * ARP or configured. Returns 0 (@mac filled), -WCCL_EAGAIN if not known
 * (yet), -WCCL_EINVAL for a bad @ctx or @ip. */
int dpdk_context_neigh(struct wccl_context *ctx, const char *ip,
		       uint8_t mac[6]);

#endif
