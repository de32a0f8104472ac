#!/usr/bin/env bash
# Guest: the collectives suite forced onto verbs (WCCL_TRANSPORT=verbs via
# test_coll's provider argument) on the loopback rxe. Rank counts: the
# arguments, else WCCL_SOFTROCE_COLL_RANKS (default "2": 2 ranks take about
# 85 s of VM time, 3 ranks about 165 s, which breaks the suite's budget).
#   tests/vm/run.sh tests/softroce/guest-coll.sh BUILD_DIR [NRANKS...]
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-coll: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-coll.sh BUILD_DIR [NRANKS...]}
shift
# shellcheck disable=SC2086
[ $# -gt 0 ] || set -- ${WCCL_SOFTROCE_COLL_RANKS:-2}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
wccl_modules
wccl_loopback_up 9000
export WCCL_VERBS_DEVICE=rxelo WCCL_DEBUG=${WCCL_DEBUG:-WARN}
fail=0
for n in "$@"; do
	t0=$SECONDS
	rc=0
	"$build/tests/collectives/test_coll" verbs "$n" || rc=$?
	echo "guest-coll: test_coll verbs $n exit $rc, $((SECONDS - t0)) s"
	[ "$rc" = 0 ] || fail=1
done
exit "$fail"
