#!/usr/bin/env bash
# Host side of the WAN test: boot the VM (tests/vm/run.sh) and run
# guest-wan.sh against BUILD_DIR. Exit 77 when the VM cannot run here.
#   vm-wan.sh BUILD_DIR [PROFILE...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(realpath -m -- "${1:?usage: vm-wan.sh BUILD_DIR [PROFILE...]}")
shift
skip() { echo "SKIP stream-vm: $*" >&2; exit 77; }
case "$build/" in
/tmp/* | /run/* | /dev/shm/*) skip "build dir $build is under /tmp, /run or /dev/shm, which the guest replaces" ;;
esac
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (tests/vm/setup.sh)"
command -v iperf3 >/dev/null || skip "iperf3 not installed"
cd "$here/../.."
exec "$here/../vm/run.sh" --mem 2048 --timeout "${WCCL_STREAM_VM_TIMEOUT:-560}" \
	"$here/guest-wan.sh" "$build" "$@"
