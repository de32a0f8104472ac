/* SPDX-License-Identifier: MIT */
/*
 * Communicator behaviour beyond correct results, with real processes:
 * dead and absent ranks are named within the timeout, mismatched calls
 * fail everywhere, split, abort, non-blocking requests, bad arguments.
 * Each case forks its ranks (env-mode init, rank 0 runs the root).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <wccl/wccl.h>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/comm/comm.h"
#include "core/clock.h"
#include "core/host.h"
#include "core/params.h"
#include "core/sock.h"
#include "free_port.h"
#include "transport/uring/uring_wire.h"

#define TIMEOUT_MS 3000

typedef int (*rank_fn)(struct wccl_comm *c, int rank, int n);

static int say(int rank, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int say(int rank, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "  rank %d: ", rank);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	return 1;
}

/* How the ranks learn who they are: as wccl-run sets it up, or as the
 * launchers users have do (no WCCL_* variables at all). */
enum launcher { WCCL_RUN, TORCHRUN, OPEN_MPI, SLURM };

static void set_int(const char *name, int v)
{
	char b[16];
	snprintf(b, sizeof(b), "%d", v);
	setenv(name, b, 1);
}

static void launcher_env(enum launcher l, int r, int n, int port)
{
	char b[64];
	switch (l) {
	case WCCL_RUN:
		set_int("RANK", r);
		set_int("WORLD_SIZE", n);
		snprintf(b, sizeof(b), "127.0.0.1:%d", port);
		setenv("WCCL_ROOT_ADDR", b, 1);
		setenv("WCCL_AUTH_KEY", "test-comm", 1);
		break;
	case TORCHRUN: /* wccl's root goes on MASTER_PORT + 1 */
		set_int("RANK", r);
		set_int("LOCAL_RANK", r);
		set_int("WORLD_SIZE", n);
		set_int("LOCAL_WORLD_SIZE", n);
		setenv("MASTER_ADDR", "127.0.0.1", 1);
		set_int("MASTER_PORT", port - 1);
		setenv("TORCHELASTIC_RUN_ID", "test-run", 1);
		break;
	case OPEN_MPI: /* one node: the root address is derived */
		set_int("OMPI_COMM_WORLD_RANK", r);
		set_int("OMPI_COMM_WORLD_SIZE", n);
		set_int("OMPI_COMM_WORLD_LOCAL_SIZE", n);
		snprintf(b, sizeof(b), "%d.0;tcp://127.0.0.1:%d", getppid(),
			 port);
		setenv("OMPI_MCA_orte_hnp_uri", b, 1);
		break;
	case SLURM:
		set_int("SLURM_PROCID", r);
		set_int("SLURM_NTASKS", n);
		setenv("SLURM_NNODES", "1", 1);
		set_int("SLURM_JOB_ID", getppid() * 10 + port);
		break;
	}
}

static enum launcher g_launcher = WCCL_RUN;
static const char *g_transport; /* WCCL_TRANSPORT for the ranks, or none */

/*
 * A stranger on the last rank's data listener during set-up: the ranks
 * are in regions of their own (TCP, striped), the last one listens on a
 * known port (WCCL_COMM_TEST_LISTEN_PORT), and rank 1 starts only once
 * the stranger is in the listener's queue, ahead of every real peer.
 */
enum stranger { NO_STRANGER, STRANGER_CLOSES, STRANGER_SILENT,
		STRANGER_GARBAGE, STRANGER_IMPOSTOR };
static enum stranger g_stranger;
static int g_stranger_port;

/* Per rank: its WCCL_TOPO_FILE (NULL: none). */
static const char *g_topo_file[16];
/* Init must fail on every rank, with g_init_err (0: any error), and each
 * rank's log must say g_init_says. */
static int g_init_must_fail, g_init_err;
static const char *g_init_says;

