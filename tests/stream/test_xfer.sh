#!/usr/bin/env bash
# End-to-end wccl-xfer on loopback. usage: test_xfer.sh WCCL_XFER CASE
# Exit 0 pass, 1 fail, 77 skip (a case that needs root or a provider).
set -euo pipefail
xfer=$1 case=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/wccl-xfer-test.XXXXXX")
pids=() mounts=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
json() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])" "$@"; }
mkfile() { head -c "$2" /dev/urandom >"$1"; }
same() { cmp "$1" "$2" || fail "$2 differs from $1"; }
need_root() { [ "$(id -u)" = 0 ] || { echo "SKIP: needs root for mount"; exit 77; }; }

# A receiver daemon in the background; its address lands in $work/addr.
start_recv() {
	rm -f "$work/addr"
	"$xfer" recv "$1" --listen 127.0.0.1:0 --addr-file "$work/addr" \
		>"$work/recv.out" 2>"$work/recv.err" &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.05; done
	[ -s "$work/addr" ] || fail "receiver did not start: $(cat "$work/recv.err")"
	addr=$(cat "$work/addr")
}

mkdir -p "$work/src" "$work/dst"
case $case in
files | files-shm)
	prov=()
	[ "$case" = files-shm ] && prov=(--provider shm)
	for sz in 1 $((7 * 1048576 + 3)) $((64 * 1048576)) 0; do
		mkfile "$work/src/f$sz" "$sz"
		for streams in "" "--streams 3"; do
			rm -f "$work/dst/f$sz"
			# shellcheck disable=SC2086
			"$xfer" --local "$work/src/f$sz" "$work/dst" --json "${prov[@]}" \
				$streams >"$work/out.json" || fail "size $sz $streams"
			same "$work/src/f$sz" "$work/dst/f$sz"
			[ ! -e "$work/dst/f$sz.wccl-part" ] || fail "journal left behind"
			[ "$(json "$work/out.json" bytes)" = "$sz" ] || fail "byte count: $(cat $work/out.json)"
			echo "ok size $sz ${streams:-auto streams}: $(json "$work/out.json" goodput_mbps) Mbit/s"
		done
	done
	;;
probe-first)
	# The sender's connections open together, so the receiver may accept
	# the path probe's before data connections; the hook makes it first.
	# The receiver must still give the last data connection its buffers
	# (it refused it with "join without a matching hello" when it went
	# by accept order).
	mkfile "$work/src/f" $((48 * 1048576 + 11))
	WCCL_STREAM_TEST_PROBE_FIRST=1 WCCL_STREAM_CHUNK_BYTES=262144 \
		"$xfer" --local "$work/src/f" "$work/dst" --streams 15 --json \
		>"$work/out.json" 2>"$work/err" || fail "transfer: $(cat "$work/err")"
	same "$work/src/f" "$work/dst/f"
	n=$(json "$work/out.json" streams)
	[ "$n" -ge 2 ] || fail "only $n data connection(s)"
	echo "ok: probe connection accepted first, $n data connections, file identical"
	;;
corrupt)
	mkfile "$work/src/f" $((7 * 1048576 + 3))
	WCCL_STREAM_TEST_CORRUPT=3 "$xfer" --local "$work/src/f" "$work/dst" --json \
		>"$work/out.json" 2>"$work/err" || fail "transfer: $(cat "$work/err")"
	same "$work/src/f" "$work/dst/f"
	[ "$(json "$work/out.json" crc_errors)" = 1 ] || fail "crc_errors != 1"
	[ "$(json "$work/out.json" retransmits)" = 1 ] || fail "retransmits != 1"
	grep -q "chunk 3 .*failed its crc32c" "$work/err" || fail "receiver did not log the bad chunk"
	echo "ok: corrupted chunk 3 detected, re-sent, file identical"
	;;
