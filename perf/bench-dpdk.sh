#!/usr/bin/env bash
# dpdk provider vs uring on this host, in one run: wccl-perf bw (write) with
# both sides here (--local), dpdk over a fresh net_memif link per run.
# Configurations, interleaved so that host load hits them alike:
#   uring          TCP over io_uring on loopback
#   dpdk-copy      memif bsize=4096, payload copied into mbufs
#   dpdk-zcopy     memif bsize=4096, payload attached (external mbufs)
#   dpdk-default   memif default bsize (2048): zero copy stays off
#   dpdk-nocsum    as dpdk-zcopy with WCCL_DPDK_UDP_CSUM=0 (software UDP
#                  checksums cost a pass over the data at each end)
#   dpdk-copy-nocsum  as dpdk-copy with WCCL_DPDK_UDP_CSUM=0
# CONFIGS="..." picks some of them.
# usage: perf/bench-dpdk.sh [BUILD_DIR] [REPS] [SIZES...]
# Prints one line per run and the median per configuration and size.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} reps=${2:-3}
shift 2 2>/dev/null
sizes=${*:-64K 1M}
perf=$build/perf/wccl-perf
[ -x "$perf" ] || { echo "no $perf (scripts/build.sh first)"; exit 1; }
dir=$(mktemp -d /tmp/wccl-bench-dpdk.XXXXXX)
trap 'rm -rf "$dir"' EXIT
eal="--no-huge -m 256 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error"
run() { # config size -> MB/s average
	local cfg=$1 size=$2 sock=$dir/m$RANDOM.sock out
	case $cfg in
	uring) out=$("$perf" bw --local --provider uring -s "$size" -D 2 2>/dev/null) ;;
	dpdk-copy) out=$(WCCL_DPDK_ZCOPY_MIN=0 WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock,bsize=4096" \
		"$perf" bw --local --provider dpdk -s "$size" -D 2 2>/dev/null) ;;
	dpdk-zcopy) out=$(WCCL_DPDK_ZCOPY_MIN=1024 WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock,bsize=4096" \
		"$perf" bw --local --provider dpdk -s "$size" -D 2 2>/dev/null) ;;
	dpdk-nocsum) out=$(WCCL_DPDK_UDP_CSUM=0 WCCL_DPDK_ZCOPY_MIN=1024 WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock,bsize=4096" \
		"$perf" bw --local --provider dpdk -s "$size" -D 2 2>/dev/null) ;;
	dpdk-copy-nocsum) out=$(WCCL_DPDK_UDP_CSUM=0 WCCL_DPDK_ZCOPY_MIN=0 WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock,bsize=4096" \
		"$perf" bw --local --provider dpdk -s "$size" -D 2 2>/dev/null) ;;
	dpdk-default) out=$(WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock" \
		"$perf" bw --local --provider dpdk -s "$size" -D 2 2>/dev/null) ;;
	esac
	echo "$out" | awk '$1 ~ /^[0-9]+$/ && NF >= 5 { v = $4 } END { print v ? v : "fail" }'
}
configs=${CONFIGS:-"uring dpdk-copy dpdk-zcopy dpdk-nocsum dpdk-default"}
declare -A res
for rep in $(seq "$reps"); do
	for size in $sizes; do
		for cfg in $configs; do
			v=$(run "$cfg" "$size")
			echo "rep $rep  $size  $cfg  $v MB/s"
			res[$cfg,$size]+="$v "
		done
	done
done
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "n/a" }'; }
echo
printf '%-8s %-13s %12s %14s\n' size config "median MB/s" "vs uring"
for size in $sizes; do
	u=$(echo "${res[uring,$size]:-}" | median)
	for cfg in $configs; do
		m=$(echo "${res[$cfg,$size]}" | median)
		r=$(awk -v a="$m" -v b="$u" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2fx", a / b; else print "n/a" }')
		printf '%-8s %-13s %12s %14s\n' "$size" "$cfg" "$m" "$r"
	done
done
