/* SPDX-License-Identifier: MIT */
/*
 * Both ends of a dpdk connection on one CPU. The driver pins itself to a
 * single CPU, so the server and client it forks share it: each runs a
 * time slice of ms while the other waits. Over one memif link the client
 * writes MSG bytes (with immediate) into the server, which writes them
 * back; ROUNDS round trips, the echo checked each time. Both spin on
 * wccl_cq_poll, as a progress thread or wccl-perf's write-poll does
 * (wccl_cq_wait yields the CPU between passes: no slices run out). Two
 * runs:
 *
 *   model   WCCL_DPDK_PACE_MODEL=1 (the default)
 *   fixed   WCCL_DPDK_PACE_MODEL=0 (no model, the fixed rate)
 *
 * and the checks:
 *   (a) every echo comes back intact, in both runs;
 *   (b) the model's client saw itself CPU-bound (the stats' cpu_bound);
 *   (c) the model gives up the CPU at most 3x (+ 2) as often per round
 *       trip as the fixed rate. Paced as on a link, it had sent one small
 *       window per pair of time slices, each window smaller than the last
 *       (36 stops a round trip against 2-3; 1 MiB took 2.3 s). A count of
 *       stops, not a time: the host's load scales both runs alike.
 * Exit 0 / 1 / 77.
 */
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memif_pair.h"
#include "transport/dpdk/dpdk_stats.h"

#define MSG (1u << 20)
#define ROUNDS 20u
#define WARMUP 3u
#define SEED 777u

struct result {
	unsigned long long stalls, cpu_bound, retx;
	double secs;
};

/* Spin on wccl_cq_poll for one completion of @a and one of @b, in
 * either order (a WRITE_IMM must carry @imm), within MEMIF_TMO_MS. */
static void wait_two(struct wccl_cq *cq, uint32_t a, uint32_t b,
		     uint32_t imm, const char *what)
{
	bool got_a = false, got_b = false;
	double end = memif_now_s() + MEMIF_TMO_MS / 1e3;
	while (!got_a || !got_b) {
		struct wccl_completion c;
		int n = wccl_cq_poll(cq, &c, 1);
		CHECK(n >= 0, "%s: %s", what, wccl_strerror(n));
		CHECK(n || memif_now_s() < end, "%s: timeout", what);
		if (!n)
			continue;
		CHECK(c.status == 0, "%s: op %u: %s", what, c.op,
		      wccl_strerror(c.status));
		CHECK(c.op != WCCL_OP_WRITE_IMM || c.imm == imm,
		      "%s: immediate %u, want %u", what, c.imm, imm);
		if (c.op == a && !got_a)
			got_a = true;
		else if (c.op == b && !got_b)
			got_b = true;
		else
			CHECK(0, "%s: unexpected op %u", what, c.op);
	}
}

/* The same for one completion of @op. */
static void wait_one(struct wccl_cq *cq, uint32_t op, uint32_t imm,
		     const char *what)
{
	double end = memif_now_s() + MEMIF_TMO_MS / 1e3;
	struct wccl_completion c = { 0 };
	int n;
	while ((n = wccl_cq_poll(cq, &c, 1)) == 0)
		CHECK(memif_now_s() < end, "%s: timeout", what);
	CHECK(n == 1 && c.status == 0 && c.op == op &&
		      (op != WCCL_OP_WRITE_IMM || c.imm == imm),
	      "%s: %s op %u imm %u", what, n < 0 ? wccl_strerror(n) : "",
	      c.op, c.imm);
}

/* The region both sides write into, and the peer's key to it. */
struct side {
	struct memif_conn mc;
	uint8_t *buf;
	struct wccl_mr *mr;
	struct wccl_rkey peer;
};

static void side_open(struct side *s, bool server)
{
	if (server)
		memif_accept(&s->mc);
	else
		memif_connect(&s->mc);
	s->buf = calloc(1, MSG);
	CHECK(s->buf, "out of memory");
	CHECK(wccl_mr_register(s->mc.ctx, s->buf, MSG,
			       WCCL_ACCESS_LOCAL | WCCL_ACCESS_REMOTE_WRITE,
			       &s->mr) == 0, "mr");
	struct wccl_rkey rk;
	wccl_mr_rkey(s->mr, &rk);
	uint8_t mine[WCCL_RKEY_PACKED_LEN], theirs[WCCL_RKEY_PACKED_LEN];
	wccl_rkey_pack(&rk, mine);
	CHECK(wccl_post_recv(s->mc.ep, theirs, sizeof(theirs), NULL, 1) == 0,
	      "recv");
	CHECK(wccl_post_send(s->mc.ep, mine, sizeof(mine), NULL, 2) == 0,
	      "send");
	wait_two(s->mc.cq, WCCL_OP_SEND, WCCL_OP_RECV, 0, "key exchange");
	wccl_rkey_unpack(theirs, &s->peer);
}

