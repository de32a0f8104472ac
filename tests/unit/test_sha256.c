/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/sha256.h"

static void hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < WCCL_SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_sha(const char *msg, size_t len, const char *want)
{
	struct wccl_sha256 s;
	uint8_t d[WCCL_SHA256_LEN];
	char got[65];
	wccl_sha256_init(&s);
	/* Feed in uneven pieces to cover the block buffering. */
	for (size_t o = 0; o < len;) {
		size_t n = (o % 7) + 1 < len - o ? (o % 7) + 1 : len - o;
		wccl_sha256_update(&s, msg + o, n);
		o += n;
	}
	wccl_sha256_final(&s, d);
	hex(d, got);
	assert_string_equal(got, want);
}

/* FIPS 180-2 appendix B vectors. */
static void sha256_fips_vectors(void **state)
{
	(void)state;
	check_sha("abc", 3,
		  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check_sha("", 0,
		  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	check_sha(m, strlen(m),
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* RFC 4231 test cases 1 and 2. */
static void hmac_rfc4231(void **state)
{
	(void)state;
	uint8_t key[20], d[WCCL_SHA256_LEN];
	char got[65];
	memset(key, 0x0b, sizeof(key));
	wccl_hmac_sha256(key, sizeof(key), "Hi There", 8, d);
	hex(d, got);
	assert_string_equal(got, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	wccl_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
	hex(d, got);
	assert_string_equal(got, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	assert_int_equal(wccl_ct_memcmp("abc", "abc", 3), 0);
	assert_int_not_equal(wccl_ct_memcmp("abc", "abd", 3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sha256_fips_vectors),
		cmocka_unit_test(hmac_rfc4231),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
