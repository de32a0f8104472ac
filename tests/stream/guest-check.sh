#!/usr/bin/env bash
# Guest (CI, suite stream-wan): wccl-xfer under every WAN profile
# (tests/vm/wan-profile.sh) at a bottleneck this TCG guest can drive
# (WCCL_WAN_RATE, default 40mbit, MTU 1500), with an ICMP ping running
# next to each transfer. Fails when:
#   - the received file differs from the source (cmp), or the transfer
#     fails;
#   - the sender's path probe (its own ping / pong connection, which
#     drives the delay target) does not measure the path: its p50 must be
#     within 10 ms + 25 % of the concurrent ICMP ping's p50. Seen before
#     the fix: 160 ms on a 40 ms path (pings queued behind one receive
#     credit), which held the pacing rate at 0.8 x the estimate;
#   - the probe's min is below the profile's RTT (it did not cross the
#     emulation);
#   - on a path of 20 ms or more, the probe samples less than 50 times a
#     second (it pings every 10 ms with up to 16 in flight; one ping per
#     round trip, as before session 6, gave 25 a second at 40 ms and a
#     delay signal 2-4 round trips late);
#   - on a path of 20 ms or more, the ICMP probe (stream_icmp.c) answers
#     less than 50 times a second, or its p50 is more than 2 ms + 5 % off
#     the concurrent ping's;
#   - on lossy with --rate 30M, goodput is not within 0.8-1.05 x the cap.
# Goodput and queueing are printed, not asserted (perf/stream/bench-wan.sh
# compares them with the peers).
#   tests/vm/run.sh tests/stream/guest-check.sh BUILD_DIR [PROFILE...]
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-check: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-check.sh BUILD_DIR [PROFILE...]}
shift
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(metro east-west lossy intercontinental)
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
export WCCL_WAN_RATE=${WCCL_WAN_RATE:-40mbit}
xfer=$build/tools/wccl-xfer
mib=${WCCL_CHECK_MIB:-16}
work=$(mktemp -d)
wccl_modules sch_fq
wccl_net_up 1500
a1=$(wccl_addr 1)
# Random data without /dev/urandom's cost under TCG: one random 4 MiB
# block, each copy with its own first bytes (no two chunks alike).
python3 - "$work/src.bin" "$mib" <<'PY'
import os, sys
block = bytearray(os.urandom(4 << 20))
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2]) // 4):
        block[:16] = os.urandom(16)
        f.write(block)
PY
echo "guest: $(nproc) vCPU, kernel $(uname -r), rate $WCCL_WAN_RATE, file $mib MiB"

mkdir -p "$work/dst"
# shellcheck disable=SC2046
$(wccl_ns_prefix 1) "$xfer" recv "$work/dst" --listen "$a1:18600" --addr-file "$work/addr" \
	>"$work/recv.out" 2>"$work/recv.err" &
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
[ -s "$work/addr" ] || { cat "$work/recv.err"; exit 1; }

rtt_of() { # PROFILE -> its RTT in ms (wan-profile.sh's table)
	case $1 in
	metro) echo 2 ;;
	east-west | lossy) echo 40 ;;
	intercontinental) echo 150 ;;
	delay20) echo 20 ;;
	*) echo 0 ;;
	esac
}

fails=0
for p in "${profiles[@]}"; do
	"$WCCL_VM_DIR/wan-profile.sh" "$p"
	rm -f "$work/dst/src.bin"
	# shellcheck disable=SC2046
	$(wccl_ns_prefix 0) ping -n -i 0.05 -s 56 "$a1" >"$work/$p.ping" 2>&1 &
	ping_pid=$!
	rc=0
	wccl_ns 0 timeout 300 env WCCL_DEBUG=WARN "$xfer" send "$work/src.bin" "$a1:18600" \
		--json --timeout 60 >"$work/$p.json" 2>"$work/$p.err" || rc=$?
	kill "$ping_pid" 2>/dev/null || true
	wait "$ping_pid" 2>/dev/null || true
	if [ "$rc" != 0 ]; then
		echo "FAIL $p: wccl-xfer exit $rc: $(tail -n 3 "$work/$p.err")"
		fails=$((fails + 1))
		continue
	fi
	if ! cmp -s "$work/src.bin" "$work/dst/src.bin"; then
		echo "FAIL $p: the received file differs from the source"
		fails=$((fails + 1))
	fi
	python3 - "$work/$p.json" "$work/$p.ping" "$p" "$(rtt_of "$p")" <<'PY' || fails=$((fails + 1))
