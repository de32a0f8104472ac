#!/usr/bin/env bash
# Guest side of perf/stream/bench-wan.sh (run through tests/vm/run.sh):
# on the veth pair under each WAN profile, one after the other in the same
# boot, wccl-xfer, iperf3 (cubic and bbr, 1 and N streams) and UDT, each
# with a small ping probe running, the receiver's link sampled and the
# bottleneck's queue sampled (qdisc_mon.py: its delay, apart from the
# probe's, which under load also carries the emulator's CPU time). Prints
# "RESULT {json}" and "SERIES {json}" lines for perf/stream/report.py,
# and per wccl-xfer run a "CPU" line: the sender's CPU seconds and the
# receiver's per thread.
#
#   guest-bench.sh BUILD_DIR PROFILE...
#
# Environment (all optional):
#   WCCL_WAN_RATE      bottleneck, tc units (default 200mbit)
#   WCCL_WAN_MTU       veth MTU (default 9000, as the rest of the VM bed)
#   WCCL_BENCH_SECS    length of each run, s (default 10); wccl-xfer sends
#                      rate x SECS bytes
#   WCCL_BENCH_N       streams of the "N" iperf3 runs (default 4)
#   WCCL_BENCH_TOOLS   default "xfer iperf3-cubic-1 iperf3-cubic-N
#                      iperf3-bbr-1 iperf3-bbr-N udt"; also xfer-io0 (one
#                      thread), xfer-nokp (no kernel pacing), xfer-c256
#                      (256 KiB chunks), xfer-c1m (1 MiB), xfer-q3
#                      (3 ms delay target), xfer-trace (the sender's
#                      model every 250 ms, printed as TRACE lines), xfer-base
#                      (WCCL_BENCH_BASE=another wccl-xfer binary, sending to
#                      its own receiver: both ends are the base),
#                      xfer-env1..9 (environment WCCL_BENCH_ENV1..9, e.g.
#                      "WCCL_STREAM_QDELAY_US=3000 WCCL_DEBUG=TRACE"),
#                      xfer-cap (--rate WCCL_BENCH_CAP x the bottleneck,
#                      default 0.75: the probe's noise floor under the same
#                      CPU load, no link queue; 0.956: the TCP payload's
#                      share of the wire at MTU 1500, an exact estimate)
#   WCCL_BENCH_CEILING 1: first, wccl-xfer --local in the guest (the CPU
#                      ceiling, no emulation) for each wccl-xfer variant
#   WCCL_BENCH_LINK    emu: run on the host instead, over wan-emu between
#                      two namespaces (perf/stream/emu-link.sh; WCCL_EMU
#                      names the binary); bench-wan.sh -e sets both
set -euo pipefail
link=${WCCL_BENCH_LINK:-vm}
if [ "$link" = emu ]; then
	[ "$(id -u)" = 0 ] || { echo "guest-bench: the emulated link needs root" >&2; exit 77; }
	# shellcheck source=emu-link.sh
	. "$(dirname "$0")/emu-link.sh"
	# shellcheck disable=SC2154  # emu_dir: set by emu-link.sh
	trap 'emu_down; rm -rf "$emu_dir" "${work:-}"' EXIT
	rxdev=wtun1
else
	[ "${WCCL_VM:-}" = 1 ] || { echo "guest-bench: run me through tests/vm/run.sh" >&2; exit 77; }
	# shellcheck source=../../tests/vm/netns.sh
	. "$WCCL_VM_DIR/netns.sh"
	rxdev=veth1
fi
build=${1:?usage: guest-bench.sh BUILD_DIR PROFILE...}
shift
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(lossy east-west)

export WCCL_WAN_RATE=${WCCL_WAN_RATE:-200mbit}
mtu=${WCCL_WAN_MTU:-9000}
secs=${WCCL_BENCH_SECS:-10}
nstr=${WCCL_BENCH_N:-4}
tools=${WCCL_BENCH_TOOLS:-"xfer iperf3-cubic-1 iperf3-cubic-N iperf3-bbr-1 iperf3-bbr-N udt"}
xfer=$build/tools/wccl-xfer
here=$(cd "$(dirname "$0")" && pwd)
udt=$build/perf-stream/udt_bench
work=$(mktemp -d)

# shellcheck source=../../tests/vm/wan-profiles.sh
. "$here/../../tests/vm/wan-profiles.sh"
rate_mbps=$(wccl_rate_mbit "$WCCL_WAN_RATE")

