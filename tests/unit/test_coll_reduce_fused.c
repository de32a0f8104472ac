/* SPDX-License-Identifier: MIT */
/* wccl_reduce_fused() (collectives/reduce_fused.c and its fp16 kernels in
 * reduce_half.c): every dtype and op, 1-9 inputs (2, 3 and 4 have loops of
 * their own), against pairwise wccl_reduce_local() in input order, and fp16
 * / bf16 against one fp32 fold with one rounding. */
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

#define MAX_IN 9
#define MAX_COUNT 4099
#define FIRST 3 /* a range that does not start at the buffers' start */
#define BUF_BYTES ((FIRST + MAX_COUNT) * 8)

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	/* splitmix64: reproducible, no libc state */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint8_t in_buf[MAX_IN][BUF_BYTES];
static uint8_t out_buf[MAX_IN + 1][BUF_BYTES];
static uint8_t ref[BUF_BYTES];

/* Random bits; floats get moderate values with a few NaNs and infinities,
 * so that sums of up to 9 stay mostly finite. */
static void fill_random(void *p, size_t count, enum wccl_dtype dt)
{
	uint8_t *b = p;
	for (size_t i = 0; i < count * wccl_dtype_size(dt); i++)
		b[i] = (uint8_t)rnd();
	for (size_t i = 0; i < count; i++) {
		double v = (double)(int64_t)(rnd() % 2001 - 1000) / 8.0;
		if (rnd() % 97 == 0)
			v = NAN;
		else if (rnd() % 89 == 0)
			v = rnd() % 2 ? INFINITY : -INFINITY;
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

static float widen16(uint16_t h, enum wccl_dtype dt)
{
	return dt == WCCL_FP16 ? wccl_fp16_to_fp32(h) : wccl_bf16_to_fp32(h);
}

static float combine_f32(float x, float y, enum wccl_redop op)
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

/* The expected result of elements [first, first + count) into ref. */
static void reference(enum wccl_dtype dt, enum wccl_redop op, int nin,
		      size_t first, size_t count)
{
	size_t es = wccl_dtype_size(dt);
	if (dt == WCCL_FP16 || dt == WCCL_BF16) {
		for (size_t i = first; i < first + count; i++) {
			const uint16_t *x = (const uint16_t *)in_buf[0];
			float acc = widen16(x[i], dt);
			for (int p = 1; p < nin; p++)
				acc = combine_f32(
					acc,
					widen16(((const uint16_t *)in_buf[p])[i],
						dt),
					op);
			if (op == WCCL_AVG)
				acc = acc / (float)nin;
			((uint16_t *)ref)[i] = dt == WCCL_FP16
						       ? wccl_fp32_to_fp16(acc)
						       : wccl_fp32_to_bf16(acc);
		}
		return;
	}
	uint8_t *r = ref + first * es;
	memcpy(r, in_buf[0] + first * es, count * es);
	for (int p = 1; p < nin; p++)
		assert_int_equal(wccl_reduce_local(r, r, in_buf[p] + first * es,
						   count, dt, op),
				 0);
	if (op == WCCL_AVG)
		assert_int_equal(wccl_reduce_avg_finish(r, count, dt,
							(uint32_t)nin),
				 0);
}

static bool is_nan_at(const void *p, size_t i, enum wccl_dtype dt)
{
	switch (dt) {
	case WCCL_FP32:
		return isnan(((const float *)p)[i]);
	case WCCL_FP64:
		return isnan(((const double *)p)[i]);
	case WCCL_FP16:
	case WCCL_BF16:
		return isnan(widen16(((const uint16_t *)p)[i], dt));
	default:
		return false;
	}
}

static bool is_zero_at(const void *p, size_t i, enum wccl_dtype dt)
{
	switch (dt) {
	case WCCL_FP32:
		return ((const float *)p)[i] == 0;
	case WCCL_FP64:
		return ((const double *)p)[i] == 0;
	case WCCL_FP16:
	case WCCL_BF16:
		return widen16(((const uint16_t *)p)[i], dt) == 0;
	default:
		return false;
	}
}

/* Same bits, except that a NaN's payload and a zero's sign may differ
 * (reduce.h leaves both open). */
static void expect_range(const void *got, enum wccl_dtype dt, size_t first,
			 size_t count)
{
	size_t es = wccl_dtype_size(dt);
	for (size_t i = first; i < first + count; i++) {
		if (!memcmp((const uint8_t *)got + i * es, ref + i * es, es))
			continue;
		if (is_nan_at(ref, i, dt))
			assert_true(is_nan_at(got, i, dt));
		else
			assert_true(is_zero_at(ref, i, dt) &&
				    is_zero_at(got, i, dt));
	}
}

static void every_dtype_op_and_input_count(void **state)
{
	(void)state;
	static const size_t counts[] = {0, 1, 7, 64, 4096, MAX_COUNT};
	void *dst[MAX_IN + 1];
	const void *src[MAX_IN];
	for (int k = 0; k <= MAX_IN; k++)
		dst[k] = out_buf[k];
	for (int p = 0; p < MAX_IN; p++)
		src[p] = in_buf[p];
	for (int dt = 0; dt < WCCL_DTYPE_COUNT; dt++) {
		size_t es = wccl_dtype_size(dt);
		for (int op = 0; op < WCCL_REDOP_COUNT; op++)
			for (int nin = 1; nin <= MAX_IN; nin++)
				for (size_t c = 0; c < 6; c++) {
					size_t count = counts[c];
					size_t first = c % 2 ? FIRST : 0;
					for (int p = 0; p < nin; p++)
						fill_random(in_buf[p],
							    FIRST + MAX_COUNT,
							    dt);
					reference(dt, op, nin, first, count);
					/* As many outputs as inputs (the
					 * direct allreduce) or one more, and
					 * the bytes around the range kept. */
					int nout = nin + (int)(c / 2 % 2);
					for (int k = 0; k < nout; k++)
						memset(out_buf[k], 0xA5,
						       BUF_BYTES);
					assert_int_equal(
						wccl_reduce_fused(dst, nout,
								  src, nin,
								  first, count,
								  dt, op),
						0);
					for (int k = 0; k < nout; k++) {
						const uint8_t *o = out_buf[k];
						expect_range(o, dt, first,
							     count);
						if (first)
							assert_int_equal(
								o[first * es -
								  1],
								0xA5);
						assert_int_equal(
							o[(first + count) * es],
							0xA5);
					}
				}
	}
}

/* In place: every input is also an output, as in the direct allreduce. */
static void in_place_gives_the_same_bits(void **state)
{
	(void)state;
	void *io[MAX_IN];
	void *dst[1] = {out_buf[MAX_IN]};
	const void *src[MAX_IN];
	for (int p = 0; p < MAX_IN; p++) {
		io[p] = in_buf[p];
		src[p] = in_buf[p];
	}
	for (int dt = 0; dt < WCCL_DTYPE_COUNT; dt++) {
		size_t es = wccl_dtype_size(dt);
		for (int op = 0; op < WCCL_REDOP_COUNT; op++)
			for (int nin = 2; nin <= 5; nin++) {
				for (int p = 0; p < nin; p++)
					fill_random(in_buf[p], MAX_COUNT, dt);
				assert_int_equal(
					wccl_reduce_fused(dst, 1, src, nin, 0,
							  MAX_COUNT, dt, op),
					0);
				assert_int_equal(
					wccl_reduce_fused(io, nin, src, nin, 0,
							  MAX_COUNT, dt, op),
					0);
				for (int p = 0; p < nin; p++)
					assert_memory_equal(in_buf[p],
							    out_buf[MAX_IN],
							    MAX_COUNT * es);
			}
	}
}

static void fp16_f16c_matches_portable(void **state)
{
	(void)state;
	if (!wccl_cpu_has_f16c())
		skip();
	uint16_t *h[2] = {(uint16_t *)out_buf[0], (uint16_t *)out_buf[1]};
	const uint16_t *src[MAX_IN];
	for (int p = 0; p < MAX_IN; p++)
		src[p] = (const uint16_t *)in_buf[p];
	for (int op = 0; op < WCCL_REDOP_COUNT; op++)
		for (int nin = 1; nin <= MAX_IN; nin++) {
			for (int p = 0; p < nin; p++)
				for (size_t i = 0; i < MAX_COUNT; i++)
					((uint16_t *)in_buf[p])[i] =
						(uint16_t)rnd(); /* any bits */
			wccl_reduce_fused_fp16_portable(h, 1, src, nin, 0,
							MAX_COUNT, op);
			wccl_reduce_fused_fp16_f16c(h + 1, 1, src, nin, 0,
						    MAX_COUNT, op);
			for (size_t i = 0; i < MAX_COUNT; i++) {
				uint16_t a = h[0][i], b = h[1][i];
				if (isnan(wccl_fp16_to_fp32(a)))
					assert_true(isnan(wccl_fp16_to_fp32(b)));
				else if ((a | b) & 0x7fff)
					assert_int_equal(a, b);
			}
		}
}

/* fp16 is summed in fp32 and rounded once: 2048 + 1 + 1 is 2050, where
 * rounding after each step gives 2048 (2049 is a tie, to even). */
static void fp16_rounds_once(void **state)
{
	(void)state;
	uint16_t a = wccl_fp32_to_fp16(2048.0f), b = wccl_fp32_to_fp16(1.0f);
	uint16_t o = 0;
	const void *src[3] = {&a, &b, &b};
	void *dst[1] = {&o};
	assert_int_equal(wccl_reduce_fused(dst, 1, src, 3, 0, 1, WCCL_FP16,
					   WCCL_SUM),
			 0);
	assert_true(wccl_fp16_to_fp32(o) == 2050.0f);
	uint16_t bf = wccl_fp32_to_bf16(256.0f), one = wccl_fp32_to_bf16(1.0f);
	const void *bsrc[3] = {&bf, &one, &one};
	assert_int_equal(wccl_reduce_fused(dst, 1, bsrc, 3, 0, 1, WCCL_BF16,
					   WCCL_SUM),
			 0);
	assert_true(wccl_bf16_to_fp32(o) == 258.0f);
}

static void bad_arguments(void **state)
{
	(void)state;
	float x[1] = {0};
	void *dst[1] = {x};
	const void *src[1] = {x};
	const void *none[1] = {NULL};
	assert_int_equal(wccl_reduce_fused(NULL, 0, src, 1, 0, 0, WCCL_FP32,
					   WCCL_SUM),
			 0);
	assert_int_equal(wccl_reduce_fused(dst, 1, src, 0, 0, 1, WCCL_FP32,
					   WCCL_SUM),
			 WCCL_EINVAL);
	assert_int_equal(wccl_reduce_fused(dst, 1, none, 1, 0, 1, WCCL_FP32,
					   WCCL_SUM),
			 WCCL_EINVAL);
	assert_int_equal(wccl_reduce_fused(NULL, 1, src, 1, 0, 1, WCCL_FP32,
					   WCCL_SUM),
			 WCCL_EINVAL);
	assert_int_equal(wccl_reduce_fused(dst, 1, src, 1, 0, 1,
					   WCCL_DTYPE_COUNT, WCCL_SUM),
			 WCCL_EINVAL);
	assert_int_equal(wccl_reduce_fused(dst, 1, src, 1, 0, 1, WCCL_FP32,
					   WCCL_REDOP_COUNT),
			 WCCL_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_dtype_op_and_input_count),
		cmocka_unit_test(in_place_gives_the_same_bits),
		cmocka_unit_test(fp16_f16c_matches_portable),
		cmocka_unit_test(fp16_rounds_once),
		cmocka_unit_test(bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
