#!/usr/bin/env bash
# Every function the public headers declare is exported by libwccl.so, and
# nothing else is (internal helpers stay internal): the symbol map and the
# headers agree.
set -euo pipefail
lib=$1 incdir=$2
want=$(grep -hoE '^\s*(int|void|const char \*|struct [a-z_]+ \*|size_t|uint[0-9]+_t)\s*\**wccl_[a-z_0-9]+\(' "$incdir"/*.h |
	grep -oE 'wccl_[a-z_0-9]+' | sort -u)
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TW]$/ {print $3}' | sed 's/@.*//' | sort -u)
missing=$(comm -23 <(echo "$want") <(echo "$have"))
extra=$(comm -13 <(echo "$want") <(echo "$have"))
[ -z "$missing" ] || { echo "declared but not exported:"; echo "$missing"; }
[ -z "$extra" ] || { echo "exported but not declared in include/wccl:"; echo "$extra"; }
[ -z "$missing$extra" ] && echo "libwccl.so exports exactly the $(echo "$want" | wc -l) public functions"
[ -z "$missing$extra" ]
