#!/usr/bin/env bash
# Guest: the transport contract suite ("transport") or the collectives suite
# over verbs, 2 ranks ("coll"), between rxe0 and rxe1 across the veth pair
# with netem 20 ms RTT (wan-profile.sh delay20, no rate limit: pure delay).
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
build=${1:?usage: guest-wan.sh BUILD_DIR transport|coll}
what=${2:?usage: guest-wan.sh BUILD_DIR transport|coll}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
export WCCL_VM_RXE_MODE=init
wccl_modules
wccl_net_up 9000
WCCL_WAN_RATE=none "$WCCL_VM_DIR/wan-profile.sh" delay20
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
*) echo "guest-wan: transport or coll, not '$what'" >&2; exit 2 ;;
esac
mib=$((($(cat /sys/class/net/veth0/statistics/tx_bytes) - tx0) >> 20))
echo "guest-wan: $what over verbs at 20 ms RTT: exit $rc, $((SECONDS - t0)) s, $mib MiB sent on veth0"
if [ "$mib" -lt "$min_mib" ]; then
	echo "guest-wan: FAIL: only $mib MiB crossed veth0 (want >= $min_mib): the suite did not use the WAN path"
	rc=1
fi
exit "$rc"
