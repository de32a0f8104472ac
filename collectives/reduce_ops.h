/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_REDUCE_OPS_H
#define WCCL_COLLECTIVES_REDUCE_OPS_H

#include <stdint.h>

/*
 * The scalar combine functions the kernels are built from, shared by
 * reduce.c, reduce_fused.c and reduce_half.c. Written as selects rather
 * than branches so the vectoriser turns them into compare + blend.
 */

/* NaN-propagating min/max: 'x != x' is true only for a NaN. If y is the
 * NaN, the comparison is false and y is returned. */
static inline float min_f32(float x, float y)
{
	return (x != x || x < y) ? x : y;
}

static inline float max_f32(float x, float y)
{
	return (x != x || x > y) ? x : y;
}

static inline double min_f64(double x, double y)
{
	return (x != x || x < y) ? x : y;
}

static inline double max_f64(double x, double y)
{
	return (x != x || x > y) ? x : y;
}

static inline float sum_f32(float x, float y)
{
	return x + y;
}

static inline float prod_f32(float x, float y)
{
	return x * y;
}

/* Sum and product are bit-identical for signed and unsigned integers of one
 * width when computed modulo 2^bits, so one unsigned kernel serves both and
 * signed overflow (undefined in C) never happens. The casts back to the
 * narrow type truncate, which is the wraparound we want. */
static inline uint8_t sum_u8(uint8_t x, uint8_t y)
{
	return (uint8_t)(x + y);
}
static inline uint8_t prod_u8(uint8_t x, uint8_t y)
{
	return (uint8_t)(x * y);
}
static inline uint32_t sum_u32(uint32_t x, uint32_t y)
{
	return x + y;
}
static inline uint32_t prod_u32(uint32_t x, uint32_t y)
{
	return x * y;
}
static inline uint64_t sum_u64(uint64_t x, uint64_t y)
{
	return x + y;
}
static inline uint64_t prod_u64(uint64_t x, uint64_t y)
{
	return x * y;
}

/* Min and max need the signedness. */
#define MIN_OF(x, y) ((x) < (y) ? (x) : (y))
#define MAX_OF(x, y) ((x) > (y) ? (x) : (y))
static inline int8_t min_i8(int8_t x, int8_t y) { return MIN_OF(x, y); }
static inline int8_t max_i8(int8_t x, int8_t y) { return MAX_OF(x, y); }
static inline uint8_t min_u8(uint8_t x, uint8_t y) { return MIN_OF(x, y); }
static inline uint8_t max_u8(uint8_t x, uint8_t y) { return MAX_OF(x, y); }
static inline int32_t min_i32(int32_t x, int32_t y) { return MIN_OF(x, y); }
static inline int32_t max_i32(int32_t x, int32_t y) { return MAX_OF(x, y); }
static inline uint32_t min_u32(uint32_t x, uint32_t y) { return MIN_OF(x, y); }
static inline uint32_t max_u32(uint32_t x, uint32_t y) { return MAX_OF(x, y); }
static inline int64_t min_i64(int64_t x, int64_t y) { return MIN_OF(x, y); }
static inline int64_t max_i64(int64_t x, int64_t y) { return MAX_OF(x, y); }
static inline uint64_t min_u64(uint64_t x, uint64_t y) { return MIN_OF(x, y); }
static inline uint64_t max_u64(uint64_t x, uint64_t y) { return MAX_OF(x, y); }

static inline double sum_f64(double x, double y)
{
	return x + y;
}
static inline double prod_f64(double x, double y)
{
	return x * y;
}

#endif
