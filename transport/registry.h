/* SPDX-License-Identifier: MIT */
#ifndef WCCL_REGISTRY_H
#define WCCL_REGISTRY_H

#include <stddef.h>

#include "provider.h"

int wccl_registry_count(void);

/* Provider @index in priority order (highest first), stubs filled, with
 * its probe result in *@probe (0 = usable). NULL if out of range. */
const struct wccl_provider *wccl_registry_get(int index, int *probe);

/* The provider named by the first @n bytes of @name, or NULL. */
const struct wccl_provider *wccl_registry_find(const char *name, size_t n,
					       int *probe);

/* The provider an address "name:detail" starts with, or NULL; then
 * *@detail points past the ':' (else it is left alone). */
const struct wccl_provider *wccl_registry_find_addr(const char *addr,
						    const char **detail,
						    int *probe);

/* What follows the provider's name in an address ("uring:10.0.0.7:5000":
 * "10.0.0.7:5000"); @addr itself when it starts with no provider's. */
const char *wccl_addr_detail(const char *addr);

#endif
