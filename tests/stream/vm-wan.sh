#!/usr/bin/env bash
# Host side of the streaming WAN tests: boot the VM (tests/vm/run.sh) and
# run a guest script of this folder against BUILD_DIR:
#   guest-check.sh  (CI, suite stream-wan) integrity and the path probe
#                   under every profile
#   guest-wan.sh    (suite stream-vm) wccl-xfer next to iperf3
# Exit 77 when the VM cannot run here.
#   vm-wan.sh BUILD_DIR GUEST.sh [PROFILE...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage="usage: vm-wan.sh BUILD_DIR GUEST.sh [PROFILE...]"
build=$(realpath -m -- "${1:?$usage}")
guest=${2:?$usage}
shift 2
skip() { echo "SKIP stream-vm: $*" >&2; exit 77; }
[ -f "$here/$guest" ] || { echo "vm-wan.sh: no guest script $here/$guest" >&2; exit 2; }
case "$build/" in
/tmp/* | /run/* | /dev/shm/*) skip "build dir $build is under /tmp, /run or /dev/shm, which the guest replaces" ;;
esac
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (tests/vm/setup.sh)"
if [ "$guest" = guest-wan.sh ]; then
	command -v iperf3 >/dev/null || skip "iperf3 not installed"
fi
cd "$here/../.."
exec "$here/../vm/run.sh" --mem 2048 --timeout "${WCCL_STREAM_VM_TIMEOUT:-560}" \
	"$here/$guest" "$build" "$@"
