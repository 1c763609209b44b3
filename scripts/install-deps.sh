#!/usr/bin/env bash
# Installs what building, running and testing the gateway needs on a Debian machine that has Swift.
# Idempotent: apt runs only when a package is missing; the Python venv is reused when it is complete.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libsqlite3-dev libcurl4-openssl-dev libssl-dev openssl postgresql python3-venv ca-certificates curl)
# nginx and systemd-analyze: the deploy tests check the load balancer config and the units with them.
packages+=(nginx-light systemd)
# Chromium and its WebDriver: the console test drives a real headless browser (Tests/sdk/test_console.py).
packages+=(chromium chromium-driver)
if [ "${1:-}" = "--bench" ]; then packages+=(wrk valgrind); fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python venv for the SDK tests and the tokenizer references (tiktoken, Hugging Face tokenizers).
if [ "${1:-}" != "--no-python" ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import openai, anthropic, pytest, tiktoken, tokenizers, jsonschema, yaml, schemathesis, kubernetes_validate, selenium" 2>/dev/null; then
    python3 -m venv --clear .venv  # --clear: a venv left half-made (an interrupted run) is made anew
    .venv/bin/pip install -q --disable-pip-version-check -r Tests/sdk/requirements.txt
  fi
fi
