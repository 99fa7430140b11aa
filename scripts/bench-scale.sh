#!/usr/bin/env bash
# Every stage at one scale, each its own process, on the embedded broker: prints one table row (as
# markdown) per stage with wall time, lines/s, peak RSS and disk, and checks the store against the
# offline snapshot for every customer at both cutoffs (the script fails otherwise).
#
# Usage: scripts/bench-scale.sh <input.parquet|.csv> [<label>]
#   (build first: cargo build --release). The generated inputs are made with
#   clv data generate --scale 10 --out syn10.parquet   (100: --scale 100 --out syn100.parquet)
# Environment: STAGES="stream check train serve refresh snapshot" (default all; refresh needs stream
# in the same run, CHANGED=<customers> for it, default 1000), W=<work dir> (kept; default
# a temporary one, removed), MODELS=<registry> for the serve stage (default: the one `train` wrote),
# PANDAS=<python with pandas and pyarrow> for the snapshot stage's side-by-side with
# scripts/bench/pandas_snapshot.py (skipped when absent), SNAPSHOT_CSV=<the same data as CSV> to compare
# on CSV as well.
# PERF=<seconds> records ingest with perf for that long, PERF_AT=<seconds> (default 3) after the
# stream starts. Results are appended to $W/results.md.
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
CLV=$(realpath "$CLV")
INPUT=$(realpath "$1")
LABEL=${2:-$(basename "$INPUT")}
STAGES=${STAGES:-stream check train serve refresh snapshot}
KEEP=${W:+yes}
W=${W:-$(mktemp -d)}
mkdir -p "$W"
PORT=${METRICS_PORT:-19464}
RESULTS=$W/results.md
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -z "$KEEP" ] && rm -rf "$W"
  return 0
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
rss_mb() { awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$1"; }
row() { echo "| $LABEL | $* |" | tee -a "$RESULTS"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

if has stream; then
  rm -rf "$W/state" "$W/db"
  $CLV broker --state-dir "$W/state" --partitions 4 > "$W/broker.out" 2>&1 &
  pids+=($!)
  BROKER=$!
  until [ -f "$W/state/broker.addr" ]; do
    kill -0 $BROKER 2>/dev/null || { echo "the broker ended at start:"; tail -3 "$W/broker.out"; exit 1; }
    sleep 0.1
  done
  RUST_LOG=warn /usr/bin/time -v -o "$W/ingest.time" \
    $CLV ingest --state-dir "$W/state" --db "$W/db" --metrics-addr 127.0.0.1:$PORT > "$W/ingest.out" 2>&1 &
  INGEST=$!
  pids+=($INGEST)
  # Ingest is a service that is running when data arrives: the clock starts once it has joined the
  # group and been assigned every partition (its lag gauges appear), not during its start-up.
  until [ "$(curl -s http://127.0.0.1:$PORT/metrics | grep -c '^clv_ingest_consumer_lag{')" -ge 4 ]; do
    kill -0 $INGEST 2>/dev/null || { echo "ingest ended at start:"; tail -3 "$W/ingest.out"; exit 1; }
    sleep 0.05
  done
  start=$(now)
  if [ -n "${PERF:-}" ]; then
    (sleep "${PERF_AT:-3}"; perf record -F 999 -g -o "$W/ingest.perf" -p "$(pgrep -P $INGEST)" -- sleep "$PERF" > /dev/null 2>&1) &
  fi
  RUST_LOG=warn /usr/bin/time -v -o "$W/replay.time" \
    $CLV replay --state-dir "$W/state" --input "$INPUT" ${REPLAY_ARGS:-} > "$W/replay.out"
  replay_s=$(since "$start")
  cat "$W/replay.out"
  lines=$(grep -o 'replayed [0-9]* lines' "$W/replay.out" | cut -d' ' -f2)
  sent=$(grep -o '[0-9]* events sent' "$W/replay.out" | cut -d' ' -f1)
  applied() {
    curl -s http://127.0.0.1:$PORT/metrics | awk '/^clv_ingest_events_total/ {s += $2} END {print s + 0}'
  }
  while [ "$(applied)" -lt "$sent" ]; do
    kill -0 $INGEST 2>/dev/null || { echo "ingest ended early:"; tail -3 "$W/ingest.out"; exit 1; }
    sleep 0.05
  done
  total_s=$(since "$start")
  curl -s http://127.0.0.1:$PORT/metrics | grep -E '^clv_ingest_batch_stage_seconds_(sum|count)' > "$W/ingest.stages" || true
  broker_cpu=$(awk '{printf "%.1f s", ($14 + $15) / 100}' /proc/${pids[0]}/stat)
  # Signal ingest itself, not /usr/bin/time (which reports once its child is gone).
  kill -TERM "$(pgrep -P $INGEST)"; wait $INGEST || true
  disk=$(du -sb "$W/db" | cut -f1)
  row "replay + ingest | $(printf %.1f "$total_s") s | $(echo "$lines / $total_s" | bc) lines/s ($(echo "$sent / $total_s" | bc) events/s; replay alone $(printf %.1f "$replay_s") s; CPU: replay $(awk '/Percent of CPU/ {print $NF}' "$W/replay.time"), broker $broker_cpu) | replay $(rss_mb "$W/replay.time") MB, ingest $(rss_mb "$W/ingest.time") MB | store $((disk / 1048576)) MB = $(echo "scale=1; $disk / $sent" | bc) bytes per event |"
fi

if has check; then
  for c in 2010-12-01 2011-06-01; do
    $CLV snapshot --input "$INPUT" --cutoff $c --out "$W/offline-$c.parquet" > /dev/null
    $CLV snapshot --db "$W/db" --cutoff $c --out "$W/online-$c.parquet" --compare-with "$W/offline-$c.parquet" | tail -1
  done
  row "store == offline snapshot | every customer, both cutoffs | | | |"
fi

if has train; then
  rm -rf "$W/models"
  start=$(now)
  /usr/bin/time -v -o "$W/train.time" $CLV train --db "$W/db" --models-dir "$W/models" > "$W/train.out" 2>&1 \
    || { tail -20 "$W/train.out"; exit 1; }
  row "clv train --db | $(printf %.1f "$(since "$start")") s | | $(rss_mb "$W/train.time") MB | |"
fi

if has serve; then
  models=${MODELS:-$W/models}
  [ -e "$models/production" ] || { echo "serve: no production model in $models (run the train stage or set MODELS)"; exit 1; }
  start=$(now)
  /usr/bin/time -v -o "$W/serve.time" $CLV serve --db "$W/db" --models-dir "$models" --listen 127.0.0.1:18080 \
    > "$W/serve.out" 2>&1 &
  SERVE=$!
  pids+=($SERVE)
  until curl -sf http://127.0.0.1:18080/ready > /dev/null; do sleep 0.1; done
  if [ -n "${PERF:-}" ]; then perf record -g -o "$W/serve.perf" -p "$(pgrep -P $SERVE)" -- sleep 5; fi
  ready_s=$(since "$start")
  customers=$(curl -s http://127.0.0.1:18080/metrics | awk '/^clv_scorer_customers / {print $2}')
  kill -TERM "$(pgrep -P $SERVE)"; wait $SERVE || true
  row "clv serve: ready | $(printf %.1f "$ready_s") s ($customers customers scored) | | $(rss_mb "$W/serve.time") MB | |"
fi

if has refresh; then
  # The scorer's refresh after $CHANGED changed customers (default 1,000), on the store the stream
  # stage filled (its broker still runs): a new ingest resumes from the store's offsets, `clv serve`
  # scores everyone, then kcat produces one purchase for each of $CHANGED customers of the top list,
  # dated on the watermark's day so that `as_of` stays; the refresh that took them in is read from
  # `clv_scorer_refresh_duration_seconds` (its `_sum` and `_count` before and after).
  [ -f "$W/state/broker.addr" ] && has stream || { echo "refresh: needs the stream stage in the same run"; exit 1; }
  CHANGED=${CHANGED:-1000}
  brokers=$(cat "$W/state/broker.addr")
  RUST_LOG=warn $CLV ingest --state-dir "$W/state" --db "$W/db" --metrics-addr 127.0.0.1:$PORT > "$W/ingest2.out" 2>&1 &
  pids+=($!)
  models=${MODELS:-$W/models}
  RUST_LOG=info $CLV serve --db "$W/db" --models-dir "$models" --listen 127.0.0.1:18080 \
    --refresh-seconds 0.2 > "$W/serve-refresh.out" 2>&1 &
  pids+=($!)
  metric() { curl -s http://127.0.0.1:18080/metrics | awk -v m="$1" '$1 == m {print $2}'; }
  until curl -sf http://127.0.0.1:18080/ready > /dev/null; do sleep 0.2; done
  sleep 2
  count0=$(metric clv_scorer_refresh_duration_seconds_count)
  sum0=$(metric clv_scorer_refresh_duration_seconds_sum)
  rescored0=$(curl -s http://127.0.0.1:18080/metrics | awk '/^clv_scorer_rescored_customers_total\{refresh="changed"\}/ {print $2}')
  wm=$(curl -s http://127.0.0.1:18080/ready | sed 's/.*"as_of":"\([0-9-]*\)".*/\1/')
  day=$(date -u -d "$wm - 1 day" +%Y-%m-%d)
  curl -s "http://127.0.0.1:18080/customers/top.csv?k=$CHANGED" | tail -n +2 | cut -d, -f2 > "$W/changed.ids"
  i=0
  while read -r id; do
    i=$((i + 1))
    echo "$id|{\"schema_version\":1,\"event_id\":\"bench-refresh:$i:$RANDOM\",\"customer_id\":$id,\"invoice\":\"99$i\",\"stock_code\":\"BENCH\",\"quantity\":1,\"invoice_date\":\"${day}T00:00:01Z\",\"price\":1.0}"
  done < "$W/changed.ids" | kcat -P -b "$brokers" -t transactions -K '|' -X partitioner=murmur2_random
  # Every changed customer rescored (one refresh or a few, as ingest's batches land).
  until [ "$(echo "$(curl -s http://127.0.0.1:18080/metrics | awk '/^clv_scorer_rescored_customers_total\{refresh="changed"\}/ {print $2}') - ${rescored0:-0}" | bc)" -ge "$CHANGED" ]; do
    sleep 0.05
  done
  sleep 1
  count1=$(metric clv_scorer_refresh_duration_seconds_count)
  sum1=$(metric clv_scorer_refresh_duration_seconds_sum)
  n=$((count1 - count0))
  row "clv serve: refresh after $CHANGED changed customers | $(echo "scale=4; ($sum1 - $sum0) / $n" | bc) s per refresh ($n refreshes took them in, $(echo "scale=4; $sum1 - $sum0" | bc) s in all) | | | |"
fi

if has snapshot; then
  # clv and pandas side by side on the same files: the input, and $SNAPSHOT_CSV when given.
  for f in "$INPUT" ${SNAPSHOT_CSV:-}; do
    t=$( { /usr/bin/time -f "%e %M" $CLV snapshot --input "$f" --cutoff 2011-06-01 --out "$W/s.parquet" > /dev/null; } 2>&1 | tail -1)
    clv_s=$(echo "$t" | cut -d' ' -f1)
    versus=""
    if [ -n "${PANDAS:-}" ]; then
      p=$( { /usr/bin/time -f "%e %M" "$PANDAS" "$(dirname "$0")/bench/pandas_snapshot.py" "$f" 2011-06-01 "$W/p.parquet" > /dev/null; } 2>&1 | tail -1)
      pandas_s=$(echo "$p" | cut -d' ' -f1)
      versus="; pandas $pandas_s s, $(( $(echo "$p" | cut -d' ' -f2) / 1024 )) MB: pandas time / clv time = $(echo "scale=2; $pandas_s / $clv_s" | bc)"
    fi
    row "clv snapshot of $(basename "$f") (whole process) | $clv_s s$versus | | $(( $(echo "$t" | cut -d' ' -f2) / 1024 )) MB | |"
  done
fi

echo "results: $RESULTS"
