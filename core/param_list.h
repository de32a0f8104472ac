/* SPDX-License-Identifier: MIT */
/*
 * Every tunable wccl reads, one line each: environment variable WCCL_<ID>,
 * default, description. Integers take K/M/G suffixes (powers of 1024).
 * `wccl-info --params` lists them with current values and docs/env.md is
 * checked against this list by a unit test.
 */
/* clang-format off */
#define WCCL_PARAM_LIST(INT, STR)                                                            \
	STR(DEBUG, "WARN", "log level: NONE, WARN, INFO or TRACE")                            \
	STR(DEBUG_SUBSYS, "ALL",                                                              \
	    "log subsystems, comma-separated (INIT,TRANSPORT,URING,SHM,VERBS,DPDK,COLL,"      \
	    "BOOTSTRAP,TUNER,PERF,ALL); a leading ^ excludes")                                \
	STR(DEBUG_FILE, "", "log to this file instead of stderr; %h = host, %p = pid")       \
	STR(TRANSPORT, "", "force one provider by name (uring, shm, verbs, dpdk)")           \
	INT(TIMEOUT_MS, 30000, "default timeout of every blocking wait, in ms")              \
	INT(CONNECT_TIMEOUT_MS, 10000, "connection establishment timeout, in ms")            \
	STR(ROOT_ADDR, "", "bootstrap root address ip:port (default: first non-loopback IPv4, any port; env mode: MASTER_ADDR and MASTER_PORT+1)") \
	STR(AUTH_KEY, "", "job secret for env-mode bootstrap (any string; required across hosts)") \
	STR(REGION, "", "this rank's region (site) name; ranks with different regions use network providers between them") \
	STR(TOPO_FILE, "", "topology file: per region-pair latency and bandwidth (see docs/collectives.md)") \
	STR(ALGO, "", "force the allreduce algorithm: ring, tree, rhd or hier") \
	INT(CHUNK_BYTES, 524288, "pipeline chunk of ring and chain collectives, bytes") \
	INT(BOOTSTRAP_HANDSHAKE_MS, 5000, "bootstrap root drops a joiner that has not authenticated by then") \
	INT(QUEUE_DEPTH, 256, "outstanding operations per endpoint and direction")           \
	INT(CQ_DEPTH, 4096, "default completion queue capacity")                             \
	INT(SPIN_US, 50, "busy-poll this long before sleeping in a wait, in us")             \
	INT(URING_ENTRIES, 1024, "io_uring submission queue entries per context")            \
	INT(URING_ZC_MIN, 65536, "sends of at least this many bytes use SEND_ZC")            \
	INT(URING_ZC, 1, "use IORING_OP_SEND_ZC when the kernel has it (0 = never)")         \
	INT(URING_FIXED_BUFS, 1, "register MRs as io_uring fixed buffers (0 = never)")       \
	INT(URING_SOCKBUF, 4194304, "SO_SNDBUF/SO_RCVBUF per TCP connection, bytes (0 = OS)") \
	INT(URING_KEEPALIVE_S, 10, "TCP keepalive: idle seconds before probing (0 = off)")   \
	INT(URING_USER_TIMEOUT_MS, 30000, "TCP_USER_TIMEOUT: unacked data kills after ms")   \
	INT(URING_STAGING, 65536, "per-connection receive staging buffer, bytes")            \
	INT(URING_EAGER_MAX, 4096, "payloads up to this size are copied from staging")       \
	INT(SHM_RING_BYTES, 1048576, "shared-memory ring size per direction, bytes")         \
	INT(SHM_INLINE_MAX, 4096, "shm messages up to this size travel inside the ring")
/* clang-format on */

enum wccl_param {
#define WCCL_PARAM_ENUM(id, ...) WCCL_PARAM_##id,
	WCCL_PARAM_LIST(WCCL_PARAM_ENUM, WCCL_PARAM_ENUM)
#undef WCCL_PARAM_ENUM
	    WCCL_PARAM_COUNT_
};