/* Init failed with @rc as the case wants, and the log says so. */
static int init_failed_as_wanted(int r, int rc, const char *log)
{
	if (!rc)
		return say(r, "init succeeded");
	if (g_init_err && rc != g_init_err)
		return say(r, "init: %s, want %s", wccl_err_name(rc),
			   wccl_err_name(g_init_err));
	char text[8192];
	FILE *f = fopen(log, "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	if (f)
		fclose(f);
	text[n] = '\0';
	unlink(log);
	if (!strstr(text, g_init_says))
		return say(r, "log lacks '%s':\n%s", g_init_says, text);
	return 0;
}

/* A rank whose init found its port taken: the free port was picked and
 * let go before the root bound it, and a test running alongside may
 * take it in between (seen in CI: rank 0 EADDRINUSE). Not the code's
 * fault: run_ranks tries again on another port. */
#define EXIT_PORT_TAKEN 9

static pid_t fork_rank(int r, int n, int port, rank_fn fn)
{
	pid_t pid = fork();
	if (pid)
		return pid;
	char b[16];
	launcher_env(g_launcher, r, n, port);
	snprintf(b, sizeof(b), "%d", TIMEOUT_MS);
	setenv("WCCL_TIMEOUT_MS", b, 1);
	setenv("WCCL_DEBUG", "NONE", 1);
	if (g_transport)
		setenv("WCCL_TRANSPORT", g_transport, 1);
	if (g_stranger) {
		/* Its drop warnings show what the stranger did. */
		setenv("WCCL_DEBUG", "WARN", 1);
		snprintf(b, sizeof(b), "site%d", r);
		setenv("WCCL_REGION", b, 1);
		if (r == n - 1)
			set_int("WCCL_COMM_TEST_LISTEN_PORT", g_stranger_port);
	}
	if (g_topo_file[r])
		setenv("WCCL_TOPO_FILE", g_topo_file[r], 1);
	else
		unsetenv("WCCL_TOPO_FILE");
	char log[64];
	snprintf(log, sizeof(log), "/tmp/wccl-test-comm-%d.log", (int)getpid());
	if (g_init_must_fail) {
		setenv("WCCL_DEBUG", "WARN", 1);
		setenv("WCCL_DEBUG_FILE", log, 1);
	}
	wccl_param_reload();
	struct wccl_comm *c;
	int rc = wccl_comm_init_env(&c);
	if (rc == WCCL_EADDRINUSE)
		_exit(EXIT_PORT_TAKEN);
	if (g_init_must_fail)
		_exit(init_failed_as_wanted(r, rc, log));
	if (rc)
		_exit(say(r, "init: %s", wccl_err_name(rc)) + 10);
	_exit(fn(c, r, n));
}

/* A uring wire header (transport/uring/uring_wire.h), little-endian. */
static void wire_hdr(uint8_t *out, unsigned op, uint32_t imm, uint64_t seq,
		     uint64_t len)
{
	uint64_t f[5] = { URING_WIRE_MAGIC | URING_WIRE_VERSION << 16 |
				  op << 24 | (uint64_t)imm << 32,
			  seq, len, 0, 0 };
	for (int i = 0; i < 40; i++)
		out[i] = (uint8_t)(f[i / 8] >> (8 * (i % 8)));
}

/* The impostor speaks uring: its HELLO, then a SEND of a hello in wccl's
 * layout claiming to be rank 1's first connection to rank 2 (host and
 * all), only without the job's secret. Written at once, it is there
 * before rank 1 even starts. */
static int send_forged_hello(int fd)
{
	struct {
		uint32_t magic, rank;
		uint64_t host_id;
		uint32_t stripe, to_rank;
		uint8_t mac[32];
	} h = { 0x4c484357u, 1, wccl_host_id(), 0, 2, { 0 } };
	uint8_t msg[2 * URING_WIRE_HDR_LEN + sizeof(h)];
	wire_hdr(msg, URING_OP_HELLO, 0, 0, 0);
	wire_hdr(msg + URING_WIRE_HDR_LEN, URING_OP_SEND, URING_SEND_NOACK, 1,
		 sizeof(h));
	memcpy(msg + 2 * URING_WIRE_HDR_LEN, &h, sizeof(h));
	return write(fd, msg, sizeof(msg)) == (ssize_t)sizeof(msg) ? 0 : -1;
}

/* Connect to @port (retrying until it listens) and do what the stranger
 * does; the socket to close after the ranks, -1, or -2 if it never got
 * in. */
static int stranger_visit(int port)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	uint64_t deadline = wccl_deadline_ns(TIMEOUT_MS);
	int fd = -1;
	while (fd < 0 && wccl_now_ns() < deadline) {
		fd = wccl_sock_connect(addr, wccl_deadline_ns(100));
		if (fd < 0)
			usleep(2000);
	}
	if (fd < 0) {
		fprintf(stderr, "  stranger: %s never listened\n", addr);
		return -2;
	}
	if (g_stranger == STRANGER_CLOSES) {
		close(fd);
		return -1;
	}
	/* Longer than a uring header, so it is read as one. */
	static const char junk[] = "GET / HTTP/1.0\r\nHost: x\r\n\r\n"
				   "\xff\xfe\x00\x01WCHL garbage garbage "
				   "garbage";
	if ((g_stranger == STRANGER_GARBAGE &&
	     write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk)) ||
	    (g_stranger == STRANGER_IMPOSTOR && send_forged_hello(fd)))
		fprintf(stderr, "  stranger: short write\n");
	return fd;
}