resume)
	# (a) the sender drops its connections after 20 chunks (test hook)
	mkfile "$work/src/f" $((64 * 1048576 + 5))
	start_recv "$work/dst"
	WCCL_STREAM_TEST_DROP_AFTER=20 "$xfer" send "$work/src/f" "$addr" --json \
		>"$work/out1.json" 2>"$work/err1" && fail "hooked sender succeeded"
	grep -q "dropped the connection" "$work/err1" || fail "no drop: $(cat "$work/err1")"
	[ -e "$work/dst/f.wccl-part" ] || fail "no journal after the drop"
	"$xfer" send "$work/src/f" "$addr" --resume --json >"$work/out2.json" ||
		fail "resume failed"
	same "$work/src/f" "$work/dst/f"
	skipped=$(json "$work/out2.json" bytes_skipped) sent=$(json "$work/out2.json" bytes)
	[ "$skipped" -ge $((20 * 1048576)) ] || fail "resume kept only $skipped bytes"
	[ $((skipped + sent)) = $((64 * 1048576 + 5)) ] || fail "skipped $skipped + sent $sent != size"
	[ ! -e "$work/dst/f.wccl-part" ] || fail "journal left behind"
	echo "ok (hook): kept $skipped bytes, re-sent $sent"
	# (b) the sender process is killed (SIGKILL) mid-transfer
	rm -f "$work/dst/f"
	"$xfer" send "$work/src/f" "$addr" --rate 150M >/dev/null 2>&1 &
	sp=$!
	for _ in $(seq 100); do
		sleep 0.05
		[ -e "$work/dst/f.wccl-part" ] && [ "$(stat -c %s "$work/dst/f.wccl-part")" -gt 64 ] &&
			python3 - "$work/dst/f.wccl-part" <<'PY' && break
import struct, sys
d = open(sys.argv[1], 'rb').read()
sys.exit(0 if struct.unpack_from('<Q', d, 48)[0] >= 8 else 1)
PY
	done
	kill -9 "$sp" 2>/dev/null || fail "sender finished before it could be killed"
	wait "$sp" 2>/dev/null || true
	sleep 0.3
	"$xfer" send "$work/src/f" "$addr" --resume --json >"$work/out3.json" ||
		fail "resume after kill failed"
	same "$work/src/f" "$work/dst/f"
	skipped=$(json "$work/out3.json" bytes_skipped) sent=$(json "$work/out3.json" bytes)
	[ "$skipped" -gt 0 ] || fail "nothing kept after the kill"
	[ "$sent" -lt $((64 * 1048576 + 5)) ] || fail "re-sent the whole file"
	echo "ok (kill -9): kept $skipped bytes, re-sent $sent"
	# (c) the first run's chunk size was pinned (64 KiB), the resume
	# picks its own (1 MiB on loopback): the receiver's journal sets the
	# size and what was verified is kept
	rm -f "$work/dst/f"
	WCCL_STREAM_TEST_DROP_AFTER=100 "$xfer" send "$work/src/f" "$addr" --chunk 65536 \
		>/dev/null 2>"$work/err4" && fail "hooked sender succeeded"
	"$xfer" send "$work/src/f" "$addr" --resume --json >"$work/out4.json" ||
		fail "resume with another chunk size failed"
	same "$work/src/f" "$work/dst/f"
	skipped=$(json "$work/out4.json" bytes_skipped) chunk=$(json "$work/out4.json" chunk_bytes)
	[ "$chunk" = 65536 ] || fail "resume used $chunk-byte chunks, not the journal's 65536"
	[ "$skipped" -ge $((100 * 65536)) ] || fail "resume kept only $skipped bytes"
	echo "ok (chunk size from the journal): kept $skipped bytes"
	;;
