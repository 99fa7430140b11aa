#!/usr/bin/env bash
# Installs what building and testing clv needs, when it is missing: Debian packages (libclang-dev for
# RocksDB's bindings, a C/C++ toolchain, xz, prometheus for promtool and the server the monitoring test
# scrapes with, docker-compose to validate the compose file), cargo-nextest, and tansu (a Kafka-compatible broker that
# one end-to-end test runs as a separate process) and MLflow (a Python virtualenv, for the trainer's
# tracking test) into $CLV_TOOLS_DIR (default /var/cache/clv-tools,
# outside the clone, so that later runs on the same machine reuse it; ~11 min to build the first time).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libclang-dev build-essential pkg-config xz-utils prometheus docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

TANSU_VERSION=0.6.0
tools=$(scripts/tools-dir.sh)
if ! "$tools/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "setup: installing tansu $TANSU_VERSION into $tools (a one-off build of ~11 min)" >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
    --root "$tools" --target-dir "$tools/build"
  rm -rf "$tools/build"
fi

MLFLOW_VERSION=3.17.2
if ! "$tools/mlflow/bin/mlflow" --version 2>/dev/null | grep -q "$MLFLOW_VERSION"; then
  echo "setup: installing mlflow $MLFLOW_VERSION into $tools/mlflow (a Python virtualenv)" >&2
  python3 -m venv "$tools/mlflow"
  "$tools/mlflow/bin/pip" install -q "mlflow==$MLFLOW_VERSION"
fi
