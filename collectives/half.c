/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "collectives/half.h"

static float bits_to_float(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

float wccl_fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t man = h & 0x3ffu;

	if (exp == 0x1f) /* Inf or NaN: the payload moves up unchanged */
		return bits_to_float(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		if (man == 0)
			return bits_to_float(sign);
		/* Subnormal: normalise so the leading 1 becomes implicit. */
		int e = -14;
		while (!(man & 0x400u)) {
			man <<= 1;
			e--;
		}
		man &= 0x3ffu;
		return bits_to_float(sign | (uint32_t)(e + 127) << 23 |
				     man << 13);
	}
	return bits_to_float(sign | (exp + 112) << 23 | man << 13);
}

/* Shift right by 'shift' (1..31) rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t v, unsigned shift)
{
	uint32_t kept = v >> shift;
	uint32_t rest = v & ((1u << shift) - 1);
	uint32_t half = 1u << (shift - 1);
	if (rest > half || (rest == half && (kept & 1u)))
		kept++;
	return kept;
}

uint16_t wccl_fp32_to_fp16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t abs = u & 0x7fffffffu;

	if (abs > 0x7f800000u) /* NaN: keep the top payload bits, quiet it */
		return sign | 0x7e00u | (uint16_t)((abs >> 13) & 0x3ffu);
	if (abs >= 0x47800000u) /* >= 2^16, or Inf: beyond every half */
		return sign | 0x7c00u;
	if (abs >= 0x38800000u) {
		/* Normal half. Rebias the exponent (127 -> 15) in place; a
		 * rounding carry walks into the exponent, and 65520 and up
		 * carry all the way to Inf (0x7c00), as IEEE wants. */
		return sign | (uint16_t)shift_round_even(abs - (112u << 23), 13);
	}
	if (abs <= 0x33000000u) /* <= 2^-25: half of the least subnormal */
		return sign;
	/* Subnormal half: units of 2^-24. The value is mant * 2^(e - 150),
	 * so it is mant >> (126 - e) units; 126 - e lies in 14..24. A carry
	 * into bit 10 yields the least normal half, correctly encoded. */
	uint32_t e = abs >> 23;
	uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
	return sign | (uint16_t)shift_round_even(mant, 126 - e);
}
