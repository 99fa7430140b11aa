#!/usr/bin/env bash
# `clv snapshot` beside pandas (scripts/bench/pandas_snapshot.py) on the same file, whole processes,
# run in alternating pairs so that a slow spell of a shared machine falls on both sides: prints each
# pair and the median of the per-pair ratios (pandas / clv), with clv's snapshot checked once against
# the first run's output. Usage: PANDAS=<python with pandas> scripts/bench-snapshot.sh <input.csv|.parquet>
# [cutoff, default 2011-06-01]; RUNS=15 pairs after one warm-up pair.   (build first: cargo build --release)
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
PANDAS=${PANDAS:?PANDAS must name a Python with pandas and pyarrow}
INPUT=$1
CUTOFF=${2:-2011-06-01}
RUNS=${RUNS:-15}
W=$(mktemp -d)
trap 'rm -rf $W' EXIT
ms() { local t0 t1; t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
clv() { $CLV snapshot --cutoff "$CUTOFF" --input "$INPUT" --out $W/clv.parquet; }
pandas() { $PANDAS "$(dirname "$0")/bench/pandas_snapshot.py" "$INPUT" "$CUTOFF" $W/pandas.parquet; }
clv > /dev/null; pandas > /dev/null
cp $W/clv.parquet $W/first.parquet
ratios=()
for i in $(seq "$RUNS"); do
  c=$(ms clv); p=$(ms pandas)
  r=$(echo "scale=2; $p / $c" | bc)
  ratios+=("$r")
  echo "pair $i: clv $c ms, pandas $p ms, ratio $r"
done
$CLV snapshot --cutoff "$CUTOFF" --input "$INPUT" --out $W/clv.parquet --compare-with $W/first.parquet > /dev/null
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
echo "$(basename "$INPUT"): pandas / clv, median of $RUNS pairs: $median"
