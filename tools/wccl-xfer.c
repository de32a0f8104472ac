/* SPDX-License-Identifier: MIT */
/*
 * wccl-xfer: move a large file to another host over wccl's streaming
 * engine (transport/stream/): chunked, CRC32C-checked, striped over several
 * connections, paced, resumable.
 *
 *   wccl-xfer recv DIR [--listen ADDR] [--once] [--addr-file F]
 *   wccl-xfer send FILE HOST[:PORT] [--rate R] [--streams N] [--resume]
 *   wccl-xfer --local FILE DIR [send options]    (both sides, forked)
 *
 * Exit status: 0 done and verified, 1 failed (the message names the side
 * and the cause), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/params.h"
#include "include/wccl/errors.h"
#include "transport/stream/crc32c.h"
#include "transport/stream/stream.h"

struct xopts {
	struct wccl_stream_opts so;
	const char *listen, *addr_file;
	int json, progress, once, accept_timeout_s;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: wccl-xfer recv DIR [--listen ADDR] [--once] "
	    "[--addr-file F] [--timeout S]\n"
	    "       wccl-xfer send FILE HOST[:PORT] [options]\n"
	    "       wccl-xfer --local FILE DIR [options]\n"
	    "options:\n"
	    "  --rate R        cap the sending rate, bits/s (k/M/G suffixes: "
	    "350M)\n"
	    "  --streams N     connections (default: from RTT x target rate)\n"
	    "  --chunk BYTES   chunk size (default WCCL_STREAM_CHUNK_BYTES, else\n"
	    "                  chosen from the path's RTT, at most 1 MiB)\n"
	    "  --provider P    uring (default) or shm\n"
	    "  --resume        keep what the receiver already verified\n"
	    "  --progress      progress line on stderr even when not a tty\n"
	    "  --json          one-line JSON summary on stdout\n"
	    "  --timeout S     no-progress / accept timeout, seconds\n");
}

static int parse_rate(const char *s, uint64_t *bps)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v <= 0)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1e3;
		end++;
		break;
	case 'm':
	case 'M':
		v *= 1e6;
		end++;
		break;
	case 'g':
	case 'G':
		v *= 1e9;
		end++;
		break;
	default:
		break;
	}
	if (*end && strcmp(end, "bit") && strcmp(end, "bps") &&
	    strcmp(end, "b"))
		return -1;
	*bps = (uint64_t)v;
	return 0;
}

static void human(double bytes, char *buf, size_t len)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (bytes >= 1024 && i < 4) {
		bytes /= 1024;
		i++;
	}
	snprintf(buf, len, "%.1f %s", bytes, u[i]);
}

static void on_progress(const struct wccl_stream_stats *st, void *arg)
{
	(void)arg;
	char a[32], b[32];
	double done = (double)(st->bytes_delivered + st->bytes_skipped);
	double rate =
	    st->seconds > 0 ? (double)st->bytes_delivered / st->seconds : 0;
	double eta = rate > 0 ? ((double)st->file_bytes - done) / rate : 0;
	human(done, a, sizeof(a));
	human((double)st->file_bytes, b, sizeof(b));
	fprintf(stderr,
		"\r%5.1f%% %s / %s  %.1f Mbit/s  ETA %.0fs  rtt min %.2f ms  "
		"streams %d  retx %llu  crc err %llu   ",
		st->file_bytes ? 100.0 * done / (double)st->file_bytes : 100.0,
		a, b, rate * 8 / 1e6, eta, st->rtt_min_us / 1000, st->nstreams,
		(unsigned long long)st->retransmits,
		(unsigned long long)st->crc_errors);
	if (st->done)
		fputc('\n', stderr);
}

static void print_json(const struct wccl_stream_stats *st, int ok)
{
	printf("{\"ok\": %s, \"bytes\": %llu, \"bytes_skipped\": %llu, "
	       "\"bytes_wire\": %llu, \"seconds\": %.6f, "
	       "\"goodput_mbps\": %.3f, \"rtt_min_us\": %.1f, "
	       "\"rtt_p50_us\": %.1f, \"rtt_p99_us\": %.1f, "
	       "\"rtt_p999_us\": %.1f, \"jitter_us\": %.1f, "
	       "\"retransmits\": %llu, \"crc_errors\": %llu, \"streams\": %d, "
	       "\"depth\": %d, \"chunk_bytes\": %u, \"btlbw_mbps\": %.1f, "
	       "\"pacing_mbps\": %.1f, \"cwnd_bytes\": %llu, "
	       "\"file_crc32c\": \"%08x\", \"crc_hw\": %d, "
	       "\"probe_min_us\": %.1f, \"probe_p50_us\": %.1f, "
	       "\"probe_p99_us\": %.1f, \"probe_samples\": %llu, "
	       "\"icmp_min_us\": %.1f, \"icmp_p50_us\": %.1f, "
	       "\"icmp_p99_us\": %.1f, \"icmp_samples\": %llu}\n",
	       ok ? "true" : "false", (unsigned long long)st->bytes_delivered,
	       (unsigned long long)st->bytes_skipped,
	       (unsigned long long)st->bytes_wire, st->seconds,
	       st->goodput_bps / 1e6, st->rtt_min_us, st->rtt_p50_us,
	       st->rtt_p99_us, st->rtt_p999_us, st->jitter_us,
	       (unsigned long long)st->retransmits,
	       (unsigned long long)st->crc_errors, st->nstreams, st->depth,
	       st->chunk_bytes, st->btlbw_bps / 1e6, st->pacing_bps / 1e6,
	       (unsigned long long)st->cwnd_bytes, st->file_crc,
	       wccl_crc32c_uses_hw(), st->probe_min_us, st->probe_p50_us,
	       st->probe_p99_us, (unsigned long long)st->probe_samples,
	       st->icmp_min_us, st->icmp_p50_us, st->icmp_p99_us,
	       (unsigned long long)st->icmp_samples);
	fflush(stdout);
}

static int do_send(const char *file, const char *host, struct xopts *x)
{
	char addr[512];
	if (!strncmp(host, "uring:", 6) || !strncmp(host, "shm:", 4))
		snprintf(addr, sizeof(addr), "%s", host);
	else if (strchr(host, ':'))
		snprintf(addr, sizeof(addr), "uring:%s", host);
	else
		snprintf(addr, sizeof(addr), "uring:%s:%lld", host,
			 (long long)wccl_param_int(WCCL_PARAM_STREAM_PORT));
	if (x->progress || isatty(2)) {
		x->so.progress = on_progress;
	}
	struct wccl_stream_stats st;
	char err[1024];
	int rc =
	    wccl_stream_send_file(file, addr, &x->so, &st, err, sizeof(err));
	if (x->json)
		print_json(&st, rc == 0);
	if (rc) {
		fprintf(stderr, "wccl-xfer: send %s to %s failed: %s\n", file,
			addr, err);
		return 1;
	}
	if (!x->json)
		printf(
		    "sent %s: %llu bytes in %.2f s, %.1f Mbit/s, rtt p50/p99 "
		    "%.2f/%.2f ms, %llu retransmits\n",
		    file, (unsigned long long)st.bytes_delivered, st.seconds,
		    st.goodput_bps / 1e6, st.rtt_p50_us / 1000,
		    st.rtt_p99_us / 1000, (unsigned long long)st.retransmits);
	return 0;
}

static int do_recv(const char *dir, struct xopts *x, int addr_fd)
{
	struct wccl_stream_server *srv;
	char addr[256], bind[256];
	if (x->listen)
		snprintf(bind, sizeof(bind), "%s", x->listen);
	else
		snprintf(bind, sizeof(bind), "0.0.0.0:%lld",
			 (long long)wccl_param_int(WCCL_PARAM_STREAM_PORT));
	const char *bp =
	    x->so.provider && !strcmp(x->so.provider, "shm") ? NULL : bind;
	int rc = wccl_stream_server_open(x->so.provider, bp, dir, &srv, addr,
					 sizeof(addr));
	if (rc) {
		fprintf(stderr, "wccl-xfer: recv %s on %s: %s\n", dir, bind,
			wccl_strerror(rc));
		if (addr_fd >= 0)
			close(addr_fd);
		return 1;
	}
	if (addr_fd >= 0) {
		dprintf(addr_fd, "%s\n", addr);
		close(addr_fd);
	} else {
		printf("listening on %s\n", addr);
		fflush(stdout);
	}
	if (x->addr_file) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", x->addr_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%s\n", addr) < 0 || fclose(f) ||
		    rename(tmp, x->addr_file)) {
			fprintf(stderr, "wccl-xfer: %s: %s\n", x->addr_file,
				strerror(errno));
			wccl_stream_server_close(srv);
			return 1;
		}
	}
	int failed = 0;
	do {
		struct wccl_stream_stats st;
		char err[1024];
		int to = x->once ? x->accept_timeout_s * 1000 : -1;
		rc = wccl_stream_server_run_one(srv, to, &st, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "wccl-xfer: recv: %s\n", err);
			failed = 1;
			/* A failure that repeats at once (no fds left to
			 * accept with) must not spin. */
			if (!x->once)
				usleep(100000);
		} else if (addr_fd < 0) {
			printf("received %llu bytes (%llu resumed) in %.2f s, "
			       "%llu crc errors, crc32c %08x\n",
			       (unsigned long long)st.bytes_delivered,
			       (unsigned long long)st.bytes_skipped, st.seconds,
			       (unsigned long long)st.crc_errors, st.file_crc);
			fflush(stdout);
		}
	} while (!x->once);
	wccl_stream_server_close(srv);
	return failed;
}

