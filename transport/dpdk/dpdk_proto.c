/* SPDX-License-Identifier: MIT */
/*
 * The reliable, paced protocol: frames in and out, per-connection
 * sequence/ACK/SACK bookkeeping, retransmission (dpdk_loss.c says what
 * is lost), pacing, and in-order application of received fragments
 * straight into posted receives or checked regions.
 *
 * Pacing (WCCL_DPDK_PACE_MODEL=1): each connection runs the streaming
 * engine's model (transport/pacing/pace_model.c). Every ACK that brings
 * news (cumulative or SACK) yields one BBR rate sample (pace_rate.c),
 * taken from the newly delivered packet that left last: wire bytes
 * delivered since it left, reaching back to span DPDK_RATE_MIN_PKTS
 * packets at least, over the longer of the send and ACK intervals; and
 * (Karn) its RTT, which also feeds the model's delay signal. The
 * connection then sends at the model's pacing rate (a clock, up to
 * PACE_SLACK_NS of catch-up after a stall) with at most its cwnd in
 * flight; the context's token bucket at WCCL_DPDK_PACE_MBPS caps the
 * port, and the model's rate too.
 */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rte_ip.h>
#include <rte_udp.h>

#include "core/log.h"
#include "dpdk.h"
#include "dpdk_guard.h"

#define RTO_INIT_NS 100000000ull
#define SYN_EVERY_NS 50000000ull
#define FAST_RETX_MAX 32u
#define PACE_SLACK_NS 50000ull

uint64_t dpdk_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int dpdk_ep_failf(struct dpdk_ep *ep, int err, const char *fmt, ...)
{
	if (ep->state == DPDK_EP_FAILED)
		return ep->err;
	char msg[WCCL_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ep->state = DPDK_EP_FAILED;
	ep->err = err;
	dpdk_ep_rx_release(ep); /* never delivered now */
	wccl_ep_fail(&ep->base, WCCL_SUB_DPDK, err, "%s", msg);
	dpdk_ep_flush(ep, err);
	return err;
}

/* Complete every operation still owed on @ep with @err (those the peer
 * already reported done keep their own status). False if the CQ filled. */
bool dpdk_ep_flush(struct dpdk_ep *ep, int err)
{
	if (!ep->base.cq)
		return true;
	struct dpdk_cq *cq = DPDK_CQ(ep->base.cq);
	while (ep->tx_done != ep->tx_post) {
		struct dpdk_txop *op = &ep->tx[ep->tx_done & ep->dmask];
		bool done = dpdk_seq_lt(ep->tx_done, ep->peer_op_done);
		struct wccl_completion c = {
			.cookie = op->cookie,
			.ep = &ep->base,
			.len = done ? op->len : 0,
			.status = done ? op->status : err,
			.op = op->op == DPDK_OP_SEND ? WCCL_OP_SEND
						     : WCCL_OP_WRITE,
		};
		if (!dpdk_cq_push(cq, &c))
			return false;
		if (op->zmr) {
			dpdk_mr_unref(op->zmr);
			op->zmr = NULL;
		}
		ep->tx_done++;
	}
	ep->tx_seg_op = ep->tx_post;
	ep->snd_una = ep->snd_nxt;
	while (ep->rq_done != ep->rq_post) {
		struct dpdk_rxpost *rp = &ep->rq[ep->rq_done & ep->dmask];
		struct wccl_completion c = { .cookie = rp->cookie,
					     .ep = &ep->base,
					     .status = err,
					     .op = WCCL_OP_RECV };
		if (!dpdk_cq_push(cq, &c))
			return false;
		ep->rq_done++;
	}
	return true;
}

/* ---- frames ---- */

static void txq_add(struct dpdk_ctx *ctx, struct rte_mbuf *m, bool data);

/* Test hook: queue @m on the emulated link, due when the frames ahead of
 * it and itself have been serialised at the link's rate. */
static void link_enqueue(struct dpdk_ctx *ctx, struct rte_mbuf *m)
{
	struct dpdk_link *l = &ctx->link;
	if (l->n == DPDK_TXQ_MAX || l->bytes + m->pkt_len > DPDK_LINK_QUEUE) {
		rte_pktmbuf_free(m);
		ctx->st.test_link_drops++;
		return;
	}
	uint64_t start = l->free_ns > ctx->now ? l->free_ns : ctx->now;
	l->free_ns = start + (uint64_t)(m->pkt_len * l->ns_per_byte);
	uint32_t at = (l->head + l->n) % DPDK_TXQ_MAX;
	l->m[at] = m;
	l->due[at] = l->free_ns;
	l->n++;
	l->bytes += m->pkt_len;
}

/* Hand the emulated link's frames that are due (@all: every one) on. */
void dpdk_link_release(struct dpdk_ctx *ctx, bool all)
{
	struct dpdk_link *l = &ctx->link;
	while (l->n && (all || l->due[l->head] <= ctx->now)) {
		struct rte_mbuf *m = l->m[l->head];
		l->head = (l->head + 1) % DPDK_TXQ_MAX;
		l->n--;
		l->bytes -= m->pkt_len;
		txq_add(ctx, m, true);
	}
}

void dpdk_txq_push(struct dpdk_ctx *ctx, struct rte_mbuf *m, bool data)
{
	if (data && ctx->drop_every &&
	    ++ctx->drop_count % ctx->drop_every == 0) {
		rte_pktmbuf_free(m);
		ctx->st.test_dropped++;
		return;
	}
	if (data && ctx->link.ns_per_byte > 0) {
		link_enqueue(ctx, m);
		return;
	}
	txq_add(ctx, m, data);
}

static void txq_add(struct dpdk_ctx *ctx, struct rte_mbuf *m, bool data)
{
	const struct rte_ether_hdr *eth =
		rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) &&
	    ip->dst_addr == ctx->ip) { /* to ourselves: software loopback */
		if (ctx->n_loopq == DPDK_TXQ_MAX) {
			rte_pktmbuf_free(m);
			ctx->st.tx_ring_full++;
			return;
		}
		ctx->loopq[ctx->n_loopq++] = m;
		ctx->st.tx_pkts++;
		return;
	}
	if (data && ctx->corrupt_every &&
	    ++ctx->corrupt_count % ctx->corrupt_every == 0) {
		/* Test hook: one flipped bit after the checksum, on the wire
		 * path only; the receiver must drop the frame. */
		struct rte_mbuf *last = rte_pktmbuf_lastseg(m);
		if (RTE_MBUF_HAS_EXTBUF(last)) /* never the sender's memory */
			last = m;
		rte_pktmbuf_mtod(last, uint8_t *)[last->data_len - 1] ^= 0x10;
		ctx->st.test_corrupted++;
	}
	if (ctx->n_txq == DPDK_TXQ_MAX) {
		dpdk_tx_flush(ctx);
		if (ctx->n_txq == DPDK_TXQ_MAX) {
			rte_pktmbuf_free(m); /* recovered by retransmission */
			ctx->st.tx_ring_full++;
			return;
		}
	}
	ctx->txq[ctx->n_txq++] = m;
	ctx->st.tx_pkts++;
}

