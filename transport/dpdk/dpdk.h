/* SPDX-License-Identifier: MIT */
#ifndef WCCL_DPDK_H
#define WCCL_DPDK_H

/*
 * dpdk provider internals: UDP/IPv4 over one ethdev port, one context per
 * process, no threads. cq_poll drives dpdk_progress(): rx_burst, demux by
 * connection id, in-order delivery, timers, paced transmission, tx_burst.
 *
 * Per connection and direction (u32 sequence spaces, wrap-safe):
 *   ops:     tx_done <= peer_op_done <= tx_seg_op <= tx_post
 *   packets: snd_una <= snd_nxt,   rx: rcv_nxt .. rcv_nxt + window
 * A packet holds one fragment of one op. The receiver applies packets in
 * seq order straight into the posted receive / checked region, then counts
 * the op in op_done; the initiator completes an op once a header reports
 * op_done past it (rejections ride in every header, see dpdk_wire.h).
 */
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <stdbool.h>
#include <stdlib.h>

#include "dpdk_stats.h"
#include "dpdk_wire.h"
#include "transport/pacing/pace_model.h"
#include "transport/provider.h"

#define DPDK_MR_SLOTS 4096u
#define DPDK_EP_SLOTS 1024u
#define DPDK_BURST 32u
/* Stops remembered per connection: a sample over a long path (40 ms)
 * may span several of >= 200 us (dpdk_stall.c). */
#define DPDK_EP_STOPS 8u
#define DPDK_TXQ_MAX 512u
#define DPDK_ACCEPT_MAX 64u
#define DPDK_L2L3_LEN (14u + 20u + 8u)
#define DPDK_NEIGH_MAX 256u
#define DPDK_POOL_MBUFS 16383u
/* Mbufs the reorder rings may hold in all, well below the pool less the
 * RX ring, so received packets can never starve the port; past it only
 * each connection's next in-order packet is kept (the sender resends the
 * rest). A connection not accepted yet holds at most DPDK_RX_UNACCEPTED:
 * anyone can open one with a SYN. */
#define DPDK_RX_HELD_MAX (DPDK_POOL_MBUFS / 2)
#define DPDK_RX_UNACCEPTED 8u
/* What a data packet of n payload bytes costs on the wire (no SACK or
 * rejection blocks): pacing, the window and delivery rates count these. */
#define DPDK_WIRE_COST(n) ((n) + DPDK_L2L3_LEN + DPDK_WIRE_HDR_LEN)

/* Token bucket: @rate bytes per us, at most @burst bytes saved up. */
struct dpdk_tbucket {
	double rate, tokens, burst;
	uint64_t ns;
};

/* Test hook (WCCL_DPDK_TEST_LINK_MBPS): data frames leave through an
 * emulated link, a bottleneck the pacer does not know of: serialised at
 * its rate behind a drop-tail queue of DPDK_LINK_QUEUE bytes. */
#define DPDK_LINK_QUEUE 65536u
struct dpdk_link {
	double ns_per_byte; /* 0: no link (off) */
	uint64_t free_ns, bytes;
	uint32_t head, n;
	struct rte_mbuf *m[DPDK_TXQ_MAX];
	uint64_t due[DPDK_TXQ_MAX];
};

struct dpdk_neigh { /* one IPv4 -> MAC entry (dpdk_arp.c) */
	uint32_t ip; /* network order; 0 = free */
	bool known, is_static;
	struct rte_ether_addr mac;
};

/* A registered region. shinfo counts the references that keep this
 * struct alive: 1 while registered, 1 per queued operation that may send
 * from it, 1 per mbuf attached to it (zero-copy TX); the last one frees. */
struct dpdk_mr {
	struct wccl_mr base;
	uint32_t slot;
	struct rte_mbuf_ext_shared_info shinfo;
};

struct dpdk_cq {
	struct wccl_cq base;
	struct wccl_completion *ring;
	uint32_t cap, head, count;
};

