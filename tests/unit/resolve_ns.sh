#!/usr/bin/env bash
# Runs test_resolve in a private mount and network namespace: lo only, and
# an /etc/resolv.conf (bind-mounted there alone) naming 127.0.0.1, where
# the test holds a DNS port that never answers. Nothing reaches any other
# host's resolver. usage: resolve_ns.sh TEST_RESOLVE. Exit 77 when the
# namespaces cannot be made (not root, no unshare(1) or ip(8)).
set -uo pipefail
bin=$1
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for namespaces"; exit 77; }
command -v unshare >/dev/null || { echo "SKIP: no unshare(1)"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
[ -f /etc/resolv.conf ] || { echo "SKIP: no /etc/resolv.conf file"; exit 77; }
conf=$(mktemp /tmp/wccl-resolv.XXXXXX)
trap 'rm -f "$conf"' EXIT
printf 'nameserver 127.0.0.1\noptions timeout:5 attempts:2\n' >"$conf"
unshare --mount --net bash -c '
	ip link set lo up || exit 77
	mount --bind "$1" /etc/resolv.conf || exit 77
	WCCL_RESOLVE_NS=1 exec "$2"' resolve "$conf" "$bin"
