#!/usr/bin/env bash
# The emulated WAN link on the host (sourced by guest-bench.sh when
# WCCL_BENCH_LINK=emu): two network namespaces, wemu0 and wemu1, each with
# a TUN device, wtun0 and wtun1, and wan-emu between them applying the
# profile (the numbers of tests/vm/wan-profiles.sh, both directions, as
# wan-profile.sh does with netem and tbf in the VM). It defines the few
# functions of tests/vm/netns.sh that guest-bench.sh uses, plus
# emu_profile, emu_queue_mon and emu_down.
#
# Needs root, /dev/net/tun and WCCL_EMU (the wan-emu binary). Traffic stays
# inside the two namespaces it creates; one such link at a time on a host
# (the benchmark and the test wan-emu use the same names).

# shellcheck source=../../tests/vm/wan-profiles.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../tests/vm/wan-profiles.sh"

emu_dir=${emu_dir:-$(mktemp -d)}
emu_pid=

wccl_ns() {
	local i=$1
	shift
	ip netns exec "wemu$i" "$@"
}
wccl_ns_prefix() { echo "ip netns exec wemu$1"; }
wccl_addr() { echo "10.99.0.$(($1 + 1))"; }
wccl_modules() { :; }

wccl_net_up() { # MTU
	local i
	[ "$1" -le 2000 ] || { echo "emu-link: MTU $1: wan-emu carries packets of 2000 bytes at most" >&2; return 1; }
	emu_down
	for i in 0 1; do
		ip netns add "wemu$i"
		ip -n "wemu$i" link set lo up
		ip -n "wemu$i" tuntap add dev "wtun$i" mode tun
		ip -n "wemu$i" addr add "$(wccl_addr "$i")/24" dev "wtun$i"
		# The TUN's own queue (500 packets) would drop a burst of
		# 15 connections' windows before wan-emu sees it, uncounted;
		# the VM's netem holds 200000.
		ip -n "wemu$i" link set "wtun$i" mtu "$1" txqueuelen 20000 up
	done
}

# emu_start ARGS...: wan-emu between the two TUNs with ARGS; waits until it
# is attached. Its parent's death stops it (PR_SET_PDEATHSIG).
emu_start() {
	emu_stop
	rm -f "$emu_dir/emu.err"
	"${WCCL_EMU:?emu-link: WCCL_EMU names the wan-emu binary}" \
		--ns0 wemu0:wtun0 --ns1 wemu1:wtun1 "$@" \
		>/dev/null 2>"$emu_dir/emu.err" &
	emu_pid=$!
	local _
	for _ in $(seq 100); do
		grep -q 'wan-emu: ready' "$emu_dir/emu.err" 2>/dev/null && return 0
		kill -0 "$emu_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "emu-link: wan-emu did not start:" >&2
	cat "$emu_dir/emu.err" >&2
	return 1
}

# emu_profile NAME: (re)start wan-emu with the profile at WCCL_WAN_RATE
# (tc units: 100mbit), WCCL_WAN_QUEUE_MS (default 100) and WCCL_WAN_BURST
# (tc units: 64kb, the default, is 65536 bytes).
emu_profile() {
	local params rate_mbit burst
	params=$(wccl_wan_profile "$1") || { echo "emu-link: unknown profile '$1'" >&2; return 2; }
	rate_mbit=$(wccl_rate_mbit "${WCCL_WAN_RATE:-350mbit}") ||
		{ echo "emu-link: WCCL_WAN_RATE" >&2; return 2; }
	burst=$(python3 -c '
import re, sys
m = re.fullmatch(r"([0-9]+)(b|k|kb|m|mb)?", sys.argv[1].lower())
if not m: sys.exit("emu-link: bad WCCL_WAN_BURST " + sys.argv[1] + " (bytes, or tc units: 64kb)")
print(int(m.group(1)) * {None: 1, "b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20}[m.group(2)])' "${WCCL_WAN_BURST:-64kb}")
	# shellcheck disable=SC2086
	set -- $params
	emu_start --rtt-ms "$1" --jitter-ms "$2" --loss-pct "$3" \
		--rate-mbit "$rate_mbit" --queue-ms "${WCCL_WAN_QUEUE_MS:-100}" \
		--burst "$burst" --queue-log "$emu_dir/queue.log" || return 1
	echo "emu-link: $1 ms RTT, $2 ms jitter, $3 % loss, $rate_mbit Mbit/s ($(sed -n 's/^wan-emu: ready: //p' "$emu_dir/emu.err"))"
}

# emu_queue_mon OUT: the ns0 -> ns1 bottleneck's backlog into OUT, in
# qdisc_mon.py's format, until killed.
emu_queue_mon() {
	exec tail --pid="$emu_pid" -n 0 -F "$emu_dir/queue.log" >"$1" 2>/dev/null
}

# emu_stop: stop wan-emu; prints its counters and the TUNs' own drops.
emu_stop() {
	local i
	[ -n "$emu_pid" ] || return 0
	kill "$emu_pid" 2>/dev/null || true
	wait "$emu_pid" 2>/dev/null || true
	emu_pid=
	sed -n 's/^wan-emu: \(ns\|a TUN\)/emu-link: \1/p' "$emu_dir/emu.err" 2>/dev/null || true
	for i in 0 1; do
		echo "emu-link: wtun$i dropped $(emu_tun_drops "$i") before wan-emu read them"
	done
}

# emu_tun_drops I: packets wtun<I>'s qdisc and device dropped (its queue
# full: wan-emu fell behind), or "?".
emu_tun_drops() {
	{
		tc -n "wemu$1" -s -j qdisc show dev "wtun$1"
		ip -n "wemu$1" -s -j link show "wtun$1"
	} 2>/dev/null | python3 -c '
import json, sys
n = 0
for doc in sys.stdin.read().replace("][", "]\n[").splitlines():
    for x in json.loads(doc) if doc.strip() else []:
        n += x.get("drops", 0) + x.get("stats64", {}).get("tx", {}).get("dropped", 0)
print(n)' 2>/dev/null || echo '?'
}

emu_down() {
	local i
	emu_stop
	for i in 0 1; do
		ip netns pids "wemu$i" 2>/dev/null | xargs -r kill 2>/dev/null || true
		ip netns del "wemu$i" 2>/dev/null || true
	done
}

# Run, not sourced: the link for manual experiments, in the foreground.
#   perf/stream/emu-link.sh up PROFILE   (Ctrl-C takes it down)
#   perf/stream/emu-link.sh down         (after a kill -9)
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case "${1:-}" in
	up)
		WCCL_EMU=${WCCL_EMU:-$(dirname "$0")/../../build/perf/wan-emu}
		trap 'emu_down; rm -rf "$emu_dir"' EXIT
		trap 'exit 0' INT TERM
		wccl_net_up "${WCCL_WAN_MTU:-1500}"
		emu_profile "${2:?usage: emu-link.sh up PROFILE}"
		echo "emu-link: wemu0 $(wccl_addr 0) <-> wemu1 $(wccl_addr 1);" \
			"e.g. ip netns exec wemu0 ping $(wccl_addr 1); Ctrl-C ends"
		wait "$emu_pid"
		;;
	down) emu_down; rm -rf "$emu_dir" ;;
	*) echo "usage: emu-link.sh up PROFILE | down" >&2; exit 2 ;;
	esac
fi
