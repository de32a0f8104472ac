/* SPDX-License-Identifier: MIT */
/* Placeholder: the shm provider is being written. */
#include "transport/provider.h"

const struct wccl_provider wccl_provider_shm = {
	.name = "shm",
	.description = "placeholder",
	.priority = 0,
};
