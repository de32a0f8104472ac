/* SPDX-License-Identifier: MIT */
/* Command line: perftest's flags where perftest has one. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/params.h"
#include "perf.h"

const char *perf_op_name(enum perf_op op)
{
	switch (op) {
	case PERF_OP_WRITE:
		return "write";
	case PERF_OP_WRITE_POLL:
		return "write-poll";
	default:
		return "send";
	}
}

void perf_usage(void)
{
	/* clang-format off */
	static const char text[] =
	"usage: wccl-perf bw|lat [options] [HOST]   (no HOST: server)\n"
	"       wccl-perf demo                      (local bw + lat on every provider)\n"
	"       wccl-perf allreduce|allgather|reduce_scatter|broadcast|reduce|alltoall\n"
	"                 [-b -e -f -n -w -c -d -o -r --json]  (one process per rank, see -h)\n"
	"\n"
	"  HOST: host, host:port or a full provider address (uring:..., shm:...)\n"
	"  --local            run server and client on this host (forks the server)\n"
	"  -p, --port PORT    TCP port for uring (default 18515; --local: any free)\n"
	"  -s, --size SIZE    message size, K/M suffixes (bw 64K, lat 2)\n"
	"  -a, --all          sweep sizes 2 B .. 8 MiB, powers of two\n"
	"  -n, --iters N      iterations (bw 5000, lat 1000)\n"
	"  -D, --duration S   run S seconds per size instead of -n\n"
	"  -q, --qp N         data connections, striped round-robin (bw; max 64)\n"
	"  -t, --tx-depth N   operations in flight per connection (bw, default 128)\n"
	"  -w, --warmup N     unrecorded warm-up round trips (lat, default 100)\n"
	"  --provider NAME    server: provider to listen on (default: the best one\n"
	"                     that reaches other hosts; --local: the best one)\n"
	"                     client: provider for a bare HOST (default uring)\n"
	"  --op write|send|write-poll\n"
	"                     bw default write; lat default send. lat write: write\n"
	"                     with immediate, the peer waits for its completion;\n"
	"                     lat write-poll: plain write, the peer busy-polls the\n"
	"                     message's last byte in its memory (as ib_write_lat)\n"
	"  -c, --check        fill data per iteration and offset, verify at receiver\n"
	"  --json             one JSON object per result line (messages on stderr)\n"
	"  --bind HOST        server bind host for uring (default 0.0.0.0)\n"
	"  --timeout MS       bound on every wait for the peer (default 10000);\n"
	"                     a server waits 300 s for its client\n"
	"  -h, --help\n"
	"\n"
	"Bandwidth is MB/sec with MB = 2^20 bytes (as perftest); --json adds Gb/s\n"
	"(10^9 bits). Latency is half the round trip, in microseconds.\n";
	/* clang-format on */
	fputs(text, stdout);
}

void perf_opts_default(struct perf_opts *o, enum perf_test test)
{
	memset(o, 0, sizeof(*o));
	o->test = test;
	o->op = test == PERF_BW ? PERF_OP_WRITE : PERF_OP_SEND;
	o->bind = "0.0.0.0";
	o->port = PERF_DEFAULT_PORT;
	o->sizes[0] = test == PERF_BW ? 65536 : 2;
	o->n_sizes = 1;
	o->iters = test == PERF_BW ? 5000 : 1000;
	o->conns = 1;
	o->tx_depth = 128;
	o->warmup = 100;
	o->timeout_ms = 10000;
	o->accept_timeout_ms = 300000;
}

static int bad(const char *flag, const char *val)
{
	fprintf(stderr, "wccl-perf: bad value '%s' for %s (see -h)\n", val,
		flag);
	return WCCL_EINVAL;
}

static int num(const char *flag, const char *val, uint64_t lo, uint64_t hi,
	       uint64_t *out)
{
	if (wccl_parse_size(val, out) || *out < lo || *out > hi)
		return bad(flag, val);
	return 0;
}

enum { OPT_PROVIDER = 256, OPT_OP, OPT_JSON, OPT_LOCAL, OPT_BIND, OPT_TIMEOUT };

