/* SPDX-License-Identifier: MIT */
/*
 * verbs memory: ibv_reg_mr for wccl_mr_register, the 64-bit key, and the
 * on-the-fly registrations of unregistered user buffers (mr == NULL).
 *
 * Key = rkey | tag << 32. The tag is a checksum of what the owner
 * registered: bit 31 = remote write allowed, bits 16..30 = hash(len),
 * bits 0..15 = hash(rkey, addr). It is not a secret (the HCA still checks
 * every write against the real registration); it lets the initiator tell a
 * forged or corrupted descriptor, a bad bound or a read-only region apart
 * and fail that one write with the exact code, without a round trip and
 * without the RC error that would tear down the QP.
 *
 * Registration cache, for memory from wccl_mem_alloc only. wccl owns that
 * memory's lifetime: wccl_mem_free is the only way it goes, and it bumps a
 * counter (wccl_mem_frees) that the context reads with one atomic load per
 * progress and per lookup; when it moved, every cached entry is checked
 * against the live allocations (wccl_mem_find: base and an id that no later
 * allocation reuses), and those of freed allocations are deregistered (at
 * once if idle, else when their last user lets go). An entry covers the
 * whole allocation with local access only and serves
 *   - operations with mr == NULL whose buffer lies in the allocation, and
 *   - wccl_mr_register of a range in it without WCCL_ACCESS_REMOTE_WRITE:
 *     registering one wccl_mem buffer twice costs one ibv_reg_mr.
 * Remote-writable registrations are always exact: the target's HCA is what
 * bounds a peer's writes to the registered range, so a registration of the
 * whole allocation would let a peer write outside the range it was given.
 *
 * Arbitrary user memory (malloc, stack, mmap) is not cached: without a hook
 * on munmap/free (or ODP), a range freed and mapped again at the same
 * address would keep pointing at the old, still pinned pages, and data
 * would silently go to or come from the wrong memory. Such a buffer with
 * mr == NULL is registered at post and deregistered at completion (a
 * syscall and page pinning per operation); register long-lived buffers with
 * wccl_mr_register, or allocate them with wccl_mem_alloc. Operations up to
 * WCCL_VERBS_INLINE bytes go inline and need no registration at all.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "verbs.h"

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint32_t tag_key(uint32_t rkey, uint64_t addr)
{
	return (uint32_t)(mix64(((uint64_t)rkey << 32) ^ addr) & 0xffffu);
}

static uint32_t tag_len(uint32_t rkey, uint64_t len)
{
	return (uint32_t)(mix64(len * 31u + rkey) & 0x7fffu);
}

uint64_t verbs_key_make(uint32_t rkey, uint64_t addr, uint64_t len,
			uint32_t access)
{
	uint32_t tag = tag_key(rkey, addr) | tag_len(rkey, len) << 16;
	if (access & WCCL_ACCESS_REMOTE_WRITE)
		tag |= 1u << 31;
	return rkey | (uint64_t)tag << 32;
}

int verbs_key_check(const struct wccl_rkey *rk, uint64_t off, uint64_t len,
		    const char **why)
{
	uint32_t rkey = (uint32_t)rk->key, tag = (uint32_t)(rk->key >> 32);
	if ((tag & 0xffffu) != tag_key(rkey, rk->addr)) {
		*why = "the key does not match its descriptor (corrupted, or "
		       "not a verbs key): check the rkey the peer sent";
		return WCCL_EREMOTE_KEY;
	}
	if (!(tag >> 31) || !(rk->access & WCCL_ACCESS_REMOTE_WRITE)) {
		*why = "the region was registered without "
		       "WCCL_ACCESS_REMOTE_WRITE at the target";
		return WCCL_EREMOTE_ACCESS;
	}
	if (((tag >> 16) & 0x7fffu) != tag_len(rkey, rk->len)) {
		*why = "rkey.len differs from the registered length";
		return WCCL_EREMOTE_BOUNDS;
	}
	if (len > rk->len || off > rk->len - len) {
		*why = "offset + length lies outside the registered region";
		return WCCL_EREMOTE_BOUNDS;
	}
	return 0;
}

static int ibv_access(uint32_t access)
{
	/* Remote write needs local write; receives need it too. */
	int a = IBV_ACCESS_LOCAL_WRITE;
	if (access & WCCL_ACCESS_REMOTE_WRITE)
		a |= IBV_ACCESS_REMOTE_WRITE;
	return a;
}

