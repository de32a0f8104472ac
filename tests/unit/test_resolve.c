/* SPDX-License-Identifier: MIT */
/*
 * wccl_sock_resolve against a DNS server that never answers. Run by
 * resolve_ns.sh in a private mount and network namespace whose
 * /etc/resolv.conf names 127.0.0.1 (timeout 5 s, 2 attempts): this
 * program holds UDP 127.0.0.1:53 and reads nothing, so glibc's own
 * getaddrinfo would wait 10 s. No packet leaves the namespace's lo.
 * Run outside such a namespace it skips (77). wccl_sock_split, which
 * needs no namespace, is in test_sock.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "core/clock.h"
#include "core/params.h"
#include "core/sock.h"

static int dns_fd = -1;

/* Datagrams that reached the silent server since the last call. */
static int queries_seen(void)
{
	char buf[512];
	int n = 0;
	while (recv(dns_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		n++;
	return n;
}

/* A name: ETIMEDOUT after WCCL_RESOLVE_TIMEOUT_MS (300), not glibc's 10 s;
 * the query did go to the server, so the bound is what ended it. Twice:
 * the first lookup, left running, does not hold up the next. */
static void name_lookup_is_bounded(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		uint64_t t0 = wccl_now_ns();
		int rc = wccl_sock_parse("wccl-no-such-host.invalid:4000", 0,
					 &ss, &len);
		double s = (double)(wccl_now_ns() - t0) / 1e9;
		print_message("  lookup %d: %s after %.2f s\n", i,
			      wccl_strerror(rc), s);
		assert_int_equal(rc, WCCL_ETIMEDOUT);
		assert_true(s >= 0.25 && s < 2.0);
		assert_true(queries_seen() > 0);
	}
}

/* wccl_sock_connect's lookup ends at the caller's deadline (100 ms) when
 * that comes before WCCL_RESOLVE_TIMEOUT_MS (300). */
static void connect_lookup_keeps_deadline(void **state)
{
	(void)state;
	queries_seen();
	uint64_t t0 = wccl_now_ns();
	int rc = wccl_sock_connect("wccl-no-such-host.invalid:4000",
				   wccl_deadline_ns(100));
	double s = (double)(wccl_now_ns() - t0) / 1e9;
	print_message("  connect: %s after %.2f s\n", wccl_strerror(rc), s);
	assert_int_equal(rc, WCCL_ETIMEDOUT);
	assert_true(s >= 0.08 && s < 0.25);
	assert_true(queries_seen() > 0);
}

/* Addresses need no lookup: no query, no wait, right bytes. */
static void addresses_do_not_look_up(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	socklen_t len;
	queries_seen();
	uint64_t t0 = wccl_now_ns();
	assert_int_equal(wccl_sock_parse("127.0.0.1:4000", 0, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	const struct sockaddr_in *in = (const void *)&ss;
	assert_int_equal(ntohs(in->sin_port), 4000);
	assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(wccl_sock_parse("[::1]:4001", 0, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(wccl_sock_resolve("0.0.0.0", "0", 1, &ss, &len), 0);
	assert_true(wccl_now_ns() - t0 < 100000000ull);
	assert_int_equal(queries_seen(), 0);
	/* bad input is still refused, not looked up */
	assert_int_equal(wccl_sock_parse("127.0.0.1:99999", 0, &ss, &len),
			 WCCL_EINVAL);
	assert_int_equal(wccl_sock_resolve("127.0.0.1", "http", 0, &ss, &len),
			 WCCL_EINVAL);
}

int main(void)
{
	if (!getenv("WCCL_RESOLVE_NS")) {
		fprintf(stderr, "SKIP: run by resolve_ns.sh only\n");
		return 77;
	}
	dns_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(53),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (dns_fd < 0 || bind(dns_fd, (struct sockaddr *)&a, sizeof(a))) {
		fprintf(stderr, "SKIP: cannot hold UDP 127.0.0.1:53: %s\n",
			strerror(errno));
		return 77;
	}
	setenv("WCCL_RESOLVE_TIMEOUT_MS", "300", 1);
	wccl_param_reload();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(addresses_do_not_look_up),
	    cmocka_unit_test(name_lookup_is_bounded),
	    cmocka_unit_test(connect_lookup_keeps_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
