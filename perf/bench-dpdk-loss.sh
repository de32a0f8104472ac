#!/usr/bin/env bash
# What loss costs the dpdk provider: write-poll latency of SIZE messages
# (wccl-perf lat --local over net_memif, unpinned) with packets lost on
# purpose (the provider's test hooks, both ends), next to the same run
# without loss. Configurations, interleaved so that host load hits them
# alike:
#   uring          TCP over io_uring on loopback, no loss (the reference)
#   clean-model    dpdk, no loss, the pacing model (the default)
#   clean-fixed    the same, fixed-rate pacing (WCCL_DPDK_PACE_MODEL=0)
#   tail-fixed     the last TAIL packets of every message lost
#                  (WCCL_DPDK_TEST_TAIL_DROP), fixed rate: the whole tail
#                  is in flight when it is lost
#   tail-model     the same with the model (it keeps ~2 BDP, a few dozen
#                  packets on memif, in flight: each round loses what it
#                  sends until TAIL are gone)
#   random-model   every DROP-th data packet lost (WCCL_DPDK_TEST_DROP)
# usage: perf/bench-dpdk-loss.sh [BUILD_DIR] [REPS] [SIZE] [TAIL] [DROP]
# Prints each run's typical and max half round trip (us) and the
# timeouts and tail loss probes of both ends, then per configuration the
# median typical and its ratio to the clean run of the same pacing
# (uring's: to clean-model, the default).
# JSON=1 adds a JSON line each.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} reps=${2:-3} size=${3:-1M} tail=${4:-64} drop=${5:-50}
. perf/lat-run.sh
lat_init loss
run() { # config -> "typical max stops rto tlp"
	local fixed=WCCL_DPDK_PACE_MODEL=0
	case $1 in
	uring) lat_run uring "" ;;
	clean-model) lat_run dpdk "" ;;
	clean-fixed) lat_run dpdk "" $fixed ;;
	tail-fixed) lat_run dpdk "" WCCL_DPDK_TEST_TAIL_DROP="$tail" $fixed ;;
	tail-model) lat_run dpdk "" WCCL_DPDK_TEST_TAIL_DROP="$tail" ;;
	random-model) lat_run dpdk "" WCCL_DPDK_TEST_DROP="$drop" ;;
	*) echo "fail fail 0 0 0"; echo "unknown config $1" >&2 ;;
	esac
}
configs=${CONFIGS:-"uring clean-model clean-fixed tail-fixed tail-model random-model"}
declare -A res rtos tlps
for rep in $(seq "$reps"); do
	for cfg in $configs; do
		read -r typ max _ rto tlp < <(run "$cfg")
		echo "rep $rep  $size  $cfg  typical $typ us  max $max us  timeouts $rto  probes $tlp"
		res[$cfg]+="$typ "
		rtos[$cfg]+="$rto "
		tlps[$cfg]+="$tlp "
	done
done
echo
printf '%-8s %-13s %16s %10s %10s %8s\n' size config "median typ (us)" \
	"vs clean" timeouts probes
for cfg in $configs; do
	m=$(echo "${res[$cfg]}" | median)
	base=clean-model
	case $cfg in *-fixed) base=clean-fixed ;; esac
	r=$(ratio "$m" "$(echo "${res[$base]:-}" | median)")
	t=$(echo "${rtos[$cfg]}" | median)
	p=$(echo "${tlps[$cfg]}" | median)
	printf '%-8s %-13s %16s %10s %10s %8s\n' "$size" "$cfg" "$m" "$r" "$t" "$p"
	[ "${JSON:-0}" = 1 ] && printf '{"bench":"dpdk-loss","size":"%s","config":"%s","typical_us":"%s","vs_clean":"%s","timeouts":"%s","probes":"%s"}\n' "$size" "$cfg" "$m" "$r" "$t" "$p"
done
