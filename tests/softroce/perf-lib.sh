# shellcheck shell=bash disable=SC2154  # the caller sets logdir, port, wperf
# Guest helpers for the verbs benchmarks (sourced by guest-perf.sh and
# guest-wan-perf.sh after netns.sh): perftest and wccl-perf pairs between
# peer 1 (server, rxe1) and peer 0 (client, rxe0). Callers set logdir, port,
# wperf and failures, and bring the link up with perf_net_up (g0, g1); WP_ENV ("K=V ...") goes to both wccl-perf
# sides (e.g. WCCL_VERBS_QPS). For perftest and wccl-perf alike: PIN="C/S"
# pins the client to vCPU C and the server to vCPU S (taskset), NICE=N runs
# both at that nice level, IDLE=1 under SCHED_IDLE (chrt -i 0).
WP_ENV=${WP_ENV:-}
PIN=${PIN:-} NICE=${NICE:-} IDLE=${IDLE:-}

run_prefix() { # 0|1: the command words for the client (0) or server (1)
	if [ -n "$PIN" ]; then
		if [ "$1" = 0 ]; then echo "taskset -c ${PIN%/*}"; else echo "taskset -c ${PIN#*/}"; fi
	fi
	[ -z "$NICE" ] || echo "nice -n $NICE"
	[ -z "$IDLE" ] || echo "chrt -i 0"
}

wait_listen() { # I PORT: perftest's TCP handshake socket is up
	local end=$((SECONDS + 15))
	while [ "$SECONDS" -lt "$end" ]; do
		wccl_ns "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# pt NAME TOOL ARGS...: one perftest pair (server peer 1, client peer 0);
# prints the client's result row into $logdir/NAME.row.
pt() {
	local name=$1 tool=$2 spid rc
	shift 2
	for _ in 1 2 3; do
		rc=0
		# shellcheck disable=SC2046,SC2086
		timeout 120 $(run_prefix 1) $(wccl_ns_prefix 1) "$tool" -d rxe1 -x "$g1" -F -u 18 "$@" \
			>"$logdir/$name.server" 2>&1 &
		spid=$!
		wait_listen 1 "$port" || rc=1
		# shellcheck disable=SC2046,SC2086
		[ "$rc" = 0 ] && { timeout 120 $(run_prefix 0) $(wccl_ns_prefix 0) "$tool" -d rxe0 -x "$g0" -F -u 18 "$@" \
			"$(wccl_addr 1)" >"$logdir/$name.client" 2>&1 || rc=$?; }
		[ "$rc" = 0 ] || kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		[ "$rc" = 0 ] && break
		echo "retry $name (exit $rc)"
		sleep 1
	done
	if [ "$rc" != 0 ]; then
		echo "FAIL $name: $tool $*"
		sed 's/^/  client: /' "$logdir/$name.client"
		failures=$((failures + 1))
		echo 0 >"$logdir/$name.val"
		return
	fi
	awk '/^ *#bytes/ { h = 1; next } h && NF { print; exit }' "$logdir/$name.client" >"$logdir/$name.row"
}

# wp NAME bw|lat ARGS...: wccl-perf server as peer 1 (rxe1), client peer 0.
# Two attempts, as pt() gives perftest three: rxe in the TCG guest has
# stalled for seconds at a time (ib_write_bw once measured 0 Gb/s in the
# same minute a wccl-perf run lost its peer). A retry prints the failed
# attempt's logs, so it is seen; a second failure fails the run.
wp() {
	local name=$1 attempt
	for attempt in 1 2; do
		wp_once "$@" && return 0
		sed 's/^/  client: /' "$logdir/$name.client"
		sed 's/^/  server: /' "$logdir/$name.server"
		if [ "$attempt" = 1 ]; then
			echo "retry $name (wccl-perf failed, logs above)"
			sleep 1
		fi
	done
	echo "FAIL $name: wccl-perf ${*:2}"
	failures=$((failures + 1))
}

wp_once() {
	local name=$1 test=$2 spid addr rc=0 end
	shift 2
	# shellcheck disable=SC2046,SC2086
	env $WP_ENV WCCL_VERBS_DEVICE=rxe1 timeout 120 $(run_prefix 1) $(wccl_ns_prefix 1) "$wperf" "$test" --provider verbs \
		--json >"$logdir/$name.server" 2>&1 &
	spid=$!
	end=$((SECONDS + 20))
	addr=
	while [ -z "$addr" ] && [ "$SECONDS" -lt "$end" ]; do
		addr=$(sed -n 's/.*"listening": "\([^"]*\)".*/\1/p' "$logdir/$name.server")
		[ -n "$addr" ] || sleep 0.1
	done
	if [ -z "$addr" ]; then
		rc=1
		echo "server did not listen" >"$logdir/$name.client"
	else
		# shellcheck disable=SC2046,SC2086
		env $WP_ENV WCCL_VERBS_DEVICE=rxe0 timeout 120 $(run_prefix 0) $(wccl_ns_prefix 0) "$wperf" "$test" "$addr" --json "$@" \
			>"$logdir/$name.client" 2>&1 || rc=$?
	fi
	[ "$rc" = 0 ] || kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	return "$rc"
}

jget() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" "$logdir/$1.client" | tail -n 1; }
col() { awk -v c="$2" '{ print $c }' "$logdir/$1.row" 2>/dev/null; }
median() { printf '%s\n' "$@" | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print "?" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a > 0) printf "%.2f", a / b; else print "n/a" }'; }

# The guest's preamble for every perf script: what runs where, the rxe
# modules, quiet logs unless asked.
perf_guest_begin() {
	echo "kernel $(uname -r), $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	wccl_modules
	export WCCL_DEBUG=${WCCL_DEBUG:-WARN}
}

# The veth pair at MTU $1 with an rxe on each end; sets g0 / g1, the GID
# indexes pt() and wp() pass to the peers.
perf_net_up() {
	wccl_net_up "$1"
	g0=$(wccl_gid_index rxe0)
	g1=$(wccl_gid_index rxe1)
}

# For each veth MTU in $1 (a list): the link up, FN MTU, the link down.
perf_each_mtu() { # MTUS FN
	local mtu
	for mtu in $1; do
		perf_net_up "$mtu"
		echo "== veth MTU $mtu, rxe mode $(wccl_net_mode), rxe0 $(ibv_devinfo -d rxe0 | awk '/active_mtu/ { print $2 }')"
		"$2" "$mtu"
		wccl_net_down
	done
}