diskfull)
	need_root
	mkdir "$work/small"
	mount -t tmpfs -o size=4m tmpfs "$work/small" || { echo "SKIP: cannot mount tmpfs"; exit 77; }
	mounts+=("$work/small")
	mkfile "$work/src/big" $((7 * 1048576 + 3))
	if "$xfer" --local "$work/src/big" "$work/small" --json >"$work/out.json" 2>"$work/err"; then
		fail "transfer into a 4 MiB tmpfs succeeded"
	fi
	grep -q "send .* failed: receiver .*writing .*big.*No space left on device" "$work/err" ||
		fail "sender error does not name the receiver and the cause: $(cat "$work/err")"
	[ -e "$work/small/big.wccl-part" ] || fail "journal not kept"
	v=$(python3 -c "import struct,sys; print(struct.unpack_from('<Q', open(sys.argv[1],'rb').read(), 48)[0])" "$work/small/big.wccl-part")
	[ "$v" -ge 1 ] || fail "no verified chunk kept"
	# what was kept is really the source's bytes
	cmp -n $((v * 1048576)) "$work/src/big" "$work/small/big" || true
	echo "ok: $(grep 'send' "$work/err" | head -1)"
	echo "ok: journal keeps $v verified chunks"
	;;
unwritable)
	if [ "$(id -u)" = 0 ]; then
		mkdir "$work/ro"
		mount -t tmpfs -o ro tmpfs "$work/ro" || { echo "SKIP: cannot mount"; exit 77; }
		mounts+=("$work/ro")
		dir=$work/ro
	else
		mkdir "$work/ro" && chmod 555 "$work/ro"
		dir=$work/ro
	fi
	mkfile "$work/src/f" 100000
	if "$xfer" --local "$work/src/f" "$dir" 2>"$work/err"; then fail "write into $dir succeeded"; fi
	grep -Eq "send .* failed: receiver .*(Read-only file system|Permission denied)" "$work/err" ||
		fail "unclear error: $(cat "$work/err")"
	echo "ok: $(grep 'send' "$work/err" | head -1)"
	;;
symlink)
	# The receive directory may hold links planted by someone else: no
	# write goes through one (data file or journal).
	mkfile "$work/src/f" 100000
	mkfile "$work/src/g" 100000
	echo keep >"$work/outside"
	echo keep >"$work/outside2"
	ln -s "$work/outside" "$work/dst/f"
	ln -s "$work/outside2" "$work/dst/g.wccl-part"
	if "$xfer" --local "$work/src/f" "$work/dst" 2>"$work/err"; then
		fail "wrote through a symlink"
	fi
	grep -q "f: a symbolic link, not written through" "$work/err" ||
		fail "unclear error: $(cat "$work/err")"
	if "$xfer" --local "$work/src/g" "$work/dst" 2>"$work/err2"; then
		fail "journal written through a symlink"
	fi
	grep -q "g.wccl-part: a symbolic link" "$work/err2" ||
		fail "unclear error: $(cat "$work/err2")"
	[ "$(cat "$work/outside")" = keep ] || fail "$work/outside overwritten"
	[ "$(cat "$work/outside2")" = keep ] || fail "$work/outside2 overwritten"
	echo "ok: $(grep 'send' "$work/err" | head -1)"
	;;
