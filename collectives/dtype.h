/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_DTYPE_H
#define WCCL_COLLECTIVES_DTYPE_H

#include <stddef.h>

/* The element types and operators are public (wccl/coll.h). */
#include <wccl/coll.h>

/* Size of one element in bytes, or 0 for an invalid type. */
size_t wccl_dtype_size(enum wccl_dtype dtype);

/* "fp32", "int8", ...; "invalid" for an unknown value. */
const char *wccl_dtype_name(enum wccl_dtype dtype);
const char *wccl_redop_name(enum wccl_redop op);

#endif
