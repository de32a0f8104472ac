/* SPDX-License-Identifier: MIT */
#ifndef WCCL_CORE_PARAMS_H
#define WCCL_CORE_PARAMS_H

#include <stdint.h>

#include "param_list.h"

/* Value of an integer tunable: the environment's if it parses, else the
 * default (a bad value is reported once at WARN, naming the variable). */
int64_t wccl_param_int(enum wccl_param id);

/* Value of a string tunable; never NULL. */
const char *wccl_param_str(enum wccl_param id);

/* Forget cached values so the environment is read again (tests). */
void wccl_param_reload(void);

/*
 * Parse "123", "64K", "4M", "1G" (powers of 1024) or hex "0x10".
 * Returns 0 and *@out, or -WCCL_EINVAL (empty, junk, negative) or
 * -WCCL_ERANGE (overflow).
 */
int wccl_parse_size(const char *s, uint64_t *out);

#endif