void dpdk_tx_flush(struct dpdk_ctx *ctx)
{
	if (!ctx->n_txq || !ctx->link_up)
		return;
	if (ctx->swap)
		for (uint32_t i = 0; i + 1 < ctx->n_txq; i += 2) {
			struct rte_mbuf *t = ctx->txq[i];
			ctx->txq[i] = ctx->txq[i + 1];
			ctx->txq[i + 1] = t;
		}
	if (!dpdk_pmd_enter())
		return;
	uint16_t sent = rte_eth_tx_burst(ctx->port, 0, ctx->txq,
					 (uint16_t)ctx->n_txq);
	dpdk_pmd_leave();
	if (sent < ctx->n_txq)
		memmove(ctx->txq, ctx->txq + sent,
			(ctx->n_txq - sent) * sizeof(ctx->txq[0]));
	ctx->n_txq -= sent;
}

/* One's complement sum of the UDP datagram (@ulen bytes after the IPv4
 * header of @m, across segments) and its pseudo header; 0xffff = valid. */
static uint16_t udp_sum(const struct rte_mbuf *m, const struct rte_ipv4_hdr *ip,
			uint32_t ulen)
{
	uint16_t raw;
	if (rte_raw_cksum_mbuf(m, DPDK_L2L3_LEN - 8u, ulen, &raw))
		return 0;
	uint32_t s = (uint32_t)raw + rte_ipv4_phdr_cksum(ip, 0);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* Checksums of a received frame: what the device vouched for, the rest
 * in software. A zero UDP checksum means none was sent (RFC 768). */
static bool csum_ok(const struct dpdk_ctx *ctx, const struct rte_mbuf *m,
		    const struct rte_ipv4_hdr *ip, uint16_t ulen)
{
	bool ip_good = false, l4_good = false;
	if (ctx->rx_csum_hw) {
		uint64_t ipf = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
		uint64_t l4f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
		if (ipf == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
		    l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD)
			return false;
		ip_good = ipf == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
		l4_good = l4f == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	}
	if (!ip_good && rte_raw_cksum(ip, sizeof(*ip)) != 0xffff)
		return false;
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	return l4_good || !udp->dgram_cksum || udp_sum(m, ip, ulen) == 0xffff;
}

/* An Ethernet/IPv4/UDP frame around @h and @plen payload bytes. */
static struct rte_mbuf *build_frame(struct dpdk_ctx *ctx,
				    const struct rte_ether_addr *dmac,
				    uint32_t dip, uint16_t sport, uint16_t dport,
				    const struct dpdk_wire_hdr *h,
				    const uint8_t *payload, uint16_t plen,
				    struct dpdk_mr *zmr)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ctx->pool);
	if (!m)
		return NULL;
	size_t hs = dpdk_wire_hdr_size(h);
	uint16_t hdr = (uint16_t)(DPDK_L2L3_LEN + hs);
	uint16_t total = (uint16_t)(hdr + plen);
	/* Headers and what fits in the first segment; the rest of a jumbo
	 * payload goes in chained segments (the port was checked for
	 * multi-segment TX when the MTU needs it). */
	uint16_t room = rte_pktmbuf_tailroom(m);
	uint16_t first = room <= hdr || zmr ? 0
		       : (plen < room - hdr ? plen : (uint16_t)(room - hdr));
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(hdr + first));
	if (!p) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;
	rte_ether_addr_copy(dmac, &eth->dst_addr);
	rte_ether_addr_copy(&ctx->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(total - 14));
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = ctx->ip;
	ip->dst_addr = dip;
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	udp->src_port = rte_cpu_to_be_16(sport);
	udp->dst_port = rte_cpu_to_be_16(dport);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(total - 34));
	udp->dgram_cksum = 0;
	uint8_t *w = (uint8_t *)(udp + 1);
	dpdk_wire_encode(h, w);
	if (first)
		memcpy(w + hs, payload, first);
	if (zmr && plen) {
		/* Zero copy: a second mbuf attached to the payload where it
		 * lies in the registered region (no DMA address: only for
		 * ports that copy by CPU, see dpdk_port_conf). */
		struct rte_mbuf *z = rte_pktmbuf_alloc(ctx->pool);
		if (!z) {
			rte_pktmbuf_free(m);
			return NULL;
		}
		rte_mbuf_ext_refcnt_update(&zmr->shinfo, 1);
		rte_pktmbuf_attach_extbuf(z, (void *)(uintptr_t)payload,
					  RTE_BAD_IOVA, plen, &zmr->shinfo);
		z->data_len = plen;
		z->pkt_len = plen;
		if (rte_pktmbuf_chain(m, z)) {
			rte_pktmbuf_free(z);
			rte_pktmbuf_free(m);
			return NULL;
		}
		ctx->st.tx_zcopy++;
	}
	for (uint16_t done = zmr ? plen : first; done < plen;) {
		struct rte_mbuf *s = rte_pktmbuf_alloc(ctx->pool);
		if (!s) {
			rte_pktmbuf_free(m);
			return NULL;
		}
		uint16_t n = rte_pktmbuf_tailroom(s);
		if (n > plen - done)
			n = (uint16_t)(plen - done);
		memcpy(rte_pktmbuf_append(s, n), payload + done, n);
		if (rte_pktmbuf_chain(m, s)) {
			rte_pktmbuf_free(s);
			rte_pktmbuf_free(m);
			return NULL;
		}
		done = (uint16_t)(done + n);
	}
	if (ctx->tx_csum_hw) {
		m->l2_len = sizeof(struct rte_ether_hdr);
		m->l3_len = sizeof(struct rte_ipv4_hdr);
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
		if (ctx->udp_csum) {
			m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
			udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		}
	} else {
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		if (ctx->udp_csum) {
			uint16_t c = (uint16_t)~udp_sum(m, ip, total - 34u);
			udp->dgram_cksum = c ? c : 0xffff; /* RFC 768 */
		}
	}
	return m;
}

static void compute_sack(struct dpdk_ep *ep)
{
	ep->n_sack = 0;
	ep->sack_dirty = false;
	uint32_t s = ep->rcv_nxt + 1;
	while (dpdk_seq_lt(s, ep->rcv_high) && ep->n_sack < DPDK_WIRE_MAX_SACK) {
		if (!ep->rx[s & ep->wmask].m) {
			s++;
			continue;
		}
		uint32_t start = s;
		while (dpdk_seq_lt(s, ep->rcv_high) && ep->rx[s & ep->wmask].m)
			s++;
		ep->sack[ep->n_sack++] = (struct dpdk_sack){ start, s };
	}
}

/* Frame @h to the peer with our ACK state on it. */
static struct rte_mbuf *ep_frame(struct dpdk_ep *ep, struct dpdk_wire_hdr *h,
				 const uint8_t *payload, uint16_t plen,
				 struct dpdk_mr *zmr)
{
	struct dpdk_ctx *ctx = ep->ctx;
	h->dst_conn = ep->peer_conn;
	h->src_conn = ep->conn_id;
	h->ack = ep->rcv_nxt;
	h->op_done = ep->rx_op_done;
	h->op_seen = ep->tx_done;
	h->wnd = ep->window;
	if (ep->sack_dirty)
		compute_sack(ep);
	h->n_sack = (uint8_t)ep->n_sack;
	memcpy(h->sack, ep->sack, sizeof(ep->sack[0]) * ep->n_sack);
	h->n_rej = (uint8_t)ep->n_rej;
	memcpy(h->rej, ep->rej, sizeof(ep->rej[0]) * ep->n_rej);
	static const struct rte_ether_addr bcast = {
		.addr_bytes = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }
	};
	const struct rte_ether_addr *dmac =
		ep->mac_known ? &ep->peer_mac
			      : (ctx->have_peer_mac ? &ctx->peer_mac : &bcast);
	struct rte_mbuf *m = build_frame(ctx, dmac, ep->peer_ip, ep->local_port,
					 ep->peer_port, h, payload, plen, zmr);
	if (m) {
		ep->ack_pending = false;
		ep->last_tx_ns = ctx->now;
	}
	return m;
}

