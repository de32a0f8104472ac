#!/usr/bin/env bash
# docs/env.md must list every tunable exactly as wccl-info describes it, so
# the one place the knobs are documented cannot drift from the code.
set -euo pipefail
info=$1 doc=$2
missing=0
while IFS= read -r row; do
	case "$row" in "| \`WCCL_"*) ;; *) continue ;; esac
	if ! grep -qxF -- "$row" "$doc"; then
		echo "docs/env.md lacks or differs on: $row"
		missing=1
	fi
done < <("$info" --markdown)
[ "$missing" -eq 0 ] && echo "docs/env.md lists all $("$info" --markdown | grep -c '^| `WCCL_') tunables"
exit "$missing"
