#!/usr/bin/env bash
# cargo deny over every dependency (deny.toml): advisories, licences, bans (wildcards) and sources
# (crates.io only). The RustSec advisory database is fetched from github.com; on a machine that
# cannot reach it (these have only the package registries) it is taken from a snapshot, a git
# bundle: $CLV_ADVISORY_DB_BUNDLE, else ../shared/advisory-db/advisory-db.bundle, cloned into the
# tools folder and checked with --offline (a snapshot does not learn of newer advisories: say its
# date when reporting). Without either, the advisories check is a failure (CLV_SKIP_ADVISORIES=1
# runs the other three only, loudly).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(scripts/tools-dir.sh)
deny=$(command -v cargo-deny || echo "$tools/bin/cargo-deny")
bundle=${CLV_ADVISORY_DB_BUNDLE:-../shared/advisory-db/advisory-db.bundle}
if "$deny" deny fetch db >/dev/null 2>&1; then
  "$deny" deny check
elif [[ -f $bundle ]]; then
  # The directory name cargo-deny 0.20 gives the default database URL.
  dbs=$tools/advisory-dbs
  db=$dbs/advisory-db-3157b0e258782691
  want=$(git bundle list-heads "$bundle" | awk 'NR==1 {print $1}')
  if [[ $(git -C "$db" rev-parse HEAD 2>/dev/null || true) != "$want" ]]; then
    rm -rf "$db"
    mkdir -p "$dbs"
    git clone -q "$bundle" "$db"
  fi
  config=$(mktemp)
  trap 'rm -f "$config"' EXIT
  # deny.toml with the snapshot's folder as the database path.
  sed "s|^\[advisories\]$|[advisories]\ndb-path = \"$dbs\"|" deny.toml >"$config"
  echo "deny: advisories from the snapshot $bundle ($(git -C "$db" log -1 --format=%cs))" >&2
  cargo fetch --locked --quiet
  "$deny" deny --offline --config "$config" check
elif [[ ${CLV_SKIP_ADVISORIES:-0} == 1 ]]; then
  echo "deny: ADVISORIES NOT CHECKED: no RustSec database (github.com) and no snapshot at $bundle" >&2
  "$deny" deny check licenses bans sources
else
  echo "deny: no RustSec advisory database: github.com cannot be reached and there is no snapshot at $bundle (CLV_ADVISORY_DB_BUNDLE); CLV_SKIP_ADVISORIES=1 checks the rest only" >&2
  exit 1
fi