wccl_modules tcp_bbr sch_fq
wccl_net_up "$mtu"
a1=$(wccl_addr 1)
bbr=0
grep -qw bbr /proc/sys/net/ipv4/tcp_available_congestion_control && bbr=1
echo "guest: link $link, $(nproc) vCPU, kernel $(uname -r), rate $WCCL_WAN_RATE, mtu $mtu, ${secs}s runs, bbr available: $bbr"

# The source: rate x secs bytes (whole MiB), random 16 MiB blocks repeated
# (nothing on the path compresses; /dev/urandom is slow under TCG).
mib=$(python3 -c "print(max(8, int($rate_mbps * 1e6 / 8 * $secs / 1048576)))")
python3 - "$work/src.bin" "$mib" <<'PY'
import os, sys
block = os.urandom(16 << 20)
left = int(sys.argv[2]) << 20
with open(sys.argv[1], "wb") as f:
    while left:
        n = min(left, len(block))
        f.write(block[:n])
        left -= n
PY
echo "guest: source file $mib MiB"

# Link sampler (receiver's veth rx bytes every 0.2 s) and CPU accounting.
cat >"$work/mon.py" <<'PY'
import sys, time
dev, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    while True:
        for line in open("/proc/net/dev"):
            if line.strip().startswith(dev + ":"):
                f.write("%.3f %s\n" % (time.time(), line.split(":")[1].split()[0]))
        f.flush()
        time.sleep(0.2)
PY
# busy idle user system irq+softirq iowait (jiffies, all vCPUs). iowait
# is idle time: a task waiting in io_uring_enter with requests in flight
# counts as iowait (kernel >= 6.x), so wccl-xfer's waits showed as ~35 %
# busy when this counted it (sessions 4-10 read 86-94 %; 50-60 % is real).
cpu_snap() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6, $2 + $3, $4, $7 + $8, $6 }' /proc/stat; }
# CPU seconds (user + system) of this shell's waited-for children, into
# $children_s (times must run in this shell, not a subshell)
children_cpu() {
	times >"$work/times"
	children_s=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$work/times")
}
# CPU seconds (user + system) of one process's threads, "tid:s" each
proc_cpu() { # PID
	local hz t
	hz=$(getconf CLK_TCK)
	for t in /proc/"$1"/task/*; do
		awk -v hz="$hz" -v tid="${t##*/}" '{ sub(/^.*\) /, ""); printf "%s:%.2f ", tid, ($12 + $13) / hz }' "$t/stat" 2>/dev/null
	done
}

mon_start() { # NAME
	# shellcheck disable=SC2046
	$(wccl_ns_prefix 0) ping -D -n -i 0.05 -s 56 "$a1" >"$work/$1.ping" 2>&1 &
	ping_pid=$!
	# shellcheck disable=SC2046
	$(wccl_ns_prefix 1) /usr/bin/python3 "$work/mon.py" "$rxdev" "$work/$1.rx" 2>"$work/$1.rx.err" &
	mon_pid=$!
	# The bottleneck's queue (tbf under netem on the sender's veth; or
	# wan-emu's own count).
	if [ "$link" = emu ]; then
		emu_queue_mon "$work/$1.queue" &
	else
		# shellcheck disable=SC2046
		$(wccl_ns_prefix 0) /usr/bin/python3 "$here/qdisc_mon.py" veth0 tbf \
			"$work/$1.queue" 20 2>"$work/$1.queue.err" &
	fi
	qmon_pid=$!
	cpu0=$(cpu_snap)
	t_start=$(date +%s.%N)
}

