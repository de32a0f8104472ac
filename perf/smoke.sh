#!/usr/bin/env bash
# meson test --suite perf: one short, data-checked wccl-perf run.
#   smoke.sh WCCL_PERF ARGS...   exit 0 pass, 1 fail, 77 provider unavailable
set -uo pipefail
perf=$1
shift
err=$(mktemp)
trap 'rm -f "$err"' EXIT
timeout 60 "$perf" "$@" --local -c --json --timeout 5000 >/dev/null 2>"$err"
rc=$?
if grep -q "cannot open provider" "$err"; then
	cat "$err" >&2
	exit 77
fi
cat "$err" >&2
[ $rc -eq 0 ] || exit 1