int perf_opts_parse(struct perf_opts *o, enum perf_test test, int argc,
		    char **argv)
{
	static const struct option longs[] = {
	    {"port", required_argument, NULL, 'p'},
	    {"size", required_argument, NULL, 's'},
	    {"all", no_argument, NULL, 'a'},
	    {"iters", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'D'},
	    {"qp", required_argument, NULL, 'q'},
	    {"tx-depth", required_argument, NULL, 't'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"check", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {"provider", required_argument, NULL, OPT_PROVIDER},
	    {"op", required_argument, NULL, OPT_OP},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"local", no_argument, NULL, OPT_LOCAL},
	    {"bind", required_argument, NULL, OPT_BIND},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {0},
	};
	uint64_t v;
	bool sweep = false;
	int c, rc = 0;

	perf_opts_default(o, test);
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:s:an:D:q:t:w:ch", longs,
				NULL)) != -1) {
		switch (c) {
		case 'p':
			if (!(rc = num("-p", optarg, 1, 65535, &v))) {
				o->port = (unsigned)v;
				o->port_set = true;
			}
			break;
		case 's':
			if (!(rc = num("-s", optarg, 1, 1ull << 32, &v)))
				o->sizes[0] = v;
			break;
		case 'a':
			sweep = true;
			break;
		case 'n':
			if (!(rc = num("-n", optarg, 1, 1ull << 40, &v)))
				o->iters = v;
			break;
		case 'D':
			if (!(rc = num("-D", optarg, 1, 86400, &v)))
				o->duration_ms = (unsigned)v * 1000;
			break;
		case 'q':
			if (!(rc = num("-q", optarg, 1, PERF_MAX_CONNS, &v)))
				o->conns = (unsigned)v;
			break;
		case 't':
			if (!(rc = num("-t", optarg, 1, 1u << 16, &v)))
				o->tx_depth = (unsigned)v;
			break;
		case 'w':
			if (!(rc = num("-w", optarg, 0, 1u << 30, &v)))
				o->warmup = (unsigned)v;
			break;
		case 'c':
			o->check = true;
			break;
		case OPT_PROVIDER:
			o->provider = optarg;
			break;
		case OPT_OP:
			if (!strcmp(optarg, "write"))
				o->op = PERF_OP_WRITE;
			else if (!strcmp(optarg, "send"))
				o->op = PERF_OP_SEND;
			else if (!strcmp(optarg, "write-poll") &&
				 test == PERF_LAT)
				o->op = PERF_OP_WRITE_POLL;
			else if (!strcmp(optarg, "write-poll"))
				rc =
				    bad("--op (write-poll is for lat)", optarg);
			else
				rc = bad("--op", optarg);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_LOCAL:
			o->local = true;
			break;
		case OPT_BIND:
			o->bind = optarg;
			break;
		case OPT_TIMEOUT:
			if (!(rc = num("--timeout", optarg, 1, 1u << 30, &v)))
				o->timeout_ms = (int)v;
			break;
		case 'h':
			perf_usage();
			return 1;
		default:
			return WCCL_EINVAL; /* getopt said why */
		}
		if (rc)
			return rc;
	}
	if (optind < argc)
		o->host = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "wccl-perf: unexpected argument '%s'\n",
			argv[optind]);
		return WCCL_EINVAL;
	}
	if (o->local && o->host) {
		fprintf(stderr, "wccl-perf: --local takes no HOST\n");
		return WCCL_EINVAL;
	}
	if (o->local) {
		o->bind = "127.0.0.1";
		o->accept_timeout_ms = o->timeout_ms;
	}
	if (sweep) {
		o->n_sizes = 0;
		for (uint64_t s = 2; s <= (8u << 20); s *= 2)
			o->sizes[o->n_sizes++] = s;
	}
	if ((uint64_t)o->tx_depth * o->conns > PERF_MAX_OPS) {
		fprintf(stderr, "wccl-perf: -t x -q is at most %d\n",
			PERF_MAX_OPS);
		return WCCL_EINVAL;
	}
	if (test == PERF_LAT && o->conns > 1) {
		fprintf(stderr, "wccl-perf: lat uses one connection; -q "
				"ignored\n");
		o->conns = 1;
	}
	return 0;
}
