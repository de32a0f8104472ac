/* SPDX-License-Identifier: MIT */
/*
 * Collectives with real processes: test_coll PROVIDER NRANKS [ALGO...]
 *
 * Forks NRANKS ranks that meet through the env-mode bootstrap (rank 0 runs
 * the root) and check every collective x dtype x op x size, in place and
 * out of place, against a reference computed from the same inputs, with
 * output buffers poisoned first. Allreduce runs once per algorithm (a new
 * communicator each, WCCL_ALGO set). PROVIDER "shm" or "uring" is forced
 * with WCCL_TRANSPORT; "regions" puts the ranks in two or three emulated
 * regions (WCCL_REGION), which use the network between them.
 *
 * Inputs are small integers, so sums, products (of 1s and 2s), min and max
 * are exact in every type, fp16/bf16 included; AVG is checked with the
 * tolerance of the type. Exit 0 = pass, 1 = fail, 77 = provider missing.
 */
#include <math.h>
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

#include "collectives/dtype.h"
#include "collectives/half.h"
#include "core/clock.h"
#include "core/params.h"
#include "core/sock.h"
#include "free_port.h"

static int g_rank, g_nranks, g_failures;
static char g_case[256];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "rank %d: FAIL %s: ", g_rank, g_case);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	g_failures++;
}

/* ---- values --------------------------------------------------------- */

static double input(int rank, uint64_t i, enum wccl_redop op)
{
	if (op == WCCL_PROD)
		return 1 + (double)((rank + i) % 2);
	return 1 + (double)((rank * 7 + i * 3) % 4);
}

static void store(void *buf, uint64_t i, enum wccl_dtype t, double v)
{
	switch (t) {
	case WCCL_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
	case WCCL_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
	case WCCL_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
	case WCCL_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
	case WCCL_INT64: ((int64_t *)buf)[i] = (int64_t)v; break;
	case WCCL_UINT64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
	case WCCL_FP16: ((uint16_t *)buf)[i] = wccl_fp32_to_fp16((float)v); break;
	case WCCL_BF16: ((uint16_t *)buf)[i] = wccl_fp32_to_bf16((float)v); break;
	case WCCL_FP32: ((float *)buf)[i] = (float)v; break;
	case WCCL_FP64: ((double *)buf)[i] = v; break;
	default: break;
	}
}

static double load(const void *buf, uint64_t i, enum wccl_dtype t)
{
	switch (t) {
	case WCCL_INT8: return ((const int8_t *)buf)[i];
	case WCCL_UINT8: return ((const uint8_t *)buf)[i];
	case WCCL_INT32: return ((const int32_t *)buf)[i];
	case WCCL_UINT32: return ((const uint32_t *)buf)[i];
	case WCCL_INT64: return (double)((const int64_t *)buf)[i];
	case WCCL_UINT64: return (double)((const uint64_t *)buf)[i];
	case WCCL_FP16: return wccl_fp16_to_fp32(((const uint16_t *)buf)[i]);
	case WCCL_BF16: return wccl_bf16_to_fp32(((const uint16_t *)buf)[i]);
	case WCCL_FP32: return ((const float *)buf)[i];
	case WCCL_FP64: return ((const double *)buf)[i];
	default: return NAN;
	}
}

static int is_int(enum wccl_dtype t)
{
	return t <= WCCL_UINT64;
}

/* The reduction of element i over ranks [0, n), in fp64. */
static double reference(uint64_t i, enum wccl_dtype t, enum wccl_redop op)
{
	double acc = input(0, i, op);
	for (int r = 1; r < g_nranks; r++) {
		double v = input(r, i, op);
		switch (op) {
		case WCCL_SUM: case WCCL_AVG: acc += v; break;
		case WCCL_PROD: acc *= v; break;
		case WCCL_MIN: acc = v < acc ? v : acc; break;
		case WCCL_MAX: acc = v > acc ? v : acc; break;
		default: break;
		}
	}
	if (op == WCCL_AVG)
		acc = is_int(t) ? trunc(acc / g_nranks) : acc / g_nranks;
	return acc;
}

