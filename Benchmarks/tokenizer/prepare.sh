# Sourced by the tokenizer benchmark scripts, from the package root: installs what they need, builds
# the release binary (or takes the one `GATEWAY_BIN` names), and writes the benchmark files into a
# temporary directory, `$work/corpus` (removed on exit), listed in `$files`.
scripts/install-deps.sh
dpkg -s fortunes fortunes-zh >/dev/null 2>&1 || apt-get install -y -qq fortunes fortunes-zh >/dev/null
if [ -z "${GATEWAY_BIN:-}" ]; then
  swift build -c release --product gateway >/dev/null 2>&1
  GATEWAY_BIN=.build/release/gateway
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
files=$(.venv/bin/python Benchmarks/tokenizer/make_corpus.py "$work/corpus")
