/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_REDUCE_HALF_H
#define WCCL_COLLECTIVES_REDUCE_HALF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collectives/dtype.h"

/*
 * fp16 kernels, two implementations with identical results: portable bit
 * code, and F16C (x86 vcvtph2ps / vcvtps2ph), chosen at run time so a
 * baseline x86-64 build still uses the instructions where they exist.
 * Split out so the tests can run both and compare every bit.
 */

/* True if the running CPU has F16C and AVX (always false off x86). */
bool wccl_cpu_has_f16c(void);

/* op is SUM, PROD, MIN or MAX (AVG is mapped to SUM by the caller). */
void wccl_reduce_fp16_portable(uint16_t *dst, const uint16_t *a,
			       const uint16_t *b, size_t count,
			       enum wccl_redop op);

/* Same, with F16C; call only when wccl_cpu_has_f16c(). */
void wccl_reduce_fp16_f16c(uint16_t *dst, const uint16_t *a,
			   const uint16_t *b, size_t count,
			   enum wccl_redop op);

/* wccl_reduce_fused() for fp16 (op may be AVG: the fp32 sum divided by
 * nsrc, rounded once), both ways. */
void wccl_reduce_fused_fp16_portable(uint16_t *const *dst, int ndst,
				     const uint16_t *const *src, int nsrc,
				     size_t first, size_t count,
				     enum wccl_redop op);
void wccl_reduce_fused_fp16_f16c(uint16_t *const *dst, int ndst,
				 const uint16_t *const *src, int nsrc,
				 size_t first, size_t count,
				 enum wccl_redop op);

/* Array conversions with F16C, for the equivalence tests; call only when
 * wccl_cpu_has_f16c(). */
void wccl_fp16_to_fp32_f16c(float *dst, const uint16_t *src, size_t count);
void wccl_fp32_to_fp16_f16c(uint16_t *dst, const float *src, size_t count);

#endif
