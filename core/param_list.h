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
	INT(RESOLVE_TIMEOUT_MS, 5000, "a host name not answered by DNS within this many ms fails with ETIMEDOUT, naming it") \
	STR(ROOT_ADDR, "", "bootstrap root address ip:port (default: first non-loopback IPv4, any port; env mode: MASTER_ADDR and MASTER_PORT+1)") \
	STR(AUTH_KEY, "", "job secret for env-mode bootstrap (any string; required across hosts)") \
	STR(REGION, "", "this rank's region (site) name; ranks with different regions use network providers between them") \
	INT(TOPO_PROBE_BYTES, 1048576, "bytes sent once per probed host/region link at init to measure its bandwidth (0 = use defaults / WCCL_TOPO_FILE)") \
	STR(TOPO_FILE, "", "topology file: per region-pair latency and bandwidth (see docs/collectives.md)") \
	STR(ALGO, "", "force the allreduce algorithm: ring, tree, rhd, rd or hier") \
	INT(CROSS_STREAMS, 4, "TCP connections to each peer in another region; collective messages of 256 KiB and more are striped across them (1..8)") \
	INT(EAGER_BYTES, 65536, "collective messages up to this size go eagerly on a connection of their own, into receive slots always posted (0: off; where ranks differ the smallest value counts)") \
	INT(CHUNK_BYTES, 0, "pipeline chunk of ring and chain collectives, bytes (0 = a quarter of a rank's block, 256K..512K)") \
	INT(DIRECT_NT_BYTES, 33554432, "same-host direct allreduce, out of place: results go to the other ranks' outputs with non-temporal stores when all ranks' inputs and outputs together reach this many bytes (0: never)") \
	INT(COMM_TEST_LISTEN_PORT, 0, "comm test hook: the first network provider's data listener binds this port, not any free one (0 = off)") \
	INT(BOOTSTRAP_HANDSHAKE_MS, 5000, "bootstrap root drops a joiner that has not authenticated by then") \
	INT(BOOTSTRAP_SEND_TIMEOUT_MS, 10000, "bootstrap root aborts the job, naming the rank, when a rank reads nothing it was sent for this long") \
	INT(QUEUE_DEPTH, 256, "outstanding operations per endpoint and direction")           \
	INT(CQ_DEPTH, 4096, "default completion queue capacity")                             \
	INT(SPIN_US, 50, "busy-poll this long before sleeping in a wait, in us")             \
	INT(URING_ENTRIES, 1024, "io_uring submission queue entries per context")            \
	INT(URING_ZC_MIN, 65536, "sends of at least this many bytes use SEND_ZC")            \
	INT(URING_ZC, 1, "IORING_OP_SEND_ZC if the kernel has it: 1 = remote peers only, 2 = also same host, 0 = never") \
	INT(URING_FIXED_BUFS, 1, "register MRs as io_uring fixed buffers (0 = never)")       \
	INT(URING_SOCKBUF, 4194304, "SO_SNDBUF/SO_RCVBUF per TCP connection, bytes (0 = OS)") \
	INT(URING_KEEPALIVE_S, 10, "TCP keepalive: idle seconds before probing (0 = off)")   \
	INT(URING_USER_TIMEOUT_MS, 30000, "TCP_USER_TIMEOUT: unacked data kills after ms")   \
	INT(URING_STAGING, 65536, "per-connection receive staging buffer, bytes")            \
	INT(URING_EAGER_MAX, 4096, "payloads up to this size are copied from staging")       \
	INT(URING_RX_POLL, 8, "while busy-polling, read up to this many idle sockets directly instead of through io_uring (0 = always io_uring)") \
	INT(URING_YIELD, 1, "sched_yield() on an empty CQ poll, so a spinning waiter cedes a shared core (0 = pure spin; not in the collectives' waits when ranks outnumber cores: they yield themselves)") \
	INT(SHM_RING_BYTES, 1048576, "shared-memory ring size per direction, bytes")         \
	INT(SHM_INLINE_MAX, 4096, "shm messages up to this size travel inside the ring") \
	INT(STREAM_CHUNK_BYTES, 1048576, "stream (wccl-xfer): chunk size, bytes (4K..64M); unset (and no --chunk), the sender picks a power of two up to this from TCP's RTT: 1/32 of the BDP at WCCL_STREAM_TARGET_MBPS, at least 64K; this value on a short path (< 2 ms). A resume without a set size takes the size of the receiver's journal") \
	INT(STREAM_TARGET_MBPS, 1000, "stream: rate the pipe is sized for, Mbit/s: one connection per 256 KiB of RTT x rate (at most 15; each TCP connection on a lossy long path is loss-limited), chunks in flight 2 x RTT x rate") \
	INT(STREAM_MAX_INFLIGHT, 64, "stream: most chunk buffers in flight per transfer (bounds memory)") \
	INT(STREAM_QDELAY_US, 1000, "stream: queueing-delay target, us: on a long path, probe RTT above its min + this + 2 x the path's jitter scales the rate down (Swift, to 0.8x at most); without a probe, chunk RTT above min + max(this, 10 ms) trims the window (to 1 BDP) and the rate (to 0.8x)") \
	INT(STREAM_JOURNAL_SYNC_MS, 250, "stream: receiver syncs data and the .wccl-part journal at least this often, ms") \
	INT(STREAM_IO_THREAD, 1, "stream: file reads / writes and CRC32C on a second thread per side, overlapping the network (0 = all on one thread)") \
	INT(STREAM_READBACK, 0, "stream: receiver re-reads the whole file at the end for the file CRC (0 = combine the CRCs of the chunks it verified; chunks from an earlier run are read)") \
	INT(STREAM_KERNEL_PACING, 1, "stream: on a long path, cap each connection at WCCL_STREAM_KERNEL_PACING_PCT % of its share of the pacing rate (the rate over the connections with unsent bytes) with SO_MAX_PACING_RATE where the provider can, so chunks leave paced, not as line-rate bursts (0 = engine pacer only)") \
	INT(STREAM_KERNEL_PACING_PCT, 110, "stream: the kernel pacing cap of each connection with unsent bytes, in % of its share of the pacing rate, while the probe sees no queue (100 % while it does; 100..400), and never so high that the connections together go above the rate that began the last queue: headroom to catch up after a loss. 125: ~3 % more goodput on lossy in the VM, ~5 ms more on the steady p99; 100: the bottleneck's queue stays under 2 ms (p99) for ~4-5 % less goodput (perf/RESULTS.md, session 18)") \
	INT(STREAM_KERNEL_PACING_LEND, 1, "stream: while the probe sees no queue, a connection with unsent bytes whose congestion window cannot carry its share of the pacing rate (one cut by a loss) lends the rest to the others' kernel pacing caps; the caps' sum stays at WCCL_STREAM_KERNEL_PACING_PCT % (0 = every cap the same)") \
	INT(STREAM_PROBE_MS, 10, "stream: delay samples every N ms for the delay target: TCP's RTT of each busy connection (WCCL_STREAM_KERNEL_RTT), else a ping on a connection without data, which is always measured (0 = off: chunk RTTs)") \
	INT(STREAM_PROBE_ICMP, 1, "stream: on a long path, probe with ICMP echo too (an unprivileged ICMP socket, else a raw one): the peer's kernel answers and ours stamps the reply, so neither side's scheduling is in the RTT; while it answers it drives the delay target instead of the TCP ping (0 = the TCP ping only)") \
	INT(STREAM_KERNEL_RTT, 0, "stream: 1 = the delay target reads each connection's smoothed RTT as TCP measures it (TCP_INFO) instead of the ping probe's; off by default: on paced, sparse segments delayed ACKs inflate it (seen: 2 s chunk RTTs at 40 ms in the VM)") \
	INT(STREAM_PORT, 18600, "stream: default port of wccl-xfer recv / send") \
	INT(STREAM_TEST_CORRUPT, -1, "stream test hook: flip a bit in chunk N (0-based) once, after its crc (-1 = off)") \
	INT(STREAM_TEST_DROP_AFTER, 0, "stream test hook: sender drops its connections after N acked chunks (0 = off)") \
	INT(STREAM_TRACE_MS, 250, "stream: with WCCL_DEBUG=TRACE (subsystem TRANSPORT), the sender prints its model and what held it back every N ms (10..10000)") \
	INT(STREAM_TEST_IO_STALL_MS, 0, "stream test hook: the I/O thread stops this long before its first job, as on a hung disk (0 = off)") \
	INT(STREAM_TEST_FIN_WAIT_MS, 0, "stream test hook: after FIN, the sender lets its provider run until the receiver's close has failed connection 0 (at most N ms) before it reads the verdict (0 = off)") \
	INT(STREAM_TEST_PROBE_FIRST, 0, "stream test hook: sender opens the path probe connection before the data connections (1 = on)") \
	STR(DPDK_EAL, "--no-huge -m 128 --no-shconf --file-prefix=wccl-%p --log-level=warning", "dpdk: EAL arguments (%p = pid, %r = $RANK; add --vdev=... or -a PCI; memif role=auto picks server or client)") \
	INT(DPDK_PORT, 0, "dpdk: ethdev port id to use")                                      \
	STR(DPDK_IP, "", "dpdk: this process's IPv4 address on the DPDK port (default: 10.x.y.z from the pid)") \
	STR(DPDK_PEER_MAC, "", "dpdk: static MAC of every peer (no ARP; default: resolve by ARP)") \
	STR(DPDK_NEIGH, "", "dpdk: static neighbours, IP=MAC[,IP=MAC...] (no ARP for these)") \
	INT(DPDK_ARP, 1, "dpdk: 1 = resolve peers' MACs by ARP; 0 = broadcast until the peer answers (our IP is always answered)") \
	INT(DPDK_ARP_TIMEOUT_MS, 3000, "dpdk: a peer whose MAC ARP has not found by then fails the connect (EHOSTUNREACH, IP named)") \
	INT(DPDK_ARP_RETRY_MS, 200, "dpdk: interval between ARP requests while resolving, ms") \
	INT(DPDK_UDP_PORT, 47000, "dpdk: UDP port of outgoing connections and the default listener") \
	INT(DPDK_MTU, 1500, "dpdk: IP MTU, 576..9000 (jumbo: frames above 2 KiB are chained mbufs); payload per packet is this minus 172 bytes of headers") \
	INT(DPDK_WINDOW, 1024, "dpdk: packets in flight per connection and direction (send window)") \
	INT(DPDK_PACE_MBPS, 20000, "dpdk: pacing ceiling in Mbit/s: caps each connection's model rate and the port (0 = no ceiling)") \
	INT(DPDK_PACE_MODEL, 1, "dpdk: 1 = each connection paces at the delivery-rate / min-RTT model's rate (the streaming engine's: bottleneck estimate from ACKs) and keeps at most its window in flight; 0 = one fixed rate (WCCL_DPDK_PACE_MBPS) that halves on timeouts and regrows on ACKs") \
	INT(DPDK_QDELAY_US, 1000, "dpdk: the model's queueing-delay target, us, on paths of 2 ms RTT or more (0 = off)") \
	INT(DPDK_RTO_MIN_US, 2000, "dpdk: retransmission timeout floor, us (RFC 6298 srtt/rttvar above it)") \
	INT(DPDK_PEER_TIMEOUT_MS, 10000, "dpdk: a peer silent this long counts as lost (keepalives every quarter)") \
	INT(DPDK_TEST_DROP, 0, "dpdk test hook: drop every Nth transmitted data packet (0 = off)") \
	INT(DPDK_TEST_TAIL_DROP, 0, "dpdk test hook: drop the first transmission of the last N data packets of every operation of more than 2N packets: a tail loss, nothing after it to SACK unless another operation follows (0 = off)") \
	INT(DPDK_TEST_LINK_MBPS, 0, "dpdk test hook: transmitted data frames leave through an emulated link of this rate, Mbit/s, behind a 64 KiB drop-tail queue: a bottleneck the pacer does not know of (0 = off)") \
	INT(DPDK_ZCOPY_MIN, 0, "dpdk: payloads of at least this many bytes from registered memory are sent zero-copy (external mbufs; CPU-copy ports only; 0 = off, the default: no gain measured over memif, see perf/RESULTS.md)") \
	INT(DPDK_UDP_CSUM, 1, "dpdk: 1 = UDP checksums on sent packets (offloaded when the port can, else software); received ones are always checked") \
	INT(DPDK_TEST_CORRUPT, 0, "dpdk test hook: flip a bit in every Nth transmitted data packet after its checksum (0 = off; forces software checksums)") \
	INT(DPDK_TEST_SWAP, 0, "dpdk test hook: 1 = swap adjacent transmitted packets (reorder)") \
	STR(VERBS_DEVICE, "", "RDMA device for verbs (default: the one owning VERBS_ADDR, else the first with a local IPv4 GID)") \
	STR(VERBS_ADDR, "", "verbs: local IPv4 address to listen and connect from (default: the device's first)") \
	INT(VERBS_QPS, 4, "verbs: data QPs per connection; writes are spread and large writes and sends striped over them (1..16)") \
	INT(VERBS_STRIPE_MIN, 262144, "verbs: writes, and sends into receives, of at least this many bytes are striped over the data QPs") \
	INT(VERBS_MAX_INFLIGHT, 4194304, "verbs: bytes in flight per connection across its QPs; more waits queued until ACKs return (rxe has no congestion control: a shallow bottleneck queue drops bursts). Raise to rate x RTT on faster paths; 0 = no cap") \
	INT(VERBS_TIMEOUT, 18, "verbs: QP ACK timeout exponent, 4.096 us * 2^N (18 = 1.07 s; must exceed the RTT)") \
	INT(VERBS_RETRY, 7, "verbs: QP retransmissions before a peer counts as lost (0..7)") \
	INT(VERBS_INLINE, 256, "verbs: sends and writes up to this size go inline (capped by the device)") \
	INT(VERBS_BATCH, 32, "verbs: work requests chained per doorbell; only the last is signalled") \
	INT(VERBS_SRQ_DEPTH, 1024, "verbs: internal receives on the shared receive queue (immediates)") \
	INT(VERBS_YIELD_US, -1, "verbs: while CQ polls find nothing, sched_yield() once per this many us of it, so kernel work sharing the core (soft-RoCE tasks, the network softirq) can run; 0 = pure spin; unset (-1): 1 on software devices (rxe, siw), 0 on others") \
	INT(PERF_SCHEDSTAT, 0, "wccl-perf lat: 1 = each side prints to stderr, per timed run, its CPU at start and end and its run time, run-queue wait and time slices from /proc/self/schedstat (which side shares its core with kernel work, and how often it gave the core up)")
/* clang-format on */

enum wccl_param {
#define WCCL_PARAM_ENUM(id, ...) WCCL_PARAM_##id,
	WCCL_PARAM_LIST(WCCL_PARAM_ENUM, WCCL_PARAM_ENUM)
#undef WCCL_PARAM_ENUM
	    WCCL_PARAM_COUNT_
};
