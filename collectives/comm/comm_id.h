/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COMM_ID_H
#define WCCL_COMM_ID_H

#include <wccl/comm.h>

#include "collectives/bootstrap/bootstrap.h"

struct comm_id {
	char root_addr[WCCL_BOOTSTRAP_ADDR_LEN];
	uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN];
};

void comm_id_pack(const struct comm_id *in, struct wccl_unique_id *out);
/* Returns 0 or -WCCL_EINVAL for bytes that are not a wccl unique id. */
int comm_id_unpack(const struct wccl_unique_id *in, struct comm_id *out);

/* Start a bootstrap root on @bind ("ip:port"; NULL: default) and pack its
 * address and a fresh secret into @id. */
int comm_id_make(const char *bind, struct wccl_unique_id *id);

/* Remember a root this process started; a communicator built from its
 * address later takes it over (and stops it when destroyed). */
void comm_id_keep_root(struct wccl_bootstrap_root *root, const char *addr);
struct wccl_bootstrap_root *comm_id_adopt_root(const char *addr);

#endif
