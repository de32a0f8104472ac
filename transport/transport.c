/* SPDX-License-Identifier: MIT */
/*
 * The public transport calls: argument checks, object accounting and the
 * "provider:detail" address handling, then one call into the provider.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <wccl/transport.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "registry.h"

static void ep_record(struct wccl_endpoint *ep, int level, unsigned subsys,
		      int err, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

int wccl_ep_fail(struct wccl_endpoint *ep, unsigned subsys, int err,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ep_record(ep, WCCL_LOG_WARN, subsys, err, fmt, ap);
	va_end(ap);
	return err;
}

int wccl_ep_closed(struct wccl_endpoint *ep, unsigned subsys, int err,
		   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ep_record(ep, WCCL_LOG_INFO, subsys, err, fmt, ap);
	va_end(ap);
	return err;
}

static void ep_record(struct wccl_endpoint *ep, int level, unsigned subsys,
		      int err, const char *fmt, va_list ap)
{
	char what[WCCL_ERRMSG_MAX];
	vsnprintf(what, sizeof(what), fmt, ap);
	/* Truncation is fine: the message stays readable and bounded. */
	int n = snprintf(ep->last_error, sizeof(ep->last_error),
			 "peer %s: ", ep->peer);
	if (n > 0 && (size_t)n < sizeof(ep->last_error))
		snprintf(ep->last_error + n, sizeof(ep->last_error) - (size_t)n,
			 "%.*s (%s)", WCCL_ERRMSG_MAX / 2, what,
			 wccl_err_name(err));
	if (wccl_log_enabled(level, subsys))
		wccl_log(level, subsys, __FILE__, __LINE__, "%s", ep->last_error);
}

/* ---- providers -------------------------------------------------------- */

int wccl_provider_count(void)
{
	return wccl_registry_count();
}

int wccl_provider_info(int index, struct wccl_provider_info *info)
{
	int probe;
	const struct wccl_provider *p = wccl_registry_get(index, &probe);
	if (!p || !info)
		return WCCL_EINVAL;
	info->name = p->name;
	info->description = p->description;
	info->priority = p->priority;
	info->caps = p->caps;
	info->available = probe;
	return 0;
}

int wccl_provider_describe(const char *name, char *buf, size_t len)
{
	if (!name || !buf)
		return WCCL_EINVAL;
	const struct wccl_provider *p =
	    wccl_registry_find(name, strlen(name), NULL);
	if (!p)
		return WCCL_ENODEV;
	return p->ctrl.describe(buf, len);
}

int wccl_select_address(const char *const *peer_addrs, int n, int *index)
{
	if (!peer_addrs || n < 0 || !index)
		return WCCL_EINVAL;
	const char *force = wccl_param_str(WCCL_PARAM_TRANSPORT);
	for (int i = 0; i < wccl_registry_count(); i++) {
		int probe;
		const struct wccl_provider *p = wccl_registry_get(i, &probe);
		if (probe || (*force && strcmp(force, p->name) != 0))
			continue;
		for (int a = 0; a < n; a++) {
			const char *detail = NULL;
			int ignored;
			if (!peer_addrs[a] ||
			    wccl_registry_find_addr(peer_addrs[a], &detail,
						    &ignored) != p)
				continue;
			if (p->ctrl.can_connect(detail)) {
				*index = a;
				WCCL_TRACE(WCCL_SUB_TRANSPORT,
					   "selected %s for peer",
					   peer_addrs[a]);
				return 0;
			}
		}
	}
	return WCCL_ENODEV;
}

/* ---- context ---------------------------------------------------------- */