/* Fork @n ranks running @fn; returns the worst exit status (0 = all ok). */
static int run_ranks_once(int n, rank_fn fn, int *port_taken)
{
	int port = test_free_port();
	pid_t pids[16];
	int worst = 0, visitor = -1;
	if (g_stranger)
		g_stranger_port = test_free_port();
	for (int i = 0; i < n; i++) {
		/* With a stranger: 0, n - 1, the stranger, then the rest. */
		int r = !g_stranger || !i ? i : i == 1 ? n - 1 : i - 1;
		pids[r] = fork_rank(r, n, port, fn);
		if (g_stranger && i == 1) {
			visitor = stranger_visit(g_stranger_port);
			if (visitor == -2)
				worst = 50;
		}
	}
	uint64_t deadline = wccl_deadline_ns(6 * TIMEOUT_MS + 20000);
	for (int r = 0; r < n; r++) {
		int st;
		while (waitpid(pids[r], &st, WNOHANG) == 0) {
			if (wccl_now_ns() > deadline) {
				fprintf(stderr, "  rank %d hung: killed\n", r);
				kill(pids[r], SIGKILL);
			}
			usleep(2000);
		}
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
		if (code == EXIT_PORT_TAKEN)
			*port_taken = 1;
		else if (code > worst)
			worst = code;
	}
	if (visitor >= 0)
		close(visitor);
	return worst;
}

static int run_ranks(int n, rank_fn fn)
{
	for (int attempt = 0;; attempt++) {
		int taken = 0;
		int worst = run_ranks_once(n, fn, &taken);
		if (!taken || attempt == 2)
			return taken ? EXIT_PORT_TAKEN + 10 : worst;
		fprintf(stderr, "  a rank's port was taken: again on another\n");
	}
}

/* The async error names @culprit (as rank and in the text). */
static int blames(struct wccl_comm *c, int rank, int culprit, int want_err)
{
	int err, who;
	char msg[256], needle[32];
	wccl_comm_get_async_error(c, &err, &who, msg, sizeof(msg));
	snprintf(needle, sizeof(needle), "rank %d", culprit);
	if (want_err && err != want_err)
		return say(rank, "async error %s, want %s (%s)",
			   wccl_err_name(err), wccl_err_name(want_err), msg);
	if (who != culprit || !strstr(msg, needle))
		return say(rank, "blames rank %d: '%s', want rank %d", who,
			   msg, culprit);
	return 0;
}

/* ---- cases ------------------------------------------------------------ */

static int dead_rank_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	float x[1024] = { 0 };
	if (wccl_allreduce(x, x, 1024, WCCL_FP32, WCCL_SUM, c))
		return say(rank, "first allreduce failed");
	if (rank == 2)
		raise(SIGKILL); /* dies between collectives */
	uint64_t t0 = wccl_now_ns();
	int rc = wccl_allreduce(x, x, 1024, WCCL_FP32, WCCL_SUM, c);
	uint64_t ms = (wccl_now_ns() - t0) / 1000000;
	if (rc == 0)
		return say(rank, "allreduce succeeded without rank 2");
	if (ms > TIMEOUT_MS + 2000)
		return say(rank, "took %llu ms", (unsigned long long)ms);
	int bad = blames(c, rank, 2, 0);
	wccl_comm_abort(c);
	return bad;
}

static void dead_rank_is_named(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(4, dead_rank_body), 100 + SIGKILL);
}

static int absent_rank_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	float x[64] = { 0 };
	if (rank == 1) {
		/* Alive but never calls: sleeps past everyone's timeout. */
		usleep((TIMEOUT_MS + 3000) * 1000);
		wccl_comm_abort(c);
		return 0;
	}
	uint64_t t0 = wccl_now_ns();
	int rc = wccl_allreduce(x, x, 64, WCCL_FP32, WCCL_SUM, c);
	uint64_t ms = (wccl_now_ns() - t0) / 1000000;
	if (rc == 0)
		return say(rank, "allreduce succeeded without rank 1");
	if (ms > TIMEOUT_MS + 2500)
		return say(rank, "took %llu ms", (unsigned long long)ms);
	int bad = blames(c, rank, 1, 0);
	wccl_comm_abort(c);
	return bad;
}

static void absent_rank_is_named(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(3, absent_rank_body), 0);
}