struct dpdk_ep;
struct dpdk_listener;

struct dpdk_ctx {
	struct wccl_context base;
	uint16_t port;
	struct rte_mempool *pool;
	struct rte_ether_addr mac;
	uint32_t ip; /* network order */
	uint16_t udp_port;
	bool link_up;
	uint64_t link_check_ns, now;
	/* The start of the last dpdk_progress (0: none yet), and whether a
	 * connection had data out at its end. */
	uint64_t poll_ns;
	bool poll_out;
	/* The thread's CPU time at wall time cpu_wall_ns; cpu_clock reads
	 * it (NULL: CLOCK_THREAD_CPUTIME_ID; a test sets its own). */
	uint64_t cpu_ns, cpu_wall_ns;
	uint64_t (*cpu_clock)(void);
	/* Our own stops (>= 200 us off the CPU between two dpdk_progress
	 * calls, data out), in 100 ms buckets; cpu_bound: many of them, a
	 * quarter of the time or more (dpdk_stall.c). */
	uint64_t stall_stamp, stall_cur_ns, stall_prev_ns;
	uint32_t stall_cur_n, stall_prev_n;
	bool cpu_bound;
	uint32_t mtu, frag_max, window, depth;
	uint32_t zcopy_min; /* payloads >= this go zero-copy; 0 = never */
	uint64_t rto_min_ns, rto_max_ns, peer_timeout_ns;
	/* Pacing. With the model (pace_model, WCCL_DPDK_PACE_MODEL=1) each
	 * connection paces itself (struct dpdk_ep) and this bucket, at
	 * rate_max, only caps the port; without, this bucket alone paces,
	 * its rate halved on timeouts and regrown by ACKs. Bytes per us. */
	struct dpdk_tbucket pace;
	double rate_max;
	bool model;
	uint64_t qdelay_ns;	     /* the model's delay target */
	struct dpdk_link link; /* test hook: the unknown bottleneck */
	uint32_t drop_every, drop_count, corrupt_every, corrupt_count;
	uint32_t tail_drop; /* test hook: packets lost at each op's end */
	bool udp_csum, tx_csum_hw, rx_csum_hw; /* checksums: offloaded? */
	bool swap, have_peer_mac, arp, announced;
	struct rte_ether_addr peer_mac;
	uint64_t arp_timeout_ns, arp_retry_ns;
	struct dpdk_neigh neigh[DPDK_NEIGH_MAX];
	uint32_t mr_gen, conn_gen;
	uint32_t rx_held; /* mbufs in all reorder rings (DPDK_RX_HELD_MAX) */
	struct dpdk_ep *eps[DPDK_EP_SLOTS];
	struct dpdk_listener *listeners;
	struct rte_mbuf *txq[DPDK_TXQ_MAX];
	uint32_t n_txq;
	struct rte_mbuf *loopq[DPDK_TXQ_MAX]; /* frames to our own IP */
	uint32_t n_loopq;
	struct dpdk_stats st;
	struct dpdk_mr *mrs[DPDK_MR_SLOTS];
};

struct dpdk_listener {
	struct wccl_listener base;
	struct dpdk_ctx *ctx;
	uint16_t port;
	struct dpdk_listener *next;
	struct dpdk_ep *pending[DPDK_ACCEPT_MAX];
	uint32_t n_pending;
};

struct dpdk_txop {
	const uint8_t *buf;
	struct dpdk_mr *zmr; /* registered source: payload sent zero-copy */
	uint64_t len, cookie, key, roff;
	uint32_t imm;
	int32_t status;
	uint8_t op;
};

/* A rate sample spans at least this many full packets (reaching back over
 * earlier ACKs). Per-ACK samples on a 33 us path span a packet or two, and
 * the poll loop's jitter on so short a window, through the max filter, put
 * the estimate up to 1.24x above the link (dpdk-pacer, 400 Mbit/s: 2nd
 * half up to 464-571 Mbit/s, 2 runs of 3 out of its +-20 %). 16: 414-418,
 * goodput the same; 32 and 64 read low at times (356, 350 Mbit/s). */
