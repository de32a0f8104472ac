/* SPDX-License-Identifier: MIT */
/*
 * wccl_comm_split: ranks with one color form a new communicator. Two
 * all-gathers over the parent's bootstrap: first (color, key) so every rank
 * knows its group and new rank, then the group leaders' fresh unique ids.
 * Each group then builds its communicator like any other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_id.h"
#include "comm_internal.h"
#include "core/log.h"

/* A new id whose root listens on this rank's own address, any port (the
 * parent's root address may be a fixed launcher port). */
static int comm_new_unique_id(struct wccl_comm *c, struct wccl_unique_id *id)
{
	char ip[64], bind[80];
	int rc = wccl_bootstrap_local_ip(c->bs, ip, sizeof(ip));
	if (rc)
		return rc;
	snprintf(bind, sizeof(bind), strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
	return comm_id_make(bind, id);
}

struct split_entry {
	int32_t color;
	int32_t key;
};

int wccl_comm_split(struct wccl_comm *c, int color, int key,
		    struct wccl_comm **newcomm)
{
	if (!c || !newcomm)
		return WCCL_EINVAL;
	if (c->broken)
		return c->async_error ? c->async_error : WCCL_EABORTED;
	*newcomm = NULL;
	int n = c->nranks;
	struct split_entry me = { color < 0 ? -1 : color, key };
	struct split_entry *all = calloc((size_t)n, sizeof(*all));
	struct wccl_unique_id *ids = calloc((size_t)n, sizeof(*ids));
	int rc = all && ids ? 0 : WCCL_ENOMEM;
	if (!rc)
		rc = wccl_bootstrap_allgather(c->bs, &me, sizeof(me), all,
					      c->timeout_ms);
	/* My group: same color, ordered by (key, old rank). */
	int new_rank = 0, size = 0, leader = -1;
	for (int r = 0; !rc && color >= 0 && r < n; r++) {
		if (all[r].color != color)
			continue;
		size++;
		if (all[r].key < key || (all[r].key == key && r < c->rank))
			new_rank++;
		if (leader < 0 || all[r].key < all[leader].key)
			leader = r;
	}
	struct wccl_unique_id mine;
	memset(&mine, 0, sizeof(mine));
	if (!rc && leader == c->rank)
		rc = comm_new_unique_id(c, &mine);
	/* Everyone joins the second round, even a rank whose id failed, so
	 * no rank hangs; a zero id then fails init cleanly. */
	int rc2 = wccl_bootstrap_allgather(c->bs, &mine, sizeof(mine), ids,
					   c->timeout_ms);
	if (!rc)
		rc = rc2;
	if (!rc && color >= 0) {
		struct wccl_config cfg = WCCL_CONFIG_INIT;
		cfg.timeout_ms = c->timeout_ms;
		cfg.region = c->peers[c->rank].info.region;
		rc = wccl_comm_init_rank(newcomm, size, &ids[leader], new_rank,
					 &cfg);
		if (!rc)
			WCCL_INFO(WCCL_SUB_COLL,
				  "rank %d: split color %d -> rank %d of %d",
				  c->rank, color, new_rank, size);
	}
	/* The leader's root for the new id: taken over by its new
	 * communicator, else (a failed round or init) stopped here. */
	struct comm_id cid;
	if (leader == c->rank && !comm_id_unpack(&mine, &cid))
		wccl_bootstrap_root_stop(comm_id_adopt_root(cid.root_addr));
	/* A round that failed has the root's verdict, naming the rank. */
	const char *why = wccl_bootstrap_error(c->bs);
	if (rc)
		comm_fail(c, rc,
			  why[0] ? wccl_bootstrap_error_rank(c->bs) : -1,
			  "rank %d: comm_split failed: %s", c->rank,
			  why[0] ? why : wccl_strerror(rc));
	free(all);
	free(ids);
	return rc;
}
