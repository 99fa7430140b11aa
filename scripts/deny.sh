#!/usr/bin/env bash
# cargo deny over every dependency (deny.toml): licences, bans (wildcards), sources (crates.io only)
# and RustSec advisories. The advisory database is fetched from github.com; on a machine that cannot
# reach it (these have only the package registries) the advisories check says so loudly and the other
# three still run and must pass. CLV_REQUIRE_ADVISORIES=1 makes a missing database a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(scripts/tools-dir.sh)
deny=$(command -v cargo-deny || echo "$tools/bin/cargo-deny")
if "$deny" deny fetch db >/dev/null 2>&1; then
  "$deny" deny check
elif [[ ${CLV_REQUIRE_ADVISORIES:-0} == 1 ]]; then
  echo "deny: the RustSec advisory database cannot be fetched from here" >&2
  exit 1
else
  echo "deny: ADVISORIES NOT CHECKED: the RustSec advisory database (github.com) cannot be fetched from here" >&2
  "$deny" deny check licenses bans sources
fi