static int close_enough(double got, double want, enum wccl_dtype t,
			enum wccl_redop op)
{
	if (op != WCCL_AVG || is_int(t))
		return got == want;
	double tol = t == WCCL_FP16 ? 1e-3 : t == WCCL_BF16 ? 8e-3 : 1e-6;
	return fabs(got - want) <= tol * fabs(want);
}

static void fill_input(void *buf, uint64_t n, enum wccl_dtype t,
		       enum wccl_redop op, int rank, uint64_t first)
{
	for (uint64_t i = 0; i < n; i++)
		store(buf, i, t, input(rank, first + i, op));
}

/* Allreduce buffers from wccl_mem_alloc (shareable: same-host ranks
 * reduce straight between them): 1 on every rank, 2 on all but rank 0
 * (so every rank must fall back to the schedule together). */
static int g_wccl_mem;

static int use_wccl_mem(void)
{
	return g_wccl_mem == 1 || (g_wccl_mem == 2 && g_rank != 0);
}

static void *poisoned(size_t bytes)
{
	void *p = NULL;
	if (use_wccl_mem()) {
		if (wccl_mem_alloc(bytes ? bytes : 1, &p))
			p = NULL;
	} else {
		p = malloc(bytes ? bytes : 1);
	}
	if (!p) {
		fprintf(stderr, "rank %d: out of memory\n", g_rank);
		exit(1);
	}
	memset(p, 0xA5, bytes ? bytes : 1);
	return p;
}

static void release(void *p)
{
	if (use_wccl_mem())
		wccl_mem_free(p);
	else
		free(p);
}

/* ---- one check per collective ---------------------------------------- */

static void check_allreduce(struct wccl_comm *c, uint64_t n, enum wccl_dtype t,
			    enum wccl_redop op, int inplace)
{
	size_t es = wccl_dtype_size(t);
	void *in = poisoned(n * es), *out = inplace ? in : poisoned(n * es);
	fill_input(in, n, t, op, g_rank, 0);
	int rc = wccl_allreduce(in, out, n, t, op, c);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (uint64_t i = 0; !rc && i < n; i++) {
		double want = reference(i, t, op), got = load(out, i, t);
		if (!close_enough(got, want, t, op)) {
			fail("element %llu: got %g want %g",
			     (unsigned long long)i, got, want);
			break;
		}
	}
	release(in);
	if (!inplace)
		release(out);
}

static void check_broadcast(struct wccl_comm *c, uint64_t n, enum wccl_dtype t,
			    int root, int inplace)
{
	size_t es = wccl_dtype_size(t);
	void *in = poisoned(n * es), *out = inplace ? in : poisoned(n * es);
	if (g_rank == root)
		fill_input(in, n, t, WCCL_SUM, root, 0);
	int rc = wccl_broadcast(in, out, n, t, root, c);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (uint64_t i = 0; !rc && i < n; i++)
		if (load(out, i, t) != input(root, i, WCCL_SUM)) {
			fail("element %llu wrong", (unsigned long long)i);
			break;
		}
	free(in);
	if (!inplace)
		free(out);
}

static void check_reduce(struct wccl_comm *c, uint64_t n, enum wccl_dtype t,
			 enum wccl_redop op, int root, int inplace)
{
	size_t es = wccl_dtype_size(t);
	void *in = poisoned(n * es), *out = inplace ? in : poisoned(n * es);
	fill_input(in, n, t, op, g_rank, 0);
	int rc = wccl_reduce(in, out, n, t, op, root, c);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (uint64_t i = 0; !rc && g_rank == root && i < n; i++) {
		double want = reference(i, t, op), got = load(out, i, t);
		if (!close_enough(got, want, t, op)) {
			fail("element %llu: got %g want %g",
			     (unsigned long long)i, got, want);
			break;
		}
	}
	/* Non-roots' send buffers must be left as they were. */
	for (uint64_t i = 0; !rc && !inplace && i < n; i++)
		if (load(in, i, t) != input(g_rank, i, op)) {
			fail("send buffer changed at %llu",
			     (unsigned long long)i);
			break;
		}
	free(in);
	if (!inplace)
		free(out);
}

