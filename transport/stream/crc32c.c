/* SPDX-License-Identifier: MIT */
#include "crc32c.h"

#include <string.h>
#include <time.h>

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

static uint32_t crc32c_shift(uint32_t crc, uint64_t len);
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len);

/* The crc32 instruction has a latency of 3 cycles and a throughput of 1:
 * three independent streams over thirds of a large buffer keep it busy,
 * then two shifts join them (the usual 3-way split, as in Linux's
 * crc32c-intel). */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42_3way(uint32_t crc, const uint8_t *p, size_t len)
{
	size_t third = (len / 3) & ~(size_t)7;
	uint64_t a = ~crc, b = 0xffffffffu, c = 0xffffffffu;
	const uint8_t *pa = p, *pb = p + third, *pc = p + 2 * third;
	for (size_t i = 0; i < third; i += 8) {
		uint64_t va, vb, vc;
		memcpy(&va, pa + i, 8);
		memcpy(&vb, pb + i, 8);
		memcpy(&vc, pc + i, 8);
		a = _mm_crc32_u64(a, va);
		b = _mm_crc32_u64(b, vb);
		c = _mm_crc32_u64(c, vc);
	}
	/* Raw registers: running B from register r instead of ~0 changes
	 * the result by shift(r ^ ~0, |B|), the CRC being linear. */
	uint32_t ones = crc32c_shift(0xffffffffu, third);
	uint32_t ab = crc32c_shift((uint32_t)a, third) ^ (uint32_t)b ^ ones;
	uint32_t abc = crc32c_shift(ab, third) ^ (uint32_t)c ^ ones;
	return crc32c_sse42(~abc, p + 3 * third, len - 3 * third);
}

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
	if (len >= 3 * 4096)
		return crc32c_sse42_3way(crc, buf, len);
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

/* The instruction is not always the faster: under an emulator (qemu
 * TCG, where wccl's WAN tests run) crc32 is a helper call per 8 bytes and
 * the table can win. Time both once on 64 KiB and keep the faster. */
static uint64_t crc_time_ns(uint32_t (*f)(uint32_t, const void *, size_t),
			    const uint8_t *b, size_t n)
{
	uint64_t best = UINT64_MAX;
	for (int r = 0; r < 3; r++) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		volatile uint32_t sink = f(0, b, n);
		(void)sink;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
			      (uint64_t)(t1.tv_nsec - t0.tv_nsec);
		if (ns < best)
			best = ns;
	}
	return best;
}

static int crc32c_pick_hw(void)
{
	static uint8_t b[65536];
	if (!wccl_crc32c_have_hw())
		return 0;
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 2654435761u >> 13);
	return crc_time_ns(wccl_crc32c_hw, b, sizeof(b)) <=
	       crc_time_ns(wccl_crc32c_sw, b, sizeof(b));
}

static int crc_use_hw = -1;

uint32_t wccl_crc32c(uint32_t crc, const void *buf, size_t len)
{
	int h = __atomic_load_n(&crc_use_hw, __ATOMIC_RELAXED);
	if (h < 0) {
		h = crc32c_pick_hw();
		__atomic_store_n(&crc_use_hw, h, __ATOMIC_RELAXED);
	}
	return h ? wccl_crc32c_hw(crc, buf, len)
		 : wccl_crc32c_sw(crc, buf, len);
}

int wccl_crc32c_uses_hw(void)
{
	static const uint8_t z[1];
	wccl_crc32c(0, z, 0); /* decides */
	return __atomic_load_n(&crc_use_hw, __ATOMIC_RELAXED);
}

/* Combine in GF(2): multiplying crc1 by x^(8 len2) mod P shifts it over
 * len2 zero bytes. Polynomials are bit-reflected (x^0 is bit 31), as the
 * CRC itself. x2n[k] = x^(2^k) mod P, so x^(8 len2) is a product of at
 * most 64 table entries: a few 32-step multiplies per combine, no data
 * and no 32x32 matrices. */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
	uint32_t p = 0;
	for (uint32_t m = 1u << 31; m; m >>= 1) {
		if (a & m)
			p ^= b;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return p;
}

static uint32_t x2n[64];
static int x2n_ready;

static void x2n_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */
	for (int k = 0; k < 64; k++) {
		x2n[k] = p;
		p = gf2_mulmod(p, p);
	}
	__atomic_store_n(&x2n_ready, 1, __ATOMIC_RELEASE);
}

/* x^(n * 2^k) mod P */
static uint32_t x_pow(uint64_t n, int k)
{
	uint32_t p = 1u << 31; /* x^0 */
	if (!__atomic_load_n(&x2n_ready, __ATOMIC_ACQUIRE))
		x2n_init(); /* idempotent: racing threads write the same */
	for (; n; n >>= 1, k++)
		if (n & 1)
			p = gf2_mulmod(x2n[k & 63], p);
	return p;
}

static uint32_t crc32c_shift(uint32_t crc, uint64_t len)
{
	return gf2_mulmod(x_pow(len, 3), crc);
}

uint32_t wccl_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	if (!len2)
		return crc1;
	return crc32c_shift(crc1, len2) ^ crc2;
}