static int mismatch_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	float x[256] = { 0 };
	size_t count = rank == 1 ? 100 : 200;
	int rc = wccl_allreduce(x, x, count, WCCL_FP32, WCCL_SUM, c);
	if (rc != WCCL_EMISMATCH)
		return say(rank, "got %s, want WCCL_EMISMATCH",
			   wccl_err_name(rc));
	int err, who;
	char msg[256];
	wccl_comm_get_async_error(c, &err, &who, msg, sizeof(msg));
	if (!strstr(msg, "count=100") || !strstr(msg, "count=200"))
		return say(rank, "message does not show both calls: %s", msg);
	/* The communicator is finished: later calls fail at once. */
	if (wccl_barrier(c) == 0)
		return say(rank, "barrier after a mismatch succeeded");
	wccl_comm_abort(c);
	return 0;
}

static void mismatched_counts_fail_everywhere(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(3, mismatch_body), 0);
}

static int dtype_mismatch_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	int32_t x[64] = { 0 };
	int rc = wccl_allreduce(x, x, 64, rank ? WCCL_INT32 : WCCL_FP32,
				WCCL_SUM, c);
	wccl_comm_abort(c);
	return rc == WCCL_EMISMATCH ? 0
				    : say(rank, "got %s", wccl_err_name(rc));
}

static void mismatched_dtypes_fail(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(2, dtype_mismatch_body), 0);
}

/*
 * Over uring, small messages go eagerly and a signature rides in front of
 * the first data to each peer. At 4 ranks recursive doubling's second
 * partner sends it only after hearing from its first: a missing one then
 * proves nothing, and no rank may call that partner absent.
 */
static int absent_rank_3_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	float x[64] = { 0 };
	if (rank == 3) {
		usleep((TIMEOUT_MS + 3000) * 1000);
		wccl_comm_abort(c);
		return 0;
	}
	int rc = wccl_allreduce(x, x, 64, WCCL_FP32, WCCL_SUM, c);
	if (rc == 0)
		return say(rank, "allreduce succeeded without rank 3");
	int bad = blames(c, rank, 3, 0);
	wccl_comm_abort(c);
	return bad;
}

static void signatures_in_data_blame_the_absent_rank(void **state)
{
	(void)state;
	g_transport = "uring";
	int rc = run_ranks(4, absent_rank_3_body);
	g_transport = NULL;
	assert_int_equal(rc, 0);
}

/* The same mismatch as above where the signatures ride in the data. */
static int eager_mismatch_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	float x[256] = { 0 };
	size_t count = rank == 3 ? 100 : 200;
	int rc = wccl_allreduce(x, x, count, WCCL_FP32, WCCL_SUM, c);
	if (rc != WCCL_EMISMATCH)
		return say(rank, "got %s, want WCCL_EMISMATCH",
			   wccl_err_name(rc));
	int err, who;
	char msg[256];
	wccl_comm_get_async_error(c, &err, &who, msg, sizeof(msg));
	wccl_comm_abort(c);
	if (!strstr(msg, "count=100") || !strstr(msg, "count=200"))
		return say(rank, "message does not show both calls: %s", msg);
	return 0;
}

static void signatures_in_data_catch_mismatches(void **state)
{
	(void)state;
	g_transport = "uring";
	int rc = run_ranks(4, eager_mismatch_body);
	g_transport = NULL;
	assert_int_equal(rc, 0);
}

static int split_body(struct wccl_comm *c, int rank, int n)
{
	struct wccl_comm *sub = NULL;
	int color = rank == n - 1 ? -1 : rank % 2;
	int rc = wccl_comm_split(c, color, -rank, &sub);
	if (rc)
		return say(rank, "split: %s", wccl_err_name(rc));
	if (color < 0)
		return sub ? say(rank, "negative color got a comm") : 0;
	/* Keys are -rank: the highest old rank becomes new rank 0. */
	int expect_size = 0, expect_rank = 0;
	for (int r = 0; r < n - 1; r++)
		if (r % 2 == color) {
			expect_size++;
			expect_rank += r > rank;
		}
	if (wccl_comm_size(sub) != expect_size ||
	    wccl_comm_rank(sub) != expect_rank)
		return say(rank, "sub rank %d/%d, want %d/%d",
			   wccl_comm_rank(sub), wccl_comm_size(sub),
			   expect_rank, expect_size);
	int32_t v = rank, sum = 0, want = 0;
	for (int r = 0; r < n - 1; r++)
		want += r % 2 == color ? r : 0;
	rc = wccl_allreduce(&v, &sum, 1, WCCL_INT32, WCCL_SUM, sub);
	if (rc || sum != want)
		return say(rank, "sub allreduce %s sum %d want %d",
			   wccl_err_name(rc), sum, want);
	if (wccl_comm_destroy(sub))
		return say(rank, "sub destroy failed");
	/* The parent still works. */
	int32_t all = 0;
	v = 1;
	rc = wccl_allreduce(&v, &all, 1, WCCL_INT32, WCCL_SUM, c);
	if (rc || all != n - 1)
		return say(rank, "parent allreduce after split failed");
	return wccl_comm_destroy(c) ? say(rank, "destroy failed") : 0;
}