mon_stop() { # NAME -> RESULT probe fields in $work/NAME.probe.json, SERIES line
	local name=$1 cpu1
	t_end=$(date +%s.%N)
	cpu1=$(cpu_snap)
	kill "$ping_pid" "$mon_pid" "$qmon_pid" 2>/dev/null || true
	wait "$ping_pid" "$mon_pid" "$qmon_pid" 2>/dev/null || true
	python3 - "$work/$name" "$t_start" "$t_end" "$cpu0" "$cpu1" "$name" "$prof" "$rate_mbps" <<'PY'
import json, re, sys
base, t0, t1, c0, c1, name, prof, mbps = sys.argv[1:]
t0, t1, mbps = float(t0), float(t1), float(mbps)
# Queueing delay at the bottleneck: its backlog drained at its rate.
queue = []
try:
    for line in open(base + ".queue"):
        t, b = line.split()[:2]
        if t0 <= float(t) <= t1:
            queue.append((float(t) - t0, int(b) * 8 / (mbps * 1e3)))
except (OSError, ValueError):
    pass
ping = [(float(a), float(b)) for a, b in
        re.findall(r"\[([0-9.]+)\].*time=([0-9.]+)", open(base + ".ping").read())]
ping = [(t - t0, r) for t, r in ping if t0 <= t <= t1]
rx = []
try:
    for line in open(base + ".rx"):
        t, b = line.split()
        rx.append((float(t) - t0, int(b)))
except (OSError, ValueError):
    pass
# The transfer: from the last link sample before the receiver's bytes
# grew to the first that holds all but 64 KiB of them. The tools take
# 1-3 s to start under TCG; the probe and the queue before and after are
# an idle link's, and counted in they diluted the p99s.
x0, x1 = 0.0, t1 - t0
if len(rx) > 1:
    grew = [i for i in range(1, len(rx)) if rx[i][1] - rx[0][1] > 65536]
    if grew:
        x0 = rx[grew[0] - 1][0]
        x1 = next(t for t, b in rx if b >= rx[-1][1] - 65536)
ping_x = [(t, r) for t, r in ping if x0 <= t <= x1] or ping
v = sorted(r for _, r in ping_x)
q = lambda a, p: a[min(len(a) - 1, int(p * (len(a) - 1)))] if a else float("nan")
ipdv = sorted(abs(ping_x[i][1] - ping_x[i - 1][1]) for i in range(1, len(ping_x)))
c0, c1 = [list(map(float, c.split())) for c in (c0, c1)]
b0, i0, b1, i1 = c0[0], c0[1], c1[0], c1[1]
tot = max(1.0, (b1 - b0) + (i1 - i0))
busy = (b1 - b0) / tot
split = {k: (c1[j] - c0[j]) / tot for j, k in ((2, "guest_cpu_user"), (3, "guest_cpu_sys"),
                                            (4, "guest_cpu_irq"), (5, "guest_cpu_iowait"))}
probe = {"probe_n": len(v), "probe_p50_ms": q(v, .5), "probe_p99_ms": q(v, .99),
         "probe_p999_ms": q(v, .999), "probe_max_ms": v[-1] if v else float("nan"),
         "ipdv_p99_ms": q(ipdv, .99), "guest_cpu_busy": busy, "wall_s": t1 - t0,
         "xfer_start_s": x0, "xfer_s": x1 - x0}
qv = sorted(d for t, d in queue if x0 <= t <= x1)
# Past startup (its overshoot is the whole p99 of a short run): from
# 1.5 s into the transfer; and the share of that time above the issue's
# 2 ms.
qs = sorted(d for t, d in queue if x0 + 1.5 <= t <= x1)
probe.update({"queue_n": len(qv), "queue_p50_ms": q(qv, .5),
              "queue_p99_ms": q(qv, .99), "queue_max_ms": qv[-1] if qv else float("nan"),
              "queue_steady_p99_ms": q(qs, .99),
              "queue_over2ms_pct": 100.0 * sum(d > 2 for d in qs) / len(qs) if qs else float("nan")})
probe.update(split)
json.dump(probe, open(base + ".probe.json", "w"))
print("SERIES " + json.dumps({"profile": prof, "tool": name, "t0": t0, "ping": ping, "rx": rx,
                              "queue": queue}))
PY
}

result() { # TOOL GOODPUT_MBPS EXTRA_JSON
	python3 - "$work/$1.probe.json" "$prof" "$1" "$2" "$3" "$rate_mbps" "$base_rtt" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
r = {"profile": sys.argv[2], "tool": sys.argv[3], "goodput_mbps": float(sys.argv[4]),
     "bottleneck_mbps": float(sys.argv[6]), "base_rtt_ms": float(sys.argv[7])}
r.update(p)
r.update(json.loads(sys.argv[5]))
print("RESULT " + json.dumps(r))
PY
}

