/* SPDX-License-Identifier: MIT */
/*
 * Two processes, one net_memif link: a server and a client, each its own
 * EAL (distinct --file-prefix, --no-huge), the memif socket in a temp dir.
 * Checks send/recv and write/write_imm of random data byte for byte at
 * sizes 0, 1, 7, 4096, 1 MiB + 3, truncation, and bad key / bounds /
 * access rejection at both ends with nothing written. With
 * WCCL_DPDK_TEST_DROP / _SWAP in the environment (both sides) the data
 * must still arrive intact and the client's retransmit counter be > 0;
 * with WCCL_DPDK_TEST_TAIL_DROP each lost tail must cost at most about
 * one retransmission timeout.
 *
 *   test_dpdk_memif            driver: forks server + client, reaps them
 *   test_dpdk_memif server|client SOCKET   (internal)
 * Exit 0 pass, 1 fail, 77 skip (EAL cannot start here).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wccl/errors.h>
#include <wccl/transport.h>

#include "transport/dpdk/dpdk_stats.h"
#include "transport/dpdk/dpdk_wire.h"
#include "memif_pair.h"

#define REGION (2u * 1024 * 1024 + 16384)
#define NOACC 4096

static const size_t sizes[] = { 0, 1, 7, 4096, (1u << 20) + 3 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* Where size i's plain write lands (its write+imm follows it): each size
 * has its own place, since the client may go on to the next size once the
 * target's provider has acknowledged, before the server's test code has
 * looked at the region. */
static uint64_t write_off(size_t i)
{
	uint64_t off = 1;
	for (size_t j = 0; j < i; j++)
		off += 2 * sizes[j];
	return off;
}
static void print_stats(struct wccl_context *ctx, struct dpdk_stats *st)
{
	CHECK(dpdk_context_stats(ctx, st) == 0, "stats");
	fprintf(stderr,
		"[%s] tx %llu rx %llu retx %llu (rto %llu fast %llu tlp %llu) "
		"dup %llu "
		"reordered %llu malformed %llu unknown %llu test-dropped %llu "
		"max-payload %llu chained %llu bad-csum %llu corrupted %llu "
		"zcopy %llu\n",
		memif_role, (unsigned long long)st->tx_pkts,
		(unsigned long long)st->rx_pkts,
		(unsigned long long)st->retransmits,
		(unsigned long long)st->rto_fires,
		(unsigned long long)st->fast_retx,
		(unsigned long long)st->tlp_probes,
		(unsigned long long)st->rx_dup,
		(unsigned long long)st->rx_reordered,
		(unsigned long long)st->rx_malformed,
		(unsigned long long)st->rx_unknown,
		(unsigned long long)st->test_dropped,
		(unsigned long long)st->rx_max_frag,
		(unsigned long long)st->rx_multiseg,
		(unsigned long long)st->rx_bad_csum,
		(unsigned long long)st->test_corrupted,
		(unsigned long long)st->tx_zcopy);
}

struct bad_case {
	const char *name;
	int which; /* 0 big region, 1 no-access region, 2 key flipped */
	uint64_t off, len;
	uint32_t flags;
	int want;
};

static const struct bad_case bad[] = {
	{ "write with a flipped key", 2, 0, 64, 0, WCCL_EREMOTE_KEY },
	{ "write straddling the end", 0, REGION - 10, 20, 0,
	  WCCL_EREMOTE_BOUNDS },
	{ "write at 2^64 - 8 (wraps)", 0, UINT64_MAX - 7, 64, 0,
	  WCCL_EREMOTE_BOUNDS },
	{ "write+imm straddling the end", 0, REGION - 1, 2, WCCL_WRITE_IMM,
	  WCCL_EREMOTE_BOUNDS },
	{ "write into a region without REMOTE_WRITE", 1, 0, 64, 0,
	  WCCL_EREMOTE_ACCESS },
	{ "large write with a flipped key", 2, 0, 100000, WCCL_WRITE_IMM,
	  WCCL_EREMOTE_KEY },
};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

