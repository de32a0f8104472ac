/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "collectives/half.h"
#include "collectives/reduce_half.h"
#include "collectives/reduce_ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* Elements per inner block: the widened operands live in small local arrays
 * so the combine loop has a constant trip count the vectoriser takes. */
#define HALF_BLOCK 16

typedef float (*combine_fn)(float, float);

static combine_fn combine_for(enum wccl_redop op)
{
	switch (op) {
	case WCCL_PROD:
		return prod_f32;
	case WCCL_MIN:
		return min_f32;
	case WCCL_MAX:
		return max_f32;
	default:
		return sum_f32;
	}
}

void wccl_reduce_fp16_portable(uint16_t *dst, const uint16_t *a,
			       const uint16_t *b, size_t count,
			       enum wccl_redop op)
{
	combine_fn combine = combine_for(op);
	for (size_t i = 0; i < count; i++) {
		float x = wccl_fp16_to_fp32(a[i]);
		float y = wccl_fp16_to_fp32(b[i]);
		dst[i] = wccl_fp32_to_fp16(combine(x, y));
	}
}

/* Elements [first, end) of wccl_reduce_fused() for fp16, one at a time:
 * every input widened and combined in fp32 in input order, AVG divided,
 * then rounded once. */
static void fused_fp16_range(uint16_t *const *dst, int ndst,
			     const uint16_t *const *src, int nsrc,
			     size_t first, size_t end, enum wccl_redop op)
{
	combine_fn combine = combine_for(op);
	for (size_t i = first; i < end; i++) {
		float acc = wccl_fp16_to_fp32(src[0][i]);
		for (int p = 1; p < nsrc; p++)
			acc = combine(acc, wccl_fp16_to_fp32(src[p][i]));
		if (op == WCCL_AVG)
			acc = acc / (float)nsrc;
		uint16_t h = wccl_fp32_to_fp16(acc);
		for (int k = 0; k < ndst; k++)
			dst[k][i] = h;
	}
}

void wccl_reduce_fused_fp16_portable(uint16_t *const *dst, int ndst,
				     const uint16_t *const *src, int nsrc,
				     size_t first, size_t count,
				     enum wccl_redop op)
{
	fused_fp16_range(dst, ndst, src, nsrc, first, first + count, op);
}

#ifdef HAVE_X86
/* CPUID leaf 1, ECX: AVX (bit 28), F16C (bit 29), OSXSAVE (bit 27); and the
 * OS must save the YMM state (XCR0 bits 1 and 2). Asked directly because
 * clang 14's __builtin_cpu_supports() does not know "f16c". The answer is
 * cached; racing first callers compute the same value. */
static bool detect_f16c(void)
{
	unsigned int eax, ebx, ecx, edx;
	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
		return false;
	const unsigned int need = (1u << 27) | (1u << 28) | (1u << 29);
	if ((ecx & need) != need)
		return false;
	unsigned int xcr0_lo, xcr0_hi;
	__asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
	return (xcr0_lo & 0x6u) == 0x6u;
}

bool wccl_cpu_has_f16c(void)
{
	static int cached = -1;
	int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	if (v < 0) {
		v = detect_f16c();
		__atomic_store_n(&cached, v, __ATOMIC_RELAXED);
	}
	return v;
}

#define F16C_TARGET __attribute__((target("avx,f16c")))

static F16C_TARGET void widen8(float *dst, const uint16_t *src)
{
	__m128i h = _mm_loadu_si128((const __m128i *)src);
	_mm256_storeu_ps(dst, _mm256_cvtph_ps(h));
}

static F16C_TARGET void narrow8(uint16_t *dst, const float *src)
{
	__m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src),
				    _MM_FROUND_TO_NEAREST_INT);
	_mm_storeu_si128((__m128i *)dst, h);
}

/* One function per op so each combine loop is inlined and vectorised
 * (a function pointer in the hot loop would stop both). */
#define F16C_KERNEL(name, combine, op)                                          \
	static F16C_TARGET void name(uint16_t *dst, const uint16_t *a,         \
				     const uint16_t *b, size_t count)          \
	{                                                                      \
		size_t i = 0;                                                  \
		for (; i + HALF_BLOCK <= count; i += HALF_BLOCK) {             \
			float x[HALF_BLOCK], y[HALF_BLOCK];                    \
			widen8(x, a + i);                                      \
			widen8(x + 8, a + i + 8);                              \
			widen8(y, b + i);                                      \
			widen8(y + 8, b + i + 8);                              \
			for (int j = 0; j < HALF_BLOCK; j++)                   \
				x[j] = combine(x[j], y[j]);                    \
			narrow8(dst + i, x);                                   \
			narrow8(dst + i + 8, x + 8);                           \
		}                                                              \
		if (i < count)                                                 \
			wccl_reduce_fp16_portable(dst + i, a + i, b + i,       \
						  count - i, op);              \
	}

F16C_KERNEL(f16c_sum, sum_f32, WCCL_SUM)
F16C_KERNEL(f16c_prod, prod_f32, WCCL_PROD)
F16C_KERNEL(f16c_min, min_f32, WCCL_MIN)
F16C_KERNEL(f16c_max, max_f32, WCCL_MAX)

