/* SPDX-License-Identifier: MIT */
#include "collectives/dtype.h"

static const struct {
	const char *name;
	size_t size;
} dtype_info[WCCL_DTYPE_COUNT] = {
	[WCCL_INT8] = {"int8", 1},     [WCCL_UINT8] = {"uint8", 1},
	[WCCL_INT32] = {"int32", 4},   [WCCL_UINT32] = {"uint32", 4},
	[WCCL_INT64] = {"int64", 8},   [WCCL_UINT64] = {"uint64", 8},
	[WCCL_FP16] = {"fp16", 2},     [WCCL_BF16] = {"bf16", 2},
	[WCCL_FP32] = {"fp32", 4},     [WCCL_FP64] = {"fp64", 8},
};

static const char *const redop_names[WCCL_REDOP_COUNT] = {
	[WCCL_SUM] = "sum", [WCCL_PROD] = "prod", [WCCL_MIN] = "min",
	[WCCL_MAX] = "max", [WCCL_AVG] = "avg",
};

size_t wccl_dtype_size(enum wccl_dtype dtype)
{
	if ((unsigned)dtype >= WCCL_DTYPE_COUNT)
		return 0;
	return dtype_info[dtype].size;
}

const char *wccl_dtype_name(enum wccl_dtype dtype)
{
	if ((unsigned)dtype >= WCCL_DTYPE_COUNT)
		return "invalid";
	return dtype_info[dtype].name;
}

const char *wccl_redop_name(enum wccl_redop op)
{
	if ((unsigned)op >= WCCL_REDOP_COUNT)
		return "invalid";
	return redop_names[op];
}
