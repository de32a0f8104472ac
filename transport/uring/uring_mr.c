/* SPDX-License-Identifier: MIT */
/*
 * Memory regions: a slot in the context's table, named by a key that
 * carries a generation so a stale or foreign key finds nothing, and an
 * optional io_uring fixed buffer so SEND_ZC skips page pinning per send.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "uring.h"
#include "transport/mr_key.h"

static void uring_mr_fix(struct uring_ctx *ctx, struct uring_mr *mr)
{
	if (!ctx->fixed_ok || !mr->base.addr || !mr->base.len ||
	    mr->base.len > URING_CHUNK_MAX)
		return;
	for (unsigned i = 0; i < URING_FIXED_SLOTS; i++) {
		if (ctx->fixed_used[i])
			continue;
		struct iovec iov = { mr->base.addr, mr->base.len };
		__u64 tag = 0;
		int rc = io_uring_register_buffers_update_tag(&ctx->ring, i,
							      &iov, &tag, 1);
		if (rc < 0) {
			WCCL_INFO(WCCL_SUB_URING,
				  "mr %p+%zu not a fixed buffer: %s",
				  mr->base.addr, mr->base.len, strerror(-rc));
			return;
		}
		ctx->fixed_used[i] = true;
		mr->fixed = (int)i;
		return;
	}
}

int uring_mr_register(struct wccl_context *c, void *addr, size_t len,
		      uint32_t access, struct wccl_mr **out)
{
	struct uring_ctx *ctx = URING_CTX(c);
	int free_slot = mr_key_free_slot((void *const *)ctx->mrs, URING_MR_SLOTS);
	if (free_slot < 0)
		return WCCL_ENOSPC;
	uint32_t slot = (uint32_t)free_slot;
	struct uring_mr *mr = calloc(1, sizeof(*mr));
	if (!mr)
		return WCCL_ENOMEM;
	mr->base.ctx = c;
	mr->base.addr = addr;
	mr->base.len = len;
	mr->base.access = access;
	mr->slot = slot;
	mr->fixed = -1;
	mr->base.key = mr_key_make(&ctx->mr_gen, slot);
	uring_mr_fix(ctx, mr);
	ctx->mrs[slot] = mr;
	*out = &mr->base;
	return 0;
}

void uring_mr_deregister(struct wccl_mr *m)
{
	struct uring_mr *mr = URING_MR(m);
	struct uring_ctx *ctx = URING_CTX(m->ctx);
	/* No peer's write lands in it once we return: the app may free the
	 * memory. */
	for (struct uring_ep *ep = ctx->all; ep; ep = ep->next_all)
		uring_rx_forget_mr(ep, mr);
	if (mr->fixed >= 0) {
		struct iovec iov = { NULL, 0 };
		__u64 tag = 0;
		io_uring_register_buffers_update_tag(
			&ctx->ring, (unsigned)mr->fixed, &iov, &tag, 1);
		ctx->fixed_used[mr->fixed] = false;
	}
	ctx->mrs[mr->slot] = NULL;
	free(mr);
}
