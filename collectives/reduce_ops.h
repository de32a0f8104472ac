/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_REDUCE_OPS_H
#define WCCL_COLLECTIVES_REDUCE_OPS_H

/*
 * The scalar combine functions the kernels are built from, shared by
 * reduce.c and reduce_half.c. Written as selects rather than branches so
 * the vectoriser turns them into compare + blend.
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

#endif
