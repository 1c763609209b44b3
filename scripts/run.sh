#!/usr/bin/env bash
# Runs the gateway on its embedded default: SQLite under ./data, policies/gateway.yaml, and the built-in
# mock provider (answers with no provider key). Extra arguments go to `gateway serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-python
swift build -c release --product gateway
exec .build/release/gateway serve --data ./data --config policies/gateway.yaml "$@"
