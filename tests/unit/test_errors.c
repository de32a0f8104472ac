/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/errors.h>

static void every_code_has_text_and_name(void **state)
{
	(void)state;
	static const int codes[] = {
#define X(name, value, text) value,
	    WCCL_ERROR_LIST(X)
#undef X
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_true(codes[i] < 0);
		assert_string_not_equal(wccl_strerror(codes[i]),
					"unknown error");
		assert_int_equal(strncmp(wccl_err_name(codes[i]), "WCCL_E", 6),
				 0);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(codes[i], codes[j]);
	}
}

static void codes_mirror_errno(void **state)
{
	(void)state;
	assert_int_equal(WCCL_EAGAIN, -EAGAIN);
	assert_int_equal(WCCL_ETIMEDOUT, -ETIMEDOUT);
	assert_int_equal(WCCL_EOPNOTSUPP, -EOPNOTSUPP);
	assert_true(WCCL_EREMOTE_KEY <= -1000);
	assert_string_equal(wccl_err_name(WCCL_EREMOTE_BOUNDS),
			    "WCCL_EREMOTE_BOUNDS");
	assert_string_equal(wccl_strerror(-ETIMEDOUT), "timed out");
}

static void unknown_and_zero(void **state)
{
	(void)state;
	assert_string_equal(wccl_strerror(0), "success");
	assert_string_equal(wccl_err_name(0), "WCCL_OK");
	assert_string_equal(wccl_strerror(-123456), "unknown error");
	assert_string_equal(wccl_err_name(7777), "WCCL_UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_code_has_text_and_name),
	    cmocka_unit_test(codes_mirror_errno),
	    cmocka_unit_test(unknown_and_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
