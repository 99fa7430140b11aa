#!/usr/bin/env bash
# The main job end to end on one machine, on the embedded default (`clv demo`): data -> embedded
# Kafka -> ingest -> RocksDB -> trained, promoted model -> HTTP scorer on 127.0.0.1:8080; Ctrl-C stops.
#   DATA=path/to/online_retail_II.xlsx|.zip|.csv|.parquet scripts/demo.sh   # your copy of the data
#   scripts/demo.sh          # data/raw/online_retail_II.zip if present (clv data download), else generated
#   DEMO_ARGS=--fresh scripts/demo.sh                                       # start over
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
cargo build --release --locked --workspace
clv="${CARGO_TARGET_DIR:-target}/release/clv"

args=()
if [[ -n ${DATA:-} ]]; then
  args+=(--data "$DATA")
elif [[ ! -f data/raw/online_retail_II.zip && ! -f data/raw/online_retail_II.xlsx ]]; then
  echo "demo: no data/raw/online_retail_II.zip (get it with: $clv data download); using generated data" >&2
  args+=(--synthetic)
fi
RUST_LOG=${RUST_LOG:-warn} exec "$clv" demo "${args[@]}" ${DEMO_ARGS:-}