/*
 * The next completion of @op, once the keys' send (cookie 1) has been
 * seen wherever it comes: it completes on its ACK, and with loss (the
 * ACK dropped, the keys sent again) that can be after the client's first
 * messages have filled receives. Completions are ordered within a queue,
 * not across the send and receive queues.
 */
static struct wccl_completion wait_past_keys(struct wccl_cq *cq, uint32_t op,
					     const char *what, bool *keys_sent)
{
	for (;;) {
		struct wccl_completion c;
		int n = wccl_cq_wait(cq, &c, 1, MEMIF_TMO_MS);
		CHECK(n == 1, "%s: waiting: %s", what, wccl_strerror(n));
		if (c.op == WCCL_OP_SEND && !*keys_sent) {
			CHECK(c.status == 0 && c.cookie == 1, "keys: %s",
			      wccl_strerror(c.status));
			*keys_sent = true;
			if (op == WCCL_OP_SEND)
				return c;
			continue;
		}
		CHECK(c.op == op, "%s: got op %u status %s, want op %u", what,
		      c.op, wccl_strerror(c.status), op);
		return c;
	}
}

static int server(void)
{
	struct memif_conn mc;
	memif_accept(&mc);
	struct wccl_context *ctx = mc.ctx;
	struct wccl_cq *cq = mc.cq;
	struct wccl_listener *l = mc.l;
	struct wccl_endpoint *ep = mc.ep;

	uint8_t *region = malloc(REGION), *noacc = malloc(NOACC);
	memset(region, 0xab, REGION);
	memset(noacc, 0xcd, NOACC);
	struct wccl_mr *mr, *mr_noacc;
	CHECK(wccl_mr_register(ctx, region, REGION,
			       WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE,
			       &mr) == 0, "mr");
	CHECK(wccl_mr_register(ctx, noacc, NOACC, WCCL_ACCESS_LOCAL,
			       &mr_noacc) == 0, "mr");
	struct wccl_rkey rk[2];
	wccl_mr_rkey(mr, &rk[0]);
	wccl_mr_rkey(mr_noacc, &rk[1]);
	uint8_t keys[2 * WCCL_RKEY_PACKED_LEN];
	wccl_rkey_pack(&rk[0], keys);
	wccl_rkey_pack(&rk[1], keys + WCCL_RKEY_PACKED_LEN);

	/* Post every receive first, then tell the client our keys. */
	uint8_t *rbuf[NSIZES];
	for (size_t i = 0; i < NSIZES; i++) {
		rbuf[i] = malloc(sizes[i] + 16);
		CHECK(wccl_post_recv(ep, rbuf[i], sizes[i] + 16, NULL, 100 + i) ==
			      0, "post_recv");
	}
	CHECK(wccl_post_send(ep, keys, sizeof(keys), NULL, 1) == 0, "send");
	bool keys_sent = false;
	struct wccl_completion c;
	for (size_t i = 0; i < NSIZES; i++) {
		c = wait_past_keys(cq, WCCL_OP_RECV, "recv", &keys_sent);
		CHECK(c.status == 0 && c.cookie == 100 + i && c.len == sizes[i],
		      "recv %zu: status %s cookie %llu len %llu", sizes[i],
		      wccl_strerror(c.status), (unsigned long long)c.cookie,
		      (unsigned long long)c.len);
		memif_verify(rbuf[i], sizes[i], sizes[i], "send/recv payload");
		fprintf(stderr, "[server] send/recv %zu bytes intact\n",
			sizes[i]);
	}
	/* Writes: for each size a plain write at 1 then a write+imm right
	 * after it; the imm arrives after both are in place. */
	for (size_t i = 0; i < NSIZES; i++) {
		c = wait_past_keys(cq, WCCL_OP_WRITE_IMM, "write_imm",
				   &keys_sent);
		CHECK(c.status == 0 && c.imm == (uint32_t)i && c.len == sizes[i],
		      "imm %u len %llu", c.imm, (unsigned long long)c.len);
		memif_verify(region + write_off(i), sizes[i], 1000 + sizes[i],
		       "plain write");
		memif_verify(region + write_off(i) + sizes[i], sizes[i],
		       2000 + sizes[i],
		       "write+imm");
		fprintf(stderr, "[server] write + write_imm %zu bytes intact\n",
			sizes[i]);
	}
	if (!keys_sent)
		wait_past_keys(cq, WCCL_OP_SEND, "keys sent", &keys_sent);
	/* Rejections: an ERROR completion each, nothing written. */
	uint8_t *snap = malloc(REGION);
	memcpy(snap, region, REGION);
	for (size_t i = 0; i < NBAD; i++) {
		c = memif_wait1(cq, WCCL_OP_ERROR, bad[i].name);
		CHECK(c.status == bad[i].want, "%s: status %s want %s",
		      bad[i].name, wccl_strerror(c.status),
		      wccl_strerror(bad[i].want));
		fprintf(stderr, "[server] rejected: %s (%s)\n", bad[i].name,
			wccl_strerror(c.status));
	}
	CHECK(memcmp(snap, region, REGION) == 0, "a rejected write landed");
	for (size_t i = 0; i < NOACC; i++)
		CHECK(noacc[i] == 0xcd, "no-access region written at %zu", i);
	/* Truncation at both ends, then the connection still works. */
	uint8_t small[100];
	CHECK(wccl_post_recv(ep, small, 100, NULL, 7) == 0, "recv");
	c = memif_wait1(cq, WCCL_OP_RECV, "truncated recv");
	CHECK(c.status == WCCL_ETRUNCATED && c.cookie == 7, "trunc: %s",
	      wccl_strerror(c.status));
	CHECK(wccl_post_recv(ep, small, 100, NULL, 8) == 0, "recv");
	c = memif_wait1(cq, WCCL_OP_RECV, "recv after truncation");
	CHECK(c.status == 0 && c.len == 100, "after trunc: %s",
	      wccl_strerror(c.status));
	memif_verify(small, 100, 100, "after truncation");
	/* Done: wait for the client's farewell, then close. */
	CHECK(wccl_post_recv(ep, small, 100, NULL, 9) == 0, "recv");
	c = memif_wait1(cq, WCCL_OP_RECV, "farewell");
	CHECK(c.status == 0, "farewell %s", wccl_strerror(c.status));
	struct dpdk_stats st;
	print_stats(ctx, &st);
	const char *corrupt = getenv("WCCL_DPDK_TEST_CORRUPT");
	if (corrupt && atoi(corrupt) > 0) /* the client flipped bits */
		CHECK(st.rx_bad_csum > 0, "corruption injected, none caught");
	const char *mtu = getenv("WCCL_DPDK_MTU");
	if (mtu && atoi(mtu) > 1500) {
		/* Jumbo: full-size packets arrived, as chains of 2 KiB mbufs. */
		uint64_t want = (uint64_t)atoi(mtu) - 28 - DPDK_WIRE_MAX_HDR;
		CHECK(st.rx_max_frag == want,
		      "largest payload %llu, want %llu (MTU %s)",
		      (unsigned long long)st.rx_max_frag,
		      (unsigned long long)want, mtu);
		CHECK(st.rx_multiseg > 0, "no chained frame received");
	}
	/* A duplicate storm (memif replaying descriptors, seen with chained
	 * frames in DPDK 22.11) must not hide behind intact data. */
	CHECK(st.rx_dup < st.rx_data, "duplicate storm: %llu dups for %llu "
	      "data packets", (unsigned long long)st.rx_dup,
	      (unsigned long long)st.rx_data);
	wccl_endpoint_close(ep);
	wccl_listener_close(l);
	wccl_mr_deregister(mr);
	wccl_mr_deregister(mr_noacc);
	wccl_cq_destroy(cq);
	wccl_context_close(ctx);
	fprintf(stderr, "[server] PASS\n");
	return 0;
}

