/* SPDX-License-Identifier: MIT */
/* Reduction kernels and the fp16/bf16 conversions (collectives/reduce*.c,
 * collectives/half.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "collectives/half.h"
#include "collectives/reduce.h"
#include "collectives/reduce_half.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* splitmix64: reproducible, no libc state */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---- reference narrowing: nearest by search, ties to even ---- */

static double half_value[0x7c01]; /* positive halves; [0x7c00] = 2^16 */

static void fill_half_values(void)
{
	for (int h = 0; h < 0x7c00; h++) {
		int e = h >> 10, m = h & 0x3ff;
		half_value[h] = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
	}
	half_value[0x7c00] = 65536.0; /* rounding up to it means Inf */
}

static uint16_t ref_fp32_to_fp16(float f)
{
	uint16_t sign = (f2u(f) >> 16) & 0x8000;
	if (isnan(f))
		return sign | 0x7e00 | ((f2u(f) >> 13) & 0x3ff);
	double a = fabs((double)f);
	if (a >= 65536.0)
		return sign | 0x7c00;
	int lo = 0, hi = 0x7c00; /* half_value[lo] <= a < half_value[hi] */
	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;
		if (half_value[mid] <= a)
			lo = mid;
		else
			hi = mid;
	}
	double dlo = a - half_value[lo], dhi = half_value[hi] - a;
	int pick = dlo < dhi ? lo : dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi);
	return sign | (uint16_t)pick;
}

static uint16_t ref_fp32_to_bf16(float f)
{
	uint32_t u = f2u(f);
	if (isnan(f))
		return (uint16_t)((u >> 16) | 0x40);
	uint16_t t = (uint16_t)(u >> 16);
	double a = fabs((double)f);
	double lo = fabs((double)u2f((uint32_t)t << 16));
	/* The next bf16 up; past the largest finite one it is Inf, which
	 * counts as 2^128 for rounding. */
	uint16_t up = (uint16_t)(t + 1);
	double hi = (up & 0x7fff) == 0x7f80 ? ldexp(1, 128)
					    : fabs((double)u2f((uint32_t)up << 16));
	if ((t & 0x7fff) == 0x7f80) /* Inf stays Inf */
		return t;
	double dlo = a - lo, dhi = hi - a;
	if (dlo < dhi || (dlo == dhi && !(t & 1)))
		return t;
	return up;
}

static bool is_nan16(uint16_t h)
{
	return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

/* Widening is exact and narrowing gives back the same bits; a signalling
 * NaN comes back quiet (quiet bit 0x200 set), like F16C. */
static void fp16_round_trips_all_patterns(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = wccl_fp16_to_fp32((uint16_t)h);
		uint16_t back = wccl_fp32_to_fp16(f);
		if (is_nan16((uint16_t)h)) {
			assert_true(isnan(f));
			assert_int_equal(back, h | 0x200);
		} else {
			assert_int_equal(back, h);
			int e = (h >> 10) & 0x1f, m = h & 0x3ff;
			double v = e == 0x1f ? INFINITY
				   : e ? ldexp(1024 + m, e - 25)
				       : ldexp(m, -24);
			assert_true((double)fabsf(f) == v);
			assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
		}
	}
}

static void bf16_round_trips_all_patterns(void **state)
{
	(void)state;
	for (uint32_t b = 0; b < 0x10000; b++) {
		float f = wccl_bf16_to_fp32((uint16_t)b);
		assert_int_equal(f2u(f), b << 16);
		uint16_t back = wccl_fp32_to_bf16(f);
		bool nan = (b & 0x7f80) == 0x7f80 && (b & 0x7f);
		assert_int_equal(back, nan ? (b | 0x40) : b);
	}
}

/* Every rounding boundary of fp16: each pair of neighbouring halves, their
 * midpoint (exact in fp32) and the fp32 values either side of it, both
 * signs; then random fp32 patterns. Portable and F16C against the ref. */
