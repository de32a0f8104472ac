#!/usr/bin/env bash
# Guest-side network and soft-RoCE plumbing for the VM test bed. Source it
# (. "$WCCL_VM_DIR/netns.sh") and call the functions, or run it as a command:
#
#   netns.sh modules           modprobe veth, rdma_rxe, ib_uverbs, rdma_ucm, netem...
#   netns.sh up [MTU]          wccl_net_up: two peers on a veth pair, an rxe each
#   netns.sh down              wccl_net_down
#   netns.sh loopback [MTU]    wccl_loopback_up: one rxe "rxelo" on a dummy device
#   netns.sh loopback-down     wccl_loopback_down
#   netns.sh gid DEV [PORT]    wccl_gid_index: DEV's RoCE v2 IPv4-mapped GID index
#   netns.sh mode              wccl_net_mode: netns, init or none
#
# MTU defaults to 9000 (rxe then runs at its maximum, 4096).
#
# Peer I (0 or 1) owns veth<I>, address 10.77.0.<I+1> and rxe<I>. Run a
# command as peer I with "wccl_ns I CMD..." whatever the mode:
#   netns  each peer lives in network namespace wccl<I> (kernels whose rxe
#          keeps per-namespace sockets, seen as rxe_ns_pernet_* in kallsyms)
#   init   both veth ends stay in the initial namespace and policy routing
#          forces traffic between the two local addresses across the veth
#          (older kernels: rxe in a namespace connects but every transfer fails)
# WCCL_VM_RXE_MODE=netns|init overrides the detection.
#
# Only ever used inside the guest (it rewrites routing rules): the functions
# that change the network refuse to run unless WCCL_VM=1 (set by run.sh).

WCCL_NET_STATE=/run/wccl-net.env
WCCL_NET_PREFIX=10.77.0
WCCL_LO_ADDR=10.77.1.1

wccl_die() {
	echo "netns.sh: $*" >&2
	return 1
}

# Modules the bed uses; ib_uverbs is not a dependency of rdma_rxe and no udev
# runs in the guest to load it.
wccl_in_vm() {
	[ "${WCCL_VM:-}" = 1 ] || wccl_die "refusing to touch the network outside the test VM"
}

wccl_modules() {
	local m
	for m in veth dummy rdma_rxe ib_uverbs rdma_ucm sch_netem sch_tbf "$@"; do
		modprobe "$m" || wccl_die "modprobe $m failed" || return 1
	done
}

wccl_rxe_mode() {
	if [ -n "${WCCL_VM_RXE_MODE:-}" ]; then
		echo "$WCCL_VM_RXE_MODE"
	elif grep -q ' rxe_ns_pernet_sk4' /proc/kallsyms; then
		echo netns
	else
		echo init
	fi
}

# Mode chosen by the last "up" (state survives between separate commands).
wccl_net_mode() {
	local WCCL_NET_MODE=
	# shellcheck source=/dev/null
	[ -r "$WCCL_NET_STATE" ] && . "$WCCL_NET_STATE"
	echo "${WCCL_NET_MODE:-none}"
}

# wccl_ns I CMD...: run CMD as peer I.
wccl_ns() {
	local i=$1
	shift
	if [ "$(wccl_net_mode)" = netns ]; then
		ip netns exec "wccl$i" "$@"
	else
		"$@"
	fi
}

# wccl_ns_prefix I: the command words that run something as peer I (empty in
# init mode), for callers that need the real pid of a background process:
#   timeout 60 $(wccl_ns_prefix 1) server & pid=$!
wccl_ns_prefix() {
	[ "$(wccl_net_mode)" = netns ] && echo "ip netns exec wccl$1"
	return 0
}

wccl_addr() { echo "$WCCL_NET_PREFIX.$(($1 + 1))"; }

# Netem applies per packet only if the stack doesn't build 64 KiB super-packets;
# RPS keeps one flow on one CPU so the emulator itself never reorders.
wccl_tune_dev() {
	local i=$1 dev=veth$1 mask
	mask=$(printf '%x' $(((1 << $(nproc)) - 1)))
	wccl_ns "$i" ethtool -K "$dev" tso off gso off gro off tx-checksumming off >/dev/null 2>&1 ||
		wccl_ns "$i" ethtool -K "$dev" tso off gso off gro off >/dev/null
	# sysfs must be the peer's own to see its veth: ip netns exec remounts it.
	wccl_ns "$i" sh -c "echo $mask > /sys/class/net/$dev/queues/rx-0/rps_cpus"
}

# Waits until DEV has a RoCE v2 IPv4-mapped GID (filled in asynchronously).
wccl_gid_index() {
	local dev=$1 port=${2:-1} tries=${3:-50} p t n
	p=/sys/class/infiniband/$dev/ports/$port
	while :; do
		for t in "$p"/gid_attrs/types/*; do
			n=${t##*/}
			# Unused entries fail to read (EINVAL): skip them quietly.
			[ "$(cat "$t" 2>/dev/null)" = "RoCE v2" ] || continue
			case "$(cat "$p/gids/$n")" in
			0000:0000:0000:0000:0000:ffff:*) echo "$n"; return 0 ;;
			esac
		done
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || break
		sleep 0.1
	done
	wccl_die "no RoCE v2 IPv4 GID on $dev port $port"
}