stale-journal)
	# A journal whose data file went away, changed size or changed
	# bytes must not make every --resume fail.
	mkfile "$work/src/f" $((8 * 1048576 + 5))
	start_recv "$work/dst"
	drop() {
		WCCL_STREAM_TEST_DROP_AFTER=4 "$xfer" send "$work/src/f" "$addr" \
			--chunk 1048576 >/dev/null 2>&1 && fail "hooked sender succeeded"
		[ -e "$work/dst/f.wccl-part" ] || fail "no journal after the drop"
	}
	drop
	rm "$work/dst/f"
	"$xfer" send "$work/src/f" "$addr" --resume --chunk 1048576 \
		2>"$work/err" >/dev/null || fail "resume after rm: $(cat "$work/err")"
	same "$work/src/f" "$work/dst/f"
	echo "ok: data file deleted, resume started over"
	drop
	head -c 3000000 /dev/zero >>"$work/dst/f"
	"$xfer" send "$work/src/f" "$addr" --resume --chunk 1048576 \
		2>"$work/err" >/dev/null || fail "resume after grow: $(cat "$work/err")"
	same "$work/src/f" "$work/dst/f"
	echo "ok: data file longer, resume started over, no trailing bytes"
	drop
	# same size, other bytes where the journal says chunks are good
	dd if=/dev/zero of="$work/dst/f" bs=4096 count=1 conv=notrunc 2>/dev/null
	if "$xfer" send "$work/src/f" "$addr" --resume --chunk 1048576 \
		2>"$work/err" >/dev/null; then
		fail "resume over changed bytes succeeded"
	fi
	grep -q "earlier run do not match, journal .*deleted" "$work/err" ||
		fail "unclear error: $(cat "$work/err")"
	[ ! -e "$work/dst/f.wccl-part" ] || fail "bad journal kept"
	"$xfer" send "$work/src/f" "$addr" --resume --chunk 1048576 \
		2>"$work/err" >/dev/null || fail "resume after the verdict: $(cat "$work/err")"
	same "$work/src/f" "$work/dst/f"
	echo "ok: changed bytes: journal deleted with a reason, next resume works"
	;;
local-bad)
	# --local whose sender cannot start must not wait out the
	# receiver's 60 s accept timeout.
	SECONDS=0
	if timeout 30 "$xfer" --local "$work/src/missing" "$work/dst" 2>"$work/err"; then
		fail "missing file sent"
	fi
	grep -q "missing: No such file or directory" "$work/err" ||
		fail "unclear error: $(cat "$work/err")"
	if [ "$(id -u)" != 0 ]; then
		mkfile "$work/src/locked" 1000
		chmod 000 "$work/src/locked"
		timeout 30 "$xfer" --local "$work/src/locked" "$work/dst" 2>"$work/err2" &&
			fail "unreadable file sent"
	fi
	[ "$SECONDS" -lt 10 ] || fail "took $SECONDS s"
	echo "ok: failed in $SECONDS s: $(head -1 "$work/err")"
	;;
bad-args)
	# Numbers must be numbers in range, said so, before anything starts.
	for a in "--timeout 0" "--timeout 10x" "--timeout 99999999999" \
		"--streams 0" "--streams 3x" "--streams 17"; do
		# shellcheck disable=SC2086 # the option and its value
		if "$xfer" $a --local "$work/src/none" "$work/dst" 2>"$work/err"; then
			fail "$a accepted"
		fi
		grep -q "bad ${a%% *}" "$work/err" ||
			fail "$a: unclear error: $(cat "$work/err")"
	done
	# --timeout bounds how long a receiver waits for a sender.
	"$xfer" recv "$work/dst" --once --timeout 2 --addr-file "$work/addr" \
		2>"$work/err" >/dev/null &
	rpid=$!
	for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
	SECONDS=0
	wait "$rpid" && fail "receiver with nobody sending succeeded"
	[ "$SECONDS" -lt 10 ] || fail "--timeout 2 took $SECONDS s"
	echo "ok: bad numbers refused; --timeout 2 gave up in $SECONDS s"
	;;
