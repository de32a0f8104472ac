/* SPDX-License-Identifier: MIT */
/* One client run over every size, or one server session. */
#include <stdio.h>
#include <unistd.h>

#include "perf.h"

int perf_client_run(const struct perf_opts *o)
{
	struct perf_session s;
	int rc = perf_client_open(&s, o);
	if (rc)
		return perf_session_close(&s, rc);
	const char *prov = wccl_context_provider(s.ctx);
	if (o->test == PERF_BW)
		perf_report_bw_header(o, &s);
	else
		perf_report_lat_header(o, &s);
	for (int i = 0; i < o->n_sizes && !rc && !s.check_rc; i++) {
		if (o->test == PERF_BW) {
			struct perf_bw_result r;
			if (!(rc = perf_bw_client(&s, o->sizes[i], &r)) &&
			    !s.check_rc) {
				perf_report_bw(o, &s, &r);
				if (o->sink && o->sink->bw)
					o->sink->bw(o->sink->arg, prov, &r);
			}
		} else {
			struct perf_lat_result r;
			if (!(rc = perf_lat_client(&s, o->sizes[i], &r)) &&
			    !s.check_rc) {
				perf_report_lat(o, &s, &r);
				if (o->sink && o->sink->lat)
					o->sink->lat(o->sink->arg, prov, &r);
			}
		}
	}
	rc = perf_session_close(&s, rc);
	return rc ? rc : s.check_rc;
}

int perf_server_run(const struct perf_opts *o, int addr_fd)
{
	struct perf_session s;
	int rc = perf_server_open(&s, o, addr_fd);
	if (addr_fd >= 0)
		close(addr_fd);
	if (!rc)
		rc = perf_serve(&s);
	rc = perf_session_close(&s, rc);
	return rc ? rc : s.check_rc;
}