import json, re, sys
d = json.load(open(sys.argv[1]))
prof, rtt = sys.argv[3], float(sys.argv[4])
icmp = sorted(float(x) for x in re.findall(r"time=([0-9.]+)", open(sys.argv[2]).read()))
icmp50 = icmp[len(icmp) // 2] if icmp else float("nan")
p50, pmin = d["probe_p50_us"] / 1e3, d["probe_min_us"] / 1e3
print("%-16s %6.1f Mbit/s  streams %d  chunk %d KiB  probe min/p50 %.1f/%.1f ms  "
      "icmp p50 %.1f ms (n=%d)  btlbw %.1f pacing %.1f Mbit/s"
      % (prof, d["goodput_mbps"], d["streams"], d["chunk_bytes"] // 1024, pmin, p50,
         icmp50, len(icmp), d["btlbw_mbps"], d["pacing_mbps"]))
bad = []
if not icmp:
    bad.append("no ICMP replies during the transfer")
elif not abs(p50 - icmp50) <= 10 + 0.25 * icmp50:
    bad.append("the sender's probe p50 %.1f ms is not the path's (ICMP p50 %.1f ms)" % (p50, icmp50))
rate = d.get("probe_samples", 0) / max(d["seconds"], 1e-3)
print("%-16s probe %d samples, %.0f a second" % (prof, d.get("probe_samples", 0), rate))
if rtt >= 20 and rate < 50:
    bad.append("the sender's probe sampled %.0f times a second (want >= 50)" % rate)
if pmin < rtt * 0.95:
    bad.append("the sender's probe min %.1f ms is below the profile's %g ms RTT" % (pmin, rtt))
# The ICMP probe (root in the guest: a raw socket) answers on a long path
# and reads what ping reads: its replies are stamped by the kernel.
if rtt >= 20:
    n = d.get("icmp_samples", 0)
    i50, imin = d.get("icmp_p50_us", 0) / 1e3, d.get("icmp_min_us", 0) / 1e3
    print("%-16s icmp probe %d samples, min/p50 %.1f/%.1f ms" % (prof, n, imin, i50))
    if n / max(d["seconds"], 1e-3) < 50:
        bad.append("the ICMP probe got %d replies in %.1f s (want >= 50 a second)" % (n, d["seconds"]))
    elif icmp and not abs(i50 - icmp50) <= 2 + 0.05 * icmp50:
        bad.append("the ICMP probe's p50 %.1f ms is not ping's %.1f ms" % (i50, icmp50))
    elif imin < rtt * 0.95:
        bad.append("the ICMP probe's min %.1f ms is below the profile's %g ms RTT" % (imin, rtt))
for b in bad:
    print("FAIL %s: %s" % (prof, b))
sys.exit(1 if bad else 0)
PY
done
# A rate cap on lossy: the transfer holds it and reaches it. The cap once
# sized the connections too: --rate 30M got one TCP connection, which at
# 0.1 % loss and 40 ms carried 11-13 Mbit/s.
if [[ " ${profiles[*]} " == *" lossy "* ]]; then
	"$WCCL_VM_DIR/wan-profile.sh" lossy
	rm -f "$work/dst/src.bin"
	rc=0
	wccl_ns 0 timeout 300 env WCCL_DEBUG=WARN "$xfer" send "$work/src.bin" "$a1:18600" \
		--json --timeout 60 --rate 30M >"$work/cap.json" 2>"$work/cap.err" || rc=$?
	if [ "$rc" != 0 ] || ! cmp -s "$work/src.bin" "$work/dst/src.bin"; then
		echo "FAIL lossy --rate 30M: exit $rc or the file differs: $(tail -n 3 "$work/cap.err")"
		fails=$((fails + 1))
	else
		python3 - "$work/cap.json" <<'PY' || fails=$((fails + 1))
import json, sys
d = json.load(open(sys.argv[1]))
g = d["goodput_mbps"]
print("lossy --rate 30M  %6.1f Mbit/s  streams %d  chunk %d KiB" % (g, d["streams"], d["chunk_bytes"] // 1024))
if not 24 <= g <= 31.5:
    print("FAIL lossy --rate 30M: goodput %.1f Mbit/s, want 24-31.5 (0.8-1.05 x the cap)" % g)
    sys.exit(1)
PY
	fi
fi
echo "guest-check: $fails failure(s)"
exit $((fails > 0))
