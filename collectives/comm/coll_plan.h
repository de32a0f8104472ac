/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLL_PLAN_H
#define WCCL_COLL_PLAN_H

#include "comm.h"

/* The cached plan for @shape, built if new. NULL with *@err on failure. */
struct coll_plan *coll_plan_get(struct wccl_comm *c,
				const struct coll_shape *shape, int *err);

const char *coll_kind_name(uint32_t kind);

#endif
