# Sourced by the perf/bench-dpdk-*.sh scripts: one wccl-perf lat --local
# run of write-poll SIZE messages, its typical and max half round trip.
# Needs $build and $size; lat_init NAME first.

# $perf (exit if not built), $dir (a scratch dir, removed at exit), $iters.
lat_init() {
	perf=$build/perf/wccl-perf
	[ -x "$perf" ] || { echo "no $perf (scripts/build.sh first)"; exit 1; }
	dir=$(mktemp -d "/tmp/wccl-bench-$1.XXXXXX")
	trap 'rm -rf "$dir"' EXIT
	iters=30
}

#   lat_run PROVIDER PIN ENV...   PIN: a cpu for taskset, or "" (none)
# prints "typical max stops rto tlp" (us; the dpdk counters summed over
# both processes from their INFO stats lines; "fail fail" if no table).
lat_run() {
	local provider=$1 pin=$2 out sock=$dir/m$RANDOM.sock
	shift 2
	local eal="--no-huge -m 256 --no-shconf --no-pci --file-prefix=wccl-%p --log-level=error"
	local cmd=(timeout 600)
	[ -n "$pin" ] && cmd+=(taskset -c "$pin")
	out=$(env "$@" WCCL_DEBUG=INFO WCCL_DEBUG_SUBSYS=DPDK \
		WCCL_DPDK_EAL="$eal --vdev=net_memif0,role=auto,socket=$sock,bsize=4096" \
		"${cmd[@]}" "$perf" lat --local --provider "$provider" \
		--op write-poll -s "$size" -n "$iters" -w 5 2>"$dir/err")
	local counts
	counts=$(awk '{ for (i = 1; i < NF; i++) {
			if ($i == "stalls") s += $(i + 1)
			if ($i == "(rto") r += $(i + 1)
			if ($i == "tlp") t += $(i + 1) } }
		END { print s + 0, r + 0, t + 0 }' "$dir/err")
	echo "$out" | awk -v c="$counts" '$1 ~ /^[0-9]+$/ && NF >= 6 { t = $5; m = $4 }
		END { if (t) print t, m, c; else print "fail fail", c }'
}

# Median of the numbers on stdin ("n/a" if none).
median() {
	tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g |
		awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : "n/a" }'
}

# "A / B" as "1.23x", or n/a.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0)
		printf "%.2fx", a / b; else print "n/a" }'
}
