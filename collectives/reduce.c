/* SPDX-License-Identifier: MIT */
#include <string.h>

#include <wccl/errors.h>

#include "collectives/half.h"
#include "collectives/reduce.h"
#include "collectives/reduce_half.h"
#include "collectives/reduce_ops.h"

/*
 * Each kernel walks the input in 64-byte blocks loaded into local arrays
 * before any store: the combine loop then has a constant trip count that
 * the vectoriser turns into whole registers with no runtime alias check,
 * and reading a block before writing it makes dst == a or dst == b safe
 * without 'restrict'. This file is built at -O3 (see meson.build).
 */
#define BLOCK_BYTES 64

typedef void (*kernel_fn)(void *dst, const void *a, const void *b,
			  size_t count);

/* @attrs: function attributes (may be empty); @block: bytes per block. */
#define DEFINE_KERNEL_WITH(name, T, combine, block, attrs)                     \
	attrs static void name(void *dst, const void *a, const void *b,        \
			       size_t count)                                   \
	{                                                                      \
		enum { N = (block) / sizeof(T) };                              \
		T *d = dst;                                                    \
		const T *x = a, *y = b;                                        \
		size_t i = 0;                                                  \
		for (; i + N <= count; i += N) {                               \
			T u[N], v[N];                                          \
			for (int j = 0; j < N; j++) {                          \
				u[j] = x[i + j];                               \
				v[j] = y[i + j];                               \
			}                                                      \
			for (int j = 0; j < N; j++)                            \
				d[i + j] = combine(u[j], v[j]);                \
		}                                                              \
		for (; i < count; i++)                                         \
			d[i] = combine(x[i], y[i]);                            \
	}
#define DEFINE_KERNEL(name, T, combine)                                        \
	DEFINE_KERNEL_WITH(name, T, combine, BLOCK_BYTES, )

/*
 * bf16 is widened, combined and rounded back: with SSE2 alone the narrowing
 * (no 32 -> 16 bit unsigned pack) costs so much that the kernel runs at
 * ~10 GB/s, under memory bandwidth. An AVX2 clone, picked at load time,
 * doubles that (bench-reduce; gcc needs the 32-byte block for it: with 64
 * its registers spill). Same arithmetic, so the same bits on every path.
 */
#if defined(__x86_64__) && defined(__linux__)
#define BF16_TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define BF16_TARGETS
#endif
#define DEFINE_KERNEL_BF16(name, combine)                                      \
	DEFINE_KERNEL_WITH(name, uint16_t, combine, 32, BF16_TARGETS)

/* bf16: widen, combine in fp32, round back. Widening is a shift and the
 * rounding is integer arithmetic, so the whole thing vectorises. */
#define BF16_COMBINE(name, combine)                                            \
	static inline uint16_t name(uint16_t x, uint16_t y)                    \
	{                                                                      \
		return wccl_fp32_to_bf16(combine(wccl_bf16_to_fp32(x),         \
						 wccl_bf16_to_fp32(y)));       \
	}
BF16_COMBINE(sum_bf16, sum_f32)
BF16_COMBINE(prod_bf16, prod_f32)
BF16_COMBINE(min_bf16, min_f32)
BF16_COMBINE(max_bf16, max_f32)

DEFINE_KERNEL(k_sum_u8, uint8_t, sum_u8)
DEFINE_KERNEL(k_prod_u8, uint8_t, prod_u8)
DEFINE_KERNEL(k_min_i8, int8_t, min_i8)
DEFINE_KERNEL(k_max_i8, int8_t, max_i8)
DEFINE_KERNEL(k_min_u8, uint8_t, min_u8)
DEFINE_KERNEL(k_max_u8, uint8_t, max_u8)
DEFINE_KERNEL(k_sum_u32, uint32_t, sum_u32)
DEFINE_KERNEL(k_prod_u32, uint32_t, prod_u32)
DEFINE_KERNEL(k_min_i32, int32_t, min_i32)
DEFINE_KERNEL(k_max_i32, int32_t, max_i32)
DEFINE_KERNEL(k_min_u32, uint32_t, min_u32)
DEFINE_KERNEL(k_max_u32, uint32_t, max_u32)
DEFINE_KERNEL(k_sum_u64, uint64_t, sum_u64)
DEFINE_KERNEL(k_prod_u64, uint64_t, prod_u64)
DEFINE_KERNEL(k_min_i64, int64_t, min_i64)
DEFINE_KERNEL(k_max_i64, int64_t, max_i64)
DEFINE_KERNEL(k_min_u64, uint64_t, min_u64)
DEFINE_KERNEL(k_max_u64, uint64_t, max_u64)
DEFINE_KERNEL_BF16(k_sum_bf16, sum_bf16)
DEFINE_KERNEL_BF16(k_prod_bf16, prod_bf16)
DEFINE_KERNEL_BF16(k_min_bf16, min_bf16)
DEFINE_KERNEL_BF16(k_max_bf16, max_bf16)
DEFINE_KERNEL(k_sum_f32, float, sum_f32)
DEFINE_KERNEL(k_prod_f32, float, prod_f32)
DEFINE_KERNEL(k_min_f32, float, min_f32)
DEFINE_KERNEL(k_max_f32, float, max_f32)
DEFINE_KERNEL(k_sum_f64, double, sum_f64)
DEFINE_KERNEL(k_prod_f64, double, prod_f64)
DEFINE_KERNEL(k_min_f64, double, min_f64)
DEFINE_KERNEL(k_max_f64, double, max_f64)