void dpdk_send_ctrl(struct dpdk_ep *ep, uint8_t type)
{
	struct dpdk_wire_hdr h = { .type = type };
	if (type == DPDK_PKT_FIN) /* all we sent: the peer checks it has it */
		h.seq = ep->snd_nxt;
	if (type == DPDK_PKT_SYN || type == DPDK_PKT_SYNACK) {
		h.key = ep->window;
		h.offset = ep->ctx->frag_max;
	}
	struct rte_mbuf *m = ep_frame(ep, &h, NULL, 0, NULL);
	if (m)
		dpdk_txq_push(ep->ctx, m, false);
}

/* RST to the sender of a packet that names no connection of ours. */
static void reply_rst(struct dpdk_ctx *ctx, const struct rte_ether_hdr *eth,
		      uint32_t sip, uint16_t sport, uint16_t dport,
		      const struct dpdk_wire_hdr *in)
{
	struct dpdk_wire_hdr h = { .type = DPDK_PKT_RST,
				   .dst_conn = in->src_conn,
				   .src_conn = in->dst_conn };
	struct rte_mbuf *m =
		build_frame(ctx, &eth->src_addr, sip, dport, sport, &h, NULL, 0,
			    NULL);
	if (m)
		dpdk_txq_push(ctx, m, false);
}

/* ---- pacing ---- */

static bool tbucket_take(struct dpdk_tbucket *b, uint64_t now, uint32_t bytes)
{
	if (now > b->ns) {
		b->tokens += (double)(now - b->ns) * 1e-3 * b->rate;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->ns = now;
	}
	if (b->tokens < bytes)
		return false;
	b->tokens -= bytes;
	return true;
}

/* May @ep send @bytes (wire) now? Takes them if so. */
static bool pace_take(struct dpdk_ep *ep, uint32_t bytes)
{
	struct dpdk_ctx *ctx = ep->ctx;
	uint64_t rate = dpdk_model_paces(ep) ? ep->cc.pacing_rate : 0;
	if (rate && ctx->now < ep->pace_next_ns)
		return false;
	if (ctx->rate_max > 0 && !tbucket_take(&ctx->pace, ctx->now, bytes))
		return false;
	if (rate) {
		uint64_t t = ep->pace_next_ns;
		if (t + PACE_SLACK_NS < ctx->now)
			t = ctx->now - PACE_SLACK_NS;
		ep->pace_next_ns = t + (uint64_t)bytes * 1000000000ull / rate;
	}
	return true;
}

/* ---- transmit ---- */

/* Room for one more data frame of @ep's in the queue it leaves by (the
 * device's, or software loopback to ourselves), a reserve left for the
 * ACKs and control frames of this call. A full device ring (a peer on
 * this host that is not reading: its time slice is over) holds data
 * back, as the pacer does. Dropped here, frames were lost at our own
 * door, a tail of them that only the RTO found, 16 packets per 100 ms
 * (1 MiB writes between two processes pinned to one CPU: p99 100-230 ms
 * against a typical 5-10). */
#define TXQ_CTRL_RESERVE 64u

static bool tx_room(struct dpdk_ep *ep)
{
	struct dpdk_ctx *ctx = ep->ctx;
	if (ep->peer_ip == ctx->ip)
		return ctx->n_loopq + TXQ_CTRL_RESERVE < DPDK_TXQ_MAX;
	if (ctx->n_txq + TXQ_CTRL_RESERVE >= DPDK_TXQ_MAX)
		dpdk_tx_flush(ctx);
	return ctx->n_txq + TXQ_CTRL_RESERVE < DPDK_TXQ_MAX;
}

/* Test hook (WCCL_DPDK_TEST_TAIL_DROP): is @pk among the last tail_drop
 * packets of an op of more than twice that many? */
static bool tail_dropped(const struct dpdk_ctx *ctx,
			 const struct dpdk_txop *op, const struct dpdk_pkt *pk)
{
	uint64_t tail = (uint64_t)ctx->tail_drop * ctx->frag_max;
	return tail && op->len > 2 * tail && op->len - pk->off <= tail;
}

static bool send_pkt(struct dpdk_ep *ep, uint32_t seq, bool retx, bool paced)
{
	struct dpdk_ctx *ctx = ep->ctx;
	struct dpdk_pkt *pk = &ep->pkts[seq & ep->wmask];
	struct dpdk_txop *op = &ep->tx[pk->op_seq & ep->dmask];
	uint32_t cost = DPDK_WIRE_COST(pk->len);
	if (!tx_room(ep))
		return false;
	if (paced && !pace_take(ep, cost))
		return false;
	struct dpdk_wire_hdr h = {
		.type = DPDK_PKT_DATA,
		.seq = seq,
		.op = op->op,
		.flags = pk->flags,
		.op_seq = pk->op_seq,
		.imm = op->imm,
		.key = op->key,
		.offset = pk->off,
		.msg_len = op->len,
		.roff = op->roff,
		.frag_len = pk->len,
	};
	struct dpdk_mr *zmr = op->zmr && pk->len >= ctx->zcopy_min ? op->zmr
								   : NULL;
	struct rte_mbuf *m = ep_frame(ep, &h, op->buf + pk->off, pk->len, zmr);
	if (!m)
		return false;
	/* Rate-sample state as it stands when the packet leaves (each
	 * transmission); a connection with nothing in flight starts a
	 * fresh interval. */
	pace_rs_on_send(&ep->rs, &pk->rs, ctx->now, ep->inflight);
	pk->sent_ns = ctx->now;
	if (retx) {
		pk->retx = 1;
		ctx->st.retransmits++;
	} else {
		ep->inflight += cost;
	}
	ctx->st.tx_data++;
	if (!retx && tail_dropped(ctx, op, pk)) {
		rte_pktmbuf_free(m);
		ctx->st.test_dropped++;
		return true;
	}
	dpdk_txq_push(ctx, m, true);
	return true;
}

/* The model's window, one receive burst of 1500-byte frames at least
 * (46 KB). The peer applies and ACKs up to a burst per poll, so on a
 * path of a few us (memif: min RTT 3-4 us, a BDP of 3 packets) BBR's
 * floor of 4 packets had the two ends wait on each other every round:
 * 1 MiB writes at 1.1-1.3 GB/s against 2.1 at the fixed rate, 64 KiB ones
 * at 0.9-1.2 (with the floor 1.25-1.35 and 1.36-1.42). 64 frames and more
 * let the estimate run away on test_dpdk_pacer's 400 Mbit/s link
 * (1.5-2.4 Gbit/s; its drop-tail queue is 64 KiB): so the floor is in
 * bytes, not 32 jumbo frames. Here, not in the model: its delay target
 * tolerates the queue of its own floor, which this one does not build
 * while paced. */