static void check_allgather(struct wccl_comm *c, uint64_t n, enum wccl_dtype t,
			    int inplace)
{
	size_t es = wccl_dtype_size(t);
	uint8_t *out = poisoned(n * es * g_nranks);
	uint8_t *in = inplace ? out + n * es * g_rank : poisoned(n * es);
	fill_input(in, n, t, WCCL_SUM, g_rank, 0);
	int rc = wccl_allgather(in, out, n, t, c);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (int r = 0; !rc && r < g_nranks; r++)
		for (uint64_t i = 0; i < n; i++)
			if (load(out, r * n + i, t) != input(r, i, WCCL_SUM)) {
				fail("block %d element %llu wrong", r,
				     (unsigned long long)i);
				r = g_nranks;
				break;
			}
	if (!inplace)
		free(in);
	free(out);
}

static void check_reduce_scatter(struct wccl_comm *c, uint64_t n,
				 enum wccl_dtype t, enum wccl_redop op,
				 int inplace)
{
	size_t es = wccl_dtype_size(t);
	uint8_t *in = poisoned(n * es * g_nranks);
	uint8_t *out = inplace ? in + n * es * g_rank : poisoned(n * es);
	fill_input(in, n * g_nranks, t, op, g_rank, 0);
	int rc = wccl_reduce_scatter(in, out, n, t, op, c);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (uint64_t i = 0; !rc && i < n; i++) {
		double want = reference(g_rank * n + i, t, op);
		double got = load(out, i, t);
		if (!close_enough(got, want, t, op)) {
			fail("element %llu: got %g want %g",
			     (unsigned long long)i, got, want);
			break;
		}
	}
	if (!inplace)
		free(out);
	free(in);
}

static void check_alltoall(struct wccl_comm *c, uint64_t n, enum wccl_dtype t,
			   int inplace)
{
	size_t es = wccl_dtype_size(t);
	uint8_t *in = poisoned(n * es * g_nranks);
	uint8_t *out = inplace ? in : poisoned(n * es * g_nranks);
	/* Block j for rank j: values from (my rank, j). */
	for (int j = 0; j < g_nranks; j++)
		fill_input(in + j * n * es, n, t, WCCL_SUM, g_rank * 5 + j, 0);
	int rc = wccl_alltoall(in, out, n, t, c);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (int j = 0; !rc && j < g_nranks; j++)
		for (uint64_t i = 0; i < n; i++)
			if (load(out, j * n + i, t) !=
			    input(j * 5 + g_rank, i, WCCL_SUM)) {
				fail("block from %d element %llu wrong", j,
				     (unsigned long long)i);
				j = g_nranks;
				break;
			}
	if (!inplace)
		free(out);
	free(in);
}

static void check_send_recv(struct wccl_comm *c, uint64_t n)
{
	/* A ring of point-to-point messages, odd ranks receiving first. */
	if (g_nranks < 2)
		return;
	int next = (g_rank + 1) % g_nranks, prev = (g_rank + g_nranks - 1) % g_nranks;
	float *out = poisoned(n * 4), *in = poisoned(n * 4);
	fill_input(out, n, WCCL_FP32, WCCL_SUM, g_rank, 0);
	struct wccl_request *rs, *rr;
	int rc = wccl_irecv(in, n, WCCL_FP32, prev, c, &rr);
	if (!rc)
		rc = wccl_isend(out, n, WCCL_FP32, next, c, &rs);
	if (!rc)
		rc = wccl_wait(rr, -1);
	if (!rc)
		rc = wccl_wait(rs, -1);
	if (rc)
		fail("returned %s", wccl_err_name(rc));
	for (uint64_t i = 0; !rc && i < n; i++)
		if (in[i] != input(prev, i, WCCL_SUM)) {
			fail("element %llu wrong", (unsigned long long)i);
			break;
		}
	free(in);
	free(out);
}

/* ---- batteries -------------------------------------------------------- */

static const uint64_t small_sizes[] = { 0, 1, 7, 4096 + 3 };

