#!/usr/bin/env bash
# Gateway vs. calling the upstream directly, with wrk, on loopback only and bounded in time.
#
# Core 0: the gateway (release build, one event-loop thread). Core 1: the upstream emulator and wrk.
# Each scenario runs against the emulator directly and through the gateway in the same run; the added
# latency is the difference of the two p50s and p99s.
#
#   Benchmarks/proxy-wrk.sh            # 10 s per run
#   DURATION=5 Benchmarks/proxy-wrk.sh
#   LEDGER_SYNC=normal Benchmarks/proxy-wrk.sh    # ledger commits without fsync (see server.ledger_sync)
#   SCENARIOS="nonstream-c1 stream-c1" Benchmarks/proxy-wrk.sh
#   BASELINE_REF=e321357 Benchmarks/proxy-wrk.sh   # also run an older build (release, from a git
#                                                  # worktree) in the same run: what later work added
#   FLOOR=0 Benchmarks/proxy-wrk.sh   # skip the floor (saves building the Benchmarks package)
#
# The "floor" target is Benchmarks/BareForwarder: Hummingbird 2 and AsyncHTTPClient set up as the
# gateway sets them up (one event loop, which is also the Swift concurrency executor), forwarding and
# nothing else. It is what the server and client stack allows on this machine before the gateway does
# any work of its own; "vs-floor" is what the gateway's pipeline (auth, parsing, counting, admission,
# metering, the ledger commit) adds on top.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
EPORT=${EPORT:-19090}
GPORT=${GPORT:-18080}

scripts/install-deps.sh --bench --no-python
swift build -c release --product gateway >/dev/null
BIN=$PWD/.build/release/gateway
BASE_BIN=""
if [ -n "${BASELINE_REF:-}" ]; then
  tree=.build/baseline-$BASELINE_REF
  [ -d "$tree" ] || git worktree add --detach "$tree" "$BASELINE_REF" >/dev/null
  (cd "$tree" && swift build -c release --product gateway >/dev/null)
  BASE_BIN=$PWD/$tree/.build/release/gateway
fi
BPORT=${BPORT:-18081}
FPORT=${FPORT:-18083}
FLOOR_BIN=""
if [ "${FLOOR:-1}" != 0 ]; then
  swift build -c release --package-path Benchmarks --product BareForwarder >/dev/null
  FLOOR_BIN=$PWD/Benchmarks/.build/release/BareForwarder
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/gateway.yaml" <<YAML
server: {host: 127.0.0.1, port: $GPORT, ledger_sync: ${LEDGER_SYNC:-full}}
providers:
  - {name: emu, kind: openai, base_url: "http://127.0.0.1:$EPORT/v1", api_key_env: BENCH_UPSTREAM_KEY}
models:
  - {name: bench-gpt, provider: emu, tokenizer: o200k_base}
