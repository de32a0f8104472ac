/* SPDX-License-Identifier: MIT */
/*
 * Link costs per class (same host, same region, other region) for the
 * algorithm choice: built-in defaults, or a topology file
 * (WCCL_TOPO_FILE) with lines "<host|region|cross> <alpha_us> <GB/s>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"

static const struct wccl_link_cost defaults[WCCL_LINK_CLASSES] = {
	[WCCL_LINK_HOST] = { .alpha_us = 2, .gbytes_per_s = 8 },
	[WCCL_LINK_REGION] = { .alpha_us = 25, .gbytes_per_s = 1.2 },
	/* A long-haul link: 20 ms one way, 10 Gb/s shared. */
	[WCCL_LINK_CROSS] = { .alpha_us = 20000, .gbytes_per_s = 1.25 },
};

static int load_file(struct wccl_comm *c, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		WCCL_WARN(WCCL_SUB_TUNER, "WCCL_TOPO_FILE=%s: cannot open", path);
		return WCCL_ENOENT;
	}
	char line[256];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char cls[32];
		double alpha, gbs;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		if (sscanf(line, " %31s", cls) != 1)
			continue;
		int k = !strcmp(cls, "host")	 ? WCCL_LINK_HOST
			: !strcmp(cls, "region") ? WCCL_LINK_REGION
			: !strcmp(cls, "cross")	 ? WCCL_LINK_CROSS
						 : -1;
		if (k < 0 || sscanf(line, " %*s %lf %lf", &alpha, &gbs) != 2 ||
		    alpha < 0 || gbs <= 0) {
			WCCL_WARN(WCCL_SUB_TUNER,
				  "%s:%d: expected '<host|region|cross> "
				  "<alpha_us> <GB/s>'",
				  path, lineno);
			rc = WCCL_EINVAL;
			continue;
		}
		c->topo.link[k].alpha_us = alpha;
		c->topo.link[k].gbytes_per_s = gbs;
	}
	fclose(f);
	return rc;
}

int comm_load_topology(struct wccl_comm *c)
{
	c->topo.nranks = c->nranks;
	c->topo.region_of = c->region_of;
	c->topo.host_of = c->host_of;
	memcpy(c->topo.link, defaults, sizeof(defaults));
	const char *path = wccl_param_str(WCCL_PARAM_TOPO_FILE);
	if (*path) {
		c->topo_from_file = 1;
		return load_file(c, path);
	}
	return 0;
}

/* ---- latency measured at init ---------------------------------------- */

#define PING_ROUNDS 4
#define PINGS_PER_CLASS 2
#define PING_COOKIE (3ull << 30)

static int link_of(const struct wccl_comm *c, int a, int b)
{
	if (c->region_of[a] != c->region_of[b])
		return WCCL_LINK_CROSS;
	return c->host_of[a] == c->host_of[b] ? WCCL_LINK_HOST
					      : WCCL_LINK_REGION;
}

/* The peers above @rank it pings: up to two per link class. Every rank can
 * work out every other rank's list, so responders know what to expect. */
static int ping_targets(const struct wccl_comm *c, int rank, int *out)
{
	int n = 0, per[WCCL_LINK_CLASSES] = { 0 };
	for (int j = rank + 1; j < c->nranks; j++) {
		int k = link_of(c, rank, j);
		if (per[k] < PINGS_PER_CLASS) {
			per[k]++;
			out[n++] = j;
		}
	}
	return n;
}

static int pings_from(const struct wccl_comm *c, int src)
{
	int t[WCCL_LINK_CLASSES * PINGS_PER_CLASS];
	int n = ping_targets(c, src, t);
	for (int i = 0; i < n; i++)
		if (t[i] == c->rank)
			return 1;
	return 0;
}

/* Poll every CQ once: answer pings, note pongs. */
static int ping_poll(struct wccl_comm *c, uint64_t *ping_in, int *pongs_got,
		     int *answered)
{
	for (int i = 0; i < c->nctx; i++) {
		struct wccl_completion wc[16];
		int n = wccl_cq_poll(c->ctx[i].cq, wc, 16);
		for (int k = 0; k < n; k++) {
			if (wc[k].status)
				return wc[k].status;
			uint64_t who = wc[k].cookie - PING_COOKIE;
			if (wc[k].op == WCCL_OP_RECV && who >= (uint64_t)c->nranks) {
				(*pongs_got)++;
			} else if (wc[k].op == WCCL_OP_RECV) {
				/* A ping from rank @who: reply at once. */
				int rc = wccl_post_send(c->peers[who].ep,
							&ping_in[who], 8, NULL,
							PING_COOKIE + 2ull * c->nranks);
				if (rc)
					return rc;
				(*answered)++;
			}
		}
	}
	return 0;
}

