#!/usr/bin/env bash
# Guest: perftest (ib_write_bw / ib_write_lat) against wccl-perf on the
# verbs provider, between the two peers of the veth pair (rxe0 / rxe1), with
# no WAN profile and at delay20 (20 ms RTT, 350 Mbit/s tbf bottleneck).
# Prints each pair and the wccl/perftest ratio. Fails only if a tool fails:
# throughput under TCG swings 2-10x with host load, so nothing is asserted.
# wccl-perf lat --op write-poll (the peer polls memory, as ib_write_lat) runs
# next to them, and once with -c at 4097 B (fails if the bytes are wrong).
#   tests/vm/run.sh tests/softroce/guest-perf.sh BUILD_DIR
#
# Mode lat-ab: only 8 B latency, like for like, alternating in one VM run
# for each veth MTU in WCCL_LAT_MTUS (default "1500 9000": rxe MTU 1024 and
# 4096), WCCL_LAT_REPEATS times (default 5): ib_write_lat, wccl write-poll
# (default data QPs, and one: WCCL_VERBS_QPS=1, as ib_write_lat), wccl
# write_imm and send busy-polling (WCCL_SPIN_US=10 s); then the median
# of each, the per-repeat ratios to ib_write_lat and how many repeats
# landed under 120 us (the fast mode); the MEDIAN lines also give the
# median per-repeat ratio, how many are <= 1.1, and that median over the
# repeats where ib_write_lat itself was fast. WCCL_LAT_COLS / WCCL_LAT_EXTRA
# pick and add columns (see lat_cols; PIN=C/S pins both tools). Each MTU starts with a
# data-checked write-poll run at 4097 B. With WCCL_PERF_SCHEDSTAT=1 each
# wccl pair also prints both sides' CPU, run-queue wait and time slices
# (slices a round near 1: the fast mode; 3 and more: ~25-40 us slower).
#   tests/vm/run.sh tests/softroce/guest-perf.sh BUILD_DIR lat-ab
# Modes lat-sched and lat-trace (below) look at the scheduler.
set -euo pipefail
[ "${WCCL_VM:-}" = 1 ] || { echo "guest-perf: run me through tests/vm/run.sh" >&2; exit 77; }
build=${1:?usage: guest-perf.sh BUILD_DIR [lat-ab]}
mode=${2:-suite}
# shellcheck source=../vm/netns.sh
. "$WCCL_VM_DIR/netns.sh"
# shellcheck disable=SC2034  # used by perf-lib.sh
wperf=$build/perf/wccl-perf
# shellcheck disable=SC2034
logdir=$(mktemp -d) port=18515
failures=0
secs=${WCCL_SOFTROCE_PERF_SECS:-3}

# shellcheck source=perf-lib.sh
. "$(dirname "$0")/perf-lib.sh"

suite() {
	local tag=$1 bwargs=$2 latn=$3 t0=$SECONDS
	echo "== $tag"
	# shellcheck disable=SC2086
	pt "ibbw1-$tag" ib_write_bw -s 65536 $bwargs --report_gbits
	# shellcheck disable=SC2086
	pt "ibbw4-$tag" ib_write_bw -s 65536 -q 4 $bwargs --report_gbits
	pt "iblat-$tag" ib_write_lat -s 8 -n "$latn"
	wp "wbw-$tag" bw -s 64K -D "$secs"
	wp "wlat-$tag" lat -s 8 --op write -n "$latn" -w 5
	wp "wlats-$tag" lat -s 8 --op send -n "$latn" -w 5
	wp "wlatp-$tag" lat -s 8 --op write-poll -n "$latn" -w 5
	local p1 p4 w pl wl ws wq
	p1=$(col "ibbw1-$tag" 4) p4=$(col "ibbw4-$tag" 4) w=$(jget "wbw-$tag" bw_avg_Gbps)
	pl=$(col "iblat-$tag" 5) wl=$(jget "wlat-$tag" t_typical_us) ws=$(jget "wlats-$tag" t_typical_us)
	wq=$(jget "wlatp-$tag" t_typical_us)
	printf '%-8s ib_write_bw 1 QP %s Gb/s | 4 QP %s Gb/s | wccl bw write 64K %s Gb/s -> wccl/1QP %sx, wccl/4QP %sx\n' \
		"$tag" "${p1:-?}" "${p4:-?}" "${w:-?}" "$(ratio "$w" "$p1")" "$(ratio "$w" "$p4")"
	printf '%-8s ib_write_lat 8B typical %s us | wccl lat write_imm %s us (%sx), send %s us (%sx)\n' \
		"$tag" "${pl:-?}" "${wl:-?}" "$(ratio "$wl" "$pl")" "${ws:-?}" "$(ratio "$ws" "$pl")"
	printf '%-8s ib_write_lat 8B typical %s us | wccl lat write-poll %s us (%sx)\n' \
		"$tag" "${pl:-?}" "${wq:-?}" "$(ratio "$wq" "$pl")"
	echo "$tag: $((SECONDS - t0)) s"
}

