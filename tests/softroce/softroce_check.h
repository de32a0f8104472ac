/* SPDX-License-Identifier: MIT */
/* Checks for the soft-RoCE test programs: CHECK counts a failure and goes
 * on (the program prints them all at the end), MUST stops at once. */
#ifndef WCCL_SOFTROCE_CHECK_H
#define WCCL_SOFTROCE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <wccl/errors.h>
#include <wccl/transport.h>

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

/* A verbs context on this machine's device, or exit 77 (skip) saying
 * why there is none. */
static inline struct wccl_context *verbs_or_skip(void)
{
	struct wccl_context *ctx;
	int rc = wccl_context_open("verbs", &ctx);
	if (rc) {
		printf("SKIP: no usable verbs device here (%s)\n",
		       wccl_strerror(rc));
		exit(77);
	}
	return ctx;
}

#endif