run_xfer() { # NAME BINARY ENV...
	local name=$1 bin=$2 g extra
	shift 2
	# xfer-base sends to the base binary's own receiver: a change on
	# the receiving side is then in one arm only
	local dst=$work/dst port=18600 rpid=$recv_pid
	if [ "$name" = xfer-base ]; then
		dst=$work/dst-base port=18601 rpid=$recv_base_pid
	fi
	rm -f "$dst/src.bin" "$dst/src.bin.wccl-part"
	mon_start "$name"
	local args=()
	local cap=${WCCL_BENCH_CAP:-0.75}
	[ "$name" = xfer-cap ] &&
		args=(--rate "$(awk "BEGIN { print $rate_mbps * $cap }")M")
	local rcpu0 ch0 ch1
	rcpu0=$(proc_cpu "$rpid")
	children_cpu
	ch0=$children_s
	if ! wccl_ns 0 timeout $((secs * 6 + 60)) env "$@" "$bin" send "$work/src.bin" "$a1:$port" \
		--json --timeout 30 "${args[@]}" >"$work/$name.json" 2>"$work/$name.err"; then
		echo "FAIL $name: $(tail -n 3 "$work/$name.err")"
		fails=$((fails + 1))
	fi
	children_cpu
	ch1=$children_s
	echo "CPU $name: sender $(awk "BEGIN { printf \"%.2f\", $ch1 - $ch0 }") s; receiver threads (tid:s) before $rcpu0, after $(proc_cpu "$rpid")"
	mon_stop "$name"
	[ -s "$work/$name.rx" ] || echo "note $name: no link samples: $(head -c 300 "$work/$name.rx.err" 2>/dev/null)"
	cmp -s "$work/src.bin" "$dst/src.bin" || { echo "FAIL $name: file differs"; fails=$((fails + 1)); }
	g=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['goodput_mbps'])" "$work/$name.json" 2>/dev/null || echo 0)
	extra=$(python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({k: d.get(k) for k in ('streams', 'rtt_min_us', 'rtt_p50_us', 'rtt_p99_us', 'jitter_us',
  'retransmits', 'btlbw_mbps', 'pacing_mbps', 'seconds', 'crc_hw', 'chunk_bytes', 'depth',
  'probe_min_us', 'probe_p50_us', 'probe_p99_us', 'icmp_samples', 'icmp_min_us', 'icmp_p50_us',
  'icmp_p99_us')}))" "$work/$name.json" 2>/dev/null || echo '{}')
	result "$name" "$g" "$extra"
	grep -o 'stream trace .*' "$work/$name.err" | sed "s/^/TRACE $name /" || true
}

run_iperf() { # NAME CC STREAMS
	local name=$1 cc=$2 n=$3 g
	mon_start "$name"
	wccl_ns 0 timeout $((secs + 30)) iperf3 -c "$a1" -p 5201 -t "$secs" -P "$n" -C "$cc" -J \
		>"$work/$name.json" 2>&1 || true
	mon_stop "$name"
	g=$(python3 -c "
import json, sys
e = json.load(open(sys.argv[1]))['end']
print(e['sum_received']['bits_per_second'] / 1e6)" "$work/$name.json" 2>/dev/null || echo 0)
	result "$name" "$g" "{\"streams\": $n, \"cc\": \"$cc\"}"
}

run_udt() {
	local name=udt g
	[ -x "$udt" ] || { echo "SKIP udt: $udt not built (libudt-dev)"; return; }
	# shellcheck disable=SC2046
	$(wccl_ns_prefix 1) timeout $((secs * 3 + 60)) "$udt" server 9000 "$mtu" >"$work/udt.srv" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do grep -q listening "$work/udt.srv" && break; sleep 0.1; done
	mon_start "$name"
	wccl_ns 0 timeout $((secs + 30)) "$udt" client "$a1" 9000 "$secs" "$mtu" >"$work/udt.cli" 2>&1 || true
	wait "$spid" || true
	mon_stop "$name"
	g=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['goodput_mbps'])" "$work/udt.srv" 2>/dev/null || echo 0)
	result "$name" "$g" '{"streams": 1}'
}

fails=0
mkdir -p "$work/dst"
# shellcheck disable=SC2046
$(wccl_ns_prefix 1) iperf3 -s -p 5201 -D
# shellcheck disable=SC2046
$(wccl_ns_prefix 1) "$xfer" recv "$work/dst" --listen "$a1:18600" --addr-file "$work/addr" \
	>"$work/recv.out" 2>"$work/recv.err" &
