#!/usr/bin/env bash
# The forecast users get, judged the way they get it: at each cutoff C, the whole procedure on the
# data before C (`clv train` at that data's edge, exactly what `clv serve --as-of C` then serves;
# `clv/tests/train.rs` holds them equal customer by customer), scored on what every customer spent
# in the h months after C, beside BG/NBD + Gamma-Gamma fitted at C and the naive rule. One
# `clv train --backtest-cutoffs` run per horizon computes every cutoff (the folds they share once).
#
# Usage: scripts/bench-forecast.sh <input: the real data (.csv, .xlsx, .zip or normalised .parquet)>
# Environment: CUTOFFS (default the firsts of 2011-01 .. 2011-06), HORIZONS (default "6 3"),
# W=<work dir> (kept; default a temporary one). Build first: cargo build --release --workspace.
# Prints each run's backtest table; the whole output and each version's report.md stay in $W.
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
INPUT=$1
CUTOFFS=${CUTOFFS:-2011-01-01,2011-02-01,2011-03-01,2011-04-01,2011-05-01,2011-06-01}
HORIZONS=${HORIZONS:-6 3}
KEEP=${W:+yes}
W=${W:-$(mktemp -d)}
mkdir -p "$W"
[[ -n $KEEP ]] || trap 'rm -rf "$W"' EXIT

for h in $HORIZONS; do
  started=$(date +%s)
  RUST_LOG=warn /usr/bin/time -f "%e s, %M KB" -o "$W/time-$h" \
    "$CLV" train --input "$INPUT" --horizon-months "$h" --backtest-cutoffs "$CUTOFFS" \
    --models-dir "$W/models-$h" >"$W/train-$h.txt"
  echo "## horizon $h months ($(cat "$W/time-$h"); $(($(date +%s) - started)) s)"
  sed -n '/^backtests at several test cutoffs:/,/^at-risk list/p' "$W/train-$h.txt" | sed '$d'
done