static void battery_all(struct wccl_comm *c)
{
	for (int t = 0; t < WCCL_DTYPE_COUNT; t++) {
		for (size_t s = 0; s < sizeof(small_sizes) / 8; s++) {
			uint64_t n = small_sizes[s];
			for (int ip = 0; ip < 2; ip++) {
				for (int op = 0; op < WCCL_REDOP_COUNT; op++) {
					snprintf(g_case, sizeof(g_case),
						 "allreduce %s %s n=%llu%s",
						 wccl_dtype_name(t),
						 wccl_redop_name(op),
						 (unsigned long long)n,
						 ip ? " in-place" : "");
					check_allreduce(c, n, t, op, ip);
					snprintf(g_case, sizeof(g_case),
						 "reduce_scatter %s %s n=%llu%s",
						 wccl_dtype_name(t),
						 wccl_redop_name(op),
						 (unsigned long long)n,
						 ip ? " in-place" : "");
					check_reduce_scatter(c, n, t, op, ip);
				}
				int root = (int)(s + t) % g_nranks;
				snprintf(g_case, sizeof(g_case),
					 "reduce %s n=%llu root=%d%s",
					 wccl_dtype_name(t),
					 (unsigned long long)n, root,
					 ip ? " in-place" : "");
				check_reduce(c, n, t, (t + s) % WCCL_REDOP_COUNT,
					     root, ip);
				snprintf(g_case, sizeof(g_case),
					 "broadcast %s n=%llu root=%d%s",
					 wccl_dtype_name(t),
					 (unsigned long long)n, root,
					 ip ? " in-place" : "");
				check_broadcast(c, n, t, root, ip);
				snprintf(g_case, sizeof(g_case),
					 "allgather %s n=%llu%s",
					 wccl_dtype_name(t),
					 (unsigned long long)n,
					 ip ? " in-place" : "");
				check_allgather(c, n, t, ip);
				snprintf(g_case, sizeof(g_case),
					 "alltoall %s n=%llu%s",
					 wccl_dtype_name(t),
					 (unsigned long long)n,
					 ip ? " in-place" : "");
				check_alltoall(c, n, t, ip);
			}
		}
	}
	snprintf(g_case, sizeof(g_case), "send/recv ring");
	check_send_recv(c, 4099);
	snprintf(g_case, sizeof(g_case), "barrier");
	if (wccl_barrier(c))
		fail("barrier failed");
}

/* Large sizes: fp32 (and a bf16 pass) on every collective. */
static void battery_large(struct wccl_comm *c)
{
	static const uint64_t sizes[] = { (1u << 20) + 1, (32u << 20) / 4 };
	for (size_t s = 0; s < 2; s++) {
		uint64_t n = sizes[s];
		snprintf(g_case, sizeof(g_case), "allreduce fp32 sum n=%llu",
			 (unsigned long long)n);
		check_allreduce(c, n, WCCL_FP32, WCCL_SUM, 0);
		snprintf(g_case, sizeof(g_case), "allreduce bf16 max n=%llu in-place",
			 (unsigned long long)n);
		check_allreduce(c, n, WCCL_BF16, WCCL_MAX, 1);
		uint64_t per = n / (uint64_t)g_nranks + 1;
		snprintf(g_case, sizeof(g_case), "allgather fp32 n=%llu",
			 (unsigned long long)per);
		check_allgather(c, per, WCCL_FP32, 0);
		snprintf(g_case, sizeof(g_case), "reduce_scatter fp32 n=%llu",
			 (unsigned long long)per);
		check_reduce_scatter(c, per, WCCL_FP32, WCCL_SUM, 0);
		snprintf(g_case, sizeof(g_case), "broadcast fp32 n=%llu",
			 (unsigned long long)n);
		check_broadcast(c, n, WCCL_FP32, g_nranks - 1, 0);
		snprintf(g_case, sizeof(g_case), "reduce fp32 n=%llu",
			 (unsigned long long)n);
		check_reduce(c, n, WCCL_FP32, WCCL_SUM, 0, 0);
		snprintf(g_case, sizeof(g_case), "alltoall fp32 n=%llu",
			 (unsigned long long)per);
		check_alltoall(c, per, WCCL_FP32, 0);
	}
}

