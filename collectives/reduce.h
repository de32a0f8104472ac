/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_REDUCE_H
#define WCCL_COLLECTIVES_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/dtype.h"

/*
 * Elementwise reduction: dst[i] = a[i] OP b[i] for i < count.
 *
 * dst may be the same pointer as a or b (the usual "reduce the received
 * block into my buffer"); partial overlap is not allowed. count == 0 is a
 * no-op and the pointers may then be NULL. Never allocates, never blocks.
 *
 * Semantics per type:
 *  - Integers: SUM and PROD wrap modulo 2^bits, for signed types too (the
 *    arithmetic is done unsigned, so there is no undefined behaviour).
 *  - fp32, fp64: IEEE arithmetic in the type itself. MIN and MAX propagate
 *    NaN: if either operand is a NaN the result is a NaN (as IEEE 754-2019
 *    minimum/maximum, not the NaN-dropping C fmin/fmax). When the operands
 *    are +0 and -0 either zero may come back.
 *  - fp16, bf16: both operands are widened to fp32 (exactly), combined in
 *    fp32, and rounded back to nearest-even, so each call rounds once. Over
 *    a whole collective the error grows with the number of ranks, as with
 *    any reduction done in the element type.
 *  - AVG is SUM here; wccl_reduce_avg_finish() divides once at the end.
 *
 * Returns 0, or WCCL_EINVAL for an unknown dtype or op, or NULL pointers
 * with count > 0.
 */
int wccl_reduce_local(void *dst, const void *a, const void *b, size_t count,
		enum wccl_dtype dtype, enum wccl_redop op);

/*
 * The last step of an AVG collective: buf[i] = buf[i] / divisor, where
 * divisor is the number of contributions (nranks). Run once, on the fully
 * summed buffer, so the division rounds only once.
 *
 * Integers divide with truncation toward zero (C's '/'), applied to the
 * sum as it wrapped: an overflowed integer sum gives an overflowed average.
 * fp32/fp64 divide correctly rounded in the type; fp16/bf16 divide in fp32
 * and round back, which can differ from the exactly rounded quotient by
 * one unit in the last place (double rounding).
 *
 * Returns 0, or WCCL_EINVAL for an unknown dtype, divisor 0, or buf NULL
 * with count > 0.
 */
int wccl_reduce_avg_finish(void *buf, size_t count, enum wccl_dtype dtype,
			   uint32_t divisor);

/*
 * Many inputs into many outputs in one pass: for every element i in
 * [first, first + count) and every k < ndst,
 *   dst[k][i] = src[0][i] OP src[1][i] OP ... OP src[nsrc-1][i],
 * combined in that order (so the bits do not depend on who computes them).
 * The arrays hold whole buffers and @first picks the range, so a caller
 * walking them in chunks needs no arrays of its own.
 * Each element is read from every input before it is written to any
 * output, so an output may be the same pointer as an input (in place);
 * partial overlap is not allowed. The semantics per type are those of
 * wccl_reduce_local(), except that fp16 and bf16 are widened to fp32, all
 * nsrc values combined in fp32 and the result rounded once. AVG divides
 * the sum by nsrc before storing it, as wccl_reduce_avg_finish() does
 * (fp16/bf16: the fp32 sum, then one rounding).
 *
 * nsrc == 1 copies src[0] to every output (AVG divides by 1). count == 0
 * is a no-op. Never allocates, never blocks.
 *
 * Returns 0, or WCCL_EINVAL for an unknown dtype or op, nsrc < 1, ndst < 0,
 * or NULL arrays or pointers with count > 0.
 */
int wccl_reduce_fused(void *const *dst, int ndst, const void *const *src,
		      int nsrc, size_t first, size_t count,
		      enum wccl_dtype dtype, enum wccl_redop op);

#endif
