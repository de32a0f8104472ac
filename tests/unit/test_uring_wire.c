/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "transport/uring/uring_wire.h"

static const struct uring_wire_hdr sample = {
	.op = URING_OP_WRITE_IMM,
	.imm = 0xa1b2c3d4u,
	.seq = 0x0102030405060708ull,
	.len = URING_WIRE_MAX_MSG,
	.key = 0xdeadbeef00000007ull,
	.offset = 0xfffffffffffffff0ull,
};

static void every_field_round_trips(void **state)
{
	(void)state;
	uint8_t buf[URING_WIRE_HDR_LEN];
	uring_wire_encode(&sample, buf);
	assert_int_equal(buf[0], URING_WIRE_MAGIC & 0xff); /* little-endian */
	assert_int_equal(buf[8], 0x08);
	struct uring_wire_hdr h;
	memset(&h, 0xff, sizeof(h));
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.op, sample.op);
	assert_int_equal(h.version, URING_WIRE_VERSION);
	assert_int_equal(h.imm, sample.imm);
	assert_true(h.seq == sample.seq);
	assert_true(h.len == sample.len);
	assert_true(h.key == sample.key);
	assert_true(h.offset == sample.offset);
	for (unsigned op = URING_OP_HELLO; op <= URING_OP_NAK; op++) {
		struct uring_wire_hdr in = { .op = (uint8_t)op, .seq = op };
		uring_wire_encode(&in, buf);
		assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), 0);
		assert_int_equal(h.op, op);
	}
}

static void truncated_input_is_not_read(void **state)
{
	(void)state;
	uint8_t buf[URING_WIRE_HDR_LEN];
	uring_wire_encode(&sample, buf);
	struct uring_wire_hdr h;
	for (size_t n = 0; n < URING_WIRE_HDR_LEN; n++) {
		/* A heap copy of exactly n bytes lets ASan catch overreads. */
		uint8_t *p = test_malloc(n ? n : 1);
		memcpy(p, buf, n);
		assert_int_equal(uring_wire_decode(p, n, &h), WCCL_EAGAIN);
		test_free(p);
	}
}

static void garbage_is_rejected(void **state)
{
	(void)state;
	uint8_t buf[URING_WIRE_HDR_LEN];
	struct uring_wire_hdr h;

	uring_wire_encode(&sample, buf);
	buf[0] ^= 0xff;
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), WCCL_EPROTO);

	uring_wire_encode(&sample, buf);
	buf[2] = URING_WIRE_VERSION + 1;
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h),
			 WCCL_EPROTONOSUPPORT);
	assert_int_equal(h.version, URING_WIRE_VERSION + 1);

	uring_wire_encode(&sample, buf);
	buf[3] = 0;
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), WCCL_EPROTO);
	buf[3] = URING_OP_NAK + 1;
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), WCCL_EPROTO);

	struct uring_wire_hdr big = sample;
	big.len = URING_WIRE_MAX_MSG + 1;
	uring_wire_encode(&big, buf);
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), WCCL_EPROTO);
	big.len = UINT64_MAX;
	uring_wire_encode(&big, buf);
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), WCCL_EPROTO);

	/* Control headers never carry a payload. */
	struct uring_wire_hdr ack = { .op = URING_OP_ACK, .len = 1 };
	uring_wire_encode(&ack, buf);
	assert_int_equal(uring_wire_decode(buf, sizeof(buf), &h), WCCL_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_field_round_trips),
		cmocka_unit_test(truncated_input_is_not_read),
		cmocka_unit_test(garbage_is_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
