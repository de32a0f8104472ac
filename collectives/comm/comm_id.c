/* SPDX-License-Identifier: MIT */
/*
 * The unique id: bootstrap root address + job secret, packed into 128
 * bytes. The process that makes an id runs the root; the first
 * communicator it builds from that id takes the root over and stops it on
 * destroy.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "comm_id.h"
#include "core/log.h"
#include "core/params.h"
#include "core/sock.h"

#define ID_MAGIC "WCID"
#define ID_VERSION 1

/* Roots started by wccl_get_unique_id in this process, not yet adopted. */
static struct {
	pthread_mutex_t lock;
	struct {
		struct wccl_bootstrap_root *root;
		char addr[WCCL_BOOTSTRAP_ADDR_LEN];
	} slot[8];
} g_roots = { .lock = PTHREAD_MUTEX_INITIALIZER };

void comm_id_pack(const struct comm_id *in, struct wccl_unique_id *out)
{
	memset(out, 0, sizeof(*out));
	uint8_t *p = out->internal;
	memcpy(p, ID_MAGIC, 4);
	p[4] = ID_VERSION;
	memcpy(p + 8, in->root_addr, WCCL_BOOTSTRAP_ADDR_LEN);
	memcpy(p + 8 + WCCL_BOOTSTRAP_ADDR_LEN, in->secret,
	       WCCL_BOOTSTRAP_SECRET_LEN);
}

int comm_id_unpack(const struct wccl_unique_id *in, struct comm_id *out)
{
	const uint8_t *p = in->internal;
	if (memcmp(p, ID_MAGIC, 4) != 0 || p[4] != ID_VERSION)
		return WCCL_EINVAL;
	memcpy(out->root_addr, p + 8, WCCL_BOOTSTRAP_ADDR_LEN);
	out->root_addr[WCCL_BOOTSTRAP_ADDR_LEN - 1] = '\0';
	memcpy(out->secret, p + 8 + WCCL_BOOTSTRAP_ADDR_LEN,
	       WCCL_BOOTSTRAP_SECRET_LEN);
	return 0;
}

void comm_id_keep_root(struct wccl_bootstrap_root *root, const char *addr)
{
	pthread_mutex_lock(&g_roots.lock);
	for (size_t i = 0; i < sizeof(g_roots.slot) / sizeof(g_roots.slot[0]);
	     i++) {
		if (!g_roots.slot[i].root) {
			g_roots.slot[i].root = root;
			snprintf(g_roots.slot[i].addr,
				 sizeof(g_roots.slot[i].addr), "%s", addr);
			pthread_mutex_unlock(&g_roots.lock);
			return;
		}
	}
	pthread_mutex_unlock(&g_roots.lock);
	WCCL_WARN(WCCL_SUB_BOOTSTRAP,
		  "more than 8 unique ids made in this process without a "
		  "communicator; the root at %s will never be stopped",
		  addr);
}

struct wccl_bootstrap_root *comm_id_adopt_root(const char *addr)
{
	struct wccl_bootstrap_root *root = NULL;
	pthread_mutex_lock(&g_roots.lock);
	for (size_t i = 0; i < sizeof(g_roots.slot) / sizeof(g_roots.slot[0]);
	     i++) {
		if (g_roots.slot[i].root &&
		    strcmp(g_roots.slot[i].addr, addr) == 0) {
			root = g_roots.slot[i].root;
			g_roots.slot[i].root = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&g_roots.lock);
	return root;
}

int comm_id_make(const char *bind, struct wccl_unique_id *id)
{
	struct comm_id cid;
	int rc = wccl_random_bytes(cid.secret, sizeof(cid.secret));
	if (rc)
		return rc;
	struct wccl_bootstrap_root *root;
	rc = wccl_bootstrap_root_start(bind, cid.secret, &root, cid.root_addr);
	if (rc)
		return rc;
	comm_id_keep_root(root, cid.root_addr);
	comm_id_pack(&cid, id);
	return 0;
}

int wccl_get_unique_id(struct wccl_unique_id *id)
{
	if (!id)
		return WCCL_EINVAL;
	const char *bind = wccl_param_str(WCCL_PARAM_ROOT_ADDR);
	return comm_id_make(*bind ? bind : NULL, id);
}
