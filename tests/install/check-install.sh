#!/usr/bin/env bash
# `meson install` into a scratch root, then build and run a program against
# the installed headers, wccl.pc and libwccl.so (and the static library), as
# a user of the package would. Usage: check-install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --destdir "$root" --quiet >/dev/null

pc=$(find "$root" -name wccl.pc | head -n1)
[ -n "$pc" ] || { echo "check-install: no wccl.pc installed"; exit 1; }
for f in wccl.h transport.h comm.h coll.h errors.h params.h; do
	[ -n "$(find "$root" -path "*/include/wccl/$f")" ] ||
		{ echo "check-install: include/wccl/$f not installed"; exit 1; }
done
for t in wccl-info wccl-run wccl-perf; do
	[ -n "$(find "$root" -name "$t" -type f)" ] ||
		{ echo "check-install: $t not installed"; exit 1; }
done

cat >"$root/user.c" <<'C'
#include <stdio.h>
#include <wccl/wccl.h>
int main(void)
{
	/* Something from each public header. */
	struct wccl_config cfg = WCCL_CONFIG_INIT;
	printf("%d providers, %d tunables, %s, timeout %d\n",
	       wccl_provider_count(), wccl_param_count(),
	       wccl_strerror(WCCL_ETIMEDOUT), cfg.timeout_ms);
	return wccl_provider_count() > 0 ? 0 : 1;
}
C
# wccl.pc names /usr/local; the files are under $root. Take wccl's own
# directories from it and prefix them.
export PKG_CONFIG_PATH=$(dirname "$pc")
inc=$root$(pkg-config --variable=includedir wccl)
libdir=$root$(pkg-config --variable=libdir wccl)
# A user's compile flags are wccl's include path and nothing of the
# providers' (DPDK's -include/-march must not leak into users' builds).
cflags=$(pkg-config --cflags wccl)
case " $cflags " in
*" -I"*dpdk* | *-march* | *"-include "*)
	echo "check-install: wccl.pc leaks provider flags: $cflags"
	exit 1
	;;
esac
cc -Wall -Werror "$root/user.c" -o "$root/user" -I"$inc" -L"$libdir" -lwccl
LD_LIBRARY_PATH=$libdir "$root/user"
# Static libwccl with what Libs.private says it needs.
static_libs=$(pkg-config --static --libs wccl | sed 's/-L[^ ]*local[^ ]*//; s/-lwccl//')
cc -Wall -Werror "$root/user.c" -o "$root/user-static" -I"$inc" \
	"$libdir/libwccl.a" $static_libs
"$root/user-static" >/dev/null
echo "check-install: headers, wccl.pc, shared and static libwccl, tools: ok"
