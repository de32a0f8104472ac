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
. perf/lat-run.sh
lat_init shared
run() { # config -> "typical max stops"
	case $1 in
	uring) lat_run uring "$cpu" ;;
	dpdk-model) lat_run dpdk "$cpu" WCCL_DPDK_PACE_MODEL=1 ;;
	dpdk-fixed) lat_run dpdk "$cpu" WCCL_DPDK_PACE_MODEL=0 ;;
	*) echo "fail fail 0 0 0"; echo "unknown config $1" >&2 ;;
	esac
}
configs=${CONFIGS:-"uring dpdk-model dpdk-fixed"}
declare -A res
for rep in $(seq "$reps"); do
	for cfg in $configs; do
		read -r typ max stops _ < <(run "$cfg")
		echo "rep $rep  $size  $cfg  typical $typ us  max $max us  stops $stops"
		res[$cfg]+="$typ "
	done
done
echo
printf '%-8s %-11s %16s %10s\n' size config "median typ (us)" "vs uring"
u=$(echo "${res[uring]:-}" | median)
for cfg in $configs; do
	m=$(echo "${res[$cfg]}" | median)
	r=$(ratio "$m" "$u")
	printf '%-8s %-11s %16s %10s\n' "$size" "$cfg" "$m" "$r"
	[ "${JSON:-0}" = 1 ] && printf '{"bench":"dpdk-shared-cpu","size":"%s","config":"%s","typical_us":"%s","vs_uring":"%s"}\n' "$size" "$cfg" "$m" "$r"
done
