#!/usr/bin/env bash
# Runs every test of the workspace (release profile: the same build as clippy and the binaries).
# Tests read the real dataset from ../shared/data (or $CLV_REAL_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CLV_NISSHI=${CLV_NISSHI:-$(scripts/tools-dir.sh)/bin/nisshi}
export CLV_SCHEMATHESIS=${CLV_SCHEMATHESIS:-$(scripts/tools-dir.sh)/schemathesis/bin/st}
export CLV_MLFLOW=${CLV_MLFLOW:-$(scripts/tools-dir.sh)/mlflow/bin/mlflow}
export CLV_CONFLUENT_PYTHON=${CLV_CONFLUENT_PYTHON:-$(scripts/tools-dir.sh)/confluent/bin/python}
cargo nextest run --release --workspace --locked --no-fail-fast "$@"
