/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COMP_RING_H
#define WCCL_COMP_RING_H

/* The providers' completion queues are rings of wccl_completion with a
 * head and a count; this is how every one of them hands completions out. */
#include <stdint.h>

#include <wccl/transport.h>

/* Move up to @max completions from the ring to @out; returns how many. */
static inline int comp_ring_pop(const struct wccl_completion *ring,
				uint32_t cap, uint32_t *head, uint32_t *count,
				struct wccl_completion *out, int max)
{
	int n = 0;
	while (n < max && *count) {
		out[n++] = ring[*head];
		if (++*head == cap)
			*head = 0;
		(*count)--;
	}
	return n;
}

#endif