struct ibv_mr *verbs_reg_mr(struct verbs_ctx *ctx, void *addr, size_t len,
			    int access)
{
	struct ibv_mr *mr = ibv_reg_mr(ctx->pd, addr, len, access);
	if (mr)
		ctx->n_reg_mr++;
	return mr;
}

void verbs_dereg_mr(struct verbs_ctx *ctx, struct ibv_mr *mr)
{
	if (mr) {
		ibv_dereg_mr(mr);
		ctx->n_dereg_mr++;
	}
}

#define reg_mr verbs_reg_mr
#define dereg_mr verbs_dereg_mr

static struct verbs_mrc *mcache_get(struct verbs_ctx *ctx, const void *buf,
				    size_t len, bool *err);

int verbs_mr_register(struct wccl_context *c, void *addr, size_t len,
		      uint32_t access, struct wccl_mr **out)
{
	struct verbs_ctx *ctx = VERBS_CTX(c);
	struct verbs_mr *m = calloc(1, sizeof(*m));
	if (!m)
		return WCCL_ENOMEM;
	m->ctx = ctx;
	if (len) {
		if (len > ctx->attr.max_mr_size) {
			free(m);
			return WCCL_EINVAL;
		}
		bool err = false;
		if (!(access & WCCL_ACCESS_REMOTE_WRITE))
			m->shared = mcache_get(ctx, addr, len, &err);
		if (m->shared)
			m->mr = m->shared->mr;
		else if (!err)
			m->mr = reg_mr(ctx, addr, len, ibv_access(access));
		if (!m->mr) {
			int e = errno;
			WCCL_WARN(WCCL_SUB_VERBS,
				  "ibv_reg_mr(%zu bytes) on %s: %s%s", len,
				  ctx->dev_name, strerror(e),
				  e == ENOMEM || e == EPERM
				      ? " (raise ulimit -l: RDMA pins memory)"
				      : "");
			free(m);
			return e == ENOMEM || e == EPERM ? WCCL_ENOMEM
						       : WCCL_EINVAL;
		}
	}
	m->base.key = verbs_key_make(m->mr ? m->mr->rkey : 0,
				     (uint64_t)(uintptr_t)addr, len, access);
	*out = &m->base;
	return 0;
}

void verbs_mr_deregister(struct wccl_mr *mr)
{
	struct verbs_mr *m = VERBS_MR(mr);
	if (m->shared)
		verbs_mrc_put(m->ctx, m->shared);
	else
		dereg_mr(m->ctx, m->mr);
	free(m);
}

/* ---- registration cache (wccl_mem memory) -------------------------------- */

static void mcache_drop(struct verbs_ctx *ctx, struct verbs_mrc *m)
{
	dereg_mr(ctx, m->mr);
	memset(m, 0, sizeof(*m));
}

void verbs_mcache_check(struct verbs_ctx *ctx)
{
	uint64_t frees = wccl_mem_frees();
	if (frees == ctx->mem_frees)
		return;
	ctx->mem_frees = frees;
	for (uint32_t i = 0; i < VERBS_MCACHE; i++) {
		struct verbs_mrc *m = &ctx->mcache[i];
		if (!m->mr || m->stale)
			continue;
		struct wccl_mem_span sp;
		if (!wccl_mem_find((void *)m->lo, m->hi - m->lo, &sp) &&
		    sp.id == m->mem_id && (uintptr_t)sp.base == m->lo)
			continue;
		if (m->refs) {
			WCCL_WARN(WCCL_SUB_VERBS,
				  "wccl_mem allocation at %p freed while %u "
				  "registration(s) or operation(s) still use "
				  "it; deregistered when they end",
				  (void *)m->lo, m->refs);
			m->stale = true;
		} else {
			mcache_drop(ctx, m);
		}
	}
}

