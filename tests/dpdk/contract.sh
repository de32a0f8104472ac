#!/usr/bin/env bash
# The transport contract suite (tests/integration) over the dpdk provider:
# both forked sides share one net_memif vdev; the first to start takes the
# server role (role=auto). Usage: contract.sh TEST_TRANSPORT_BINARY
set -euo pipefail
dir=$(mktemp -d /tmp/wccl-dpdk-contract.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export WCCL_DPDK_EAL="--no-huge -m 128 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error --vdev=net_memif0,role=auto,socket=$dir/memif.sock"
exec "$1" dpdk
