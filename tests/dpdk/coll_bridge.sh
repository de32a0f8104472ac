#!/usr/bin/env bash
# The collectives suite (tests/collectives/test_coll) over the dpdk
# provider with more than two ranks, through a switch: a Linux bridge in a
# namespace of its own, one veth pair per rank from it to the ranks'
# namespace, each rank on net_af_packet of its veth end (%r in
# WCCL_DPDK_EAL is the rank). Peers find each other by ARP through the
# bridge (it floods the requests, learns the MACs, forwards unicast).
#   usage: coll_bridge.sh TEST_COLL NRANKS
# The ranks share one namespace so that test_coll's bootstrap (TCP on
# 127.0.0.1) reaches them all; only their DPDK traffic crosses the bridge.
# Exit 77 when namespaces, veths or the bridge cannot be made.
set -uo pipefail
bin=$1 n=$2
command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
tag=wb$$
nsh=${tag}h nss=${tag}s
cleanup() { ip netns del "$nsh" 2>/dev/null; ip netns del "$nss" 2>/dev/null; }
trap cleanup EXIT
setup() {
	ip netns add "$nsh" && ip netns add "$nss" || return 1
	for ns in "$nsh" "$nss"; do # no IPv6 chatter on the test links
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
	done
	ip -n "$nsh" link set lo up &&
		ip -n "$nss" link add br0 type bridge &&
		ip -n "$nss" link set br0 up || return 1
	# The af_packet PMD (22.11) joins PACKET_FANOUT group
	# (pid ^ ifindex) & 0xffff, and a group is per namespace: ranks with
	# nearby pids on nearby ifindexes collided (EINVAL, no port). Ifindexes
	# 4096 apart keep the groups apart for pids less than 4096 apart.
	for r in $(seq 0 $((n - 1))); do
		ip -n "$nsh" link add "${tag}h$r" index $((4096 * (r + 1))) \
			type veth peer name "${tag}p$r" netns "$nss" &&
			ip -n "$nss" link set "${tag}p$r" master br0 &&
			ip -n "$nss" link set "${tag}p$r" up &&
			ip -n "$nsh" link set "${tag}h$r" up || return 1
	done
}
if ! setup 2>/dev/null; then
	echo "SKIP: cannot create namespaces / veths / a bridge (need root)"
	exit 77
fi
export WCCL_TRANSPORT=dpdk
export WCCL_DPDK_EAL="--no-huge -m 128 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error --vdev=net_af_packet0,iface=${tag}h%r"
ip netns exec "$nsh" "$bin" dpdk "$n"
rc=$?
# The data went through the bridge: every port carried traffic both ways.
for r in $(seq 0 $((n - 1))); do
	st=/sys/class/net/${tag}p$r/statistics
	read -r rx tx < <(ip netns exec "$nss" sh -c "echo \$(cat $st/rx_packets) \$(cat $st/tx_packets)")
	echo "bridge port $r: rx $rx tx $tx packets"
	if [ "${rx:-0}" -lt 1000 ] || [ "${tx:-0}" -lt 1000 ]; then
		echo "FAIL: bridge port $r carried almost nothing"
		rc=1
	fi
done
exit $rc