/* The cached registration covering [buf, buf + len) if that lies in a
 * wccl_mem allocation (registering the whole allocation on a miss), with a
 * reference taken; NULL if it does not (or *err if registering failed). */
static struct verbs_mrc *mcache_get(struct verbs_ctx *ctx, const void *buf,
				    size_t len, bool *err)
{
	verbs_mcache_check(ctx);
	uintptr_t lo = (uintptr_t)buf, hi = lo + len;
	ctx->mcache_clock++;
	for (uint32_t i = 0; i < VERBS_MCACHE; i++) {
		struct verbs_mrc *m = &ctx->mcache[i];
		if (m->mr && !m->stale && m->lo <= lo && hi <= m->hi) {
			m->refs++;
			m->used = ctx->mcache_clock;
			return m;
		}
	}
	struct wccl_mem_span sp;
	if (wccl_mem_find(buf, len, &sp))
		return NULL;
	/* A free slot, else the least recently used idle one. */
	struct verbs_mrc *slot = NULL;
	for (uint32_t i = 0; i < VERBS_MCACHE; i++) {
		struct verbs_mrc *m = &ctx->mcache[i];
		if (!m->mr) {
			slot = m;
			break;
		}
		if (!m->refs && (!slot || m->used < slot->used))
			slot = m;
	}
	if (!slot)
		return NULL; /* all busy: the caller registers exactly */
	if (slot->mr)
		mcache_drop(ctx, slot);
	slot->mr = reg_mr(ctx, sp.base, sp.len, IBV_ACCESS_LOCAL_WRITE);
	if (!slot->mr) {
		*err = true;
		return NULL;
	}
	slot->lo = (uintptr_t)sp.base;
	slot->hi = slot->lo + sp.len;
	slot->mem_id = sp.id;
	slot->cached = true;
	slot->refs = 1;
	slot->used = ctx->mcache_clock;
	return slot;
}

/* ---- buffers without an mr ------------------------------------------------ */

int verbs_mrc_get(struct verbs_ctx *ctx, const void *buf, size_t len,
		  struct verbs_mrc **out)
{
	bool err = false;
	struct verbs_mrc *m = mcache_get(ctx, buf, len, &err);
	if (m || err) {
		*out = m;
		return m ? 0 : WCCL_ENOMEM;
	}
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)buf & ~(pg - 1);
	uintptr_t hi = ((uintptr_t)buf + len + pg - 1) & ~(pg - 1);
	m = calloc(1, sizeof(*m));
	if (!m)
		return WCCL_ENOMEM;
	m->mr = reg_mr(ctx, (void *)lo, hi - lo, IBV_ACCESS_LOCAL_WRITE);
	if (!m->mr) {
		WCCL_WARN(WCCL_SUB_VERBS,
			  "registering an unregistered %zu-byte buffer on the "
			  "fly failed: %s",
			  (size_t)(hi - lo), strerror(errno));
		free(m);
		return WCCL_ENOMEM;
	}
	m->lo = lo;
	m->hi = hi;
	m->refs = 1;
	*out = m;
	return 0;
}

void verbs_mrc_put(struct verbs_ctx *ctx, struct verbs_mrc *m)
{
	if (!m || --m->refs)
		return;
	if (!m->cached) {
		dereg_mr(ctx, m->mr);
		free(m);
	} else if (m->stale) {
		mcache_drop(ctx, m);
	}
}

void verbs_mrc_clear(struct verbs_ctx *ctx)
{
	for (uint32_t i = 0; i < VERBS_MCACHE; i++)
		if (ctx->mcache[i].mr)
			mcache_drop(ctx, &ctx->mcache[i]);
}
