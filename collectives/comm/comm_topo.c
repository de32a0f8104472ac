/* SPDX-License-Identifier: MIT */
/*
 * Link costs per class (same host, same region, other region) for the
 * algorithm choice: built-in defaults, measured at init, or a topology
 * file (WCCL_TOPO_FILE) with lines "<host|region|cross> <alpha_us> <GB/s>".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "transport/provider.h"

static const struct wccl_link_cost defaults[WCCL_LINK_CLASSES] = {
	[WCCL_LINK_HOST] = { .alpha_us = 2, .gbytes_per_s = 8 },
	[WCCL_LINK_REGION] = { .alpha_us = 25, .gbytes_per_s = 1.2 },
	/* A long-haul link: 20 ms one way, 10 Gb/s shared. */
	[WCCL_LINK_CROSS] = { .alpha_us = 20000, .gbytes_per_s = 1.25 },
};

/*
 * The file's figures must lie in these bounds: wider than any real link,
 * narrow enough that the cost model's times and the pacing rate (bytes/s,
 * a 64-bit integer) stay finite and exact. docs/collectives.md lists them.
 */
#define TOPO_ALPHA_MAX_US 1e7 /* 10 s one way */
#define TOPO_GBS_MIN 1e-6     /* 1 kB/s */
#define TOPO_GBS_MAX 1e4      /* 10 TB/s */
#define TOPO_LINE_MAX 254     /* characters, without the newline */

/* @tok as a finite number in [@lo, @hi] with nothing after it: strtod
 * alone takes "nan", "inf" and 1e300. */
static int parse_num(const char *tok, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(tok, &end);
	if (end == tok || *end || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int link_class(const char *name)
{
	for (int k = 0; k < WCCL_LINK_CLASSES; k++)
		if (!strcmp(name, comm_link_class_name(k)))
			return k;
	return -1;
}

/* One line, comment stripped: 0, or the error text in @err. */
static int parse_line(char *line, struct wccl_link_cost *link,
		      uint32_t *declared, int *first_line, int lineno,
		      char *err, size_t errlen)
{
	static const char ws[] = " \t\r\v\f";
	char *save = NULL, *tok[4];
	int nt = 0;
	for (char *p = strtok_r(line, ws, &save); p && nt < 4;
	     p = strtok_r(NULL, ws, &save))
		tok[nt++] = p;
	if (!nt)
		return 0;
	int k = link_class(tok[0]);
	double alpha, gbs;
	if (k < 0)
		snprintf(err, errlen,
			 "unknown link class '%.32s' (host, region or cross)",
			 tok[0]);
	else if (nt < 3)
		snprintf(err, errlen,
			 "expected '<host|region|cross> <alpha_us> <GB/s>'");
	else if (nt > 3)
		snprintf(err, errlen, "unexpected '%.32s' after the GB/s",
			 tok[3]);
	else if (parse_num(tok[1], 0, TOPO_ALPHA_MAX_US, &alpha))
		snprintf(err, errlen,
			 "alpha_us '%.32s' is not a number in 0..%.0f", tok[1],
			 TOPO_ALPHA_MAX_US);
	else if (parse_num(tok[2], TOPO_GBS_MIN, TOPO_GBS_MAX, &gbs))
		snprintf(err, errlen,
			 "GB/s '%.32s' is not a number in %g..%g", tok[2],
			 TOPO_GBS_MIN, TOPO_GBS_MAX);
	else if (*declared & (1u << k))
		snprintf(err, errlen, "second '%s' line (the first is line %d)",
			 tok[0], first_line[k]);
	else {
		link[k].alpha_us = alpha;
		link[k].gbytes_per_s = gbs;
		*declared |= 1u << k;
		first_line[k] = lineno;
		return 0;
	}
	return WCCL_EINVAL;
}

int comm_topo_parse(const char *path, struct wccl_link_cost *link,
		    uint32_t *declared, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
			 strerror(errno));
		return WCCL_ENOENT;
	}
	/* Parsed into a copy: a bad file changes nothing. */
	struct wccl_link_cost got[WCCL_LINK_CLASSES];
	memcpy(got, link, sizeof(got));
	char line[TOPO_LINE_MAX + 2], what[160] = "";
	int lineno = 0, rc = 0, first_line[WCCL_LINK_CLASSES] = { 0 };
	uint32_t decl = 0;
	while (!rc && fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n') {
			line[--len] = '\0';
		} else if (len == sizeof(line) - 1) {
			/* The rest would be read as a line of its own. */
			snprintf(what, sizeof(what),
				 "line longer than %d characters",
				 TOPO_LINE_MAX);
			rc = WCCL_EINVAL;
			break;
		} else if (!feof(f)) {
			snprintf(what, sizeof(what), "NUL byte in the line");
			rc = WCCL_EINVAL;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		rc = parse_line(line, got, &decl, first_line, lineno, what,
				sizeof(what));
	}
	if (!rc && ferror(f)) {
		snprintf(what, sizeof(what), "read error");
		rc = WCCL_EIO;
	}
	fclose(f);
	if (rc) {
		snprintf(err, errlen, "%s:%d: %s", path, lineno, what);
		return rc;
	}
	memcpy(link, got, sizeof(got));
	*declared = decl;
	return 0;
}

