#!/usr/bin/env bash
# Regenerate the tunables table in docs/env.md from the code's list
# (core/param_list.h via wccl-info). The unit test env-doc checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(scripts/build.sh gcc)
{
	sed '/^<!-- tunables:begin -->$/q' docs/env.md
	"$dir/tools/wccl-info" --markdown
	sed -n '/^<!-- tunables:end -->$/,$p' docs/env.md
} >docs/env.md.new
mv docs/env.md.new docs/env.md
