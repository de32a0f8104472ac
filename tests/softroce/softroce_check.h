/* SPDX-License-Identifier: MIT */
/* Checks for the soft-RoCE test programs: CHECK counts a failure and goes
 * on (the program prints them all at the end), MUST stops at once. */
#ifndef WCCL_SOFTROCE_CHECK_H
#define WCCL_SOFTROCE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <wccl/errors.h>

static int failures;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: check failed: %s: ",        \
				__FILE__, __LINE__, #cond);                 \
			fprintf(stderr, __VA_ARGS__);                       \
			fprintf(stderr, "\n");                              \
			failures++;                                         \
		}                                                           \
	} while (0)

#define MUST(expr)                                                          \
	do {                                                                \
		int rc_ = (expr);                                           \
		if (rc_) {                                                  \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__,         \
				__LINE__, #expr, wccl_strerror(rc_));       \
			exit(1);                                            \
		}                                                           \
	} while (0)

#endif
