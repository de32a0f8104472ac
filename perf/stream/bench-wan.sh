#!/usr/bin/env bash
# wccl-xfer side by side with iperf3 (cubic, bbr; 1 and N streams) and UDT
# on emulated WAN profiles, all in one boot of the qemu VM (tests/vm), same
# profile, same run; table (ratios) and a PNG per profile (goodput and
# probe RTT over time).
#
#   perf/stream/bench-wan.sh [-o OUT] [-b BUILD] [-e] [PROFILE...]   (default: lossy east-west)
#
# -e: on the host instead of the VM, over wan-emu (BUILD/perf/wan-emu, a
# user-space netem between two network namespaces: perf/stream/emu-link.sh),
# at native speed; MTU 1500 unless WCCL_WAN_MTU says otherwise (2000 at most).
#
# OUT (default perf-results/stream) gets raw.log, results.json, summary.md
# and <profile>.png. Knobs (see guest-bench.sh): WCCL_WAN_RATE (200mbit),
# WCCL_WAN_MTU, WCCL_BENCH_SECS, WCCL_BENCH_N, WCCL_BENCH_TOOLS,
# WCCL_BENCH_CEILING, WCCL_BENCH_BASE, WCCL_BENCH_CAP. Exit 77 when the VM
# cannot run here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."
out=perf-results/stream build=build emu=0
while getopts o:b:eh opt; do
	case $opt in
	o) out=$OPTARG ;;
	b) build=$OPTARG ;;
	e) emu=1 ;;
	*) sed -n '2,18p' "$0"; exit 2 ;;
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
[ "$emu" = 1 ] || command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 not installed (tests/vm/setup.sh)"
if [ ! -x "$build/tools/wccl-xfer" ] || [ ! -x "$build/perf/wan-emu" ]; then
	scripts/build.sh gcc >/dev/null
fi
mkdir -p "$build/perf-stream" "$out"
g++ -O2 -Wall -Wextra -o "$build/perf-stream/udt_bench" "$here/udt_bench.cpp" -ludt -lpthread

start=$(date -u +%FT%TZ)
set +e
if [ "$emu" = 1 ]; then
	WCCL_BENCH_LINK=emu WCCL_EMU=$(realpath "$build/perf/wan-emu") \
		WCCL_WAN_MTU=${WCCL_WAN_MTU:-1500} \
		"$here/guest-bench.sh" "$build" "$@" | tee "$out/raw.log"
	rc=${PIPESTATUS[0]}
else
	tests/vm/run.sh --mem 3072 --timeout "${WCCL_BENCH_VM_TIMEOUT:-1500}" \
		"$here/guest-bench.sh" "$build" "$@" | tee "$out/raw.log"
	rc=${PIPESTATUS[0]}
fi
set -e
[ "$rc" = 77 ] && skip "guest-bench.sh said skip"
/usr/bin/python3 "$here/report.py" "$out/raw.log" "$out" "$start"
exit "$rc"
