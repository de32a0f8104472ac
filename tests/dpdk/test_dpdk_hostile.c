/* SPDX-License-Identifier: MIT */
/*
 * A hostile peer on the wire. The server is the real dpdk provider (the
 * victim); the client is raw DPDK on the other end of the net_memif link,
 * writing frames by hand (dpdk_wire_encode). WCCL_TEST_HOSTILE picks the
 * attack:
 *   overflow    FIRST fits the 64-byte receive, later fragments claim a
 *               1 MiB message at offsets past it
 *   nofirst     a LAST fragment with no FIRST (nothing to write into)
 *   opmismatch  FIRST as a WRITE, LAST as a SEND
 *   pin         17 never-accepted connections, each with 1023 out-of-order
 *               DATA packets (mbufs held); the port must still receive
 *   opdone      an ACK reporting the victim's send done while none of its
 *               packets is acknowledged
 * The victim must not crash, must write nothing outside its receive (guard
 * bytes), and must fail the connection with WCCL_EPROTO (first three), go
 * on receiving (pin), or complete the send only once acknowledged (opdone).
 * Exit 0 pass, 1 fail, 77 skip.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "memif_pair.h"
#include "transport/dpdk/dpdk_wire.h"

#define ARENA (2u << 20)
#define RECV_AT 4096u
#define GUARD 0x5c
#define MY_CONN 0x5a5a0001u
#define PIN_CONNS 17u
#define PIN_PKTS 1023u
#define OPDONE_LEN 8192u

static const char *mode(void)
{
	const char *m = getenv("WCCL_TEST_HOSTILE");
	return m ? m : "overflow";
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* ---------------- victim: the real provider ---------------- */

/* The first three attacks: a 64-byte receive in a guarded arena. */
static int victim_frag(struct memif_conn *c)
{
	uint8_t *arena = malloc(ARENA);
	CHECK(arena, "out of memory");
	memset(arena, GUARD, ARENA);
	CHECK(wccl_post_recv(c->ep, arena + RECV_AT, 64, NULL, 7) == 0,
	      "post_recv");
	struct wccl_completion wc;
	int n = wccl_cq_wait(c->cq, &wc, 1, 10000);
	for (size_t i = 0; i < ARENA; i++)
		CHECK(arena[i] == GUARD || (i >= RECV_AT && i < RECV_AT + 64),
		      "byte %zd outside the 64-byte receive was written",
		      (ssize_t)i - RECV_AT);
	CHECK(n == 1, "no completion for the receive: %s", wccl_strerror(n));
	CHECK(wc.op == WCCL_OP_RECV && wc.status == WCCL_EPROTO,
	      "receive completed with op %u status %s len %llu, want "
	      "WCCL_EPROTO", wc.op, wccl_strerror(wc.status),
	      (unsigned long long)wc.len);
	int rc = wccl_endpoint_wait_established(c->ep, 0);
	CHECK(rc == WCCL_EPROTO, "endpoint: %s, want WCCL_EPROTO",
	      wccl_strerror(rc));
	fprintf(stderr, "[server] failed as expected: %s\n",
		wccl_endpoint_last_error(c->ep));
	free(arena);
	return 0;
}

/* pin: accept nothing more; the accepted connection must still get its
 * message after the attack. */
static int victim_pin(struct memif_conn *c)
{
	char buf[64];
	memset(buf, 0, sizeof(buf));
	CHECK(wccl_post_recv(c->ep, buf, sizeof(buf), NULL, 9) == 0,
	      "post_recv");
	struct wccl_completion wc;
	int n = wccl_cq_wait(c->cq, &wc, 1, 60000);
	CHECK(n == 1, "nothing received after the attack: %s (%s)",
	      wccl_strerror(n), wccl_endpoint_last_error(c->ep));
	CHECK(wc.op == WCCL_OP_RECV && wc.status == 0 && wc.len == 16 &&
		      !memcmp(buf, "still-listening!", 16),
	      "receive: op %u status %s len %llu", wc.op,
	      wccl_strerror(wc.status), (unsigned long long)wc.len);
	fprintf(stderr, "[server] still receiving after the attack\n");
	return 0;
}

