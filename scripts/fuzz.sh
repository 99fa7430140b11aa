#!/usr/bin/env bash
# Fuzzes the event decoder, validator and fold (fuzz/fuzz_targets/event.rs) with cargo-fuzz
# (libFuzzer) for a bounded time: scripts/fuzz.sh [SECONDS, default 60]. Needs the nightly toolchain
# and cargo-fuzz (`cargo install cargo-fuzz --locked`). The seed corpus is fuzz/corpus/event; what
# libFuzzer adds to it stays in the target folder. Not part of `make test`; run once and recorded in
# RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
tools=$(../scripts/tools-dir.sh)
export PATH=$tools/bin:$PATH
target=${CARGO_TARGET_DIR:-../target}/fuzz
corpus=$target/corpus-event
mkdir -p "$corpus"
cp -n corpus/event/* "$corpus"/
CARGO_TARGET_DIR=$target cargo +nightly fuzz run event "$corpus" -- \
  -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
