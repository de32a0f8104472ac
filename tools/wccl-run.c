/* SPDX-License-Identifier: MIT */
/*
 * wccl-run: start N ranks of a program on this host, the way torchrun
 * would: RANK, WORLD_SIZE, LOCAL_RANK, WCCL_ROOT_ADDR (a free loopback
 * port) and a fresh random WCCL_AUTH_KEY in each rank's environment, and
 * optionally WCCL_REGION per rank to emulate a multi-region job.
 *
 *   wccl-run -n 4 [--regions east,east,west,west | --regions 2]
 *            [--timeout SECONDS] [--] program [args...]
 *
 * Exit status: 0 if every rank exited 0, else the first failing rank's
 * status (128 + signal for a killed rank). If a rank fails, the others get
 * a grace period to report the error themselves, then are killed. The
 * whole run is killed at the timeout (default 600 s).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/sock.h"

#define MAX_RANKS 256
#define GRACE_MS 10000

static void usage(FILE *f)
{
	fprintf(f, "usage: wccl-run -n N [--regions LIST|K] [--timeout S] "
		   "[--] program [args...]\n"
		   "  -n N            ranks to start (1..%d)\n"
		   "  --regions LIST  region of each rank, comma-separated "
		   "(cycled if shorter)\n"
		   "  --regions K     K regions, ranks split into K contiguous "
		   "groups\n"
		   "  --timeout S     kill everything after S seconds "
		   "(default 600)\n",
		   MAX_RANKS);
}

static int free_port(void)
{
	int fd = wccl_sock_listen("127.0.0.1:0", 1);
	if (fd < 0)
		return -1;
	char addr[64];
	wccl_sock_local_addr(fd, addr, sizeof(addr));
	close(fd);
	return atoi(strrchr(addr, ':') + 1);
}

/* Region name of @rank from a comma list or a group count. */
static void region_of(const char *spec, int rank, int n, char *buf,
		      size_t len)
{
	char *end;
	long k = strtol(spec, &end, 10);
	if (*end == '\0' && k > 0) {
		long per = (n + k - 1) / k;
		snprintf(buf, len, "region%ld", rank / per);
		return;
	}
	int count = 1;
	for (const char *p = spec; *p; p++)
		count += *p == ',';
	int want = rank % count;
	const char *p = spec;
	for (int i = 0; i < want; i++)
		p = strchr(p, ',') + 1;
	size_t l = strcspn(p, ",");
	snprintf(buf, len, "%.*s", (int)(l < len ? l : len - 1), p);
}

int main(int argc, char **argv)
{
	int n = 0, timeout_s = 600, i;
	const char *regions = NULL;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			n = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--regions") && i + 1 < argc) {
			regions = argv[++i];
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			timeout_s = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "wccl-run: unknown option '%s'\n",
				argv[i]);
			usage(stderr);
			return 2;
		} else {
			break;
		}
	}
	if (n < 1 || n > MAX_RANKS || i >= argc || timeout_s <= 0) {
		usage(stderr);
		return 2;
	}
	int port = free_port();
	uint8_t raw[16];
	char key[33], root[64];
	if (port < 0 || wccl_random_bytes(raw, sizeof(raw))) {
		fprintf(stderr, "wccl-run: no free port or no randomness\n");
		return 1;
	}
	for (int b = 0; b < 16; b++)
		snprintf(key + 2 * b, 3, "%02x", raw[b]);
	snprintf(root, sizeof(root), "127.0.0.1:%d", port);

	pid_t pids[MAX_RANKS];
	for (int r = 0; r < n; r++) {
		pids[r] = fork();
		if (pids[r] < 0) {
			fprintf(stderr, "wccl-run: fork: %s\n", strerror(errno));
			for (int k = 0; k < r; k++)
				kill(pids[k], SIGKILL);
			return 1;
		}
		if (pids[r] == 0) {
			char b[64];
			snprintf(b, sizeof(b), "%d", r);
			setenv("RANK", b, 1);
			setenv("LOCAL_RANK", b, 1);
			snprintf(b, sizeof(b), "%d", n);
			setenv("WORLD_SIZE", b, 1);
			setenv("LOCAL_WORLD_SIZE", b, 1);
			setenv("WCCL_ROOT_ADDR", root, 1);
			setenv("WCCL_AUTH_KEY", key, 1);
			if (regions) {
				region_of(regions, r, n, b, sizeof(b));
				setenv("WCCL_REGION", b, 1);
			}
			execvp(argv[i], argv + i);
			fprintf(stderr, "wccl-run: rank %d: cannot run %s: %s\n",
				r, argv[i], strerror(errno));
			_exit(127);
		}
	}

	uint64_t deadline = wccl_deadline_ns((int64_t)timeout_s * 1000);
	uint64_t kill_at = 0;
	int left = n, status = 0, first_bad = -1;
	while (left) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p > 0) {
			int r = 0;
			while (r < n && pids[r] != p)
				r++;
			if (r == n)
				continue;
			pids[r] = 0;
			left--;
			int code = WIFEXITED(st) ? WEXITSTATUS(st)
						 : 128 + WTERMSIG(st);
			if (code && first_bad < 0) {
				first_bad = r;
				status = code;
				fprintf(stderr,
					"wccl-run: rank %d exited with %s %d\n",
					r, WIFEXITED(st) ? "status" : "signal",
					WIFEXITED(st) ? code : WTERMSIG(st));
				kill_at = wccl_deadline_ns(GRACE_MS);
			}
			continue;
		}
		uint64_t now = wccl_now_ns();
		if (now > deadline || (kill_at && now > kill_at)) {
			if (now > deadline) {
				fprintf(stderr,
					"wccl-run: timeout after %d s; killing "
					"%d rank(s)\n",
					timeout_s, left);
				if (!status)
					status = 124;
			}
			for (int r = 0; r < n; r++)
				if (pids[r])
					kill(pids[r], SIGKILL);
			deadline = kill_at = UINT64_MAX;
		}
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return status;
}
