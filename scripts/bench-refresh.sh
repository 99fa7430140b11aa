#!/usr/bin/env bash
# The scorer's refresh after a few changed customers, end to end on the embedded broker: `clv broker`,
# `clv ingest` and `clv replay` of the input, then `clv serve` over that store with the registry
# given; once every customer is scored, kcat produces one purchase for each of N existing customers
# (dated on the watermark's day, so `as_of` stays), and the script reads from the scorer's /metrics
# how long the refresh that took them in lasted (`clv_scorer_refresh_duration_seconds`) and how many
# customers it rescored.
# Usage: scripts/bench-refresh.sh <input: .parquet/.csv> <models dir> [changed customers, default 100]
# (build first: cargo build --release; needs kcat and curl). CLV=<binary> measures another build.
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
INPUT=$1
MODELS=$2
CHANGED=${3:-100}
W=$(mktemp -d)
PORT=${SERVE_PORT:-18080}
$CLV broker --state-dir $W/state --partitions 4 > $W/broker.out 2>&1 &
BROKER=$!
INGEST= SERVE=
trap 'kill $BROKER $INGEST $SERVE 2>/dev/null; rm -rf $W' EXIT
while [ ! -f $W/state/broker.addr ]; do sleep 0.1; done
BROKERS=$(cat $W/state/broker.addr)
IPORT=${INGEST_METRICS_PORT:-19465}
RUST_LOG=warn $CLV ingest --state-dir $W/state --db $W/db --metrics-addr 127.0.0.1:$IPORT > $W/ingest.out 2>&1 &
INGEST=$!
RUST_LOG=warn $CLV replay --state-dir $W/state --input $INPUT | tee $W/replay.out | tail -1
sent=$(grep -o '[0-9]* events sent' $W/replay.out | cut -d' ' -f1)
applied() {
  curl -s http://127.0.0.1:$IPORT/metrics | awk '/^clv_ingest_events_total/ {s += $2} END {print s + 0}'
}
while [ "$(applied)" -lt "$sent" ]; do sleep 0.2; done
echo "ingest applied all $sent events"
RUST_LOG=info $CLV serve --db $W/db --models-dir $MODELS --listen 127.0.0.1:$PORT \
  --refresh-seconds 0.2 > $W/serve.out 2>&1 &
SERVE=$!
metric() { curl -s http://127.0.0.1:$PORT/metrics | awk -v m="$1" '$1 == m {print $2}'; }
served=$(date +%s.%N)
until curl -sf http://127.0.0.1:$PORT/ready > /dev/null; do sleep 0.2; done
echo "scorer ready $(echo "$(date +%s.%N) - $served" | bc | cut -c1-5) s after it started"
sleep 2
now=$(metric clv_scorer_customers)
count0=$(metric clv_scorer_refresh_duration_seconds_count)
sum0=$(metric clv_scorer_refresh_duration_seconds_sum)
echo "ready: $now customers scored; $count0 refreshes so far, $(echo "$sum0 / $count0" | bc -l | cut -c1-6) s each on average"
grep -o 'seconds=[0-9.]*' $W/serve.out | tail -1 | sed 's/^/last full scoring: /' || true
# N existing customers from the top list (any N would do), one purchase each, on the watermark's day.
wm=$(curl -s http://127.0.0.1:$PORT/ready | sed 's/.*"as_of":"\([0-9-]*\)".*/\1/')
day=$(date -u -d "$wm - 1 day" +%Y-%m-%d)
curl -s "http://127.0.0.1:$PORT/customers/top.csv?k=$CHANGED" | tail -n +2 | cut -d, -f2 > $W/ids
i=0
while read -r id; do
  i=$((i + 1))
  echo "$id|{\"schema_version\":1,\"event_id\":\"bench-refresh:$i:$RANDOM\",\"customer_id\":$id,\"invoice\":\"99$i\",\"stock_code\":\"BENCH\",\"quantity\":1,\"invoice_date\":\"${day}T00:00:01Z\",\"price\":1.0}"
done < $W/ids | kcat -P -b "$BROKERS" -t transactions -K '|' -X partitioner=murmur2_random
# Wait for the refresh that rescored them.
while [ "$(metric clv_scorer_refresh_duration_seconds_count)" = "$count0" ]; do sleep 0.05; done
sleep 1
count1=$(metric clv_scorer_refresh_duration_seconds_count)
sum1=$(metric clv_scorer_refresh_duration_seconds_sum)
echo "after $CHANGED changed customers: $((count1 - count0)) refresh(es), $(echo "($sum1 - $sum0) / ($count1 - $count0)" | bc -l | cut -c1-8) s each"
grep 'clv_scorer_rescored_customers_total' <(curl -s http://127.0.0.1:$PORT/metrics) || echo "(no clv_scorer_rescored_customers_total: every refresh rescores everyone)"
grep VmHWM /proc/$SERVE/status | sed 's/^/scorer peak RSS: /' 
