/* SPDX-License-Identifier: MIT */
/* Placeholder: the uring provider is being written. */
#include "transport/provider.h"

const struct wccl_provider wccl_provider_uring = {
	.name = "uring",
	.description = "placeholder",
	.priority = 0,
};
