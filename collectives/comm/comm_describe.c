/* SPDX-License-Identifier: MIT */
/* What a communicator chose, as text for tools and logs. */
#include <stdio.h>
#include <string.h>

#include "coll_plan.h"
#include "comm_internal.h"

int wccl_comm_describe(struct wccl_comm *c, char *buf, size_t len)
{
	if (!c || !buf || !len)
		return WCCL_EINVAL;
	const struct comm_peer *me = &c->peers[c->rank];
	size_t o = (size_t)snprintf(buf, len, "rank %d host %s region '%s':",
				    c->rank, me->info.hostname,
				    me->info.region);
	for (int r = 0; r < c->nranks && o < len; r++) {
		if (r == c->rank)
			continue;
		const struct comm_peer *p = &c->peers[r];
		const char *prov =
			p->ep ? wccl_context_provider(c->ctx[p->ctx_index].ctx)
			      : "-";
		o += (size_t)snprintf(buf + o, len - o, " %d:%s", r, prov);
	}
	/* The link costs the algorithm choice uses, and where they came
	 * from: "host 2.1us(measured) 4.20GB/s(default)". */
	for (int k = 0; k < WCCL_LINK_CLASSES && o < len; k++) {
		const struct wccl_link_cost *l = &c->topo.link[k];
		const char *src = c->topo_from_file ? "file" : "default";
		unsigned m = c->link_measured[k];
		o += (size_t)snprintf(
			buf + o, len - o, "%s %s %.1fus(%s) %.2fGB/s(%s)",
			k ? ";" : " links:", comm_link_class_name(k),
			l->alpha_us, m & COMM_LINK_ALPHA ? "measured" : src,
			l->gbytes_per_s, m & COMM_LINK_BW ? "measured" : src);
	}
	if (c->direct_done || c->direct_fallbacks)
		o += (size_t)snprintf(buf + o, o < len ? len - o : 0,
				      "; direct allreduces %llu, fell back %llu",
				      (unsigned long long)c->direct_done,
				      (unsigned long long)c->direct_fallbacks);
	return 0;
}

int wccl_comm_explain_allreduce(struct wccl_comm *c, size_t count, int dtype,
				char *algo, size_t algo_len, char *why,
				size_t why_len)
{
	if (!c || !algo || !why || dtype < 0 || dtype >= WCCL_DTYPE_COUNT)
		return WCCL_EINVAL;
	struct coll_shape s = { .kind = COLL_ALLREDUCE,
				.dtype = (uint32_t)dtype,
				.op = WCCL_SUM,
				.count = count };
	int rc = 0;
	struct coll_plan *p = coll_plan_get(c, &s, &rc);
	if (!p)
		return rc;
	snprintf(algo, algo_len, "%s",
		 p->ll ? "ll" : p->direct ? "direct" : wccl_algo_name(p->algo));
	if (p->direct)
		snprintf(why, why_len,
			 "all ranks on one host: straight between wccl_mem "
			 "buffers (else %s: %s)",
			 wccl_algo_name(p->algo), p->why);
	else
		snprintf(why, why_len, "%s", p->why);
	return 0;
}