int wccl_context_open(const char *name, struct wccl_context **ctx)
{
	if (!ctx)
		return WCCL_EINVAL;
	const struct wccl_provider *p = NULL;
	int probe = WCCL_ENODEV;
	if (name) {
		p = wccl_registry_find(name, strlen(name), &probe);
	} else {
		for (int i = 0; i < wccl_registry_count() && probe; i++)
			p = wccl_registry_get(i, &probe);
	}
	if (!p) {
		WCCL_WARN(WCCL_SUB_INIT, "no provider named '%s' in this build",
			  name ? name : "(any)");
		return WCCL_ENODEV;
	}
	if (probe) {
		WCCL_WARN(WCCL_SUB_INIT, "provider %s cannot run here: %s",
			  p->name, wccl_strerror(probe));
		return probe;
	}
	int rc = p->ctrl.context_open(ctx);
	if (rc)
		return rc;
	(*ctx)->prov = p;
	(*ctx)->n_objects = 0;
	(*ctx)->caller_yields = 0;
	WCCL_INFO(WCCL_SUB_INIT, "opened %s context", p->name);
	return 0;
}

int wccl_context_close(struct wccl_context *ctx)
{
	if (!ctx)
		return WCCL_EINVAL;
	if (ctx->n_objects) {
		WCCL_WARN(WCCL_SUB_INIT,
			  "%s context still has %d open objects; not closed",
			  ctx->prov->name, ctx->n_objects);
		return WCCL_EBUSY;
	}
	ctx->prov->ctrl.context_close(ctx);
	return 0;
}

const char *wccl_context_provider(const struct wccl_context *ctx)
{
	return ctx ? ctx->prov->name : "";
}

/* ---- completion queue ------------------------------------------------- */

int wccl_cq_create(struct wccl_context *ctx, uint32_t depth,
		   struct wccl_cq **cq)
{
	if (!ctx || !cq)
		return WCCL_EINVAL;
	if (!depth)
		depth = (uint32_t)wccl_param_int(WCCL_PARAM_CQ_DEPTH);
	int rc = ctx->prov->ctrl.cq_create(ctx, depth, cq);
	if (rc)
		return rc;
	(*cq)->fast = &ctx->prov->fast;
	(*cq)->ctx = ctx;
	(*cq)->n_endpoints = 0;
	ctx->n_objects++;
	return 0;
}

int wccl_cq_destroy(struct wccl_cq *cq)
{
	if (!cq)
		return WCCL_EINVAL;
	if (cq->n_endpoints)
		return WCCL_EBUSY;
	struct wccl_context *ctx = cq->ctx;
	ctx->prov->ctrl.cq_destroy(cq);
	ctx->n_objects--;
	return 0;
}

int wccl_cq_poll(struct wccl_cq *cq, struct wccl_completion *wc, int max)
{
	return cq->fast->cq_poll(cq, wc, max);
}

int wccl_cq_wait(struct wccl_cq *cq, struct wccl_completion *wc, int max,
		 int timeout_ms)
{
	if (!cq || !wc || max <= 0)
		return WCCL_EINVAL;
	if (timeout_ms < 0)
		timeout_ms = (int)wccl_param_int(WCCL_PARAM_TIMEOUT_MS);
	uint64_t start = wccl_now_ns();
	uint64_t deadline = start + (uint64_t)timeout_ms * 1000000ull;
	uint64_t spin_until =
	    start + (uint64_t)wccl_param_int(WCCL_PARAM_SPIN_US) * 1000ull;
	for (;;) {
		int n = cq->fast->cq_poll(cq, wc, max);
		if (n)
			return n;
		uint64_t now = wccl_now_ns();
		if (now >= deadline)
			return WCCL_ETIMEDOUT;
		if (now < spin_until)
			continue;
		/* Round up so a sub-millisecond remainder still sleeps. */
		int ms = (int)((deadline - now + 999999) / 1000000);
		int rc = cq->ctx->prov->ctrl.cq_sleep(cq, ms);
		if (rc)
			return rc;
	}
}

/* ---- memory regions --------------------------------------------------- */

void wccl_rkey_pack(const struct wccl_rkey *rk,
		    uint8_t out[WCCL_RKEY_PACKED_LEN])
{
	uint64_t f[4] = {rk->key, rk->addr, rk->len,
			 (uint64_t)rk->access | (uint64_t)rk->reserved << 32};
	for (int i = 0; i < 4; i++)
		for (int b = 0; b < 8; b++)
			out[i * 8 + b] = (uint8_t)(f[i] >> (8 * b));
}

