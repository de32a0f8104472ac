/* SPDX-License-Identifier: MIT */
/*
 * Link costs per class (same host, same region, other region) for the
 * algorithm choice: built-in defaults, or a topology file
 * (WCCL_TOPO_FILE) with lines "<host|region|cross> <alpha_us> <GB/s>".
 */
#include <stdio.h>
#include <string.h>

#include "comm_internal.h"
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
	if (*path)
		return load_file(c, path);
	return 0;
}
