#!/usr/bin/env bash
# Guest: perftest (ib_write_bw / ib_write_lat) against wccl-perf on the
# verbs provider, between the two peers of the veth pair (rxe0 / rxe1), with
# no WAN profile and at delay20 (20 ms RTT, 350 Mbit/s tbf bottleneck).
# Prints each pair and the wccl/perftest ratio. Fails only if a tool fails:
# throughput under TCG swings 2-10x with host load, so nothing is asserted.
#   tests/vm/run.sh tests/softroce/guest-perf.sh BUILD_DIR
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-perf: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-perf.sh BUILD_DIR}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
# shellcheck disable=SC2034  # used by perf-lib.sh
wperf=$build/perf/wccl-perf
# shellcheck disable=SC2034
logdir=$(mktemp -d) port=18515
failures=0
secs=${WCCL_SOFTROCE_PERF_SECS:-3}

# shellcheck source=perf-lib.sh
. "$(dirname "$0")/perf-lib.sh"

suite() {
	local tag=$1 bwargs=$2 latn=$3 t0=$SECONDS
	echo "== $tag"
	# shellcheck disable=SC2086
	pt "ibbw1-$tag" ib_write_bw -s 65536 $bwargs --report_gbits
	# shellcheck disable=SC2086
	pt "ibbw4-$tag" ib_write_bw -s 65536 -q 4 $bwargs --report_gbits
	pt "iblat-$tag" ib_write_lat -s 8 -n "$latn"
	wp "wbw-$tag" bw -s 64K -D "$secs"
	wp "wlat-$tag" lat -s 8 --op write -n "$latn" -w 5
	wp "wlats-$tag" lat -s 8 --op send -n "$latn" -w 5
	local p1 p4 w pl wl ws
	p1=$(col "ibbw1-$tag" 4) p4=$(col "ibbw4-$tag" 4) w=$(jget "wbw-$tag" bw_avg_Gbps)
	pl=$(col "iblat-$tag" 5) wl=$(jget "wlat-$tag" t_typical_us) ws=$(jget "wlats-$tag" t_typical_us)
	printf '%-8s ib_write_bw 1 QP %s Gb/s | 4 QP %s Gb/s | wccl bw write 64K %s Gb/s -> wccl/1QP %sx, wccl/4QP %sx\n' \
		"$tag" "${p1:-?}" "${p4:-?}" "${w:-?}" "$(ratio "$w" "$p1")" "$(ratio "$w" "$p4")"
	printf '%-8s ib_write_lat 8B typical %s us | wccl lat write_imm %s us (%sx), send %s us (%sx)\n' \
		"$tag" "${pl:-?}" "${wl:-?}" "$(ratio "$wl" "$pl")" "${ws:-?}" "$(ratio "$ws" "$pl")"
	echo "$tag: $((SECONDS - t0)) s"
}

main() {
	local t0=$SECONDS
	echo "kernel $(uname -r), $(nproc) vCPUs"
	wccl_modules
	wccl_net_up 9000
	g0=$(wccl_gid_index rxe0)
	g1=$(wccl_gid_index rxe1)
	echo "rxe mode: $(wccl_net_mode); GID index rxe0 $g0, rxe1 $g1"
	export WCCL_DEBUG=${WCCL_DEBUG:-WARN}
	suite plain "-D $secs" 200
	"$WCCL_VM_DIR/wan-profile.sh" delay20
	suite delay20 "-D $secs" 20
	"$WCCL_VM_DIR/wan-profile.sh" none
	wccl_net_down
	echo "guest-perf: $failures failure(s), $((SECONDS - t0)) s in the guest"
	[ "$failures" = 0 ]
}

main "$@"
