#!/usr/bin/env bash
# run.sh TARGET CORPUS_DIR SECONDS: run a libFuzzer target for a bounded time
# on a scratch copy of its seed corpus (the committed seeds never change);
# crashes are kept under the build tree and fail the test.
set -euo pipefail
target=$1 seeds=$2 secs=$3
name=$(basename "$target")
work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$(dirname "$target")/crashes"
[ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
# Regression inputs first: every committed seed must pass on its own.
"$target" -runs=0 "$work/corpus" >/dev/null 2>&1 || { "$target" -runs=0 "$work/corpus"; exit 1; }
exec "$target" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$(dirname "$target")/crashes/$name-" "$work/corpus"
