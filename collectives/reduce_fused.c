/* SPDX-License-Identifier: MIT */
/*
 * wccl_reduce_fused(): n inputs into m outputs in one pass (reduce.h).
 *
 * The same-host direct allreduce used to reduce a chunk pairwise into its
 * own output (n - 1 passes, each reading and writing it) and then copy it
 * to the n - 1 other outputs. Here each block is read once from every
 * input and written once to every output:
 *
 *   src[0] ──┐
 *   src[1] ──┼─> acc[N] (registers) ──> dst[0], dst[1], ... dst[m-1]
 *   ...    ──┘
 *
 * As in reduce.c, a block is loaded into a local array before any store,
 * so the combine loops have a constant trip count the vectoriser takes
 * without alias checks, and an output that is also an input is read
 * before it is written. Built at -O3 with the other kernels.
 */
#include <string.h>

#include <wccl/errors.h>

#include "collectives/half.h"
#include "collectives/reduce.h"
#include "collectives/reduce_half.h"
#include "collectives/reduce_ops.h"

#define FUSED_BLOCK_BYTES 64

typedef void (*fused_fn)(void *const *dst, int ndst, const void *const *src,
			 int nsrc, size_t first, size_t count,
			 uint32_t divisor);

/* Element (type T) to accumulator (type A) and back: the same type except
 * for bf16, which is combined in fp32 and rounded once at the end. */
#define AS_IS(x) (x)

/* What is stored: the accumulator as is, or divided for AVG. */
#define KEEP(x, d) (x)
#define DIVIDE(x, d) ((x) / (d))

/*
 * @T element type, @A accumulator type, @widen T -> A, @combine (A, A) -> A,
 * @finish (A, divisor) -> A, @narrow A -> T, @block bytes of T per block,
 * @attrs function attributes (may be empty).
 *
 * name##_body is the loop for any number of inputs and outputs; name calls
 * it with constant counts for 2, 3 and 4 ranks (nsrc == ndst), so that
 * the loops over the buffers unroll and their pointers stay in registers
 * (with the counts at run time the pointers are loaded again for every
 * block and the accumulator goes through the stack: bench-reduce, 4 x 512
 * KiB, 1.17x the time of the pairwise kernel + copies).
 */
#define DEFINE_FUSED(name, T, A, widen, combine, finish, narrow, block,       \
		     attrs)                                                    \
	static inline __attribute__((always_inline)) void name##_body(        \
		void *const *dst, int ndst, const void *const *src, int nsrc,  \
		size_t first, size_t count, uint32_t divisor)                  \
	{                                                                      \
		enum { N = (block) / sizeof(T) };                              \
		(void)divisor;                                                 \
		size_t i = first, end = first + count;                         \
		for (; i + N <= end; i += N) {                                 \
			A acc[N];                                              \
			T out[N];                                              \
			const T *x = (const T *)src[0] + i;                    \
			for (int j = 0; j < N; j++)                            \
				acc[j] = widen(x[j]);                          \
			for (int p = 1; p < nsrc; p++) {                       \
				const T *y = (const T *)src[p] + i;            \
				for (int j = 0; j < N; j++)                    \
					acc[j] = combine(acc[j], widen(y[j])); \
			}                                                      \
			for (int j = 0; j < N; j++)                            \
				out[j] = narrow(finish(acc[j], divisor));      \
			for (int k = 0; k < ndst; k++) {                       \
				T *d = (T *)dst[k] + i;                        \
				for (int j = 0; j < N; j++)                    \
					d[j] = out[j];                         \
			}                                                      \
		}                                                              \
		for (; i < end; i++) {                                         \
			A acc = widen(((const T *)src[0])[i]);                 \
			for (int p = 1; p < nsrc; p++)                         \
				acc = combine(acc,                             \
					      widen(((const T *)src[p])[i]));  \
			T out = narrow(finish(acc, divisor));                  \
			for (int k = 0; k < ndst; k++)                         \
				((T *)dst[k])[i] = out;                        \
		}                                                              \
	}                                                                      \
	attrs static void name(void *const *dst, int ndst,                     \
			       const void *const *src, int nsrc, size_t first, \
			       size_t count, uint32_t divisor)                 \
	{                                                                      \
		if (nsrc == 2 && ndst == 2)                                    \
			name##_body(dst, 2, src, 2, first, count, divisor);    \
		else if (nsrc == 3 && ndst == 3)                               \
			name##_body(dst, 3, src, 3, first, count, divisor);    \
		else if (nsrc == 4 && ndst == 4)                               \
			name##_body(dst, 4, src, 4, first, count, divisor);    \
		else                                                           \
			name##_body(dst, ndst, src, nsrc, first, count,        \
				    divisor);                                  \
	}

