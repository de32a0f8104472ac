/* SPDX-License-Identifier: MIT */
#ifndef WCCL_MR_KEY_H
#define WCCL_MR_KEY_H

/*
 * Region keys for providers that keep their regions in a slot table:
 * key = generation << 32 | slot, so a key of a deregistered region never
 * names the region that reuses its slot.
 */
#include <stdint.h>

/* First free slot of @table (@n entries), or -1 if all are taken. */
static inline int mr_key_free_slot(void *const *table, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!table[i])
			return (int)i;
	return -1;
}

/* The key for @slot; advances *@gen (never 0 after wrapping). */
static inline uint64_t mr_key_make(uint32_t *gen, uint32_t slot)
{
	uint64_t key = (uint64_t)(*gen)++ << 32 | slot;
	if (!*gen)
		*gen = 1;
	return key;
}

#endif
