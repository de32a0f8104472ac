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
	return 0;
}
