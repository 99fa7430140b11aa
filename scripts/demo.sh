#!/usr/bin/env bash
# The main job end to end on one machine. Today: get the data (the real file if you have it, else a
# generated one), import it, and write the point-in-time snapshot at 2011-06-01.
#   DATA=path/to/online_retail_II.xlsx|.csv|.zip  scripts/demo.sh     # use your copy of the data
#   scripts/demo.sh                                                   # data/raw/ if present, else synthetic
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p clv
target_dir=${CARGO_TARGET_DIR:-target}
clv="$target_dir/release/clv"

data=${DATA:-}
if [[ -z $data ]]; then
  for candidate in data/raw/online_retail_II.zip data/raw/online_retail_II.xlsx; do
    [[ -f $candidate ]] && data=$candidate && break
  done
fi
if [[ -z $data ]]; then
  echo "demo: no data/raw/online_retail_II.zip (get it with: $clv data download); using generated data" >&2
  data=data/synthetic/online_retail_synthetic.csv
  "$clv" data generate --out "$data"
fi

"$clv" data import "$data" --out data/online_retail_II.parquet
"$clv" snapshot --cutoff 2011-06-01 --horizon-months 6 \
  --input data/online_retail_II.parquet --out data/snapshots/snapshot_2011-06-01.parquet
echo "demo: snapshot written to data/snapshots/snapshot_2011-06-01.parquet"
