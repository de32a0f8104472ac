/* SPDX-License-Identifier: MIT */
#ifndef WCCL_TEST_MEMIF_PAIR_H
#define WCCL_TEST_MEMIF_PAIR_H

/*
 * Two processes over one net_memif link: the harness of the dpdk tests.
 * A test binary's main calls memif_pair_run() with no arguments (driver:
 * forks "SELF server" and "SELF client", each its own EAL with a distinct
 * --file-prefix and --no-huge, the memif socket in a temp dir) and runs
 * its server or client when given one. Exit 0 pass, 1 fail, 77 skip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <wccl/errors.h>
#include <wccl/transport.h>

#define MEMIF_SERVER_IP "10.77.0.1"
#define MEMIF_CLIENT_IP "10.77.0.2"
#define MEMIF_TMO_MS 30000

extern const char *memif_role; /* "driver", "server" or "client" */

#define CHECK(c, ...)                                                    \
	do {                                                             \
		if (!(c)) {                                              \
			fprintf(stderr, "[%s] %s:%d: CHECK(%s) failed: ", \
				memif_role, __FILE__, __LINE__, #c);     \
			fprintf(stderr, __VA_ARGS__);                    \
			fputc('\n', stderr);                             \
			exit(1);                                         \
		}                                                        \
	} while (0)

/* @n pseudo-random bytes from @seed; verify exits(1) on the first that
 * differs, naming @what. */
void memif_fill(uint8_t *p, size_t n, uint64_t seed);
void memif_verify(const uint8_t *p, size_t n, uint64_t seed, const char *what);
/* Seconds on the monotonic clock. */
double memif_now_s(void);
/* One completion of @op within MEMIF_TMO_MS, else exit(1). */
struct wccl_completion memif_wait1(struct wccl_cq *cq, uint32_t op,
				   const char *what);
/* The dpdk context; exit(77) when the EAL / port cannot start here. */
struct wccl_context *memif_open_ctx(void);

/* The context, a CQ and one established connection: the server listens
 * on MEMIF_SERVER_IP:47100 and accepts (30 s), the client connects to
 * it. exit(1) on failure. */
struct memif_conn {
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_listener *l; /* server only */
	struct wccl_endpoint *ep;
};
void memif_accept(struct memif_conn *c);
void memif_connect(struct memif_conn *c);
/* Driver: run "@self server" and "@self client" (environment inherited)
 * and reap them within 150 s. 0 both passed, 77 a side skipped, else 1. */
int memif_pair_run(const char *self);
/* memif_pair_run with a fresh result file, its name in $@env for the
 * client to write one line into, which is then read with sscanf's @fmt:
 * @n fields, else exit(1). 0, 1 if the client wrote none, or
 * memif_pair_run's code. */
int memif_pair_run_scan(const char *self, const char *env, int n,
			const char *fmt, ...)
    __attribute__((format(scanf, 4, 5)));

/* A client of raw DPDK frames can crash in the memif PMD when its peer
 * goes mid-burst: a test whose server must outlive its client sets
 * memif_server_lingers before memif_pair_run, and its server calls
 * memif_linger() once done, which returns when the client has exited
 * (the driver's SIGUSR1) or after MEMIF_TMO_MS. */
extern int memif_server_lingers;
void memif_linger(void);

#endif