static int split_outer(struct wccl_comm *c, int rank, int n)
{
	/* The rank with a negative color must still take part in the parent
	 * allreduce below. */
	if (rank == n - 1) {
		struct wccl_comm *sub;
		if (wccl_comm_split(c, -1, 0, &sub) || sub)
			return say(rank, "negative-color split");
		int32_t v = 0, all = 0;
		int rc = wccl_allreduce(&v, &all, 1, WCCL_INT32, WCCL_SUM, c);
		if (rc || all != n - 1)
			return say(rank, "parent allreduce: %s",
				   wccl_err_name(rc));
		return wccl_comm_destroy(c) ? say(rank, "destroy") : 0;
	}
	return split_body(c, rank, n);
}

static void split_makes_working_subcomms(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(5, split_outer), 0);
}

/* Threads of this process (a bootstrap root runs on one). */
static int thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	int n = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/*
 * Rank 2 takes part in the split's first round (as wccl_comm_split would)
 * and dies: the others fail naming it, and the leader, rank 0, stops the
 * root it had started for the new communicator's id.
 */
static int split_dies_body(struct wccl_comm *c, int rank, int n)
{
	if (rank == 2) {
		int32_t me[2] = { 0, 0 }, all[2 * 3];
		if (n != 3 || wccl_bootstrap_allgather(c->bs, me, sizeof(me),
						       all, TIMEOUT_MS))
			_exit(1);
		_exit(0);
	}
	int threads = thread_count();
	struct wccl_comm *sub = NULL;
	int rc = wccl_comm_split(c, 0, 0, &sub);
	if (rc != WCCL_EPEER_LOST || sub)
		return say(rank, "split: %s, want WCCL_EPEER_LOST",
			   wccl_err_name(rc));
	int err = 0, culprit = -1;
	char msg[256];
	wccl_comm_get_async_error(c, &err, &culprit, msg, sizeof(msg));
	if (culprit != 2 || !strstr(msg, "rank 2"))
		return say(rank, "blames rank %d: %s", culprit, msg);
	if (thread_count() != threads)
		return say(rank, "%d threads after the split, %d before: the "
				 "new id's root still runs",
			   thread_count(), threads);
	wccl_comm_abort(c);
	return 0;
}

static void split_with_a_dead_rank_leaves_nothing_running(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(3, split_dies_body), 0);
}

static int abort_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	float x[16] = { 0 };
	if (rank == 0) {
		wccl_comm_abort(c);
		return 0;
	}
	int rc = wccl_allreduce(x, x, 16, WCCL_FP32, WCCL_SUM, c);
	if (rc == 0)
		return say(rank, "allreduce succeeded after rank 0 aborted");
	int bad = blames(c, rank, 0, 0);
	wccl_comm_abort(c);
	return bad;
}

static void abort_reaches_everyone(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(3, abort_body), 0);
}

static int nonblocking_body(struct wccl_comm *c, int rank, int n)
{
	enum { K = 8, COUNT = 5000 };
	static float in[K][COUNT], out[K][COUNT];
	struct wccl_request *req[K];
	for (int k = 0; k < K; k++) {
		for (int i = 0; i < COUNT; i++)
			in[k][i] = (float)(rank + k + i % 5);
		int rc = wccl_iallreduce(in[k], out[k], COUNT, WCCL_FP32,
					 WCCL_SUM, c, &req[k]);
		if (rc)
			return say(rank, "iallreduce %d: %s", k,
				   wccl_err_name(rc));
	}
	/* Poll the last one with test, wait for the rest in order. */
	int done = 0;
	uint64_t dl = wccl_deadline_ns(TIMEOUT_MS);
	while (!done && wccl_now_ns() < dl)
		if (wccl_test(req[K - 1], &done) < 0)
			return say(rank, "test failed");
	if (!done)
		return say(rank, "last request never finished");
	for (int k = 0; k < K - 1; k++)
		if (wccl_wait(req[k], -1))
			return say(rank, "wait %d failed", k);
	for (int k = 0; k < K; k++)
		for (int i = 0; i < COUNT; i++) {
			float want = 0;
			for (int r = 0; r < n; r++)
				want += (float)(r + k + i % 5);
			if (out[k][i] != want)
				return say(rank, "req %d elem %d: %g vs %g", k,
					   i, out[k][i], want);
		}
	return wccl_comm_destroy(c) ? say(rank, "destroy") : 0;
}

