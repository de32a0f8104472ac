#!/usr/bin/env bash
# uring 64-byte latency next to sockperf with every vCPU kept busy by a
# nice 19 spinner, so that neither side pays an idle vCPU's wake-up (the
# peers block in the kernel between messages, wccl polls): the like-for-
# like figure behind perf/RESULTS.md. 3 alternating runs of 3 s.
#   usage: perf/lat-busy.sh [BUILD_DIR]   (sockperf: apt-get install sockperf)
set -euo pipefail
build=${1:-build}
perf=$build/perf/wccl-perf
[ -x "$perf" ] || { echo "lat-busy: no $perf (build first)" >&2; exit 1; }
command -v sockperf >/dev/null || { echo "lat-busy: sockperf missing" >&2; exit 1; }
spinners=()
for _ in $(seq "$(nproc)"); do
	nice -n 19 sh -c 'while :; do :; done' &
	spinners+=($!)
done
trap 'kill "${spinners[@]}" 2>/dev/null' EXIT
sleep 1
port=18123
for i in 1 2 3; do
	timeout 15 sockperf server --tcp -i 127.0.0.1 -p $port >/dev/null 2>&1 &
	srv=$!
	sleep 0.5
	s=$(timeout 10 sockperf ping-pong --tcp -i 127.0.0.1 -p $port -m 64 -t 3 2>&1 |
		awk '/50.000/ { print $NF }')
	kill $srv 2>/dev/null || true
	wait $srv 2>/dev/null || true
	w=$(timeout 20 "$perf" lat --local --provider uring -s 64 -D 3 2>&1 |
		tail -1 | awk '{ print $5 }')
	echo "run $i: sockperf p50 $s us, wccl typical $w us"
done
