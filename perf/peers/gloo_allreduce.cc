// SPDX-License-Identifier: MIT
//
// gloo_allreduce: allreduce timing driver on libgloo's TCP transport for
// perf/bench-coll.sh. It forks N ranks itself; they meet through a
// gloo::rendezvous::FileStore in a temporary directory and connect a full
// mesh over 127.0.0.1. fp32 sum with each of Gloo's allreduce algorithms
// (ring, ring_chunked, halving_doubling, bcube: the classic Algorithm
// classes that Debian's libgloo ships), measured the way wccl-perf
// allreduce measures: WARMUP untimed runs, a barrier, ITERS timed runs,
// each rank's average, the slowest rank's average reported. Gloo's
// algorithms are in place. Sizes are bytes per rank; busbw = algbw x
// 2(n-1)/n (nccl-tests). Rank 0 prints one JSON object per (size, algo).
//
//   gloo_allreduce -N RANKS [-b MIN] [-e MAX] [-f F] [-n ITERS] [-w WARMUP]
//                  [-a ALGO[,ALGO...]]
//
// Build: g++ -O2 -std=c++17 gloo_allreduce.cc -o gloo_allreduce -lgloo
#include <gloo/allreduce_bcube.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/barrier_all_to_all.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <csignal>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

struct Opts {
	int n = 2;
	uint64_t minb = 8, maxb = 64u << 20;
	double factor = 2;
	int iters = 20, warmup = 5;
	std::vector<std::string> algos{ "ring", "ring_chunked",
					"halving_doubling", "bcube" };
	std::string dir;
};

uint64_t parse_size(const char *s)
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

double now_us()
{
	return std::chrono::duration<double, std::micro>(
		       std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

std::unique_ptr<gloo::Algorithm>
make_algo(const std::string &name, const std::shared_ptr<gloo::Context> &ctx,
	  float *buf, int count)
{
	std::vector<float *> ptrs{ buf };
	if (name == "ring")
		return std::make_unique<gloo::AllreduceRing<float>>(ctx, ptrs,
								    count);
	if (name == "ring_chunked")
		return std::make_unique<gloo::AllreduceRingChunked<float>>(
			ctx, ptrs, count);
	if (name == "halving_doubling")
		return std::make_unique<gloo::AllreduceHalvingDoubling<float>>(
			ctx, ptrs, count);
	if (name == "bcube")
		return std::make_unique<gloo::AllreduceBcube<float>>(ctx, ptrs,
								     count);
	return nullptr;
}

int run_rank(const Opts &o, int rank)
{
	gloo::transport::tcp::attr attr;
	attr.hostname = "127.0.0.1";
	attr.ai_family = AF_INET;
	auto dev = gloo::transport::tcp::CreateDevice(attr);
	gloo::rendezvous::FileStore fstore(o.dir);
	gloo::rendezvous::PrefixStore store("gloo-bench", fstore);
	auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, o.n);
	ctx->connectFullMesh(store, dev);
	std::shared_ptr<gloo::Context> base = ctx;

	size_t cap = (size_t)o.maxb + 64;
	float *buf = (float *)aligned_alloc(4096, (cap + 4095) & ~4095ul);
	memset(buf, 0, cap);
	double stat[2];
	std::vector<double *> sp{ stat };
	int bad_total = 0;
	for (uint64_t bytes = o.minb; bytes <= o.maxb;
	     bytes = (uint64_t)(bytes * o.factor) > bytes
			     ? (uint64_t)(bytes * o.factor)
			     : bytes + 1) {
		int count = (int)(bytes / sizeof(float));
		for (const auto &name : o.algos) {
			std::unique_ptr<gloo::Algorithm> algo;
			std::string err;
			double us = 0;
			int bad = 0;
			try {
				algo = make_algo(name, base, buf, count);
				if (!algo)
					throw std::runtime_error("unknown algo");
				for (int i = 0; i < o.warmup; i++)
					algo->run();
				gloo::BarrierAllToAll(base).run();
				double t0 = now_us();
				for (int i = 0; i < o.iters; i++)
					algo->run();
				us = (now_us() - t0) / o.iters;
				// check: x[i] = rank + i % 7
				for (int i = 0; i < count; i++)
					buf[i] = (float)(rank + i % 7);
				algo->run();
				for (int i = 0; i < count; i++)
					if (std::fabs(buf[i] -
						      (float)(o.n * (o.n - 1) / 2 +
							      o.n * (i % 7))) >
					    1e-3f)
						bad++;
				memset(buf, 0, (size_t)count * sizeof(float));
			} catch (const std::exception &e) {
				// Same on every rank (e.g. bcube's size limits):
				// reported, not timed.
				err = e.what();
				for (auto &c : err)
					if (c == '"' || c == '\\' || c == '\n')
						c = ' ';
				if (err.size() > 120)
					err.resize(120);
			}
			algo.reset();
			stat[0] = err.empty() ? us : -1;
			stat[1] = bad;
			gloo::AllreduceRing<double>(base, sp, 1,
						    gloo::ReductionFunction<
							    double>::max)
				.run();
			double us_max = stat[0];
			stat[0] = bad;
			gloo::AllreduceRing<double>(base, sp, 1).run();
			int bad_sum = (int)stat[0];
			bad_total += bad_sum;
			if (rank != 0)
				continue;
			if (!err.empty() || us_max < 0) {
				printf("{\"tool\":\"gloo\",\"collective\":\"allreduce\","
				       "\"ranks\":%d,\"size\":%llu,\"algo\":\"%s\","
				       "\"error\":\"%s\"}\n",
				       o.n,
				       (unsigned long long)count * sizeof(float),
				       name.c_str(), err.c_str());
			} else {
				double algbw = (double)count * sizeof(float) /
					       (us_max * 1e3);
				printf("{\"tool\":\"gloo\",\"collective\":\"allreduce\","
				       "\"ranks\":%d,\"size\":%llu,\"count\":%d,"
				       "\"type\":\"fp32\",\"algo\":\"%s\","
				       "\"iters\":%d,\"us\":%.2f,\"algbw\":%.4f,"
				       "\"busbw\":%.4f,\"wrong\":%d}\n",
				       o.n,
				       (unsigned long long)count * sizeof(float),
				       count, name.c_str(), o.iters, us_max, algbw,
				       algbw * 2.0 * (o.n - 1) / o.n, bad_sum);
			}
			fflush(stdout);
		}
	}
	free(buf);
	return bad_total ? 1 : 0;
}

} // namespace

