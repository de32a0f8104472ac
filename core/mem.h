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

/* The whole allocation holding [@addr, @addr + @len): its base, length and
 * an id no later allocation reuses (so a cache keyed by it cannot mistake
 * a new allocation at the same address for the old one). Returns 0 or
 * -WCCL_ENOENT. Takes the registry lock. */
struct wccl_mem_span {
	void *base;
	size_t len;
	uint64_t id;
};
int wccl_mem_find(const void *addr, size_t len, struct wccl_mem_span *span);

/* How many wccl_mem_free calls have begun so far; no lock, one atomic load.
 * A cache of registrations of wccl_mem memory re-checks its entries with
 * wccl_mem_find whenever this changed: an allocation freed (or freed and
 * replaced at the same address) is then never used again. */
uint64_t wccl_mem_frees(void);

#endif