static int client(void)
{
	struct memif_conn mc;
	memif_connect(&mc);
	struct wccl_context *ctx = mc.ctx;
	struct wccl_cq *cq = mc.cq;
	struct wccl_endpoint *ep = mc.ep;
	uint8_t keys[2 * WCCL_RKEY_PACKED_LEN];
	CHECK(wccl_post_recv(ep, keys, sizeof(keys), NULL, 1) == 0, "recv");
	struct wccl_completion c = memif_wait1(cq, WCCL_OP_RECV, "keys");
	CHECK(c.status == 0 && c.len == sizeof(keys), "keys");
	struct wccl_rkey rk, rk_noacc;
	wccl_rkey_unpack(keys, &rk);
	wccl_rkey_unpack(keys + WCCL_RKEY_PACKED_LEN, &rk_noacc);

	/* Sources are registered and passed with their mr: large payloads
	 * then go zero-copy where the port allows (external mbufs). */
	uint8_t *sbuf[NSIZES], *w1[NSIZES], *w2[NSIZES];
	struct wccl_mr *smr[NSIZES], *w1mr[NSIZES], *w2mr[NSIZES];
	for (size_t i = 0; i < NSIZES; i++) {
		sbuf[i] = malloc(sizes[i] + 1);
		memif_fill(sbuf[i], sizes[i], sizes[i]);
		w1[i] = malloc(sizes[i] + 1);
		memif_fill(w1[i], sizes[i], 1000 + sizes[i]);
		w2[i] = malloc(sizes[i] + 1);
		memif_fill(w2[i], sizes[i], 2000 + sizes[i]);
		CHECK(wccl_mr_register(ctx, sbuf[i], sizes[i] + 1,
				       WCCL_ACCESS_LOCAL, &smr[i]) == 0 &&
			      wccl_mr_register(ctx, w1[i], sizes[i] + 1,
					       WCCL_ACCESS_LOCAL, &w1mr[i]) == 0 &&
			      wccl_mr_register(ctx, w2[i], sizes[i] + 1,
					       WCCL_ACCESS_LOCAL, &w2mr[i]) == 0,
		      "mr_register");
	}
	/* All sends posted back to back: in-order matching under load. */
	for (size_t i = 0; i < NSIZES; i++)
		CHECK(wccl_post_send(ep, sbuf[i], sizes[i], smr[i], 10 + i) ==
			      0,
		      "post_send");
	for (size_t i = 0; i < NSIZES; i++) {
		c = memif_wait1(cq, WCCL_OP_SEND, "send");
		CHECK(c.status == 0 && c.cookie == 10 + i, "send %zu: %s",
		      sizes[i], wccl_strerror(c.status));
	}
	for (size_t i = 0; i < NSIZES; i++) {
		CHECK(wccl_post_write(ep, w1[i], sizes[i], w1mr[i], &rk,
				      write_off(i), 0,
				      0, 20 + i) == 0, "write");
		CHECK(wccl_post_write(ep, w2[i], sizes[i], w2mr[i], &rk,
				      write_off(i) + sizes[i], (uint32_t)i,
				      WCCL_WRITE_IMM,
				      30 + i) == 0, "write_imm");
		c = memif_wait1(cq, WCCL_OP_WRITE, "write");
		CHECK(c.status == 0 && c.cookie == 20 + i, "write: %s",
		      wccl_strerror(c.status));
		c = memif_wait1(cq, WCCL_OP_WRITE, "write_imm");
		CHECK(c.status == 0 && c.cookie == 30 + i, "write_imm: %s",
		      wccl_strerror(c.status));
	}
	uint8_t *junk = malloc(100000);
	memif_fill(junk, 100000, 77);
	for (size_t i = 0; i < NBAD; i++) {
		struct wccl_rkey k = bad[i].which == 1 ? rk_noacc : rk;
		if (bad[i].which == 2)
			k.key ^= 0xffff0000ull;
		if (bad[i].which == 1)
			k.access |= WCCL_ACCESS_REMOTE_WRITE; /* forged */
		k.len = UINT64_MAX; /* forged: the target must not care */
		CHECK(wccl_post_write(ep, junk, bad[i].len, NULL, &k,
				      bad[i].off, 5, bad[i].flags, 40 + i) == 0,
		      "post bad write");
		c = memif_wait1(cq, WCCL_OP_WRITE, bad[i].name);
		CHECK(c.status == bad[i].want && c.cookie == 40 + i,
		      "%s: status %s want %s", bad[i].name,
		      wccl_strerror(c.status), wccl_strerror(bad[i].want));
		fprintf(stderr, "[client] %s -> %s\n", bad[i].name,
			wccl_strerror(c.status));
	}
	uint8_t msg[101];
	memif_fill(msg, 101, 0);
	CHECK(wccl_post_send(ep, msg, 101, NULL, 50) == 0, "send");
	c = memif_wait1(cq, WCCL_OP_SEND, "truncated send");
	CHECK(c.status == WCCL_ETRUNCATED, "truncated send: %s",
	      wccl_strerror(c.status));
	memif_fill(msg, 100, 100);
	CHECK(wccl_post_send(ep, msg, 100, NULL, 51) == 0, "send");
	c = memif_wait1(cq, WCCL_OP_SEND, "send after truncation");
	CHECK(c.status == 0, "send: %s", wccl_strerror(c.status));
	CHECK(wccl_post_send(ep, msg, 1, NULL, 52) == 0, "send");
	c = memif_wait1(cq, WCCL_OP_SEND, "farewell");
	CHECK(c.status == 0, "farewell: %s", wccl_strerror(c.status));
	/* Every op has completed: the regions go (mbufs may still hold
	 * them; the provider keeps its side alive until they are freed),
	 * and the sources must not have been touched by the send path. */
	for (size_t i = 0; i < NSIZES; i++) {
		memif_verify(sbuf[i], sizes[i], sizes[i], "send source after send");
		memif_verify(w1[i], sizes[i], 1000 + sizes[i], "write source");
		wccl_mr_deregister(smr[i]);
		wccl_mr_deregister(w1mr[i]);
		wccl_mr_deregister(w2mr[i]);
	}
	struct dpdk_stats st;
	print_stats(ctx, &st);
	const char *zc = getenv("WCCL_TEST_EXPECT_ZCOPY");
	if (zc && atoi(zc) > 0)
		CHECK(st.tx_zcopy > 0, "no frame was sent zero-copy");
	const char *drop = getenv("WCCL_DPDK_TEST_DROP");
	if (drop && atoi(drop) > 0)
		CHECK(st.retransmits > 0 && st.test_dropped > 0,
		      "loss injected but no retransmission");
	const char *tail = getenv("WCCL_DPDK_TEST_TAIL_DROP");
	if (tail && atoi(tail) > 0) {
		/* Tails lost: the 1 MiB send's, write's and write+imm's.
		 * The write's is followed by write+imm's packets (SACKs);
		 * the other two have nothing after them: a tail loss probe
		 * finds them, or a timeout (two if the resends meet a slow
		 * peer), not one per 16 packets (29 for the three, before).
		 * The run has 2-3 timeouts of its own without loss. */
		uint64_t ops = st.test_dropped / (uint64_t)atoi(tail);
		CHECK(ops == 3 && st.retransmits >= st.test_dropped &&
			      st.rto_fires <= 2 * ops + 2,
		      "%llu tails lost: %llu probes, %llu timeouts, "
		      "%llu resent",
		      (unsigned long long)ops,
		      (unsigned long long)st.tlp_probes,
		      (unsigned long long)st.rto_fires,
		      (unsigned long long)st.retransmits);
	}
	const char *corrupt = getenv("WCCL_DPDK_TEST_CORRUPT");
	if (corrupt && atoi(corrupt) > 0)
		CHECK(st.retransmits > 0 && st.test_corrupted > 0,
		      "corruption injected but no retransmission");
	wccl_endpoint_close(ep);
	wccl_cq_destroy(cq);
	wccl_context_close(ctx);
	fprintf(stderr, "[client] PASS\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		memif_role = argv[1];
		alarm(120);
		return strcmp(memif_role, "server") ? client() : server();
	}
	return memif_pair_run("/proc/self/exe");
}
