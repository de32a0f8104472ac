/* SPDX-License-Identifier: MIT */
/*
 * The providers compiled in, sorted by priority, each loaded once with the
 * slots it leaves NULL filled by stubs, so callers never test for NULL.
 */
#include <pthread.h>
#include <string.h>

#include "core/log.h"
#include "registry.h"

static const struct wccl_provider *const compiled_in[] = {
#ifdef WCCL_HAVE_SHM
    &wccl_provider_shm,
#endif
#ifdef WCCL_HAVE_VERBS
    &wccl_provider_verbs,
#endif
#ifdef WCCL_HAVE_DPDK
    &wccl_provider_dpdk,
#endif
#ifdef WCCL_HAVE_URING
    &wccl_provider_uring,
#endif
};

#define N_PROVIDERS (sizeof(compiled_in) / sizeof(compiled_in[0]))

static struct wccl_provider loaded[N_PROVIDERS ? N_PROVIDERS : 1];
static int probe_result[N_PROVIDERS ? N_PROVIDERS : 1];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static int stub_probe(void)
{
	return WCCL_EOPNOTSUPP;
}
static int stub_can_connect(const char *a)
{
	(void)a;
	return 0;
}
static int stub_describe(char *buf, size_t len)
{
	if (len)
		buf[0] = '\0';
	return 0;
}
static int stub_cq_sleep(struct wccl_cq *cq, int ms)
{
	(void)cq;
	(void)ms;
	return 0;
}
static int stub_mr_register(struct wccl_context *c, void *a, size_t l,
			    uint32_t acc, struct wccl_mr **mr)
{
	(void)c;
	(void)a;
	(void)l;
	(void)acc;
	(void)mr;
	return WCCL_EOPNOTSUPP;
}
static int stub_listen(struct wccl_context *c, const char *b,
		       struct wccl_listener **l)
{
	(void)c;
	(void)b;
	(void)l;
	return WCCL_EOPNOTSUPP;
}
static int stub_connect(struct wccl_context *c, const char *a,
			struct wccl_cq *cq, struct wccl_endpoint **ep)
{
	(void)c;
	(void)a;
	(void)cq;
	(void)ep;
	return WCCL_EOPNOTSUPP;
}
static int stub_post_send(struct wccl_endpoint *ep, const void *b, size_t l,
			  struct wccl_mr *mr, uint64_t c)
{
	(void)ep;
	(void)b;
	(void)l;
	(void)mr;
	(void)c;
	return WCCL_EOPNOTSUPP;
}
static int stub_post_recv(struct wccl_endpoint *ep, void *b, size_t l,
			  struct wccl_mr *mr, uint64_t c)
{
	(void)ep;
	(void)b;
	(void)l;
	(void)mr;
	(void)c;
	return WCCL_EOPNOTSUPP;
}
static int stub_post_write(struct wccl_endpoint *ep, const void *b, size_t l,
			   struct wccl_mr *mr, const struct wccl_rkey *rk,
			   uint64_t off, uint32_t imm, uint32_t fl, uint64_t c)
{
	(void)ep;
	(void)b;
	(void)l;
	(void)mr;
	(void)rk;
	(void)off;
	(void)imm;
	(void)fl;
	(void)c;
	return WCCL_EOPNOTSUPP;
}

static int stub_endpoint_set_attr(struct wccl_endpoint *ep, int attr,
				  uint64_t value)
{
	(void)ep;
	(void)attr;
	(void)value;
	return WCCL_EOPNOTSUPP;
}

static int stub_map_remote(struct wccl_endpoint *ep,
			   const struct wccl_rkey *rk, unsigned flags,
			   void **addr)
{
	(void)ep;
	(void)rk;
	(void)flags;
	(void)addr;
	return WCCL_EOPNOTSUPP;
}

static int stub_endpoint_get_attr(struct wccl_endpoint *ep, int attr,
				  uint64_t *value)
{
	(void)ep;
	(void)attr;
	(void)value;
	return WCCL_EOPNOTSUPP;
}

/* Only the optional slots get stubs; a provider must supply the object
 * constructors/destructors it needs (checked by the registry test). */
static void fill_stubs(struct wccl_provider *p)
{
	struct wccl_ctrl_ops *c = &p->ctrl;
	struct wccl_fast_ops *f = &p->fast;

	if (!c->probe)
		c->probe = stub_probe;
	if (!c->can_connect)
		c->can_connect = stub_can_connect;
	if (!c->describe)
		c->describe = stub_describe;
	if (!c->cq_sleep)
		c->cq_sleep = stub_cq_sleep;
	if (!c->mr_register)
		c->mr_register = stub_mr_register;
	if (!c->listen)
		c->listen = stub_listen;
	if (!c->connect)
		c->connect = stub_connect;
	if (!c->endpoint_set_attr)
		c->endpoint_set_attr = stub_endpoint_set_attr;
	if (!c->endpoint_get_attr)
		c->endpoint_get_attr = stub_endpoint_get_attr;
	if (!c->map_remote)
		c->map_remote = stub_map_remote;
	if (!f->post_send)
		f->post_send = stub_post_send;
	if (!f->post_recv)
		f->post_recv = stub_post_recv;
	if (!f->post_write)
		f->post_write = stub_post_write;
}

static void load_all(void)
{
	/* Insertion sort by priority, highest first. */
	for (size_t i = 0; i < N_PROVIDERS; i++) {
		size_t j = i;
		for (;
		     j > 0 && loaded[j - 1].priority < compiled_in[i]->priority;
		     j--)
			loaded[j] = loaded[j - 1];
		loaded[j] = *compiled_in[i];
	}
	for (size_t i = 0; i < N_PROVIDERS; i++) {
		fill_stubs(&loaded[i]);
		probe_result[i] = loaded[i].ctrl.probe();
		if (probe_result[i])
			WCCL_INFO(WCCL_SUB_INIT, "provider %s unavailable: %s",
				  loaded[i].name,
				  wccl_strerror(probe_result[i]));
		else
			WCCL_INFO(WCCL_SUB_INIT, "provider %s available",
				  loaded[i].name);
	}
}

int wccl_registry_count(void)
{
	return (int)N_PROVIDERS;
}

const struct wccl_provider *wccl_registry_get(int index, int *probe)
{
	pthread_once(&load_once, load_all);
	if (index < 0 || index >= (int)N_PROVIDERS)
		return NULL;
	if (probe)
		*probe = probe_result[index];
	return &loaded[index];
}

const struct wccl_provider *wccl_registry_find(const char *name, size_t n,
					       int *probe)
{
	for (int i = 0; i < wccl_registry_count(); i++) {
		const struct wccl_provider *p = wccl_registry_get(i, probe);
		if (strlen(p->name) == n && strncmp(p->name, name, n) == 0)
			return p;
	}
	return NULL;
}

const struct wccl_provider *wccl_registry_find_addr(const char *addr,
						    const char **detail,
						    int *probe)
{
	const char *colon = strchr(addr, ':');
	if (!colon)
		return NULL;
	const struct wccl_provider *p =
	    wccl_registry_find(addr, (size_t)(colon - addr), probe);
	if (p)
		*detail = colon + 1;
	return p;
}

const char *wccl_addr_detail(const char *addr)
{
	const char *detail = addr;
	int probe;
	wccl_registry_find_addr(addr, &detail, &probe);
	return detail;
}
