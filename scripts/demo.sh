#!/usr/bin/env bash
# The main job (README Quick start): a local multi-region demo on built-in
# defaults. Four ranks start on this host in two emulated regions (east:
# ranks 0-1, west: ranks 2-3); ranks in one region talk over shared memory,
# ranks in different regions over TCP/io_uring, as they would across a
# long-haul link. They run the allreduce sweep and print, per size, the
# algorithm chosen and the bandwidth, with the transports chosen per peer.
# Extra arguments go to wccl-perf allreduce (e.g. -e 256M -n 50).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=$(scripts/build.sh gcc)
exec "$dir/tools/wccl-run" -n 4 --regions east,east,west,west -- \
	"$dir/perf/wccl-perf" allreduce -b 8 -e 64M -f 8 -n 10 -w 3 "$@"
