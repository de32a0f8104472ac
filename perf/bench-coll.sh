#!/usr/bin/env bash
# Side-by-side allreduce benchmark on this host (loopback / shared memory
# only): wccl next to the collective libraries users have today.
#
#   tool         what                                              path
#   wccl-shm     wccl-perf allreduce under wccl-run (default)       shared memory
#   wccl-uring   the same with WCCL_TRANSPORT=uring                 TCP over lo
#   gloo         perf/peers/gloo_allreduce.cc, libgloo TCP,         TCP over lo
#                best of ring, ring_chunked, halving_doubling, bcube per size
#   ompi-tcp     perf/peers/mpi_allreduce.c, Open MPI ob1 btl tcp   TCP over lo
#   ompi-vader   the same, btl vader,self                           shared memory
#   mpich        the same built for MPICH (ch4:ucx, UCX_TLS=self,sm) shared memory
#   torch-gloo   perf/peers/torch_allreduce.py, torch.distributed   TCP over lo
#
# fp32 sum, sizes bytes per rank 8 B .. 256 MiB in x4 steps (so 8 B .. 128 MiB),
# for 2 and 4 ranks. Every driver measures like wccl-perf: warm-up, a barrier,
# timed iterations, the slowest rank's average; busbw = algbw x 2(n-1)/n.
# Four size bands get different iteration counts (small 1000, middle 100,
# 8-32 MiB 20, 128-256 MiB 3) so a full run stays around 12 minutes. They
# were 200 and 20: at 8 B over shm (0.2 us) that is 40 us of timing, at
# 2 MiB ~10 ms, and one scheduling hiccup of this shared host decided a
# launch (8 B: 0.20, 0.74 and 7.34 us in three launches of one run). So
# did 3 iterations at 8 MiB: 4 ranks over shm take ~1.5 ms a call, and one
# rank preempted for a time slice of the 2 cores doubled a launch (3.26
# ms in the session-10 run; 1.44-1.51 ms over 30 iterations). Each (tool, band)
# launch is repeated REPEATS times (default 3), tools in a rotating order
# so they share the host's noise; the median time per size is reported.
# memcpy_bw gives the single-thread memcpy bound at the >= 1 MiB sizes:
# at the same size, and at n x the size, which touches as many bytes as
# n ranks' inputs and outputs do (2 MiB at 4 ranks is 16 MiB, in the
# L3; 8 MiB is 64 MiB, past it, where a copy of 8 MiB still fits).
#
# Raw JSON lines and logs go to RESULTS_DIR/raw, tables to stdout and
# RESULTS_DIR/summary.md (+ summary.json), plots to PLOT_DIR.
#
# usage: perf/bench-coll.sh [-o RESULTS_DIR] [-b BUILD_DIR] [-r REPEATS]
#                           [-n "2 4"] [-t TOOLS] [-p PLOT_DIR] [-q] [-I] [-H]
#   RESULTS_DIR  default ./perf-results/coll
#   BUILD_DIR    default $WCCL_BUILD or build/ (built with scripts/build.sh gcc
#                if wccl-perf is missing). wccl-run, wccl-perf and memcpy_bw
#                are copied to RESULTS_DIR/bin first, so a rebuild of
#                BUILD_DIR during the run cannot change them mid-way.
#   -H           benchmark the committed HEAD instead: git archive HEAD into
#                RESULTS_DIR/wccl-head (outside the work tree) and build it
#                there with scripts/build.sh gcc
#   TOOLS        comma list, default all: wccl-shm,wccl-uring,gloo,ompi-tcp,
#                ompi-vader,mpich,torch-gloo
#   PLOT_DIR     default perf/plots in the repository
#   -q           quick: sizes up to 2 MiB only, 1 repeat (smoke test)
#   -I           do not install missing Debian packages
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=./perf-results/coll
build=${WCCL_BUILD:-$repo/build}
repeats=3
rank_counts="2 4"
tools_all="wccl-shm,wccl-uring,gloo,ompi-tcp,ompi-vader,mpich,torch-gloo"
tools=$tools_all
plots=$repo/perf/plots
quick=0
install=1
head=0

