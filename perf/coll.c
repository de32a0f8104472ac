/* SPDX-License-Identifier: MIT */
/*
 * wccl-perf allreduce|allgather|reduce_scatter|broadcast|reduce|alltoall:
 * the collectives benchmark in the shape of nccl-tests. Every rank runs
 * this program (wccl-run -n N, mpirun, srun or torchrun start them); the
 * communicator comes from the launcher's environment. Rank 0 prints.
 *
 * Sizes are bytes per rank as nccl-tests reports them: allreduce,
 * broadcast, reduce = the buffer; allgather = the gathered result;
 * reduce_scatter = the input; alltoall = one rank's whole send buffer.
 * busbw = algbw x the collective's factor (nccl-tests' PERFORMANCE.md):
 * allreduce 2(n-1)/n, allgather, reduce_scatter and alltoall (n-1)/n,
 * broadcast and reduce 1.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wccl/wccl.h>

#include "collectives/dtype.h"
#include "core/clock.h"
#include "core/params.h"
#include "perf.h"

enum coll { C_ALLREDUCE, C_ALLGATHER, C_REDUCE_SCATTER, C_BROADCAST,
	    C_REDUCE, C_ALLTOALL, C_COUNT };

static const char *const coll_names[C_COUNT] = {
	"allreduce", "allgather", "reduce_scatter",
	"broadcast", "reduce",	  "alltoall",
};

struct coll_opts {
	enum coll coll;
	uint64_t min_bytes, max_bytes;
	double factor;
	int iters, warmup;
	int check;
	int dtype, op, root;
	int json;
};

static void coll_usage(FILE *f)
{
	fprintf(f,
		"usage: wccl-perf allreduce|allgather|reduce_scatter|broadcast|"
		"reduce|alltoall [options]\n"
		"  -b SIZE   smallest size in bytes (default 8)\n"
		"  -e SIZE   largest size (default 64M)\n"
		"  -f N      multiply the size by N each step (default 2)\n"
		"  -n N      timed iterations per size (default 20)\n"
		"  -w N      warm-up iterations per size (default 5)\n"
		"  -c 0|1    check results (default 1)\n"
		"  -d TYPE   int8 uint8 int32 uint32 int64 uint64 fp16 bf16 "
		"fp32 fp64 (default fp32)\n"
		"  -o OP     sum prod min max avg (default sum)\n"
		"  -r ROOT   root of broadcast and reduce (default 0)\n"
		"  --json    one JSON object per size\n"
		"Run one process per rank: wccl-run -n 4 wccl-perf allreduce\n");
}

static int parse(struct coll_opts *o, int argc, char **argv)
{
	*o = (struct coll_opts){ .min_bytes = 8, .max_bytes = 64u << 20,
				 .factor = 2, .iters = 20, .warmup = 5,
				 .check = 1, .dtype = WCCL_FP32,
				 .op = WCCL_SUM };
	for (int c = 0; c < C_COUNT; c++)
		if (!strcmp(argv[0], coll_names[c]))
			o->coll = (enum coll)c;
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "b:e:f:n:w:c:d:o:r:h", longopts,
				 NULL)) != -1) {
		uint64_t v;
		switch (ch) {
		case 'b':
		case 'e':
			if (wccl_parse_size(optarg, &v)) {
				fprintf(stderr, "wccl-perf: bad size '%s'\n",
					optarg);
				return -1;
			}
			*(ch == 'b' ? &o->min_bytes : &o->max_bytes) = v;
			break;
		case 'f':
			o->factor = atof(optarg);
			break;
		case 'n':
			o->iters = atoi(optarg);
			break;
		case 'w':
			o->warmup = atoi(optarg);
			break;
		case 'c':
			o->check = atoi(optarg);
			break;
		case 'r':
			o->root = atoi(optarg);
			break;
		case 'd':
			o->dtype = -1;
			for (int t = 0; t < WCCL_DTYPE_COUNT; t++)
				if (!strcmp(optarg, wccl_dtype_name(t)))
					o->dtype = t;
			if (o->dtype < 0) {
				fprintf(stderr, "wccl-perf: unknown type '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'o':
			o->op = -1;
			for (int p = 0; p < WCCL_REDOP_COUNT; p++)
				if (!strcmp(optarg, wccl_redop_name(p)))
					o->op = p;
			if (o->op < 0) {
				fprintf(stderr, "wccl-perf: unknown op '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'J':
			o->json = 1;
			break;
		case 'h':
			coll_usage(stdout);
			return 1;
		default:
			coll_usage(stderr);
			return -1;
		}
	}
	if (o->factor <= 1 || o->iters <= 0 || o->warmup < 0 ||
	    o->min_bytes > o->max_bytes) {
		fprintf(stderr, "wccl-perf: need -f > 1, -n > 0, -w >= 0, "
				"-b <= -e\n");
		return -1;
	}
	return 0;
}

static double bus_factor(enum coll c, int n)
{
	switch (c) {
	case C_ALLREDUCE:
		return n > 1 ? 2.0 * (n - 1) / n : 0;
	case C_ALLGATHER:
	case C_REDUCE_SCATTER:
	case C_ALLTOALL:
		return n > 1 ? (double)(n - 1) / n : 0;
	default:
		return 1;
	}
}

/* Elements each rank contributes for a reported size. */
static uint64_t count_for(enum coll c, uint64_t bytes, size_t es, int n)
{
	uint64_t elems = bytes / es;
	if (c == C_ALLGATHER || c == C_REDUCE_SCATTER || c == C_ALLTOALL)
		elems /= (uint64_t)n;
	return elems;
}

