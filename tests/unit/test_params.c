/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/errors.h>
#include <wccl/params.h>

#include "core/params.h"

static void parse_size_accepts_suffixes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(wccl_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(wccl_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(wccl_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(wccl_parse_size("8M", &v), 0);
	assert_int_equal(v, 8u << 20);
	assert_int_equal(wccl_parse_size("1GiB", &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(wccl_parse_size("0x10", &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(wccl_parse_size(" 12 ", &v), 0);
	assert_int_equal(v, 12);
}

static void parse_size_rejects_junk(void **state)
{
	(void)state;
	uint64_t v = 99;
	assert_int_equal(wccl_parse_size("", &v), WCCL_EINVAL);
	assert_int_equal(wccl_parse_size("-1", &v), WCCL_EINVAL);
	assert_int_equal(wccl_parse_size("12Q", &v), WCCL_EINVAL);
	assert_int_equal(wccl_parse_size("K", &v), WCCL_EINVAL);
	assert_int_equal(wccl_parse_size(NULL, &v), WCCL_EINVAL);
	assert_int_equal(wccl_parse_size("99999999999999999999", &v),
			 WCCL_ERANGE);
	assert_int_equal(wccl_parse_size("17179869184G", &v), WCCL_ERANGE);
	assert_int_equal(v, 99);
}

static void env_overrides_and_bad_values_fall_back(void **state)
{
	(void)state;
	setenv("WCCL_QUEUE_DEPTH", "512", 1);
	setenv("WCCL_SPIN_US", "lots", 1);
	setenv("WCCL_TRANSPORT", "shm", 1);
	wccl_param_reload();
	assert_int_equal(wccl_param_int(WCCL_PARAM_QUEUE_DEPTH), 512);
	assert_int_equal(wccl_param_int(WCCL_PARAM_SPIN_US), 50);
	assert_string_equal(wccl_param_str(WCCL_PARAM_TRANSPORT), "shm");

	int found = 0;
	for (int i = 0; i < wccl_param_count(); i++) {
		struct wccl_param_info info;
		assert_int_equal(wccl_param_get(i, &info), 0);
		assert_non_null(info.description);
		assert_int_equal(strncmp(info.name, "WCCL_", 5), 0);
		if (strcmp(info.name, "WCCL_QUEUE_DEPTH") == 0) {
			assert_string_equal(info.value, "512");
			assert_string_equal(info.default_value, "256");
			assert_true(info.from_env);
			found++;
		}
		if (strcmp(info.name, "WCCL_SPIN_US") == 0) {
			assert_false(info.from_env);
			found++;
		}
	}
	assert_int_equal(found, 2);
	struct wccl_param_info info;
	assert_int_equal(wccl_param_get(wccl_param_count(), &info),
			 WCCL_EINVAL);
	unsetenv("WCCL_QUEUE_DEPTH");
	unsetenv("WCCL_SPIN_US");
	unsetenv("WCCL_TRANSPORT");
	wccl_param_reload();
	assert_int_equal(wccl_param_int(WCCL_PARAM_QUEUE_DEPTH), 256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_size_accepts_suffixes),
	    cmocka_unit_test(parse_size_rejects_junk),
	    cmocka_unit_test(env_overrides_and_bad_values_fall_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
