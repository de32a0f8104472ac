/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/transport.h>

static void rkey_round_trips_little_endian(void **state)
{
	(void)state;
	struct wccl_rkey in = {.key = 0x0102030405060708ull,
			       .addr = 0xdeadbeefcafef00dull,
			       .len = 1ull << 40,
			       .access = WCCL_ACCESS_REMOTE_WRITE,
			       .reserved = 7};
	uint8_t buf[WCCL_RKEY_PACKED_LEN];
	wccl_rkey_pack(&in, buf);
	assert_int_equal(buf[0], 0x08); /* little-endian on the wire */
	assert_int_equal(buf[7], 0x01);
	struct wccl_rkey out;
	memset(&out, 0xff, sizeof(out));
	wccl_rkey_unpack(buf, &out);
	assert_memory_equal(&in, &out, sizeof(in));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rkey_round_trips_little_endian),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
