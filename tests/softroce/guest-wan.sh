#!/usr/bin/env bash
# Guest: the transport contract suite ("transport") or the collectives suite
# over verbs, 2 ranks ("coll"), between rxe0 and rxe1 across the veth pair
# with netem 20 ms RTT (wan-profile.sh delay20, no rate limit: pure delay).
# "cap": the verbs bytes-in-flight cap behind a shallow bottleneck: delay20
# with its 350 Mbit/s tbf but 40 ms of buffer (1.75 MB), 16 data QPs
# (16 x 128 x 4 KiB = 8 MiB could be in flight), 48 MiB of 4 MiB writes 8
# deep (test_verbs_wan_cap) with WCCL_VERBS_MAX_INFLIGHT=WCCL_CAP_INFLIGHT
# (default 1 MiB): every write must complete intact, the peak in flight stay
# under the cap, and the tbf must drop nothing (a drop costs rxe a 1.07 s
# ACK timeout and a go-back-N burst into the same queue). WCCL_CAP_INFLIGHT=0
# on the host runs the same without a cap: the control, which fails (seen:
# 6,491 drops, 114 rxe retries, 4x the time).
#
# The test programs fork both sides from one process, so both devices must
# live in one namespace: the bed runs in "init" mode (both veth ends in the
# initial namespace, policy routing sends traffic between the two addresses
# across the veth, so through netem). Side A / rank 1 is on rxe1, side B /
# rank 0 on rxe0 (ITEST_ENV_A/B, TEST_COLL_ENV_<rank>).
#
# The run fails, not just the suite, if the path is not what it claims: the
# ping RTT must be >= 19 ms and the veth must have carried the suite's bytes
# (>= 64 MiB for transport, the contract moves 64 MiB buffers; >= 8 MiB for
# coll). rxe's own loopback short cut would bypass netem entirely.
#   tests/vm/run.sh tests/softroce/guest-wan.sh BUILD_DIR transport|coll
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-wan: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-wan.sh BUILD_DIR transport|coll|cap}
what=${2:?usage: guest-wan.sh BUILD_DIR transport|coll|cap}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
export WCCL_VM_RXE_MODE=init
wccl_modules
wccl_net_up 9000
if [ "$what" = cap ]; then
	WCCL_WAN_RATE=350mbit WCCL_WAN_QUEUE_MS=40 "$WCCL_VM_DIR/wan-profile.sh" delay20
else
	WCCL_WAN_RATE=none "$WCCL_VM_DIR/wan-profile.sh" delay20
fi
rtt=$(ping -q -c 3 -i 0.2 -I "$(wccl_addr 0)" "$(wccl_addr 1)" |
	sed -n 's|.*= \([0-9.]*\)/.*|\1|p')
echo "guest-wan: ping RTT min ${rtt:-?} ms"
awk -v r="${rtt:-0}" 'BEGIN { exit !(r >= 19) }' ||
	{ echo "guest-wan: FAIL: the veth path does not have the 20 ms RTT"; exit 1; }
export WCCL_DEBUG=${WCCL_DEBUG:-WARN} WCCL_VERBS_DEVICE=rxe0
tx0=$(cat /sys/class/net/veth0/statistics/tx_bytes)
t0=$SECONDS
rc=0
case "$what" in
transport)
	min_mib=64
	ITEST_ENV_A="WCCL_VERBS_DEVICE=rxe1" ITEST_ENV_B="WCCL_VERBS_DEVICE=rxe0" \
		"$build/tests/integration/test_transport" verbs || rc=$?
	;;
coll)
	min_mib=8
	TEST_COLL_ENV_0="WCCL_VERBS_DEVICE=rxe0" TEST_COLL_ENV_1="WCCL_VERBS_DEVICE=rxe1" \
		"$build/tests/collectives/test_coll" verbs 2 || rc=$?
	;;
cap)
	min_mib=48
	cap=${WCCL_CAP_INFLIGHT:-1048576}
	retry0=$(cat /sys/class/infiniband/rxe0/ports/1/hw_counters/completer_retry_err 2>/dev/null || echo 0)
	WCCL_VERBS_QPS=16 WCCL_VERBS_MAX_INFLIGHT=$cap WCCL_CAP_INIT_DEV=rxe0 \
		WCCL_CAP_TARGET_DEV=rxe1 "$build/tests/softroce/test_verbs_wan_cap" || rc=$?
	retries=$(($(cat /sys/class/infiniband/rxe0/ports/1/hw_counters/completer_retry_err 2>/dev/null || echo 0) - retry0))
	# tbf is the child qdisc of netem on veth0 (the data direction).
	drops=$(tc -s qdisc show dev veth0 | awk '/^qdisc tbf/ { t = 1 } t && /dropped/ { sub(",", "", $7); print $7; exit }')
	echo "guest-wan: cap $cap B: tbf on veth0 dropped ${drops:-?} packets, rxe0 completer retries $retries"
	if [ "${drops:-1}" != 0 ]; then
		echo "guest-wan: FAIL: the bottleneck queue overflowed (cap $cap B)"
		rc=1
	fi
	;;
*) echo "guest-wan: transport, coll or cap, not '$what'" >&2; exit 2 ;;
esac
mib=$((($(cat /sys/class/net/veth0/statistics/tx_bytes) - tx0) >> 20))
echo "guest-wan: $what over verbs at 20 ms RTT: exit $rc, $((SECONDS - t0)) s, $mib MiB sent on veth0"
if [ "$mib" -lt "$min_mib" ]; then
	echo "guest-wan: FAIL: only $mib MiB crossed veth0 (want >= $min_mib): the suite did not use the WAN path"
	rc=1
fi
exit "$rc"
