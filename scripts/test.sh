#!/usr/bin/env bash
# Runs every test: the Swift suites (unit and live loopback tests), a short fuzzing smoke, and the
# official OpenAI and Anthropic Python SDKs (plus the chaos test and schemathesis) against a live gateway.
# Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
# One test target at a time (there are two): the tokenizer's CPU-bound suites would otherwise hold the two-core machine's
# cooperative pool for tens of seconds while the live-socket suites time what they wait for.
swift test --skip-build --filter '^MeteringTests\.'
swift test --skip-build --filter '^GatewayTests\.'
# Coverage-guided fuzzing smoke: every libFuzzer target for about 12 s (scripts/fuzz.sh runs them longer).
scripts/fuzz.sh --smoke
GATEWAY_BIN="$PWD/.build/debug/gateway" .venv/bin/python -m pytest -q Tests/sdk Tests/tokenizer