io-stall-recv)
	# The receiver's disk hangs (the I/O thread stops 10 min before its
	# first write): it must give up within its timeout, tell the sender,
	# and return without waiting for the stuck thread.
	mkfile "$work/src/f" $((8 * 1048576))
	rm -f "$work/addr"
	WCCL_STREAM_TEST_IO_STALL_MS=600000 WCCL_TIMEOUT_MS=2000 \
		timeout 60 "$xfer" recv "$work/dst" --once --listen 127.0.0.1:0 \
		--addr-file "$work/addr" >/dev/null 2>"$work/recv.err" &
	rpid=$!
	pids+=("$rpid")
	for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.05; done
	SECONDS=0
	if WCCL_TIMEOUT_MS=20000 "$xfer" send "$work/src/f" "$(cat "$work/addr")" \
		2>"$work/err" >/dev/null; then
		fail "sent to a receiver whose disk hangs"
	fi
	rc=0
	wait "$rpid" || rc=$?
	[ "$rc" != 124 ] || fail "receiver hung (killed by timeout)"
	[ "$rc" != 0 ] || fail "receiver succeeded"
	grep -q "disk made no progress" "$work/recv.err" ||
		fail "receiver: unclear error: $(cat "$work/recv.err")"
	grep -q "disk made no progress" "$work/err" ||
		fail "sender: unclear error: $(cat "$work/err")"
	[ "$SECONDS" -lt 15 ] || fail "took $SECONDS s"
	echo "ok: both gave up in $SECONDS s: $(head -1 "$work/err")"
	;;
io-stall-send)
	# The sender's disk hangs before its first read: it must fail within
	# its timeout naming the file, not wait for the stuck thread.
	mkfile "$work/src/f" $((8 * 1048576))
	start_recv "$work/dst"
	SECONDS=0
	if WCCL_STREAM_TEST_IO_STALL_MS=600000 WCCL_TIMEOUT_MS=2000 timeout 60 \
		"$xfer" send "$work/src/f" "$addr" 2>"$work/err" >/dev/null; then
		fail "sent from a disk that hangs"
	fi
	grep -q "reading .*/f: the disk made no progress" "$work/err" ||
		fail "unclear error: $(cat "$work/err")"
	[ "$SECONDS" -lt 15 ] || fail "took $SECONDS s"
	echo "ok: gave up in $SECONDS s: $(head -1 "$work/err")"
	;;
verdict-close)
	# The receiver hangs up right after its verdict; the sender reads
	# the verdict late (test hook), when the close has reached it too,
	# and must report the transfer done, not the closed connection.
	mkfile "$work/src/f" $((3 * 1048576 + 11))
	for n in 1 4; do
		rm -f "$work/dst/f"
		WCCL_STREAM_TEST_FIN_WAIT_MS=2000 "$xfer" --local "$work/src/f" \
			"$work/dst" --streams $n --json >"$work/out.json" \
			2>"$work/err" || fail "transfer ($n streams): $(cat "$work/err")"
		same "$work/src/f" "$work/dst/f"
		[ "$(json "$work/out.json" ok)" = True ] || fail "not ok"
	done
	echo "ok: the verdict read after the receiver closed (1 and 4 streams)"
	;;
busy)
	# A second sender while the receiver serves a first waits its turn
	# (the receiver turns it away as busy; it tries again) and succeeds.
	mkfile "$work/src/a" $((16 * 1048576))
	mkfile "$work/src/b" $((3 * 1048576 + 7))
	start_recv "$work/dst"
	"$xfer" send "$work/src/a" "$addr" --rate 48M >/dev/null 2>"$work/err.a" &
	apid=$!
	for _ in $(seq 100); do
		[ -e "$work/dst/a.wccl-part" ] && break
		sleep 0.02
	done
	[ -e "$work/dst/a.wccl-part" ] || fail "the first transfer did not start"
	WCCL_DEBUG=INFO "$xfer" send "$work/src/b" "$addr" >/dev/null 2>"$work/err.b" ||
		fail "second sender: $(grep -v INFO "$work/err.b")"
	wait "$apid" || fail "first sender: $(cat "$work/err.a")"
	grep -q "busy with another transfer; again in" "$work/err.b" ||
		fail "the second sender was never turned away"
	same "$work/src/a" "$work/dst/a"
	same "$work/src/b" "$work/dst/b"
	echo "ok: the second sender waited $(grep -c 'again in' "$work/err.b") time(s)"
	;;
*) fail "unknown case $case" ;;
esac
