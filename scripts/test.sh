#!/usr/bin/env bash
# Runs every test: the Swift suites (unit and live loopback tests) and the official OpenAI and Anthropic
# Python SDKs against a live gateway. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
GATEWAY_BIN="$PWD/.build/debug/gateway" .venv/bin/python -m pytest -q Tests/sdk Tests/tokenizer