static void nonblocking_requests_complete_in_any_wait_order(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(3, nonblocking_body), 0);
}

static int bad_args_body(struct wccl_comm *c, int rank, int n)
{
	float x[4] = { 0 };
	struct wccl_request *r;
	if (wccl_allreduce(x, x, 4, (enum wccl_dtype)99, WCCL_SUM, c) !=
		    WCCL_EINVAL ||
	    wccl_allreduce(x, x, 4, WCCL_FP32, (enum wccl_redop)77, c) !=
		    WCCL_EINVAL ||
	    wccl_allreduce(NULL, x, 4, WCCL_FP32, WCCL_SUM, c) != WCCL_EINVAL ||
	    wccl_broadcast(x, x, 4, WCCL_FP32, n, c) != WCCL_EINVAL ||
	    wccl_reduce(x, x, 4, WCCL_FP32, WCCL_SUM, -1, c) != WCCL_EINVAL ||
	    wccl_send(x, 4, WCCL_FP32, rank, c) != WCCL_EINVAL ||
	    wccl_allreduce(x, x, 4, WCCL_FP32, WCCL_SUM, NULL) != WCCL_EINVAL ||
	    wccl_iallreduce(x, x, 4, WCCL_FP32, WCCL_SUM, c, NULL) !=
		    WCCL_EINVAL ||
	    wccl_wait(NULL, 10) != WCCL_EINVAL)
		return say(rank, "a bad argument was accepted");
	(void)r;
	/* Rejected calls left no trace: the communicator still works. */
	if (wccl_allreduce(x, x, 4, WCCL_FP32, WCCL_SUM, c))
		return say(rank, "allreduce after bad calls failed");
	return wccl_comm_destroy(c) ? say(rank, "destroy") : 0;
}

static void bad_arguments_are_refused(void **state)
{
	(void)state;
	assert_int_equal(run_ranks(2, bad_args_body), 0);
}

static int sum_body(struct wccl_comm *c, int rank, int n)
{
	int32_t v = rank + 1, sum = 0;
	int rc = wccl_allreduce(&v, &sum, 1, WCCL_INT32, WCCL_SUM, c);
	if (rc || sum != n * (n + 1) / 2)
		return say(rank, "allreduce %s sum %d", wccl_err_name(rc), sum);
	return wccl_comm_destroy(c) ? say(rank, "destroy") : 0;
}

static void launchers_environments_are_understood(void **state)
{
	(void)state;
	static const enum launcher all[] = { TORCHRUN, OPEN_MPI, SLURM };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		g_launcher = all[i];
		assert_int_equal(run_ranks(3, sum_body), 0);
	}
	g_launcher = WCCL_RUN;
}

static void env_init_without_launcher_is_refused(void **state)
{
	(void)state;
	unsetenv("RANK");
	unsetenv("WORLD_SIZE");
	unsetenv("OMPI_COMM_WORLD_RANK");
	unsetenv("SLURM_PROCID");
	unsetenv("PMI_RANK");
	struct wccl_comm *c = NULL;
	assert_int_equal(wccl_comm_init_env(&c), WCCL_EINVAL);
	struct wccl_unique_id junk;
	memset(&junk, 0x5a, sizeof(junk));
	assert_int_equal(wccl_comm_init_rank(&c, 2, &junk, 0, NULL),
			 WCCL_EINVAL);
}

/* A clean launcher environment plus @kv ("NAME=value", NULL-ended). */
static void env_only(const char *const *kv)
{
	static const char *const clear[] = {
		"RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
		"OMPI_COMM_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
		"PMI_RANK", "PMI_SIZE", "MASTER_ADDR", "MASTER_PORT",
		"WCCL_ROOT_ADDR", NULL };
	for (int i = 0; clear[i]; i++)
		unsetenv(clear[i]);
	setenv("WCCL_TIMEOUT_MS", "1000", 1);
	setenv("WCCL_DEBUG", "NONE", 1);
	for (; *kv; kv++)
		putenv((char *)*kv);
	wccl_param_reload();
}

/* Wait up to 2 s for @pid: minus its exit status, 1 if it died or hung. */
static int reap_2s(pid_t pid)
{
	uint64_t deadline = wccl_deadline_ns(2000);
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (wccl_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return 1;
		}
		usleep(2000);
	}
	return WIFEXITED(st) ? -WEXITSTATUS(st) : 1;
}

/* What wccl_comm_init_env returns in a child with env_only(@kv), as
 * -(-code & 0xff) (an exit status carries 8 bits). */