/* opdone: the send must not complete until its packets are acknowledged
 * (the attacker acknowledges them only after 1.5 s). */
static int victim_opdone(struct memif_conn *c)
{
	static uint8_t buf[OPDONE_LEN];
	memif_fill(buf, sizeof(buf), 3);
	CHECK(wccl_post_send(c->ep, buf, sizeof(buf), NULL, 11) == 0,
	      "post_send");
	struct wccl_completion wc;
	uint64_t t0 = now_ms();
	while (now_ms() - t0 < 1000) {
		int n = wccl_cq_poll(c->cq, &wc, 1);
		CHECK(n == 0, "send completed (status %s) though none of its "
			      "packets was acknowledged",
		      n == 1 ? wccl_strerror(wc.status) : wccl_strerror(n));
	}
	int n = wccl_cq_wait(c->cq, &wc, 1, 10000);
	CHECK(n == 1, "send never completed: %s (%s)", wccl_strerror(n),
	      wccl_endpoint_last_error(c->ep));
	CHECK(wc.op == WCCL_OP_SEND && wc.status == 0 && wc.cookie == 11,
	      "send: op %u status %s", wc.op, wccl_strerror(wc.status));
	fprintf(stderr, "[server] send completed only once acknowledged\n");
	return 0;
}

static int victim(void)
{
	struct memif_conn c;
	memif_accept(&c);
	int rc;
	if (!strcmp(mode(), "pin"))
		rc = victim_pin(&c);
	else if (!strcmp(mode(), "opdone"))
		rc = victim_opdone(&c);
	else
		rc = victim_frag(&c);
	/* The attacker's raw rx/tx must not race our memif going away. */
	memif_linger();
	return rc;
}

/* ---------------- attacker: raw frames ---------------- */

static struct rte_mempool *pool;
static struct rte_ether_addr my_mac, victim_mac;
static uint32_t victim_conn;
/* What the victim told MY_CONN: the highest op_done and ack, and how
 * many DATA packets (and whether the LAST) of its op 0 arrived. */
static uint32_t seen_op_done, seen_data, data_pkts;
static int seen_last;

static void send_raw(const struct dpdk_wire_hdr *h, const void *pl,
		     uint16_t plen)
{
	/* memif crashes transmitting to a peer that has gone. */
	struct rte_eth_link l;
	memset(&l, 0, sizeof(l));
	if (rte_eth_link_get_nowait(0, &l) || !l.link_status)
		return;
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	CHECK(m, "attacker pool empty");
	size_t hs = dpdk_wire_hdr_size(h);
	uint16_t tot = (uint16_t)(14 + 20 + 8 + hs + plen);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, tot);
	CHECK(p, "append");
	struct rte_ether_hdr *eth = (void *)p;
	static const struct rte_ether_addr bc = {
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }
	};
	eth->dst_addr = victim_conn ? victim_mac : bc;
	eth->src_addr = my_mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	struct rte_ipv4_hdr *ip = (void *)(eth + 1);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(tot - 14));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	inet_pton(AF_INET, MEMIF_CLIENT_IP, &ip->src_addr);
	inet_pton(AF_INET, MEMIF_SERVER_IP, &ip->dst_addr);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	struct rte_udp_hdr *u = (void *)(ip + 1);
	u->src_port = rte_cpu_to_be_16(47000);
	u->dst_port = rte_cpu_to_be_16(47100);
	u->dgram_len = rte_cpu_to_be_16((uint16_t)(tot - 34));
	u->dgram_cksum = 0;
	dpdk_wire_encode(h, (uint8_t *)(u + 1));
	if (plen)
		memcpy((uint8_t *)(u + 1) + hs, pl, plen);
	/* A victim that stopped taking frames shows in its own checks. */
	for (int tries = 0; rte_eth_tx_burst(0, 0, &m, 1) != 1; tries++)
		if (tries > 100000) {
			rte_pktmbuf_free(m);
			return;
		}
}

