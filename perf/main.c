/* SPDX-License-Identifier: MIT */
/* wccl-perf bw|lat|demo|<collective>: pick the mode, parse, run. Exit 0 ok, 1 failed,
 * 2 bad usage. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "perf.h"

static int run_test(enum perf_test test, int argc, char **argv)
{
	struct perf_opts o;
	int rc = perf_opts_parse(&o, test, argc, argv);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (o.local)
		rc = perf_local_run(&o);
	else if (o.host)
		rc = perf_client_run(&o);
	else
		rc = perf_server_run(&o, -1);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		perf_usage();
		return 2;
	}
	const char *mode = argv[1];
	if (!strcmp(mode, "bw"))
		return run_test(PERF_BW, argc - 1, argv + 1);
	if (!strcmp(mode, "lat"))
		return run_test(PERF_LAT, argc - 1, argv + 1);
	if (!strcmp(mode, "demo"))
		return perf_demo_main(argc - 1, argv + 1);
	static const char *const colls[] = { "allreduce", "allgather",
					     "reduce_scatter", "broadcast",
					     "reduce", "alltoall" };
	for (size_t i = 0; i < sizeof(colls) / sizeof(colls[0]); i++)
		if (!strcmp(mode, colls[i]))
			return perf_coll_main(argc - 1, argv + 1);
	if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
		perf_usage();
		return 0;
	}
	fprintf(stderr,
		"wccl-perf: unknown mode '%s' (bw, lat, demo, allreduce, "
		"allgather, reduce_scatter, broadcast, reduce, alltoall)\n",
		mode);
	return 2;
}
