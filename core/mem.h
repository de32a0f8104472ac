/* SPDX-License-Identifier: MIT */
#ifndef WCCL_CORE_MEM_H
#define WCCL_CORE_MEM_H

/* Providers' view of wccl_mem_alloc() memory (see wccl/transport.h). */
#include <stddef.h>
#include <stdint.h>

/*
 * Is [@addr, @addr + @len) inside one live wccl_mem_alloc() allocation?
 * Returns 0 with *@fd (the allocation's memfd, owned by the registry and
 * valid until wccl_mem_free) and *@offset (of @addr in that file), or
 * -WCCL_ENOENT. Takes a lock: call it at registration, not per operation.
 */
int wccl_mem_lookup(const void *addr, size_t len, int *fd, uint64_t *offset);

#endif
