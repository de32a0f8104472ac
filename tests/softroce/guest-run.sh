#!/usr/bin/env bash
# Guest helper for debugging: loopback rxe up, then run CMD ARGS... as is.
#   tests/vm/run.sh tests/softroce/guest-run.sh CMD [ARGS...]
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-run: run me through tests/vm/run.sh" >&2; exit 77; }
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
wccl_modules
wccl_loopback_up 9000
export WCCL_VERBS_DEVICE=${WCCL_VERBS_DEVICE:-rxelo}
exec "$@"
