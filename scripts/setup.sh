#!/usr/bin/env bash
# Installs what building clv needs (`scripts/setup.sh demo`: Debian packages only: libclang-dev for
# RocksDB's bindings, a C/C++ toolchain, xz) and, without `demo`, what testing it needs too:
# prometheus (promtool and the server the monitoring test scrapes with), docker-compose (to validate
# the compose file), chromium, node and playwright-core (the browser test), cargo-nextest,
# cargo-deny, nisshi (a Kafka-compatible broker, tansu renamed, that the real-broker tests run as a
# separate process), schemathesis and MLflow (Python virtualenvs) into $CLV_TOOLS_DIR (default
# /var/cache/clv-tools, outside the clone, so that later runs on the same machine reuse it; ~25 min
# to build the first time). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    local sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# What the build needs (the demo needs nothing more).
install_packages libclang-dev build-essential pkg-config xz-utils
if [[ $mode == demo ]]; then
  exit 0
fi

# What the tests need.
install_packages prometheus docker-compose chromium
# Node: NodeSource's nodejs includes npm, Debian's comes without it.
command -v node >/dev/null 2>&1 || install_packages nodejs
command -v npm >/dev/null 2>&1 || install_packages npm

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

DENY_VERSION=0.20.2
if ! "$(scripts/tools-dir.sh)/bin/cargo-deny" --version 2>/dev/null | grep -q "$DENY_VERSION"; then
  echo "setup: installing cargo-deny $DENY_VERSION into $(scripts/tools-dir.sh)" >&2
  cargo install cargo-deny --version "$DENY_VERSION" --locked --root "$(scripts/tools-dir.sh)" \
    --target-dir "$(scripts/tools-dir.sh)/build-deny"
  rm -rf "$(scripts/tools-dir.sh)/build-deny"
fi

NISSHI_VERSION=0.8.1
tools=$(scripts/tools-dir.sh)
if ! "$tools/bin/nisshi" --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
  echo "setup: installing nisshi $NISSHI_VERSION into $tools (a one-off build of ~25 min)" >&2
  # --ignore-rust-version: its dependency rama 0.4.0 declares rust-version 1.96 but builds and
  # runs on this toolchain (1.95), which is all this machine has.
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
    --root "$tools" --target-dir "$tools/build-nisshi"
  rm -rf "$tools/build-nisshi"
fi

# playwright-core (the browser test's driver, clv/tests/browser) with its lock file; it drives
# Debian's chromium and never downloads a browser (--ignore-scripts).
if ! cmp -s clv/tests/browser/package-lock.json "$tools/browser/package-lock.json" ||
   [[ ! -d "$tools/browser/node_modules/playwright-core" ]]; then
  echo "setup: installing playwright-core into $tools/browser" >&2
  mkdir -p "$tools/browser"
  cp clv/tests/browser/package.json clv/tests/browser/package-lock.json "$tools/browser/"
  (cd "$tools/browser" && npm ci --ignore-scripts --no-audit --no-fund --silent)
fi

SCHEMATHESIS_VERSION=4.32.5
if ! "$tools/schemathesis/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
  || ! "$tools/schemathesis/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
  # Every phase runs, the coverage phase too, which needs Python >= 3.12 (3.11's ast.parse raises a
  # SystemError on schemathesis' coverage module): pyenv's or the system's, else setup fails.
  python=
  for candidate in python3 python3.12 python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      python=$candidate
    fi
  done
  if [[ -z $python ]]; then
    echo "setup: schemathesis needs Python >= 3.12 for its coverage phase; none found (install one, e.g. with pyenv)" >&2
    exit 1
  fi
  echo "setup: installing schemathesis $SCHEMATHESIS_VERSION into $tools/schemathesis ($python)" >&2
  rm -rf "$tools/schemathesis"
  "$python" -m venv "$tools/schemathesis"
  "$tools/schemathesis/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The Python Kafka client third-party producers use: the partitioner test checks that it puts each
# customer where clv's producers and the instances' router do.
CONFLUENT_KAFKA_VERSION=2.12.1
if ! "$tools/confluent/bin/python" -c "import confluent_kafka, sys; sys.exit(confluent_kafka.__version__ != '$CONFLUENT_KAFKA_VERSION')" 2>/dev/null; then
  echo "setup: installing confluent-kafka $CONFLUENT_KAFKA_VERSION into $tools/confluent (a Python virtualenv)" >&2
  rm -rf "$tools/confluent"
  python3 -m venv "$tools/confluent"
  "$tools/confluent/bin/pip" install -q "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
fi

MLFLOW_VERSION=3.17.2
if ! "$tools/mlflow/bin/mlflow" --version 2>/dev/null | grep -q "$MLFLOW_VERSION"; then
  echo "setup: installing mlflow $MLFLOW_VERSION into $tools/mlflow (a Python virtualenv)" >&2
  python3 -m venv "$tools/mlflow"
  "$tools/mlflow/bin/pip" install -q "mlflow==$MLFLOW_VERSION"
fi