static void check_fp16_narrowing(float f)
{
	uint16_t want = ref_fp32_to_fp16(f);
	assert_int_equal(wccl_fp32_to_fp16(f), want);
	if (wccl_cpu_has_f16c()) {
		uint16_t hw;
		wccl_fp32_to_fp16_f16c(&hw, &f, 1);
		assert_int_equal(hw, want);
	}
}

static void fp16_rounding_matches_reference(void **state)
{
	(void)state;
	fill_half_values();
	for (int h = 0; h < 0x7c00; h++) {
		double mid = (half_value[h] + half_value[h + 1]) / 2;
		float probes[] = {
			(float)half_value[h], (float)mid,
			nextafterf((float)mid, 0), nextafterf((float)mid, INFINITY),
		};
		for (size_t i = 0; i < 4; i++) {
			check_fp16_narrowing(probes[i]);
			check_fp16_narrowing(-probes[i]);
		}
	}
	/* Named edges: overflow threshold 65520, largest half 65504,
	 * smallest subnormal 2^-24 and half of it. */
	assert_int_equal(wccl_fp32_to_fp16(65519.99f), 0x7bff);
	assert_int_equal(wccl_fp32_to_fp16(65520.0f), 0x7c00);
	assert_int_equal(wccl_fp32_to_fp16(-1e30f), 0xfc00);
	assert_int_equal(wccl_fp32_to_fp16(ldexpf(1, -24)), 0x0001);
	assert_int_equal(wccl_fp32_to_fp16(ldexpf(1, -25)), 0x0000);
	assert_int_equal(wccl_fp32_to_fp16(nextafterf(ldexpf(1, -25), 1)),
			 0x0001);
	assert_int_equal(wccl_fp32_to_fp16(ldexpf(1023, -24) + ldexpf(1, -25)),
			 0x0400); /* rounds up into the first normal */
	assert_int_equal(wccl_fp32_to_fp16(INFINITY), 0x7c00);
	assert_true(is_nan16(wccl_fp32_to_fp16(NAN)));
	for (int i = 0; i < 2000000; i++)
		check_fp16_narrowing(u2f((uint32_t)rnd()));
}

static void f16c_widening_matches_portable(void **state)
{
	(void)state;
	if (!wccl_cpu_has_f16c())
		skip();
	static uint16_t h[0x10000];
	static float hw[0x10000];
	for (uint32_t i = 0; i < 0x10000; i++)
		h[i] = (uint16_t)i;
	wccl_fp16_to_fp32_f16c(hw, h, 0x10000);
	for (uint32_t i = 0; i < 0x10000; i++) {
		uint32_t want = f2u(wccl_fp16_to_fp32(h[i]));
		uint32_t got = f2u(hw[i]);
		/* F16C quiets a signalling NaN; the portable path keeps it,
		 * which narrowing then quiets: both end up equal there. */
		if (is_nan16(h[i]))
			assert_int_equal(got | 0x400000, want | 0x400000);
		else
			assert_int_equal(got, want);
	}
}

static void bf16_rounding_matches_reference(void **state)
{
	(void)state;
	for (int i = 0; i < 4000000; i++) {
		float f = u2f((uint32_t)rnd());
		assert_int_equal(wccl_fp32_to_bf16(f), ref_fp32_to_bf16(f));
	}
	/* Exact ties, both parities, and the overflow edge. */
	assert_int_equal(wccl_fp32_to_bf16(u2f(0x3f808000)), 0x3f80);
	assert_int_equal(wccl_fp32_to_bf16(u2f(0x3f818000)), 0x3f82);
	assert_int_equal(wccl_fp32_to_bf16(u2f(0x7f7f8000)), 0x7f80);
	assert_int_equal(wccl_fp32_to_bf16(u2f(0x7f7f7fff)), 0x7f7f);
}

/* ---- kernels against a reference ---- */