#define MODEL_WINDOW_MIN \
	(DPDK_BURST * DPDK_WIRE_COST(1500u - 28u - DPDK_WIRE_MAX_HDR))

static uint64_t model_window(const struct dpdk_ep *ep)
{
	return ep->cc.cwnd > MODEL_WINDOW_MIN ? ep->cc.cwnd : MODEL_WINDOW_MIN;
}

static void send_new(struct dpdk_ep *ep)
{
	uint32_t wnd = ep->peer_wnd < ep->window ? ep->peer_wnd : ep->window;
	while (ep->snd_nxt - ep->snd_una < wnd) {
		if (ep->tx_seg_op == ep->tx_post) {
			/* Nothing more to send: samples from here on measure
			 * the application until this much is delivered. */
			pace_rs_app_limited(&ep->rs, ep->inflight);
			return;
		}
		struct dpdk_txop *op = &ep->tx[ep->tx_seg_op & ep->dmask];
		uint64_t left = op->len - ep->tx_seg_off;
		uint16_t len = (uint16_t)(left < ep->ctx->frag_max
						  ? left
						  : ep->ctx->frag_max);
		if (dpdk_model_paces(ep) && ep->inflight &&
		    ep->inflight + DPDK_WIRE_COST(len) > model_window(ep))
			return;
		struct dpdk_pkt *pk = &ep->pkts[ep->snd_nxt & ep->wmask];
		pk->op_seq = ep->tx_seg_op;
		pk->off = ep->tx_seg_off;
		pk->len = len;
		pk->flags = (uint8_t)((ep->tx_seg_off ? 0 : DPDK_F_FIRST) |
				      (len == left ? DPDK_F_LAST : 0));
		pk->sacked = 0;
		pk->retx = 0;
		if (!send_pkt(ep, ep->snd_nxt, false, true))
			return;
		if (ep->snd_una == ep->snd_nxt)
			ep->rto_deadline = ep->ctx->now + ep->rto;
		dpdk_loss_on_send(ep);
		ep->snd_nxt++;
		if (len == left) {
			ep->tx_seg_op++;
			ep->tx_seg_off = 0;
		} else {
			ep->tx_seg_off += len;
		}
	}
}

/* Resend what dpdk_pkt_lost finds lost now rather than at the RTO. */
static void fast_retx(struct dpdk_ep *ep)
{
	struct dpdk_ctx *ctx = ep->ctx;
	if (!dpdk_seq_lt(ep->snd_una, ep->sack_high) || !ep->srtt)
		return;
	unsigned n = 0;
	for (uint32_t s = ep->snd_una;
	     dpdk_seq_lt(s, ep->sack_high) && n < FAST_RETX_MAX; s++) {
		if (!dpdk_pkt_lost(ep, s))
			continue;
		/* Paced: by the model, or the port's bucket alone. */
		if (!send_pkt(ep, s, true, true))
			break;
		dpdk_loss_on_send(ep);
		ctx->st.fast_retx++;
		n++;
	}
}

/* @pk has reached the peer (first news of it): its bytes count as
 * delivered now. *@last: of those in this ACK, the one that left with the
 * latest delivery state (the one rate_sample takes). */
static void delivered_one(struct dpdk_ep *ep, const struct dpdk_pkt *pk,
			  const struct dpdk_pkt **last)
{
	uint64_t cost = DPDK_WIRE_COST(pk->len);
	dpdk_loss_delivered(ep, pk);
	pace_rs_delivered(&ep->rs, cost);
	ep->inflight = ep->inflight > cost ? ep->inflight - cost : 0;
	if (!*last || pk->rs.delivered > (*last)->rs.delivered ||
	    (pk->rs.delivered == (*last)->rs.delivered &&
	     pk->sent_ns > (*last)->sent_ns))
		*last = pk;
}

/* One rate sample per ACK with news, from @pk (see the top of this file;
 * its bytes are counted already: length 0). Samples taken while the
 * application had nothing to send, or a quarter of whose interval our
 * stops took (dpdk_stall.c), count only when they raise the estimate;
 * their RTT still feeds the delay signal. */
static void rate_sample(struct dpdk_ep *ep, const struct dpdk_pkt *pk)
{
	uint64_t now = ep->ctx->now;
	struct pace_rs_sample rs;
	pace_rs_on_ack(&ep->rs, &pk->rs, 0, now, 0, 0, 0, &rs);
	uint64_t rtt = pk->retx || now < pk->sent_ns ? 0 : now - pk->sent_ns;
	if (!rs.app_limited && rs.interval_ns && ep->n_stops)
		rs.app_limited =
		    DPDK_STALL_SHARE * dpdk_stall_within(ep, now - rs.interval_ns,
							 now) >=
		    rs.interval_ns;
	if (!rs.app_limited || rs.rate > ep->cc.btlbw)
		pace_model_on_ack(&ep->cc, now, rtt, rs.rate,
				  rs.prior_delivered, ep->rs.delivered,
				  ep->inflight);
	if (rtt)
		pace_model_on_probe(&ep->cc, now, rtt);
}

