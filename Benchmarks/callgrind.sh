#!/usr/bin/env bash
# Instructions per request: a figure that does not move with the machine's load. Loopback only,
# bounded in time.
#
# Each target (the gateway, Benchmarks/BareForwarder, then BASELINE_BIN if given) runs alone under
# `valgrind --tool=callgrind` with one event-loop thread, pinned to core 0, in front of the paced
# upstream (Benchmarks/soak/paced_upstream.c) with INTERVAL_MS=0, on core 1: a streamed request gets
# its EVENTS content events, the finish and usage events and [DONE] in one write; a non-streamed one
# (STREAM=0) gets a chat.completion JSON body with Content-Length. Instrumentation is off while the
# target starts (`--instr-atstart=no`) and turned on before WARMUP requests; then the counters are
# zeroed (`callgrind_control -z`), exactly M requests run one after another on one keep-alive
# connection (`stream_client count`), and the counters are dumped (`callgrind_control -d`, one second
# after the last response, so work the target finishes after it counts too). Ir per request = the
# dump's total instructions (all threads) / M.
#
#   Benchmarks/callgrind.sh                     # M=2000 streamed requests per target
#   STREAM=0 Benchmarks/callgrind.sh            # non-streamed
#   CONNS=32 Benchmarks/callgrind.sh            # M requests over 32 connections at once (M/32 each)
#   FRESH=1 Benchmarks/callgrind.sh             # each request on a new connection (the soak's case)
#   INTERVAL_MS=1 EVENTS=45 Benchmarks/callgrind.sh   # events one per write, 1 ms apart: the Ir of a
#                                                # relayed event is (this - the same with EVENTS=5) / 40
#   ROUNDS=2 Benchmarks/callgrind.sh            # every target twice: the figure should repeat (~1%)
#   BASELINE_BIN=/path/to/older/gateway Benchmarks/callgrind.sh
#   GATEWAY_BIN=.build/release/gateway FLOOR=0 Benchmarks/callgrind.sh   # no builds, no floor
#   FLOOR=NIOForwarder Benchmarks/callgrind.sh   # the floor with a bare NIO client, not AsyncHTTPClient
#
# The dumps stay in a folder of their own per run, .build-soak/callgrind/DATE-TIME-PID/ (printed at
# the end; callgrind.out.TARGET.rROUND), for
#   callgrind_annotate --inclusive=yes FOLDER/callgrind.out.gateway.r1 | swift demangle --simplified | less
#
# Valgrind 3.19 (Debian 12) needs two workarounds for Swift binaries, both applied here: it cannot read
# the toolchain's DWARF 5 ("unhandled dwarf2 abbrev form code 0x25", then "Possibly corrupted
# debuginfo file"), so each target runs as a copy without debug info (`objcopy --strip-debug`; the
# symbol table stays, so functions keep their names, without file:line); and it crashes in the
# sigsuspend() that dispatch_main() ends in, which Benchmarks/soak/sigsuspend_shim.c (LD_PRELOAD)
# avoids (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${M:-2000}
STREAM=${STREAM:-1}
WARMUP=${WARMUP:-200}
EVENTS=${EVENTS:-5}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-1}
INTERVAL_MS=${INTERVAL_MS:-0}   # above 0: one event per write, as in the soak (compare EVENTS=5 and 45)
LEDGER_SYNC=${LEDGER_SYNC:-normal}
UPORT=${UPORT:-19290}   # paced upstream
GPORT=${GPORT:-18280}   # gateway
BPORT=${BPORT:-18281}   # baseline gateway
FPORT=${FPORT:-18283}   # bare forwarder
BUILD_LOCK=${BUILD_LOCK:-/tmp/build.lock}

for tool in valgrind callgrind_control objcopy taskset cc curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/install-deps.sh --bench --no-python)" >&2; exit 1; }
done
# This shell and what it starts run on core 1 unless pinned elsewhere below.
taskset -pc 1 $$ >/dev/null
if [ -n "${GATEWAY_BIN:-}" ]; then
  BIN=$(realpath "$GATEWAY_BIN")
else
  flock "$BUILD_LOCK" swift build -c release --product gateway >/dev/null
  BIN=$PWD/.build/release/gateway
fi
FLOOR_BIN=""
if [ "${FLOOR:-1}" != 0 ]; then
  # FLOOR=NIOForwarder measures Benchmarks/NIOForwarder (AsyncHTTPClient replaced by a bare NIO client).
  floor_product=BareForwarder
  [ "${FLOOR:-1}" = NIOForwarder ] && floor_product=NIOForwarder
  flock "$BUILD_LOCK" swift build -c release --package-path Benchmarks --product "$floor_product" >/dev/null
  FLOOR_BIN=$PWD/Benchmarks/.build/release/$floor_product
fi
BASE_BIN=${BASELINE_BIN:+$(realpath "$BASELINE_BIN")}

source Benchmarks/soak/lib.sh
check_ports_free "$UPORT" "$GPORT" ${FLOOR_BIN:+"$FPORT"} ${BASE_BIN:+"$BPORT"}
build_soak_tools
out=$SOAK_OUT
cg=$out/callgrind/$(date -u +%Y%m%d-%H%M%S)-$$
mkdir -p "$cg"
CLIENT=$out/stream_client

