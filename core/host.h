/* SPDX-License-Identifier: MIT */
#ifndef WCCL_HOST_H
#define WCCL_HOST_H

#include <stdint.h>

/* A number that is the same for processes on one host (boot id + host
 * name) and, in practice, different between hosts. */
uint64_t wccl_host_id(void);

#endif
