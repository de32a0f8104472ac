/* SPDX-License-Identifier: MIT */
/*
 * The EAL and the port: initialised once per process from WCCL_DPDK_EAL
 * (rte_eal_init cannot run twice), kept until exit. The calling thread's
 * CPU affinity is restored after rte_eal_init, which pins it to lcore 0.
 * A memif vdev with role=auto becomes the server if nobody serves its
 * socket yet, else the client (claimed atomically, see eal_expand), so two forked
 * sides of one test can share one WCCL_DPDK_EAL.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_random.h>

#include "core/log.h"
#include "core/params.h"
#include "dpdk.h"
#include "dpdk_guard.h"

#define EAL_ARGS_MAX 64

static int eal_state; /* 0 untried, 1 up, < 0 failed with this code */
static bool port_started;
static uint32_t port_frame; /* largest frame the port was set up for */
static bool port_tx_csum, port_rx_csum; /* checksum offloads enabled */
static bool port_zcopy; /* zero-copy TX possible on this port */
static struct rte_mempool *eal_pool;

/* Does a memif server listen on @path (abstract namespace unless the
 * vdev says socket-abstract=no, as the memif PMD does)? Read from
 * /proc/net/unix: connecting to ask would make the PMD's server fail a
 * send and panic its interrupt thread (DPDK 22.11). */
static bool memif_served(const char *path, bool abstract)
{
	FILE *f = fopen("/proc/net/unix", "r");
	if (!f)
		return false;
	char line[512], want[300];
	snprintf(want, sizeof(want), "%s%s", abstract ? "@" : "", path);
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *name = strrchr(line, ' ');
		if (!name)
			continue;
		name++;
		name[strcspn(name, "\n")] = '\0';
		/* Fields: Num RefCount Protocol Flags(00010000 = listening) */
		found = !strcmp(name, want) && strstr(line, " 00010000 ");
	}
	fclose(f);
	return found;
}

/* Expand %p (pid) and %r (RANK, 0 if unset), resolve memif role=auto in @s (edited in place, room for
 * @cap bytes). Returns the server's role socket (kept open), or -1. */
static int eal_expand(char *s, size_t cap)
{
	char tmp[1024];
	size_t o = 0;
	for (const char *p = s; *p && o + 16 < sizeof(tmp); p++) {
		if (p[0] == '%' && p[1] == 'p') {
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "%d",
					      (int)getpid());
			p++;
		} else if (p[0] == '%' && p[1] == 'r') {
			/* The launcher's rank: one port per rank. */
			const char *r = getenv("RANK");
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "%d",
					      r ? atoi(r) : 0);
			p++;
		} else {
			tmp[o++] = *p;
		}
	}
	tmp[o] = '\0';
	snprintf(s, cap, "%s", tmp);
	char *role = strstr(s, "role=auto");
	if (!role)
		return -1;
	char *sock = strstr(s, "socket=");
	char path[256] = "";
	if (sock) {
		size_t n = strcspn(sock + 7, ", \t");
		if (n < sizeof(path)) {
			memcpy(path, sock + 7, n);
			path[n] = '\0';
		}
	}
	if (!path[0])
		snprintf(path, sizeof(path), "/run/memif.sock");
	/* The role is claimed by binding "<path>.role" in the abstract
	 * namespace: atomic, and released by the kernel when the owner dies
	 * (a lock file's fd confused the EAL interrupt thread here). */
	char lock[300];
	snprintf(lock, sizeof(lock), "%s.role", path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un la = { .sun_family = AF_UNIX };
	bool client = true;
	if (fd >= 0 && strlen(lock) + 1 < sizeof(la.sun_path)) {
		strcpy(la.sun_path + 1, lock);
		socklen_t ll = (socklen_t)(offsetof(struct sockaddr_un,
						    sun_path) +
					   1 + strlen(lock));
		client = bind(fd, (struct sockaddr *)&la, ll) != 0;
	}
	bool abstract = !strstr(s, "socket-abstract=no");
	if (client) {
		if (fd >= 0)
			close(fd);
		fd = -1;
		/* Wait (bounded) for the server's socket to appear. */
		for (int i = 0; i < 500 && !memif_served(path, abstract); i++)
			usleep(10000);
	} else if (!abstract) {
		unlink(path); /* stale socket of a dead server */
	}
	const char *r = client ? "role=client" : "role=server";
	/* "role=auto" and "role=server" differ in length: rebuild. */
	size_t pre = (size_t)(role - s);
	snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)pre, s, r, role + 9);
	snprintf(s, cap, "%s", tmp);
	WCCL_INFO(WCCL_SUB_DPDK, "memif %s: %s", path, r);
	return fd;
}

