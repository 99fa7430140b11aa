#!/usr/bin/env bash
# End-to-end replay + ingest on the embedded broker, each stage its own process: `clv broker`, then
# `clv ingest` and `clv replay` started together (replay produces with backpressure). Prints the wall
# time from their start until ingest has applied every event sent (read from ingest's /metrics), the
# time of pandas computing the same features from the same file in one batch
# (scripts/bench/pandas_snapshot.py, when PANDAS names a Python with pandas), then checks
# that the snapshots from the store equal the offline ones for every customer at both cutoffs
# (`clv snapshot --compare-with` fails otherwise).
# Usage: scripts/bench-stream.sh <input: .parquet/.csv/.xlsx/.zip>   (build first: cargo build --release)
# REPLAY_ARGS="--max-lag 15000" passes options to replay.
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
INPUT=$1
W=$(mktemp -d)
PORT=${METRICS_PORT:-19464}
$CLV broker --state-dir $W/state --partitions 4 > $W/broker.out 2>&1 &
BROKER=$!
INGEST=
trap 'kill $BROKER $INGEST 2>/dev/null; rm -rf $W' EXIT
while [ ! -f $W/state/broker.addr ]; do sleep 0.1; done
# The clock starts as both processes start: ingest joins its group while replay reads and sends.
start=$(date +%s.%N)
RUST_LOG=warn $CLV ingest --state-dir $W/state --db $W/db --metrics-addr 127.0.0.1:$PORT > $W/ingest.out 2>&1 &
INGEST=$!
RUST_LOG=warn $CLV replay --state-dir $W/state --input $INPUT ${REPLAY_ARGS:-} | tee $W/replay.out
sent=$(grep -o '[0-9]* events sent' $W/replay.out | cut -d' ' -f1)
echo "replay done after $(echo "$(date +%s.%N) - $start" | bc) s"
applied() {
  curl -s http://127.0.0.1:$PORT/metrics | awk '/^clv_ingest_events_total/ {s += $2} END {print s + 0}'
}
while [ "$(applied)" -lt "$sent" ]; do
  kill -0 $INGEST 2>/dev/null || { echo "ingest ended early:"; tail -3 $W/ingest.out; exit 1; }
  sleep 0.02
done
end=$(date +%s.%N)
kill -TERM $INGEST; wait $INGEST || true
tail -1 $W/ingest.out
echo "all $sent events applied after $(echo "$end - $start" | bc) s"
if [ -n "${PANDAS:-}" ]; then
  p0=$(date +%s.%N)
  $PANDAS "$(dirname "$0")/bench/pandas_snapshot.py" $INPUT 2011-06-01 $W/pandas.parquet > /dev/null
  p1=$(date +%s.%N)
  echo "pandas: $(echo "$p1 - $p0" | bc) s; replay + ingest / pandas = $(echo "scale=2; ($end - $start) / ($p1 - $p0)" | bc)"
fi
for c in 2010-12-01 2011-06-01; do
  $CLV snapshot --input $INPUT --cutoff $c --out $W/offline-$c.parquet
  $CLV snapshot --db $W/db --cutoff $c --out $W/online-$c.parquet --compare-with $W/offline-$c.parquet
done