recv_pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
[ -s "$work/addr" ] || { cat "$work/recv.err"; exit 1; }
recv_base_pid=
if [[ " $tools " == *" xfer-base "* ]]; then
	mkdir -p "$work/dst-base"
	base_bin=${WCCL_BENCH_BASE:?xfer-base needs WCCL_BENCH_BASE}
	# shellcheck disable=SC2046
	$(wccl_ns_prefix 1) "$base_bin" recv "$work/dst-base" --listen "$a1:18601" \
		--addr-file "$work/addr-base" >"$work/recv-base.out" \
		2>"$work/recv-base.err" &
	recv_base_pid=$!
	for _ in $(seq 100); do
		[ -s "$work/addr-base" ] && break
		sleep 0.1
	done
	[ -s "$work/addr-base" ] || { cat "$work/recv-base.err"; exit 1; }
fi

xfer_variant() { # TOOL -> "BINARY ENV..."
	case $1 in
	xfer | xfer-cap) echo "$xfer WCCL_DEBUG=WARN" ;;
	xfer-io0) echo "$xfer WCCL_STREAM_IO_THREAD=0" ;;
	xfer-nokp) echo "$xfer WCCL_STREAM_KERNEL_PACING=0" ;;
	xfer-c256) echo "$xfer WCCL_STREAM_CHUNK_BYTES=262144" ;;
	xfer-c1m) echo "$xfer WCCL_STREAM_CHUNK_BYTES=1048576" ;;
	xfer-q3) echo "$xfer WCCL_STREAM_QDELAY_US=3000" ;;
	xfer-trace) echo "$xfer WCCL_DEBUG=TRACE WCCL_DEBUG_SUBSYS=TRANSPORT" ;;
	xfer-base) echo "${WCCL_BENCH_BASE:?xfer-base needs WCCL_BENCH_BASE} WCCL_DEBUG=WARN" ;;
	xfer-env[1-9])
		local v=WCCL_BENCH_ENV${1#xfer-env}
		echo "$xfer WCCL_DEBUG=WARN ${!v:?$1 needs $v}"
		;;
	*) return 1 ;;
	esac
}

if [ "${WCCL_BENCH_CEILING:-0}" = 1 ]; then
	for t in $tools; do
		v=$(xfer_variant "$t") || continue
		# shellcheck disable=SC2086
		set -- $v
		bin=$1
		shift
		for r in 1 2; do
			rm -rf "$work/loc" && mkdir -p "$work/loc"
			g=$(wccl_ns 0 env "$@" "$bin" --local "$work/src.bin" "$work/loc" --json |
				python3 -c "import json,sys; d=json.load(sys.stdin); print('%.1f crc_hw=%s' % (d['goodput_mbps'], d.get('crc_hw')))")
			echo "CEILING $t run $r: $g Mbit/s (wccl-xfer --local in the guest)"
		done
	done
	rm -rf "$work/loc"
fi

for prof in "${profiles[@]}"; do
	if [ "$link" = emu ]; then
		emu_profile "$prof"
	else
		"$WCCL_VM_DIR/wan-profile.sh" "$prof"
	fi
	# Idle path: the probe's own RTT.
	wccl_ns 0 ping -n -i 0.05 -c 40 -s 56 "$a1" >"$work/idle.ping" 2>&1 || true
	base_rtt=$(python3 -c "
import re, sys
v = sorted(float(x) for x in re.findall(r'time=([0-9.]+)', open(sys.argv[1]).read()))
print(v[len(v) // 2] if v else 0)" "$work/idle.ping")
	echo "== profile $prof: idle probe RTT p50 $base_rtt ms"
	for t in $tools; do
		case $t in
		xfer*)
			v=$(xfer_variant "$t")
			# shellcheck disable=SC2086
			run_xfer "$t" $v
			;;
		iperf3-*-*)
			cc=${t#iperf3-}
			n=${cc#*-}
			cc=${cc%-*}
			[ "$n" = N ] && n=$nstr
			if [ "$cc" = bbr ] && [ "$bbr" = 0 ]; then
				echo "SKIP $t: tcp_bbr not available in the guest"
				continue
			fi
			run_iperf "iperf3-$cc-$n" "$cc" "$n"
			;;
		udt) run_udt ;;
		*) echo "unknown tool $t" >&2 ;;
		esac
	done
done
echo "guest-bench: $fails failure(s)"
exit $((fails > 0))
