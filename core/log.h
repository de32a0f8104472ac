/* SPDX-License-Identifier: MIT */
#ifndef WCCL_LOG_H
#define WCCL_LOG_H

/*
 * Logging in the manner of NCCL_DEBUG:
 *   WCCL_DEBUG=NONE|WARN|INFO|TRACE     level (default WARN)
 *   WCCL_DEBUG_SUBSYS=INIT,URING,...   subsystems (default ALL; ^X excludes)
 *   WCCL_DEBUG_FILE=path               %h = host, %p = pid (default stderr)
 * Control-path TRACE is always compiled in. Data-path TRACE (one line per
 * operation) exists only in builds with -Ddatapath_trace=true.
 */
#include <stdbool.h>

enum wccl_log_level {
	WCCL_LOG_NONE = 0,
	WCCL_LOG_WARN,
	WCCL_LOG_INFO,
	WCCL_LOG_TRACE,
};

enum wccl_subsys {
	WCCL_SUB_INIT = 1u << 0,
	WCCL_SUB_TRANSPORT = 1u << 1,
	WCCL_SUB_URING = 1u << 2,
	WCCL_SUB_SHM = 1u << 3,
	WCCL_SUB_VERBS = 1u << 4,
	WCCL_SUB_DPDK = 1u << 5,
	WCCL_SUB_COLL = 1u << 6,
	WCCL_SUB_BOOTSTRAP = 1u << 7,
	WCCL_SUB_TUNER = 1u << 8,
	WCCL_SUB_PERF = 1u << 9,
	WCCL_SUB_ALL = ~0u,
};

/* Cached after the first call; cheap enough to test before formatting. */
bool wccl_log_enabled(enum wccl_log_level level, unsigned subsys);

void wccl_log(enum wccl_log_level level, unsigned subsys, const char *file,
	      int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Re-read the WCCL_DEBUG* variables (tests change them at run time). */
void wccl_log_reload(void);

#define WCCL_WARN(sub, ...) \
	wccl_log(WCCL_LOG_WARN, (sub), __FILE__, __LINE__, __VA_ARGS__)

#define WCCL_INFO(sub, ...)                                                \
	do {                                                               \
		if (wccl_log_enabled(WCCL_LOG_INFO, (sub)))                \
			wccl_log(WCCL_LOG_INFO, (sub), __FILE__, __LINE__, \
				 __VA_ARGS__);                             \
	} while (0)

#define WCCL_TRACE(sub, ...)                                                \
	do {                                                                \
		if (wccl_log_enabled(WCCL_LOG_TRACE, (sub)))                \
			wccl_log(WCCL_LOG_TRACE, (sub), __FILE__, __LINE__, \
				 __VA_ARGS__);                              \
	} while (0)

#ifdef WCCL_DATAPATH_TRACE
#define WCCL_DP_TRACE(sub, ...) WCCL_TRACE(sub, __VA_ARGS__)
#else
#define WCCL_DP_TRACE(sub, ...) \
	do {                    \
	} while (0)
#endif

#endif
