#!/usr/bin/env bash
# The full dieharder battery on one stream of the stream tool, as recorded in
# docs/dieharder.md:
#   bench/dieharder_full.sh NAME [stream tool arguments...]
# writes docs/dieharder/NAME.txt (dieharder's output with the command, start and
# end times as comment lines), then python bench/dieharder_report.py rebuilds
# docs/dieharder.md from every docs/dieharder/*.txt. Hours of CPU per stream.
# TESTS="0 8 100" runs those tests (dieharder -d N, each on the stream from its
# start) instead of the whole battery.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
out=docs/dieharder/$name.txt
args="$*"
tests=${TESTS:-}
{
    if [ -z "$tests" ]; then
        echo "# command: python -m dropout_fast.tools.stream $args | dieharder -g 200 -a"
    else
        echo "# command: python -m dropout_fast.tools.stream $args | dieharder -g 200 -d N, N in $tests"
    fi
    echo "# start: $(date -u +%FT%TZ)"
} > "$out"
start=$(date +%s)
# dieharder stops reading when it is done; the tool then exits quietly.
if [ -z "$tests" ]; then
    python -m dropout_fast.tools.stream "$@" | dieharder -g 200 -a >> "$out" 2>&1 || true
else
    for d in $tests; do
        python -m dropout_fast.tools.stream "$@" | dieharder -g 200 -d "$d" >> "$out" 2>&1 || true
    done
fi
echo "# end: $(date -u +%FT%TZ) elapsed_s: $(( $(date +%s) - start ))" >> "$out"