while getopts "o:b:r:n:t:p:qIHh" opt; do
	case $opt in
	o) out=$OPTARG ;;
	b) build=$OPTARG ;;
	r) repeats=$OPTARG ;;
	n) rank_counts=$OPTARG ;;
	t) tools=$OPTARG ;;
	p) plots=$OPTARG ;;
	q) quick=1 ;;
	I) install=0 ;;
	H) head=1 ;;
	*) sed -n '2,43p' "$0"; exit 2 ;;
	esac
done

log() { printf '[bench-coll %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Size bands "first last iterations warm-up", on the x4 grid from 8 B.
bands=("8 8K 1000 50" "32K 2M 100 10" "8M 32M 20 2" "128M 256M 3 1")
if [ "$quick" = 1 ]; then
	bands=("8 8K 50 5" "32K 2M 5 1")
	repeats=1
fi
# The measured sizes, and n x each for the footprint of n ranks' buffers.
memcpy_sizes=$(for m in 1 2 4; do for s in 2097152 8388608 33554432 \
	134217728; do echo $((m * s)); done; done | sort -nu | tr '\n' ' ')
[ "$quick" = 1 ] && memcpy_sizes="2097152 4194304 8388608"

# ---- prerequisites -----------------------------------------------------------
# Debian packages of the peers (idempotent: only what is missing).
peer_pkgs=(g++ pkg-config libgloo-dev openmpi-bin libopenmpi-dev mpich
	libmpich-dev python3-torch python3-matplotlib python3-numpy)
install_peers() {
	local missing=() p
	for p in "${peer_pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$install" = 1 ] || die "missing packages: ${missing[*]} (run without -I)"
	log "installing ${missing[*]}"
	local sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	timeout 600 $sudo apt-get update -q >&2 ||
		die "apt-get update failed"
	# libopenmpi-dev and libmpich-dev coexist: mpi.h goes through
	# alternatives; we call mpicc.openmpi / mpicc.mpich by name.
	timeout 1800 env DEBIAN_FRONTEND=noninteractive $sudo apt-get install \
		-y -q --no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
}
install_peers

# Debian's python3 (python3-torch, python3-matplotlib live there), not a
# pyenv or venv one that may come first in PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw
bin=$out/bin
rm -rf "$raw"
mkdir -p "$raw" "$bin" "$plots"

wccl_src="working tree build $build"
if [ "$head" = 1 ]; then
	rev=$(git -C "$repo" rev-parse --short HEAD)
	log "building the committed HEAD $rev in $out/wccl-head"
	rm -rf "$out/wccl-head"
	mkdir -p "$out/wccl-head"
	git -C "$repo" archive HEAD | tar -x -C "$out/wccl-head"
	(cd "$out/wccl-head" && timeout 900 scripts/build.sh gcc >&2) ||
		die "HEAD does not build"
	build=$out/wccl-head/build
	wccl_src="committed HEAD $rev (git archive, built in $build)"
elif [ ! -x "$build/perf/wccl-perf" ] || [ ! -x "$build/tools/wccl-run" ] ||
	[ ! -x "$build/perf/memcpy_bw" ]; then
	if [ "$build" = "$repo/build" ]; then
		(cd "$repo" && scripts/build.sh gcc >&2)
	else
		[ -f "$build/build.ninja" ] || meson setup "$build" "$repo" >&2
		ninja -C "$build" >&2
	fi
fi
# Snapshot (wccl-perf and wccl-run link wccl statically).
for b in tools/wccl-run perf/wccl-perf perf/memcpy_bw; do
	cp "$build/$b" "$bin/" || die "no $build/$b"
done
wccl_run=$bin/wccl-run
wccl_perf=$bin/wccl-perf
memcpy_bw=$bin/memcpy_bw

# Our drivers, built outside the repository.
peers=$repo/perf/peers
log "building the peer drivers in $bin"
g++ -O2 -std=c++17 -Wall "$peers/gloo_allreduce.cc" -o "$bin/gloo_allreduce" \
	-lgloo || die "gloo_allreduce does not build"
mpicc.openmpi -O2 -Wall "$peers/mpi_allreduce.c" -o "$bin/mpi_allreduce.openmpi" \
	-lm || die "mpi_allreduce does not build with Open MPI"
mpicc.mpich -O2 -Wall "$peers/mpi_allreduce.c" -o "$bin/mpi_allreduce.mpich" \
	-lm || die "mpi_allreduce does not build with MPICH"

# ---- one launch --------------------------------------------------------------
bound=300 # seconds; every launch is bounded by timeout(1), which kills
	  # the launch's whole process group
