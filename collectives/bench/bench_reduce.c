/* SPDX-License-Identifier: MIT */
/*
 * bench-reduce: throughput of the reduction kernels against the host's
 * memory bandwidth.
 *
 * A reduce of N bytes reads two inputs and writes one output, so it moves
 * 3N bytes; that is what "GB/s" counts here. The bound is the better of
 * memcpy (2N bytes moved) and a restrict-qualified a[i] = b[i] + c[i] loop
 * (3N bytes), both on the same 64 MiB buffers, which no cache holds.
 *
 * Then one rank's share of a same-host direct allreduce, n inputs to n
 * outputs of 512 KiB each (a 2 MiB call at 4 ranks), in 8 KiB chunks:
 * pairwise passes into one output and copies to the others (the pattern
 * before wccl_reduce_fused) against the fused kernel. One thread, so this
 * is the kernels alone, without the other ranks' traffic.
 *
 * Usage: bench-reduce [MiB per buffer, default 64] [repetitions, default 10]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "collectives/half.h"
#include "collectives/reduce.h"
#include "collectives/reduce_half.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The bound loop is written with SSE2 intrinsics (baseline x86-64) so it
 * does not depend on what the vectoriser makes of it at -O2. */
static void triad(float *restrict a, const float *restrict b,
		  const float *restrict c, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	for (; i + 16 <= n; i += 16) {
		for (size_t j = 0; j < 16; j += 4) {
			__m128 x = _mm_loadu_ps(b + i + j);
			__m128 y = _mm_loadu_ps(c + i + j);
			_mm_storeu_ps(a + i + j, _mm_add_ps(x, y));
		}
	}
#endif
	for (; i < n; i++)
		a[i] = b[i] + c[i];
}

enum bench_kind { BENCH_MEMCPY, BENCH_TRIAD, BENCH_REDUCE, BENCH_FP16_PORT };

struct bench_case {
	const char *name;
	enum bench_kind kind;
	enum wccl_dtype dtype;
	int in_place; /* dst == a, as the executor reduces into its buffer */
};

/* Best of 'reps' runs, in GB/s of bytes moved. */
static double run_case(const struct bench_case *c, void *dst, void *a,
		       void *b, size_t bytes, int reps)
{
	size_t esize = c->kind == BENCH_REDUCE || c->kind == BENCH_FP16_PORT
			       ? wccl_dtype_size(c->dtype)
			       : 4;
	size_t count = bytes / esize;
	double moved = c->kind == BENCH_MEMCPY ? 2.0 * bytes : 3.0 * bytes;
	void *out = c->in_place ? a : dst;
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now_s();
		switch (c->kind) {
		case BENCH_MEMCPY:
			memcpy(dst, a, bytes);
			break;
		case BENCH_TRIAD:
			triad(dst, a, b, count);
			break;
		case BENCH_REDUCE:
			wccl_reduce_local(out, a, b, count, c->dtype, WCCL_SUM);
			break;
		case BENCH_FP16_PORT:
			wccl_reduce_fp16_portable(out, a, b, count,
						  WCCL_SUM);
			break;
		}
		double t = now_s() - t0;
		if (t < best)
			best = t;
	}
	return moved / best / 1e9;
}

/* Small values so repeated in-place sums stay finite in every type. */
static void fill(void *p, size_t bytes)
{
	uint16_t *h = p;
	for (size_t i = 0; i < bytes / 2; i++)
		h[i] = (uint16_t)(0x3c00u + (i & 0xff));
	if (bytes / 4) {
		float *f = p;
		for (size_t i = 0; i < bytes / 4 / 2; i++)
			f[i] = 0.0f;
	}
}

#define SHARE_BYTES (512u * 1024u)
#define SHARE_CHUNK (8u * 1024u)
#define SHARE_MAX_N 8

/* One share in fp32 sum: @how 0 pairwise passes into one output + copies,
 * 1 fused into all outputs, 2 fused into one output + copies. */
static void share_once(float **out, const float **in, int n, int how)
{
	size_t step = SHARE_CHUNK / sizeof(float);
	void *const *d = (void *const *)out;
	const void *const *s = (const void *const *)in;
	for (size_t e = 0; e < SHARE_BYTES / sizeof(float); e += step) {
		if (how == 1) {
			wccl_reduce_fused(d, n, s, n, e, step, WCCL_FP32,
					  WCCL_SUM);
			continue;
		}
		if (how == 2) {
			wccl_reduce_fused(d, 1, s, n, e, step, WCCL_FP32,
					  WCCL_SUM);
		} else {
			wccl_reduce_local(out[0] + e, in[0] + e, in[1] + e,
					  step, WCCL_FP32, WCCL_SUM);
			for (int p = 2; p < n; p++)
				wccl_reduce_local(out[0] + e, out[0] + e,
						  in[p] + e, step, WCCL_FP32,
						  WCCL_SUM);
		}
		for (int p = 1; p < n; p++)
			memcpy(out[p] + e, out[0] + e, SHARE_CHUNK);
	}
}

