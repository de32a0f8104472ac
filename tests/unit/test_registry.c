/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "transport/registry.h"

/* A provider's name is taken off an address; nothing else is. */
static void addr_detail_strips_only_provider_names(void **state)
{
	(void)state;
	assert_string_equal(wccl_addr_detail("shm:0123abcd:wccl-77-0"),
			    "0123abcd:wccl-77-0");
	assert_string_equal(wccl_addr_detail("10.0.0.7:5000"),
			    "10.0.0.7:5000");
	assert_string_equal(wccl_addr_detail("[::1]:5000"), "[::1]:5000");
	assert_string_equal(wccl_addr_detail("::1"), "::1");
	assert_string_equal(wccl_addr_detail("host.example:5000"),
			    "host.example:5000");
	assert_string_equal(wccl_addr_detail("nosuch:10.0.0.7:5000"),
			    "nosuch:10.0.0.7:5000");
	assert_string_equal(wccl_addr_detail("shm"), "shm");
	assert_string_equal(wccl_addr_detail(""), "");
	int probe;
	if (wccl_registry_find("uring", 5, &probe)) {
		assert_string_equal(wccl_addr_detail("uring:10.0.0.7:5000"),
				    "10.0.0.7:5000");
		assert_string_equal(wccl_addr_detail("uring:[fe80::1]:5000"),
				    "[fe80::1]:5000");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(addr_detail_strips_only_provider_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
