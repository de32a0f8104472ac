/* SPDX-License-Identifier: MIT */
/* Topology file parsing (collectives/comm/comm_topo.c, WCCL_TOPO_FILE):
 * what is accepted, and what is refused with the file, line and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "collectives/comm/comm_internal.h"

static char g_path[64];

/* Write @text to a fresh file; its path is g_path. */
static void write_file(const char *text)
{
	snprintf(g_path, sizeof(g_path), "/tmp/wccl-topo-XXXXXX");
	int fd = mkstemp(g_path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static const struct wccl_link_cost start[WCCL_LINK_CLASSES] = {
	{ .alpha_us = 1, .gbytes_per_s = 2 },
	{ .alpha_us = 3, .gbytes_per_s = 4 },
	{ .alpha_us = 5, .gbytes_per_s = 6 },
};

/* Parse @text; the error text goes to @err. */
static int parse(const char *text, struct wccl_link_cost *link,
		 uint32_t *declared, char *err, size_t len)
{
	write_file(text);
	memcpy(link, start, sizeof(start));
	*declared = 0;
	err[0] = '\0';
	int rc = comm_topo_parse(g_path, link, declared, err, len);
	unlink(g_path);
	return rc;
}

static void good_file_is_read(void **state)
{
	(void)state;
	struct wccl_link_cost l[WCCL_LINK_CLASSES];
	uint32_t d;
	char err[256];
	int rc = parse("# class alpha_us GB/s\n"
		       "\n"
		       "host 2 10   # shared memory\r\n"
		       "\tcross\t15000\t0.6\n"
		       "region 0 1e4", /* no newline at the end */
		       l, &d, err, sizeof(err));
	assert_int_equal(rc, 0);
	assert_int_equal(d, 7);
	assert_true(l[WCCL_LINK_HOST].alpha_us == 2);
	assert_true(l[WCCL_LINK_HOST].gbytes_per_s == 10);
	assert_true(l[WCCL_LINK_REGION].alpha_us == 0);
	assert_true(l[WCCL_LINK_REGION].gbytes_per_s == 1e4);
	assert_true(l[WCCL_LINK_CROSS].alpha_us == 15000);
	assert_true(l[WCCL_LINK_CROSS].gbytes_per_s == 0.6);
	/* A class without a line keeps its figures. */
	assert_int_equal(parse("cross 100 1\n", l, &d, err, sizeof(err)), 0);
	assert_int_equal(d, 1u << WCCL_LINK_CROSS);
	assert_true(l[WCCL_LINK_HOST].alpha_us == 1);
}

/* @text must be refused with an error naming the file, @line, @why. */
static void refused(const char *text, int line, const char *why)
{
	struct wccl_link_cost l[WCCL_LINK_CLASSES];
	uint32_t d;
	char err[256], where[96];
	int rc = parse(text, l, &d, err, sizeof(err));
	print_message("%s\n", err);
	assert_int_equal(rc, WCCL_EINVAL);
	snprintf(where, sizeof(where), "%s:%d: ", g_path, line);
	assert_non_null(strstr(err, where));
	assert_non_null(strstr(err, why));
	/* Nothing taken from a bad file. */
	assert_int_equal(d, 0);
	assert_memory_equal(l, start, sizeof(start));
}

static void non_finite_and_huge_numbers_are_refused(void **state)
{
	(void)state;
	refused("host 2 10\nregion nan 1\n", 2, "alpha_us 'nan'");
	refused("region NAN 1\n", 1, "alpha_us 'NAN'");
	refused("cross 5 nan\n", 1, "GB/s 'nan'");
	refused("cross inf 1\n", 1, "alpha_us 'inf'");
	refused("cross 5 infinity\n", 1, "GB/s 'infinity'");
	refused("cross 1e300 1\n", 1, "alpha_us '1e300'");
	refused("cross 10000001 1\n", 1, "not a number in 0..10000000");
	refused("cross 5 1e300\n", 1, "GB/s '1e300'");
	refused("cross 5 10001\n", 1, "GB/s '10001'");
	refused("cross -1 1\n", 1, "alpha_us '-1'");
	refused("cross 5 0\n", 1, "GB/s '0'");
	refused("cross 5 -2\n", 1, "GB/s '-2'");
	refused("cross 5 1e-9\n", 1, "GB/s '1e-9'");
}

static void junk_is_refused(void **state)
{
	(void)state;
	refused("host 2 10 extra\n", 1, "unexpected 'extra' after the GB/s");
	refused("host 2 10 5\n", 1, "unexpected '5'");
	refused("host 2 10x\n", 1, "GB/s '10x'");
	refused("host 2us 10\n", 1, "alpha_us '2us'");
	refused("host 2\n", 1, "expected '<host|region|cross>");
	refused("\n\nwan 2 10\n", 3, "unknown link class 'wan'");
	refused("host 2 10\nhost 3 10\n", 2,
		"second 'host' line (the first is line 1)");
}

static void over_long_lines_are_refused(void **state)
{
	(void)state;
	/* 300 blanks, then what would parse as a line of its own. */
	char text[400];
	memset(text, ' ', 300);
	snprintf(text + 300, sizeof(text) - 300, "host 2 10\n");
	refused(text, 1, "line longer than 254 characters");
	/* Up to the limit is fine. */
	struct wccl_link_cost l[WCCL_LINK_CLASSES];
	uint32_t d;
	char err[256];
	memset(text, ' ', 245);
	snprintf(text + 245, sizeof(text) - 245, "host 2 10\n");
	assert_int_equal(strlen(text), 255);
	assert_int_equal(parse(text, l, &d, err, sizeof(err)), 0);
	assert_true(l[WCCL_LINK_HOST].gbytes_per_s == 10);
	/* A NUL byte would split the line the same way. */
	write_file("host 2 10\n");
	FILE *f = fopen(g_path, "w");
	assert_non_null(f);
	fwrite("host 2\0 10 1\n", 1, 13, f);
	fclose(f);
	memcpy(l, start, sizeof(start));
	assert_int_equal(comm_topo_parse(g_path, l, &d, err, sizeof(err)),
			 WCCL_EINVAL);
	assert_non_null(strstr(err, ":1: NUL byte"));
	unlink(g_path);
}

static void missing_file_is_named(void **state)
{
	(void)state;
	struct wccl_link_cost l[WCCL_LINK_CLASSES];
	uint32_t d = 0;
	char err[256];
	assert_int_equal(comm_topo_parse("/nonexistent/topo", l, &d, err,
					 sizeof(err)),
			 WCCL_ENOENT);
	assert_non_null(strstr(err, "/nonexistent/topo: cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_file_is_read),
		cmocka_unit_test(non_finite_and_huge_numbers_are_refused),
		cmocka_unit_test(junk_is_refused),
		cmocka_unit_test(over_long_lines_are_refused),
		cmocka_unit_test(missing_file_is_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
