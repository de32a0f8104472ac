#!/usr/bin/env bash
# ARP and ping between the dpdk provider and the Linux kernel: the DPDK
# process (test_dpdk_arp) on net_af_packet of one veth end in a namespace,
# the kernel with an IPv4 address on the other end in another namespace.
# Checks: the DPDK side resolves the kernel's MAC by ARP; a connect to an
# address nobody has fails with an error naming it; the kernel's ping gets
# ARP answers (its neighbour entry holds our MAC) and echo replies.
# usage: arp_kernel.sh TEST_DPDK_ARP     Exit 77 when namespaces cannot be
# made (not root, no ip(8)).
set -uo pipefail
bin=$1
command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
command -v ping >/dev/null || { echo "SKIP: no ping(8)"; exit 77; }
tag=wa$$
nsd=${tag}d nsk=${tag}k
out=$(mktemp /tmp/wccl-arp.XXXXXX) stop=$out.stop
cleanup() {
	touch "$stop"
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
	ip netns del "$nsd" 2>/dev/null
	ip netns del "$nsk" 2>/dev/null
	rm -f "$out" "$stop"
}
trap cleanup EXIT
if ! { ip netns add "$nsd" && ip netns add "$nsk" &&
	ip link add "${tag}a" type veth peer name "${tag}b" &&
	ip link set "${tag}a" netns "$nsd" && ip link set "${tag}b" netns "$nsk" &&
	ip -n "$nsd" link set "${tag}a" up && ip -n "$nsk" link set "${tag}b" up &&
	ip -n "$nsk" addr add 10.79.0.2/24 dev "${tag}b"; } 2>/dev/null; then
	echo "SKIP: cannot create network namespaces / veth (need root)"
	exit 77
fi
mac_of() { ip -n "$1" link show "$2" | awk '/link\/ether/ { print $2 }'; }
kmac=$(mac_of "$nsk" "${tag}b") dmac=$(mac_of "$nsd" "${tag}a")
eal="--no-huge -m 128 --no-shconf --log-level=error --file-prefix=${tag}"
ip netns exec "$nsd" env WCCL_DPDK_IP=10.79.0.1 WCCL_DPDK_ARP_TIMEOUT_MS=1000 \
	WCCL_DPDK_EAL="$eal --vdev=net_af_packet0,iface=${tag}a" \
	timeout 90 "$bin" 10.79.0.2 10.79.0.99 "$stop" >"$out" 2>&1 &
pid=$!
for _ in $(seq 300); do
	grep -q '^ready' "$out" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
cat "$out"
if ! grep -q '^ready' "$out"; then
	wait "$pid"; rc=$?; pid=
	[ $rc = 77 ] && exit 77
	echo "FAIL: the DPDK side did not get ready (exit $rc)"
	exit 1
fi
fail=0
if ! grep -qi "^kernel-mac $kmac" "$out"; then
	echo "FAIL: DPDK resolved the kernel to something else (want $kmac)"
	fail=1
fi
# Our own ARP request taught the kernel our MAC already: forget it, so the
# ping must ask (and we must answer).
ip -n "$nsk" neigh flush dev "${tag}b"
echo "== kernel: ping 10.79.0.1 (the DPDK side, $dmac)"
ip netns exec "$nsk" ping -c 3 -i 0.2 -W 2 10.79.0.1 || { echo "FAIL: ping"; fail=1; }
neigh=$(ip -n "$nsk" neigh show 10.79.0.1)
echo "kernel neighbour entry: $neigh"
echo "$neigh" | grep -qi "lladdr $dmac" || { echo "FAIL: kernel has no ARP entry with $dmac"; fail=1; }
touch "$stop"
wait "$pid"; rc=$?; pid=
tail -n +1 "$out" | grep -E '^(arp|CHECK|.*failed)' || true
[ $rc = 0 ] || { echo "FAIL: test_dpdk_arp exit $rc"; fail=1; }
[ $fail = 0 ] && echo PASS
exit $fail
