#!/usr/bin/env bash
# Scale-out at one scale, on nisshi (a Kafka-compatible broker process that keeps the whole topic, so
# that a partition can be restored from it; the embedded broker keeps ~5 MiB per partition):
#   1. N instances (`clv instance`, default 3) on a topic of P partitions (default 6); replay the
#      input; the clock runs until every instance is ready and every event is counted;
#   2. one instance SIGKILLed: the time until the survivors serve every partition again (the group's
#      session timeout, the dead member's record expiring, then the restore of its partitions from
#      the topic into the survivors' stores), and the restores as the survivors' metrics report them;
#   3. a new instance with an empty store joins: the time until every partition is served again;
#   4. with BASELINE=1, one instance alone on a fresh broker, replay the same input: how far one goes.
# Prints markdown rows and appends them to $W/results.md.
#
# Usage: scripts/bench-scale-out.sh <input.parquet|.csv> [<label>]   (build first: cargo build --release)
# Environment: MODELS=<registry> (a production model for the scorers; default: trains one on the input
# with --backtests 0), N=3, P=6, W=<work dir> (kept; default a temporary one), NISSHI=<binary>,
# SESSION_MS=6000 (the group's session timeout), STANDBY=<n> (`--standby-replicas n`: warm copies;
# the kill's row then also says how long after the group reassigned the partitions they were served),
# CHECKPOINTS=1 (`--checkpoint-dir $W/checkpoints --checkpoint-seconds $CHECKPOINT_SECONDS`, default
# 30: the joining instance starts from checkpoints), BASELINE=1, WRK=<seconds>: after the join, GET
# /customers/{id}/clv over random customers through one instance (some answered there, the rest
# forwarded to their owners) beside the bare axum endpoint, with wrk -c64 (build the examples:
# cargo build --release --workspace --all-targets).
set -euo pipefail
CLV=${CLV:-${CARGO_TARGET_DIR:-target}/release/clv}
CLV=$(realpath "$CLV")
INPUT=$(realpath "$1")
LABEL=${2:-$(basename "$INPUT")}
N=${N:-3}
P=${P:-6}
SESSION_MS=${SESSION_MS:-6000}
STANDBY=${STANDBY:-0}
CHECKPOINTS=${CHECKPOINTS:-}
CHECKPOINT_SECONDS=${CHECKPOINT_SECONDS:-30}
NISSHI=${NISSHI:-$(scripts/tools-dir.sh)/bin/nisshi}
KEEP=${W:+yes}
W=${W:-$(mktemp -d)}
mkdir -p "$W"
RESULTS=$W/results.md
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -z "$KEEP" ] && rm -rf "$W"
  return 0
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }
row() { echo "| $LABEL | $* |" | tee -a "$RESULTS"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_broker() {
  local port
  port=$(free_port)
  mkdir -p "$W/nisshi"
  (cd "$W/nisshi" && exec "$NISSHI" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://nisshi/ \
    > "$W/nisshi.out" 2>&1) &
  pids+=($!)
  BROKER=127.0.0.1:$port
  until (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
}

declare -A PID PORT
start_instance() {
  local id=$1 port
  port=$(free_port)
  RUST_LOG=info $CLV instance --brokers "$BROKER" --partitions "$P" --db "$W/db-$id" \
    --models-dir "$MODELS" --listen "127.0.0.1:$port" --instance-id "$id" \
    --session-timeout-ms "$SESSION_MS" --standby-replicas "$STANDBY" \
    ${CHECKPOINTS:+--checkpoint-dir "$W/checkpoints" --checkpoint-seconds "$CHECKPOINT_SECONDS"} > "$W/$id.out" 2> "$W/$id.err" &
  PID[$id]=$!
  PORT[$id]=$port
  pids+=($!)
  until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 0.1; done
}

# Every running instance sees the running ones, every partition served.
settled() {
  local want=$1 id
  for id in "${!PORT[@]}"; do
    curl -sf "http://127.0.0.1:${PORT[$id]}/cluster" | jq -e --argjson n "$want" --argjson p "$P" '
      (.members | length) == $n and (.unserved | length) == 0
      and ([.members[].partitions[] | select(.state == "serving")] | length) == $p' > /dev/null || return 1
    curl -sf "http://127.0.0.1:${PORT[$id]}/ready" > /dev/null || return 1
  done
}

# The standby copies caught up: no instance's standby lags.
standbys_warm() {
  local id lag
  for id in "${!PORT[@]}"; do
    lag=$(curl -s "http://127.0.0.1:${PORT[$id]}/metrics" | awk '/^clv_ingest_standby_lag\{/ {s += $2} END {printf "%d", s}')
    [ "$lag" -eq 0 ] || return 1
  done
}

# Every partition assigned to one of the n members (before data arrives nothing serves yet).
assigned() {
  local want=$1 id
  for id in "${!PORT[@]}"; do
    curl -sf "http://127.0.0.1:${PORT[$id]}/cluster" | jq -e --argjson n "$want" --argjson p "$P" '
      (.members | length) == $n and ([.members[].partitions | keys[]] | length) == $p' > /dev/null || return 1
  done
}

# Caught up: no instance lags, and all of them score at the same as_of, the same as at the last
# call (the group's as_of follows the members' records, a heartbeat behind the stores).
LAST_AS_OF=
caught_up() {
  local id lag as_ofs=()
  for id in "${!PORT[@]}"; do
    lag=$(curl -s "http://127.0.0.1:${PORT[$id]}/metrics" | awk '/^clv_ingest_consumer_lag\{/ {s += $2} END {printf "%d", s}')
    [ "$lag" -eq 0 ] || return 1
    as_ofs+=("$(curl -sf "http://127.0.0.1:${PORT[$id]}/ready" | jq -r .as_of)")
  done
  [ "$(printf '%s\n' "${as_ofs[@]}" | sort -u | wc -l)" -eq 1 ] || return 1
  if [ "${as_ofs[0]}" != "$LAST_AS_OF" ]; then
    LAST_AS_OF=${as_ofs[0]}
    sleep 1
    return 1
  fi
}

counted() {
  local id total=0 n
  for id in "${!PORT[@]}"; do
    # Standby copies' messages are counted too: not the group's applied events.
    n=$(curl -s "http://127.0.0.1:${PORT[$id]}/metrics" | awk '/^clv_ingest_events_total\{/ {s += $2} /^clv_ingest_events_read_again_total / {s += $2} /^clv_ingest_standby_messages_total / {s -= $2} END {printf "%d", s}')
    total=$((total + n))
  done
  echo "$total"
}

restores() {
  local id
  for id in "$@"; do
    grep -h "partition caught up" "$W/$id.err" | sed 's/\x1b\[[0-9;]*m//g' \
      | grep -o 'partition=[0-9]* messages=[0-9]* seconds=[0-9.]*' | sed "s/^/$id: /"
  done
}

# A sample of customers (SAMPLE, default 3000) asked through every running instance equals the
# offline answer: `clv score --input` at the instances' as_of (the scorer's own code on the lines).
verify() {
  local as_of id
  id=$(printf '%s\n' "${!PORT[@]}" | head -1)
  as_of=$(curl -sf "http://127.0.0.1:${PORT[$id]}/ready" | jq -r .as_of)
  if [ ! -f "$W/offline-$as_of.csv" ]; then
    $CLV score --input "$INPUT" --models-dir "$MODELS" --as-of "$as_of" --out "$W/offline-$as_of.csv" > /dev/null 2>&1
  fi
  local bases=()
  for id in "${!PORT[@]}"; do bases+=("http://127.0.0.1:${PORT[$id]}"); done
  python3 - "$W/offline-$as_of.csv" "${SAMPLE:-3000}" "${bases[@]}" <<'PY'
import csv, json, random, sys, urllib.request
path, sample, bases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = list(csv.DictReader(open(path)))
random.seed(7)
picked = random.sample(rows, min(sample, len(rows)))
bad = 0
for base in bases:
    for row in picked:
        with urllib.request.urlopen(f"{base}/customers/{row['customer_id']}/clv") as r:
            served = json.load(r)["clv_6m"]
        if abs(served - float(row["clv_6m"])) > 0.006:
            bad += 1
            if bad <= 5:
                print(f"  {base}: customer {row['customer_id']}: served {served}, clv score {row['clv_6m']}")
print(f"{len(picked)} of {len(rows)} customers through {len(bases)} instances: {bad} differ from clv score --input")
sys.exit(1 if bad else 0)
PY
}

if [ -z "${MODELS:-}" ]; then
  MODELS=$W/models
  $CLV train --input "$INPUT" --models-dir "$MODELS" --backtests 0 > "$W/train.out"
fi

start_broker
for i in $(seq 1 "$N"); do start_instance "i-$i"; done
until assigned "$N"; do sleep 0.2; done
start=$(now)
$CLV replay --brokers "$BROKER" --partitions "$P" --input "$INPUT" > "$W/replay.out"
sent=$(grep -o '[0-9]* events sent' "$W/replay.out" | grep -o '^[0-9]*')
until [ "$(counted)" -ge "$sent" ]; do sleep 0.5; done
applied=$(since "$start")
until settled "$N" && caught_up; do sleep 0.2; done
row "$N instances, $P partitions: replay + ingest + every instance ready | ${applied} s to count all $sent events, $(since "$start") s to ready | $(echo "$sent / $applied" | bc) events/s |"
verify | tee -a "$RESULTS"

# One killed.
if [ "$STANDBY" -gt 0 ]; then
  until standbys_warm; do sleep 0.2; done
  for id in "${!PORT[@]}"; do
    echo "$id keeps standby copies of $(curl -sf "http://127.0.0.1:${PORT[$id]}/cluster" | jq -c .standbys)" | tee -a "$RESULTS"
  done
fi
victim=i-2
kill -9 "${PID[$victim]}"
unset "PID[$victim]" "PORT[$victim]"
killed=$(now)
until assigned "$((N - 1))"; do sleep 0.05; done
reassigned=$(now)
until settled "$((N - 1))" && caught_up; do sleep 0.05; done
row "SIGKILL of $victim (standby replicas: $STANDBY): survivors serve every partition again | $(since "$killed") s (session timeout $((SESSION_MS / 1000)) s included); $(since "$reassigned") s after the group reassigned them |"
restores "${!PORT[@]}" | tee -a "$RESULTS"
verify | tee -a "$RESULTS"

# A new one joins with an empty store.
if [ -n "$CHECKPOINTS" ]; then
  # Every partition's checkpoint written at its current offset.
  sleep "$((CHECKPOINT_SECONDS + 2))"
fi
joined=$(now)
start_instance "i-$((N + 1))"
new=i-$((N + 1))
until curl -sf "http://127.0.0.1:${PORT[$new]}/cluster" | jq -e '.partitions | length > 0' > /dev/null; do sleep 0.05; done
assigned_at=$(now)
until settled "$N" && caught_up; do sleep 0.05; done
row "$new joins (empty store${CHECKPOINTS:+, checkpoints}): every partition served again | $(since "$joined") s; $(since "$assigned_at") s after it was given partitions |"
grep -h "loaded the partition's checkpoint" "$W/$new.err" "$W"/i-*.err 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' \
  | grep -o 'partition=[0-9]* next_offset=[0-9]* customers=[0-9]* events=[0-9]* bytes=[0-9]* seconds=[0-9.]*' | sort -u | tee -a "$RESULTS" || true
restores "i-$((N + 1))" | tee -a "$RESULTS"
verify | tee -a "$RESULTS"
if [ -n "$CHECKPOINTS" ]; then
  for cid in "${!PORT[@]}"; do
    curl -s "http://127.0.0.1:${PORT[$cid]}/metrics" | awk -v id="$cid" '
      /^clv_ingest_checkpoint_seconds_sum / {s = $2} /^clv_ingest_checkpoint_seconds_count / {n = $2}
      END {if (n > 0) printf "%s: %d checkpoints written, %.2f s each on average\n", id, n, s / n}'
  done | tee -a "$RESULTS"
fi

if [ -n "${WRK:-}" ]; then
  BARE=${BARE:-$(dirname "$CLV")/examples/bare_json}
  bare_port=$(free_port)
  $BARE "127.0.0.1:$bare_port" > /dev/null &
  pids+=($!)
  until curl -sf "http://127.0.0.1:$bare_port/" > /dev/null 2>&1 || curl -s "http://127.0.0.1:$bare_port/" > /dev/null; do sleep 0.1; done
  id=i-1
  curl -sf "http://127.0.0.1:${PORT[$id]}/customers/top.csv?k=10000" | tail -n +2 | cut -d, -f2 > "$W/ids"
  forwarded() { curl -s "http://127.0.0.1:${PORT[$id]}/metrics" | awk '/^clv_scorer_forwarded_requests_total\{outcome="answered"\}/ {print $2}'; }
  before=$(forwarded); before=${before:-0}
  for target in "bare:$bare_port" "instance $id:${PORT[$id]}"; do
    rate=$(IDS=$W/ids RATE_PER_CONNECTION=0 wrk -t2 -c64 -d"${WRK}"s -s scripts/bench/random-ids.lua \
      --latency "http://127.0.0.1:${target##*:}" | awk '/Requests\/sec/ {print $2} $1 == "99%" {p99=$2} END {print p99}' | paste -sd' ')
    row "GET /customers/{id}/clv, wrk -c64 ${WRK} s: ${target%%:*} | $rate (req/s, p99) |"
  done
  after=$(forwarded)
  total=$(curl -s "http://127.0.0.1:${PORT[$id]}/metrics" | awk '/^clv_http_requests_total\{.*route="\/customers\/\{id\}\/clv"/ {s += $2} END {printf "%d", s}')
  row "of $id's answers, forwarded to the owner | $(echo "${after:-0} - $before" | bc) of $total |"

  # A client that routes by /cluster's partition map: each wrk thread asks one instance for the
  # customers of its partitions (Kafka's murmur2 of the ID, as the partitioner in /cluster says).
  curl -sf "http://127.0.0.1:${PORT[$id]}/cluster" > "$W/cluster.json"
  python3 - "$W/ids" "$W/cluster.json" "$W" > "$W/owners" <<'PY'
import json, sys
def murmur2(data):
    m, h = 0x5bd1e995, (0x9747b28c ^ len(data)) & 0xffffffff
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = len(data) & 3
    if rest == 3: h ^= data[whole + 2] << 16
    if rest >= 2: h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    return h ^ (h >> 15)
ids, cluster, work = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
count, owners = cluster["partition_count"], cluster["owners"]
by_owner = {}
for line in open(ids):
    customer = line.strip()
    if customer:
        partition = (murmur2(customer.encode()) & 0x7fffffff) % count
        by_owner.setdefault(owners[str(partition)]["http"], []).append(customer)
for http, customers in by_owner.items():
    path = f"{work}/ids-{http.rsplit(':', 1)[1]}"
    open(path, "w").write("\n".join(customers) + "\n")
    print(http.removeprefix("http://"), path)
PY
  before_all=0
  for pid_id in "${!PORT[@]}"; do
    f=$(curl -s "http://127.0.0.1:${PORT[$pid_id]}/metrics" | awk '/^clv_scorer_forwarded_requests_total\{outcome="answered"\}/ {print $2}')
    before_all=$(echo "$before_all + ${f:-0}" | bc)
  done
  threads=$(wc -l < "$W/owners")
  rate=$(OWNERS=$W/owners wrk -t"$threads" -c64 -d"${WRK}"s -s scripts/bench/owner-ids.lua \
    --latency "http://127.0.0.1:${PORT[$id]}" | awk '/Requests\/sec/ {print $2} $1 == "99%" {p99=$2} END {print p99}' | paste -sd' ')
  after_all=0
  for pid_id in "${!PORT[@]}"; do
    f=$(curl -s "http://127.0.0.1:${PORT[$pid_id]}/metrics" | awk '/^clv_scorer_forwarded_requests_total\{outcome="answered"\}/ {print $2}')
    after_all=$(echo "$after_all + ${f:-0}" | bc)
  done
  row "GET /customers/{id}/clv, wrk -c64 ${WRK} s: each owner asked directly (the partition map) | $rate (req/s, p99); $(echo "$after_all - $before_all" | bc) forwarded |"
fi

if [ -n "${BASELINE:-}" ]; then
  for id in "${!PID[@]}"; do kill "${PID[$id]}" 2>/dev/null || true; done
  wait "${PID[@]}" 2>/dev/null || true
  unset PID PORT
  declare -A PID PORT
  start_broker
  start_instance "solo"
  until assigned 1; do sleep 0.2; done
  start=$(now)
  $CLV replay --brokers "$BROKER" --partitions "$P" --input "$INPUT" > "$W/replay-solo.out"
  until [ "$(counted)" -ge "$sent" ]; do sleep 0.5; done
  applied=$(since "$start")
  until settled 1 && caught_up; do sleep 0.2; done
  row "1 instance, $P partitions (baseline): replay + ingest + ready | ${applied} s to count all $sent events, $(since "$start") s to ready | $(echo "$sent / $applied" | bc) events/s |"
fi