/* Every allreduce algorithm, on small and large sizes. */
static void battery_algo(struct wccl_comm *c)
{
	static const uint64_t sizes[] = { 0, 1, 7, 4096 + 3, (1u << 20) + 1 };
	for (size_t s = 0; s < 5; s++)
		for (int ip = 0; ip < 2; ip++) {
			snprintf(g_case, sizeof(g_case),
				 "allreduce[%s] fp32 sum n=%llu%s",
				 wccl_param_str(WCCL_PARAM_ALGO),
				 (unsigned long long)sizes[s],
				 ip ? " in-place" : "");
			check_allreduce(c, sizes[s], WCCL_FP32, WCCL_SUM, ip);
			snprintf(g_case, sizeof(g_case),
				 "allreduce[%s] int32 max n=%llu%s",
				 wccl_param_str(WCCL_PARAM_ALGO),
				 (unsigned long long)sizes[s],
				 ip ? " in-place" : "");
			check_allreduce(c, sizes[s], WCCL_INT32, WCCL_MAX, ip);
		}
}

/*
 * Direct calls on buffers used before: a pair again and again (from the
 * second call on, the ranks skip the mapping round), another pair in
 * between, then in place; new data every call. Returns the calls made.
 */
static unsigned check_direct_reuse(struct wccl_comm *c)
{
	static const struct {
		int in, out;
		uint64_t first;
	} calls[] = { { 0, 1, 0 }, { 0, 1, 5 },	 { 2, 3, 9 }, { 0, 1, 13 },
		      { 0, 0, 17 }, { 0, 0, 21 }, { 2, 2, 2 }, { 1, 3, 7 } };
	uint64_t n = (1u << 18) + 3;
	void *buf[4];
	for (int k = 0; k < 4; k++)
		buf[k] = poisoned(n * sizeof(float));
	for (size_t k = 0; k < sizeof(calls) / sizeof(calls[0]); k++) {
		void *in = buf[calls[k].in], *out = buf[calls[k].out];
		uint64_t first = calls[k].first;
		snprintf(g_case, sizeof(g_case),
			 "allreduce fp32 sum n=%llu, buffers %d -> %d (call %zu)",
			 (unsigned long long)n, calls[k].in, calls[k].out, k);
		fill_input(in, n, WCCL_FP32, WCCL_SUM, g_rank, first);
		int rc = wccl_allreduce(in, out, n, WCCL_FP32, WCCL_SUM, c);
		if (rc)
			fail("returned %s", wccl_err_name(rc));
		for (uint64_t i = 0; !rc && i < n; i++)
			if (load(out, i, WCCL_FP32) !=
			    reference(first + i, WCCL_FP32, WCCL_SUM)) {
				fail("element %llu wrong",
				     (unsigned long long)i);
				break;
			}
	}
	for (int k = 0; k < 4; k++)
		release(buf[k]);
	return (unsigned)(sizeof(calls) / sizeof(calls[0]));
}

/*
 * Allreduce on wccl_mem buffers around and above COMM_DIRECT_MIN (256 KiB),
 * where same-host ranks reduce straight between their buffers; then with
 * rank 0 on plain memory, where all must take the schedule instead.
 */