static int run_once(const struct coll_opts *o, struct wccl_comm *comm,
		    void *in, void *out, uint64_t count)
{
	switch (o->coll) {
	case C_ALLREDUCE:
		return wccl_allreduce(in, out, count, o->dtype, o->op, comm);
	case C_ALLGATHER:
		return wccl_allgather(in, out, count, o->dtype, comm);
	case C_REDUCE_SCATTER:
		return wccl_reduce_scatter(in, out, count, o->dtype, o->op,
					   comm);
	case C_BROADCAST:
		return wccl_broadcast(in, out, count, o->dtype, o->root, comm);
	case C_REDUCE:
		return wccl_reduce(in, out, count, o->dtype, o->op, o->root,
				   comm);
	case C_ALLTOALL:
		return wccl_alltoall(in, out, count, o->dtype, comm);
	default:
		return WCCL_EINVAL;
	}
}

/* Input value of element i at a rank: small integers, exact in any type. */
static double value(int rank, uint64_t i)
{
	return (double)(1 + (rank + i) % 3);
}

static void fill(void *buf, uint64_t n, int dtype, int rank, uint64_t first)
{
	for (uint64_t i = 0; i < n; i++) {
		double v = value(rank, first + i);
		switch (dtype) {
		case WCCL_FP32: ((float *)buf)[i] = (float)v; break;
		case WCCL_FP64: ((double *)buf)[i] = v; break;
		case WCCL_INT32: case WCCL_UINT32:
			((int32_t *)buf)[i] = (int32_t)v; break;
		case WCCL_INT64: case WCCL_UINT64:
			((int64_t *)buf)[i] = (int64_t)v; break;
		case WCCL_INT8: case WCCL_UINT8:
			((int8_t *)buf)[i] = (int8_t)v; break;
		default: /* fp16/bf16: leave zeros, -c is not checked */
			break;
		}
	}
}

static double get(const void *buf, uint64_t i, int dtype)
{
	switch (dtype) {
	case WCCL_FP32: return ((const float *)buf)[i];
	case WCCL_FP64: return ((const double *)buf)[i];
	case WCCL_INT32: case WCCL_UINT32: return ((const int32_t *)buf)[i];
	case WCCL_INT64: case WCCL_UINT64:
		return (double)((const int64_t *)buf)[i];
	case WCCL_INT8: case WCCL_UINT8: return ((const int8_t *)buf)[i];
	default: return 0;
	}
}

