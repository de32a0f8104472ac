/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "transport/registry.h"

static const struct {
	const char *addr, *detail;
} detail_v[] = {
	{"shm:0123abcd:wccl-77-0", "0123abcd:wccl-77-0"},
	{"10.0.0.7:5000", "10.0.0.7:5000"},
	{"[::1]:5000", "[::1]:5000"},
	{"::1", "::1"},
	{"host.example:5000", "host.example:5000"},
	{"nosuch:10.0.0.7:5000", "nosuch:10.0.0.7:5000"},
	{"shm", "shm"},
	{"", ""},
	/* Only where uring is built: */
	{"uring:10.0.0.7:5000", "10.0.0.7:5000"},
	{"uring:[fe80::1]:5000", "[fe80::1]:5000"},
};

/* A provider's name is taken off an address; nothing else is. */
static void addr_detail_strips_only_provider_names(void **state)
{
	(void)state;
	int probe;
	int uring = wccl_registry_find("uring", 5, &probe) != NULL;
	for (size_t i = 0; i < sizeof(detail_v) / sizeof(detail_v[0]); i++) {
		if (!uring && !strncmp(detail_v[i].addr, "uring:", 6))
			continue;
		assert_string_equal(wccl_addr_detail(detail_v[i].addr),
				    detail_v[i].detail);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(addr_detail_strips_only_provider_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
