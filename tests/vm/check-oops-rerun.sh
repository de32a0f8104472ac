#!/usr/bin/env bash
# Host-side check of run.sh's rerun after a guest oops (selftest-oops.sh):
# an int3 oops under the script reruns it once and the second run's code
# counts; an int3 oops on every run gives up with 99 after one rerun; any
# other oops is not rerun. Five short boots, about 40 s under TCG.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "SKIP: qemu-system-x86_64 not installed (tests/vm/setup.sh)" >&2; exit 77; }
TMPDIR=$(mktemp -d)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
cd "$here/../.."
failures=0

# expect MODE CODE RERUNS: run.sh's exit code and how many RERUN lines.
expect() {
	local rc=0 out reruns
	out=$("$here/run.sh" --timeout 120 "$here/selftest-oops.sh" "$1" 2>&1) || rc=$?
	reruns=$(grep -c '^run.sh: RERUN: the guest kernel died' <<<"$out" || true)
	if [ "$rc" = "$2" ] && [ "$reruns" = "$3" ]; then
		echo "ok: $1: exit $rc, $reruns rerun(s)"
	else
		echo "FAIL: $1: exit $rc (want $2), $reruns rerun(s) (want $3); output:"
		printf '%s\n' "$out"
		failures=$((failures + 1))
	fi
}

expect once 0 1
expect always 99 1
expect other 99 0
exit $((failures > 0))
