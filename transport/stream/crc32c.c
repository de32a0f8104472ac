/* SPDX-License-Identifier: MIT */
#include "crc32c.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static int crc_table_ready;

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int s = 1; s < 8; s++)
			crc_table[s][i] =
			    (crc_table[s - 1][i] >> 8) ^
			    crc_table[0][crc_table[s - 1][i] & 0xff];
	__atomic_store_n(&crc_table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t wccl_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE))
		crc_table_init(); /* idempotent: racing threads write the same
				   */
	crc = ~crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		v ^= crc;
		crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
		      crc_table[5][(v >> 16) & 0xff] ^
		      crc_table[4][(v >> 24) & 0xff] ^
		      crc_table[3][(v >> 32) & 0xff] ^
		      crc_table[2][(v >> 40) & 0xff] ^
		      crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

int wccl_crc32c_have_hw(void)
{
	return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

uint32_t wccl_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	if (!wccl_crc32c_have_hw())
		return wccl_crc32c_sw(crc, buf, len);
	return crc32c_sse42(crc, buf, len);
}
#else
int wccl_crc32c_have_hw(void)
{
	return 0;
}

uint32_t wccl_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return wccl_crc32c_sw(crc, buf, len);
}
#endif

uint32_t wccl_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static int hw = -1;
	int h = __atomic_load_n(&hw, __ATOMIC_RELAXED);
	if (h < 0) {
		h = wccl_crc32c_have_hw();
		__atomic_store_n(&hw, h, __ATOMIC_RELAXED);
	}
	return h ? wccl_crc32c_hw(crc, buf, len)
		 : wccl_crc32c_sw(crc, buf, len);
}

/* zlib's crc32_combine, for the Castagnoli polynomial: shift @crc1 over
 * @len2 zero bytes with GF(2) matrix squaring, then add @crc2. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		square[n] = gf2_times(mat, mat[n]);
}

uint32_t wccl_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	uint32_t even[32], odd[32];
	if (!len2)
		return crc1;
	odd[0] = CRC32C_POLY;
	for (uint32_t n = 1, row = 1; n < 32; n++, row <<= 1)
		odd[n] = row;
	gf2_square(even, odd);
	gf2_square(odd, even);
	do {
		gf2_square(even, odd);
		if (len2 & 1)
			crc1 = gf2_times(even, crc1);
		len2 >>= 1;
		if (!len2)
			break;
		gf2_square(odd, even);
		if (len2 & 1)
			crc1 = gf2_times(odd, crc1);
		len2 >>= 1;
	} while (len2);
	return crc1 ^ crc2;
}