wccl_net_up_netns() {
	local mtu=$1 i
	for i in 0 1; do
		ip netns add "wccl$i"
		ip -n "wccl$i" link set lo up
	done
	ip link add veth0 netns wccl0 type veth peer name veth1 netns wccl1
	for i in 0 1; do
		ip -n "wccl$i" link set "veth$i" mtu "$mtu"
		ip -n "wccl$i" addr add "$(wccl_addr "$i")/24" dev "veth$i"
		ip -n "wccl$i" link set "veth$i" up
		wccl_tune_dev "$i"
		ip netns exec "wccl$i" rdma link add "rxe$i" type rxe netdev "veth$i"
	done
}

wccl_net_up_init() {
	local mtu=$1 i j a b
	ip link add veth0 type veth peer name veth1
	# Both addresses are local, so the local table would short-circuit
	# them over lo. Move the local lookup behind rules that send traffic for
	# peer J's address out of the other veth, unless it is arriving on
	# veth J already (then it is delivered). "iif lo" instead of "not iif"
	# makes rdma_cm reject the connection (error 28).
	ip rule add pref 1000 lookup local
	ip rule del pref 0
	for i in 0 1; do
		j=$((1 - i))
		a=$(wccl_addr "$i")
		b=$(wccl_addr "$j")
		ip link set "veth$i" mtu "$mtu"
		ip addr add "$a/32" dev "veth$i"
		ip link set "veth$i" up
		sysctl -qw "net.ipv4.conf.veth$i.accept_local=1" "net.ipv4.conf.veth$i.rp_filter=0" \
			"net.ipv4.conf.veth$i.arp_ignore=1"
		ip route add "$b" dev "veth$i" src "$a" table $((100 + i))
		ip rule add pref $((100 + i)) not iif "veth$j" to "$b" lookup $((100 + i))
		wccl_tune_dev "$i"
		rdma link add "rxe$i" type rxe netdev "veth$i"
	done
	sysctl -qw net.ipv4.conf.all.rp_filter=0
}

# wccl_net_up [MTU]: the two-peer setup; MTU defaults to 9000 (rxe MTU 4096).
wccl_net_up() {
	local mtu=${1:-9000} mode
	wccl_in_vm || return 1
	mode=$(wccl_rxe_mode)
	# wccl_ns needs the mode while the peers are being built.
	echo "WCCL_NET_MODE=$mode" >"$WCCL_NET_STATE"
	case "$mode" in
	netns) wccl_net_up_netns "$mtu" ;;
	init) wccl_net_up_init "$mtu" ;;
	*) wccl_die "WCCL_VM_RXE_MODE must be netns or init" || return 1 ;;
	esac
	wccl_gid_index rxe0 >/dev/null && wccl_gid_index rxe1 >/dev/null
}

wccl_net_down() {
	local i
	wccl_in_vm || return 1
	for i in 0 1; do
		rdma link delete "rxe$i" 2>/dev/null
	done
	if [ "$(wccl_net_mode)" = netns ]; then
		ip netns delete wccl0 2>/dev/null
		ip netns delete wccl1 2>/dev/null
	else
		ip link delete veth0 2>/dev/null
		ip rule del pref 100 2>/dev/null
		ip rule del pref 101 2>/dev/null
		ip rule add pref 0 lookup local 2>/dev/null && ip rule del pref 1000 2>/dev/null
	fi
	rm -f "$WCCL_NET_STATE"
	return 0
}

# wccl_loopback_up [MTU]: rxe "rxelo" on dummy device wccllo (10.77.1.1) in
# the initial namespace. rxe loops such traffic back internally, so netem on
# the device has no effect: use the veth pair for WAN profiles.
wccl_loopback_up() {
	local mtu=${1:-9000}
	wccl_in_vm || return 1
	ip link add wccllo type dummy
	ip link set wccllo mtu "$mtu"
	ip addr add "$WCCL_LO_ADDR/24" dev wccllo
	ip link set wccllo up
	rdma link add rxelo type rxe netdev wccllo
	wccl_gid_index rxelo >/dev/null
}

wccl_loopback_down() {
	rdma link delete rxelo 2>/dev/null
	ip link delete wccllo 2>/dev/null
	return 0
}

wccl_netns_main() {
	set -euo pipefail
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	case "$cmd" in
	up) wccl_net_up "$@" ;;
	down) wccl_net_down ;;
	loopback) wccl_loopback_up "$@" ;;
	loopback-down) wccl_loopback_down ;;
	gid) wccl_gid_index "$@" ;;
	mode) wccl_net_mode ;;
	modules) wccl_modules "$@" ;;
	*)
		echo "usage: netns.sh up [MTU] | down | loopback [MTU] | loopback-down | gid DEV [PORT] | mode | modules" >&2
		return 2
		;;
	esac
}

# Run as a command unless sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	wccl_netns_main "$@"
fi
