/* SPDX-License-Identifier: MIT */
#ifndef WCCL_WCCL_H
#define WCCL_WCCL_H

/* Umbrella header: everything public in wccl. */
#include <wccl/coll.h>
#include <wccl/comm.h>
#include <wccl/errors.h>
#include <wccl/params.h>
#include <wccl/stream.h>
#include <wccl/transport.h>

#define WCCL_VERSION_MAJOR 0
#define WCCL_VERSION_MINOR 1
#define WCCL_VERSION_PATCH 0

#endif
