/* SPDX-License-Identifier: MIT */
/* SPSC message ring: setup only; the hot path is inline in shm_ring.h. */
#include <string.h>

#include "shm_ring.h"

uint64_t shm_ring_round(uint64_t bytes)
{
	uint64_t r = 64 * 1024;
	while (r < bytes && r < SHM_RING_MAX)
		r <<= 1;
	return r;
}

void shm_ring_init(void *mem)
{
	struct shm_ring_shared *sh = mem;
	atomic_init(&sh->head, 0);
	atomic_init(&sh->tail, 0);
}

void shm_ring_attach(struct shm_ring *r, void *mem, uint64_t data_bytes)
{
	memset(r, 0, sizeof(*r));
	r->sh = mem;
	r->data = r->sh->data;
	r->size = data_bytes;
	r->mask = data_bytes - 1;
}