void wccl_reduce_fp16_f16c(uint16_t *dst, const uint16_t *a,
			   const uint16_t *b, size_t count, enum wccl_redop op)
{
	switch (op) {
	case WCCL_PROD:
		f16c_prod(dst, a, b, count);
		break;
	case WCCL_MIN:
		f16c_min(dst, a, b, count);
		break;
	case WCCL_MAX:
		f16c_max(dst, a, b, count);
		break;
	default:
		f16c_sum(dst, a, b, count);
		break;
	}
}

/* wccl_reduce_fused() for fp16 with F16C; @avg divides by nsrc. */
#define F16C_FUSED(name, combine, op, avg)                                      \
	static F16C_TARGET void name(uint16_t *const *dst, int ndst,           \
				     const uint16_t *const *src, int nsrc,     \
				     size_t first, size_t count)               \
	{                                                                      \
		size_t i = first, end = first + count;                         \
		for (; i + HALF_BLOCK <= end; i += HALF_BLOCK) {               \
			float acc[HALF_BLOCK], y[HALF_BLOCK];                  \
			uint16_t out[HALF_BLOCK];                              \
			widen8(acc, src[0] + i);                               \
			widen8(acc + 8, src[0] + i + 8);                       \
			for (int p = 1; p < nsrc; p++) {                       \
				widen8(y, src[p] + i);                         \
				widen8(y + 8, src[p] + i + 8);                 \
				for (int j = 0; j < HALF_BLOCK; j++)           \
					acc[j] = combine(acc[j], y[j]);        \
			}                                                      \
			for (int j = 0; avg && j < HALF_BLOCK; j++)            \
				acc[j] = acc[j] / (float)nsrc;                 \
			narrow8(out, acc);                                     \
			narrow8(out + 8, acc + 8);                             \
			for (int k = 0; k < ndst; k++)                         \
				memcpy(dst[k] + i, out, sizeof(out));          \
		}                                                              \
		fused_fp16_range(dst, ndst, src, nsrc, i, end, op);            \
	}

F16C_FUSED(f16c_fused_sum, sum_f32, WCCL_SUM, 0)
F16C_FUSED(f16c_fused_prod, prod_f32, WCCL_PROD, 0)
F16C_FUSED(f16c_fused_min, min_f32, WCCL_MIN, 0)
F16C_FUSED(f16c_fused_max, max_f32, WCCL_MAX, 0)
F16C_FUSED(f16c_fused_avg, sum_f32, WCCL_AVG, 1)

void wccl_reduce_fused_fp16_f16c(uint16_t *const *dst, int ndst,
				 const uint16_t *const *src, int nsrc,
				 size_t first, size_t count,
				 enum wccl_redop op)
{
	switch (op) {
	case WCCL_PROD:
		f16c_fused_prod(dst, ndst, src, nsrc, first, count);
		break;
	case WCCL_MIN:
		f16c_fused_min(dst, ndst, src, nsrc, first, count);
		break;
	case WCCL_MAX:
		f16c_fused_max(dst, ndst, src, nsrc, first, count);
		break;
	case WCCL_AVG:
		f16c_fused_avg(dst, ndst, src, nsrc, first, count);
		break;
	default:
		f16c_fused_sum(dst, ndst, src, nsrc, first, count);
		break;
	}
}

F16C_TARGET void wccl_fp16_to_fp32_f16c(float *dst, const uint16_t *src,
					size_t count)
{
	size_t i = 0;
	for (; i + 8 <= count; i += 8)
		widen8(dst + i, src + i);
	for (; i < count; i++) {
		uint16_t h[8] = {src[i]};
		float f[8];
		widen8(f, h);
		dst[i] = f[0];
	}
}

F16C_TARGET void wccl_fp32_to_fp16_f16c(uint16_t *dst, const float *src,
					size_t count)
{
	size_t i = 0;
	for (; i + 8 <= count; i += 8)
		narrow8(dst + i, src + i);
	for (; i < count; i++) {
		float f[8] = {src[i]};
		uint16_t h[8];
		narrow8(h, f);
		dst[i] = h[0];
	}
}
#else
bool wccl_cpu_has_f16c(void)
{
	return false;
}

void wccl_reduce_fp16_f16c(uint16_t *dst, const uint16_t *a,
			   const uint16_t *b, size_t count, enum wccl_redop op)
{
	wccl_reduce_fp16_portable(dst, a, b, count, op);
}

void wccl_reduce_fused_fp16_f16c(uint16_t *const *dst, int ndst,
				 const uint16_t *const *src, int nsrc,
				 size_t first, size_t count,
				 enum wccl_redop op)
{
	fused_fp16_range(dst, ndst, src, nsrc, first, first + count, op);
}

void wccl_fp16_to_fp32_f16c(float *dst, const uint16_t *src, size_t count)
{
	for (size_t i = 0; i < count; i++)
		dst[i] = wccl_fp16_to_fp32(src[i]);
}

void wccl_fp32_to_fp16_f16c(uint16_t *dst, const float *src, size_t count)
{
	for (size_t i = 0; i < count; i++)
		dst[i] = wccl_fp32_to_fp16(src[i]);
}
#endif
