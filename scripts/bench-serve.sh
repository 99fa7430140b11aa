#!/usr/bin/env bash
# Throughput and latency of `GET /customers/{id}/clv` with wrk (Debian's), over every customer ID in
# random order, beside a bare axum JSON endpoint (scorer/examples/bare_json.rs) in the same run as the
# ceiling. For each: saturation (wrk -c64), then p50/p99 at half the saturation rate (connections
# paced at 500 requests/s each by wrk's delay hook).
# Usage: scripts/bench-serve.sh <feature store dir> <models dir>
#   (build first: cargo build --release --workspace --all-targets; apt-get install wrk)
set -euo pipefail
T=${CARGO_TARGET_DIR:-target}/release
CLV=${CLV:-$T/clv}
BARE=${BARE:-$T/examples/bare_json}
DURATION=${DURATION:-15}
LUA=$(cd "$(dirname "$0")" && pwd)/bench/random-ids.lua
W=$(mktemp -d)
RUST_LOG=warn $CLV serve --db "$1" --models-dir "$2" --listen 127.0.0.1:18080 \
  --secondary-dir $W/secondary > $W/serve.out 2>&1 &
SERVE=$!
$BARE 127.0.0.1:18090 > /dev/null &
BARE_PID=$!
trap 'kill $SERVE $BARE_PID 2>/dev/null; rm -rf $W' EXIT
until curl -sf http://127.0.0.1:18080/ready > /dev/null; do sleep 0.2; done
curl -sf "http://127.0.0.1:18080/customers/top.csv?k=10000" | tail -n +2 | cut -d, -f2 > $W/ids
export IDS=$W/ids
echo "$(wc -l < $W/ids) customer IDs; $(nproc) cores; wrk -t2, ${DURATION}s per run"
printf "| endpoint | saturation req/s | at half rate: req/s | p50 | p99 |\n|---|---|---|---|---|\n" > $W/table
for target in bare:18090 scorer:18080; do
  name=${target%%:*}; port=${target##*:}
  sat=$(RATE_PER_CONNECTION=0 wrk -t2 -c64 -d${DURATION}s -s $LUA http://127.0.0.1:$port \
        | awk '/Requests\/sec/ {print $2}')
  # wrk's delay hook has whole milliseconds: 500 requests/s per connection (2 ms apart), as many
  # connections as half the saturation rate needs.
  # (a cycle is the 2 ms delay plus the answer: count ~400 requests/s per connection)
  connections=$(echo "($sat / 2 + 399) / 400" | bc)
  out=$(RATE_PER_CONNECTION=500 wrk -t2 -c$connections -d${DURATION}s --latency \
        -s $LUA http://127.0.0.1:$port)
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
  printf "| %s | %.0f | %.0f | %s | %s |\n" "$name" "$sat" "$rate" "$p50" "$p99" >> $W/table
  [ -z "$errors" ] || echo "$name: $errors"
done
cat $W/table