/* Reap the receiver child: 1 if it failed. After a failed send it may
 * wait for a sender that never comes: 3 s to say why, then it is killed. */
static int reap(pid_t pid, int send_failed)
{
	int ws;
	pid_t got = 0;
	for (int ms = 0; send_failed && !got; ms += 10) {
		got = waitpid(pid, &ws, WNOHANG);
		if (!got && ms >= 3000) {
			kill(pid, SIGKILL);
			break;
		}
		if (!got)
			usleep(10000);
	}
	if (!got)
		got = waitpid(pid, &ws, 0);
	if (got == pid && WIFSIGNALED(ws))
		fprintf(stderr, "wccl-xfer: the receiver was killed by signal "
			"%d (%s)\n", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
	else if (got == pid && send_failed && !WEXITSTATUS(ws))
		fprintf(stderr, "wccl-xfer: the receiver ended without an "
			"error\n");
	return got != pid || !WIFEXITED(ws) || WEXITSTATUS(ws);
}

/* A whole number in [@lo, @hi] and nothing after it: 0, else -1. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int do_local(const char *file, const char *dir, struct xopts *x)
{
	int p[2];
	struct stat sb;
	/* A sender that cannot start would leave the receiver waiting out
	 * its accept timeout. */
	if (stat(file, &sb)) {
		fprintf(stderr, "wccl-xfer: %s: %s\n", file, strerror(errno));
		return 1;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "wccl-xfer: %s: not a regular file\n", file);
		return 1;
	}
	if (pipe(p))
		return 1;
	x->once = 1;
	if (!x->listen)
		x->listen = "127.0.0.1:0";
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(p[0]);
		_exit(do_recv(dir, x, p[1]));
	}
	close(p[1]);
	char addr[256] = "";
	ssize_t n = read(p[0], addr, sizeof(addr) - 1);
	close(p[0]);
	int rc = 1;
	if (n > 0) {
		addr[n] = 0;
		addr[strcspn(addr, "\n")] = 0;
		rc = do_send(file, addr, x);
	}
	if (reap(pid, rc != 0))
		rc = 1;
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"rate", required_argument, 0, 'r'},
	    {"streams", required_argument, 0, 'n'},
	    {"chunk", required_argument, 0, 'c'},
	    {"provider", required_argument, 0, 'p'},
	    {"resume", no_argument, 0, 'R'},
	    {"json", no_argument, 0, 'j'},
	    {"progress", no_argument, 0, 'P'},
	    {"listen", required_argument, 0, 'l'},
	    {"addr-file", required_argument, 0, 'a'},
	    {"once", no_argument, 0, 'o'},
	    {"timeout", required_argument, 0, 't'},
	    {"local", no_argument, 0, 'L'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	struct xopts x = {.so = {.timeout_ms = -1}, .accept_timeout_s = 60};
	int local = 0, c;
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_rate(optarg, &x.so.rate_bps)) {
				fprintf(stderr, "wccl-xfer: bad --rate %s\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_int(optarg, 1, 16, &x.so.nstreams)) {
				fprintf(stderr,
					"wccl-xfer: bad --streams %s (1..16)\n",
					optarg);
				return 2;
			}
			break;
		case 'c': {
			uint64_t v;
			if (wccl_parse_size(optarg, &v) || v > UINT32_MAX) {
				fprintf(stderr, "wccl-xfer: bad --chunk\n");
				return 2;
			}
			x.so.chunk_bytes = (uint32_t)v;
			break;
		}
		case 'p':
			x.so.provider = optarg;
			break;
		case 'R':
			x.so.resume = 1;
			break;
		case 'j':
			x.json = 1;
			break;
		case 'P':
			x.progress = 1;
			break;
		case 'l':
			x.listen = optarg;
			break;
		case 'a':
			x.addr_file = optarg;
			break;
		case 'o':
			x.once = 1;
			break;
		case 't': {
			/* Seconds; also the receiver's no-progress timeout,
			 * which the library reads from WCCL_TIMEOUT_MS. */
			char ms[32];
			if (parse_int(optarg, 1, 1000000, &x.accept_timeout_s)) {
				fprintf(stderr,
					"wccl-xfer: bad --timeout %s (seconds, "
					"1..1000000)\n",
					optarg);
				return 2;
			}
			x.so.timeout_ms = x.accept_timeout_s * 1000;
			snprintf(ms, sizeof(ms), "%d", x.so.timeout_ms);
			setenv("WCCL_TIMEOUT_MS", ms, 1);
			wccl_param_reload();
			break;
		}
		case 'L':
			local = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	int na = argc - optind;
	char **a = argv + optind;
	if (local && na == 2)
		return do_local(a[0], a[1], &x);
	if (!local && na == 2 && !strcmp(a[0], "recv"))
		return do_recv(a[1], &x, -1);
	if (!local && na == 3 && !strcmp(a[0], "send"))
		return do_send(a[1], a[2], &x);
	usage(stderr);
	return 2;
}
