/* SPDX-License-Identifier: MIT */
/*
 * wccl_select_address (transport/transport.c) against the real shm and
 * uring providers: same-host peers go over shm, WCCL_TRANSPORT forces a
 * provider, a foreign shm host falls back to uring, nothing fits → ENODEV.
 * The shm address format comes from a real shm listener, never guessed.
 * Needs both providers usable; otherwise exits 77 saying which is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wccl/transport.h>

#include "core/params.h"

static char shm_host[WCCL_ADDR_MAX];	/* "shm:<host-id>:" */
static char shm_real[WCCL_ADDR_MAX];	/* a real listener's address */
static char shm_foreign[WCCL_ADDR_MAX]; /* same, another host id */

static int select_idx(const char *const *addrs, int n)
{
	int idx = -1;
	int rc = wccl_select_address(addrs, n, &idx);
	return rc ? rc : idx;
}

static void force(const char *name)
{
	if (name)
		setenv("WCCL_TRANSPORT", name, 1);
	else
		unsetenv("WCCL_TRANSPORT");
	wccl_param_reload();
}

static int reset(void **state)
{
	(void)state;
	force(NULL);
	return 0;
}

static void same_host_prefers_shm(void **state)
{
	(void)state;
	char shm_x[WCCL_ADDR_MAX + 2];
	snprintf(shm_x, sizeof(shm_x), "%sx", shm_host);
	const char *a[] = {shm_x, "uring:127.0.0.1:1"};
	assert_int_equal(select_idx(a, 2), 0);
	const char *b[] = {"uring:127.0.0.1:1", shm_x};
	assert_int_equal(select_idx(b, 2), 1);
	const char *c[] = {"uring:127.0.0.1:1", shm_real};
	assert_int_equal(select_idx(c, 2), 1);
}

static void transport_env_forces_uring(void **state)
{
	(void)state;
	const char *a[] = {shm_real, "uring:127.0.0.1:1"};
	force("uring");
	assert_int_equal(select_idx(a, 2), 1);
	force("shm");
	assert_int_equal(select_idx(a, 2), 0);
	/* Forcing a provider the peer does not offer: nothing fits. */
	const char *u[] = {"uring:127.0.0.1:1"};
	assert_int_equal(select_idx(u, 1), WCCL_ENODEV);
	force("nosuchprovider");
	assert_int_equal(select_idx(a, 2), WCCL_ENODEV);
}

static void foreign_shm_host_falls_back_to_uring(void **state)
{
	(void)state;
	const char *a[] = {shm_foreign, "uring:127.0.0.1:1"};
	assert_int_equal(select_idx(a, 2), 1);
	const char *only[] = {shm_foreign};
	assert_int_equal(select_idx(only, 1), WCCL_ENODEV);
}

static void nothing_fits_is_enodev(void **state)
{
	(void)state;
	const char *none[] = {NULL};
	assert_int_equal(select_idx(none, 0), WCCL_ENODEV);
	const char *junk[] = {"nosuch:1.2.3.4:5", "no-colon", "", NULL};
	assert_int_equal(select_idx(junk, 4), WCCL_ENODEV);
	int idx;
	assert_int_equal(wccl_select_address(NULL, 1, &idx), WCCL_EINVAL);
	assert_int_equal(wccl_select_address(junk, 1, NULL), WCCL_EINVAL);
	assert_int_equal(wccl_select_address(junk, -1, &idx), WCCL_EINVAL);
}

static int usable(const char *name, char *why, size_t len)
{
	for (int i = 0; i < wccl_provider_count(); i++) {
		struct wccl_provider_info info;
		if (wccl_provider_info(i, &info) || strcmp(info.name, name))
			continue;
		if (!info.available)
			return 1;
		snprintf(why, len, "provider %s not usable here: %s", name,
			 wccl_err_name(info.available));
		return 0;
	}
	snprintf(why, len, "provider %s not compiled in", name);
	return 0;
}

int main(void)
{
	char why[160];
	unsetenv("WCCL_TRANSPORT");
	if (!usable("shm", why, sizeof(why)) ||
	    !usable("uring", why, sizeof(why))) {
		printf("SKIP: needs shm and uring: %s\n", why);
		return 77;
	}
	/* Learn the shm address format from a real listener. */
	struct wccl_context *ctx;
	struct wccl_listener *l;
	if (wccl_context_open("shm", &ctx) || wccl_listen(ctx, NULL, &l) ||
	    wccl_listener_addr(l, shm_real, sizeof(shm_real))) {
		fprintf(stderr, "FAIL: could not open an shm listener\n");
		return 1;
	}
	wccl_listener_close(l);
	wccl_context_close(ctx);
	const char *c1 = strchr(shm_real, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (strncmp(shm_real, "shm:", 4) || !c2 || c2 == c1 + 1) {
		fprintf(stderr,
			"FAIL: shm listener address '%s' is not "
			"shm:<host-id>:<name>\n",
			shm_real);
		return 1;
	}
	snprintf(shm_host, sizeof(shm_host), "%.*s", (int)(c2 + 1 - shm_real),
		 shm_real);
	/* Another host: flip the last character of the host id. */
	snprintf(shm_foreign, sizeof(shm_foreign), "%s", shm_real);
	char *last = shm_foreign + (c2 - shm_real) - 1;
	*last = *last == '0' ? '1' : '0';
	printf("shm listener address %s, foreign variant %s\n", shm_real,
	       shm_foreign);

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(same_host_prefers_shm, reset),
	    cmocka_unit_test_teardown(transport_env_forces_uring, reset),
	    cmocka_unit_test_teardown(foreign_shm_host_falls_back_to_uring,
				      reset),
	    cmocka_unit_test_teardown(nothing_fits_is_enodev, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
