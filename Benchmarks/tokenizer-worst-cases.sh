#!/usr/bin/env bash
# The no-whitespace worst cases against prose, per byte, for this tokenizer alone.
#   Benchmarks/tokenizer-worst-cases.sh [o200k_base|cl100k_base|qwen|deepseek_v3]   (default: all four)
#   ROUNDS=10 SECONDS_PER_FILE=0.5 (defaults): each round is a new process that times every file, one
#   after the other, pinned to one core. Prints each file's best and median MB/s over the rounds, and
#   their shares of English prose's best and median (and of Chinese prose's median). On a shared VM,
#   the files that read the large tables most (English) vary most from process to process, so the best
#   alone can mislead in either direction; the median shows the usual case.
#   GATEWAY_BIN=path times that binary instead of building .build/release/gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_FILE=${SECONDS_PER_FILE:-0.5}
ROUNDS=${ROUNDS:-10}
source Benchmarks/tokenizer/prepare.sh
for enc in ${1:-o200k_base cl100k_base qwen deepseek_v3}; do
  for round in $(seq "$ROUNDS"); do
    taskset -c 0 "$GATEWAY_BIN" tokens bench --encoding "$enc" --seconds "$SECONDS_PER_FILE" $files \
      >>"$work/$enc"
  done
  # Columns: file, bytes, tokens, MB/s, ms per pass.
  .venv/bin/python - "$enc" "$work/$enc" "$ROUNDS" <<'EOF'
import os, statistics, sys
enc, path, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
speeds = {}
for line in open(path):
    cols = line.rstrip("\n").split("\t")
    speeds.setdefault(os.path.basename(cols[0]), []).append(float(cols[3]))
best = {f: max(v) for f, v in speeds.items()}
median = {f: statistics.median(v) for f, v in speeds.items()}
print(f"== {enc} (MB/s over {rounds} rounds; shares of prose's speed)")
print(f"{'file':<18} {'best':>8} {'median':>8} {'best/en':>8} {'med/en':>8} {'med/zh':>8}")
for f in sorted(speeds):
    print(f"{f:<18} {best[f]:8.1f} {median[f]:8.1f} {best[f] / best['english.txt']:8.0%} "
          f"{median[f] / median['english.txt']:8.0%} {median[f] / median['chinese.txt']:8.0%}")
EOF
done
