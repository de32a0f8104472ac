#!/usr/bin/env bash
# Guest: the verbs provider against a hostile librdmacm peer (crafted
# hellos, a lying write with immediate) on the loopback rxe.
#   tests/vm/run.sh tests/softroce/guest-hostile.sh BUILD_DIR
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-hostile: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-hostile.sh BUILD_DIR}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
wccl_modules
wccl_loopback_up 9000
export WCCL_VERBS_DEVICE=rxelo WCCL_DEBUG=${WCCL_DEBUG:-WARN}
exec "$build/tests/softroce/test_verbs_hostile"
