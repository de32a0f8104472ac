#!/usr/bin/env bash
# Guest: wccl-xfer against iperf3 (cubic, 1 stream and N streams) on the
# veth pair under WAN profiles, with a small ping probe running during each
# transfer. Prints goodput (application bytes), the ratios and the probe's
# RTT p50/p99. Throughput under TCG swings with host load, so nothing is
# asserted beyond "the file arrived identical".
#   tests/vm/run.sh --mem 2048 tests/stream/guest-wan.sh BUILD_DIR [PROFILE...]
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-wan: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-wan.sh BUILD_DIR [PROFILE...]}
shift
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(east-west lossy)
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
xfer=$build/tools/wccl-xfer
secs=${WCCL_WAN_SECS:-8}
mib=${WCCL_WAN_MIB:-128}
work=$(mktemp -d)
wccl_modules
wccl_net_up 9000
a1=$(wccl_addr 1)
head -c $((mib * 1048576)) /dev/urandom >"$work/src.bin"
echo "guest: $(nproc) vCPU, kernel $(uname -r), file $mib MiB"

# probe START|STOP NAME: 20 pings/s from peer 0, p50/p99 of the replies
probe_start() {
	# shellcheck disable=SC2046
	$(wccl_ns_prefix 0) ping -n -i 0.05 -s 56 "$a1" >"$work/$1.ping" 2>&1 &
	ppid=$!
}
probe_stop() {
	kill "$ppid" 2>/dev/null || true
	wait "$ppid" 2>/dev/null || true
	python3 - "$work/$1.ping" <<'PY'
import re, sys
v = sorted(float(m) for m in re.findall(r'time=([0-9.]+)', open(sys.argv[1]).read()))
if not v:
    print("probe n=0"); sys.exit()
p = lambda q: v[min(len(v) - 1, int(q * (len(v) - 1)))]
print("probe n=%d p50=%.1fms p99=%.1fms" % (len(v), p(0.5), p(0.99)))
PY
}

iperf() { # NAME STREAMS: goodput in Mbit/s (receiver side)
	local name=$1 n=$2
	probe_start "$name"
	wccl_ns 0 iperf3 -c "$a1" -p 5201 -t "$secs" -P "$n" -C cubic -J >"$work/$name.json" || true
	local probe
	probe=$(probe_stop "$name")
	python3 - "$work/$name.json" "$name" "$probe" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
e = d["end"]
r = e["sum_received"]["bits_per_second"] / 1e6
rt = e.get("sum_sent", {}).get("retransmits", 0)
print("%-22s %8.1f Mbit/s  tcp retx %-6s %s" % (sys.argv[2], r, rt, sys.argv[3]))
open(sys.argv[1] + ".mbps", "w").write("%.3f" % r)
PY
}

# shellcheck disable=SC2046
$(wccl_ns_prefix 1) iperf3 -s -p 5201 -D
# shellcheck disable=SC2046
$(wccl_ns_prefix 1) "$xfer" recv "$work/dst" --listen "$a1:18600" --addr-file "$work/addr" \
	>"$work/recv.out" 2>"$work/recv.err" &
mkdir -p "$work/dst"
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
[ -s "$work/addr" ] || { cat "$work/recv.err"; exit 1; }
fails=0
# CPU ceiling of this guest: the same file over loopback, no emulation.
wccl_ns 0 "$xfer" --local "$work/src.bin" "$work/dst" --json >"$work/local.json" || fails=1
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('guest loopback (CPU ceiling): %.1f Mbit/s' % d['goodput_mbps'])" "$work/local.json"
rm -f "$work/dst/src.bin"

xfer_run() { # NAME ENV...: one wccl-xfer transfer with a probe
	local name=$1 probe
	shift
	rm -f "$work/dst/src.bin"
	probe_start "$name"
	wccl_ns 0 env "$@" "$xfer" send "$work/src.bin" "$a1:18600" --json >"$work/$name.json" || fails=1
	probe=$(probe_stop "$name")
	cmp "$work/src.bin" "$work/dst/src.bin" || { echo "FAIL: file differs"; fails=1; }
	python3 - "$work/$name.json" "$probe" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("%-22s %8.1f Mbit/s  streams %d  rtt min/p50/p99/p999 %.1f/%.1f/%.1f/%.1f ms  jitter %.2f ms  retx %d  btlbw %.0f pacing %.0f cwnd %.1f MiB  %s"
      % (sys.argv[3], d["goodput_mbps"], d["streams"], d["rtt_min_us"] / 1e3, d["rtt_p50_us"] / 1e3,
         d["rtt_p99_us"] / 1e3, d["rtt_p999_us"] / 1e3, d["jitter_us"] / 1e3,
         d["retransmits"], d["btlbw_mbps"], d["pacing_mbps"], d["cwnd_bytes"] / 1048576, sys.argv[2]))
open(sys.argv[1] + ".mbps", "w").write("%.3f" % d["goodput_mbps"])
PY
}

for p in "${profiles[@]}"; do
	"$WCCL_VM_DIR/wan-profile.sh" "$p"
	echo "== profile $p"
	xfer_run "xfer-$p" WCCL_DEBUG=WARN
	xfer_run "xfer-target350-$p" WCCL_STREAM_TARGET_MBPS=350
	n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['streams'])" "$work/xfer-$p.json")
	iperf "iperf3-cubic-1-$p" 1
	iperf "iperf3-cubic-$n-$p" "$n"
	python3 - "$work" "$p" "$n" <<'PY'
import sys
w, p, n = sys.argv[1:]
x = float(open("%s/xfer-%s.json.mbps" % (w, p)).read())
one = float(open("%s/iperf3-cubic-1-%s.json.mbps" % (w, p)).read())
many = float(open("%s/iperf3-cubic-%s-%s.json.mbps" % (w, n, p)).read())
print("ratio wccl-xfer / iperf3 1 stream: %.2f   / iperf3 %s streams: %.2f" % (x / one, n, x / many))
PY
done
exit $fails
