#!/usr/bin/env bash
# Admission on PostgreSQL against SQLite, in one run: requests per second and p50 latency through the
# gateway for a tenant whose every request is admitted against a free quota and a hard budget (so each
# admission reserves and each settlement draws on the counters), on
#   sqlite     one gateway on the embedded store
#   pg-1       one gateway on PostgreSQL
#   pg-3       three gateways on the same PostgreSQL, the load spread evenly (one wrk per replica)
# and, for reference, the same with a tenant no quota or budget holds (`open`: no counter is touched).
# The upstream is the built-in mock provider, so what differs between rows is the store. Both stores
# commit without fsync (SQLite `ledger_sync: normal`; the throwaway cluster runs with fsync off). Nothing
# is pinned: on two cores the gateways, PostgreSQL and wrk share them, which caps pg-3.
#
#   Benchmarks/scale-out.sh                       # 5 s per run, 32 connections
#   DURATION=10 CONNS=48 Benchmarks/scale-out.sh
#   GATEWAY_BIN=path Benchmarks/scale-out.sh      # a given binary, no build
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}

scripts/install-deps.sh --bench --no-python
if [ -n "${GATEWAY_BIN:-}" ]; then
  BIN=$(realpath "$GATEWAY_BIN")
else
  flock /tmp/build.lock swift build -c release --product gateway >/dev/null
  BIN=$PWD/.build/release/gateway
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pg_dir=$(mktemp -d /tmp/gw-bench-pg-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Gateways start inside command substitutions, so their pids are in a file, not in `pids`.
  [ -f "$work/gateway.pids" ] && xargs -r kill <"$work/gateway.pids" 2>/dev/null || true
  scripts/pg-cluster.sh stop "$pg_dir" >/dev/null 2>&1 || true
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

URL=$(scripts/pg-cluster.sh start "$pg_dir" "$(free_port)" | tail -1)
cp -r policies "$work/policies"
cat >"$work/policies/plans.yaml" <<'YAML'
default_plan: metered
plans:
  metered:
    max_output_tokens: 64
    free_quota:
      period: month
      unit: tokens
      schedule:
        - {from: 2025-01-01, amount: 1000}
  open: {}
YAML
sed -i 's/^server:$/server:\n  ledger_sync: normal/' "$work/policies/gateway.yaml"

# store: "sqlite" or "pg"; prints "metered-key open-key".
tenants() {
  local store=(--data "$work/$1" --config "$work/policies/gateway.yaml")
  [ "$1" = pg ] && store=(--database-url "$URL" --config "$work/policies/gateway.yaml")
  "$BIN" tenants create metered "${store[@]}" >/dev/null
  "$BIN" budgets set metered --limit 1000000 --currency USD --period month "${store[@]}" >/dev/null
  "$BIN" tenants create open "${store[@]}" >/dev/null
  "$BIN" tenants update open --plan open "${store[@]}" >/dev/null
  echo "$("$BIN" keys create --tenant metered "${store[@]}" | tail -1) $("$BIN" keys create --tenant open "${store[@]}" | tail -1)"
}

# Starts a gateway on store $1 (sqlite or pg); prints its port.
gateway() {
  local port
  port=$(free_port)
  local env=()
  [ "$1" = pg ] && env=(GATEWAY_DATABASE_URL="$URL")
  env "${env[@]}" "$BIN" serve --data "$work/$1" --config "$work/policies/gateway.yaml" --port "$port" \
    --threads 1 >"$work/gateway-$port.log" 2>&1 &
  echo $! >>"$work/gateway.pids"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  echo "$port"
}

# run LABEL KEY PORT...: one wrk per port, CONNS spread over them; prints the summed rate and the median p50.
run() {
  local label=$1 key=$2
  shift 2
  local n=$# each=$((CONNS / $#)) i=0 wrks=()
  [ "$each" -ge 1 ] || each=1
  for port in "$@"; do
    KEY=$key MODEL=mock-gpt-4o-mini wrk -t1 -c"$each" -d"${DURATION}s" --latency -s Benchmarks/chat.lua \
      "http://127.0.0.1:$port/v1/chat/completions" >"$work/wrk-$i.out" 2>&1 &
    wrks+=($!)
    i=$((i + 1))
  done
  for j in "${wrks[@]}"; do wait "$j" || true; done
  python3 - "$label" "$work" "$n" <<'PY'
import re, statistics, sys
label, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = []
for i in range(n):
    text = open(f"{work}/wrk-{i}.out").read()
    m = re.search(r"BENCH rps=(\d+) p50_us=(\d+) p99_us=(\d+) non2xx=(\d+) errors=(\d+)", text)
    if not m:
        sys.exit(f"{label}: no result\n{text}")
    rows.append(tuple(int(x) for x in m.groups()))
bad = sum(r[3] + r[4] for r in rows)
print(f"{label:<18} {sum(r[0] for r in rows):>8} req/s   p50 {statistics.median(r[1] for r in rows):>6} us"
      f"   p99 {statistics.median(r[2] for r in rows):>6} us   non-2xx+errors {bad}")
PY
}

read -r S_METERED S_OPEN <<<"$(tenants sqlite)"
read -r P_METERED P_OPEN <<<"$(tenants pg)"
SQ=$(gateway sqlite)
P1=$(gateway pg)
P2=$(gateway pg)
P3=$(gateway pg)
echo "$CONNS connections, ${DURATION}s per run, mock upstream"
# Warm-up: first admissions create the counter rows.
run warmup "$S_METERED" "$SQ" >/dev/null
run warmup "$P_METERED" "$P1" "$P2" "$P3" >/dev/null
run "sqlite metered" "$S_METERED" "$SQ"
run "pg-1 metered" "$P_METERED" "$P1"
run "pg-3 metered" "$P_METERED" "$P1" "$P2" "$P3"
run "sqlite open" "$S_OPEN" "$SQ"
run "pg-1 open" "$P_OPEN" "$P1"
run "pg-3 open" "$P_OPEN" "$P1" "$P2" "$P3"
# One connection: the latency a single client sees.
CONNS=1 run "sqlite metered c1" "$S_METERED" "$SQ"
CONNS=1 run "pg-1 metered c1" "$P_METERED" "$P1"
CONNS=1 run "sqlite open c1" "$S_OPEN" "$SQ"
CONNS=1 run "pg-1 open c1" "$P_OPEN" "$P1"