#define DPDK_RATE_MIN_PKTS 16

struct dpdk_pkt { /* a sent, unacknowledged packet */
	uint32_t op_seq;
	uint16_t len;
	uint8_t flags, sacked, retx;
	uint64_t off, sent_ns;
	struct pace_rs_unit rs; /* the sampler's state when it left */
};

struct dpdk_rxpost {
	uint8_t *buf;
	uint64_t len, cookie;
};

struct dpdk_rxslot { /* a received packet waiting for its turn */
	struct rte_mbuf *m;
	uint32_t poff; /* payload offset in m (may span segments) */
	struct dpdk_wire_hdr h;
};

enum dpdk_ep_state {
	DPDK_EP_SYN_SENT,
	DPDK_EP_READY,
	DPDK_EP_FAILED,
};

/* A stop of the sender's, ns on the dpdk clock (dpdk_stall.c). */
struct dpdk_stop {
	uint64_t from, to;
};

struct dpdk_ep {
	struct wccl_endpoint base;
	struct dpdk_ctx *ctx;
	struct dpdk_listener *listener; /* until accepted */
	int state, err;
	uint32_t slot, conn_id, peer_conn;
	uint32_t peer_ip; /* network order */
	uint16_t peer_port, local_port;
	struct rte_ether_addr peer_mac;
	bool mac_known, ack_pending, sack_dirty;
	uint64_t deadline_ns, syn_next_ns, last_rx_ns, last_tx_ns;
	uint64_t arp_deadline_ns, arp_next_ns;
	uint32_t arp_tries;
	uint32_t depth, dmask, window, wmask, peer_wnd;

	/* tx: operations and packets */
	struct dpdk_txop *tx;
	uint32_t tx_post, tx_done, tx_seg_op, peer_op_done;
	uint64_t tx_seg_off;
	struct dpdk_pkt *pkts;
	/* sack_high: the highest packet SACKed, or snd_nxt at the last
	 * timeout; holes below it are lost once older than ~1.25 srtt. */
	uint32_t snd_una, snd_nxt, sack_high;
	uint64_t rack_ns; /* latest send time of a packet known delivered */
	uint32_t rto_end, rto_high; /* the last timeout (dpdk_loss.c) */
	bool rto_verdict;	    /* its resends not yet all ACKed */
	bool tlp_out;		    /* a tail loss probe is out */
	uint64_t tlp_deadline;	    /* ns: when to send one */
	uint64_t srtt, rttvar, rto, rto_deadline; /* ns; srtt 0 = none yet */

	/* Pacing model, per connection: a connection is one path, and the
	 * model's state (bottleneck rate, min RTT, rounds) is a path's.
	 * Bytes are wire bytes (DPDK_WIRE_COST); rs is the delivery-rate
	 * sampler (transport/pacing/pace_rate.c). */
	struct pace_model cc;
	struct pace_rs rs;
	uint64_t pace_next_ns, inflight;
	/* The last DPDK_EP_STOPS stops of this sender with data out
	 * (dpdk_progress not called for a while), a ring: samples over
	 * them measure us, not the path (dpdk_stall_within). */
	struct dpdk_stop stops[DPDK_EP_STOPS];
	uint32_t n_stops;

	/* rx */
	struct dpdk_rxpost *rq;
	uint32_t rq_post, rq_done;
	struct dpdk_rxslot *rx;
	uint32_t rcv_nxt, rcv_high, rx_op_done, peer_op_seen;
	/* The op arriving now, as its FIRST fragment described it: later
	 * fragments must agree and come in order, since only the FIRST was
	 * checked against the receive or region (cur_active: one is open). */
	bool cur_active;
	uint8_t cur_op;
	uint32_t cur_imm;
	uint64_t cur_len, cur_key, cur_roff, cur_next;
	uint8_t *cur_dest;
	int32_t cur_status;
	const struct dpdk_mr *cur_mr; /* a WRITE's region, while it lands */
	struct dpdk_rej rej[DPDK_WIRE_MAX_REJ];
	uint32_t n_rej;
	struct dpdk_sack sack[DPDK_WIRE_MAX_SACK];
	uint32_t n_sack;
};