void wccl_rkey_unpack(const uint8_t in[WCCL_RKEY_PACKED_LEN],
		      struct wccl_rkey *rk)
{
	uint64_t f[4] = {0};
	for (int i = 0; i < 4; i++)
		for (int b = 0; b < 8; b++)
			f[i] |= (uint64_t)in[i * 8 + b] << (8 * b);
	rk->key = f[0];
	rk->addr = f[1];
	rk->len = f[2];
	rk->access = (uint32_t)f[3];
	rk->reserved = (uint32_t)(f[3] >> 32);
}

int wccl_mr_register(struct wccl_context *ctx, void *addr, size_t len,
		     uint32_t access, struct wccl_mr **mr)
{
	if (!ctx || !mr || (!addr && len) ||
	    (access &
	     ~(uint32_t)(WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE |
			 WCCL_ACCESS_REMOTE_READ)))
		return WCCL_EINVAL;
	int rc = ctx->prov->ctrl.mr_register(ctx, addr, len, access, mr);
	if (rc)
		return rc;
	(*mr)->ctx = ctx;
	(*mr)->addr = addr;
	(*mr)->len = len;
	(*mr)->access = access;
	ctx->n_objects++;
	return 0;
}

int wccl_mr_deregister(struct wccl_mr *mr)
{
	if (!mr)
		return WCCL_EINVAL;
	struct wccl_context *ctx = mr->ctx;
	ctx->prov->ctrl.mr_deregister(mr);
	ctx->n_objects--;
	return 0;
}

int wccl_mr_rkey(const struct wccl_mr *mr, struct wccl_rkey *rk)
{
	if (!mr || !rk)
		return WCCL_EINVAL;
	rk->key = mr->key;
	rk->addr = (uint64_t)(uintptr_t)mr->addr;
	rk->len = mr->len;
	rk->access = mr->access;
	rk->reserved = 0;
	return 0;
}

/* ---- listener / endpoint --------------------------------------------- */

int wccl_listen(struct wccl_context *ctx, const char *bind_addr,
		struct wccl_listener **l)
{
	if (!ctx || !l)
		return WCCL_EINVAL;
	int rc = ctx->prov->ctrl.listen(ctx, bind_addr, l);
	if (rc)
		return rc;
	(*l)->ctx = ctx;
	ctx->n_objects++;
	return 0;
}

int wccl_listener_addr(const struct wccl_listener *l, char *buf, size_t len)
{
	if (!l || !buf)
		return WCCL_EINVAL;
	const char *name = l->ctx->prov->name;
	size_t n = strlen(name) + 1;
	if (len <= n)
		return WCCL_ENOSPC;
	memcpy(buf, name, n - 1);
	buf[n - 1] = ':';
	return l->ctx->prov->ctrl.listener_addr(l, buf + n, len - n);
}

int wccl_listener_close(struct wccl_listener *l)
{
	if (!l)
		return WCCL_EINVAL;
	struct wccl_context *ctx = l->ctx;
	ctx->prov->ctrl.listener_close(l);
	ctx->n_objects--;
	return 0;
}

static void endpoint_adopt(struct wccl_context *ctx, struct wccl_cq *cq,
			   struct wccl_endpoint *ep)
{
	ep->fast = &ctx->prov->fast;
	ep->ctx = ctx;
	ep->cq = cq;
	cq->n_endpoints++;
	ctx->n_objects++;
}

int wccl_accept(struct wccl_listener *l, struct wccl_cq *cq,
		struct wccl_endpoint **ep)
{
	if (!l || !cq || !ep || cq->ctx != l->ctx)
		return WCCL_EINVAL;
	int rc = l->ctx->prov->ctrl.accept(l, cq, ep);
	if (rc)
		return rc;
	endpoint_adopt(l->ctx, cq, *ep);
	return 0;
}