/* The ACK state any packet from the peer carries. */
static void rx_ack(struct dpdk_ep *ep, const struct dpdk_wire_hdr *h)
{
	struct dpdk_ctx *ctx = ep->ctx;
	const struct dpdk_pkt *last_sent = NULL;
	ep->peer_wnd = h->wnd && h->wnd < ep->window ? h->wnd : ep->window;
	if (dpdk_seq_lt(ep->snd_una, h->ack) &&
	    !dpdk_seq_lt(ep->snd_nxt, h->ack)) {
		for (uint32_t s = ep->snd_una; s != h->ack; s++)
			if (!ep->pkts[s & ep->wmask].sacked)
				delivered_one(ep, &ep->pkts[s & ep->wmask],
					      &last_sent);
		/* Karn: sample only a packet sent once and not SACKed
		 * before, so this ACK is the first news of it. */
		const struct dpdk_pkt *last = &ep->pkts[(h->ack - 1) & ep->wmask];
		if (!last->retx && !last->sacked && ctx->now >= last->sent_ns)
			dpdk_rtt_sample(ep, ctx->now - last->sent_ns);
		else
			dpdk_rto_update(ep); /* new data: undo the backoff */
		uint32_t n = h->ack - ep->snd_una;
		ep->snd_una = h->ack;
		if (dpdk_seq_lt(ep->sack_high, ep->snd_una))
			ep->sack_high = ep->snd_una;
		ep->rto_deadline = ctx->now + ep->rto;
		/* Regrow the port's rate, +1/64 per packet: whoever halved
		 * it (dpdk_model_paces), every connection's ACKs count. */
		if (ctx->pace.rate < ctx->rate_max) {
			ctx->pace.rate += ctx->rate_max * n / 64.0;
			if (ctx->pace.rate > ctx->rate_max)
				ctx->pace.rate = ctx->rate_max;
		}
	}
	for (unsigned i = 0; i < h->n_sack; i++) {
		uint32_t s = h->sack[i].start, e = h->sack[i].end;
		if (dpdk_seq_lt(s, ep->snd_una))
			s = ep->snd_una;
		if (dpdk_seq_lt(ep->snd_nxt, e))
			e = ep->snd_nxt;
		for (; dpdk_seq_lt(s, e); s++) {
			struct dpdk_pkt *pk = &ep->pkts[s & ep->wmask];
			if (!pk->sacked)
				delivered_one(ep, pk, &last_sent);
			pk->sacked = 1;
		}
		if (dpdk_seq_lt(ep->sack_high, e))
			ep->sack_high = e;
	}
	if (last_sent)
		rate_sample(ep, last_sent);
	for (unsigned i = 0; i < h->n_rej; i++) {
		uint32_t q = h->rej[i].op_seq;
		if (!dpdk_seq_lt(q, ep->tx_done) && dpdk_seq_lt(q, ep->tx_seg_op))
			ep->tx[q & ep->dmask].status = -(int32_t)h->rej[i].err;
	}
	/* An op is done only once all its packets are acknowledged: a peer
	 * claiming more would have complete_ops free tx slots that a
	 * retransmit still reads. */
	uint32_t done_max = ep->snd_una == ep->snd_nxt
				    ? ep->tx_seg_op
				    : ep->pkts[ep->snd_una & ep->wmask].op_seq;
	uint32_t done = dpdk_seq_lt(done_max, h->op_done) ? done_max
							  : h->op_done;
	if (dpdk_seq_lt(ep->peer_op_done, done))
		ep->peer_op_done = done;
	if (dpdk_seq_lt(ep->peer_op_seen, h->op_seen) &&
	    !dpdk_seq_lt(ep->rx_op_done, h->op_seen)) {
		ep->peer_op_seen = h->op_seen;
		uint32_t k = 0;
		for (uint32_t i = 0; i < ep->n_rej; i++)
			if (!dpdk_seq_lt(ep->rej[i].op_seq, ep->peer_op_seen))
				ep->rej[k++] = ep->rej[i];
		ep->n_rej = k;
	}
	dpdk_loss_on_ack(ep, last_sent != NULL);
	fast_retx(ep);
}

/* The last packet out not SACKed again, to draw a SACK (dpdk_loss.c). */
static void check_tlp(struct dpdk_ep *ep)
{
	uint32_t s;
	if (!dpdk_tlp_due(ep))
		return;
	if (dpdk_tlp_pick(ep, &s)) {
		if (!send_pkt(ep, s, true, false))
			return; /* no room: try again on the next call */
		ep->ctx->st.tlp_probes++;
	}
	dpdk_loss_on_probe(ep);
}

static void check_rto(struct dpdk_ep *ep)
{
	struct dpdk_ctx *ctx = ep->ctx;
	if (ep->snd_una == ep->snd_nxt || ctx->now < ep->rto_deadline)
		return;
	if (!tx_room(ep)) /* our own queue is full: not a loss, try again */
		return;
	ctx->st.rto_fires++;
	ep->rto = ep->rto * 2 < ctx->rto_max_ns ? ep->rto * 2 : ctx->rto_max_ns;
	if (!dpdk_model_paces(ep)) { /* the model: loss is not congestion */
		ctx->pace.rate /= 2;
		if (ctx->pace.rate < ctx->rate_max / 16)
			ctx->pace.rate = ctx->rate_max / 16;
	}
	unsigned n = 0;
	uint32_t s = ep->snd_una;
	for (; s != ep->snd_nxt && n < DPDK_RTO_RETX_MAX; s++) {
		if (s != ep->snd_una && ep->pkts[s & ep->wmask].sacked)
			continue;
		if (!send_pkt(ep, s, true, false))
			break;
		n++;
	}
	while (s != ep->snd_nxt && ep->pkts[s & ep->wmask].sacked)
		s++;
	if (n)
		dpdk_loss_on_rto(ep, s);
	ep->rto_deadline = ctx->now + ep->rto;
}

/* ---- receive ---- */

static void rx_data(struct dpdk_ep *ep, struct rte_mbuf *m, uint32_t poff,
		    const struct dpdk_wire_hdr *h)
{
	struct dpdk_ctx *ctx = ep->ctx;
	ep->ack_pending = true;
	if (dpdk_seq_lt(h->seq, ep->rcv_nxt)) {
		ctx->st.rx_dup++;
		rte_pktmbuf_free(m);
		return;
	}
	if (h->seq - ep->rcv_nxt >= ep->window) {
		ctx->st.rx_out_of_window++;
		rte_pktmbuf_free(m);
		return;
	}
	struct dpdk_rxslot *sl = &ep->rx[h->seq & ep->wmask];
	if (sl->m) {
		ctx->st.rx_dup++;
		rte_pktmbuf_free(m);
		return;
	}
	if (h->seq != ep->rcv_nxt &&
	    ((!ep->base.cq && h->seq - ep->rcv_nxt >= DPDK_RX_UNACCEPTED) ||
	     ctx->rx_held >= DPDK_RX_HELD_MAX)) {
		ctx->st.rx_not_held++;
		rte_pktmbuf_free(m);
		return;
	}
	if (h->seq != ep->rcv_high)
		ctx->st.rx_reordered++; /* a gap opened or a hole filled */
	sl->m = m;
	ctx->rx_held++;
	sl->poff = poff;
	sl->h = *h;
	if (dpdk_seq_lt(ep->rcv_high, h->seq + 1))
		ep->rcv_high = h->seq + 1;
	ep->sack_dirty = true;
	ctx->st.rx_data++;
}

/* Where a FIRST fragment's op lands: the posted receive @rp or a checked
 * region. Sets *@dest and *@mr when it may land, returns its status. */
static int32_t rx_first_dest(struct dpdk_ep *ep, const struct dpdk_wire_hdr *h,
			     const struct dpdk_rxpost *rp, uint8_t **dest,
			     const struct dpdk_mr **mrp)
{
	*dest = NULL;
	*mrp = NULL;
	if (h->op == DPDK_OP_SEND) {
		if (h->msg_len > rp->len)
			return WCCL_ETRUNCATED;
		*dest = rp->buf;
		return 0;
	}
	struct dpdk_mr *mr = dpdk_mr_lookup(ep->ctx, h->key);
	if (!mr)
		return WCCL_EREMOTE_KEY;
	if (!(mr->base.access & WCCL_ACCESS_REMOTE_WRITE))
		return WCCL_EREMOTE_ACCESS;
	if (h->roff > mr->base.len || h->msg_len > mr->base.len - h->roff)
		return WCCL_EREMOTE_BOUNDS;
	*dest = (uint8_t *)mr->base.addr + h->roff;
	*mrp = mr;
	return 0;
}