static const size_t counts[] = {0, 1, 7, 4099};
#define MAXN 4099

static void fill_random(void *p, size_t bytes, enum wccl_dtype dt)
{
	uint8_t *b = p;
	for (size_t i = 0; i < bytes; i++)
		b[i] = (uint8_t)rnd();
	size_t n = bytes / wccl_dtype_size(dt);
	/* Floats: moderate values (sums and products stay finite mostly),
	 * sprinkled with a few specials. */
	for (size_t i = 0; i < n; i++) {
		double v = (double)(int64_t)(rnd() % 2001 - 1000) / 8.0;
		if (i % 97 == 5)
			v = NAN;
		if (i % 89 == 7)
			v = -INFINITY;
		if (dt == WCCL_FP32)
			((float *)p)[i] = (float)v;
		else if (dt == WCCL_FP64)
			((double *)p)[i] = v;
		else if (dt == WCCL_FP16)
			((uint16_t *)p)[i] = wccl_fp32_to_fp16((float)v);
		else if (dt == WCCL_BF16)
			((uint16_t *)p)[i] = wccl_fp32_to_bf16((float)v);
	}
}

static double fp_op(double x, double y, enum wccl_redop op)
{
	if ((op == WCCL_MIN || op == WCCL_MAX) && (isnan(x) || isnan(y)))
		return NAN;
	switch (op) {
	case WCCL_PROD:
		return x * y;
	case WCCL_MIN:
		return x < y ? x : y;
	case WCCL_MAX:
		return x > y ? x : y;
	default:
		return x + y;
	}
}

/* Integers: compute in 64 bits, keep the low bits (wraparound). */
static uint64_t int_op(uint64_t x, uint64_t y, int64_t sx, int64_t sy,
		       bool is_signed, enum wccl_redop op)
{
	switch (op) {
	case WCCL_PROD:
		return x * y;
	case WCCL_MIN:
		return is_signed ? (uint64_t)(sx < sy ? sx : sy) : (x < y ? x : y);
	case WCCL_MAX:
		return is_signed ? (uint64_t)(sx > sy ? sx : sy) : (x > y ? x : y);
	default:
		return x + y;
	}
}

static void expect_element(enum wccl_dtype dt, enum wccl_redop op,
			   const void *a, const void *b, const void *got,
			   size_t i)
{
	size_t es = wccl_dtype_size(dt);
	const uint8_t *pa = (const uint8_t *)a + i * es;
	const uint8_t *pb = (const uint8_t *)b + i * es;
	const uint8_t *pg = (const uint8_t *)got + i * es;
	switch (dt) {
	case WCCL_FP32: {
		float x, y, g;
		memcpy(&x, pa, 4), memcpy(&y, pb, 4), memcpy(&g, pg, 4);
		float want = (float)fp_op(x, y, op);
		if (isnan(want))
			assert_true(isnan(g));
		else
			assert_true(f2u(g) == f2u(want) || (g == 0 && want == 0));
		return;
	}
	case WCCL_FP64: {
		double x, y, g;
		memcpy(&x, pa, 8), memcpy(&y, pb, 8), memcpy(&g, pg, 8);
		double want = fp_op(x, y, op);
		if (isnan(want))
			assert_true(isnan(g));
		else
			assert_true(memcmp(&g, &want, 8) == 0 ||
				    (g == 0 && want == 0));
		return;
	}
	case WCCL_FP16:
	case WCCL_BF16: {
		uint16_t x, y, g;
		memcpy(&x, pa, 2), memcpy(&y, pb, 2), memcpy(&g, pg, 2);
		bool h = dt == WCCL_FP16;
		double dx = h ? wccl_fp16_to_fp32(x) : wccl_bf16_to_fp32(x);
		double dy = h ? wccl_fp16_to_fp32(y) : wccl_bf16_to_fp32(y);
		/* One fp32 operation (exactly (float) of the double result
		 * for +, *), then one rounding to the 16-bit type. */
		float f = (float)fp_op(dx, dy, op);
		uint16_t want = h ? wccl_fp32_to_fp16(f) : wccl_fp32_to_bf16(f);
		if (isnan(f))
			assert_true(h ? is_nan16(g)
				      : ((g & 0x7f80) == 0x7f80 && (g & 0x7f)));
		else
			assert_true(g == want || ((g | want) & 0x7fff) == 0);
		return;
	}
	default: {
		bool is_signed = dt == WCCL_INT8 || dt == WCCL_INT32 ||
				 dt == WCCL_INT64;
		uint64_t x = 0, y = 0, g = 0;
		memcpy(&x, pa, es), memcpy(&y, pb, es), memcpy(&g, pg, es);
		int shift = 64 - 8 * (int)es;
		/* Sign-extend for the signed comparisons (little endian). */
		int64_t sx = (int64_t)(x << shift) >> shift;
		int64_t sy = (int64_t)(y << shift) >> shift;
		uint64_t want = int_op(x, y, sx, sy, is_signed, op);
		uint64_t mask = es == 8 ? ~0ull : (1ull << (8 * es)) - 1;
		assert_int_equal(g & mask, want & mask);
	}
	}
}