int dpdk_eal_init(void)
{
	if (eal_state)
		return eal_state > 0 ? 0 : eal_state;
	char line[1024];
	snprintf(line, sizeof(line), "%s", wccl_param_str(WCCL_PARAM_DPDK_EAL));
	int lock = eal_expand(line, sizeof(line));
	char *argv[EAL_ARGS_MAX + 2];
	int argc = 0;
	argv[argc++] = (char *)"wccl";
	for (char *save = NULL, *t = strtok_r(line, " \t", &save);
	     t && argc < EAL_ARGS_MAX; t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	cpu_set_t cpus;
	bool have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
	WCCL_INFO(WCCL_SUB_DPDK, "rte_eal_init: %s",
		  wccl_param_str(WCCL_PARAM_DPDK_EAL));
	/* rte_rand is seeded when the library loads: processes forked from
	 * one parent (wccl-run, test_coll) would draw the same connection
	 * ids and the same random vdev MACs (memif). Reseed per process. */
	rte_srand(rte_rdtsc() ^ ((uint64_t)getpid() << 32));
	int rc = rte_eal_init(argc, argv);
	(void)lock; /* a server keeps its role socket until exit */
	if (have_cpus)
		pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	if (rc < 0) {
		WCCL_WARN(WCCL_SUB_DPDK,
			  "rte_eal_init failed (%s); set WCCL_DPDK_EAL",
			  rte_strerror(rte_errno));
		eal_state = WCCL_ENODEV;
		return eal_state;
	}
	if (!rte_eth_dev_count_avail()) {
		WCCL_WARN(WCCL_SUB_DPDK, "EAL up but no ethdev port: add "
					 "--vdev or -a to WCCL_DPDK_EAL");
		eal_state = WCCL_ENODEV;
		return eal_state;
	}
	eal_state = 1;
	return 0;
}

/* Cheap and side-effect free: rte_eal_init runs once per process and does
 * not survive fork(), so it waits for context_open (which then returns
 * -WCCL_ENODEV if the EAL or the port cannot start). Available when asked
 * for (WCCL_TRANSPORT=dpdk) or configured (WCCL_DPDK_EAL set). */
int dpdk_eal_probe(void)
{
	if (eal_state)
		return eal_state > 0 ? 0 : eal_state;
	if (getenv("WCCL_DPDK_EAL"))
		return 0;
	const char *t = wccl_param_str(WCCL_PARAM_TRANSPORT);
	return t && !strcmp(t, "dpdk") ? 0 : WCCL_ENODEV;
}

/* MTU and offloads for frames of up to @frame bytes (without CRC). */
static int dpdk_port_conf(struct dpdk_ctx *ctx, uint32_t frame,
			  struct rte_eth_conf *conf)
{
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(ctx->port, &info);
	if (rc) {
		WCCL_WARN(WCCL_SUB_DPDK, "port %u: no device info: %s",
			  ctx->port, rte_strerror(-rc));
		return WCCL_ENODEV;
	}
	uint32_t seg = RTE_MBUF_DEFAULT_DATAROOM;
	if (frame > seg) {
		if (!(info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)) {
			WCCL_WARN(WCCL_SUB_DPDK,
				  "port %u (%s) cannot send multi-segment "
				  "frames: WCCL_DPDK_MTU=%u needs %u-byte frames, "
				  "an mbuf holds %u; lower WCCL_DPDK_MTU",
				  ctx->port, info.driver_name, ctx->mtu, frame,
				  seg);
			return WCCL_EINVAL;
		}
		conf->txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
		if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)
			conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	}
	/* Checksums: the device computes / checks them when it says it
	 * can (both IPv4 and UDP), software otherwise. The corruption test
	 * hook needs software TX checksums (hardware would cover the
	 * corrupted bytes). */
	const uint64_t tx_ck = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
			       RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	const uint64_t rx_ck = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM |
			       RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	port_tx_csum = (info.tx_offload_capa & tx_ck) == tx_ck &&
		       !ctx->corrupt_every;
	port_rx_csum = (info.rx_offload_capa & rx_ck) == rx_ck;
	if (port_tx_csum)
		conf->txmode.offloads |= tx_ck;
	if (port_rx_csum)
		conf->rxmode.offloads |= rx_ck;
	/* Zero-copy TX attaches registered user memory, which has no DMA
	 * address: only for ports whose driver copies by CPU, and only with
	 * multi-segment TX. memif chains need one descriptor per frame
	 * (bsize above the 2 KiB mbuf, see below). */
	const char *drv = info.driver_name;
	const char *eal = wccl_param_str(WCCL_PARAM_DPDK_EAL);
	const char *bs = strstr(eal, "bsize=");
	bool cpu_copy = !strcmp(drv, "net_memif") ||
			!strcmp(drv, "net_af_packet") || !strcmp(drv, "net_ring");
	const char *why = NULL;
	if (!cpu_copy)
		why = "the device would need DMA-mapped user memory";
	else if (!(info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS))
		why = "no multi-segment TX";
	else if (!strcmp(drv, "net_memif") && (!bs || atoi(bs + 6) <= 2048))
		why = "memif needs bsize= above 2048 for chained frames";
	port_zcopy = !why;
	if (why && ctx->zcopy_min)
		WCCL_INFO(WCCL_SUB_DPDK, "port %u (%s): zero-copy TX off: %s",
			  ctx->port, drv, why);
	if (port_zcopy && ctx->zcopy_min)
		conf->txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	/* ethdev checks the MTU against max_rx_pktlen as well. */
	uint32_t max_mtu = info.max_mtu ? info.max_mtu : UINT16_MAX;
	if (info.max_rx_pktlen > RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN &&
	    info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN < max_mtu)
		max_mtu = info.max_rx_pktlen - RTE_ETHER_HDR_LEN -
			  RTE_ETHER_CRC_LEN;
	conf->rxmode.mtu = ctx->mtu;
	if (ctx->mtu > max_mtu) {
		/* memif reports 1500 but carries chained frames of any size;
		 * elsewhere big frames may be dropped: say so. */
		bool memif = !strcmp(info.driver_name, "net_memif");
		/* DPDK 22.11's memif leaves MEMIF_DESC_FLAG_NEXT set on reused
		 * descriptors: frames spanning several (bsize, default 2048)
		 * arrive glued and repeated (a duplicate storm, seen at MTU
		 * 9000). One descriptor per frame avoids it. */
		if (memif && frame > 2048 &&
		    !strstr(wccl_param_str(WCCL_PARAM_DPDK_EAL), "bsize="))
			WCCL_WARN(WCCL_SUB_DPDK,
				  "port %u (net_memif): %u-byte frames span "
				  "memif descriptors, which this PMD mishandles; "
				  "add bsize=%u to the vdev",
				  ctx->port, frame, frame < 9216 ? 9216 : frame);
		if (memif)
			WCCL_INFO(WCCL_SUB_DPDK,
				  "port %u (net_memif): MTU %u above the %u it "
				  "reports, sent as chained descriptors",
				  ctx->port, ctx->mtu, max_mtu);
		else
			WCCL_WARN(WCCL_SUB_DPDK,
				  "port %u (%s) reports max MTU %u < "
				  "WCCL_DPDK_MTU %u: larger frames may be dropped",
				  ctx->port, info.driver_name, max_mtu,
				  ctx->mtu);
		conf->rxmode.mtu = (uint16_t)max_mtu;
	}
	return 0;
}