/* Best time of @reps shares, in microseconds. */
static double share_us(float **out, const float **in, int n, int how,
		       int reps)
{
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now_s();
		share_once(out, in, n, how);
		double t = now_s() - t0;
		if (t < best)
			best = t;
	}
	return best * 1e6;
}

static void bench_shares(int reps)
{
	float *in[SHARE_MAX_N], *out[SHARE_MAX_N];
	for (int p = 0; p < SHARE_MAX_N; p++) {
		in[p] = aligned_alloc(64, SHARE_BYTES);
		out[p] = aligned_alloc(64, SHARE_BYTES);
		if (!in[p] || !out[p]) {
			fprintf(stderr, "bench-reduce: cannot allocate\n");
			exit(1);
		}
		fill(in[p], SHARE_BYTES);
		memset(out[p], 0, SHARE_BYTES);
	}
	printf("direct share, fp32 sum, n x %u KiB in and out, best of %d:\n",
	       SHARE_BYTES / 1024, reps * 10);
	static const int ns[] = {2, 3, 4, 8};
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		int n = ns[k];
		double pw = share_us(out, (const float **)in, n, 0, reps * 10);
		double fu = share_us(out, (const float **)in, n, 1, reps * 10);
		double f1 = share_us(out, (const float **)in, n, 2, reps * 10);
		printf("  n=%d pairwise+copies %7.1f us, fused %7.1f us "
		       "(%.2fx), fused into one + copies %7.1f us (%.2fx)\n",
		       n, pw, fu, fu / pw, f1, f1 / pw);
	}
	for (int p = 0; p < SHARE_MAX_N; p++) {
		free(in[p]);
		free(out[p]);
	}
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	int reps = argc > 2 ? atoi(argv[2]) : 10;
	size_t bytes = mib << 20;
	void *dst = aligned_alloc(64, bytes), *a = aligned_alloc(64, bytes),
	     *b = aligned_alloc(64, bytes);
	if (!dst || !a || !b || reps < 1) {
		fprintf(stderr, "bench-reduce: cannot allocate 3 x %zu MiB\n",
			mib);
		return 1;
	}
	memset(dst, 0, bytes);
	fill(a, bytes);
	fill(b, bytes);

	const struct bench_case cases[] = {
		{"memcpy (2N bytes)", BENCH_MEMCPY, WCCL_FP32, 0},
		{"triad a=b+c (3N)", BENCH_TRIAD, WCCL_FP32, 0},
		{"fp32 sum dst=a+b", BENCH_REDUCE, WCCL_FP32, 0},
		{"fp32 sum a+=b", BENCH_REDUCE, WCCL_FP32, 1},
		{"fp64 sum a+=b", BENCH_REDUCE, WCCL_FP64, 1},
		{"int32 sum a+=b", BENCH_REDUCE, WCCL_INT32, 1},
		{"bf16 sum a+=b", BENCH_REDUCE, WCCL_BF16, 1},
		{"fp16 sum a+=b", BENCH_REDUCE, WCCL_FP16, 1},
		{"fp16 sum portable", BENCH_FP16_PORT, WCCL_FP16, 1},
	};
	double gbs[sizeof(cases) / sizeof(cases[0])];
	printf("buffers: 3 x %zu MiB, best of %d, fp16 path: %s\n", mib, reps,
	       wccl_cpu_has_f16c() ? "F16C" : "portable");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gbs[i] = run_case(&cases[i], dst, a, b, bytes, reps);
		printf("  %-22s %8.2f GB/s\n", cases[i].name, gbs[i]);
	}
	double bound = gbs[0] > gbs[1] ? gbs[0] : gbs[1];
	printf("memory bound (max of memcpy, triad): %.2f GB/s\n", bound);
	printf("fp32 sum / bound: out-of-place %.0f %%, in-place %.0f %%\n",
	       100.0 * gbs[2] / bound, 100.0 * gbs[3] / bound);
	free(dst);
	free(a);
	free(b);
	bench_shares(reps);
	return 0;
}
