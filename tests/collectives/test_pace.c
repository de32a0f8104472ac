/* SPDX-License-Identifier: MIT */
/*
 * Cross-region links are paced at the declared bandwidth: test_pace
 *
 * Two ranks in two emulated regions (WCCL_REGION) on loopback over uring,
 * WCCL_CROSS_STREAMS=4. Three launches:
 *
 *   paced      WCCL_TOPO_FILE declares "cross ... 0.04" (40 MB/s): every
 *              connection to the other rank must report 40 MB/s / 4 through
 *              wccl_endpoint_get_attr(MAX_PACING_RATE), and a 32 MiB fp32
 *              allreduce must be correct and take at least 0.7 x the bytes
 *              each direction of the link carries (>= 32 MiB for any
 *              2-rank allreduce) / 40 MB/s. Pacing can only slow a transfer
 *              down, so this is a lower bound; unpaced loopback takes ms.
 *   no-file    no topology file: every connection reports 0 (no cap).
 *   no-cross   a topology file that declares host and region links only:
 *              no cross bandwidth declared, so no cap either.
 *
 * The endpoints are reached through the communicator's internals (tests
 * link the static library). Exit 0 = pass, 1 = fail, 77 = no uring.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wccl/coll.h>
#include <wccl/wccl.h>

#include "collectives/comm/comm.h"
#include "core/clock.h"
#include "core/params.h"
#include "free_port.h"
#include "transport/provider.h"

#define STREAMS 4
#define CROSS_GBS 0.04 /* 40 MB/s */
#define COUNT ((32u << 20) / 4) /* fp32 elements: 32 MiB */

static int g_rank;

/* One line per failure, written at once (two ranks share stderr). */
static int fail(const char *fn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(const char *fn, const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "rank %d: FAIL %s: ", g_rank, fn);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	fputs(line, stderr);
	return 1;
}
#define FAIL(...) fail(__func__, __VA_ARGS__)

/* Every connection to the other rank reports @want bytes/s (0 = none). */
static int check_rates(struct wccl_comm *c, uint64_t want)
{
	int bad = 0;
	const struct comm_peer *p = &c->peers[1 - c->rank];
	if (p->nstripes != STREAMS)
		bad |= FAIL("%d connections to the other region, want %d",
			    p->nstripes, STREAMS);
	for (int k = 0; k < p->nstripes; k++) {
		uint64_t got = ~0ull;
		int rc = wccl_endpoint_get_attr(
			p->eps[k], WCCL_EP_ATTR_MAX_PACING_RATE, &got);
		/* The library computes the share in floating point: allow
		 * a byte per second of rounding. */
		if (rc)
			bad |= FAIL("connection %d: get_attr: %s", k,
				    wccl_err_name(rc));
		else if (got + 1 < want || got > want + 1)
			bad |= FAIL("connection %d paced at %llu B/s, want %llu",
				    k, (unsigned long long)got,
				    (unsigned long long)want);
	}
	return bad;
}

/* A 32 MiB allreduce, checked; its time in seconds through @secs. */
static int timed_allreduce(struct wccl_comm *c, double *secs)
{
	float *in = malloc((size_t)COUNT * 4), *out = malloc((size_t)COUNT * 4);
	if (!in || !out)
		return FAIL("out of memory");
	for (uint32_t i = 0; i < COUNT; i++)
		in[i] = (float)((g_rank * 7 + i * 3) % 5);
	memset(out, 0xA5, (size_t)COUNT * 4);
	int bad = 0, rc = wccl_barrier(c);
	uint64_t t0 = wccl_now_ns();
	if (!rc)
		rc = wccl_allreduce(in, out, COUNT, WCCL_FP32, WCCL_SUM, c);
	*secs = (double)(wccl_now_ns() - t0) / 1e9;
	if (rc)
		bad |= FAIL("allreduce: %s", wccl_err_name(rc));
	for (uint32_t i = 0; !rc && i < COUNT; i++) {
		float want = (float)((i * 3) % 5 + (7 + i * 3) % 5);
		if (out[i] != want) {
			bad |= FAIL("element %u: got %g want %g", i, out[i],
				    want);
			break;
		}
	}
	free(in);
	free(out);
	return bad;
}

enum mode { PACED, NO_FILE, NO_CROSS };
static const char *const mode_name[] = { "paced", "no-file", "no-cross" };

