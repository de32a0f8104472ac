#!/usr/bin/env bash
# wccl-xfer side by side with iperf3 (cubic, bbr; 1 and N streams) and UDT
# on emulated WAN profiles, all in one boot of the qemu VM (tests/vm), same
# profile, same run; table (ratios) and a PNG per profile (goodput and
# probe RTT over time).
#
#   perf/stream/bench-wan.sh [-o OUT] [-b BUILD] [PROFILE...]   (default: lossy east-west)
#
# OUT (default perf-results/stream) gets raw.log, results.json, summary.md
# and <profile>.png. Knobs (see guest-bench.sh): WCCL_WAN_RATE (200mbit),
# WCCL_WAN_MTU, WCCL_BENCH_SECS, WCCL_BENCH_N, WCCL_BENCH_TOOLS,
# WCCL_BENCH_CEILING, WCCL_BENCH_BASE, WCCL_BENCH_CAP. Exit 77 when the VM
# cannot run here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."
out=perf-results/stream build=build
while getopts o:b:h opt; do
	case $opt in
	o) out=$OPTARG ;;
	b) build=$OPTARG ;;
	*) sed -n '2,14p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
skip() { echo "SKIP bench-wan: $*" >&2; exit 77; }

# What the run needs on the host (the guest runs the host's binaries).
need=()
command -v iperf3 >/dev/null || need+=(iperf3)
[ -e /usr/include/udt/udt.h ] || need+=(libudt-dev)
command -v g++ >/dev/null || need+=(g++)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || skip "missing ${need[*]} (run as root to install)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
		skip "could not install ${need[*]}"
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (tests/vm/setup.sh)"
[ -x "$build/tools/wccl-xfer" ] || scripts/build.sh gcc >/dev/null
mkdir -p "$build/perf-stream" "$out"
g++ -O2 -Wall -Wextra -o "$build/perf-stream/udt_bench" "$here/udt_bench.cpp" -ludt -lpthread

start=$(date -u +%FT%TZ)
set +e
tests/vm/run.sh --mem 3072 --timeout "${WCCL_BENCH_VM_TIMEOUT:-1500}" \
	"$here/guest-bench.sh" "$build" "$@" | tee "$out/raw.log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 77 ] && skip "the guest said skip"
/usr/bin/python3 "$here/report.py" "$out/raw.log" "$out" "$start"
exit "$rc"