int comm_load_topology(struct wccl_comm *c)
{
	c->topo.nranks = c->nranks;
	c->topo.region_of = c->region_of;
	c->topo.host_of = c->host_of;
	memcpy(c->topo.link, defaults, sizeof(defaults));
	struct comm_topo_decl *d = &c->topo_decl;
	memset(d, 0, sizeof(*d));
	const char *path = wccl_param_str(WCCL_PARAM_TOPO_FILE);
	if (*path) {
		/* A bad file fails init after the info exchange, which takes
		 * the reason to every rank: failing here, before it, would
		 * leave the others a bare abort, or none if they join late. */
		d->error = comm_topo_parse(path, c->topo.link, &d->declared,
					   d->why, sizeof(d->why));
		d->from_file = 1;
		c->topo_from_file = !d->error;
	}
	for (int k = 0; k < WCCL_LINK_CLASSES; k++) {
		c->link_declared[k] = (d->declared >> k) & 1;
		d->link[k] = c->topo.link[k];
	}
	return 0;
}

static int same_topo(const struct comm_topo_decl *a,
		     const struct comm_topo_decl *b)
{
	return a->from_file == b->from_file && a->declared == b->declared &&
	       !memcmp(a->link, b->link, sizeof(a->link));
}

/* "cross 15000us 0.60GB/s (file)": the first class where @a and @b
 * differ, as @a has it. */
static void describe_diff(const struct comm_topo_decl *a,
			  const struct comm_topo_decl *b, char *buf,
			  size_t len)
{
	int k = 0;
	while (k < WCCL_LINK_CLASSES - 1 &&
	       ((a->declared ^ b->declared) >> k & 1) == 0 &&
	       !memcmp(&a->link[k], &b->link[k], sizeof(a->link[k])))
		k++;
	snprintf(buf, len, "%s %gus %gGB/s (%s)", comm_link_class_name(k),
		 a->link[k].alpha_us, a->link[k].gbytes_per_s,
		 a->declared >> k & 1 ? "file"
		 : a->from_file	      ? "default, file without it"
				      : "default, no file");
}

/*
 * Ranks deciding with different link costs pick different algorithms and
 * hang or mismatch: the all-gathered figures must be the same everywhere.
 * The reference is the figures most ranks have (the lowest rank's on a
 * tie), so the error names the odd ones out; every rank reaches the same
 * verdict from the same data.
 */
int comm_topo_agree(struct wccl_comm *c)
{
	const struct comm_peer *p = c->peers;
	for (int b = 0; b < c->nranks; b++)
		if (p[b].info.topo.error)
			return comm_fail(c, p[b].info.topo.error, b,
					 "rank %d: WCCL_TOPO_FILE %s", b,
					 p[b].info.topo.why);
	int r = 1;
	while (r < c->nranks && same_topo(&p[0].info.topo, &p[r].info.topo))
		r++;
	if (r == c->nranks)
		return 0;
	int ref = 0, ref_n = 0;
	for (int a = 0; a < c->nranks; a++) {
		int n = 0;
		for (int b = 0; b < c->nranks; b++)
			n += same_topo(&p[a].info.topo, &p[b].info.topo);
		if (n > ref_n) {
			ref = a;
			ref_n = n;
		}
	}
	const struct comm_topo_decl *want = &p[ref].info.topo;
	char odd[64] = "";
	int first = -1, nodd = 0;
	size_t o = 0;
	for (r = 0; r < c->nranks; r++) {
		if (same_topo(want, &p[r].info.topo))
			continue;
		if (first < 0)
			first = r;
		if (nodd++ < 4 && o < sizeof(odd))
			o += (size_t)snprintf(odd + o, sizeof(odd) - o,
					      "%s%d", nodd > 1 ? "," : "", r);
	}
	if (nodd > 4 && o < sizeof(odd))
		snprintf(odd + o, sizeof(odd) - o, ",+%d", nodd - 4);
	char theirs[80], ours[80];
	describe_diff(&p[first].info.topo, want, theirs, sizeof(theirs));
	describe_diff(want, &p[first].info.topo, ours, sizeof(ours));
	return comm_fail(c, WCCL_EMISMATCH, first,
			 "link costs differ: rank%s %s %s %s, rank %d and %d "
			 "other(s) have %s; give every rank the same "
			 "WCCL_TOPO_FILE",
			 nodd > 1 ? "s" : "", odd, nodd > 1 ? "have" : "has",
			 theirs, ref, ref_n - 1, ours);
}

