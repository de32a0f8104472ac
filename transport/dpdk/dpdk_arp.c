/* SPDX-License-Identifier: MIT */
/*
 * Neighbours: ARP (RFC 826) for our IPv4 address and our peers', and ICMP
 * echo so that a kernel on the same segment can ping us.
 *
 * A connecting endpoint needs its peer's MAC before its first SYN:
 *   WCCL_DPDK_PEER_MAC set   -> that MAC for every peer (static, no ARP)
 *   WCCL_DPDK_NEIGH lists it -> that MAC (static, no ARP)
 *   WCCL_DPDK_ARP=1          -> ARP request every WCCL_DPDK_ARP_RETRY_MS,
 *                               failing after WCCL_DPDK_ARP_TIMEOUT_MS
 *                               with the IP named
 *   WCCL_DPDK_ARP=0          -> broadcast until the peer's first answer
 * The accepting side learns the MAC from the SYN. Requests for our IP are
 * always answered. The table is a fixed array searched linearly: it is
 * used at connection set-up and on ARP frames, never per data packet.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "core/log.h"
#include "core/params.h"
#include "dpdk.h"

static const struct rte_ether_addr bcast = {
	.addr_bytes = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }
};

struct dpdk_neigh *dpdk_neigh_find(struct dpdk_ctx *ctx, uint32_t ip,
				   bool create)
{
	struct dpdk_neigh *spare = NULL;
	for (uint32_t i = 0; i < DPDK_NEIGH_MAX; i++) {
		struct dpdk_neigh *n = &ctx->neigh[i];
		if (n->ip == ip)
			return n;
		if (!n->ip && !spare)
			spare = n;
	}
	if (!create)
		return NULL;
	if (!spare) { /* full: recycle a learned (non-static) entry */
		for (uint32_t i = 0; i < DPDK_NEIGH_MAX && !spare; i++)
			if (!ctx->neigh[i].is_static)
				spare = &ctx->neigh[i];
		if (!spare)
			return NULL;
	}
	memset(spare, 0, sizeof(*spare));
	spare->ip = ip;
	return spare;
}

/* WCCL_DPDK_NEIGH="IP=MAC,IP=MAC": static entries. */
int dpdk_neigh_parse(struct dpdk_ctx *ctx, const char *spec)
{
	char buf[1024];
	if (!spec || !*spec)
		return 0;
	if (strlen(spec) >= sizeof(buf))
		return WCCL_EINVAL;
	strcpy(buf, spec);
	for (char *save = NULL, *t = strtok_r(buf, ", \t", &save); t;
	     t = strtok_r(NULL, ", \t", &save)) {
		char *eq = strchr(t, '=');
		struct in_addr in;
		struct rte_ether_addr mac;
		if (!eq)
			goto bad;
		*eq = '\0';
		if (inet_pton(AF_INET, t, &in) != 1 ||
		    rte_ether_unformat_addr(eq + 1, &mac))
			goto bad;
		struct dpdk_neigh *n = dpdk_neigh_find(ctx, in.s_addr, true);
		if (!n)
			goto bad;
		n->mac = mac;
		n->known = n->is_static = true;
		continue;
bad:
		WCCL_WARN(WCCL_SUB_DPDK,
			  "WCCL_DPDK_NEIGH: bad entry '%s' (want IP=MAC,...)", t);
		return WCCL_EINVAL;
	}
	return 0;
}

static void arp_send(struct dpdk_ctx *ctx, uint16_t op,
		     const struct rte_ether_addr *dmac, uint32_t tip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ctx->pool);
	if (!m)
		return;
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)rte_pktmbuf_append(
		m, sizeof(*eth) + sizeof(struct rte_arp_hdr));
	if (!eth) {
		rte_pktmbuf_free(m);
		return;
	}
	rte_ether_addr_copy(dmac, &eth->dst_addr);
	rte_ether_addr_copy(&ctx->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	struct rte_arp_hdr *a = (struct rte_arp_hdr *)(eth + 1);
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = RTE_ETHER_ADDR_LEN;
	a->arp_plen = 4;
	a->arp_opcode = rte_cpu_to_be_16(op);
	rte_ether_addr_copy(&ctx->mac, &a->arp_data.arp_sha);
	a->arp_data.arp_sip = ctx->ip;
	if (op == RTE_ARP_OP_REQUEST)
		memset(&a->arp_data.arp_tha, 0, sizeof(a->arp_data.arp_tha));
	else
		rte_ether_addr_copy(dmac, &a->arp_data.arp_tha);
	a->arp_data.arp_tip = tip;
	if (op == RTE_ARP_OP_REQUEST)
		ctx->st.arp_requests++;
	else
		ctx->st.arp_replies++;
	dpdk_txq_push(ctx, m, false);
}

/* A learned MAC: endpoints to @ip that lack one take it. */
static void neigh_learn(struct dpdk_ctx *ctx, uint32_t ip,
			const struct rte_ether_addr *mac, bool create)
{
	struct dpdk_neigh *n = dpdk_neigh_find(ctx, ip, create);
	if (!n || n->is_static)
		return;
	if (!n->known) {
		char s[INET_ADDRSTRLEN];
		struct in_addr in = { ip };
		inet_ntop(AF_INET, &in, s, sizeof(s));
		WCCL_INFO(WCCL_SUB_DPDK,
			  "ARP: %s is at " RTE_ETHER_ADDR_PRT_FMT, s,
			  RTE_ETHER_ADDR_BYTES(mac));
	}
	n->mac = *mac;
	n->known = true;
}

