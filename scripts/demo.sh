#!/usr/bin/env bash
# The main job (README Quick start): build wccl and run the local demo on
# built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=$(scripts/build.sh gcc)
exec "$dir/perf/wccl-perf" demo "$@"
