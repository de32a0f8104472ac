#!/usr/bin/env bash
# wan-emu (perf/stream/wan_emu.c) does what a profile says, on the host:
# the round trip is the RTT asked for, a loss rate drops that share of the
# packets each way, and the bottleneck holds a TCP flow to its rate with a
# queue no longer than the limit. It uses the namespaces wemu0/1 of
# perf/stream/emu-link.sh: not while bench-wan.sh -e runs.
#   wan_emu_check.sh WAN_EMU
set -euo pipefail
emu=$(realpath "${1:?usage: wan_emu_check.sh WAN_EMU}")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces, TUN)"; exit 77; }
[ -c /dev/net/tun ] || { echo "SKIP: no /dev/net/tun"; exit 77; }
command -v ping >/dev/null || { echo "SKIP: no ping(8)"; exit 77; }
WCCL_EMU=$emu
export WCCL_EMU
emu_dir=$(mktemp -d)
# shellcheck source=../../perf/stream/emu-link.sh
. "$(dirname "$0")/../../perf/stream/emu-link.sh"
trap 'emu_down; rm -rf "$emu_dir"' EXIT
failures=0
check() { # WHAT OK(0/1) DETAIL
	if [ "$2" = 1 ]; then echo "ok: $1 ($3)"; else echo "FAIL: $1 ($3)"; failures=$((failures + 1)); fi
}
within() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { print (x >= lo && x <= hi) ? 1 : 0 }'; }

wccl_net_up 1500
a1=$(wccl_addr 1)

# 1. Delay: 20 ms RTT, no rate limit.
WCCL_WAN_RATE=1gbit emu_profile delay20 >/dev/null
rtt=$(wccl_ns 0 ping -n -q -c 20 -i 0.02 "$a1" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p' || true)
check "ping RTT at delay20" "$(within "${rtt:-0}" 20 22.5)" "avg ${rtt:-none} ms, want 20-22.5"

# 2. Loss: intercontinental's 0.5 % is too rare to count in a test; 10 %
# each way through a profile-less run of the binary.
emu_start --rtt-ms 2 --loss-pct 10 --rate-mbit 0 --seed 7
lost=$(wccl_ns 0 ping -n -q -c 500 -i 0.004 -W 1 "$a1" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' || true)
# Echo and reply each cross at 10 %: 19 % of the pings; 500 of them put
# 3 sigma at +-5.3 points.
check "ping loss at 10 % each way" "$(within "${lost:-0}" 12 26)" "${lost:-none} % lost, want 12-26"
emu_stop >/dev/null

# 3. Rate and queue: one TCP flow into 40 Mbit/s, 2 ms RTT, 20 ms queue.
WCCL_WAN_RATE=40mbit WCCL_WAN_QUEUE_MS=20 emu_profile metro >/dev/null
wccl_ns 1 python3 - "$a1" "$emu_dir/rx.ready" >"$emu_dir/rx.out" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 18999)); s.listen(1)
open(sys.argv[2], "w").close()
c, _ = s.accept()
n, t0 = 0, None
while True:
    b = c.recv(1 << 16)
    if not b: break
    if t0 is None: t0 = time.time()
    n += len(b)
print(n, n * 8 / (time.time() - t0) / 1e6)
PY
rx_pid=$!
for _ in $(seq 100); do [ -e "$emu_dir/rx.ready" ] && break; sleep 0.1; done
wccl_ns 0 python3 -c "
import socket, sys
s = socket.create_connection((sys.argv[1], 18999), timeout=30)
s.sendall(bytes(12 << 20))
s.close()" "$a1"
wait "$rx_pid" || true
got=0 mbps=0
read -r got mbps <"$emu_dir/rx.out" || true
check "TCP bytes through" "$([ "$got" = $((12 << 20)) ] && echo 1 || echo 0)" "$got of $((12 << 20))"
check "TCP goodput under 40 Mbit/s" "$(within "$mbps" 25 40)" "$mbps Mbit/s, want 25-40"
# 20 ms at 40 Mbit/s is 100 kB, plus the 64 KiB bucket (as tbf's limit);
# the log samples every 20 ms.
qmax=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$emu_dir/queue.log")
check "queue built and bounded" "$(within "$qmax" 1 165536)" "max backlog $qmax B, limit 165536"

emu_stop
echo "wan_emu_check: $failures failure(s)"
exit $((failures > 0))
