#!/usr/bin/env bash
# Guest script proving the soft-RoCE bed works: modules, two peers with an
# rxe each, the verbs tools, and perftest write bandwidth / latency between
# the peers, plain and under the delay20 WAN profile.
#
#   tests/vm/run.sh tests/vm/selftest-rxe.sh
#
# Exits 0 on success, 1 on any failure, 77 if not inside the test VM.
set -euo pipefail

[ "${WCCL_VM:-}" = 1 ] || { echo "selftest-rxe: run me through tests/vm/run.sh" >&2; exit 77; }
# shellcheck source=netns.sh
. "$WCCL_VM_DIR/netns.sh"

port=18515
logdir=$(mktemp -d)
failures=0

step() { printf '\n== %s\n' "$*"; }

# Waits (up to 15 s) until peer I listens on $port: a TCP socket for
# perftest's own handshake, or an rdma_cm id when the test runs with -R.
wait_listen() {
	local i=$1 how=$2 end=$((SECONDS + 15))
	while [ "$SECONDS" -lt "$end" ]; do
		if [ "$how" = rdmacm ]; then
			wccl_ns "$i" rdma resource show cm_id | grep -q "LISTEN.*:$port\b" && return 0
		else
			wccl_ns "$i" ss -Hltn "sport = :$port" | grep -q . && return 0
		fi
		sleep 0.1
	done
	return 1
}

# run_pair NAME TOOL ARGS...: TOOL's server as peer 1, client as peer 0;
# returns the client's exit code (or the server's if only it failed).
run_pair() {
	local name=$1 tool=$2 how=tcp spid rc=0 src=0
	shift 2
	[ "${g1_opt[0]}" = -R ] && how=rdmacm
	# shellcheck disable=SC2046  # the prefix is meant to split into words
	timeout 120 $(wccl_ns_prefix 1) "$tool" -d rxe1 "$@" "${g1_opt[@]}" >"$logdir/$name.server" 2>&1 &
	spid=$!
	if ! wait_listen 1 "$how"; then
		echo "server did not start listening" >"$logdir/$name.client"
		kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		return 1
	fi
	# shellcheck disable=SC2046
	timeout 120 $(wccl_ns_prefix 0) "$tool" -d rxe0 "$@" "${g0_opt[@]}" "$(wccl_addr 1)" \
		>"$logdir/$name.client" 2>&1 || rc=$?
	# A failed client leaves the server waiting for a peer: stop it now.
	[ "$rc" = 0 ] || kill "$spid" 2>/dev/null || true
	wait "$spid" || src=$?
	[ "$rc" != 0 ] || rc=$src
	return "$rc"
}

# perf NAME TOOL ARGS...: one perftest pair, its result row, pass or fail.
# The QP timeout (-u 18, about 1 s) must exceed the RTT plus a full tbf
# buffer. An rdma_cm connect REJECTED with reason 8 (invalid service ID)
# although the listener is in place is retried up to twice: seen on a loaded
# host, never on a quiet one (see README).
perf() {
	local name=$1 tool=$2 t0=$SECONDS rc=0 tries=3
	shift 2
	while :; do
		rc=0
		run_pair "$name" "$tool" -F -u 18 "$@" || rc=$?
		tries=$((tries - 1))
		if [ "$rc" = 0 ] || [ "$tries" = 0 ] ||
			! grep -q RDMA_CM_EVENT_REJECTED "$logdir/$name.client"; then
			break
		fi
		echo "retry $name: $(grep -m1 'Event:' "$logdir/$name.client")"
		sleep 1
	done
	if [ "$rc" = 0 ]; then
		echo "ok   $name ($tool $*; $((SECONDS - t0)) s)"
		# The result table: the " #bytes" header and the row after it.
		awk '/^ *#bytes/ { h = 1; print; next } h && NF { print; h = 0 }' "$logdir/$name.client"
	else
		echo "FAIL $name (exit $rc): $tool $*"
		sed 's/^/  client: /' "$logdir/$name.client"
		sed 's/^/  server: /' "$logdir/$name.server"
		failures=$((failures + 1))
	fi
}

# suite TAG BW_ITERS LAT_ITERS: kept small, each perftest start costs seconds
# under TCG; the 4-QP run does BW_ITERS / 4 per QP.
suite() {
	local tag=$1
	g0_opt=(-x "$g0") g1_opt=(-x "$g1")
	perf "write_bw-$tag" ib_write_bw -s 65536 -n "$2" --report_gbits
	perf "write_bw-4qp-$tag" ib_write_bw -s 65536 -n $(($2 / 4)) -q 4 --report_gbits
	perf "write_lat-$tag" ib_write_lat -s 8 -n "$3"
	# Once through rdma_cm as well: the library connects that way.
	g0_opt=(-R) g1_opt=(-R)
	perf "write_lat-rdmacm-$tag" ib_write_lat -s 8 -n "$3"
}

main() {
	local t0=$SECONDS
	step "kernel $(uname -r), $(nproc) vCPUs"
	wccl_modules
	wccl_net_up 9000
	echo "rxe mode: $(wccl_net_mode)"
	g0=$(wccl_gid_index rxe0)
	g1=$(wccl_gid_index rxe1)
	echo "RoCE v2 GID index: rxe0 $g0, rxe1 $g1"

	step ibv_devices
	ibv_devices
	step "ibv_devinfo -d rxe0"
	ibv_devinfo -d rxe0
	wccl_ns 0 ping -c 1 -W 5 "$(wccl_addr 1)" >/dev/null || { echo "FAIL ping"; exit 1; }

	step "perftest, no WAN profile"
	suite plain 800 200
	step "perftest, WAN profile delay20"
	"$WCCL_VM_DIR/wan-profile.sh" delay20
	"$WCCL_VM_DIR/wan-profile.sh" show
	wccl_ns 0 ping -c 3 -i 0.2 "$(wccl_addr 1)" | tail -n 1
	suite delay20 200 20
	"$WCCL_VM_DIR/wan-profile.sh" none

	wccl_net_down
	step "selftest-rxe: $failures failure(s), $((SECONDS - t0)) s in the guest"
	[ "$failures" = 0 ]
}

main "$@"