void dpdk_rx_arp(struct dpdk_ctx *ctx, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eth =
		rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_arp_hdr *a = (const struct rte_arp_hdr *)(eth + 1);
	if (m->data_len < sizeof(*eth) + sizeof(*a) ||
	    a->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    a->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    a->arp_hlen != RTE_ETHER_ADDR_LEN || a->arp_plen != 4 ||
	    !rte_is_unicast_ether_addr(&a->arp_data.arp_sha)) {
		ctx->st.rx_malformed++;
		return;
	}
	ctx->st.arp_rx++;
	uint16_t op = rte_be_to_cpu_16(a->arp_opcode);
	uint32_t sip = a->arp_data.arp_sip;
	bool for_us = a->arp_data.arp_tip == ctx->ip;
	if (sip == ctx->ip &&
	    !rte_is_same_ether_addr(&a->arp_data.arp_sha, &ctx->mac)) {
		char s[INET_ADDRSTRLEN];
		struct in_addr in = { sip };
		inet_ntop(AF_INET, &in, s, sizeof(s));
		if (!ctx->st.arp_conflicts++)
			WCCL_WARN(WCCL_SUB_DPDK,
				  "address conflict: %s (ours) is also used by "
				  RTE_ETHER_ADDR_PRT_FMT " (set WCCL_DPDK_IP)",
				  s, RTE_ETHER_ADDR_BYTES(&a->arp_data.arp_sha));
		return;
	}
	/* RFC 826: update a known sender; add it if we are the target. */
	if (sip && sip != ctx->ip)
		neigh_learn(ctx, sip, &a->arp_data.arp_sha, for_us);
	if (op == RTE_ARP_OP_REQUEST && for_us)
		arp_send(ctx, RTE_ARP_OP_REPLY, &a->arp_data.arp_sha, sip);
}

/* Echo request to our IP: answered in place (the mbuf is reused). */
bool dpdk_rx_icmp(struct dpdk_ctx *ctx, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	size_t ihl = (size_t)(ip->version_ihl & 0xf) * 4u;
	uint16_t tot = rte_be_to_cpu_16(ip->total_length);
	if (ihl < 20 || tot < ihl + sizeof(struct rte_icmp_hdr) ||
	    tot > m->data_len - sizeof(*eth))
		return false;
	struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)((uint8_t *)ip + ihl);
	if (ic->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || ic->icmp_code ||
	    rte_raw_cksum(ic, tot - ihl) != 0xffff)
		return false;
	ic->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	ic->icmp_cksum = 0;
	ic->icmp_cksum = (uint16_t)~rte_raw_cksum(ic, tot - ihl);
	struct rte_ether_addr t = eth->src_addr;
	eth->dst_addr = t;
	rte_ether_addr_copy(&ctx->mac, &eth->src_addr);
	ip->dst_addr = ip->src_addr;
	ip->src_addr = ctx->ip;
	ip->time_to_live = 64;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	rte_pktmbuf_trim(m, (uint16_t)(m->pkt_len - sizeof(*eth) - tot));
	m->ol_flags = 0;
	ctx->st.icmp_echo++;
	dpdk_txq_push(ctx, m, false);
	return true;
}

/*
 * Make sure a connecting @ep knows its peer's MAC. True when it does (or
 * broadcast is the configured fallback); false while ARP is pending, after
 * sending a request when one is due. Fails @ep on the ARP timeout.
 */
bool dpdk_ep_resolve(struct dpdk_ep *ep)
{
	struct dpdk_ctx *ctx = ep->ctx;
	if (ep->mac_known)
		return true;
	if (ep->peer_ip == ctx->ip) {
		ep->peer_mac = ctx->mac;
		ep->mac_known = true;
		return true;
	}
	if (ctx->have_peer_mac) {
		ep->peer_mac = ctx->peer_mac;
		ep->mac_known = true;
		return true;
	}
	struct dpdk_neigh *n = dpdk_neigh_find(ctx, ep->peer_ip, ctx->arp);
	if (n && n->known) {
		ep->peer_mac = n->mac;
		ep->mac_known = true;
		return true;
	}
	if (!ctx->arp || !n)
		return true; /* broadcast until the peer answers */
	uint64_t now = ctx->now;
	if (!ep->arp_deadline_ns)
		ep->arp_deadline_ns = now + ctx->arp_timeout_ns;
	if (now >= ep->arp_deadline_ns) {
		char s[INET_ADDRSTRLEN];
		struct in_addr in = { ep->peer_ip };
		inet_ntop(AF_INET, &in, s, sizeof(s));
		dpdk_ep_failf(ep, WCCL_EHOSTUNREACH,
			      "no ARP answer from %s (%u requests in %llu ms, "
			      "WCCL_DPDK_ARP_TIMEOUT_MS; or WCCL_DPDK_NEIGH)",
			      s, ep->arp_tries,
			      (unsigned long long)ctx->arp_timeout_ns /
				      1000000ull);
		return false;
	}
	if (ctx->link_up && now >= ep->arp_next_ns) {
		arp_send(ctx, RTE_ARP_OP_REQUEST, &bcast, ep->peer_ip);
		ep->arp_tries++;
		ep->arp_next_ns = now + ctx->arp_retry_ns;
	}
	return false;
}

/* Gratuitous ARP at link up (sender = target = our IP): switches learn
 * where we are, and a host that already has our IP logs the conflict. */
void dpdk_arp_announce(struct dpdk_ctx *ctx)
{
	arp_send(ctx, RTE_ARP_OP_REQUEST, &bcast, ctx->ip);
}