/* Take frames for @ms; note SYNACKs to @conn and news for MY_CONN. */
static void drain(int ms, uint32_t conn)
{
	uint64_t t0 = now_ms();
	do {
		struct rte_mbuf *pk[32];
		uint16_t n = rte_eth_rx_burst(0, 0, pk, 32);
		for (uint16_t i = 0; i < n; i++) {
			const uint8_t *p = rte_pktmbuf_mtod(pk[i], uint8_t *);
			struct dpdk_wire_hdr h;
			if (pk[i]->data_len > 42 &&
			    dpdk_wire_decode(p + 42, pk[i]->data_len - 42u,
					     &h) >= 0) {
				if (h.type == DPDK_PKT_SYNACK &&
				    h.dst_conn == conn) {
					victim_conn = h.src_conn;
					rte_ether_addr_copy(
						&((const struct rte_ether_hdr *)
							  p)->src_addr,
						&victim_mac);
				}
				if (h.dst_conn == MY_CONN &&
				    dpdk_seq_lt(seen_op_done, h.op_done))
					seen_op_done = h.op_done;
				if (h.dst_conn == MY_CONN &&
				    h.type == DPDK_PKT_DATA) {
					seen_data++;
					if (dpdk_seq_lt(data_pkts - 1, h.seq))
						data_pkts = h.seq + 1;
					if (h.flags & DPDK_F_LAST)
						seen_last = 1;
				}
			}
			rte_pktmbuf_free(pk[i]);
		}
	} while (now_ms() - t0 < (uint64_t)ms);
}

/* SYN from @conn until a SYNACK names it; its conn id or 0. */
static uint32_t handshake(uint32_t conn, int tries)
{
	victim_conn = 0;
	for (int i = 0; i < tries && !victim_conn; i++) {
		struct dpdk_wire_hdr syn = { .type = DPDK_PKT_SYN,
					     .src_conn = conn,
					     .key = 1024,
					     .offset = 1300 };
		send_raw(&syn, NULL, 0);
		drain(100, conn);
	}
	return victim_conn;
}

static void data(uint32_t seq, uint8_t op, uint8_t flags, uint64_t off,
		 uint64_t msg_len, uint16_t flen, uint8_t fill)
{
	uint8_t pl[1400];
	memset(pl, fill, sizeof(pl));
	struct dpdk_wire_hdr h = { .type = DPDK_PKT_DATA,
				   .dst_conn = victim_conn,
				   .src_conn = MY_CONN,
				   .seq = seq,
				   .op = op,
				   .flags = flags,
				   .key = op == DPDK_OP_SEND ? 0 : 0xdead,
				   .offset = off,
				   .msg_len = msg_len,
				   .frag_len = flen,
				   .wnd = 1024 };
	send_raw(&h, pl, flen);
}

static void attack_pin(uint32_t conn1)
{
	for (uint32_t k = 0; k < PIN_CONNS; k++) {
		uint32_t mine = 0x77000000u + k;
		uint32_t vc = handshake(mine, 50);
		CHECK(vc, "no SYNACK for pinning connection %u", k);
		for (uint32_t s = 1; s <= PIN_PKTS; s++) {
			/* seq 0 never comes: all of these wait for it */
			struct dpdk_wire_hdr h = { .type = DPDK_PKT_DATA,
						   .dst_conn = vc,
						   .src_conn = mine,
						   .seq = s,
						   .op = DPDK_OP_SEND,
						   .msg_len = 1,
						   .frag_len = 1 };
			uint8_t b = 0;
			send_raw(&h, &b, 1);
			if (!(s & 63))
				drain(2, 0);
		}
		drain(20, 0);
	}
	fprintf(stderr, "[client] %u connections pinned\n", PIN_CONNS);
	drain(500, 0);
	CHECK(handshake(0x66000001u, 50),
	      "no SYNACK to a fresh connection after the attack");
	/* The accepted connection's first message, until acknowledged. */
	victim_conn = conn1;
	for (int i = 0; i < 100 && seen_op_done != 1; i++) {
		struct dpdk_wire_hdr h = { .type = DPDK_PKT_DATA,
					   .dst_conn = conn1,
					   .src_conn = MY_CONN,
					   .op = DPDK_OP_SEND,
					   .flags = DPDK_F_FIRST | DPDK_F_LAST,
					   .msg_len = 16,
					   .frag_len = 16,
					   .wnd = 1024 };
		send_raw(&h, "still-listening!", 16);
		drain(200, 0);
	}
	CHECK(seen_op_done == 1, "the victim never acknowledged the message");
}