static void battery_direct(struct wccl_comm *c)
{
	/* Half the bytes each kind moves: just below 256 KiB, exactly 256
	 * KiB, and above. */
	static const uint64_t sizes[] = { 131071, 131072, 3 * 65536 + 5,
					  (1u << 20) + 1 };
	static const struct {
		enum wccl_dtype t;
		enum wccl_redop op;
		const char *name;
	} kinds[] = {
		{ WCCL_FP32, WCCL_SUM, "fp32 sum" },
		{ WCCL_FP16, WCCL_AVG, "fp16 avg" },
		{ WCCL_INT64, WCCL_MAX, "int64 max" },
		{ WCCL_BF16, WCCL_SUM, "bf16 sum" },
	};
	char d[1024];
	for (g_wccl_mem = 1; g_wccl_mem <= 2; g_wccl_mem++) {
		unsigned reused = check_direct_reuse(c);
		for (size_t s = 0; s < 4; s++)
			for (size_t k = 0; k < 4; k++)
				for (int ip = 0; ip < 2; ip++) {
					uint64_t n = sizes[s] /
						     (wccl_dtype_size(kinds[k].t) / 2);
					snprintf(g_case, sizeof(g_case),
						 "allreduce %s n=%llu%s on %s",
						 kinds[k].name,
						 (unsigned long long)n,
						 ip ? " in-place" : "",
						 g_wccl_mem == 1
							 ? "wccl_mem"
							 : "wccl_mem but rank 0");
					check_allreduce(c, n, kinds[k].t,
							kinds[k].op, ip);
				}
		/* Over shm, the 3 sizes >= 256 KiB x 4 kinds x 2 and the
		 * reuse calls went straight between the buffers, and only
		 * those; with rank 0 on plain memory, all of them fell back. */
		int shm = !strcmp(getenv("WCCL_TRANSPORT") ?
					  getenv("WCCL_TRANSPORT") : "", "shm");
		wccl_comm_describe(c, d, sizeof(d));
		unsigned long long done = 0, back = 0;
		const char *at = strstr(d, "direct allreduces ");
		if (at)
			sscanf(at, "direct allreduces %llu, fell back %llu",
			       &done, &back);
		unsigned long long want = shm ? 24 + reused : 0;
		snprintf(g_case, sizeof(g_case), "direct counts (%s)",
			 g_wccl_mem == 1 ? "wccl_mem" : "rank 0 plain");
		if (done != want || back != (g_wccl_mem == 2 ? want : 0))
			fail("%llu direct, %llu fell back; want %llu, %llu",
			     done, back, want, g_wccl_mem == 2 ? want : 0);
	}
	g_wccl_mem = 0;
}

/* ---- launching -------------------------------------------------------- */

static int rank_main(const char *algo, const char *mode)
{
	struct wccl_comm *c;
	setenv("WCCL_ALGO", algo, 1);
	wccl_param_reload();
	int rc = wccl_comm_init_env(&c);
	if (rc) {
		fprintf(stderr, "rank %d: init failed: %s\n", g_rank,
			wccl_err_name(rc));
		return 1;
	}
	if (!strcmp(mode, "all"))
		battery_all(c);
	else if (!strcmp(mode, "large"))
		battery_large(c);
	else if (!strcmp(mode, "direct"))
		battery_direct(c);
	else
		battery_algo(c);
	rc = wccl_comm_destroy(c);
	if (rc)
		fail("destroy returned %s", wccl_err_name(rc));
	return g_failures ? 1 : 0;
}

/*
 * dpdk ranks meet on one virtual link (tests/dpdk/coll.sh): each launch
 * gets a link of its own, so one launch's teardown cannot disturb the next
 * one's set-up. "@LAUNCH@" in WCCL_DPDK_EAL becomes the launch number.
 */
static int g_launch;

static void fresh_dpdk_link(void)
{
	const char *eal = getenv("WCCL_DPDK_EAL");
	const char *at = eal ? strstr(eal, "@LAUNCH@") : NULL;
	if (!at)
		return;
	char buf[1024];
	snprintf(buf, sizeof(buf), "%.*s%d%s", (int)(at - eal), eal, g_launch,
		 at + strlen("@LAUNCH@"));
	setenv("WCCL_DPDK_EAL", buf, 1);
}

/* TEST_COLL_ENV_<rank>: "K=V K=V..." for that rank only (the soft-RoCE
 * WAN bed puts ranks on different RDMA devices). */
static void rank_env(int r)
{
	char var[32], kv[512];
	snprintf(var, sizeof(var), "TEST_COLL_ENV_%d", r);
	const char *e = getenv(var);
	if (!e || !*e)
		return;
	snprintf(kv, sizeof(kv), "%s", e);
	char *save = NULL;
	for (char *t = strtok_r(kv, " ", &save); t;
	     t = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(t, '=');
		if (!eq || eq == t) {
			fprintf(stderr, "bad %s entry '%s'\n", var, t);
			_exit(2);
		}
		*eq = '\0';
		setenv(t, eq + 1, 1);
	}
}

