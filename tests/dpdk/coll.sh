#!/usr/bin/env bash
# The collectives suite (tests/collectives/test_coll) over the dpdk
# provider: two ranks on one net_memif link (role=auto: the first rank to
# start serves). Usage: coll.sh TEST_COLL_BINARY
set -euo pipefail
dir=$(mktemp -d /tmp/wccl-dpdk-coll.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export WCCL_TRANSPORT=dpdk
export WCCL_DPDK_EAL="--no-huge -m 128 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error --vdev=net_memif0,role=auto,socket=$dir/memif-@LAUNCH@.sock"
exec "$1" dpdk 2