static void ack(uint32_t ackno, uint32_t op_done)
{
	struct dpdk_wire_hdr h = { .type = DPDK_PKT_ACK,
				   .dst_conn = victim_conn,
				   .src_conn = MY_CONN,
				   .ack = ackno,
				   .op_done = op_done,
				   .wnd = 1024 };
	send_raw(&h, NULL, 0);
}

static void attack_opdone(void)
{
	uint64_t t0 = now_ms();
	while (!seen_last && now_ms() - t0 < 10000)
		drain(10, 0);
	CHECK(seen_last, "the victim's send never arrived");
	/* "Op 0 done", acknowledging none of its packets. */
	ack(0, 1);
	drain(1500, 0);
	fprintf(stderr, "[client] %u data packets (%u sent, with resends)\n",
		data_pkts, seen_data);
	/* A few times (lost ACKs); the victim exits once it completes. */
	for (int i = 0; i < 5; i++) {
		ack(data_pkts, 1);
		drain(100, 0);
	}
}

static int attacker(void)
{
	usleep(1500000); /* the victim's EAL creates the memif socket */
	char buf[1024];
	snprintf(buf, sizeof(buf), "x %s", getenv("WCCL_DPDK_EAL"));
	char *argv[64];
	int argc = 0;
	for (char *s = NULL, *t = strtok_r(buf, " ", &s); t && argc < 63;
	     t = strtok_r(NULL, " ", &s))
		argv[argc++] = t;
	argv[argc] = NULL;
	if (rte_eal_init(argc, argv) < 0) {
		fprintf(stderr, "[client] SKIP: EAL cannot start here\n");
		return 77;
	}
	pool = rte_pktmbuf_pool_create("hostile", 8191, 256, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	CHECK(pool, "pool");
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	CHECK(rte_eth_dev_configure(0, 1, 1, &conf) == 0, "configure");
	CHECK(rte_eth_rx_queue_setup(0, 0, 1024, 0, NULL, pool) == 0, "rxq");
	CHECK(rte_eth_tx_queue_setup(0, 0, 1024, 0, NULL) == 0, "txq");
	CHECK(rte_eth_dev_start(0) == 0, "start");
	rte_eth_macaddr_get(0, &my_mac);
	for (int i = 0; i < 100; i++) {
		struct rte_eth_link l;
		memset(&l, 0, sizeof(l));
		rte_eth_link_get_nowait(0, &l);
		if (l.link_status)
			break;
		usleep(100000);
	}
	uint32_t conn1 = handshake(MY_CONN, 100);
	CHECK(conn1, "no SYNACK from the victim");
	const char *m = mode();
	if (!strcmp(m, "overflow")) {
		data(0, DPDK_OP_SEND, DPDK_F_FIRST, 0, 64, 64, 0x11);
		data(1, DPDK_OP_SEND, 0, 4096, 1u << 20, 1000, 0xaa);
		data(2, DPDK_OP_SEND, DPDK_F_LAST, (1u << 20) - 64, 1u << 20,
		     64, 0xbb);
	} else if (!strcmp(m, "nofirst")) {
		data(0, DPDK_OP_SEND, DPDK_F_LAST, 0x100000, 0x100040, 64,
		     0xcc);
	} else if (!strcmp(m, "opmismatch")) {
		data(0, DPDK_OP_WRITE, DPDK_F_FIRST, 0, 128, 64, 0xdd);
		data(1, DPDK_OP_SEND, DPDK_F_LAST, 64, 128, 64, 0xee);
	} else if (!strcmp(m, "pin")) {
		attack_pin(conn1);
	} else if (!strcmp(m, "opdone")) {
		attack_opdone();
	} else {
		CHECK(0, "WCCL_TEST_HOSTILE=%s: unknown attack", m);
	}
	drain(3000, 0); /* let the victim look before the link drops */
	return 0;
}

int main(int argc, char **argv)
{
	memif_server_lingers = 1;
	if (argc < 2)
		return memif_pair_run(argv[0]);
	memif_role = argv[1];
	return !strcmp(argv[1], "server") ? victim() : attacker();
}
