/* SPDX-License-Identifier: MIT */
#include "memif_pair.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *memif_role = "driver";
int memif_server_lingers;

static sigset_t usr1_set(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	return set;
}

void memif_linger(void)
{
	sigset_t usr1 = usr1_set();
	struct timespec tmo = { MEMIF_TMO_MS / 1000, 0 };
	if (sigtimedwait(&usr1, NULL, &tmo) < 0)
		fprintf(stderr, "[server] the client still runs after %d s\n",
			MEMIF_TMO_MS / 1000);
}

void memif_fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

void memif_verify(const uint8_t *p, size_t n, uint64_t seed, const char *what)
{
	uint8_t *want = malloc(n ? n : 1);
	CHECK(want, "out of memory");
	memif_fill(want, n, seed);
	for (size_t i = 0; i < n; i++)
		CHECK(p[i] == want[i], "%s: byte %zu of %zu is %#x, want %#x",
		      what, i, n, p[i], want[i]);
	free(want);
}

double memif_now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct wccl_completion memif_wait1(struct wccl_cq *cq, uint32_t op,
				   const char *what)
{
	struct wccl_completion c;
	int n = wccl_cq_wait(cq, &c, 1, MEMIF_TMO_MS);
	CHECK(n == 1, "%s: waiting: %s", what, wccl_strerror(n));
	CHECK(c.op == op, "%s: got op %u status %s, want op %u", what, c.op,
	      wccl_strerror(c.status), op);
	return c;
}

struct wccl_context *memif_open_ctx(void)
{
	struct wccl_context *ctx;
	int rc = wccl_context_open("dpdk", &ctx);
	if (rc == WCCL_ENODEV) {
		fprintf(stderr, "[%s] SKIP: dpdk EAL/port unavailable here\n",
			memif_role);
		exit(77);
	}
	CHECK(rc == 0, "context_open: %s", wccl_strerror(rc));
	return ctx;
}

void memif_accept(struct memif_conn *c)
{
	c->ctx = memif_open_ctx();
	CHECK(wccl_cq_create(c->ctx, 0, &c->cq) == 0, "cq");
	CHECK(wccl_listen(c->ctx, MEMIF_SERVER_IP ":47100", &c->l) == 0,
	      "listen");
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc;
	while ((rc = wccl_accept(c->l, c->cq, &c->ep)) == WCCL_EAGAIN) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		CHECK(t.tv_sec - t0.tv_sec < 30, "no connection in 30 s");
	}
	CHECK(rc == 0, "accept: %s", wccl_strerror(rc));
	CHECK(wccl_endpoint_wait_established(c->ep, MEMIF_TMO_MS) == 0,
	      "established");
	fprintf(stderr, "[server] accepted %s\n", wccl_endpoint_peer(c->ep));
}

void memif_connect(struct memif_conn *c)
{
	c->ctx = memif_open_ctx();
	CHECK(wccl_cq_create(c->ctx, 0, &c->cq) == 0, "cq");
	c->l = NULL;
	CHECK(wccl_connect(c->ctx, "dpdk:" MEMIF_SERVER_IP ":47100", c->cq,
			   &c->ep) == 0,
	      "connect");
	int rc = wccl_endpoint_wait_established(c->ep, MEMIF_TMO_MS);
	CHECK(rc == 0, "established: %s (%s)", wccl_strerror(rc),
	      wccl_endpoint_last_error(c->ep));
	fprintf(stderr, "[client] connected to %s\n",
		wccl_endpoint_peer(c->ep));
}

