#!/usr/bin/env bash
# Both ends of a connection on one CPU (taskset -c CPU for wccl-perf lat
# --local and the server it forks): write-poll latency of SIZE messages,
# the peers spinning on memory as ib_write_lat does. Configurations,
# interleaved so that host load hits them alike:
#   uring        TCP over io_uring on loopback (the reference)
#   dpdk-model   dpdk over net_memif, the pacing model (the default)
#   dpdk-fixed   the same with WCCL_DPDK_PACE_MODEL=0
# usage: perf/bench-dpdk-shared-cpu.sh [BUILD_DIR] [REPS] [SIZE] [CPU]
# Prints each run's typical and max half round trip (us) and the dpdk
# senders' stops (time slices given up with data out), then the median
# typical per configuration and its ratio to uring. JSON=1 adds one JSON
# line per configuration.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} reps=${2:-3} size=${3:-1M} cpu=${4:-0}
perf=$build/perf/wccl-perf
[ -x "$perf" ] || { echo "no $perf (scripts/build.sh first)"; exit 1; }
dir=$(mktemp -d /tmp/wccl-bench-shared.XXXXXX)
trap 'rm -rf "$dir"' EXIT
eal="--no-huge -m 256 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error"
iters=30
run() { # config -> "typical max stops"
	local cfg=$1 sock=$dir/m$RANDOM.sock out env=()
	case $cfg in
	uring) ;;
	dpdk-model) env=(WCCL_DPDK_PACE_MODEL=1) ;;
	dpdk-fixed) env=(WCCL_DPDK_PACE_MODEL=0) ;;
	esac
	if [ "$cfg" = uring ]; then
		out=$(timeout 600 taskset -c "$cpu" "$perf" lat --local \
			--provider uring --op write-poll -s "$size" -n $iters \
			-w 5 2>"$dir/err")
	else
		out=$(env "${env[@]}" WCCL_DEBUG=INFO WCCL_DEBUG_SUBSYS=DPDK \
			WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock,bsize=4096" \
			timeout 600 taskset -c "$cpu" "$perf" lat --local \
			--provider dpdk --op write-poll -s "$size" -n $iters \
			-w 5 2>"$dir/err")
	fi
	local stops
	stops=$(grep -o 'stalls [0-9]*' "$dir/err" | awk '{ s += $2 } END { print s + 0 }')
	echo "$out" | awk -v s="$stops" '$1 ~ /^[0-9]+$/ && NF >= 6 { t = $5; m = $4 }
		END { if (t) print t, m, s; else print "fail fail", s }'
}
configs=${CONFIGS:-"uring dpdk-model dpdk-fixed"}
declare -A res
for rep in $(seq "$reps"); do
	for cfg in $configs; do
		read -r typ max stops < <(run "$cfg")
		echo "rep $rep  $size  $cfg  typical $typ us  max $max us  stops $stops"
		res[$cfg]+="$typ "
	done
done
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "n/a" }'; }
echo
printf '%-8s %-11s %16s %10s\n' size config "median typ (us)" "vs uring"
u=$(echo "${res[uring]:-}" | median)
for cfg in $configs; do
	m=$(echo "${res[$cfg]}" | median)
	r=$(awk -v a="$m" -v b="$u" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2fx", a / b; else print "n/a" }')
	printf '%-8s %-11s %16s %10s\n' "$size" "$cfg" "$m" "$r"
	[ "${JSON:-0}" = 1 ] && printf '{"bench":"dpdk-shared-cpu","size":"%s","config":"%s","typical_us":"%s","vs_uring":"%s"}\n' "$size" "$cfg" "$m" "$r"
done
