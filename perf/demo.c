/* SPDX-License-Identifier: MIT */
/*
 * wccl-perf demo: for every provider usable here, a short local bandwidth
 * sweep and a 64-byte latency run, then one summary table. About 3 s per
 * provider.
 */
#include <stdio.h>
#include <string.h>

#include "perf.h"

#define DEMO_MAX 8

struct demo_row {
	char prov[16];
	double bw[PERF_MAX_SIZES]; /* MB/s (2^20) per size */
	double mpps[PERF_MAX_SIZES];
	int n_bw;
	struct perf_lat_result lat;
	int has_lat;
	int rc;
};

static const uint64_t demo_sizes[] = {64, 4096, 65536, 1u << 20, 4u << 20};
#define N_DEMO_SIZES (int)(sizeof(demo_sizes) / sizeof(demo_sizes[0]))

static void on_bw(void *arg, const char *prov, const struct perf_bw_result *r)
{
	struct demo_row *row = arg;
	(void)prov;
	row->mpps[row->n_bw] = r->mpps;
	row->bw[row->n_bw++] = r->avg_mibps;
}

static void on_lat(void *arg, const char *prov, const struct perf_lat_result *r)
{
	struct demo_row *row = arg;
	(void)prov;
	row->lat = *r;
	row->has_lat = 1;
}

static void size_name(uint64_t s, char *buf, size_t len)
{
	if (s >= (1u << 20))
		snprintf(buf, len, "%lluM", (unsigned long long)(s >> 20));
	else if (s >= 1024)
		snprintf(buf, len, "%lluK", (unsigned long long)(s >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)s);
}

static int demo_one(const struct wccl_provider_info *pi, struct demo_row *row)
{
	struct perf_sink sink = {.bw = on_bw, .lat = on_lat, .arg = row};
	struct perf_opts o;
	snprintf(row->prov, sizeof(row->prov), "%s", pi->name);

	perf_opts_default(&o, PERF_BW);
	o.local = true;
	o.bind = "127.0.0.1";
	o.accept_timeout_ms = o.timeout_ms;
	o.provider = pi->name;
	o.op = (pi->caps & WCCL_CAP_WRITE) ? PERF_OP_WRITE : PERF_OP_SEND;
	o.duration_ms = 400;
	o.tx_depth = 32;
	o.n_sizes = N_DEMO_SIZES;
	memcpy(o.sizes, demo_sizes, sizeof(demo_sizes));
	o.sink = &sink;
	int rc = perf_local_run(&o);
	if (rc)
		return rc;

	perf_opts_default(&o, PERF_LAT);
	o.local = true;
	o.bind = "127.0.0.1";
	o.accept_timeout_ms = o.timeout_ms;
	o.provider = pi->name;
	o.sizes[0] = 64;
	o.iters = 5000;
	o.sink = &sink;
	return perf_local_run(&o);
}

int perf_demo_main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: wccl-perf demo   (takes no options; "
				"see wccl-perf bw -h)\n");
		return 2;
	}
	struct demo_row rows[DEMO_MAX];
	int n = 0, failed = 0;
	memset(rows, 0, sizeof(rows));
	printf("wccl demo: server and client processes on this host, one "
	       "connection, 0.4 s per size\n\n");
	for (int i = 0; i < wccl_provider_count() && n < DEMO_MAX; i++) {
		struct wccl_provider_info pi;
		if (wccl_provider_info(i, &pi))
			continue;
		if (pi.available) {
			printf("== %s: not available here (%s)\n\n", pi.name,
			       wccl_strerror(pi.available));
			continue;
		}
		printf("== %s: %s\n", pi.name, pi.description);
		fflush(stdout);
		struct demo_row *row = &rows[n++];
		row->rc = demo_one(&pi, row);
		if (row->rc) {
			failed++;
			printf("== %s: FAILED: %s\n", pi.name,
			       wccl_strerror(row->rc));
		}
		printf("\n");
	}
	if (!n) {
		printf("no provider is available on this host\n");
		return 1;
	}
	printf("Summary (bandwidth MB/s, MB = 2^20 bytes; latency = half "
	       "round trip, 64 B)\n");
	printf(" %-9s", "provider");
	for (int j = 0; j < N_DEMO_SIZES; j++) {
		char sz[16], h[24];
		size_name(demo_sizes[j], sz, sizeof(sz));
		snprintf(h, sizeof(h), "bw %s", sz);
		printf(" %11s", h);
	}
	printf(" %12s %12s\n", "lat typ[us]", "lat p99[us]");
	for (int i = 0; i < n; i++) {
		printf(" %-9s", rows[i].prov);
		for (int j = 0; j < N_DEMO_SIZES; j++)
			if (j < rows[i].n_bw)
				printf(" %11.1f", rows[i].bw[j]);
			else
				printf(" %11s", "-");
		if (rows[i].has_lat)
			printf(" %12.2f %12.2f\n", rows[i].lat.typical,
			       rows[i].lat.p99);
		else
			printf(" %12s %12s\n", "-", "-");
	}
	return failed ? 1 : 0;
}
