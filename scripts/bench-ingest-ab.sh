#!/usr/bin/env bash
# Two builds of clv side by side on the stream: `scripts/bench-scale.sh` (STAGES=stream) with each,
# alternating A, B, A, B... so that a slow spell of a shared machine falls on both. Prints per run
# the wall time, ingest's CPU (user + system, `/usr/bin/time`) per input line, its peak RSS, and its
# batches' fold and write seconds (from /metrics).
# Usage: scripts/bench-ingest-ab.sh <clv A> <clv B> <input.parquet> [rounds, default 2]
#   e.g. with syn10.parquet from `clv data generate --scale 10` (a run takes ~40 s).
set -euo pipefail
A=$(realpath "$1")
B=$(realpath "$2")
INPUT=$(realpath "$3")
ROUNDS=${4:-2}
W=$(mktemp -d)
trap 'rm -rf $W' EXIT
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    clv=$A
    [ $side = B ] && clv=$B
    rm -rf "$W/run"
    CLV=$clv W=$W/run STAGES=stream "$(dirname "$0")/bench-scale.sh" "$INPUT" ab > $W/out 2>&1 \
      || { echo "$side failed:"; tail -5 $W/out; exit 1; }
    lines=$(grep -o 'replayed [0-9]* lines' $W/out | cut -d' ' -f2)
    wall=$(grep -o 'replay + ingest | [0-9.]* s' $W/out | grep -o '[0-9.]* s')
    cpu=$(awk -v n="$lines" '/User time/ {u = $4} /System time/ {s = $4}
      END {printf "%.1f s = %.2f us/line", u + s, (u + s) / n * 1e6}' $W/run/ingest.time)
    stage() { awk -v s="$1" -F'[ }]' '$0 ~ "stage=\"" s "\"" && /_sum/ {printf "%.1f s", $NF}' $W/run/ingest.stages; }
    rss=$(awk '/Maximum resident/ {printf "%.0f MB", $6 / 1024}' $W/run/ingest.time)
    echo "round $round $side ($(basename "$clv")): wall $wall, ingest CPU $cpu, RSS $rss, fold $(stage fold), write $(stage write)"
  done
done
