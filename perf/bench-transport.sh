#!/usr/bin/env bash
# Side-by-side transport benchmark on this host (loopback only): wccl's
# providers next to the tool a network engineer would reach for.
#
#   1. uring bw --op write, 1 MiB, -q 1 / -q 2   vs iperf3 -P 1 / -P 2   goal >= 1.0x
#   2. uring lat 64 B (median half round trip)   vs sockperf ping-pong   goal <= 1.1x
#      (and qperf tcp_lat, shown for reference)
#   3. shm bw 4 MiB                              vs single-thread memcpy goal >= 0.7x
#
# Each pair runs REPEATS times (default 3), wccl and peer alternating so they
# share the host's noise; the median is compared and all runs are shown.
# Raw outputs and summary.json go to the results directory.
#
# usage: perf/bench-transport.sh [-o RESULTS_DIR] [-b BUILD_DIR] [-r REPEATS] [-t SECONDS]
#   BUILD_DIR defaults to $WCCL_BUILD or build/ in the repository; if it has
#   no wccl-perf, it is set up and built with meson.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=./perf-results
build=${WCCL_BUILD:-$repo/build}
repeats=3
secs=3

while getopts "o:b:r:t:h" opt; do
	case $opt in
	o) out=$OPTARG ;;
	b) build=$OPTARG ;;
	r) repeats=$OPTARG ;;
	t) secs=$OPTARG ;;
	*) sed -n '2,17p' "$0"; exit 2 ;;
	esac
done

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-transport: $*"; exit 1; }

# ---- prerequisites -----------------------------------------------------------
if ! command -v iperf3 >/dev/null || ! command -v sockperf >/dev/null ||
	! command -v qperf >/dev/null; then
	"$repo/scripts/install-deps.sh" --with-peers ||
		die "peers missing and install-deps.sh failed"
fi
command -v python3 >/dev/null || die "python3 is needed to read JSON"

if [ ! -x "$build/perf/wccl-perf" ] || [ ! -x "$build/perf/memcpy_bw" ]; then
	[ -f "$build/build.ninja" ] || meson setup "$build" "$repo" >&2
	ninja -C "$build" perf/wccl-perf perf/memcpy_bw >&2
fi
perf=$build/perf/wccl-perf
memcpy_bw=$build/perf/memcpy_bw
mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw
rm -rf "$raw"
mkdir -p "$raw"

bound=$((secs + 30)) # every run is bounded by timeout(1)
# Runs happen in subshells, so ports come from (peer, run), never reused.
base_port=$((20000 + $$ % 20000))
next_port() { port=$((base_port + $1 * 100 + run)); }

# Wait (bounded) until something listens on 127.0.0.1:$1.
wait_port() {
	for _ in $(seq 1 200); do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.025
	done
	return 1
}

# Print one field of the last JSON line in file $1: python expression $2 on d.
jget() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip().startswith("{")]
d = json.loads(lines[-1])
print("%.3f" % eval(sys.argv[2], {"d": d}))
EOF
}

# ---- one run of each side; each prints one number ------------------------------
wccl_bw_gbps() { # conns
	local f=$raw/wccl-uring-bw-q$1-$run.json
	timeout $bound "$perf" bw --local --provider uring --op write -s 1M \
		-q "$1" -D "$secs" --json >"$f" 2>"$f.err" || die "wccl bw failed: $(cat "$f.err")"
	jget "$f" 'd["bw_avg_Gbps"]'
}

iperf_gbps() { # streams
	local f=$raw/iperf3-P$1-$run.json
	next_port "$1"
	timeout $bound iperf3 -s -1 -B 127.0.0.1 -p $port >/dev/null 2>&1 &
	local srv=$!
	wait_port $port || die "iperf3 server did not start"
	timeout $bound iperf3 -c 127.0.0.1 -p $port -P "$1" -t "$secs" --json >"$f" ||
		die "iperf3 failed"
	wait $srv || true
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$f"
}

wccl_lat_us() {
	local f=$raw/wccl-uring-lat-$run.json
	timeout $bound "$perf" lat --local --provider uring -s 64 -D "$secs" \
		--json >"$f" 2>"$f.err" || die "wccl lat failed: $(cat "$f.err")"
	jget "$f" 'd["t_typical_us"]'
}

sockperf_us() {
	local f=$raw/sockperf-$run.txt
	next_port 3
	timeout $bound sockperf server --tcp -i 127.0.0.1 -p $port >/dev/null 2>&1 &
	local srv=$!
	wait_port $port || die "sockperf server did not start"
	timeout $bound sockperf ping-pong --tcp -i 127.0.0.1 -p $port -m 64 \
		-t "$secs" >"$f" 2>&1 || die "sockperf failed"
	kill $srv 2>/dev/null || true
	wait $srv 2>/dev/null || true
	# sockperf reports one-way latency (half the round trip), like perftest.
	sed 's/\x1b\[[0-9;]*m//g' "$f" | awk '/percentile 50.000 =/ {print $NF}'
}