static void every_dtype_op_count_against_reference(void **state)
{
	(void)state;
	static uint8_t a[MAXN * 8], b[MAXN * 8], out[MAXN * 8], acc[MAXN * 8];
	for (int dt = 0; dt < WCCL_DTYPE_COUNT; dt++) {
		size_t es = wccl_dtype_size(dt);
		for (int op = 0; op < WCCL_REDOP_COUNT; op++) {
			for (size_t c = 0; c < 4; c++) {
				size_t n = counts[c];
				fill_random(a, n * es, dt);
				fill_random(b, n * es, dt);
				assert_int_equal(wccl_reduce_local(out, a, b, n, dt, op), 0);
				for (size_t i = 0; i < n; i++)
					expect_element(dt, op, a, b, out, i);
				/* dst == a and dst == b give the same bits. */
				memcpy(acc, a, n * es);
				assert_int_equal(wccl_reduce_local(acc, acc, b, n, dt, op), 0);
				assert_memory_equal(acc, out, n * es);
				memcpy(acc, b, n * es);
				assert_int_equal(wccl_reduce_local(acc, a, acc, n, dt, op), 0);
				assert_memory_equal(acc, out, n * es);
			}
		}
	}
}

static void fp16_f16c_kernel_matches_portable(void **state)
{
	(void)state;
	if (!wccl_cpu_has_f16c())
		skip();
	static uint16_t a[MAXN], b[MAXN], p[MAXN], h[MAXN];
	for (int op = WCCL_SUM; op <= WCCL_MAX; op++) {
		for (int round = 0; round < 20; round++) {
			for (size_t i = 0; i < MAXN; i++) {
				a[i] = (uint16_t)rnd(); /* every pattern */
				b[i] = (uint16_t)rnd();
			}
			wccl_reduce_fp16_portable(p, a, b, MAXN, op);
			wccl_reduce_fp16_f16c(h, a, b, MAXN, op);
			for (size_t i = 0; i < MAXN; i++) {
				if (is_nan16(p[i]))
					assert_true(is_nan16(h[i]));
				else if (!(op == WCCL_MIN || op == WCCL_MAX) ||
					 (p[i] | h[i]) & 0x7fff)
					assert_int_equal(p[i], h[i]);
			}
		}
	}
}

static void min_max_propagate_nan(void **state)
{
	(void)state;
	float a[2] = {NAN, 1.0f}, b[2] = {1.0f, NAN}, o[2];
	for (int op = WCCL_MIN; op <= WCCL_MAX; op++) {
		assert_int_equal(wccl_reduce_local(o, a, b, 2, WCCL_FP32, op), 0);
		assert_true(isnan(o[0]) && isnan(o[1]));
	}
	double da[2] = {NAN, -INFINITY}, db[2] = {-INFINITY, NAN}, dout[2];
	assert_int_equal(wccl_reduce_local(dout, da, db, 2, WCCL_FP64,
				     WCCL_MIN), 0);
	assert_true(isnan(dout[0]) && isnan(dout[1]));
}