start_work
objcopy --strip-debug "$BIN" "$work/gateway.nodebug"
[ -z "$FLOOR_BIN" ] || objcopy --strip-debug "$FLOOR_BIN" "$work/BareForwarder.nodebug"
[ -z "$BASE_BIN" ] || objcopy --strip-debug "$BASE_BIN" "$work/baseline.nodebug"

taskset -c 1 "$out/paced_upstream" "$UPORT" "$EVENTS" "$INTERVAL_MS" >"$work/upstream.log" 2>&1 &
pids+=($!)

setup_gateway() { # bin dir port: writes the config and prints a key
  mkdir -p "$2"
  cat >"$2/gateway.yaml" <<YAML
server: {host: 127.0.0.1, port: $3, ledger_sync: $LEDGER_SYNC}
providers:
  - {name: paced, kind: openai, base_url: "http://127.0.0.1:$UPORT/v1", api_key_env: BENCH_UPSTREAM_KEY}
models:
  - {name: soak-gpt, provider: paced, tokenizer: o200k_base}
YAML
  # A baseline from before `ledger_sync` existed runs with its default.
  grep -aqs ledger_sync "$1" || sed -i -e "s/, ledger_sync: [a-z]*//" "$2/gateway.yaml"
  cat >"$2/prices.yaml" <<YAML
prices:
  soak-gpt:
    - {effective_from: 2025-01-01, currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
YAML
  "$1" tenants create soak --data "$2" >/dev/null
  "$1" keys create --tenant soak --data "$2" | tail -1
}
KEY=$(setup_gateway "$BIN" "$work/gw" "$GPORT")
[ -z "$BASE_BIN" ] || BKEY=$(setup_gateway "$BASE_BIN" "$work/base" "$BPORT")

results=()
measure() { # name port key command...: one target under callgrind, start to stop
  local name=$1 port=$2 key=$3 file pid line total ok=0
  shift 3
  file=$cg/callgrind.out.$name.r$round
  rm -f "$file" "$file".*
  BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning LD_PRELOAD=$out/sigsuspend_shim.so \
    taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$file" "$@" \
    >"$work/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do
    curl -s -o /dev/null --max-time 5 "127.0.0.1:$port/readyz" && { ok=1; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  [ "$ok" = 1 ] || { echo "$name did not start:" >&2; tail -30 "$work/$name.log" >&2; exit 1; }
  callgrind_control -i on "$pid" >/dev/null 2>&1
  line=$(taskset -c 1 "$CLIENT" count 127.0.0.1 "$port" "$WARMUP" "$STREAM" "$key" || true)
  [ "$line" = "COUNT requests=$WARMUP ok=$WARMUP errors=0" ] || { echo "$name warm-up: $line" >&2; exit 1; }
  sleep 1
  callgrind_control -z "$pid" >/dev/null 2>&1
  local each=$((M / CONNS)) c lines
  lines=$(for c in $(seq 1 "$CONNS"); do
    taskset -c 1 "$CLIENT" count 127.0.0.1 "$port" "$each" "$STREAM" "$key" &
  done; wait)
  [ "$(grep -c "^COUNT requests=$each ok=$each errors=0$" <<<"$lines")" = "$CONNS" ] ||
    { echo "$name: $lines" >&2; exit 1; }
  sleep 1
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 1 100); do [ -s "$file.1" ] && grep -q '^totals:' "$file.1" && break; sleep 0.1; done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  mv "$file.1" "$file"  # the dump replaces what the exit wrote
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
  results+=("$name $((total / (each * CONNS))) $round")
  echo "$name round $round: $total Ir over $((each * CONNS)) requests, $((total / (each * CONNS))) per request" >&2
}

for round in $(seq 1 "$ROUNDS"); do
  measure gateway "$GPORT" "$KEY" "$work/gateway.nodebug" serve --data "$work/gw" \
    --config "$work/gw/gateway.yaml" --threads 1
  [ -z "$FLOOR_BIN" ] || measure floor "$FPORT" - "$work/BareForwarder.nodebug" "$FPORT" "http://127.0.0.1:$UPORT"
  [ -z "$BASE_BIN" ] || measure baseline "$BPORT" "$BKEY" "$work/baseline.nodebug" serve --data "$work/base" \
    --config "$work/base/gateway.yaml" --threads 1
done

echo "callgrind: $((M / CONNS * CONNS)) $([ "$STREAM" = 1 ] && echo "streamed ($EVENTS events)" || echo non-streamed) requests per target over $CONNS connection(s), after $WARMUP; ledger_sync $LEDGER_SYNC"
printf '%-9s %15s %6s\n' target Ir_per_request round
for r in "${results[@]}"; do
  set -- $r
  printf '%-9s %15s %6s\n' "$1" "$2" "$3"
done
if [ "$ROUNDS" -gt 1 ]; then
  printf '%s\n' "${results[@]}" | awk '
    { n[$1]++; if (!($1 in lo) || $2 < lo[$1]) lo[$1] = $2; if ($2 > hi[$1]) hi[$1] = $2 }
    END { for (t in n) printf "%s: spread over %d rounds %.2f%%\n", t, n[t], (hi[t] - lo[t]) / lo[t] * 100 }'
fi
echo "callgrind dumps: $cg"