/* Does @h continue the op its FIRST opened, in order? 0 or the failure. */
static int rx_check_frag(struct dpdk_ep *ep, const struct dpdk_wire_hdr *h)
{
	bool first = h->flags & DPDK_F_FIRST;
	if (first && ep->cur_active)
		return dpdk_ep_failf(ep, WCCL_EPROTO,
				     "packet %u starts op %u again before "
				     "its last fragment", h->seq, h->op_seq);
	if (!first && !ep->cur_active)
		return dpdk_ep_failf(ep, WCCL_EPROTO,
				     "packet %u continues op %u, which no "
				     "first fragment started", h->seq,
				     h->op_seq);
	if (!first && (h->op != ep->cur_op || h->msg_len != ep->cur_len ||
		       h->key != ep->cur_key || h->roff != ep->cur_roff ||
		       h->imm != ep->cur_imm))
		return dpdk_ep_failf(ep, WCCL_EPROTO,
				     "packet %u of op %u disagrees with the "
				     "op's first fragment (op %u/%u, length "
				     "%llu/%llu)", h->seq, h->op_seq, h->op,
				     ep->cur_op,
				     (unsigned long long)h->msg_len,
				     (unsigned long long)ep->cur_len);
	uint64_t next = first ? 0 : ep->cur_next;
	if (h->offset != next)
		return dpdk_ep_failf(ep, WCCL_EPROTO,
				     "packet %u of op %u at offset %llu, "
				     "expected %llu", h->seq, h->op_seq,
				     (unsigned long long)h->offset,
				     (unsigned long long)next);
	if ((h->flags & DPDK_F_LAST) && h->offset + h->frag_len != h->msg_len)
		return dpdk_ep_failf(ep, WCCL_EPROTO,
				     "packet %u ends op %u at %llu of %llu "
				     "bytes", h->seq, h->op_seq,
				     (unsigned long long)(h->offset +
							  h->frag_len),
				     (unsigned long long)h->msg_len);
	return 0;
}

/* Apply the packet at rcv_nxt: 0 done, -WCCL_EAGAIN not yet (no posted
 * receive, no CQ room, or the endpoint is not accepted yet). Nothing is
 * committed before the EAGAIN checks, so a retry sees the same state. */
static int rx_apply(struct dpdk_ep *ep, struct dpdk_rxslot *sl)
{
	const struct dpdk_wire_hdr *h = &sl->h;
	if (!ep->base.cq)
		return WCCL_EAGAIN;
	struct dpdk_cq *cq = DPDK_CQ(ep->base.cq);
	if (h->op_seq != ep->rx_op_done)
		return dpdk_ep_failf(ep, WCCL_EPROTO,
				     "packet %u carries op %u, expected op %u",
				     h->seq, h->op_seq, ep->rx_op_done);
	int rc = rx_check_frag(ep, h);
	if (rc)
		return rc;
	struct dpdk_rxpost *rp = &ep->rq[ep->rq_done & ep->dmask];
	bool first = h->flags & DPDK_F_FIRST, last = h->flags & DPDK_F_LAST;
	int32_t st = ep->cur_status;
	uint8_t *dest = ep->cur_dest;
	const struct dpdk_mr *mr = ep->cur_mr;
	if (first) {
		if (h->op == DPDK_OP_SEND && ep->rq_done == ep->rq_post)
			return WCCL_EAGAIN;
		st = rx_first_dest(ep, h, rp, &dest, &mr);
	}
	if (last && (cq->count >= cq->cap ||
		     (st && ep->n_rej == DPDK_WIRE_MAX_REJ)))
		return WCCL_EAGAIN;
	if (first) {
		ep->cur_active = true;
		ep->cur_op = h->op;
		ep->cur_imm = h->imm;
		ep->cur_len = h->msg_len;
		ep->cur_key = h->key;
		ep->cur_roff = h->roff;
		ep->cur_next = 0;
		ep->cur_status = st;
		ep->cur_dest = dest;
		ep->cur_mr = mr;
	}
	/* In bounds: the FIRST checked [0, cur_len) at cur_dest, and the
	 * decoder keeps offset + frag_len within msg_len == cur_len. */
	if (!ep->cur_status && h->frag_len) {
		/* Copied straight into place, across segments if chained. */
		uint8_t *dst = ep->cur_dest + h->offset;
		const void *src = rte_pktmbuf_read(sl->m, sl->poff, h->frag_len,
						   dst);
		if (!src)
			return dpdk_ep_failf(ep, WCCL_EPROTO,
					     "packet %u shorter than its "
					     "fragment", h->seq);
		if (src != dst)
			memcpy(dst, src, h->frag_len);
	}
	ep->cur_next += h->frag_len;
	if (!last)
		return 0;
	st = ep->cur_status;
	ep->cur_active = false;
	ep->cur_dest = NULL;
	ep->cur_mr = NULL;
	struct wccl_completion c = { .ep = &ep->base,
				     .len = ep->cur_len,
				     .status = st };
	bool push = true;
	if (ep->cur_op == DPDK_OP_SEND) {
		c.cookie = rp->cookie;
		c.op = WCCL_OP_RECV;
		ep->rq_done++;
	} else if (st) {
		c.op = WCCL_OP_ERROR;
		ep->ctx->st.rejected_writes++;
		WCCL_INFO(WCCL_SUB_DPDK, "%s: rejected write key %#llx "
					 "offset %llu len %llu: %s",
			  ep->base.peer, (unsigned long long)ep->cur_key,
			  (unsigned long long)ep->cur_roff,
			  (unsigned long long)ep->cur_len,
			  wccl_strerror(st));
	} else if (ep->cur_op == DPDK_OP_WRITE_IMM) {
		c.op = WCCL_OP_WRITE_IMM;
		c.imm = ep->cur_imm;
	} else {
		push = false;
	}
	if (push)
		dpdk_cq_push(cq, &c);
	if (st)
		ep->rej[ep->n_rej++] =
			(struct dpdk_rej){ h->op_seq, (uint32_t)-st };
	ep->rx_op_done++;
	return 0;
}

/* Free what @ep's reorder ring holds (failed or going away). */
void dpdk_ep_rx_release(struct dpdk_ep *ep)
{
	if (!ep->rx)
		return;
	for (uint32_t i = 0; i < ep->window; i++)
		if (ep->rx[i].m) {
			rte_pktmbuf_free(ep->rx[i].m);
			ep->rx[i].m = NULL;
			ep->ctx->rx_held--;
		}
}

static void rx_deliver(struct dpdk_ep *ep)
{
	while (ep->state == DPDK_EP_READY) {
		struct dpdk_rxslot *sl = &ep->rx[ep->rcv_nxt & ep->wmask];
		if (!sl->m || rx_apply(ep, sl))
			return;
		rte_pktmbuf_free(sl->m);
		sl->m = NULL;
		ep->ctx->rx_held--;
		ep->rcv_nxt++;
		ep->ack_pending = true;
		ep->sack_dirty = true;
	}
}

static void complete_ops(struct dpdk_ep *ep)
{
	if (!ep->base.cq)
		return;
	struct dpdk_cq *cq = DPDK_CQ(ep->base.cq);
	while (ep->tx_done != ep->peer_op_done) {
		struct dpdk_txop *op = &ep->tx[ep->tx_done & ep->dmask];
		struct wccl_completion c = {
			.cookie = op->cookie,
			.ep = &ep->base,
			.len = op->len,
			.status = op->status,
			.op = op->op == DPDK_OP_SEND ? WCCL_OP_SEND
						     : WCCL_OP_WRITE,
		};
		if (!dpdk_cq_push(cq, &c))
			return;
		if (op->zmr) {
			dpdk_mr_unref(op->zmr);
			op->zmr = NULL;
		}
		ep->tx_done++;
	}
}