qperf_us() {
	local f=$raw/qperf-$run.txt
	next_port 4
	timeout $bound qperf --listen_port $port >/dev/null 2>&1 &
	local srv=$!
	wait_port $port || die "qperf server did not start"
	timeout $bound qperf 127.0.0.1 --listen_port $port -t "$secs" -m 64 \
		tcp_lat >"$f" 2>&1 || die "qperf failed"
	kill $srv 2>/dev/null || true
	wait $srv 2>/dev/null || true
	# qperf's latency is also one-way; it prints "latency = 12.3 us" (or ms).
	awk '/latency/ { v = $3; if ($4 == "ms") v *= 1000; if ($4 == "ns") v /= 1000; print v }' "$f"
}

wccl_shm_gBps() {
	local f=$raw/wccl-shm-bw-$run.json
	timeout $bound "$perf" bw --local --provider shm -s 4M -D "$secs" \
		--json >"$f" 2>"$f.err" || die "wccl shm bw failed: $(cat "$f.err")"
	jget "$f" 'd["bw_avg_MBps"] * 1048576 / 1e9'
}

memcpy_gBps() {
	local f=$raw/memcpy-$run.json
	timeout $bound "$memcpy_bw" 4194304 "$secs" --json >"$f" || die "memcpy_bw failed"
	jget "$f" 'd["GBps"]'
}

# ---- measurements ---------------------------------------------------------------
# measure NAME UNIT GOAL_OP GOAL WCCL_CMD PEER_CMD PEER_NAME
results=$out/results.txt
: >"$results"
measure() {
	local name=$1 unit=$2 op=$3 goal=$4 wcmd=$5 pcmd=$6 pname=$7
	local w=() p=()
	log "== $name: wccl vs $pname ($repeats runs each, alternating)"
	for run in $(seq 1 "$repeats"); do
		w+=("$($wcmd)")
		p+=("$($pcmd)")
		log "   run $run: wccl ${w[-1]} $unit, $pname ${p[-1]} $unit"
	done
	echo "$name|$unit|$op|$goal|$pname|${w[*]}|${p[*]}" >>"$results"
}

log "bench-transport: $(nproc) CPUs, $(uname -r), build $build, results $out"
measure "uring bw write 1MiB q1" "Gb/s" ge 1.0 "wccl_bw_gbps 1" "iperf_gbps 1" "iperf3 -P 1"
measure "uring bw write 1MiB q2" "Gb/s" ge 1.0 "wccl_bw_gbps 2" "iperf_gbps 2" "iperf3 -P 2"
measure "uring lat 64B median" "us" le 1.1 "wccl_lat_us" "sockperf_us" "sockperf tcp"
if command -v qperf >/dev/null; then
	measure "uring lat 64B vs qperf" "us" le 1.1 "wccl_lat_us" "qperf_us" "qperf tcp_lat"
fi
measure "shm bw 4MiB" "GB/s" ge 0.7 "wccl_shm_gBps" "memcpy_gBps" "memcpy 4MiB"

# ---- report ---------------------------------------------------------------------
python3 - "$results" "$out/summary.json" <<'EOF'
import json, statistics, sys
rows = []
for line in open(sys.argv[1]):
    name, unit, op, goal, peer, w, p = line.rstrip("\n").split("|")
    w = [float(x) for x in w.split()]
    p = [float(x) for x in p.split()]
    wm, pm = statistics.median(w), statistics.median(p)
    ratio = wm / pm if pm else float("nan")
    goal = float(goal)
    met = ratio >= goal if op == "ge" else ratio <= goal
    rows.append(dict(metric=name, unit=unit, peer=peer, wccl_runs=w,
                     peer_runs=p, wccl=wm, peer_value=pm, ratio=ratio,
                     goal=("%s %.2fx" % (">=" if op == "ge" else "<=", goal)),
                     met=met))
print()
print("%-24s %-14s %-26s %-14s %-26s %7s %9s %5s" % (
    "metric", "wccl (median)", "wccl runs", "peer (median)", "peer runs",
    "ratio", "goal", "met?"))
for r in rows:
    fmt = lambda v: "%.2f" % v
    print("%-24s %-14s %-26s %-14s %-26s %6.2fx %9s %5s" % (
        r["metric"], fmt(r["wccl"]) + " " + r["unit"],
        " ".join(fmt(v) for v in r["wccl_runs"]),
        fmt(r["peer_value"]) + " " + r["unit"],
        " ".join(fmt(v) for v in r["peer_runs"]),
        r["ratio"], r["goal"], "yes" if r["met"] else "NO"))
print("\npeers: " + "; ".join("%s = %s" % (r["metric"], r["peer"]) for r in rows))
json.dump(rows, open(sys.argv[2], "w"), indent=2)
EOF
log "bench-transport: raw outputs in $raw, summary in $out/summary.json"
