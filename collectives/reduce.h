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

#endif