int main(int argc, char **argv)
{
	Opts o;
	int ch;
	while ((ch = getopt(argc, argv, "N:b:e:f:n:w:a:")) != -1) {
		switch (ch) {
		case 'N': o.n = atoi(optarg); break;
		case 'b': o.minb = parse_size(optarg); break;
		case 'e': o.maxb = parse_size(optarg); break;
		case 'f': o.factor = atof(optarg); break;
		case 'n': o.iters = atoi(optarg); break;
		case 'w': o.warmup = atoi(optarg); break;
		case 'a': {
			o.algos.clear();
			std::string s(optarg);
			size_t p;
			while ((p = s.find(',')) != std::string::npos) {
				o.algos.push_back(s.substr(0, p));
				s.erase(0, p + 1);
			}
			o.algos.push_back(s);
			break;
		}
		default:
			fprintf(stderr,
				"usage: gloo_allreduce -N RANKS [-b MIN] [-e MAX] "
				"[-f F] [-n ITERS] [-w WARMUP] [-a ALGOS]\n");
			return 2;
		}
	}
	if (o.n < 1 || o.factor <= 1 || o.iters < 1 || o.minb > o.maxb)
		return 2;
	char tmpl[] = "/tmp/gloo-bench-XXXXXX";
	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		return 1;
	}
	o.dir = tmpl;
	std::vector<pid_t> kids;
	for (int r = 0; r < o.n; r++) {
		pid_t pid = fork();
		if (pid == 0) {
			// Die with the launcher (timeout(1) kills it).
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			int rc;
			try {
				rc = run_rank(o, r);
			} catch (const std::exception &e) {
				fprintf(stderr, "gloo_allreduce rank %d: %s\n", r,
					e.what());
				rc = 1;
			}
			fflush(stdout);
			_exit(rc);
		}
		if (pid < 0) {
			perror("fork");
			for (pid_t k : kids)
				kill(k, SIGTERM);
			return 1;
		}
		kids.push_back(pid);
	}
	int rc = 0;
	for (pid_t k : kids) {
		int st;
		if (waitpid(k, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			rc = 1;
	}
	std::string cmd = "rm -rf '" + o.dir + "'";
	if (system(cmd.c_str())) {
	}
	return rc;
}