/* ---- latency and bandwidth measured at init -------------------------- */

/*
 * Each rank pings up to two peers per link class above it, PING_ROUNDS
 * times (8 bytes each way; the best round trip gives alpha), then sends
 * one WCCL_TOPO_PROBE_BYTES message answered by 8 bytes (its extra time
 * over the round trip gives the bandwidth). Cross-region links are not
 * probed for bandwidth: on a long-haul path one message measures TCP's
 * slow start, not the link, so their bandwidth comes from the defaults or
 * the topology file.
 */
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

static int probes_bw(const struct wccl_comm *c, int a, int b, size_t bytes)
{
	return bytes && link_of(c, a, b) != WCCL_LINK_CROSS;
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
				/* A ping (or probe) from rank @who: reply at
				 * once. */
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

/* Send @len bytes from @buf to @ep and wait for the 8-byte answer; the
 * round trip in microseconds, or a negative error. */
static double ping_once(struct wccl_comm *c, struct wccl_endpoint *ep,
			const void *buf, size_t len, uint64_t *pong,
			uint64_t *ping_in, int *answered, uint64_t deadline)
{
	int got = 0;
	uint64_t t0 = wccl_now_ns();
	int rc = wccl_post_recv(ep, pong, 8, NULL,
				PING_COOKIE + (uint64_t)c->nranks);
	if (!rc)
		rc = wccl_post_send(ep, buf, len, NULL,
				    PING_COOKIE + 2ull * c->nranks);
	while (!rc && !got && wccl_now_ns() < deadline)
		rc = ping_poll(c, ping_in, &got, answered);
	if (!rc && !got)
		rc = WCCL_ETIMEDOUT;
	return rc ? rc : (double)(wccl_now_ns() - t0) / 1e3;
}

const char *comm_link_class_name(int k)
{
	return k == WCCL_LINK_HOST ? "host" : k == WCCL_LINK_REGION ? "region"
								  : "cross";
}

/* Everyone must decide with the same numbers: all-gather each rank's
 * best round trip and bandwidth per class, and average them. */
static int agree_on_links(struct wccl_comm *c, const double *mine)
{
	const int per = 2 * WCCL_LINK_CLASSES;
	double *all = calloc((size_t)c->nranks, per * sizeof(double));
	if (!all)
		return WCCL_ENOMEM;
	int rc = wccl_bootstrap_allgather(c->bs, mine, per * sizeof(double),
					  all, c->timeout_ms);
	for (int k = 0; !rc && k < WCCL_LINK_CLASSES; k++) {
		double rtt = 0, bw = 0;
		int m = 0, mb = 0;
		for (int r = 0; r < c->nranks; r++) {
			const double *v = all + (size_t)r * per;
			if (v[k] > 0) {
				rtt += v[k];
				m++;
			}
			if (v[WCCL_LINK_CLASSES + k] > 0) {
				bw += v[WCCL_LINK_CLASSES + k];
				mb++;
			}
		}
		if (!m || c->topo_from_file)
			continue;
		/* alpha = one-way latency = half the mean round trip. */
		c->topo.link[k].alpha_us = rtt / m / 2;
		c->link_measured[k] = COMM_LINK_ALPHA;
		if (mb) {
			c->topo.link[k].gbytes_per_s = bw / mb;
			c->link_measured[k] |= COMM_LINK_BW;
		}
		WCCL_INFO(WCCL_SUB_TUNER,
			  "rank %d: %s links measured %.1f us one way, %.2f GB/s"
			  "%s (%d ranks)",
			  c->rank, comm_link_class_name(k), c->topo.link[k].alpha_us,
			  c->topo.link[k].gbytes_per_s,
			  mb ? "" : " (bandwidth not measured: default)", m);
	}
	free(all);
	return rc;
}

int comm_measure_links(struct wccl_comm *c)
{
	int targets[WCCL_LINK_CLASSES * PINGS_PER_CLASS];
	int nt = ping_targets(c, c->rank, targets);
	int64_t pb = wccl_param_int(WCCL_PARAM_TOPO_PROBE_BYTES);
	size_t probe = pb > 8 ? (size_t)pb : 0;
	int expect = 0;
	for (int i = 0; i < c->rank; i++)
		expect += pings_from(c, i) *
			  (PING_ROUNDS + probes_bw(c, i, c->rank, probe));
	uint64_t *ping_in = calloc((size_t)c->nranks, sizeof(uint64_t));
	/* Probes go out of the first half and arrive in the second (every
	 * pinger's into the same one: the bytes are never read). */
	uint8_t *probe_buf = probe ? calloc(2, probe) : NULL;
	/* best[k]: round trip per class; best[CLASSES + k]: GB/s per class */
	double best[2 * WCCL_LINK_CLASSES] = { 0 };
	uint64_t ping = 0, pong = 0;
	int rc = ping_in && (probe_buf || !probe) ? 0 : WCCL_ENOMEM;
	int answered = 0;
	uint64_t deadline = wccl_deadline_ns(c->timeout_ms);
	/* Receives for every ping we will answer, posted up front, in the
	 * order the pinger sends: PING_ROUNDS small ones, then the probe. */
	for (int i = 0; !rc && i < c->rank; i++) {
		if (!pings_from(c, i))
			continue;
		for (int r = 0; !rc && r < PING_ROUNDS; r++)
			rc = wccl_post_recv(c->peers[i].ep, &ping_in[i], 8,
					    NULL, PING_COOKIE + (uint64_t)i);
		if (!rc && probes_bw(c, i, c->rank, probe))
			rc = wccl_post_recv(c->peers[i].ep, probe_buf + probe,
					    probe, NULL,
					    PING_COOKIE + (uint64_t)i);
	}
	for (int t = 0; !rc && t < nt; t++) {
		struct wccl_endpoint *ep = c->peers[targets[t]].ep;
		int k = link_of(c, c->rank, targets[t]);
		double min_us = 0;
		for (int r = 0; !rc && r < PING_ROUNDS; r++) {
			double us = ping_once(c, ep, &ping, 8, &pong, ping_in,
					      &answered, deadline);
			if (us < 0)
				rc = (int)us;
			else if (min_us == 0 || us < min_us)
				min_us = us;
		}
		if (!rc && (best[k] == 0 || min_us < best[k]))
			best[k] = min_us;
		if (rc || !probes_bw(c, c->rank, targets[t], probe))
			continue;
		double us = ping_once(c, ep, probe_buf, probe, &pong, ping_in,
				      &answered, deadline);
		if (us < 0)
			rc = (int)us;
		else if (us > min_us)
			/* bytes per microsecond / 1e3 = GB/s */
			best[WCCL_LINK_CLASSES + k] =
			    fmax(best[WCCL_LINK_CLASSES + k],
				 (double)probe / (us - min_us) / 1e3);
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
	free(probe_buf);
	if (rc)
		return comm_fail(c, rc, -1, "measuring links: %s",
				 wccl_strerror(rc));
	return agree_on_links(c, best);
}

/*
 * Kernel pacing on the connections to other regions, at the declared
 * bandwidth split over the stripes: a long-haul path with a shallow
 * bottleneck queue loses whole bursts, and paced flows keep the queue (and
 * so the jitter) small. Only a declared figure is used: a default or a
 * loopback measurement says nothing about the real path, and pacing below
 * it would only slow the transfer down. (tests/collectives/test_pace.c)
 */
void comm_pace_cross_links(struct wccl_comm *c)
{
	double gbs = c->topo.link[WCCL_LINK_CROSS].gbytes_per_s;
	/* A file without a cross line leaves the default in place: that
	 * is no declaration either. */
	if (!c->link_declared[WCCL_LINK_CROSS] || gbs <= 0)
		return;
	for (int r = 0; r < c->nranks; r++) {
		struct comm_peer *p = &c->peers[r];
		if (r == c->rank || p->region_id == c->peers[c->rank].region_id)
			continue;
		uint64_t rate = (uint64_t)(gbs * 1e9 / p->nstripes);
		for (int k = 0; k < p->nstripes; k++) {
			int rc = wccl_endpoint_set_attr(
				p->eps[k], WCCL_EP_ATTR_MAX_PACING_RATE, rate);
			if (rc && rc != WCCL_EOPNOTSUPP)
				WCCL_WARN(WCCL_SUB_TUNER,
					  "rank %d: pacing to rank %d: %s",
					  c->rank, r, wccl_strerror(rc));
		}
		WCCL_INFO(WCCL_SUB_TUNER,
			  "rank %d: %d connection(s) to rank %d (region '%s') "
			  "paced at %.1f MB/s each",
			  c->rank, p->nstripes, r, p->info.region, rate / 1e6);
	}
}