static double reduce_ref(uint64_t i, int n, int op)
{
	double acc = value(0, i);
	for (int r = 1; r < n; r++) {
		double v = value(r, i);
		if (op == WCCL_SUM || op == WCCL_AVG) acc += v;
		else if (op == WCCL_PROD) acc *= v;
		else if (op == WCCL_MIN) acc = v < acc ? v : acc;
		else acc = v > acc ? v : acc;
	}
	return op == WCCL_AVG ? acc / n : acc;
}

/* Elements of this rank's output that are wrong after one run. */
static uint64_t count_wrong(const struct coll_opts *o, const void *out,
			    uint64_t count, int rank, int n)
{
	if (o->dtype == WCCL_FP16 || o->dtype == WCCL_BF16)
		return 0;
	uint64_t wrong = 0;
	int avg_int = o->op == WCCL_AVG && o->dtype <= WCCL_UINT64;
	for (uint64_t i = 0; i < count * (o->coll == C_ALLGATHER ||
					  o->coll == C_ALLTOALL ? n : 1); i++) {
		double want, got = get(out, i, o->dtype);
		switch (o->coll) {
		case C_ALLREDUCE:
			want = reduce_ref(i, n, o->op);
			break;
		case C_REDUCE:
			if (rank != o->root)
				return 0;
			want = reduce_ref(i, n, o->op);
			break;
		case C_REDUCE_SCATTER:
			want = reduce_ref((uint64_t)rank * count + i, n, o->op);
			break;
		case C_BROADCAST:
			want = value(o->root, i);
			break;
		case C_ALLGATHER:
			want = value((int)(i / count), i % count);
			break;
		case C_ALLTOALL:
			/* Block j came from rank j, element (rank*count + k). */
			want = value((int)(i / count),
				     (uint64_t)rank * count + i % count);
			break;
		default:
			want = got;
		}
		if (avg_int)
			want = trunc(want);
		if (fabs(got - want) > 1e-6 * fabs(want))
			wrong++;
	}
	return wrong;
}

struct result {
	double us;
	double algbw, busbw;
	uint64_t wrong;
};

static int measure(const struct coll_opts *o, struct wccl_comm *comm,
		   uint64_t count, int inplace, uint8_t *in, uint8_t *out,
		   size_t es, struct result *res)
{
	int rank = wccl_comm_rank(comm), n = wccl_comm_size(comm);
	uint64_t in_elems = count * (o->coll == C_REDUCE_SCATTER ||
				     o->coll == C_ALLTOALL ? (uint64_t)n : 1);
	uint8_t *src = in, *dst = out;
	if (inplace) {
		dst = in;
		if (o->coll == C_ALLGATHER)
			src = in + (size_t)rank * count * es;
		if (o->coll == C_REDUCE_SCATTER)
			dst = in + (size_t)rank * count * es;
	}
	int rc = 0;
	for (int i = 0; i < o->warmup && !rc; i++)
		rc = run_once(o, comm, src, dst, count);
	if (!rc)
		rc = wccl_barrier(comm);
	uint64_t t0 = wccl_now_ns();
	for (int i = 0; i < o->iters && !rc; i++)
		rc = run_once(o, comm, src, dst, count);
	double us = (double)(wccl_now_ns() - t0) / 1e3 / o->iters;
	/* One checked run on fresh inputs. */
	res->wrong = 0;
	if (!rc && o->check) {
		fill(src, in_elems, o->dtype, rank, 0);
		if (o->coll == C_ALLTOALL)
			for (int j = 0; j < n; j++)
				fill(src + (size_t)j * count * es, count,
				     o->dtype, rank, (uint64_t)j * count);
		rc = run_once(o, comm, src, dst, count);
		if (!rc)
			res->wrong = count_wrong(o, dst, count, rank, n);
	}
	if (rc)
		return rc;
	/* The slowest rank's time, and everyone's wrong elements. */
	double stats[2] = { us, (double)res->wrong };
	double all_max[2];
	rc = wccl_allreduce(stats, all_max, 1, WCCL_FP64, WCCL_MAX, comm);
	double wrong_sum;
	if (!rc)
		rc = wccl_allreduce(&stats[1], &wrong_sum, 1, WCCL_FP64,
				    WCCL_SUM, comm);
	if (rc)
		return rc;
	res->us = all_max[0];
	res->wrong = (uint64_t)wrong_sum;
	uint64_t bytes = count * es * (o->coll == C_ALLGATHER ||
				       o->coll == C_REDUCE_SCATTER ||
				       o->coll == C_ALLTOALL ? (uint64_t)n : 1);
	res->algbw = (double)bytes / (res->us * 1e3);
	res->busbw = res->algbw * bus_factor(o->coll, n);
	return 0;
}

