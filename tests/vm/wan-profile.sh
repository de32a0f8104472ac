#!/usr/bin/env bash
# Applies a WAN profile to the guest's veth pair (set up by netns.sh up).
#
# usage: wan-profile.sh NAME | show | list
#
#   profile           RTT     jitter   loss     bottleneck
#   none              -       -        -        -
#   metro             2 ms    -        -        350 Mbit/s
#   east-west         40 ms   ±2 ms    0.01 %   350 Mbit/s
#   lossy             40 ms   -        0.1 %    350 Mbit/s
#   intercontinental  150 ms  -        0.5 %    350 Mbit/s
#   delay20           20 ms   -        -        350 Mbit/s
#
# Each veth end gets half the RTT as one-way delay (and half the jitter, so
# the round trip sees ±the full amount); loss is per packet and direction.
# WCCL_WAN_RATE overrides the bottleneck (tc units, e.g. 1gbit); "none"
# leaves it out (netem alone: pure delay, jitter and loss, no rate limit).
# WCCL_WAN_QUEUE_MS overrides the bottleneck's buffer (default 100 ms of
# the rate; a shallow one, e.g. 40, shows what bursts do to rxe).
# WCCL_WAN_BURST overrides the bottleneck's token bucket (default 64kb).
# WCCL_WAN_GSO=1 lets TCP's GSO super-packets through the emulation whole
# (see below; default 0: one MTU packet each).
#
# Shape on each end: netem (delay, jitter, loss) as root, tbf (rate, burst,
# 100 ms of buffer) as its child. Why not netem alone: netem's rate/limit
# counts packets still in the delay line and hides the queueing delay. With
# jitter, netem's "rate 10gbit" keeps its queue FIFO (plain jitter reorders).
#
# MTU packets, not super-packets: TCP always builds GSO packets (Linux >= 4.19
# sets NETIF_F_GSO on every TCP socket whatever ethtool says; "gso off", set
# by netns.sh, only moves the split to after the qdisc), so netem and tbf see
# up to 45 segments (64 KiB) as one packet and netem's loss drops them together. Measured
# in the VM (cubic, lossy, 100 Mbit/s): 17 drops in 66,598 segments (0.026 %,
# not 0.1 %) and 77 Mbit/s for one flow, far above the Mathis bound (~11);
# with gso_max_segs 1, 12 in 11,652 (0.10 %) and 13-14 Mbit/s. So each
# profile caps the veth ends at one segment per packet (TCP honours the
# device's gso_max_segs); "none" restores the default. WCCL_WAN_GSO=1 keeps
# super-packets (the behaviour of runs before session 4, 2026-11-28).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=netns.sh
. "$here/netns.sh"
# shellcheck source=wan-profiles.sh
. "$here/wan-profiles.sh"

# apply_dev I RTT JITTER LOSS RATE
apply_dev() {
	local i=$1 rtt=$2 jit=$3 loss=$4 rate=$5 dev=veth$1 netem=()
	netem=(delay "$(awk -v r="$rtt" 'BEGIN { printf "%gms", r / 2 }')")
	if [ "$jit" != 0 ]; then
		netem+=("$(awk -v j="$jit" 'BEGIN { printf "%gms", j / 2 }')" rate 10gbit)
	fi
	[ "$loss" = 0 ] || netem+=(loss random "$loss%")
	# The delay line must hold a full bandwidth-delay product of small
	# packets, or netem drops on its own.
	# Start from scratch: "replace" would keep options of the previous
	# profile that this one doesn't mention (such as netem's rate).
	clear_dev "$i"
	[ "${WCCL_WAN_GSO:-0}" = 1 ] || set_gso "$i" 1
	# GRO merges what netem has already passed: it only saves the
	# receiver's CPU (netns.sh turns it off for rxe).
	[ "${WCCL_WAN_GRO:-0}" = 0 ] || wccl_ns "$i" ethtool -K "$dev" gro on >/dev/null
	wccl_ns "$i" tc qdisc add dev "$dev" root handle 1: netem limit 200000 "${netem[@]}"
	[ "$rate" = none ] && return 0
	wccl_ns "$i" tc qdisc add dev "$dev" parent 1:1 handle 10: \
		tbf rate "$rate" burst "${WCCL_WAN_BURST:-64kb}" latency "${WCCL_WAN_QUEUE_MS:-100}ms"
}

clear_dev() {
	wccl_ns "$1" tc qdisc del dev "veth$1" root 2>/dev/null || true
}

# set_gso I SEGS: the most segments one packet on veth<I> may carry (65535 is
# the kernel's default). Sockets read it when they route, so it applies to
# connections made after the profile.
set_gso() {
	wccl_ns "$1" ip link set dev "veth$1" gso_max_segs "$2"
}

show() {
	local i
	for i in 0 1; do
		echo "veth$i:"
		wccl_ns "$i" tc qdisc show dev "veth$i" | sed 's/^/  /'
		wccl_ns "$i" ip -d link show dev "veth$i" | grep -o 'gso_max_segs [0-9]*' | sed 's/^/  /'
	done
}

main() {
	local name=${1:-} params rate=${WCCL_WAN_RATE:-350mbit} i
	[ "$(wccl_net_mode)" != none ] || { echo "wan-profile.sh: run netns.sh up first" >&2; exit 1; }
	case "$name" in
	show) show; return ;;
	list) echo "none metro east-west lossy intercontinental delay20"; return ;;
	none)
		for i in 0 1; do clear_dev "$i"; set_gso "$i" 65535; done
		;;
	*)
		params=$(wccl_wan_profile "$name") || { echo "wan-profile.sh: unknown profile '$name'" >&2; exit 2; }
		for i in 0 1; do
			# shellcheck disable=SC2086
			apply_dev "$i" $params "$rate"
		done
		;;
	esac
	echo "wan-profile: $name applied (${params:-no shaping}${params:+ = RTT ms, jitter ms, loss %; rate $rate})"
}

main "$@"