int wccl_connect(struct wccl_context *ctx, const char *addr, struct wccl_cq *cq,
		 struct wccl_endpoint **ep)
{
	if (!ctx || !addr || !cq || !ep || cq->ctx != ctx)
		return WCCL_EINVAL;
	const char *detail = addr;
	int probe;
	const struct wccl_provider *p =
	    wccl_registry_find_addr(addr, &detail, &probe);
	if (p && p != ctx->prov) {
		WCCL_WARN(WCCL_SUB_TRANSPORT,
			  "address '%s' is for provider %s, not this %s "
			  "context",
			  addr, p->name, ctx->prov->name);
		return WCCL_EINVAL;
	}
	int rc = ctx->prov->ctrl.connect(ctx, detail, cq, ep);
	if (rc)
		return rc;
	endpoint_adopt(ctx, cq, *ep);
	return 0;
}

int wccl_endpoint_established(struct wccl_endpoint *ep)
{
	if (!ep)
		return WCCL_EINVAL;
	return ep->ctx->prov->ctrl.established(ep);
}

int wccl_endpoint_wait_established(struct wccl_endpoint *ep, int timeout_ms)
{
	if (!ep)
		return WCCL_EINVAL;
	if (timeout_ms < 0)
		timeout_ms = (int)wccl_param_int(WCCL_PARAM_CONNECT_TIMEOUT_MS);
	uint64_t deadline = wccl_deadline_ns(timeout_ms);
	for (;;) {
		int rc = ep->ctx->prov->ctrl.established(ep);
		if (rc != WCCL_EAGAIN)
			return rc;
		if (wccl_now_ns() >= deadline)
			return wccl_ep_fail(
			    ep, WCCL_SUB_TRANSPORT, WCCL_ETIMEDOUT,
			    "not connected within %d ms", timeout_ms);
		ep->ctx->prov->ctrl.cq_sleep(ep->cq, 1);
	}
}

int wccl_endpoint_close(struct wccl_endpoint *ep)
{
	if (!ep)
		return WCCL_EINVAL;
	struct wccl_context *ctx = ep->ctx;
	struct wccl_cq *cq = ep->cq;
	ctx->prov->ctrl.endpoint_close(ep);
	cq->n_endpoints--;
	ctx->n_objects--;
	return 0;
}

const char *wccl_endpoint_peer(const struct wccl_endpoint *ep)
{
	return ep ? ep->peer : "";
}

const char *wccl_endpoint_last_error(const struct wccl_endpoint *ep)
{
	return ep ? ep->last_error : "";
}

/* ---- data path: one indirect call each -------------------------------- */

/* A buffer named with an mr must lie inside it (overflow-safe), so no
 * provider ever reads or registers outside what the caller registered. */
static inline int outside_mr(const struct wccl_mr *mr, const void *buf,
			     size_t len)
{
	if (!mr)
		return 0;
	uintptr_t b = (uintptr_t)buf, base = (uintptr_t)mr->addr;
	return b < base || len > mr->len || b - base > mr->len - len;
}

int wccl_post_send(struct wccl_endpoint *ep, const void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie)
{
	if (outside_mr(mr, buf, len))
		return WCCL_EINVAL;
	return ep->fast->post_send(ep, buf, len, mr, cookie);
}

int wccl_post_recv(struct wccl_endpoint *ep, void *buf, size_t len,
		   struct wccl_mr *mr, uint64_t cookie)
{
	if (outside_mr(mr, buf, len))
		return WCCL_EINVAL;
	return ep->fast->post_recv(ep, buf, len, mr, cookie);
}

int wccl_post_write(struct wccl_endpoint *ep, const void *buf, size_t len,
		    struct wccl_mr *mr, const struct wccl_rkey *rk,
		    uint64_t offset, uint32_t imm, uint32_t flags,
		    uint64_t cookie)
{
	if (outside_mr(mr, buf, len))
		return WCCL_EINVAL;
	return ep->fast->post_write(ep, buf, len, mr, rk, offset, imm, flags,
				    cookie);
}
