/* SPDX-License-Identifier: MIT */
/*
 * core/sock.c's pure parts, which need no network: wccl_sock_split. The
 * lookups are in test_resolve.c (in namespaces of their own).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "core/sock.h"

/* wccl_sock_split: the forms the tools and providers take, and the
 * malformed ones refused before any lookup. */
static void address_split(void **state)
{
	(void)state;
	static const struct {
		const char *addr, *dflt, *host, *port;
	} good[] = {
	    {"127.0.0.1:80", NULL, "127.0.0.1", "80"},
	    {"[::1]:4001", NULL, "::1", "4001"},
	    {"[::1]", "7", "::1", "7"},
	    {"region-b", "29500", "region-b", "29500"},
	    {"h:0", NULL, "h", "0"},
	    {"h:65535", NULL, "h", "65535"},
	};
	static const struct {
		const char *addr, *dflt;
	} bad[] = {
	    {"region-b", NULL}, /* no port, none by default */
	    {":80", NULL},
	    {"h:", NULL},
	    {"h:65536", NULL},
	    {"h:+5", "1"},
	    {"h:123456", NULL},
	    {"[::1]x:5", NULL},
	    {"[::1", NULL},
	    {"[]:5", NULL},
	    {"", "1"},
	    {"h", ""},
	    {"h", "70000"},
	};
	char host[16], port[8];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(wccl_sock_split(good[i].addr, good[i].dflt,
						 host, sizeof(host), port,
						 sizeof(port)),
				 0);
		assert_string_equal(host, good[i].host);
		assert_string_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(wccl_sock_split(bad[i].addr, bad[i].dflt,
						 host, sizeof(host), port,
						 sizeof(port)),
				 WCCL_EINVAL);
	/* a host that does not fit is refused, not cut */
	assert_int_equal(wccl_sock_split("a-very-long-host-name:1", NULL, host,
					 sizeof(host), port, sizeof(port)),
			 WCCL_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(address_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
