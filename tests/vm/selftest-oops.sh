#!/usr/bin/env bash
# Guest script: stages the TCG text-patching crash that run.sh reruns a
# script after (tests/vm/README.md). It writes an "Oops: int3" line to the
# console and resets the guest at once, as the real oops's panic does.
#   once    crash on the first run only; the rerun exits 0
#   always  crash on every run; run.sh must give up after one rerun (99)
#   other   crash with a different oops text; run.sh must not rerun (99)
#
#   tests/vm/run.sh tests/vm/selftest-oops.sh once
set -euo pipefail

[ "${WCCL_VM:-}" = 1 ] || { echo "selftest-oops: run me through tests/vm/run.sh" >&2; exit 77; }

mode=${1:?usage: selftest-oops.sh once|always|other}
# The job share outlives a boot; the guest's own files do not.
runs=/run/wccl-vm/selftest-oops.runs
n=$(($(cat "$runs" 2>/dev/null || echo 0) + 1))
echo "$n" >"$runs"
echo "selftest-oops: run $n ($mode)"
if [ "$mode" = once ] && [ "$n" -gt 1 ]; then
	echo "selftest-oops: ok, run again after the staged crash"
	exit 0
fi
text='Oops: int3: 0000 [#1] (staged by selftest-oops.sh)'
[ "$mode" = other ] && text='Oops: general protection fault: 0000 [#1] (staged by selftest-oops.sh)'
sync
echo "<2>$text" >/dev/kmsg
sleep 0.2
echo b >/proc/sysrq-trigger
sleep 30
echo "selftest-oops: the guest did not reset"
exit 1