YAML
cat >"$work/prices.yaml" <<YAML
prices:
  bench-gpt:
    - {effective_from: 2025-01-01, currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
YAML
"$BIN" tenants create bench --data "$work" >/dev/null
KEY=$("$BIN" keys create --tenant bench --data "$work" | tail -1)

taskset -c 1 "$BIN" emulator --port "$EPORT" --threads 1 >"$work/emulator.log" 2>&1 &
pids+=($!)
BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning taskset -c 0 "$BIN" serve --data "$work" \
  --config "$work/gateway.yaml" --threads 1 >"$work/gateway.log" 2>&1 &
pids+=($!)
if [ -n "$BASE_BIN" ]; then
  # Same settings, on its own port; a baseline from before `ledger_sync` existed runs with its default.
  drop_sync=""
  grep -rqs ledger_sync "$tree/Sources" || drop_sync=(-e "s/, ledger_sync: [a-z]*//")
  sed -e "s/port: $GPORT/port: $BPORT/" ${drop_sync:+"${drop_sync[@]}"} "$work/gateway.yaml" >"$work/baseline.yaml"
  mkdir -p "$work/base"
  "$BASE_BIN" tenants create bench --data "$work/base" >/dev/null
  BKEY=$("$BASE_BIN" keys create --tenant bench --data "$work/base" | tail -1)
  BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning taskset -c 0 "$BASE_BIN" serve --data "$work/base" \
    --config "$work/baseline.yaml" --threads 1 >"$work/baseline.log" 2>&1 &
  pids+=($!)
fi
if [ -n "$FLOOR_BIN" ]; then
  taskset -c 0 "$FLOOR_BIN" "$FPORT" "http://127.0.0.1:$EPORT" >"$work/floor.log" 2>&1 &
  pids+=($!)
fi
for port in $GPORT ${BASE_BIN:+$BPORT} ${FLOOR_BIN:+$FPORT}; do
  for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
done

run() { # name url connections stream key
  local out
  out=$(STREAM=$4 KEY=$5 taskset -c 1 wrk -t1 -c"$3" -d"${DURATION}s" --latency -s Benchmarks/chat.lua "$2" | grep '^BENCH')
  echo "$1 $out"
}

printf '%-22s %-11s %10s %10s %10s\n' scenario target req/s p50_us p99_us
results=()
SCENARIOS=${SCENARIOS:-nonstream-c1 nonstream-c32 stream-c1 stream-c32}
for scenario in "nonstream-c1 1 0" "nonstream-c32 32 0" "stream-c1 1 1" "stream-c32 32 1"; do
  set -- $scenario
  case " $SCENARIOS " in *" $1 "*) ;; *) continue ;; esac
  d=$(run direct "http://127.0.0.1:$EPORT/v1/chat/completions" "$2" "$3" "")
  g=$(run gateway "http://127.0.0.1:$GPORT/v1/chat/completions" "$2" "$3" "$KEY")
  b=""
  [ -n "$BASE_BIN" ] && b=$(run baseline "http://127.0.0.1:$BPORT/v1/chat/completions" "$2" "$3" "$BKEY")
  f=""
  [ -n "$FLOOR_BIN" ] && f=$(run floor "http://127.0.0.1:$FPORT/v1/chat/completions" "$2" "$3" "")
  for line in "$d" "$g" ${b:+"$b"} ${f:+"$f"}; do
    target=${line%% *}
    rps=$(sed -n 's/.*rps=\([0-9]*\).*/\1/p' <<<"$line")
    p50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$line")
    bad=$(sed -n 's/.*non2xx=\([0-9]*\) errors=\([0-9]*\).*/\1+\2/p' <<<"$line")
    printf '%-22s %-11s %10s %10s %10s   (non-2xx+errors: %s)\n' "$1" "$target" "$rps" "$p50" "$p99" "$bad"
  done
  dp50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$d"); gp50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$g")
  dp99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$d"); gp99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$g")
  printf '%-22s %-11s %21s %10s\n' "$1" added "$((gp50 - dp50))" "$((gp99 - dp99))"
  if [ -n "$b" ]; then
    bp50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$b"); bp99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$b")
    printf '%-22s %-11s %21s %10s\n' "$1" "vs-base" "$((gp50 - bp50))" "$((gp99 - bp99))"
  fi
  if [ -n "$f" ]; then
    fp50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$f"); fp99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$f")
    printf '%-22s %-11s %21s %10s\n' "$1" "floor-added" "$((fp50 - dp50))" "$((fp99 - dp99))"
    printf '%-22s %-11s %21s %10s\n' "$1" "vs-floor" "$((gp50 - fp50))" "$((gp99 - fp99))"
  fi
done
# Where the gateway's time went, from its own /metrics: mean ledger commit (the fsync under
# ledger_sync: full) and mean records per commit, over every scenario above.
curl -s "127.0.0.1:$GPORT/metrics" | awk '
  /^gateway_ledger_commit_seconds_sum/ {s=$2} /^gateway_ledger_commit_seconds_count/ {n=$2}
  /^gateway_ledger_commit_batch_records_sum/ {r=$2}
  END { if (n > 0) printf "gateway ledger: %d commits, mean %.0f us per commit, %.1f records per commit\n", n, s / n * 1e6, r / n }'