void dpdk_ep_service(struct dpdk_ep *ep)
{
	struct dpdk_ctx *ctx = ep->ctx;
	uint64_t now = ctx->now;
	switch (ep->state) {
	case DPDK_EP_FAILED:
		dpdk_ep_flush(ep, ep->err);
		return;
	case DPDK_EP_SYN_SENT:
		if (now >= ep->deadline_ns) {
			dpdk_ep_failf(ep, WCCL_ETIMEDOUT,
				      "no answer to the connection request");
		} else if (now >= ep->syn_next_ns &&
			   (ctx->link_up || ep->peer_ip == ctx->ip) &&
			   dpdk_ep_resolve(ep)) {
			dpdk_send_ctrl(ep, DPDK_PKT_SYN);
			ep->syn_next_ns = now + SYN_EVERY_NS;
		}
		return;
	default:
		break;
	}
	if (now > ep->last_rx_ns && now - ep->last_rx_ns > ctx->peer_timeout_ns) {
		dpdk_ep_failf(ep, WCCL_EPEER_LOST,
			      "silent for %llu ms (WCCL_DPDK_PEER_TIMEOUT_MS)",
			      (unsigned long long)(now - ep->last_rx_ns) /
				      1000000ull);
		return;
	}
	rx_deliver(ep);
	if (ep->state != DPDK_EP_READY)
		return;
	complete_ops(ep);
	fast_retx(ep);
	check_tlp(ep);
	check_rto(ep);
	send_new(ep);
	if (ep->ack_pending ||
	    (now > ep->last_tx_ns &&
	     now - ep->last_tx_ns > ctx->peer_timeout_ns / 4))
		dpdk_send_ctrl(ep, DPDK_PKT_ACK);
}

/* ---- demultiplexing ---- */

/* @local: from our own software loopback (checksums not filled in when
 * offloaded, and nothing to verify). */
