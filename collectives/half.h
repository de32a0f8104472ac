/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_HALF_H
#define WCCL_COLLECTIVES_HALF_H

#include <stdint.h>
#include <string.h>

/*
 * Conversions between the 16-bit float formats and binary32.
 *
 * Widening is exact: every fp16 and bf16 value is representable in fp32.
 * Narrowing rounds to nearest, ties to even; finite values too large become
 * +-Inf, values too small become subnormals or +-0. A NaN stays a NaN of the
 * same sign, its payload truncated and the quiet bit set (which is what the
 * F16C instruction vcvtps2ph does, so both paths agree bit for bit).
 *
 * These are the portable, scalar definitions; reduce_half.c uses F16C when
 * the CPU has it and the tests check that it gives identical bits.
 */
float wccl_fp16_to_fp32(uint16_t h);
uint16_t wccl_fp32_to_fp16(float f);

static inline float wccl_bf16_to_fp32(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline uint16_t wccl_fp32_to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	/* Adding 0x7fff plus the lowest kept bit rounds to nearest even; a
	 * carry out of the mantissa bumps the exponent, up to Inf. A NaN
	 * keeps its top bits and gets the quiet bit. Both are computed and
	 * one picked, with a signed compare (the magnitude fits in 31 bits),
	 * so loops over this vectorise with SSE2. */
	uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
	uint32_t quiet = (u >> 16) | 0x0040u;
	int32_t magnitude = (int32_t)(u & 0x7fffffffu);
	return (uint16_t)(magnitude > 0x7f800000 ? quiet : rounded);
}

#endif