/* An AVX2 clone, picked at load time: twice the register width for the
 * same instructions count (bench-reduce, fp32, n x 512 KiB: 0.91-0.96x
 * the time of the SSE2 loop at 2-4 inputs). bf16 needs it most (reduce.c). */
#if defined(__x86_64__) && defined(__linux__)
#define FUSED_TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define FUSED_TARGETS
#endif

#define DEFINE_FUSED_PLAIN(name, T, combine)                                   \
	DEFINE_FUSED(name, T, T, AS_IS, combine, KEEP, AS_IS,                  \
		     FUSED_BLOCK_BYTES, FUSED_TARGETS)

/* Integer AVG: the sum wraps in the unsigned type (as SUM does), then is
 * divided with the signedness of the element type, truncating toward zero
 * like wccl_reduce_avg_finish(). */
static inline uint8_t avg_i8(uint8_t x, uint32_t d)
{
	return (uint8_t)(int8_t)((int8_t)x / (int64_t)d);
}
static inline uint32_t avg_i32(uint32_t x, uint32_t d)
{
	return (uint32_t)(int32_t)((int32_t)x / (int64_t)d);
}
static inline uint64_t avg_i64(uint64_t x, uint32_t d)
{
	return (uint64_t)((int64_t)x / (int64_t)d);
}

#define DEFINE_FUSED_AVG_INT(name, T, sum, avg)                                \
	DEFINE_FUSED(name, T, T, AS_IS, sum, avg, AS_IS, FUSED_BLOCK_BYTES,    \
		     FUSED_TARGETS)

/* bf16 at 32 bytes per block, for the reason given in reduce.c. */
#define DEFINE_FUSED_BF16(name, combine, finish)                               \
	DEFINE_FUSED(name, uint16_t, float, wccl_bf16_to_fp32, combine,        \
		     finish, wccl_fp32_to_bf16, 32, FUSED_TARGETS)

DEFINE_FUSED_PLAIN(f_sum_u8, uint8_t, sum_u8)
DEFINE_FUSED_PLAIN(f_prod_u8, uint8_t, prod_u8)
DEFINE_FUSED_PLAIN(f_min_i8, int8_t, min_i8)
DEFINE_FUSED_PLAIN(f_max_i8, int8_t, max_i8)
DEFINE_FUSED_PLAIN(f_min_u8, uint8_t, min_u8)
DEFINE_FUSED_PLAIN(f_max_u8, uint8_t, max_u8)
DEFINE_FUSED_PLAIN(f_sum_u32, uint32_t, sum_u32)
DEFINE_FUSED_PLAIN(f_prod_u32, uint32_t, prod_u32)
DEFINE_FUSED_PLAIN(f_min_i32, int32_t, min_i32)
DEFINE_FUSED_PLAIN(f_max_i32, int32_t, max_i32)
DEFINE_FUSED_PLAIN(f_min_u32, uint32_t, min_u32)
DEFINE_FUSED_PLAIN(f_max_u32, uint32_t, max_u32)
DEFINE_FUSED_PLAIN(f_sum_u64, uint64_t, sum_u64)
DEFINE_FUSED_PLAIN(f_prod_u64, uint64_t, prod_u64)
DEFINE_FUSED_PLAIN(f_min_i64, int64_t, min_i64)
DEFINE_FUSED_PLAIN(f_max_i64, int64_t, max_i64)
DEFINE_FUSED_PLAIN(f_min_u64, uint64_t, min_u64)
DEFINE_FUSED_PLAIN(f_max_u64, uint64_t, max_u64)
DEFINE_FUSED_PLAIN(f_sum_f32, float, sum_f32)
DEFINE_FUSED_PLAIN(f_prod_f32, float, prod_f32)
DEFINE_FUSED_PLAIN(f_min_f32, float, min_f32)
DEFINE_FUSED_PLAIN(f_max_f32, float, max_f32)
DEFINE_FUSED_PLAIN(f_sum_f64, double, sum_f64)
DEFINE_FUSED_PLAIN(f_prod_f64, double, prod_f64)
DEFINE_FUSED_PLAIN(f_min_f64, double, min_f64)
DEFINE_FUSED_PLAIN(f_max_f64, double, max_f64)

