#!/usr/bin/env bash
# Guest: the long-RTT goal of issue 4 and the plain ratios, in one VM run.
# Between the two peers of the veth pair (rxe0 / rxe1), for each veth MTU
# in WCCL_WAN_PERF_MTUS (default "1500 9000": rxe MTU 1024 and 4096):
#   plain    ib_write_bw 1 QP, ib_write_lat, wccl-perf bw and lat
#   pure20   netem 20 ms RTT, no rate limit: the single QP's window is the
#            limit (rxe: 128 unacked packets per QP, 128 x MTU per RTT)
#   delay20  the issue's profile: 20 ms RTT + 350 Mbit/s tbf bottleneck
# ib_write_bw is perftest's default shape (1 QP, 64 KiB, tx depth 128);
# wccl-perf bw runs with WCCL_VERBS_QPS from WCCL_WAN_PERF_QPS (default
# "8 16") and -s from WCCL_WAN_PERF_SIZE (default 4M, striped over the
# QPs), then --op send with the best QP count (striped sends). Prints every number and the ratios; fails only if a tool fails
# (TCG throughput swings with host load, so nothing is asserted).
#   tests/vm/run.sh tests/softroce/guest-wan-perf.sh BUILD_DIR
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-wan-perf: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-wan-perf.sh BUILD_DIR}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
# shellcheck source=perf-lib.sh
. "$(dirname "$0")/perf-lib.sh"
# shellcheck disable=SC2034  # used by perf-lib.sh
wperf=$build/perf/wccl-perf
# shellcheck disable=SC2034
logdir=$(mktemp -d) port=18515
failures=0
secs=${WCCL_SOFTROCE_PERF_SECS:-4}
size=${WCCL_WAN_PERF_SIZE:-4M}

# (Not in $(...): pt and wp count failures in this shell.)
ibbw() { # NAME: ib_write_bw 1 QP, perftest defaults
	pt "$1" ib_write_bw -D "$secs" --report_gbits
}

wbw() { # NAME QPS [wccl-perf args]
	local name=$1 q=$2
	shift 2
	WP_ENV="WCCL_VERBS_QPS=$q" wp "$name" bw -s "$size" -D "$secs" "$@"
}

condition() { # TAG MTU
	local tag=$1 mtu=$2 ib w q best=0 bestq=-
	ibbw "ib-$tag-$mtu"
	ib=$(col "ib-$tag-$mtu" 4)
	echo "$tag mtu $mtu: ib_write_bw 1 QP ${ib:-?} Gb/s"
	for q in ${WCCL_WAN_PERF_QPS:-8 16}; do
		wbw "w$q-$tag-$mtu" "$q"
		w=$(jget "w$q-$tag-$mtu" bw_avg_Gbps)
		echo "$tag mtu $mtu: wccl bw -s $size, $q data QPs: ${w:-?} Gb/s = $(ratio "$w" "$ib")x ib_write_bw"
		if awk -v a="${w:-0}" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$w bestq=$q; fi
	done
	printf 'RESULT %-8s mtu %-5s ib_write_bw(1 QP) %-6s wccl(best, %s QPs) %-6s ratio %s\n' \
		"$tag" "$mtu" "${ib:-?}" "$bestq" "$best" "$(ratio "$best" "$ib")"
	# Sends of the same size, striped into the receives the server offers.
	wbw "ws$bestq-$tag-$mtu" "$bestq" --op send
	w=$(jget "ws$bestq-$tag-$mtu" bw_avg_Gbps)
	printf 'RESULT %-8s mtu %-5s wccl bw --op send, %s QPs: %s Gb/s = %sx ib_write_bw\n' \
		"$tag" "$mtu" "$bestq" "${w:-?}" "$(ratio "$w" "$ib")"
}

lat() { # MTU: ib_write_lat vs wccl lat (write_imm and send), 8 B; wccl
	# as shipped (WCCL_SPIN_US 50, then it sleeps on the completion
	# channel) and busy-polling like perftest (WCCL_SPIN_US=10 s)
	local mtu=$1 pl wl ws spin
	pt "iblat-$mtu" ib_write_lat -s 8 -n 500
	pl=$(col "iblat-$mtu" 5)
	for spin in 50 10000000; do
		WP_ENV="WCCL_SPIN_US=$spin" wp "wlat$spin-$mtu" lat -s 8 --op write -n 500 -w 20
		WP_ENV="WCCL_SPIN_US=$spin" wp "wlats$spin-$mtu" lat -s 8 --op send -n 500 -w 20
		wl=$(jget "wlat$spin-$mtu" t_typical_us) ws=$(jget "wlats$spin-$mtu" t_typical_us)
		printf 'RESULT lat      mtu %-5s spin %-8s ib_write_lat %s us | wccl write_imm %s us (%sx) | send %s us (%sx)\n' \
			"$mtu" "$spin" "${pl:-?}" "${wl:-?}" "$(ratio "$wl" "$pl")" "${ws:-?}" "$(ratio "$ws" "$pl")"
	done
}

plainbw() { # MTU: same-shape bandwidth, 64 KiB, default QPs
	local mtu=$1 ib w
	ibbw "ibp-$mtu"
	ib=$(col "ibp-$mtu" 4)
	WP_ENV="" wp "wp-$mtu" bw -s 64K -D "$secs"
	w=$(jget "wp-$mtu" bw_avg_Gbps)
	printf 'RESULT bw64K    mtu %-5s ib_write_bw %s Gb/s | wccl bw 64K %s Gb/s (%sx)\n' \
		"$mtu" "${ib:-?}" "${w:-?}" "$(ratio "$w" "$ib")"
}

one_mtu() { # MTU
	plainbw "$1"
	lat "$1"
	WCCL_WAN_RATE=none "$WCCL_VM_DIR/wan-profile.sh" delay20
	condition pure20 "$1"
	"$WCCL_VM_DIR/wan-profile.sh" delay20
	condition delay20 "$1"
	"$WCCL_VM_DIR/wan-profile.sh" none
}

main() {
	local t0=$SECONDS
	perf_guest_begin
	perf_each_mtu "${WCCL_WAN_PERF_MTUS:-1500 9000}" one_mtu
	echo "guest-wan-perf: $failures failure(s), $((SECONDS - t0)) s in the guest"
	[ "$failures" = 0 ]
}

main "$@"
