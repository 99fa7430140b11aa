#!/usr/bin/env bash
# The scorer under twice its saturation rate, open loop, for 60 s, with ingest running at full speed
# beside it (RELIABILITY.md "Load"). Needs oha (`cargo install oha --locked`; found on the PATH or in
# the tools folder) and a dataset in the source layout.
#
#   scripts/load-test.sh DATA.csv [MODELS_DIR]
#
# MODELS_DIR: a registry with a production model for this data (trained here when not given).
# Prints the saturation rate, the overload run's status codes, latency and shed count, the scorer's
# peak memory, and the latency after the load stopped. Not part of `make test` (it takes ~3 min).
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "${1:?usage: scripts/load-test.sh DATA.csv [MODELS_DIR]}")
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin clv >&2
clv=$target/release/clv
tools=$(scripts/tools-dir.sh)
oha=$(command -v oha || echo "$tools/bin/oha")
[[ -x $oha ]] || { echo "oha is needed: cargo install oha --locked --root $tools" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"  # oha and the scorer hold thousands of sockets

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$clv" broker --state-dir "$work/state" --partitions 4 >"$work/broker.log" 2>&1 &
pids+=($!)
while [[ ! -f $work/state/broker.addr ]]; do sleep 0.2; done
"$clv" ingest --state-dir "$work/state" --db "$work/db" --metrics-addr 127.0.0.1:0 >"$work/ingest.log" 2>&1 &
pids+=($!)
"$clv" replay --state-dir "$work/state" --input "$data" --max-lag 200000 >"$work/replay1.log" 2>&1
models=${2:-}
if [[ -z $models ]]; then
  models=$work/models
  "$clv" train --input "$data" --models-dir "$models" >"$work/train.log" 2>&1
fi
port=18181
"$clv" serve --db "$work/db" --models-dir "$models" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
serve=$!
pids+=($serve)
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.5; done
url="http://127.0.0.1:$port/customers/1[2-8][0-9]{3}/clv"

cat >"$work/summary.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, p = r["summary"], r["latencyPercentiles"]
print("%.0f req/s, statuses %s, errors %s, p50 %.2f ms, p99 %.2f ms, max %.1f ms" % (
    s["requestsPerSec"], r["statusCodeDistribution"], r.get("errorDistribution", {}),
    p["p50"] * 1000, p["p99"] * 1000, s["slowest"] * 1000))
PY
summary() { python3 "$work/summary.py" "$1"; } # oha's JSON: rate, statuses, latency

echo "baseline (closed loop, 16 connections, 10 s):"
"$oha" -c 16 -z 10s --no-tui --output-format json --rand-regex-url "$url" >"$work/base.json"
summary "$work/base.json"
echo "saturation (closed loop, 64 connections, 10 s):"
"$oha" -c 64 -z 10s --no-tui --output-format json --rand-regex-url "$url" >"$work/sat.json"
summary "$work/sat.json"
rate=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]*2))' "$work/sat.json")

# Ingest at full speed beside it: the whole file again (every event read again and checked).
"$clv" replay --state-dir "$work/state" --input "$data" --max-lag 200000 >"$work/replay2.log" 2>&1 &
pids+=($!)
peak=0
( while kill -0 "$serve" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$serve/status"; sleep 1
  done ) >"$work/rss.log" 2>/dev/null &
pids+=($!)
before=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^clv_scorer_shed_requests_total/ {s += $2} END {print s+0}')
echo "overload (open loop at $rate req/s = 2x saturation, 2,000 connections, 60 s, latency-corrected):"
"$oha" -q "$rate" -c 2000 -z 60s --latency-correction --no-tui --output-format json \
  --rand-regex-url "$url" >"$work/over.json"
summary "$work/over.json"
after=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^clv_scorer_shed_requests_total/ {s += $2} END {print s+0}')
echo "shed (clv_scorer_shed_requests_total): $((after - before)) in 60 s"
curl -s "http://127.0.0.1:$port/metrics" | grep '^clv_scorer_shed_requests_total' || true
peak=$(sort -n "$work/rss.log" | tail -1)
echo "scorer peak RSS during overload: $((peak / 1024)) MiB (ready: $(head -1 "$work/rss.log" | awk '{print int($1/1024)}') MiB)"
sleep 2
echo "after the load (closed loop, 16 connections, 5 s, 2 s after it stopped):"
"$oha" -c 16 -z 5s --no-tui --output-format json --rand-regex-url "$url" >"$work/after.json"
summary "$work/after.json"
grep -E "events sent" "$work/replay2.log" || true