int comm_measure_links(struct wccl_comm *c)
{
	int targets[WCCL_LINK_CLASSES * PINGS_PER_CLASS];
	int nt = ping_targets(c, c->rank, targets);
	int expect = 0;
	for (int i = 0; i < c->rank; i++)
		expect += pings_from(c, i) * PING_ROUNDS;
	uint64_t *ping_in = calloc((size_t)c->nranks, sizeof(uint64_t));
	double best[WCCL_LINK_CLASSES];
	for (int k = 0; k < WCCL_LINK_CLASSES; k++)
		best[k] = 0;
	uint64_t ping = 0, pong = 0;
	int rc = ping_in ? 0 : WCCL_ENOMEM, answered = 0, posted = 0;
	uint64_t deadline = wccl_deadline_ns(c->timeout_ms);
	/* Receives for every ping we will answer, posted up front. */
	for (int i = 0; !rc && i < c->rank; i++)
		for (int r = 0; r < PING_ROUNDS * pings_from(c, i); r++) {
			rc = wccl_post_recv(c->peers[i].ep, &ping_in[i], 8,
					    NULL, PING_COOKIE + (uint64_t)i);
			posted++;
		}
	for (int t = 0; !rc && t < nt; t++) {
		struct wccl_endpoint *ep = c->peers[targets[t]].ep;
		double min_us = 0;
		for (int r = 0; !rc && r < PING_ROUNDS; r++) {
			int got = 0;
			uint64_t t0 = wccl_now_ns();
			rc = wccl_post_recv(ep, &pong, 8, NULL,
					    PING_COOKIE + (uint64_t)c->nranks);
			if (!rc)
				rc = wccl_post_send(ep, &ping, 8, NULL,
						    PING_COOKIE +
							    2ull * c->nranks);
			while (!rc && !got && wccl_now_ns() < deadline)
				rc = ping_poll(c, ping_in, &got, &answered);
			if (!rc && !got)
				rc = WCCL_ETIMEDOUT;
			double us = (double)(wccl_now_ns() - t0) / 1e3;
			if (!rc && (min_us == 0 || us < min_us))
				min_us = us;
		}
		int k = link_of(c, c->rank, targets[t]);
		if (!rc && (best[k] == 0 || min_us < best[k]))
			best[k] = min_us;
	}
	/* Keep answering until every ping aimed at us has its pong. */
	int dummy = 0;
	while (!rc && answered < expect && wccl_now_ns() < deadline)
		rc = ping_poll(c, ping_in, &dummy, &answered);
	if (!rc && answered < expect)
		rc = WCCL_ETIMEDOUT;
	/* Pongs we sent complete too; drain them with a short grace. */
	uint64_t until = wccl_deadline_ns(50);
	while (!rc && wccl_now_ns() < until)
		rc = ping_poll(c, ping_in, &dummy, &answered);
	free(ping_in);
	if (rc)
		return comm_fail(c, rc, -1, "measuring link latency: %s",
				 wccl_strerror(rc));
	/* Everyone must decide with the same numbers: all-gather them. */
	double *all = calloc((size_t)c->nranks, sizeof(best));
	if (!all)
		return WCCL_ENOMEM;
	rc = wccl_bootstrap_allgather(c->bs, best, sizeof(best), all,
				      c->timeout_ms);
	for (int k = 0; !rc && k < WCCL_LINK_CLASSES; k++) {
		double sum = 0;
		int m = 0;
		for (int r = 0; r < c->nranks; r++)
			if (all[r * WCCL_LINK_CLASSES + k] > 0) {
				sum += all[r * WCCL_LINK_CLASSES + k];
				m++;
			}
		if (!m || c->topo_from_file)
			continue;
		/* alpha = one-way latency = half the mean round trip. */
		c->topo.link[k].alpha_us = sum / m / 2;
		WCCL_INFO(WCCL_SUB_TUNER,
			  "rank %d: %s links measured %.1f us one way (%d ranks)",
			  c->rank, k == WCCL_LINK_HOST     ? "host"
				   : k == WCCL_LINK_REGION ? "region"
							   : "cross",
			  c->topo.link[k].alpha_us, m);
	}
	free(all);
	return rc;
}