static int init_env_with(const char *const *kv)
{
	pid_t pid = fork();
	if (pid == 0) {
		env_only(kv);
		struct wccl_comm *c = NULL;
		int rc = wccl_comm_init_env(&c);
		if (!rc)
			wccl_comm_destroy(c);
		_exit(-rc & 0xff);
	}
	return reap_2s(pid);
}

/* Launcher variables that do not parse are refused, not truncated or
 * half-read: a WORLD_SIZE of 2^32 + 2 is not a job of 2 ranks. */
static void bad_launcher_values_are_refused(void **state)
{
	(void)state;
	char root[64], mport[64];
	int port = test_free_port();
	snprintf(root, sizeof(root), "WCCL_ROOT_ADDR=127.0.0.1:%d", port);
	snprintf(mport, sizeof(mport), "MASTER_PORT=%dx", port - 1);
	const char *const size_wraps[] = { "RANK=0", "WORLD_SIZE=4294967298",
					   root, NULL };
	const char *const rank_junk[] = { "RANK=0x", "WORLD_SIZE=1", root,
					  NULL };
	const char *const port_junk[] = { "RANK=0", "WORLD_SIZE=1",
					  "MASTER_ADDR=127.0.0.1", mport,
					  NULL };
	const char *const no_port[] = { "RANK=0", "WORLD_SIZE=1",
					"WCCL_ROOT_ADDR=127.0.0.1", NULL };
	const char *const tmo_wraps[] = { "RANK=0", "WORLD_SIZE=1", root,
					  "WCCL_TIMEOUT_MS=4294968296", NULL };
	/* -EINVAL & 0xff, as the child exits with it. */
	const int einval = -(-WCCL_EINVAL & 0xff);
	assert_int_equal(init_env_with(size_wraps), einval);
	assert_int_equal(init_env_with(rank_junk), einval);
	assert_int_equal(init_env_with(port_junk), einval);
	assert_int_equal(init_env_with(no_port), einval);
	assert_int_equal(init_env_with(tmo_wraps), einval);
}

/* An init that fails after rank 0 started the root stops it: its port
 * is free again (a retry on the same launcher port must work). */
static void failed_init_frees_the_root_port(void **state)
{
	(void)state;
	char root[64], size[64];
	int port = test_free_port();
	snprintf(root, sizeof(root), "WCCL_ROOT_ADDR=127.0.0.1:%d", port);
	/* More ranks than a communicator supports: refused after the
	 * root is up. */
	snprintf(size, sizeof(size), "WORLD_SIZE=%d", 1 << 20);
	const char *const kv[] = { "RANK=0", size, root, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		env_only(kv);
		struct wccl_comm *c = NULL;
		if (wccl_comm_init_env(&c) != WCCL_ERANGE)
			_exit(1);
		char bind[64];
		snprintf(bind, sizeof(bind), "0.0.0.0:%d", port);
		int fd = wccl_sock_listen(bind, 1);
		_exit(fd >= 0 ? 0 : 2);
	}
	assert_int_equal(reap_2s(pid), 0);
}

/* Rank 0 checks the host link's figures and their source. */
static int links_body(struct wccl_comm *c, int rank, int n)
{
	(void)n;
	char d[1024], want[64];
	int rc = wccl_comm_describe(c, d, sizeof(d));
	double alpha = 0, gbs = 0;
	char asrc[16] = "", bsrc[16] = "";
	const char *h = strstr(d, "host ");
	if (h)
		h = strstr(h + 1, "links: host ");
	int ok = !rc && h &&
		 sscanf(h, "links: host %lfus(%15[a-z]) %lfGB/s(%15[a-z])",
			&alpha, asrc, &gbs, bsrc) == 4;
	snprintf(want, sizeof(want), "%s",
		 getenv("WANT_BW_SOURCE") ? getenv("WANT_BW_SOURCE") : "");
	if (rank == 0 && (!ok || alpha <= 0 || gbs <= 0 ||
			  strcmp(asrc, "measured") || strcmp(bsrc, want)))
		return say(rank, "describe says '%s' (bandwidth source "
				 "wanted: %s)", d, want);
	return wccl_comm_destroy(c) ? 1 : 0;
}

static void links_are_measured_at_init(void **state)
{
	(void)state;
	setenv("WANT_BW_SOURCE", "measured", 1);
	assert_int_equal(run_ranks(2, links_body), 0);
	/* No probe: the bandwidth stays the built-in default. */
	setenv("WCCL_TOPO_PROBE_BYTES", "0", 1);
	setenv("WANT_BW_SOURCE", "default", 1);
	assert_int_equal(run_ranks(2, links_body), 0);
	unsetenv("WCCL_TOPO_PROBE_BYTES");
	unsetenv("WANT_BW_SOURCE");
}