# lat-ab columns: NAME:OP:ENV[:ARGS] (ENV is K=V,K=V for both wccl-perf
# sides, ARGS more wccl-perf lat arguments, comma-separated).
# WCCL_LAT_COLS picks the stock ones by name; WCCL_LAT_EXTRA adds more in
# the same form (e.g. "y5:write-poll:WCCL_VERBS_QPS=1,WCCL_VERBS_YIELD_US=5"),
# to compare a variant against the others in the same boot. PIN=C/S in ENV
# pins the client to vCPU C and the server to vCPU S (taskset), NICE=N and
# IDLE=1 set the scheduling of both sides (perf-lib.sh); each repeat then
# also runs ib_write_lat set up the same way, and that column's ratios are
# to it.
lat_cols() {
	local c want=" ${WCCL_LAT_COLS:-poll poll1 imm send} "
	for c in "poll:write-poll:" "poll1:write-poll:WCCL_VERBS_QPS=1" \
		"imm:write:WCCL_SPIN_US=10000000" "send:send:WCCL_SPIN_US=10000000"; do
		[[ $want == *" ${c%%:*} "* ]] && echo "$c"
	done
	for c in ${WCCL_LAT_EXTRA:-}; do echo "$c"; done
}

col_split() { # NAME:OP:ENV[:ARGS] -> name op env args wrap (globals; wrap: PIN, NICE, IDLE)
	local rest e
	name=${1%%:*} rest=${1#*:}
	op=${rest%%:*} rest=${rest#*:}
	env=${rest%%:*} args=
	[[ $rest == *:* ]] && args=${rest#*:}
	wrap='' rest=''
	for e in ${env//,/ }; do
		case $e in
		PIN=* | NICE=* | IDLE=*) wrap+=",$e" ;;
		*) rest+=" $e" ;;
		esac
	done
	env=$rest wrap=${wrap#,}
}

ref_name() { # WRAP: the ib_write_lat column run the same way
	local w=${1//\//-}
	w=${w//PIN=/} w=${w//NICE=/n} w=${w//IDLE=1/idle}
	echo "ib${1:+@${w//,/+}}"
}

# shellcheck disable=SC2034  # PIN, NICE, IDLE: read by run_prefix (perf-lib.sh)
wrap_run() { # WRAP CMD...: CMD with PIN / NICE / IDLE from WRAP
	local w=$1 e
	local PIN='' NICE='' IDLE=''
	shift
	for e in ${w//,/ }; do
		case $e in
		PIN=*) PIN=${e#PIN=} ;;
		NICE=*) NICE=${e#NICE=} ;;
		IDLE=*) IDLE=${e#IDLE=} ;;
		esac
	done
	"$@"
}

# Robust summary of one column: VALUES and REFS (ib_write_lat of the same
# repeat), as two word lists: medians, ratio of medians, the median of the
# per-repeat ratios, how many are <= 1.1, and that median over the repeats
# in which ib_write_lat itself was fast (under 120 us), and the ratio of the
# lower quartiles (each tool's fast-mode level).
lat_summary() { # MTU NAME REF_NAME "VALUES" "REFS" FAST SHARED SPEC
	awk -v mtu="$1" -v name="$2" -v refn="$3" -v vs="$4" -v rs="$5" -v fast="$6" -v sh="$7" -v spec="$8" '
	function med(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		if (!n) return 0
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	BEGIN {
		n = split(vs, v, " "); split(rs, r, " ")
		for (i = 1; i <= n; i++) { vv[i] = v[i]; rr[i] = r[i] }
		nr = 0; nf = 0; le = 0
		for (i = 1; i <= n; i++) if (v[i] > 0 && r[i] > 0) {
			q = v[i] / r[i]; all[++nr] = q; if (q <= 1.1) le++
			if (r[i] < 120) fr[++nf] = q
		}
		mv = med(vv, n); mr = med(rr, n)
		# lower quartiles: the level of the fast mode
		qv = vv[int((n + 3) / 4)]; qr = rr[int((n + 3) / 4)]
		printf "MEDIAN mtu %-5s %-8s %s us vs %s %s us: %.2fx, under 120 us in %s of %s; per-repeat ratio median %.2f, %d of %d <= 1.1, median over the %d repeats %s was fast %.2f; lower quartiles %s / %s us = %.2fx; server on the client'"'"'s vCPU at start in %s (%s)\n", \
			mtu, name, mv, refn, mr, (mr > 0 ? mv / mr : 0), fast, n, med(all, nr), le, nr, nf, refn, med(fr, nf), qv, qr, (qr > 0 ? qv / qr : 0), sh, spec
	}'
}

# One MTU of the lat-ab mode: REPEATS rounds of ib_write_lat and every
# column, alternating.
lat_ab() { # VETH_MTU REPEATS
	local mtu=$1 reps=$2 i n=1000 v c name op env args wrap line ibv wv cols pins p ref sc ss
	local -A all=() refs=() nfast=() ibval=() nshared=()
	cols=$(lat_cols) # NAME:OP:ENV[:ARGS] words, no blanks in them
	pins=$(for c in $cols; do col_split "$c"; [ -z "$wrap" ] || echo "$wrap"; done | sort -u)
	for i in $(seq "$reps"); do
		echo "-- mtu $mtu repeat $i, load $(cut -d' ' -f1-3 /proc/loadavg)"
		line="REPEAT mtu $mtu $i:"
		for p in "" $pins; do
			name=$(ref_name "$p")
			wrap_run "$p" pt "$name-$mtu-$i" ib_write_lat -s 8 -n "$n"
			ibv=$(col "$name-$mtu-$i" 5)
			ibval[$name]=$ibv
			all[$name]+=" $ibv"
			awk -v a="$ibv" 'BEGIN { exit !(a > 0 && a < 120) }' && nfast[$name]=$((${nfast[$name]:-0} + 1))
			line+=" $name $ibv |"
		done
		for c in $cols; do
			col_split "$c"
			ref=$(ref_name "$wrap")
			# shellcheck disable=SC2086
			WP_ENV="$env" wrap_run "$wrap" wp "$name-$mtu-$i" lat -s 8 --op "$op" -n "$n" -w 50 ${args//,/ }
			wv=$(jget "$name-$mtu-$i" t_typical_us)
			all[$name]+=" $wv"
			refs[$name]+=" ${ibval[$ref]}"
			awk -v a="$wv" 'BEGIN { exit !(a > 0 && a < 120) }' && nfast[$name]=$((${nfast[$name]:-0} + 1))
			line+=" $name $wv ($(ratio "$wv" "${ibval[$ref]}")x)"
			if [ "${WCCL_PERF_SCHEDSTAT:-0}" != 0 ]; then
				sc=$(grep -h '^SCHED' "$logdir/$name-$mtu-$i.client" | tail -n 1)
				ss=$(grep -h '^SCHED' "$logdir/$name-$mtu-$i.server" | tail -n 1)
				echo "  $name $wv: $sc | $ss"
				[ "$(echo "$sc" | awk '{ split($4, a, "->"); print a[1] }')" = "$(echo "$ss" | awk '{ split($4, a, "->"); print a[1] }')" ] &&
					nshared[$name]=$((${nshared[$name]:-0} + 1))
			fi
		done
		echo "$line us"
	done
	for p in "" $pins; do
		name=$(ref_name "$p")
		# shellcheck disable=SC2086
		v=$(median ${all[$name]})
		printf 'MEDIAN mtu %-5s %-8s %s us, under 120 us in %s of %s\n' "$mtu" "$name" "$v" "${nfast[$name]:-0}" "$reps"
	done
	for c in $cols; do
		col_split "$c"
		lat_summary "$mtu" "$name" "$(ref_name "$wrap")" "${all[$name]}" "${refs[$name]}" "${nfast[$name]:-0}" "$([ "${WCCL_PERF_SCHEDSTAT:-0}" != 0 ] && echo "${nshared[$name]:-0}" || echo '?')" "$c"
	done
}

lat_ab_mtu() { # MTU
	# The bytes over verbs, past one MTU: -c fails the run if wrong.
	wp "pollc-$1" lat -s 4097 --op write-poll -c -n 100 -w 5
	lat_ab "$1" "${WCCL_LAT_REPEATS:-5}"
}

lat_ab_main() {
	local t0=$SECONDS
	perf_guest_begin
	perf_each_mtu "${WCCL_LAT_MTUS:-1500 9000}" lat_ab_mtu
	echo "guest-perf lat-ab: $failures failure(s), $((SECONDS - t0)) s in the guest"
	[ "$failures" = 0 ]
}

main() {
	local t0=$SECONDS
	perf_guest_begin
	perf_net_up 9000
	echo "rxe mode: $(wccl_net_mode); GID index rxe0 $g0, rxe1 $g1"
	suite plain "-D $secs" 200
	# The bytes over verbs, past one MTU (4097 B): -c fails the run if wrong.
	wp "wpollc-plain" lat -s 4097 --op write-poll -c -n 100 -w 5
	"$WCCL_VM_DIR/wan-profile.sh" delay20
	suite delay20 "-D $secs" 20
	"$WCCL_VM_DIR/wan-profile.sh" none
	wccl_net_down
	echo "guest-perf: $failures failure(s), $((SECONDS - t0)) s in the guest"
	[ "$failures" = 0 ]
}

# Mode lat-sched: where a latency round waits. For ib_write_lat and each
# lat-ab column (WCCL_LAT_COLS / WCCL_LAT_EXTRA), WCCL_LAT_REPEATS (default 2)
# times at each MTU: system-wide scheduler counts per round (context
# switches, wake-ups, sched_yield calls, NET_RX softirqs) from perf stat.
# WCCL_LAT_PREEMPT (none, voluntary, full, lazy) sets the guest's preemption
# model first. Diagnostic, nothing asserted. (perf 6.1's `perf sched
# latency` cannot parse this kernel's sched_switch; lat-trace prints the
# raw events.)
sched_counts() { # NAME ROUNDS FILE: per-round counts from a perf stat -x, file
	awk -F, -v n="$2" -v name="$1" '$3 ~ /:/ { split($3, e, ":"); v[e[2]] = $1 }
		END { printf "%s per round: switch %.2f wakeup %.2f yield %.2f net_rx %.2f\n", name,
			v["sched_switch"] / n, v["sched_wakeup"] / n, v["sys_enter_sched_yield"] / n, v["softirq_entry"] / n }' "$3"
}

sched_stat() { # NAME FN ARGS...: FN under system-wide perf stat
	local name=$1 pid
	shift
	perf stat -a -x, -o "$logdir/$name.stat" -e sched:sched_switch,sched:sched_wakeup \
		-e syscalls:sys_enter_sched_yield -e irq:softirq_entry --filter 'vec == 3' &
	pid=$!
	sleep 0.5
	"$@"
	kill -INT "$pid"
	wait "$pid" || true
}

lat_sched_mtu() { # VETH_MTU
	local mtu=$1 i c name op env n=1000 rounds=1050 cols
	cols=$(lat_cols) # wccl: 1000 rounds + 50 warm-up; ib_write_lat: 1000
	for i in $(seq "${WCCL_LAT_REPEATS:-2}"); do
		sched_stat "ib-$mtu-$i" pt "ib-$mtu-$i" ib_write_lat -s 8 -n "$n"
		sched_counts "ib_write_lat mtu $mtu ($(col "ib-$mtu-$i" 5) us)" "$n" "$logdir/ib-$mtu-$i.stat"
		for c in $cols; do
			col_split "$c"
			# shellcheck disable=SC2086
			WP_ENV="$env" wrap_run "$wrap" sched_stat "$name-$mtu-$i" wp "$name-$mtu-$i" lat -s 8 --op "$op" -n "$n" -w 50 ${args//,/ }
			sched_counts "$name mtu $mtu ($(jget "$name-$mtu-$i" t_typical_us) us)" "$rounds" "$logdir/$name-$mtu-$i.stat"
		done
	done
}

# Mode lat-trace: one ftrace window (sched_switch, sched_wakeup, task
# migrations, NET_RX) of WCCL_LAT_TRACE_MS (default 20) ms, WCCL_LAT_TRACE_AT
# (default 3) s into a run of WCCL_LAT_TRACE_N (default 20000) rounds of
# ib_write_lat and of each column, the first WCCL_LAT_TRACE_MAX (default
# 600) events printed raw (and the SCHED lines with WCCL_PERF_SCHEDSTAT=1).
trace_win() { # NAME: in the background, one window into $logdir/NAME.trace
	local t=/sys/kernel/tracing
	sleep "${WCCL_LAT_TRACE_AT:-3}"
	echo 1 >$t/tracing_on
	sleep "$(awk -v m="${WCCL_LAT_TRACE_MS:-20}" 'BEGIN { print m / 1000 }')"
	echo 0 >$t/tracing_on
	cat $t/trace >"$logdir/$1.trace"
	echo >$t/trace
}

lat_trace_mtu() { # VETH_MTU
	local mtu=$1 c name op env n=${WCCL_LAT_TRACE_N:-20000} tp
	trace_win "ib-$mtu" &
	tp=$!
	pt "ib-$mtu" ib_write_lat -s 8 -n "$n"
	wait "$tp"
	echo "ib_write_lat mtu $mtu: $(col "ib-$mtu" 5) us"
	awk -v p="ib-$mtu: " -v m="${WCCL_LAT_TRACE_MAX:-600}" '!/^#/ && ++k <= m { print p $0 }' "$logdir/ib-$mtu.trace"
	for c in $(lat_cols); do
		col_split "$c"
		trace_win "$name-$mtu" &
		tp=$!
		# shellcheck disable=SC2086
		WP_ENV="$env" wrap_run "$wrap" wp "$name-$mtu" lat -s 8 --op "$op" -n "$n" -w 50 ${args//,/ }
		wait "$tp"
		echo "$name mtu $mtu: $(jget "$name-$mtu" t_typical_us) us"
		[ "${WCCL_PERF_SCHEDSTAT:-0}" = 0 ] || grep -h '^SCHED' "$logdir/$name-$mtu.client" "$logdir/$name-$mtu.server" || true
		awk -v p="$name-$mtu: " -v m="${WCCL_LAT_TRACE_MAX:-600}" '!/^#/ && ++k <= m { print p $0 }' "$logdir/$name-$mtu.trace"
	done
}

lat_trace_main() {
	local t=/sys/kernel/tracing
	mountpoint -q $t || mount -t tracefs nodev $t
	perf_guest_begin
	echo 0 >$t/tracing_on
	echo 4096 >$t/buffer_size_kb
	echo 1 >$t/events/sched/sched_switch/enable
	echo 1 >$t/events/sched/sched_wakeup/enable
	echo 1 >$t/events/sched/sched_migrate_task/enable
	echo 'vec == 3' >$t/events/irq/softirq_entry/filter
	echo 1 >$t/events/irq/softirq_entry/enable
	echo >$t/trace
	echo "unbound workqueue cpumask $(cat /sys/devices/virtual/workqueue/cpumask 2>/dev/null)"
	perf_each_mtu "${WCCL_LAT_MTUS:-1500 9000}" lat_trace_mtu
	echo "guest-perf lat-trace: $failures failure(s)"
	[ "$failures" = 0 ]
}

lat_sched_main() {
	mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
	mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug
	perf_guest_begin
	echo "preempt: $(cat /sys/kernel/debug/sched/preempt 2>/dev/null || echo '?')"
	[ -z "${WCCL_LAT_PREEMPT:-}" ] || echo "$WCCL_LAT_PREEMPT" >/sys/kernel/debug/sched/preempt
	echo "preempt now: $(cat /sys/kernel/debug/sched/preempt 2>/dev/null || echo '?'), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	perf_each_mtu "${WCCL_LAT_MTUS:-1500 9000}" lat_sched_mtu
	echo "guest-perf lat-sched: $failures failure(s)"
	[ "$failures" = 0 ]
}

case $mode in
suite) main ;;
lat-ab) lat_ab_main ;;
lat-sched) lat_sched_main ;;
lat-trace) lat_trace_main ;;
*) echo "guest-perf: unknown mode '$mode' (suite, lat-ab, lat-sched, lat-trace)" >&2; exit 2 ;;
esac