/* fp16 goes through reduce_half.c, which picks F16C when the CPU has it. */
static void reduce_fp16(void *dst, const void *a, const void *b, size_t count,
			enum wccl_redop op)
{
	if (wccl_cpu_has_f16c())
		wccl_reduce_fp16_f16c(dst, a, b, count, op);
	else
		wccl_reduce_fp16_portable(dst, a, b, count, op);
}

/* Indexed [dtype][op] for SUM, PROD, MIN, MAX; AVG uses the SUM column. */
static const kernel_fn kernels[WCCL_DTYPE_COUNT][4] = {
	[WCCL_INT8] = {k_sum_u8, k_prod_u8, k_min_i8, k_max_i8},
	[WCCL_UINT8] = {k_sum_u8, k_prod_u8, k_min_u8, k_max_u8},
	[WCCL_INT32] = {k_sum_u32, k_prod_u32, k_min_i32, k_max_i32},
	[WCCL_UINT32] = {k_sum_u32, k_prod_u32, k_min_u32, k_max_u32},
	[WCCL_INT64] = {k_sum_u64, k_prod_u64, k_min_i64, k_max_i64},
	[WCCL_UINT64] = {k_sum_u64, k_prod_u64, k_min_u64, k_max_u64},
	[WCCL_BF16] = {k_sum_bf16, k_prod_bf16, k_min_bf16, k_max_bf16},
	[WCCL_FP32] = {k_sum_f32, k_prod_f32, k_min_f32, k_max_f32},
	[WCCL_FP64] = {k_sum_f64, k_prod_f64, k_min_f64, k_max_f64},
};

int wccl_reduce_local(void *dst, const void *a, const void *b, size_t count,
		enum wccl_dtype dtype, enum wccl_redop op)
{
	if ((unsigned)dtype >= WCCL_DTYPE_COUNT || (unsigned)op >= WCCL_REDOP_COUNT)
		return WCCL_EINVAL;
	if (count == 0)
		return 0;
	if (!dst || !a || !b)
		return WCCL_EINVAL;
	if (op == WCCL_AVG)
		op = WCCL_SUM;
	if (dtype == WCCL_FP16)
		reduce_fp16(dst, a, b, count, op);
	else
		kernels[dtype][op](dst, a, b, count);
	return 0;
}

#define DIVIDE_ALL(T, p, count, divisor)                                       \
	do {                                                                   \
		T *v = (p);                                                    \
		for (size_t i = 0; i < (count); i++)                           \
			v[i] = (T)(v[i] / (divisor));                          \
	} while (0)

int wccl_reduce_avg_finish(void *buf, size_t count, enum wccl_dtype dtype,
			   uint32_t divisor)
{
	if ((unsigned)dtype >= WCCL_DTYPE_COUNT || divisor == 0)
		return WCCL_EINVAL;
	if (count == 0)
		return 0;
	if (!buf)
		return WCCL_EINVAL;
	/* Signed types divide by a signed divisor: int8 -7 / 2 must be -3,
	 * not a huge unsigned quotient. */
	int64_t sdiv = divisor;
	switch (dtype) {
	case WCCL_INT8:
		DIVIDE_ALL(int8_t, buf, count, sdiv);
		break;
	case WCCL_UINT8:
		DIVIDE_ALL(uint8_t, buf, count, divisor);
		break;
	case WCCL_INT32:
		DIVIDE_ALL(int32_t, buf, count, sdiv);
		break;
	case WCCL_UINT32:
		DIVIDE_ALL(uint32_t, buf, count, divisor);
		break;
	case WCCL_INT64:
		DIVIDE_ALL(int64_t, buf, count, sdiv);
		break;
	case WCCL_UINT64:
		DIVIDE_ALL(uint64_t, buf, count, (uint64_t)divisor);
		break;
	case WCCL_FP32:
		DIVIDE_ALL(float, buf, count, (float)divisor);
		break;
	case WCCL_FP64:
		DIVIDE_ALL(double, buf, count, (double)divisor);
		break;
	case WCCL_FP16: {
		uint16_t *v = buf;
		for (size_t i = 0; i < count; i++)
			v[i] = wccl_fp32_to_fp16(wccl_fp16_to_fp32(v[i]) /
						 (float)divisor);
		break;
	}
	case WCCL_BF16: {
		uint16_t *v = buf;
		for (size_t i = 0; i < count; i++)
			v[i] = wccl_fp32_to_bf16(wccl_bf16_to_fp32(v[i]) /
						 (float)divisor);
		break;
	}
	default:
		return WCCL_EINVAL;
	}
	return 0;
}