ompi=(mpirun.openmpi --allow-run-as-root --oversubscribe --bind-to none
	--mca pml ob1 --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)

# run_one TOOL RANKS FIRST LAST ITERS WARMUP FILE: JSON lines to FILE(.jsonl)
run_one() {
	local tool=$1 n=$2 b=$3 e=$4 it=$5 w=$6 f=$7
	local args=(-b "$b" -e "$e" -f 4 -n "$it" -w "$w")
	local rc=0
	case $tool in
	wccl-shm)
		timeout -k 5 $bound "$wccl_run" -n "$n" --timeout $((bound - 10)) \
			-- "$wccl_perf" allreduce "${args[@]}" --json ;;
	wccl-uring)
		WCCL_TRANSPORT=uring timeout -k 5 $bound "$wccl_run" -n "$n" \
			--timeout $((bound - 10)) \
			-- "$wccl_perf" allreduce "${args[@]}" --json ;;
	gloo)
		timeout -k 5 $bound "$bin/gloo_allreduce" -N "$n" "${args[@]}" ;;
	ompi-tcp)
		timeout -k 5 $bound "${ompi[@]}" --mca btl tcp,self -np "$n" \
			"$bin/mpi_allreduce.openmpi" "${args[@]}" -t ompi-tcp ;;
	ompi-vader)
		timeout -k 5 $bound "${ompi[@]}" --mca btl vader,self -np "$n" \
			"$bin/mpi_allreduce.openmpi" "${args[@]}" -t ompi-vader ;;
	mpich)
		UCX_TLS=self,sm timeout -k 5 $bound mpiexec.mpich -n "$n" \
			"$bin/mpi_allreduce.mpich" "${args[@]}" -t mpich ;;
	torch-gloo)
		GLOO_SOCKET_IFNAME=lo timeout -k 5 $bound "$py" \
			"$peers/torch_allreduce.py" -N "$n" "${args[@]}" ;;
	*) die "unknown tool $tool" ;;
	esac >"$f.jsonl" 2>"$f.err" || rc=$?
	if [ $rc -ne 0 ]; then
		log "  $tool n=$n $b..$e: exit $rc (see $f.err)"
		tail -n 3 "$f.err" >&2 || true
	fi
	return 0
}

# ---- the runs ----------------------------------------------------------------
IFS=, read -r -a tool_list <<<"$tools"
{
	echo "date: $(date -Is)"
	echo "host: $(uname -n) kernel $(uname -r)"
	echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
	echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "wccl: $wccl_src; repo HEAD $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (work tree has uncommitted changes)')"
	echo "command: $0 $*"
	echo "bands: ${bands[*]}; repeats: $repeats; ranks: $rank_counts"
	for p in libgloo-dev openmpi-bin mpich python3-torch; do
		echo "$p: $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)"
	done
} >"$out/machine.txt"
t_start=$(date +%s)
for rep in $(seq 1 "$repeats"); do
	# memcpy bound, alternating with the tools like a tool.
	for s in $memcpy_sizes; do
		timeout 30 "$memcpy_bw" "$s" 0.5 --json \
			>"$raw/memcpy.$s.rep$rep.jsonl" 2>&1 || true
	done
	for n in $rank_counts; do
		# Rotate the tool order each repeat.
		k=${#tool_list[@]}
		for i in $(seq 0 $((k - 1))); do
			tool=${tool_list[$(((i + rep - 1) % k))]}
			log "rep $rep/$repeats n=$n $tool"
			for bi in "${!bands[@]}"; do
				read -r b e it w <<<"${bands[$bi]}"
				echo "$(date +%T) $tool n=$n band$bi rep$rep load $(cut -d' ' -f1 /proc/loadavg)" >>"$out/launches.log"
				run_one "$tool" "$n" "$b" "$e" "$it" "$w" \
					"$raw/$tool.n$n.band$bi.rep$rep"
			done
		done
	done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
echo "elapsed: $(($(date +%s) - t_start)) s" >>"$out/machine.txt"
log "runs done in $(($(date +%s) - t_start)) s"

# ---- tables, goals, plots ----------------------------------------------------
"$py" "$peers/coll_report.py" --raw "$raw" --machine "$out/machine.txt" \
	--ranks "$rank_counts" --md "$out/summary.md" --json "$out/summary.json" \
	--plots "$plots"
