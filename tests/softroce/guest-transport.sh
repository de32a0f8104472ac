#!/usr/bin/env bash
# Guest: the transport contract suite (tests/integration/test_transport) on
# the verbs provider. Both sides of every case are forked on one host, so
# they share one rxe: "rxelo" on a dummy device (loopback through rxe's own
# short cut; the veth pair is for the WAN measurements in guest-perf.sh).
#   tests/vm/run.sh tests/softroce/guest-transport.sh BUILD_DIR
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-transport: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-transport.sh BUILD_DIR}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
wccl_modules
wccl_loopback_up 9000
export WCCL_VERBS_DEVICE=rxelo WCCL_DEBUG=${WCCL_DEBUG:-WARN}
t0=$SECONDS
rc=0
"$build/tests/integration/test_transport" verbs || rc=$?
echo "guest-transport: test_transport verbs exit $rc, $((SECONDS - t0)) s"
exit "$rc"
