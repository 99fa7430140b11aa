#!/usr/bin/env bash
# Runs every test of the workspace (release profile: the same build as clippy and the binaries).
# Tests read the real dataset from ../shared/data (or $CLV_REAL_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo nextest run --release --workspace --locked --no-fail-fast "$@"