#define DPDK_EP(e) container_of((e), struct dpdk_ep, base)
#define DPDK_CTX(c) container_of((c), struct dpdk_ctx, base)
#define DPDK_CQ(q) container_of((q), struct dpdk_cq, base)
#define DPDK_MR(m) container_of((m), struct dpdk_mr, base)
#define DPDK_LISTENER(l) container_of((l), struct dpdk_listener, base)

/* ---- dpdk_eal.c: EAL and port, once per process ---- */
int dpdk_eal_init(void);
int dpdk_port_setup(struct dpdk_ctx *ctx);
int dpdk_eal_probe(void);
int dpdk_eal_describe(char *buf, size_t len);

/* ---- dpdk_proto.c ---- */
int dpdk_progress(struct dpdk_ctx *ctx);
/* The model paces @ep: it is on (WCCL_DPDK_PACE_MODEL=1), and the sender
 * is not CPU-bound on a short path (min RTT under 2 ms: a peer on this
 * host or nearby; on a long one a burst per time slice would meet a
 * bottleneck's queue). Else the port's bucket alone, its rate halved on
 * timeouts and regrown by ACKs (dpdk_stall.c). */
#define DPDK_CPU_BOUND_RTT_NS 2000000ull
static inline bool dpdk_model_paces(const struct dpdk_ep *ep)
{
	const struct dpdk_ctx *ctx = ep->ctx;
	return ctx->model && (!ctx->cpu_bound || !ep->cc.min_rtt_ns ||
			      ep->cc.min_rtt_ns >= DPDK_CPU_BOUND_RTT_NS);
}
/* A rate sample that spent 1 / DPDK_STALL_SHARE of its interval or more
 * in our own stops (the last DPDK_EP_STOPS) counts as app-limited. A sender stopped that
 * share of 100 ms (in four stops or more) is CPU-bound. */
#define DPDK_STALL_SHARE 4
/* At the top of dpdk_progress (ctx->now set): >= 200 us off the CPU
 * since the last call, begun with data out, is a stop of ours; counts
 * it, marks it on connections with data out, sets ctx->cpu_bound. */
void dpdk_stall_check(struct dpdk_ctx *ctx);
/* At the end of dpdk_progress: @out, a connection has data out
 * (dpdk_ep_has_data_out). */
void dpdk_stall_end(struct dpdk_ctx *ctx, bool out);
/* How much of [@from, @to] @ep spent in its recent stops. */
uint64_t dpdk_stall_within(const struct dpdk_ep *ep, uint64_t from,
			   uint64_t to);
/* @ep is up and has data unacknowledged or not yet sent. */
static inline bool dpdk_ep_has_data_out(const struct dpdk_ep *ep)
{
	return ep->state == DPDK_EP_READY &&
	       (ep->snd_una != ep->snd_nxt || ep->tx_seg_op != ep->tx_post);
}
/* ---- dpdk_loss.c: which packets are lost ---- */
#define DPDK_RTO_RETX_MAX 16u /* resent at once when the timer fires */
/* RFC 6298: the timer from srtt / rttvar; a new RTT sample (Karn's). */
void dpdk_rto_update(struct dpdk_ep *ep);
void dpdk_rtt_sample(struct dpdk_ep *ep, uint64_t rtt_ns);
/* @pk has arrived (first news of it). */
void dpdk_loss_delivered(struct dpdk_ep *ep, const struct dpdk_pkt *pk);
/* Is packet @seq lost, to be resent now? */
bool dpdk_pkt_lost(const struct dpdk_ep *ep, uint32_t seq);
/* The timer fired and resent [snd_una, @resent_end). */
void dpdk_loss_on_rto(struct dpdk_ep *ep, uint32_t resent_end);
/* An ACK has come; @news: it moved snd_una or SACKed a new packet. */
void dpdk_loss_on_ack(struct dpdk_ep *ep, bool news);
/* A packet has left, new or resent by fast_retx. */
void dpdk_loss_on_send(struct dpdk_ep *ep);
/* Is a tail loss probe due (a packet sent again to draw a SACK)? Which
 * packet: the last out not SACKed (false: none). It has gone. */