int dpdk_port_setup(struct dpdk_ctx *ctx)
{
	int rc = dpdk_eal_init();
	if (rc)
		return rc;
	int64_t port = wccl_param_int(WCCL_PARAM_DPDK_PORT);
	if (port < 0 || port >= RTE_MAX_ETHPORTS ||
	    !rte_eth_dev_is_valid_port((uint16_t)port)) {
		WCCL_WARN(WCCL_SUB_DPDK, "WCCL_DPDK_PORT=%lld: no such port",
			  (long long)port);
		return WCCL_ENODEV;
	}
	ctx->port = (uint16_t)port;
	/* Standard 2 KiB mbufs; a jumbo frame is a chain of them. */
	if (!eal_pool) {
		eal_pool = rte_pktmbuf_pool_create(
			"wccl_pool", DPDK_POOL_MBUFS, 256, 0,
			RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
		if (!eal_pool) {
			WCCL_WARN(WCCL_SUB_DPDK, "mbuf pool: %s",
				  rte_strerror(rte_errno));
			return WCCL_ENOMEM;
		}
	}
	ctx->pool = eal_pool;
	uint32_t frame = ctx->frag_max + DPDK_WIRE_MAX_HDR + DPDK_L2L3_LEN;
	if (port_started && frame > port_frame) {
		WCCL_WARN(WCCL_SUB_DPDK,
			  "port %u was set up for %u-byte frames; "
			  "WCCL_DPDK_MTU=%u needs %u (one MTU per process)",
			  ctx->port, port_frame, ctx->mtu, frame);
		return WCCL_EINVAL;
	}
	if (!port_started) {
		struct rte_eth_conf conf;
		memset(&conf, 0, sizeof(conf));
		rc = dpdk_port_conf(ctx, frame, &conf);
		if (rc)
			return rc;
		port_frame = frame;
		rc = rte_eth_dev_configure(ctx->port, 1, 1, &conf);
		uint16_t nrx = 1024, ntx = 1024;
		if (!rc)
			rc = rte_eth_dev_adjust_nb_rx_tx_desc(ctx->port, &nrx,
							      &ntx);
		if (!rc)
			rc = rte_eth_rx_queue_setup(
				ctx->port, 0, nrx,
				(unsigned)rte_eth_dev_socket_id(ctx->port),
				NULL, eal_pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup(
				ctx->port, 0, ntx,
				(unsigned)rte_eth_dev_socket_id(ctx->port),
				NULL);
		if (!rc)
			rc = rte_eth_dev_start(ctx->port);
		if (rc) {
			WCCL_WARN(WCCL_SUB_DPDK, "port %u setup: %s",
				  ctx->port, rte_strerror(-rc));
			/* A configuration we got wrong is an error, not a
			 * missing device (tests would skip over it). */
			return rc == -EINVAL ? WCCL_EINVAL : WCCL_ENODEV;
		}
		rte_eth_promiscuous_enable(ctx->port);
		dpdk_guard_install(ctx->port);
		port_started = true;
	}
	rte_eth_macaddr_get(ctx->port, &ctx->mac);
	ctx->tx_csum_hw = port_tx_csum && !ctx->corrupt_every;
	ctx->rx_csum_hw = port_rx_csum;
	if (!port_zcopy)
		ctx->zcopy_min = 0;
	return 0;
}

int dpdk_eal_describe(char *buf, size_t len)
{
	if (!len)
		return 0;
	buf[0] = '\0';
	if (eal_state <= 0) {
		snprintf(buf, len,
			 "EAL not initialised (set WCCL_DPDK_EAL or "
			 "WCCL_TRANSPORT=dpdk)\n");
		return 0;
	}
	size_t at = 0;
	uint16_t p;
	RTE_ETH_FOREACH_DEV(p)
	{
		struct rte_eth_dev_info info;
		struct rte_ether_addr mac;
		char name[RTE_ETH_NAME_MAX_LEN] = "";
		if (rte_eth_dev_info_get(p, &info) ||
		    rte_eth_macaddr_get(p, &mac))
			continue;
		rte_eth_dev_get_name_by_port(p, name);
		int n = snprintf(buf + at, len - at,
				 "port %u %s driver %s mac " RTE_ETHER_ADDR_PRT_FMT
				 "\n",
				 p, name, info.driver_name,
				 RTE_ETHER_ADDR_BYTES(&mac));
		if (n < 0 || (size_t)n >= len - at)
			break;
		at += (size_t)n;
	}
	return 0;
}
