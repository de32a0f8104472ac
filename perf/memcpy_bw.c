/* SPDX-License-Identifier: MIT */
/*
 * Single-thread memcpy bandwidth: copy a SIZE buffer (default 4 MiB) src ->
 * dst for SECONDS (default 2), report GB/s (10^9 bytes) and MiB/s.
 *   memcpy_bw [SIZE_BYTES] [SECONDS] [--json]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	size_t size = 4u << 20;
	double secs = 2.0;
	int json = 0, pos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (pos++ == 0)
			size = (size_t)strtoull(argv[i], NULL, 0);
		else
			secs = atof(argv[i]);
	}
	if (!size || secs <= 0) {
		fprintf(stderr,
			"usage: memcpy_bw [SIZE_BYTES] [SECONDS] [--json]\n");
		return 2;
	}
	char *src = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
	char *dst = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
	if (!src || !dst)
		return 1;
	memset(src, 0x5a, size);
	memset(dst, 0, size);
	for (int i = 0; i < 3; i++) /* warm up caches and TLB */
		memcpy(dst, src, size);
	uint64_t iters = 0, t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
	uint64_t t;
	do {
		memcpy(dst, src, size);
		/* Keep the copy: the compiler may not drop it. */
		__asm__ volatile("" : : "r"(dst) : "memory");
		iters++;
	} while ((t = now_ns()) < end);
	double s = (double)(t - t0) / 1e9;
	double bytes = (double)iters * (double)size;
	if (json)
		printf("{\"test\": \"memcpy\", \"bytes\": %zu, \"iterations\": "
		       "%llu, \"seconds\": %.6f, \"GBps\": %.3f, \"MiBps\": "
		       "%.1f}\n",
		       size, (unsigned long long)iters, s, bytes / s / 1e9,
		       bytes / s / 1048576.0);
	else
		printf("memcpy %zu B: %.3f GB/s (%.1f MiB/s), %llu copies in "
		       "%.2f s\n",
		       size, bytes / s / 1e9, bytes / s / 1048576.0,
		       (unsigned long long)iters, s);
	free(src);
	free(dst);
	return 0;
}