static pid_t spawn(const char *self, const char *who, const char *dir)
{
	pid_t pid = fork();
	if (pid)
		return pid;
	char eal[512], sock[300];
	snprintf(sock, sizeof(sock), "%s/memif.sock", dir);
	snprintf(eal, sizeof(eal),
		 "--no-huge -m 128 --no-shconf --no-pci --file-prefix=wccl-%s-%d "
		 "--log-level=warning --vdev=net_memif0,role=%s,socket=%s%s%s",
		 who, (int)getppid(), who, sock,
		 /* One memif descriptor per frame (jumbo, zero copy). */
		 getenv("WCCL_TEST_MEMIF_BSIZE") ? ",bsize=" : "",
		 getenv("WCCL_TEST_MEMIF_BSIZE") ? getenv("WCCL_TEST_MEMIF_BSIZE")
						 : "");
	setenv("WCCL_DPDK_EAL", eal, 1);
	setenv("WCCL_DPDK_IP",
	       strcmp(who, "server") ? MEMIF_CLIENT_IP : MEMIF_SERVER_IP, 1);
	execl(self, self, who, (char *)NULL);
	_exit(1);
}

int memif_pair_run(const char *self)
{
	char dir[] = "/tmp/wccl-dpdk-XXXXXX";
	CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	if (memif_server_lingers) {
		/* Blocked before the fork, so the server cannot die of an
		 * early SIGUSR1 before it waits for one. */
		sigset_t usr1 = usr1_set();
		sigprocmask(SIG_BLOCK, &usr1, NULL);
	}
	pid_t s = spawn(self, "server", dir);
	usleep(300000); /* let the memif server create its socket */
	pid_t c = spawn(self, "client", dir);
	int st_s = 0, st_c = 0, left = 2, rc = 0;
	for (int waited = 0; left && waited < 1500; waited++) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p == s || p == c) {
			*(p == s ? &st_s : &st_c) = st;
			left--;
			int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			if (code && left) { /* one failed: stop the other */
				kill(p == s ? c : s, SIGTERM);
			} else if (p == c && left && memif_server_lingers) {
				kill(s, SIGUSR1); /* the client has gone */
			}
			continue;
		}
		usleep(100000);
	}
	if (left) {
		kill(s, SIGKILL);
		kill(c, SIGKILL);
		fprintf(stderr, "[driver] timeout\n");
		rc = 1;
	}
	int cs = WIFEXITED(st_s) ? WEXITSTATUS(st_s) : 1;
	int cc = WIFEXITED(st_c) ? WEXITSTATUS(st_c) : 1;
	/* A side that died says how (a crash in teardown leaves no CHECK
	 * message of its own). */
	if (WIFSIGNALED(st_s))
		fprintf(stderr, "[driver] server killed by signal %d (%s)\n",
			WTERMSIG(st_s), strsignal(WTERMSIG(st_s)));
	if (WIFSIGNALED(st_c))
		fprintf(stderr, "[driver] client killed by signal %d (%s)\n",
			WTERMSIG(st_c), strsignal(WTERMSIG(st_c)));
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd)) {
	}
	if (!rc && (cs == 77 || cc == 77))
		return 77;
	if (!rc && (cs || cc))
		rc = 1;
	fprintf(stderr, "[driver] server %d client %d -> %s\n", cs, cc,
		rc ? "FAIL" : "PASS");
	return rc;
}

int memif_pair_run_scan(const char *self, const char *env, int n,
			const char *fmt, ...)
{
	char line[512];
	char out[] = "/tmp/wccl-dpdk-result-XXXXXX";
	int fd = mkstemp(out);
	CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	close(fd);
	setenv(env, out, 1);
	int rc = memif_pair_run(self);
	FILE *f = rc ? NULL : fopen(out, "r");
	if (!rc && (!f || !fgets(line, (int)sizeof(line), f))) {
		fprintf(stderr, "[driver] the client left no result in %s\n",
			out);
		rc = 1;
	}
	if (f)
		fclose(f);
	unlink(out);
	if (rc)
		return rc;
	va_list ap;
	va_start(ap, fmt);
	int k = vsscanf(line, fmt, ap);
	va_end(ap);
	CHECK(k == n, "short result (%d of %d fields): %s", k, n, line);
	return 0;
}