DEFINE_FUSED_AVG_INT(f_avg_i8, uint8_t, sum_u8, avg_i8)
DEFINE_FUSED_AVG_INT(f_avg_u8, uint8_t, sum_u8, DIVIDE)
DEFINE_FUSED_AVG_INT(f_avg_i32, uint32_t, sum_u32, avg_i32)
DEFINE_FUSED_AVG_INT(f_avg_u32, uint32_t, sum_u32, DIVIDE)
DEFINE_FUSED_AVG_INT(f_avg_i64, uint64_t, sum_u64, avg_i64)
DEFINE_FUSED_AVG_INT(f_avg_u64, uint64_t, sum_u64, DIVIDE)
DEFINE_FUSED(f_avg_f32, float, float, AS_IS, sum_f32, DIVIDE, AS_IS,
	     FUSED_BLOCK_BYTES, FUSED_TARGETS)
DEFINE_FUSED(f_avg_f64, double, double, AS_IS, sum_f64, DIVIDE, AS_IS,
	     FUSED_BLOCK_BYTES, FUSED_TARGETS)

DEFINE_FUSED_BF16(f_sum_bf16, sum_f32, KEEP)
DEFINE_FUSED_BF16(f_prod_bf16, prod_f32, KEEP)
DEFINE_FUSED_BF16(f_min_bf16, min_f32, KEEP)
DEFINE_FUSED_BF16(f_max_bf16, max_f32, KEEP)
DEFINE_FUSED_BF16(f_avg_bf16, sum_f32, DIVIDE)

/* fp16 goes through reduce_half.c, which picks F16C when the CPU has it. */
static void f_fp16(void *const *dst, int ndst, const void *const *src,
		   int nsrc, size_t first, size_t count, enum wccl_redop op)
{
	if (wccl_cpu_has_f16c())
		wccl_reduce_fused_fp16_f16c((uint16_t *const *)dst, ndst,
					    (const uint16_t *const *)src, nsrc,
					    first, count, op);
	else
		wccl_reduce_fused_fp16_portable((uint16_t *const *)dst, ndst,
						(const uint16_t *const *)src,
						nsrc, first, count, op);
}

/* Indexed [dtype][op] in the order of enum wccl_redop. */
static const fused_fn fused_kernels[WCCL_DTYPE_COUNT][WCCL_REDOP_COUNT] = {
	[WCCL_INT8] = {f_sum_u8, f_prod_u8, f_min_i8, f_max_i8, f_avg_i8},
	[WCCL_UINT8] = {f_sum_u8, f_prod_u8, f_min_u8, f_max_u8, f_avg_u8},
	[WCCL_INT32] = {f_sum_u32, f_prod_u32, f_min_i32, f_max_i32,
			f_avg_i32},
	[WCCL_UINT32] = {f_sum_u32, f_prod_u32, f_min_u32, f_max_u32,
			 f_avg_u32},
	[WCCL_INT64] = {f_sum_u64, f_prod_u64, f_min_i64, f_max_i64,
			f_avg_i64},
	[WCCL_UINT64] = {f_sum_u64, f_prod_u64, f_min_u64, f_max_u64,
			 f_avg_u64},
	[WCCL_BF16] = {f_sum_bf16, f_prod_bf16, f_min_bf16, f_max_bf16,
		       f_avg_bf16},
	[WCCL_FP32] = {f_sum_f32, f_prod_f32, f_min_f32, f_max_f32,
		       f_avg_f32},
	[WCCL_FP64] = {f_sum_f64, f_prod_f64, f_min_f64, f_max_f64,
		       f_avg_f64},
};

int wccl_reduce_fused(void *const *dst, int ndst, const void *const *src,
		      int nsrc, size_t first, size_t count,
		      enum wccl_dtype dtype, enum wccl_redop op)
{
	if ((unsigned)dtype >= WCCL_DTYPE_COUNT ||
	    (unsigned)op >= WCCL_REDOP_COUNT || nsrc < 1 || ndst < 0)
		return WCCL_EINVAL;
	if (count == 0)
		return 0;
	if (!src || (ndst && !dst))
		return WCCL_EINVAL;
	for (int p = 0; p < nsrc; p++)
		if (!src[p])
			return WCCL_EINVAL;
	for (int k = 0; k < ndst; k++)
		if (!dst[k])
			return WCCL_EINVAL;
	if (dtype == WCCL_FP16)
		f_fp16(dst, ndst, src, nsrc, first, count, op);
	else
		fused_kernels[dtype][op](dst, ndst, src, nsrc, first, count,
					 (uint32_t)nsrc);
	return 0;
}