static void side_close(struct side *s)
{
	wccl_endpoint_close(s->mc.ep);
	if (s->mc.l)
		wccl_listener_close(s->mc.l);
	wccl_mr_deregister(s->mr);
	wccl_cq_destroy(s->mc.cq);
	wccl_context_close(s->mc.ctx);
	free(s->buf);
}

/* Write our region to the peer's, with immediate @round. */
static void write_out(struct side *s, uint32_t round)
{
	int rc = wccl_post_write(s->mc.ep, s->buf, MSG, s->mr, &s->peer, 0,
				 round, WCCL_WRITE_IMM, round);
	CHECK(rc == 0, "post_write: %s", wccl_strerror(rc));
}

static int server(void)
{
	struct side s;
	memset(&s, 0, sizeof(s));
	side_open(&s, true);
	for (uint32_t r = 0; r < WARMUP + ROUNDS; r++) {
		wait_one(s.mc.cq, WCCL_OP_WRITE_IMM, r, "round");
		write_out(&s, r); /* the echo */
		wait_one(s.mc.cq, WCCL_OP_WRITE, 0, "echo");
	}
	side_close(&s);
	return 0;
}

static int client(void)
{
	struct side s;
	memset(&s, 0, sizeof(s));
	side_open(&s, false);
	struct dpdk_stats st0, st;
	double t0 = 0;
	for (uint32_t r = 0; r < WARMUP + ROUNDS; r++) {
		if (r == WARMUP) {
			CHECK(dpdk_context_stats(s.mc.ctx, &st0) == 0, "stats");
			t0 = memif_now_s();
		}
		memif_fill(s.buf, MSG, SEED + r);
		write_out(&s, r);
		/* The echo lands in our region once our write completed. */
		wait_two(s.mc.cq, WCCL_OP_WRITE, WCCL_OP_WRITE_IMM, r, "round");
		memif_verify(s.buf, MSG, SEED + r, "echo");
	}
	struct result res = { .secs = memif_now_s() - t0 };
	CHECK(dpdk_context_stats(s.mc.ctx, &st) == 0, "stats");
	res.stalls = st.stalls - st0.stalls;
	res.cpu_bound = st.cpu_bound;
	res.retx = st.retransmits;
	FILE *f = fopen(getenv("WCCL_TEST_SHARED_OUT"), "w");
	CHECK(f, "result file");
	fprintf(f, "%llu %llu %llu %.6f\n", res.stalls, res.cpu_bound,
		res.retx, res.secs);
	fclose(f);
	side_close(&s);
	return 0;
}

static int run(struct result *r)
{
	return memif_pair_run_scan("/proc/self/exe", "WCCL_TEST_SHARED_OUT", 4,
				   "%llu %llu %llu %lf", &r->stalls,
				   &r->cpu_bound, &r->retx, &r->secs);
}

static void show(const char *name, const struct result *r)
{
	fprintf(stderr,
		"[driver] %-5s %u x %u KiB round trips in %.3f s (%.2f ms "
		"each): %llu stops (%.1f a round trip), cpu-bound %llu, "
		"retx %llu\n",
		name, ROUNDS, MSG >> 10, r->secs, r->secs * 1e3 / ROUNDS,
		r->stalls, (double)r->stalls / ROUNDS, r->cpu_bound, r->retx);
}

/* Pin to the first CPU we may run on; the children inherit it. */
static void pin_one_cpu(void)
{
	cpu_set_t set;
	CHECK(sched_getaffinity(0, sizeof(set), &set) == 0, "getaffinity");
	int cpu = 0;
	while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set))
		cpu++;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	CHECK(sched_setaffinity(0, sizeof(set), &set) == 0, "setaffinity");
	fprintf(stderr, "[driver] server and client pinned to cpu %d\n", cpu);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		memif_role = argv[1];
		alarm(120);
		return strcmp(memif_role, "server") ? client() : server();
	}
	pin_one_cpu();
	struct result model, fixed;
	setenv("WCCL_DPDK_PACE_MODEL", "1", 1);
	int rc = run(&model);
	setenv("WCCL_DPDK_PACE_MODEL", "0", 1);
	if (!rc)
		rc = run(&fixed);
	if (rc)
		return rc;
	show("model", &model);
	show("fixed", &fixed);
	CHECK(model.cpu_bound > 0, "the model's sender never turned CPU-bound");
	CHECK(model.stalls <= 3 * fixed.stalls + 2 * ROUNDS,
	      "model %.1f stops a round trip, fixed %.1f: want <= 3x + 2",
	      (double)model.stalls / ROUNDS, (double)fixed.stalls / ROUNDS);
	fprintf(stderr, "[driver] PASS\n");
	return 0;
}
