#!/usr/bin/env bash
# The scorer's `GET /customers/{id}/clv` beside a bare axum JSON endpoint (scorer/examples/bare_json.rs)
# in the same run, the one way to get the ratio everywhere: every client in $TOOLS (wrk, oha: those
# installed) at every concurrency in $CONNECTIONS (32 and 256), random customer IDs. For each: the
# saturation rate (the ratio is scorer / bare), then p50/p99 at half of it.
#
# Why one script: on a 2-core machine the client competes with the server for the cores, so the ratio
# depends on how many threads the client runs (a one-thread client that cannot saturate the bare
# endpoint makes any server look close to it). The server and the client are pinned to their own CPUs
# (SERVER_CPUS, CLIENT_CPUS: by default the upper and the lower half of the machine, `taskset`), so
# the saturation rate is the server's own.
# The VM's speed drifts between runs (the bare endpoint alone moved 58-91k req/s within minutes), so
# the saturation runs alternate bare and scorer ROUNDS times (default 3): a slow spell falls on
# both, and the table gives the median of the rounds' rates and of their ratios.
# BARE_BYTES=<n> makes the bare endpoint answer one fixed body of n bytes (the scorer's is ~860) made
# once, as the scorer's answers are: what the answer's size costs, apart from the scorer's own work.
# Usage: scripts/bench-serve.sh <feature store dir> <models dir>
#   (build first: cargo build --release --workspace --all-targets; apt-get install wrk; oha:
#    cargo install oha --root "$(scripts/tools-dir.sh)")
set -euo pipefail
T=${CARGO_TARGET_DIR:-target}/release
CLV=${CLV:-$T/clv}
BARE=${BARE:-$T/examples/bare_json}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32 256}
TOOLS_DIR=$("$(dirname "$0")"/tools-dir.sh)
PATH=$PATH:$TOOLS_DIR/bin
TOOLS=${TOOLS:-$(for t in wrk oha; do command -v $t > /dev/null && printf "%s " $t; done)}
n=$(nproc)
SERVER_CPUS=${SERVER_CPUS:-$((n / 2))-$((n - 1))}
CLIENT_CPUS=${CLIENT_CPUS:-0-$((n / 2 - 1 < 0 ? 0 : n / 2 - 1))}
LUA=$(cd "$(dirname "$0")" && pwd)/bench/random-ids.lua
W=$(mktemp -d)
RUST_LOG=warn taskset -c "$SERVER_CPUS" $CLV serve --db "$1" --models-dir "$2" \
  --listen 127.0.0.1:18080 --secondary-dir $W/secondary > $W/serve.out 2>&1 &
SERVE=$!
taskset -c "$SERVER_CPUS" $BARE 127.0.0.1:18090 ${BARE_BYTES:-} > /dev/null &
BARE_PID=$!
trap 'kill $SERVE $BARE_PID 2>/dev/null; rm -rf $W' EXIT
until curl -sf http://127.0.0.1:18080/ready > /dev/null; do sleep 0.2; done
curl -sf "http://127.0.0.1:18080/customers/top.csv?k=10000" | tail -n +2 | cut -d, -f2 > $W/ids
export IDS=$W/ids
# oha: a file of URLs per endpoint (it picks one at random for each request).
for port in 18080 18090; do
  sed "s|^|http://127.0.0.1:$port/customers/|; s|\$|/clv|" $W/ids > $W/urls-$port
done
# The client runs a thread per CPU it is given.
CLIENT_THREADS=$(taskset -c "$CLIENT_CPUS" nproc)
echo "$(wc -l < $W/ids) customer IDs; $n cores: server on CPUs $SERVER_CPUS, client on $CLIENT_CPUS;" \
  "${DURATION} s per run, $ROUNDS alternating saturation rounds; clients: $TOOLS"

# One run: prints "<requests/s> <p50 ms> <p99 ms> <errors>". Args: tool port connections rate(0: as
# fast as it can).
run() {
  local tool=$1 port=$2 c=$3 rate=$4 out
  local client="taskset -c $CLIENT_CPUS"
  case $tool in
    wrk)
      # wrk's delay hook paces each connection (whole milliseconds): a rate per connection.
      local per=0
      [ "$rate" = 0 ] || per=$(( (rate + c - 1) / c ))
      out=$(RATE_PER_CONNECTION=$per $client wrk -t$CLIENT_THREADS -c$c -d${DURATION}s --latency -s $LUA \
        http://127.0.0.1:$port)
      echo "$out" | awk '
        /Requests\/sec/ {rps = $2}
        $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
        /Non-2xx|Socket errors/ {err = err $0 ";"}
        function ms(x) { if (x ~ /us$/) return x / 1000; if (x ~ /ms$/) return x + 0; if (x ~ /s$/) return x * 1000; return x }
        END {printf "%.0f %.2f %.2f %s\n", rps, ms(p50), ms(p99), (err == "" ? "-" : "errors")}'
      ;;
    oha)
      local q=""
      [ "$rate" = 0 ] || q="-q $rate"
      $client oha --no-tui --output-format json -z ${DURATION}s -c $c $q \
        --worker-threads $CLIENT_THREADS --urls-from-file $W/urls-$port > $W/oha.json
      python3 - $W/oha.json <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
# Requests cut off by the end of the run (-z) are not errors of the server.
errors = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
bad = sum(v for k, v in codes.items() if k != "200") + sum(errors.values())
if bad:
    print(codes, errors, file=sys.stderr)
# Latencies in seconds.
print(f'{s["requestsPerSec"]:.0f} {p["p50"] * 1000:.2f} {p["p99"] * 1000:.2f} {"errors" if bad else "-"}')
EOF
      ;;
  esac
}

printf "| client | connections | bare req/s | scorer req/s | ratio (each round) | bare p50 / p99 at half rate | scorer p50 / p99 at half rate |\n|---|---|---|---|---|---|---|\n" > $W/table
# The median of its arguments.
median() {
  printf "%s\n" "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}

for tool in $TOOLS; do
  for c in $CONNECTIONS; do
    bares=() scorers=() ratios=() errs=()
    for _ in $(seq "$ROUNDS"); do
      read -r bare_rps _ _ bare_err < <(run $tool 18090 $c 0)
      read -r rps _ _ err < <(run $tool 18080 $c 0)
      bares+=("$bare_rps") scorers+=("$rps") errs+=("$bare_err" "$err")
      ratios+=("$(echo "scale=4; $rps / $bare_rps" | bc)")
    done
    bare_rps=$(median "${bares[@]}")
    rps=$(median "${scorers[@]}")
    ratio=$(printf "%.2f" "$(median "${ratios[@]}")")
    read -r _ bp50 bp99 _ < <(run $tool 18090 $c $((${bare_rps%.*} / 2)))
    read -r _ p50 p99 half_err < <(run $tool 18080 $c $((${rps%.*} / 2)))
    printf "| %s | %s | %s | %s | %s (%s) | %s / %s ms | %s / %s ms |\n" $tool $c ${bare_rps%.*} ${rps%.*} \
      $ratio "$(printf "%.2f " "${ratios[@]}" | sed 's/ $//')" $bp50 $bp99 $p50 $p99 >> $W/table
    for e in "${errs[@]}" "$half_err"; do
      [ "$e" = - ] || echo "$tool -c$c: a run had non-2xx answers or socket errors"
    done
  done
done
cat $W/table
