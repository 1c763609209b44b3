#!/usr/bin/env bash
# Single-threaded tokenizer throughput: this gateway's tokenizer and the reference, same files, one run:
# tiktoken 0.14, or for deepseek_v3 Hugging Face tokenizers with DeepSeek's tokenizer.json (../shared/vocab).
#   Benchmarks/tokenizer-throughput.sh [o200k_base|cl100k_base|qwen|deepseek_v3]   (default: all four)
#   ROUNDS=3 SECONDS_PER_FILE=1 (defaults): the two tokenizers take turns for ROUNDS rounds and each
#   reports its best pass over all rounds, so a slow spell of this machine hits both alike.
#   GATEWAY_BIN=path times that binary instead of building .build/release/gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_FILE=${SECONDS_PER_FILE:-1}
ROUNDS=${ROUNDS:-3}
source Benchmarks/tokenizer/prepare.sh
# tiktoken reads cached vocabularies named by the SHA-1 of their download URL (docs/tokenizer.md).
mkdir -p "$work/cache"
cp Sources/Metering/Resources/vocab/o200k_base.tiktoken "$work/cache/fb374d419588a4632f3f557e76b4b70aebbca790"
cp Sources/Metering/Resources/vocab/cl100k_base.tiktoken "$work/cache/9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
deepseek_json=${DEEPSEEK_TOKENIZER_JSON:-../shared/vocab/deepseek_v3_tokenizer.json}
for enc in ${1:-o200k_base cl100k_base qwen deepseek_v3}; do
  reference=tiktoken
  [ "$enc" = deepseek_v3 ] && reference=hf_tokenizers
  echo "== $enc (MB/s, single thread; ms per pass)"
  printf '%-16s %10s %12s %12s %9s %12s\n' file bytes ours "$reference" speedup tokens_equal
  # One after the other (never concurrently), each pinned to the same core, taking turns.
  for round in $(seq "$ROUNDS"); do
    taskset -c 0 "$GATEWAY_BIN" tokens bench --encoding "$enc" --seconds "$SECONDS_PER_FILE" $files \
      >"$work/ours.$round"
    if [ "$enc" = deepseek_v3 ]; then
      taskset -c 0 .venv/bin/python Benchmarks/tokenizer/hf_bench.py "$deepseek_json" "$SECONDS_PER_FILE" $files \
        >"$work/theirs.$round"
    else
      TIKTOKEN_CACHE_DIR="$work/cache" taskset -c 0 .venv/bin/python Benchmarks/tokenizer/tiktoken_bench.py \
        "$enc" Sources/Metering/Resources/vocab "$SECONDS_PER_FILE" $files >"$work/theirs.$round"
    fi
  done
  # Columns of each: file, bytes, tokens, MB/s, ms per pass. Best MB/s per file over the rounds.
  best() { sort -t$'\t' -k1,1 -k4,4gr "$@" | awk -F'\t' '!seen[$1]++'; }
  paste <(best "$work"/ours.*) <(best "$work"/theirs.*) |
  awk -F'\t' '{ split($1, p, "/")
    if ($8 < 0) { printf "%-16s %10d %12s %12s %9s %12s\n", p[length(p)], $2, $4, "failed", "-", "-"; next }
    printf "%-16s %10d %12s %12s %8.1fx %12s\n", p[length(p)], $2, $4, $9, $4/$9, ($3==$8?"yes":"NO " $3 "/" $8) }'
done