/*
 * Anyone may connect to a rank's data listener while the communicator
 * sets up: a port scan that closes at once, a client that never speaks,
 * one that sends junk. None may fail the set-up or take a peer's place.
 */
static void strangers_on_the_listener_are_dropped(void **state)
{
	(void)state;
	static const enum stranger kinds[] = { STRANGER_CLOSES,
					       STRANGER_SILENT,
					       STRANGER_GARBAGE,
					       STRANGER_IMPOSTOR };
	static const char *const names[] = { "closes", "is silent",
					     "sends garbage",
					     "forges a hello" };
	g_transport = "uring";
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		fprintf(stderr, "  stranger that %s:\n", names[i]);
		g_stranger = kinds[i];
		int rc = run_ranks(3, sum_body);
		g_stranger = NO_STRANGER;
		if (rc)
			g_transport = NULL;
		assert_int_equal(rc, 0);
	}
	g_transport = NULL;
}

/* Write @text to a fresh file; returns its path (static storage). */
static const char *topo_file(int which, const char *text)
{
	static char paths[3][64];
	snprintf(paths[which], sizeof(paths[which]), "/tmp/wccl-topo-XXXXXX");
	int fd = mkstemp(paths[which]);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return paths[which];
}

/*
 * Ranks with different link costs would pick different algorithms and
 * hang: a rank whose topology file differs, one without a file, one with
 * a bad file each make every rank's init fail, naming that rank.
 */
static void differing_topology_files_fail_init(void **state)
{
	(void)state;
	const char *a = topo_file(0, "host 2 10\ncross 15000 0.6\n");
	const char *b = topo_file(1, "host 2 10\ncross 15000 0.5\n");
	const char *bad = topo_file(2, "host 2 10\ncross nan 0.5\n");
	g_init_must_fail = 1;
	/* Another file on rank 2. */
	g_topo_file[0] = g_topo_file[1] = g_topo_file[2] = a;
	g_topo_file[2] = b;
	g_init_err = WCCL_EMISMATCH;
	g_init_says = "link costs differ: rank 2 has cross 15000us 0.5GB/s";
	int rc1 = run_ranks(3, sum_body);
	/* No file on rank 0: the two others are the reference. */
	g_topo_file[0] = NULL;
	g_topo_file[2] = a;
	g_init_says = "link costs differ: rank 0 has host 2us 8GB/s (default, "
		      "no file), rank 1 and 1 other(s) have host 2us 10GB/s";
	int rc2 = run_ranks(3, sum_body);
	/* A file that does not parse on rank 1: everyone hears why. */
	char says[160];
	snprintf(says, sizeof(says),
		 "rank 1: WCCL_TOPO_FILE %s:2: alpha_us 'nan' is not a "
		 "number", bad);
	g_topo_file[0] = a;
	g_topo_file[1] = bad;
	g_init_err = WCCL_EINVAL;
	g_init_says = says;
	int rc3 = run_ranks(3, sum_body);
	/* The same file everywhere still works. */
	g_init_must_fail = 0;
	g_topo_file[1] = a;
	int rc4 = run_ranks(3, sum_body);
	memset(g_topo_file, 0, sizeof(g_topo_file));
	unlink(a);
	unlink(b);
	unlink(bad);
	assert_int_equal(rc1, 0);
	assert_int_equal(rc2, 0);
	assert_int_equal(rc3, 0);
	assert_int_equal(rc4, 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(env_init_without_launcher_is_refused),
		cmocka_unit_test(bad_launcher_values_are_refused),
		cmocka_unit_test(failed_init_frees_the_root_port),
		cmocka_unit_test(launchers_environments_are_understood),
		cmocka_unit_test(bad_arguments_are_refused),
		cmocka_unit_test(nonblocking_requests_complete_in_any_wait_order),
		cmocka_unit_test(split_makes_working_subcomms),
		cmocka_unit_test(split_with_a_dead_rank_leaves_nothing_running),
		cmocka_unit_test(mismatched_counts_fail_everywhere),
		cmocka_unit_test(mismatched_dtypes_fail),
		cmocka_unit_test(abort_reaches_everyone),
		cmocka_unit_test(dead_rank_is_named),
		cmocka_unit_test(absent_rank_is_named),
		cmocka_unit_test(signatures_in_data_blame_the_absent_rank),
		cmocka_unit_test(signatures_in_data_catch_mismatches),
		cmocka_unit_test(links_are_measured_at_init),
		cmocka_unit_test(strangers_on_the_listener_are_dropped),
		cmocka_unit_test(differing_topology_files_fail_init),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
