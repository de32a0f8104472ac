#!/usr/bin/env bash
# The memif test's server and client over net_af_packet on a veth pair
# between two network namespaces made here (and removed on exit).
# usage: netns_af_packet.sh TEST_BINARY   (extra env, e.g. DROP, passes on)
# Exit 77 when namespaces or veth cannot be made (not root, no ip).
set -uo pipefail
bin=$1
command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
tag=wd$$
ns1=${tag}s ns2=${tag}c
cleanup() { ip netns del "$ns1" 2>/dev/null; ip netns del "$ns2" 2>/dev/null; }
trap cleanup EXIT
if ! { ip netns add "$ns1" && ip netns add "$ns2" &&
	ip link add "${tag}a" type veth peer name "${tag}b" &&
	ip link set "${tag}a" netns "$ns1" && ip link set "${tag}b" netns "$ns2" &&
	ip -n "$ns1" link set "${tag}a" up && ip -n "$ns2" link set "${tag}b" up; } 2>/dev/null; then
	echo "SKIP: cannot create network namespaces / veth (need root)"
	exit 77
fi
eal="--no-huge -m 128 --no-shconf --log-level=error"
ip netns exec "$ns1" env WCCL_DPDK_IP=10.77.0.1 \
	WCCL_DPDK_EAL="$eal --file-prefix=${tag}s --vdev=net_af_packet0,iface=${tag}a" \
	timeout 120 "$bin" server &
spid=$!
sleep 1
ip netns exec "$ns2" env WCCL_DPDK_IP=10.77.0.2 \
	WCCL_DPDK_EAL="$eal --file-prefix=${tag}c --vdev=net_af_packet0,iface=${tag}b" \
	timeout 120 "$bin" client
crc=$?
wait $spid
src=$?
echo "server $src client $crc"
[ $src = 77 ] || [ $crc = 77 ] && exit 77
[ $src = 0 ] && [ $crc = 0 ]
