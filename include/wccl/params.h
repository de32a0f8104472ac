/* SPDX-License-Identifier: MIT */
#ifndef WCCL_PARAMS_H
#define WCCL_PARAMS_H

/* Read-only view of wccl's tunables (all WCCL_* environment variables). */

#ifdef __cplusplus
extern "C" {
#endif

struct wccl_param_info {
	const char *name;	   /* "WCCL_TIMEOUT_MS" */
	const char *value;	   /* current value as text */
	const char *default_value; /* built-in default as text */
	const char *description;
	int from_env; /* 1 if the environment set it validly */
};

int wccl_param_count(void);

/* Fill @info for tunable @index (0 .. count-1). Returns 0 or -WCCL_EINVAL. */
int wccl_param_get(int index, struct wccl_param_info *info);

#ifdef __cplusplus
}
#endif
#endif
