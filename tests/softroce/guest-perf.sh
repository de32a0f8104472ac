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
wperf=$build/perf/wccl-perf
logdir=$(mktemp -d)
port=18515
failures=0
secs=${WCCL_SOFTROCE_PERF_SECS:-3}

wait_listen() { # I PORT: perftest's TCP handshake socket is up
	local end=$((SECONDS + 15))
	while [ "$SECONDS" -lt "$end" ]; do
		wccl_ns "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# pt NAME TOOL ARGS...: one perftest pair (server peer 1, client peer 0);
# prints the client's result row into $logdir/NAME.row.
pt() {
	local name=$1 tool=$2 spid rc
	shift 2
	for _ in 1 2 3; do
		rc=0
		# shellcheck disable=SC2046
		timeout 120 $(wccl_ns_prefix 1) "$tool" -d rxe1 -x "$g1" -F -u 18 "$@" \
			>"$logdir/$name.server" 2>&1 &
		spid=$!
		wait_listen 1 "$port" || rc=1
		# shellcheck disable=SC2046
		[ "$rc" = 0 ] && { timeout 120 $(wccl_ns_prefix 0) "$tool" -d rxe0 -x "$g0" -F -u 18 "$@" \
			"$(wccl_addr 1)" >"$logdir/$name.client" 2>&1 || rc=$?; }
		[ "$rc" = 0 ] || kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		[ "$rc" = 0 ] && break
		echo "retry $name (exit $rc)"
		sleep 1
	done
	if [ "$rc" != 0 ]; then
		echo "FAIL $name: $tool $*"
		sed 's/^/  client: /' "$logdir/$name.client"
		failures=$((failures + 1))
		echo 0 >"$logdir/$name.val"
		return
	fi
	awk '/^ *#bytes/ { h = 1; next } h && NF { print; exit }' "$logdir/$name.client" >"$logdir/$name.row"
}

# wp NAME bw|lat ARGS...: wccl-perf server as peer 1 (rxe1), client peer 0.
wp() {
	local name=$1 test=$2 spid addr rc=0 end
	shift 2
	# shellcheck disable=SC2046
	WCCL_VERBS_DEVICE=rxe1 timeout 120 $(wccl_ns_prefix 1) "$wperf" "$test" --provider verbs \
		--json >"$logdir/$name.server" 2>&1 &
	spid=$!
	end=$((SECONDS + 20))
	addr=
	while [ -z "$addr" ] && [ "$SECONDS" -lt "$end" ]; do
		addr=$(sed -n 's/.*"listening": "\([^"]*\)".*/\1/p' "$logdir/$name.server")
		[ -n "$addr" ] || sleep 0.1
	done
	if [ -z "$addr" ]; then
		rc=1
		echo "server did not listen" >"$logdir/$name.client"
	else
		# shellcheck disable=SC2046
		WCCL_VERBS_DEVICE=rxe0 timeout 120 $(wccl_ns_prefix 0) "$wperf" "$test" "$addr" --json "$@" \
			>"$logdir/$name.client" 2>&1 || rc=$?
	fi
	[ "$rc" = 0 ] || kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	if [ "$rc" != 0 ]; then
		echo "FAIL $name: wccl-perf $test $*"
		sed 's/^/  client: /' "$logdir/$name.client"
		sed 's/^/  server: /' "$logdir/$name.server"
		failures=$((failures + 1))
	fi
}

jget() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" "$logdir/$1.client" | tail -n 1; }
col() { awk -v c="$2" '{ print $c }' "$logdir/$1.row" 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a > 0) printf "%.2f", a / b; else print "n/a" }'; }

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
