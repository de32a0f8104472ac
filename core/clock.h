/* SPDX-License-Identifier: MIT */
#ifndef WCCL_CLOCK_H
#define WCCL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in nanoseconds: for deadlines and measurements. */
static inline uint64_t wccl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Deadline @timeout_ms from now (timeout_ms >= 0). */
static inline uint64_t wccl_deadline_ns(int64_t timeout_ms)
{
	return wccl_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

#endif
