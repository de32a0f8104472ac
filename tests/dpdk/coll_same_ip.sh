#!/usr/bin/env bash
# Two ranks told to use one IP (WCCL_DPDK_IP) must fail at init, at once and
# naming both ranks and the address, instead of timing out in the
# connection set-up (each would connect to itself).
# Usage: coll_same_ip.sh WCCL_RUN WCCL_PERF
set -uo pipefail
dir=$(mktemp -d /tmp/wccl-dpdk-same-ip.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export WCCL_TRANSPORT=dpdk WCCL_DPDK_IP=10.9.9.9 WCCL_TIMEOUT_MS=20000
export WCCL_DPDK_EAL="--no-huge -m 128 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error --vdev=net_memif0,role=auto,socket=$dir/memif.sock"
start=$(date +%s)
out=$(timeout 60 "$1" -n 2 -- "$2" allreduce -b 8 -e 8 -n 10 2>&1)
rc=$?
took=$(($(date +%s) - start))
if grep -q "EAL init failed\|cannot initialise" <<<"$out"; then
	echo "SKIP: DPDK cannot initialise here"; exit 77
fi
if [ $rc -eq 0 ]; then
	echo "FAIL: two ranks on one IP ran"; exit 1
fi
if ! grep -q "rank 0 and rank 1 both listen at dpdk:10.9.9.9" <<<"$out"; then
	printf 'FAIL: no error naming both ranks and the address:\n%s\n' "$out"
	exit 1
fi
if [ "$took" -ge 15 ]; then
	echo "FAIL: took ${took} s (the set-up timeout, not the address check)"
	exit 1
fi
echo "ok: refused in ${took} s"