int perf_coll_main(int argc, char **argv)
{
	struct coll_opts o;
	int rc = parse(&o, argc, argv);
	if (rc)
		return rc > 0 ? 0 : 2;
	struct wccl_comm *comm;
	rc = wccl_comm_init_env(&comm);
	if (rc) {
		fprintf(stderr,
			"wccl-perf %s: cannot make the communicator: %s\n"
			"  (run one process per rank: wccl-run -n 4 wccl-perf "
			"%s, or under mpirun/srun/torchrun)\n",
			coll_names[o.coll], wccl_strerror(rc),
			coll_names[o.coll]);
		return 1;
	}
	int rank = wccl_comm_rank(comm), n = wccl_comm_size(comm);
	size_t es = wccl_dtype_size(o.dtype);
	if (o.root < 0 || o.root >= n) {
		if (rank == 0)
			fprintf(stderr, "wccl-perf: -r %d is not a rank\n",
				o.root);
		wccl_comm_destroy(comm);
		return 2;
	}
	/* Every rank says what it is connected with; rank 0 prints all. */
	char desc[1024], *all = calloc((size_t)n, sizeof(desc));
	wccl_comm_describe(comm, desc, sizeof(desc));
	rc = all ? wccl_allgather(desc, all, sizeof(desc), WCCL_UINT8, comm)
		 : WCCL_ENOMEM;
	if (!rc && rank == 0 && !o.json) {
		printf("# wccl-perf %s: %d ranks, %s %s, %d iterations, %d "
		       "warm-up\n# transports (rank: peer:provider ...)\n",
		       coll_names[o.coll], n, wccl_dtype_name(o.dtype),
		       wccl_redop_name(o.op), o.iters, o.warmup);
		for (int r = 0; r < n; r++)
			printf("#   %s\n", all + (size_t)r * sizeof(desc));
		printf("#\n# %10s %12s %6s %6s %5s %6s   %9s %7s %7s %6s   "
		       "%9s %7s %7s %6s\n",
		       "", "", "", "", "", "", "out-of-place", "", "", "",
		       "in-place", "", "", "");
		printf("# %10s %12s %6s %6s %5s %6s   %9s %7s %7s %6s   %9s "
		       "%7s %7s %6s\n",
		       "size", "count", "type", "redop", "root", "algo",
		       "time", "algbw", "busbw", "#wrong", "time", "algbw",
		       "busbw", "#wrong");
		printf("# %10s %12s %6s %6s %5s %6s   %9s %7s %7s %6s   %9s "
		       "%7s %7s %6s\n",
		       "(B)", "(elements)", "", "", "", "", "(us)", "(GB/s)",
		       "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
	}
	free(all);
	/* Shareable memory, as a framework would get from wccl_mem_alloc:
	 * same-host peers then copy it in one memcpy. */
	size_t cap = (size_t)o.max_bytes + 64 * es * (size_t)n;
	uint8_t *in = NULL, *out = NULL;
	if (!rc && (wccl_mem_alloc(cap, (void **)&in) ||
		    wccl_mem_alloc(cap, (void **)&out)))
		rc = WCCL_ENOMEM;
	if (!rc) {
		memset(in, 0, cap);
		memset(out, 0, cap);
	}
	double busbw_sum = 0;
	int nsizes = 0;
	uint64_t total_wrong = 0;
	for (uint64_t bytes = o.min_bytes; !rc && bytes <= o.max_bytes;
	     bytes = (uint64_t)((double)bytes * o.factor) > bytes
			     ? (uint64_t)((double)bytes * o.factor)
			     : bytes + 1) {
		uint64_t count = count_for(o.coll, bytes, es, n);
		struct result r[2];
		rc = measure(&o, comm, count, 0, in, out, es, &r[0]);
		if (!rc)
			rc = measure(&o, comm, count, 1, in, out, es, &r[1]);
		if (rc)
			break;
		char algo[16] = "-", why[160] = "";
		if (o.coll == C_ALLREDUCE)
			wccl_comm_explain_allreduce(comm, count, o.dtype, algo,
						    sizeof(algo), why,
						    sizeof(why));
		uint64_t shown = count * es *
				 (o.coll == C_ALLGATHER ||
						  o.coll == C_REDUCE_SCATTER ||
						  o.coll == C_ALLTOALL
					  ? (uint64_t)n
					  : 1);
		int root = o.coll == C_BROADCAST || o.coll == C_REDUCE ? o.root
								      : -1;
		busbw_sum += r[0].busbw;
		nsizes++;
		total_wrong += r[0].wrong + r[1].wrong;
		if (rank != 0)
			continue;
		if (o.json) {
			printf("{\"collective\":\"%s\",\"ranks\":%d,\"size\":%llu,"
			       "\"count\":%llu,\"type\":\"%s\",\"redop\":\"%s\","
			       "\"root\":%d,\"algo\":\"%s\",\"why\":\"%s\","
			       "\"oop_us\":%.2f,\"oop_algbw\":%.4f,"
			       "\"oop_busbw\":%.4f,\"oop_wrong\":%llu,"
			       "\"ip_us\":%.2f,\"ip_algbw\":%.4f,"
			       "\"ip_busbw\":%.4f,\"ip_wrong\":%llu}\n",
			       coll_names[o.coll], n,
			       (unsigned long long)shown,
			       (unsigned long long)count,
			       wccl_dtype_name(o.dtype), wccl_redop_name(o.op),
			       root, algo, why, r[0].us, r[0].algbw,
			       r[0].busbw, (unsigned long long)r[0].wrong,
			       r[1].us, r[1].algbw, r[1].busbw,
			       (unsigned long long)r[1].wrong);
		} else {
			printf("  %10llu %12llu %6s %6s %5d %6s   %9.1f %7.2f "
			       "%7.2f %6llu   %9.1f %7.2f %7.2f %6llu\n",
			       (unsigned long long)shown,
			       (unsigned long long)count,
			       wccl_dtype_name(o.dtype), wccl_redop_name(o.op),
			       root, algo, r[0].us, r[0].algbw, r[0].busbw,
			       (unsigned long long)r[0].wrong, r[1].us,
			       r[1].algbw, r[1].busbw,
			       (unsigned long long)r[1].wrong);
		}
		fflush(stdout);
	}
	if (rc) {
		int err, who;
		char msg[256];
		wccl_comm_get_async_error(comm, &err, &who, msg, sizeof(msg));
		fprintf(stderr, "wccl-perf %s: rank %d: %s%s%s\n",
			coll_names[o.coll], rank, wccl_strerror(rc),
			msg[0] ? ": " : "", msg);
	} else if (rank == 0 && !o.json) {
		printf("# Out of bounds values : %llu %s\n",
		       (unsigned long long)total_wrong,
		       total_wrong ? "FAILED" : "OK");
		printf("# Avg bus bandwidth    : %.4f\n#\n",
		       nsizes ? busbw_sum / nsizes : 0);
	}
	wccl_mem_free(in);
	wccl_mem_free(out);
	int drc = rc ? wccl_comm_abort(comm) : wccl_comm_destroy(comm);
	return rc || drc || total_wrong ? 1 : 0;
}
