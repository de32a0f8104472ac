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
 * Unregistered buffers: ibv_reg_mr pins the pages, which costs a syscall and
 * roughly 0.1-1 us per 4 KiB page (more under TCG). By default each
 * operation registers its buffer and deregisters it at completion: correct
 * whatever the application does with its memory afterwards. With
 * WCCL_VERBS_MR_CACHE = N > 0 up to N registrations are kept and reused by
 * address range (LRU): fast for reused buffers, but a cached range that the
 * application frees and the allocator maps again at the same address keeps
 * pointing at the old pages (there is no munmap hook): enable it only for
 * applications that keep their buffers, or register them (wccl_mr_register).
 * Operations up to WCCL_VERBS_INLINE bytes go inline and need no
 * registration at all.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
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

int verbs_mr_register(struct wccl_context *c, void *addr, size_t len,
		      uint32_t access, struct wccl_mr **out)
{
	struct verbs_ctx *ctx = VERBS_CTX(c);
	struct verbs_mr *m = calloc(1, sizeof(*m));
	if (!m)
		return WCCL_ENOMEM;
	if (len) {
		if (len > ctx->attr.max_mr_size) {
			free(m);
			return WCCL_EINVAL;
		}
		m->mr = ibv_reg_mr(ctx->pd, addr, len, ibv_access(access));
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
	if (m->mr)
		ibv_dereg_mr(m->mr);
	free(m);
}

/* ---- unregistered buffers ---------------------------------------------- */

static struct verbs_mrc *mrc_new(struct verbs_ctx *ctx, uintptr_t lo,
				 uintptr_t hi)
{
	struct verbs_mrc *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->mr = ibv_reg_mr(ctx->pd, (void *)lo, hi - lo,
			   IBV_ACCESS_LOCAL_WRITE);
	if (!m->mr) {
		WCCL_WARN(WCCL_SUB_VERBS,
			  "registering an unregistered %zu-byte buffer on the "
			  "fly failed: %s",
			  (size_t)(hi - lo), strerror(errno));
		free(m);
		return NULL;
	}
	m->lo = lo;
	m->hi = hi;
	m->refs = 1;
	return m;
}

int verbs_mrc_get(struct verbs_ctx *ctx, const void *buf, size_t len,
		  struct verbs_mrc **out)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)buf & ~(pg - 1);
	uintptr_t hi = ((uintptr_t)buf + len + pg - 1) & ~(pg - 1);
	ctx->mrc_clock++;
	for (uint32_t i = 0; i < ctx->n_mrc; i++) {
		struct verbs_mrc *m = ctx->mrc[i].mr ? &ctx->mrc[i] : NULL;
		if (m && m->lo <= lo && hi <= m->hi) {
			m->refs++;
			m->used = ctx->mrc_clock;
			*out = m;
			return 0;
		}
	}
	if (ctx->mr_cache_max) {
		/* A free slot, else the least recently used idle one. */
		struct verbs_mrc *victim = NULL;
		for (uint32_t i = 0; i < ctx->mr_cache_max; i++) {
			struct verbs_mrc *m = &ctx->mrc[i];
			if (!m->mr) {
				victim = m;
				break;
			}
			if (!m->refs && (!victim || m->used < victim->used))
				victim = m;
		}
		if (victim) {
			if (victim->mr)
				ibv_dereg_mr(victim->mr);
			victim->mr = NULL;
			struct verbs_mrc *m = mrc_new(ctx, lo, hi);
			if (!m)
				return WCCL_ENOMEM;
			*victim = *m;
			free(m);
			victim->used = ctx->mrc_clock;
			if ((uint32_t)(victim - ctx->mrc) >= ctx->n_mrc)
				ctx->n_mrc = (uint32_t)(victim - ctx->mrc) + 1;
			*out = victim;
			return 0;
		}
	}
	*out = mrc_new(ctx, lo, hi);
	return *out ? 0 : WCCL_ENOMEM;
}

void verbs_mrc_put(struct verbs_ctx *ctx, struct verbs_mrc *m)
{
	if (!m)
		return;
	m->refs--;
	bool cached = ctx->mrc && m >= ctx->mrc && m < ctx->mrc + ctx->n_mrc;
	if (!cached && !m->refs) {
		ibv_dereg_mr(m->mr);
		free(m);
	}
}

void verbs_mrc_clear(struct verbs_ctx *ctx)
{
	for (uint32_t i = 0; i < ctx->n_mrc; i++)
		if (ctx->mrc[i].mr)
			ibv_dereg_mr(ctx->mrc[i].mr);
	free(ctx->mrc);
	ctx->mrc = NULL;
	ctx->n_mrc = 0;
}
