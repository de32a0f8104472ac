#!/usr/bin/env bash
# The whole test suite, as CI runs it (README Quick start):
#   gcc -Werror build: unit, integration, collectives, dpdk, dpdk-coll and
#     stream suites, the soft-RoCE suites (verbs inside a qemu VM with
#     Debian's kernel, see tests/vm; softroce-wan: the contract and
#     collectives suites at 20 ms RTT, about 2.5 min of VM time; stream-wan:
#     wccl-xfer under every WAN profile, about 2.5 min) and an install
#     check,
#   clang -Werror build: unit suite,
#   ASan+UBSan build: unit, integration and collectives suites.
# Ends with one line "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1

passed=0 failed=0 skipped=0
# Count one meson test run from its JSON log.
tally() {
	local log=$1/meson-logs/testlog.json
	[ -f "$log" ] || return 0
	read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

run_suites() { # build-dir, suites...
	local dir=$1; shift
	local args=()
	for s in "$@"; do args+=(--suite "$s"); done
	echo "== $dir: meson test ${*}"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "${args[@]}" || true
	tally "$dir"
}

for flavour in gcc clang asan; do
	echo "== build $flavour"
	if ! dir=$(scripts/build.sh "$flavour"); then
		echo "BUILD FAILED: $flavour"
		failed=$((failed + 1))
		continue
	fi
	case $flavour in
	gcc)
		run_suites "$dir" unit integration collectives dpdk dpdk-coll stream
		# The VM test bed (qemu, busybox, Debian's kernel in a cache
		# outside the repo): without it these suites would only skip.
		if tests/vm/setup.sh >/dev/null; then
			run_suites "$dir" softroce softroce-wan stream-wan
		else
			echo "FAIL: tests/vm/setup.sh (the soft-RoCE suites need the VM)"
			failed=$((failed + 1))
		fi
		echo "== meson install + a program built against wccl.pc"
		if tests/install/check-install.sh "$dir"; then
			passed=$((passed + 1))
		else
			echo "FAIL: install check"
			failed=$((failed + 1))
		fi
		;;
	clang) run_suites "$dir" unit ;;
	asan) run_suites "$dir" unit integration collectives stream ;;
	esac
done

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
