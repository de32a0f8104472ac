#!/usr/bin/env bash
# Configure (once) and build one flavour of wccl.
#   scripts/build.sh [gcc|clang|asan]   -> build/, build-clang/, build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-gcc}
case "$flavour" in
gcc) dir=build; env=(CC=gcc); opts=() ;;
clang) dir=build-clang; env=(CC=clang); opts=() ;;
asan)
	# ASan+UBSan; UBSan findings abort so a test cannot pass over one.
	dir=build-asan; env=(CC=gcc)
	opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all)
	;;
*) echo "build.sh: unknown flavour '$flavour' (gcc, clang, asan)" >&2; exit 2 ;;
esac

if [ ! -f "$dir/build.ninja" ]; then
	env "${env[@]}" meson setup "$dir" --werror "${opts[@]}" >"$dir.setup.log" 2>&1 ||
		{ cat "$dir.setup.log" >&2; exit 1; }
	rm -f "$dir.setup.log"
fi
ninja -C "$dir" -j"$(nproc)" >/dev/null || ninja -C "$dir" -j1
echo "$dir"
