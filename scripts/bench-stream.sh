#!/usr/bin/env bash
# End-to-end replay + ingest on the embedded broker, each stage its own process; prints the wall time
# and compares the snapshots from the store with the offline ones (their sums print side by side).
# Usage: scripts/bench-stream.sh <input: .parquet/.csv/.xlsx/.zip>   (build first: cargo build --release)
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
INPUT=$1
W=$(mktemp -d)
$CLV broker --state-dir $W/state --partitions 4 > $W/broker.out 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; rm -rf $W' EXIT
while [ ! -f $W/state/broker.addr ]; do sleep 0.1; done
start=$(date +%s.%N)
RUST_LOG=warn $CLV ingest --state-dir $W/state --db $W/db --metrics-addr 127.0.0.1:0 > $W/ingest.out 2>&1 &
INGEST=$!
RUST_LOG=warn $CLV replay --state-dir $W/state --input $INPUT
kill -TERM $INGEST; wait $INGEST || true
RUST_LOG=warn $CLV ingest --state-dir $W/state --db $W/db --until-caught-up --metrics-addr 127.0.0.1:0
end=$(date +%s.%N)
cat $W/ingest.out | tail -1
echo "wall $(echo "$end - $start" | bc) s"
for c in 2010-12-01 2011-06-01; do
  $CLV snapshot --db $W/db --cutoff $c --out $W/online-$c.parquet
  $CLV snapshot --input $INPUT --cutoff $c --out $W/offline-$c.parquet
done
