/* SPDX-License-Identifier: MIT */
/* The dpdk wire header: round trips, every rejection, and a fuzzer that
 * feeds random, mutated and truncated packets (never crashes, never reads
 * past the end: run it under ASan/valgrind to check the latter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "transport/dpdk/dpdk_wire.h"

static struct dpdk_wire_hdr sample(void)
{
	struct dpdk_wire_hdr h = {
		.type = DPDK_PKT_DATA,
		.dst_conn = 0x11223344u,
		.src_conn = 0x55667788u,
		.seq = 0xfffffff0u,
		.ack = 0x01020304u,
		.op_done = 7,
		.op_seen = 5,
		.n_sack = DPDK_WIRE_MAX_SACK,
		.n_rej = 2,
		.op = DPDK_OP_WRITE_IMM,
		.flags = DPDK_F_LAST,
		.op_seq = 6,
		.imm = 0xa1b2c3d4u,
		.key = 0xdeadbeef00000007ull,
		.offset = 1000,
		.msg_len = 1100,
		.roff = 0xfffffffffffffff0ull,
		.frag_len = 100,
		.wnd = 1024,
	};
	for (unsigned i = 0; i < DPDK_WIRE_MAX_SACK; i++)
		h.sack[i] = (struct dpdk_sack){ 10 * i + 1, 10 * i + 5 };
	h.rej[0] = (struct dpdk_rej){ 5, 1001 };
	h.rej[1] = (struct dpdk_rej){ 6, 1004 };
	return h;
}

static void every_field_round_trips(void **state)
{
	(void)state;
	struct dpdk_wire_hdr in = sample();
	uint8_t buf[DPDK_WIRE_MAX_HDR + 100];
	size_t n = dpdk_wire_encode(&in, buf);
	assert_int_equal(n, DPDK_WIRE_HDR_LEN + 8 * 6);
	assert_int_equal(buf[0], DPDK_WIRE_MAGIC & 0xff);
	assert_int_equal(buf[2], DPDK_WIRE_VERSION);
	memset(buf + n, 0x5a, 100);
	struct dpdk_wire_hdr h;
	memset(&h, 0xee, sizeof(h));
	assert_int_equal(dpdk_wire_decode(buf, n + 100, &h), (int)n);
	assert_int_equal(h.version, DPDK_WIRE_VERSION);
	assert_int_equal(h.type, in.type);
	assert_int_equal(h.dst_conn, in.dst_conn);
	assert_int_equal(h.src_conn, in.src_conn);
	assert_int_equal(h.seq, in.seq);
	assert_int_equal(h.ack, in.ack);
	assert_int_equal(h.op_done, in.op_done);
	assert_int_equal(h.op_seen, in.op_seen);
	assert_int_equal(h.op, in.op);
	assert_int_equal(h.flags, in.flags);
	assert_int_equal(h.op_seq, in.op_seq);
	assert_int_equal(h.imm, in.imm);
	assert_true(h.key == in.key);
	assert_true(h.offset == in.offset);
	assert_true(h.msg_len == in.msg_len);
	assert_true(h.roff == in.roff);
	assert_int_equal(h.frag_len, in.frag_len);
	assert_int_equal(h.wnd, in.wnd);
	assert_memory_equal(h.sack, in.sack, sizeof(in.sack));
	assert_memory_equal(h.rej, in.rej, 2 * sizeof(in.rej[0]));
	/* Control packets too. */
	for (unsigned t = DPDK_PKT_SYN; t < DPDK_PKT_TYPE_MAX_; t++) {
		if (t == DPDK_PKT_DATA)
			continue;
		struct dpdk_wire_hdr c = { .type = (uint8_t)t, .seq = t };
		n = dpdk_wire_encode(&c, buf);
		assert_int_equal(dpdk_wire_decode(buf, n, &h), (int)n);
		assert_int_equal(h.type, t);
		assert_string_not_equal(dpdk_wire_type_name(t), "unknown");
	}
}

static int enc_dec(const struct dpdk_wire_hdr *in, size_t extra)
{
	uint8_t buf[DPDK_WIRE_MAX_HDR + 10000];
	size_t n = dpdk_wire_encode(in, buf);
	struct dpdk_wire_hdr h;
	return dpdk_wire_decode(buf, n + extra, &h);
}

