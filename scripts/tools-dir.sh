#!/usr/bin/env bash
# Prints the folder for tools the tests run (nisshi, MLflow): $CLV_TOOLS_DIR, else /var/cache/clv-tools when it
# can be written, else ~/.cache/clv-tools.
set -euo pipefail
if [[ -n ${CLV_TOOLS_DIR:-} ]]; then
  dir=$CLV_TOOLS_DIR
elif mkdir -p /var/cache/clv-tools 2>/dev/null && [[ -w /var/cache/clv-tools ]]; then
  dir=/var/cache/clv-tools
else
  dir=$HOME/.cache/clv-tools
fi
mkdir -p "$dir"
echo "$dir"