static void avg_finish_truncates_toward_zero(void **state)
{
	(void)state;
	int8_t i8[4] = {-7, 7, 5, -128};
	assert_int_equal(wccl_reduce_avg_finish(i8, 4, WCCL_INT8, 2), 0);
	assert_int_equal(i8[0], -3);
	assert_int_equal(i8[1], 3);
	assert_int_equal(i8[2], 2);
	assert_int_equal(i8[3], -64);
	int64_t i64[2] = {-10, INT64_MIN};
	assert_int_equal(wccl_reduce_avg_finish(i64, 2, WCCL_INT64, 4), 0);
	assert_int_equal(i64[0], -2);
	assert_true(i64[1] == INT64_MIN / 4);
	uint32_t u32[1] = {4000000000u};
	assert_int_equal(wccl_reduce_avg_finish(u32, 1, WCCL_UINT32, 3), 0);
	assert_int_equal(u32[0], 1333333333u);
	float f[2] = {1.0f, -9.0f};
	assert_int_equal(wccl_reduce_avg_finish(f, 2, WCCL_FP32, 3), 0);
	assert_true(f[0] == 1.0f / 3.0f && f[1] == -3.0f);
	uint16_t h[1] = {wccl_fp32_to_fp16(6.0f)};
	assert_int_equal(wccl_reduce_avg_finish(h, 1, WCCL_FP16, 4), 0);
	assert_true(wccl_fp16_to_fp32(h[0]) == 1.5f);
	uint16_t bf[1] = {wccl_fp32_to_bf16(-6.0f)};
	assert_int_equal(wccl_reduce_avg_finish(bf, 1, WCCL_BF16, 4), 0);
	assert_true(wccl_bf16_to_fp32(bf[0]) == -1.5f);
}

static void bad_arguments(void **state)
{
	(void)state;
	float x[1] = {0};
	assert_int_equal(wccl_reduce_local(NULL, NULL, NULL, 0, WCCL_FP32,
				     WCCL_SUM), 0);
	assert_int_equal(wccl_reduce_local(x, NULL, x, 1, WCCL_FP32,
				     WCCL_SUM), WCCL_EINVAL);
	assert_int_equal(wccl_reduce_local(x, x, x, 1, WCCL_DTYPE_COUNT,
				     WCCL_SUM), WCCL_EINVAL);
	assert_int_equal(wccl_reduce_local(x, x, x, 1, WCCL_FP32,
				     WCCL_REDOP_COUNT), WCCL_EINVAL);
	assert_int_equal(wccl_reduce_avg_finish(x, 1, WCCL_FP32, 0),
			 WCCL_EINVAL);
	assert_int_equal(wccl_dtype_size(WCCL_BF16), 2);
	assert_int_equal(wccl_dtype_size(WCCL_DTYPE_COUNT), 0);
	assert_string_equal(wccl_dtype_name(WCCL_FP16), "fp16");
	assert_string_equal(wccl_redop_name(WCCL_AVG), "avg");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fp16_round_trips_all_patterns),
		cmocka_unit_test(bf16_round_trips_all_patterns),
		cmocka_unit_test(fp16_rounding_matches_reference),
		cmocka_unit_test(f16c_widening_matches_portable),
		cmocka_unit_test(bf16_rounding_matches_reference),
		cmocka_unit_test(every_dtype_op_count_against_reference),
		cmocka_unit_test(fp16_f16c_kernel_matches_portable),
		cmocka_unit_test(min_max_propagate_nan),
		cmocka_unit_test(avg_finish_truncates_toward_zero),
		cmocka_unit_test(bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