static void malformed_is_rejected(void **state)
{
	(void)state;
	struct dpdk_wire_hdr h = sample();
	assert_true(enc_dec(&h, 100) > 0);
	assert_int_equal(enc_dec(&h, 99), WCCL_EPROTO); /* payload cut */
	h = sample();
	h.type = DPDK_PKT_TYPE_MAX_;
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.op = 0;
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.op = DPDK_OP_WRITE_IMM + 1;
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.flags = 4;
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.msg_len = DPDK_WIRE_MAX_MSG + 1;
	h.offset = h.msg_len - 100;
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.offset = 1001; /* LAST fragment must end the message */
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.offset = UINT64_MAX - 10; /* wraps */
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.flags = DPDK_F_FIRST; /* first fragment at offset 1000 */
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.sack[1].end = h.sack[1].start; /* empty block */
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.rej[0].err = 0;
	assert_int_equal(enc_dec(&h, 100), WCCL_EPROTO);
	h = sample();
	h.frag_len = DPDK_WIRE_MAX_FRAG + 1;
	h.msg_len = h.offset + h.frag_len;
	assert_int_equal(enc_dec(&h, h.frag_len), WCCL_EPROTO);
	struct dpdk_wire_hdr c = { .type = DPDK_PKT_ACK, .frag_len = 1 };
	assert_int_equal(enc_dec(&c, 1), WCCL_EPROTO); /* payload on an ACK */
	c.frag_len = 0;
	c.op = DPDK_OP_SEND;
	assert_int_equal(enc_dec(&c, 0), WCCL_EPROTO);
	/* Counts past the maximum, bad magic, another version. */
	uint8_t buf[DPDK_WIRE_MAX_HDR + 200];
	h = sample();
	size_t n = dpdk_wire_encode(&h, buf);
	struct dpdk_wire_hdr o;
	buf[28] = DPDK_WIRE_MAX_SACK + 1;
	assert_int_equal(dpdk_wire_decode(buf, n + 100, &o), WCCL_EPROTO);
	n = dpdk_wire_encode(&h, buf);
	buf[29] = 0xff;
	assert_int_equal(dpdk_wire_decode(buf, sizeof(buf), &o), WCCL_EPROTO);
	n = dpdk_wire_encode(&h, buf);
	buf[0] ^= 1;
	assert_int_equal(dpdk_wire_decode(buf, n + 100, &o), WCCL_EPROTO);
	n = dpdk_wire_encode(&h, buf);
	buf[2] = DPDK_WIRE_VERSION + 1;
	assert_int_equal(dpdk_wire_decode(buf, n + 100, &o),
			 WCCL_EPROTONOSUPPORT);
	assert_int_equal(o.version, DPDK_WIRE_VERSION + 1);
	assert_int_equal(o.src_conn, h.src_conn);
	/* Every truncation of a valid packet is refused. */
	n = dpdk_wire_encode(&h, buf);
	for (size_t cut = 0; cut < n + 100; cut++)
		assert_int_equal(dpdk_wire_decode(buf, cut, &o), WCCL_EPROTO);
}

/* xorshift: reproducible without libc rand state. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fuzz_never_crashes(void **state)
{
	(void)state;
	enum { ROUNDS = 400000 };
	unsigned ok = 0, bad = 0;
	for (int r = 0; r < ROUNDS; r++) {
		size_t n;
		uint8_t *buf;
		if (r % 2) { /* mutate a valid packet */
			struct dpdk_wire_hdr h = sample();
			uint8_t tmp[DPDK_WIRE_MAX_HDR + 100];
			n = dpdk_wire_encode(&h, tmp) + 100;
			memset(tmp + n - 100, 0x33, 100);
			int flips = 1 + (int)(next() % 4);
			for (int f = 0; f < flips; f++)
				tmp[next() % n] ^= (uint8_t)(1u << (next() % 8));
			n = next() % 3 ? n : next() % (n + 1);
			/* Exact-size heap copy: ASan sees any over-read. */
			buf = malloc(n ? n : 1);
			memcpy(buf, tmp, n);
		} else { /* random bytes with a plausible prefix */
			n = next() % (DPDK_WIRE_MAX_HDR + 64);
			buf = malloc(n ? n : 1);
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)next();
			if (n > 3 && next() % 2) {
				buf[0] = DPDK_WIRE_MAGIC & 0xff;
				buf[1] = DPDK_WIRE_MAGIC >> 8;
				buf[2] = DPDK_WIRE_VERSION;
				buf[3] = (uint8_t)(1 + next() % 6);
			}
		}
		struct dpdk_wire_hdr h;
		int rc = dpdk_wire_decode(buf, n, &h);
		if (rc >= 0) {
			ok++;
			/* What was accepted is self-consistent. */
			assert_true((size_t)rc + h.frag_len <= n);
			assert_true(h.n_sack <= DPDK_WIRE_MAX_SACK);
			assert_true(h.n_rej <= DPDK_WIRE_MAX_REJ);
			if (h.type == DPDK_PKT_DATA)
				assert_true(h.offset + h.frag_len <= h.msg_len);
		} else {
			assert_true(rc == WCCL_EPROTO ||
				    rc == WCCL_EPROTONOSUPPORT);
			bad++;
		}
		free(buf);
	}
	print_message("fuzz: %u accepted, %u counted and dropped\n", ok, bad);
	assert_int_equal(ok + bad, ROUNDS);
	assert_true(ok > 0 && bad > 0);
}

/* Regression: pids 0x5100 and 0x5101 (ranks 0 and 1 of one dpdk-coll
 * launch) both got 10.0.81.1, so rank 0 connected to itself. Every pid
 * up to pid_max (2^22) must get its own address, never 10.0.0.0. */
static void auto_ip_distinct_per_pid(void **state)
{
	(void)state;
	assert_int_not_equal(dpdk_auto_ip(0x5100), dpdk_auto_ip(0x5101));
	static uint8_t seen[(1u << 22) / 8];
	memset(seen, 0, sizeof(seen));
	for (uint32_t pid = 1; pid < (1u << 22); pid++) {
		uint32_t ip = dpdk_auto_ip(pid);
		assert_int_equal(ip >> 24, 10);
		uint32_t host = ip & 0xffffff;
		assert_true(host != 0 && host < (1u << 22));
		assert_false(seen[host / 8] & (1u << (host % 8)));
		seen[host / 8] |= (uint8_t)(1u << (host % 8));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_field_round_trips),
		cmocka_unit_test(malformed_is_rejected),
		cmocka_unit_test(fuzz_never_crashes),
		cmocka_unit_test(auto_ip_distinct_per_pid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