bool dpdk_tlp_due(const struct dpdk_ep *ep);
bool dpdk_tlp_pick(const struct dpdk_ep *ep, uint32_t *seq);
void dpdk_loss_on_probe(struct dpdk_ep *ep);

void dpdk_link_release(struct dpdk_ctx *ctx, bool all);
void dpdk_ep_service(struct dpdk_ep *ep);
void dpdk_ep_rx_release(struct dpdk_ep *ep);
void dpdk_send_ctrl(struct dpdk_ep *ep, uint8_t type);
void dpdk_tx_flush(struct dpdk_ctx *ctx);
void dpdk_txq_push(struct dpdk_ctx *ctx, struct rte_mbuf *m, bool data);
int dpdk_post_send(struct wccl_endpoint *ep, const void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie);
int dpdk_post_recv(struct wccl_endpoint *ep, void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie);
int dpdk_post_write(struct wccl_endpoint *ep, const void *buf, size_t len,
		    struct wccl_mr *mr, const struct wccl_rkey *rk,
		    uint64_t offset, uint32_t imm, uint32_t flags,
		    uint64_t cookie);
bool dpdk_ep_flush(struct dpdk_ep *ep, int err);
int dpdk_ep_failf(struct dpdk_ep *ep, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- dpdk_arp.c: neighbours (ARP, static entries) and ICMP echo ---- */
struct dpdk_neigh *dpdk_neigh_find(struct dpdk_ctx *ctx, uint32_t ip,
				   bool create);
int dpdk_neigh_parse(struct dpdk_ctx *ctx, const char *spec);
void dpdk_rx_arp(struct dpdk_ctx *ctx, struct rte_mbuf *m);
bool dpdk_rx_icmp(struct dpdk_ctx *ctx, struct rte_mbuf *m);
bool dpdk_ep_resolve(struct dpdk_ep *ep);
void dpdk_arp_announce(struct dpdk_ctx *ctx);

/* ---- dpdk_conn.c ---- */
struct dpdk_ep *dpdk_ep_new(struct dpdk_ctx *ctx);
void dpdk_ep_free(struct dpdk_ep *ep);
void dpdk_rx_syn(struct dpdk_ctx *ctx, const struct rte_ether_hdr *eth,
		 uint32_t src_ip, uint16_t src_port, uint16_t dst_port,
		 const struct dpdk_wire_hdr *h);

static inline bool dpdk_cq_push(struct dpdk_cq *cq,
				const struct wccl_completion *c)
{
	if (cq->count >= cq->cap)
		return false;
	uint32_t at = cq->head + cq->count;
	if (at >= cq->cap)
		at -= cq->cap;
	cq->ring[at] = *c;
	cq->count++;
	return true;
}

static inline void dpdk_mr_unref(struct dpdk_mr *mr)
{
	if (rte_mbuf_ext_refcnt_update(&mr->shinfo, -1) == 0)
		free(mr);
}

static inline struct dpdk_mr *dpdk_mr_lookup(struct dpdk_ctx *ctx,
					     uint64_t key)
{
	struct dpdk_mr *mr = ctx->mrs[(uint32_t)key % DPDK_MR_SLOTS];
	return mr && mr->base.key == key ? mr : NULL;
}

uint64_t dpdk_now_ns(void);

#endif
