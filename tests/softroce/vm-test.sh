#!/usr/bin/env bash
# Host side of a softroce test: boot the VM (tests/vm/run.sh) and run a
# guest script against BUILD_DIR. Exit 77 (skip) with the reason when the
# VM cannot run here or the build is not visible in the guest.
#   vm-test.sh BUILD_DIR GUEST_SCRIPT [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(realpath -m -- "${1:?usage: vm-test.sh BUILD_DIR GUEST_SCRIPT [ARGS...]}")
script=${2:?usage: vm-test.sh BUILD_DIR GUEST_SCRIPT [ARGS...]}
shift 2
skip() { echo "SKIP softroce: $*" >&2; exit 77; }
case "$build/" in
/tmp/* | /run/* | /dev/shm/*)
	skip "build dir $build is under /tmp, /run or /dev/shm, which the VM guest replaces; configure it elsewhere (e.g. meson setup /work/build-verbs)" ;;
esac
[ -x "$build/tests/integration/test_transport" ] || skip "$build has no tests (cmocka missing?)"
grep -q 'WCCL_HAVE_VERBS' "$build/build.ninja" || skip "verbs provider not built (-Dverbs: libibverbs/librdmacm missing)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (tests/vm/setup.sh installs it)"
[ -r /dev/null ] && [ -w "${TMPDIR:-/tmp}" ] || skip "no writable TMPDIR for the VM job folder"
# The guest runs in the current directory: it must be visible too.
cd "$here/../.."
exec "$here/../vm/run.sh" --timeout "${WCCL_SOFTROCE_TIMEOUT:-280}" "$here/$script" "$build" "$@"
