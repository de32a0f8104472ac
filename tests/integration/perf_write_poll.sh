#!/usr/bin/env bash
# meson test --suite integration: wccl-perf lat --op write-poll (plain
# writes, the peer polls the last byte) over one provider, both sides on
# this host, data checked (-c) at sizes 1 (the marker alone), odd, page,
# past a page and large, then a size sweep in one session (stale markers
# between runs). Fails if a run exits non-zero (wrong bytes, a timeout),
# hangs (120 s), or reports other than what was asked; and if bw accepts
# --op write-poll.
#   perf_write_poll.sh WCCL_PERF PROVIDER   exit 0 pass, 1 fail, 77 skip
set -uo pipefail
perf=${1:?usage: perf_write_poll.sh WCCL_PERF PROVIDER}
prov=${2:?usage: perf_write_poll.sh WCCL_PERF PROVIDER}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ "$prov" = dpdk ]; then
	# One fresh net_memif link; both processes start the EAL from it.
	export WCCL_DPDK_EAL="--no-huge -m 256 --no-shconf --no-pci \
--file-prefix=wccl-%p --log-level=error \
--vdev=net_memif0,role=auto,socket=$dir/memif.sock,bsize=4096"
fi
fail=0

run() { # NAME EXPECT_ROWS ARGS...: one --local run; rows land in NAME.out
	local name=$1 rows=$2 rc
	shift 2
	# --timeout: both sides spin; on 2 shared vCPUs a dpdk peer starved of
	# CPU took up to 4 s for one 8 MiB round trip.
	timeout 120 "$perf" lat --local --provider "$prov" --op write-poll -c \
		--json --timeout 20000 "$@" >"$dir/$name.out" 2>"$dir/$name.err"
	rc=$?
	if grep -q "cannot open provider" "$dir/$name.err"; then
		cat "$dir/$name.err" >&2
		exit 77
	fi
	if [ $rc -eq 124 ]; then
		echo "FAIL $name: hung (killed after 120 s): $*"
		fail=1
	elif [ $rc -ne 0 ]; then
		echo "FAIL $name: exit $rc: $*"
		fail=1
	elif [ "$(grep -c '"op": "write-poll"' "$dir/$name.out")" != "$rows" ]; then
		echo "FAIL $name: expected $rows write-poll result rows: $*"
		fail=1
	fi
	sed 's/^/  /' "$dir/$name.err"
}

# NAME SIZE N: one size; the row must say that size, N rounds, checked.
one() {
	local name=$1 size=$2 n=$3
	run "$name" 1 -s "$size" -n "$n" -w 5
	grep -q "\"bytes\": $size, \"iterations\": $n, .*\"checked\": true" \
		"$dir/$name.out" || {
		echo "FAIL $name: wrong result row:"
		cat "$dir/$name.out"
		fail=1
	}
}

one s1 1 200
one s61 61 200
one s4096 4096 200
one s65537 65537 100
one s1m 1048576 20
# 2 B .. 8 MiB in one session: 23 runs; every run starts from round 0.
run sweep 23 -a -n 10 -w 2

# Bad input: bw has no pong to poll for.
if "$perf" bw --op write-poll --local >/dev/null 2>"$dir/bw.err"; then
	echo "FAIL bw accepted --op write-poll"
	fail=1
elif ! grep -q "write-poll is for lat" "$dir/bw.err"; then
	echo "FAIL bw --op write-poll: unclear error:"
	cat "$dir/bw.err"
	fail=1
fi
[ $fail = 0 ] && echo "write-poll over $prov: all runs checked and complete"
exit $fail
