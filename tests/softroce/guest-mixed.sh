#!/usr/bin/env bash
# Guest: one communicator over two providers. Each rank is its own region
# (so no pair uses shared memory). Ranks 0 and 1 have the
# loopback rxe; rank 2 is told to use a device that does not exist, so it
# has no verbs context: pairs (0,1) take verbs, pairs with rank 2 take
# uring. Every collective is checked (wccl-perf -c 1 counts wrong
# elements), and the transports each rank chose are printed and checked.
#   tests/vm/run.sh tests/softroce/guest-mixed.sh BUILD_DIR
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-mixed: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-mixed.sh BUILD_DIR}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
wccl_modules
wccl_loopback_up 9000
export WCCL_DEBUG=${WCCL_DEBUG:-WARN} WCCL_AUTH_KEY=mixed WORLD_SIZE=3
export WCCL_ROOT_ADDR=127.0.0.1:29400
out=$(mktemp -d /tmp/mixed.XXXXXX)
fail=0
for coll in allreduce allgather reduce_scatter broadcast alltoall; do
	pids=()
	for r in 0 1 2; do
		dev=rxelo
		[ "$r" = 2 ] && dev=no-such-device
		# A region each: no shared memory, every pair on the network.
		RANK=$r WCCL_VERBS_DEVICE=$dev WCCL_REGION=site$r \
			timeout 200 "$build/perf/wccl-perf" "$coll" -b 4 -e 1M -f 16 \
			-n 3 -w 1 -c 1 >"$out/$coll.$r" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail=1; done
	cat "$out/$coll.0"
	grep -q "Out of bounds values : 0 OK" "$out/$coll.0" || { echo "guest-mixed: $coll: wrong results"; fail=1; }
done
# The transports: 0<->1 verbs, everything with rank 2 uring.
grep -q "rank 0 host .* 1:verbs 2:uring" "$out/allreduce.0" &&
	grep -q "rank 2 host .* 0:uring 1:uring" "$out/allreduce.0" ||
	{ echo "guest-mixed: expected verbs between 0 and 1, uring with 2"; fail=1; }
echo "guest-mixed: exit $fail"
exit "$fail"