/* Run one communicator's worth of ranks; 0 if every rank passed. */
static int launch(int nranks, const char *algo, const char *mode,
		  int nregions)
{
	char root[64], key[32];
	snprintf(root, sizeof(root), "127.0.0.1:%d", test_free_port());
	snprintf(key, sizeof(key), "test-%d", getpid());
	g_launch++;
	pid_t pids[64];
	for (int r = 0; r < nranks; r++) {
		pids[r] = fork();
		if (pids[r] == 0) {
			char b[16];
			g_rank = r;
			g_nranks = nranks;
			snprintf(b, sizeof(b), "%d", r);
			setenv("RANK", b, 1);
			snprintf(b, sizeof(b), "%d", nranks);
			setenv("WORLD_SIZE", b, 1);
			setenv("WCCL_ROOT_ADDR", root, 1);
			setenv("WCCL_AUTH_KEY", key, 1);
			fresh_dpdk_link();
			rank_env(r);
			if (nregions > 1) {
				/* Interleaved: neighbours sit apart. */
				snprintf(b, sizeof(b), "region-%d",
					 r % nregions);
				setenv("WCCL_REGION", b, 1);
			}
			_exit(rank_main(algo, mode));
		}
	}
	int bad = 0;
	uint64_t deadline = wccl_deadline_ns(240000);
	for (int r = 0; r < nranks; r++) {
		int st;
		while (waitpid(pids[r], &st, WNOHANG) == 0) {
			if (wccl_now_ns() > deadline) {
				fprintf(stderr, "rank %d hung; killing\n", r);
				for (int k = 0; k < nranks; k++)
					kill(pids[k], SIGKILL);
			}
			usleep(1000);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	}
	printf("%-6s n=%d %-5s %-5s regions=%d: %s\n",
	       getenv("WCCL_TRANSPORT") ? getenv("WCCL_TRANSPORT") : "auto",
	       nranks, algo[0] ? algo : "auto", mode, nregions,
	       bad ? "FAIL" : "ok");
	fflush(stdout);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: test_coll shm|uring|regions NRANKS\n");
		return 2;
	}
	const char *prov = argv[1];
	int n = atoi(argv[2]);
	int nregions = 1;
	if (!strcmp(prov, "regions")) {
		nregions = n >= 6 ? 3 : 2;
	} else {
		int found = 0;
		for (int i = 0; i < wccl_provider_count(); i++) {
			struct wccl_provider_info info;
			wccl_provider_info(i, &info);
			if (!strcmp(info.name, prov) && !info.available)
				found = 1;
		}
		if (!found) {
			printf("provider %s not available here: skip\n", prov);
			return 77;
		}
		setenv("WCCL_TRANSPORT", prov, 1);
	}
	setenv("WCCL_TIMEOUT_MS", "60000", 0);
	int bad = 0;
	if (nregions > 1) {
		bad |= launch(n, "hier", "algo", nregions);
		bad |= launch(n, "", "all", nregions);
		return bad;
	}
	bad |= launch(n, "", "all", 1);
	/* Small messages go eagerly by default: run the rendezvous path for
	 * all of them too (2, 5 ranks), and a limit that splits one call
	 * between both paths (3, 4 ranks). */
	if (n >= 2 && n <= 5) {
		setenv("WCCL_EAGER_BYTES", n == 2 || n == 5 ? "0" : "256", 1);
		printf("WCCL_EAGER_BYTES=%s:\n", getenv("WCCL_EAGER_BYTES"));
		bad |= launch(n, "", "all", 1);
		unsetenv("WCCL_EAGER_BYTES");
	}
	if (n <= 4)
		bad |= launch(n, "", "large", 1);
	if (n >= 2)
		bad |= launch(n, "", "direct", 1);
	/* Every out-of-place direct call through the non-temporal copy. */
	if (n == 3 || n == 4) {
		setenv("WCCL_DIRECT_NT_BYTES", "1", 1);
		printf("WCCL_DIRECT_NT_BYTES=1:\n");
		bad |= launch(n, "", "direct", 1);
		unsetenv("WCCL_DIRECT_NT_BYTES");
	}
	static const char *const algos[] = { "ring", "tree", "rhd", "rd",
					     "hier" };
	for (int a = 0; a < 5; a++)
		bad |= launch(n, algos[a], "algo", 1);
	return bad;
}
