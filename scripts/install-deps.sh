#!/usr/bin/env bash
# Installs the Debian packages wccl needs to build and test. Idempotent:
# packages already present are not fetched again, and apt-get update runs
# only when something is missing.
set -euo pipefail

pkgs=(
	meson ninja-build pkg-config gcc clang
	liburing-dev libibverbs-dev librdmacm-dev rdma-core ibverbs-providers
	libdpdk-dev libcmocka-dev iproute2 iputils-ping python3
)
if [ "${1:-}" = "--with-peers" ]; then
	pkgs+=(iperf3 sockperf qperf)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages ${missing[*]}; run as root" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
