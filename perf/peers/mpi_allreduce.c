/* SPDX-License-Identifier: MIT */
/*
 * mpi_allreduce: MPI_Allreduce (fp32, sum, out of place) timing driver for
 * perf/bench-coll.sh, measured the way wccl-perf allreduce measures:
 * WARMUP untimed calls, a barrier, ITERS timed calls, each rank's average,
 * the slowest rank's average reported. Sizes are bytes per rank; busbw =
 * algbw x 2(n-1)/n (nccl-tests). One checked call per size.
 *
 *   mpi_allreduce [-b MIN] [-e MAX] [-f FACTOR] [-n ITERS] [-w WARMUP]
 *                 [-t TOOLNAME]
 * Built against Open MPI (mpicc.openmpi) and MPICH (mpicc.mpich).
 * Rank 0 prints one JSON object per size.
 */
#include <mpi.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	switch (*end) {
	case 'k': case 'K': v *= 1024; break;
	case 'm': case 'M': v *= 1024 * 1024; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
	default: break;
	}
	return (uint64_t)v;
}

int main(int argc, char **argv)
{
	uint64_t minb = 8, maxb = 64u << 20;
	double factor = 2;
	int iters = 20, warmup = 5, ch;
	const char *tool = "mpi";
	MPI_Init(&argc, &argv);
	while ((ch = getopt(argc, argv, "b:e:f:n:w:t:")) != -1) {
		switch (ch) {
		case 'b': minb = parse_size(optarg); break;
		case 'e': maxb = parse_size(optarg); break;
		case 'f': factor = atof(optarg); break;
		case 'n': iters = atoi(optarg); break;
		case 'w': warmup = atoi(optarg); break;
		case 't': tool = optarg; break;
		default:
			fprintf(stderr, "usage: mpi_allreduce [-b MIN] [-e MAX] "
					"[-f F] [-n ITERS] [-w WARMUP] [-t NAME]\n");
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
	}
	int rank, n;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &n);
	char lib[MPI_MAX_LIBRARY_VERSION_STRING];
	int liblen;
	MPI_Get_library_version(lib, &liblen);
	for (char *p = lib; *p; p++)
		if (*p == '\n' || *p == '"' || *p == '\\' || *p == '\t')
			*p = ' ';
	lib[60 < liblen ? 60 : liblen] = 0;

	size_t cap = (size_t)maxb + 64;
	float *in = malloc(cap), *out = malloc(cap);
	if (!in || !out)
		MPI_Abort(MPI_COMM_WORLD, 1);
	memset(in, 0, cap);
	memset(out, 0, cap);
	int bad_total = 0;
	for (uint64_t bytes = minb; bytes <= maxb;
	     bytes = (uint64_t)(bytes * factor) > bytes
			     ? (uint64_t)(bytes * factor) : bytes + 1) {
		int count = (int)(bytes / sizeof(float));
		for (int i = 0; i < warmup; i++)
			MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM,
				      MPI_COMM_WORLD);
		MPI_Barrier(MPI_COMM_WORLD);
		double t0 = MPI_Wtime();
		for (int i = 0; i < iters; i++)
			MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM,
				      MPI_COMM_WORLD);
		double us = (MPI_Wtime() - t0) * 1e6 / iters, us_max;
		/* check: in[i] = rank + i % 7 -> sum = n(n-1)/2 + n (i % 7) */
		for (int i = 0; i < count; i++)
			in[i] = (float)(rank + i % 7);
		MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM,
			      MPI_COMM_WORLD);
		int bad = 0;
		for (int i = 0; i < count; i++)
			if (fabsf(out[i] - (float)(n * (n - 1) / 2 +
						   n * (i % 7))) > 1e-3f)
				bad++;
		int bad_sum;
		MPI_Reduce(&us, &us_max, 1, MPI_DOUBLE, MPI_MAX, 0,
			   MPI_COMM_WORLD);
		MPI_Reduce(&bad, &bad_sum, 1, MPI_INT, MPI_SUM, 0,
			   MPI_COMM_WORLD);
		bad_total += bad_sum;
		if (rank == 0) {
			double algbw = (double)count * sizeof(float) /
				       (us_max * 1e3);
			printf("{\"tool\":\"%s\",\"collective\":\"allreduce\","
			       "\"ranks\":%d,\"size\":%llu,\"count\":%d,"
			       "\"type\":\"fp32\",\"algo\":\"MPI_Allreduce\","
			       "\"lib\":\"%s\",\"iters\":%d,\"us\":%.2f,"
			       "\"algbw\":%.4f,\"busbw\":%.4f,\"wrong\":%d}\n",
			       tool, n, (unsigned long long)count * sizeof(float),
			       count, lib, iters, us_max, algbw,
			       algbw * 2.0 * (n - 1) / n, bad_sum);
			fflush(stdout);
		}
	}
	free(in);
	free(out);
	MPI_Finalize();
	return bad_total ? 1 : 0;
}