static int rank_main(enum mode m)
{
	struct wccl_comm *c;
	int rc = wccl_comm_init_env(&c);
	if (rc) {
		fprintf(stderr, "rank %d: init: %s\n", g_rank, wccl_err_name(rc));
		return 1;
	}
	uint64_t want = 0;
	if (m == PACED)
		want = (uint64_t)(CROSS_GBS * 1e9 / STREAMS);
	int bad = check_rates(c, want);
	double secs = 0;
	bad |= timed_allreduce(c, &secs);
	double bytes = (double)COUNT * 4;
	double floor_s = 0.7 * bytes / (CROSS_GBS * 1e9);
	if (m == PACED && secs < floor_s)
		bad |= FAIL("32 MiB allreduce took %.3f s, pacing at %.0f MB/s "
			    "allows no less than %.3f s",
			    secs, CROSS_GBS * 1e3, floor_s);
	if (g_rank == 0)
		printf("%-8s: 32 MiB allreduce %.3f s (%.1f MB/s per "
		       "direction), %llu B/s per connection\n",
		       mode_name[m], secs, bytes / secs / 1e6,
		       (unsigned long long)want);
	fflush(stdout);
	rc = wccl_comm_destroy(c);
	if (rc)
		bad |= FAIL("destroy: %s", wccl_err_name(rc));
	return bad;
}

static int launch(enum mode m, const char *topo_file)
{
	char root[64], key[32];
	snprintf(root, sizeof(root), "127.0.0.1:%d", test_free_port());
	snprintf(key, sizeof(key), "test-pace-%d", getpid());
	pid_t pids[2];
	for (int r = 0; r < 2; r++) {
		pids[r] = fork();
		if (pids[r] == 0) {
			char b[16];
			g_rank = r;
			snprintf(b, sizeof(b), "%d", r);
			setenv("RANK", b, 1);
			setenv("WORLD_SIZE", "2", 1);
			setenv("WCCL_ROOT_ADDR", root, 1);
			setenv("WCCL_AUTH_KEY", key, 1);
			snprintf(b, sizeof(b), "region-%d", r);
			setenv("WCCL_REGION", b, 1);
			snprintf(b, sizeof(b), "%d", STREAMS);
			setenv("WCCL_CROSS_STREAMS", b, 1);
			setenv("WCCL_TRANSPORT", "uring", 1);
			if (topo_file)
				setenv("WCCL_TOPO_FILE", topo_file, 1);
			else
				unsetenv("WCCL_TOPO_FILE");
			wccl_param_reload();
			_exit(rank_main(m));
		}
	}
	int bad = 0;
	uint64_t deadline = wccl_deadline_ns(60000);
	for (int r = 0; r < 2; r++) {
		int st;
		while (waitpid(pids[r], &st, WNOHANG) == 0) {
			if (wccl_now_ns() > deadline) {
				fprintf(stderr, "rank %d hung; killing\n", r);
				kill(pids[0], SIGKILL);
				kill(pids[1], SIGKILL);
			}
			usleep(1000);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	}
	printf("%-8s: %s\n", mode_name[m], bad ? "FAIL" : "ok");
	fflush(stdout);
	return bad;
}

static int write_file(char *path, const char *text)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -1;
	close(fd);
	return rc;
}

int main(void)
{
	int avail = 0;
	for (int i = 0; i < wccl_provider_count(); i++) {
		struct wccl_provider_info info;
		wccl_provider_info(i, &info);
		if (!strcmp(info.name, "uring") && !info.available)
			avail = 1;
	}
	if (!avail) {
		printf("uring not available here: skip\n");
		return 77;
	}
	setenv("WCCL_TIMEOUT_MS", "30000", 0);
	char paced[] = "/tmp/wccl-pace-XXXXXX";
	char no_cross[] = "/tmp/wccl-pace-XXXXXX";
	char text[128];
	snprintf(text, sizeof(text), "# test_pace\ncross 20000 %g\n", CROSS_GBS);
	if (write_file(paced, text) ||
	    write_file(no_cross, "host 2 8\nregion 25 1.2\n")) {
		perror("topology file");
		return 1;
	}
	int bad = launch(PACED, paced);
	bad |= launch(NO_FILE, NULL);
	bad |= launch(NO_CROSS, no_cross);
	unlink(paced);
	unlink(no_cross);
	return bad;
}