static void rx_frame(struct dpdk_ctx *ctx, struct rte_mbuf *m, bool local)
{
	ctx->st.rx_pkts++;
	uint32_t flen = m->pkt_len;
	if (flen < DPDK_L2L3_LEN || m->data_len < DPDK_L2L3_LEN)
		goto malformed;
	if (m->nb_segs > 1)
		ctx->st.rx_multiseg++;
	/* The headers, contiguous (copied only if a chain splits them). */
	uint8_t hbuf[DPDK_L2L3_LEN + DPDK_WIRE_MAX_HDR];
	const uint8_t *p = rte_pktmbuf_read(
		m, 0, flen < sizeof(hbuf) ? flen : (uint32_t)sizeof(hbuf), hbuf);
	const struct rte_ether_hdr *eth = (const struct rte_ether_hdr *)p;
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		dpdk_rx_arp(ctx, m);
		rte_pktmbuf_free(m);
		return;
	}
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		goto unknown;
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
	if (ip->dst_addr != ctx->ip)
		goto unknown;
	if (ip->next_proto_id == IPPROTO_ICMP && dpdk_rx_icmp(ctx, m))
		return; /* answered with the same mbuf */
	if (ip->next_proto_id != IPPROTO_UDP)
		goto unknown;
	uint16_t tot = rte_be_to_cpu_16(ip->total_length);
	if (ip->version_ihl != RTE_IPV4_VHL_DEF || tot < 28 || tot > flen - 14 ||
	    (rte_be_to_cpu_16(ip->fragment_offset) &
	     (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
		goto malformed;
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	uint16_t ulen = rte_be_to_cpu_16(udp->dgram_len);
	if (ulen < 8 || ulen > tot - 20)
		goto malformed;
	if (!local && !csum_ok(ctx, m, ip, ulen)) {
		ctx->st.rx_bad_csum++;
		rte_pktmbuf_free(m);
		return;
	}
	const uint8_t *w = (const uint8_t *)(udp + 1);
	/* hbuf holds min(ulen - 8, DPDK_WIRE_MAX_HDR) bytes at w: all the
	 * decoder reads; it checks frag_len against the full ulen - 8. */
	uint16_t sport = rte_be_to_cpu_16(udp->src_port);
	uint16_t dport = rte_be_to_cpu_16(udp->dst_port);
	struct dpdk_wire_hdr h;
	int hs = dpdk_wire_decode(w, ulen - 8u, &h);
	if (hs == WCCL_EPROTONOSUPPORT) {
		WCCL_INFO(WCCL_SUB_DPDK, "wire version %u from port %u "
					 "(we speak %u): RST",
			  h.version, sport, DPDK_WIRE_VERSION);
		reply_rst(ctx, eth, ip->src_addr, sport, dport, &h);
		goto malformed;
	}
	if (hs < 0)
		goto malformed;
	if (h.type == DPDK_PKT_SYN && !h.dst_conn) {
		dpdk_rx_syn(ctx, eth, ip->src_addr, sport, dport, &h);
		rte_pktmbuf_free(m);
		return;
	}
	struct dpdk_ep *ep = ctx->eps[h.dst_conn % DPDK_EP_SLOTS];
	if (!ep || ep->conn_id != h.dst_conn || ep->peer_ip != ip->src_addr ||
	    (ep->state != DPDK_EP_SYN_SENT && ep->peer_conn != h.src_conn)) {
		if (h.type == DPDK_PKT_DATA)
			reply_rst(ctx, eth, ip->src_addr, sport, dport, &h);
		goto unknown;
	}
	if (ep->state == DPDK_EP_FAILED)
		goto unknown;
	ep->last_rx_ns = ctx->now;
	switch (h.type) {
	case DPDK_PKT_SYNACK:
		if (ep->state == DPDK_EP_SYN_SENT) {
			/* Learnt from the answer to our SYN only: any frame
			 * naming our conn id (a guess, or an RST) could have
			 * pointed all our traffic elsewhere. */
			if (!ep->mac_known) {
				rte_ether_addr_copy(&eth->src_addr,
						    &ep->peer_mac);
				ep->mac_known = true;
			}
			ep->peer_conn = h.src_conn;
			if (h.key && h.key < ep->window)
				ep->peer_wnd = (uint32_t)h.key;
			ep->state = DPDK_EP_READY;
			WCCL_INFO(WCCL_SUB_DPDK, "%s: connected (conn %#x/%#x)",
				  ep->base.peer, ep->conn_id, ep->peer_conn);
		}
		break;
	case DPDK_PKT_ACK:
		if (ep->state == DPDK_EP_READY)
			rx_ack(ep, &h);
		break;
	case DPDK_PKT_DATA:
		if (ep->state != DPDK_EP_READY)
			break;
		rx_ack(ep, &h);
		if (h.frag_len > ctx->st.rx_max_frag)
			ctx->st.rx_max_frag = h.frag_len;
		rx_data(ep, m, DPDK_L2L3_LEN + (uint32_t)hs, &h);
		return;
	case DPDK_PKT_FIN:
		if (ep->state == DPDK_EP_READY) { /* its ACK state first */
			rx_ack(ep, &h);
			complete_ops(ep);
		}
		if (ep->tx_done == ep->tx_post && ep->rcv_nxt == h.seq &&
		    ep->rcv_nxt == ep->rcv_high) {
			/* Orderly (news, as on uring): nothing of ours in
			 * flight, and all the peer sent (seq: its snd_nxt)
			 * applied here. Posted receives fail with
			 * EPEER_LOST either way. */
			bool rq = ep->rq_done != ep->rq_post;
			ep->state = DPDK_EP_FAILED;
			ep->err = WCCL_EPEER_LOST;
			dpdk_ep_rx_release(ep);
			wccl_ep_closed(&ep->base, WCCL_SUB_DPDK, WCCL_EPEER_LOST,
				       "peer closed the connection%s",
				       rq ? "; posted receives flushed" : "");
		} else {
			dpdk_ep_failf(ep, WCCL_EPEER_LOST,
				      "peer closed the connection with "
				      "operations in flight");
		}
		break;
	case DPDK_PKT_RST:
		dpdk_ep_failf(ep,
			      ep->state == DPDK_EP_SYN_SENT ? WCCL_ECONNREFUSED
							    : WCCL_ECONNRESET,
			      "peer reset the connection (nobody listens, "
			      "or another wire version)");
		break;
	default:
		goto unknown;
	}
	rte_pktmbuf_free(m);
	return;
malformed:
	ctx->st.rx_malformed++;
	rte_pktmbuf_free(m);
	return;
unknown:
	ctx->st.rx_unknown++;
	rte_pktmbuf_free(m);
}

int dpdk_progress(struct dpdk_ctx *ctx)
{
	ctx->now = dpdk_now_ns();
	dpdk_stall_check(ctx);
	if (ctx->now >= ctx->link_check_ns) {
		struct rte_eth_link link;
		memset(&link, 0, sizeof(link));
		bool up = rte_eth_link_get_nowait(ctx->port, &link) == 0 &&
			  link.link_status == RTE_ETH_LINK_UP;
		if (up && !ctx->link_up) {
			WCCL_INFO(WCCL_SUB_DPDK, "port %u link up", ctx->port);
			ctx->link_up = true;
			dpdk_arp_announce(ctx);
		}
		if (!up && ctx->link_up) {
			/* On a point-to-point vdev (memif) this is the peer
			 * process dying: fail its connections now rather than
			 * after WCCL_DPDK_PEER_TIMEOUT_MS. */
			WCCL_INFO(WCCL_SUB_DPDK, "port %u link down", ctx->port);
			for (uint32_t i = 0; i < DPDK_EP_SLOTS; i++) {
				struct dpdk_ep *ep = ctx->eps[i];
				if (ep && ep->peer_ip != ctx->ip &&
				    ep->state == DPDK_EP_READY)
					dpdk_ep_failf(ep, WCCL_EPEER_LOST,
						      "link down on port %u "
						      "(peer gone)",
						      ctx->port);
			}
		}
		ctx->link_up = up;
		ctx->link_check_ns = ctx->now + (up ? 50000000ull : 5000000ull);
	}
	struct rte_mbuf *pkts[DPDK_BURST];
	for (int round = 0; round < 8 && dpdk_pmd_enter(); round++) {
		uint16_t n = rte_eth_rx_burst(ctx->port, 0, pkts, DPDK_BURST);
		dpdk_pmd_leave();
		for (uint16_t i = 0; i < n; i++)
			rx_frame(ctx, pkts[i], false);
		if (n < DPDK_BURST)
			break;
	}
	if (ctx->n_loopq) {
		uint32_t n = ctx->n_loopq;
		struct rte_mbuf *loop[DPDK_TXQ_MAX];
		memcpy(loop, ctx->loopq, n * sizeof(loop[0]));
		ctx->n_loopq = 0;
		for (uint32_t i = 0; i < n; i++)
			rx_frame(ctx, loop[i], true);
	}
	bool out = false;
	for (uint32_t i = 0; i < DPDK_EP_SLOTS; i++) {
		struct dpdk_ep *ep = ctx->eps[i];
		if (!ep)
			continue;
		dpdk_ep_service(ep);
		out |= dpdk_ep_has_data_out(ep);
	}
	dpdk_link_release(ctx, false);
	dpdk_tx_flush(ctx);
	dpdk_stall_end(ctx, out);
	return 0;
}

/* ---- posting ---- */

static int tx_post(struct dpdk_ep *ep, uint8_t wop, const void *buf,
		   size_t len, struct wccl_mr *mr, uint64_t key, uint64_t roff,
		   uint32_t imm, uint64_t cookie)
{
	if (ep->state == DPDK_EP_FAILED)
		return ep->err;
	if (ep->state != DPDK_EP_READY)
		return WCCL_ENOTCONN;
	if (len > DPDK_WIRE_MAX_MSG)
		return WCCL_EMSGSIZE;
	if (!buf && len)
		return WCCL_EINVAL;
	if (ep->tx_post - ep->tx_done >= ep->depth)
		return WCCL_EAGAIN;
	struct dpdk_txop *op = &ep->tx[ep->tx_post & ep->dmask];
	op->buf = buf;
	op->len = len;
	op->cookie = cookie;
	op->key = key;
	op->roff = roff;
	op->imm = imm;
	op->op = wop;
	op->status = 0;
	op->zmr = NULL;
	if (mr && ep->ctx->zcopy_min && len >= ep->ctx->zcopy_min) {
		op->zmr = DPDK_MR(mr); /* held until the op completes */
		rte_mbuf_ext_refcnt_update(&op->zmr->shinfo, 1);
	}
	ep->tx_post++;
	/* Start it now: fewer round trips through cq_poll for small ops. */
	ep->ctx->now = dpdk_now_ns();
	send_new(ep);
	dpdk_link_release(ep->ctx, false);
	dpdk_tx_flush(ep->ctx);
	return 0;
}

int dpdk_post_send(struct wccl_endpoint *e, const void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie)
{
	if (!e)
		return WCCL_EINVAL;
	return tx_post(DPDK_EP(e), DPDK_OP_SEND, buf, len, mr, 0, 0, 0,
		       cookie);
}

int dpdk_post_write(struct wccl_endpoint *e, const void *buf, size_t len,
		    struct wccl_mr *mr, const struct wccl_rkey *rk,
		    uint64_t offset, uint32_t imm, uint32_t flags,
		    uint64_t cookie)
{
	if (!e || !rk || (flags & ~(uint32_t)WCCL_WRITE_IMM))
		return WCCL_EINVAL;
	return tx_post(DPDK_EP(e),
		       (flags & WCCL_WRITE_IMM) ? DPDK_OP_WRITE_IMM
						: DPDK_OP_WRITE,
		       buf, len, mr, rk->key, offset, imm, cookie);
}

int dpdk_post_recv(struct wccl_endpoint *e, void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie)
{
	(void)mr;
	if (!e)
		return WCCL_EINVAL;
	struct dpdk_ep *ep = DPDK_EP(e);
	if (ep->state == DPDK_EP_FAILED)
		return ep->err;
	if (!buf && len)
		return WCCL_EINVAL;
	if (ep->rq_post - ep->rq_done >= ep->depth)
		return WCCL_EAGAIN;
	ep->rq[ep->rq_post & ep->dmask] =
		(struct dpdk_rxpost){ buf, len, cookie };
	ep->rq_post++;
	return 0;
}
