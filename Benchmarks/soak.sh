#!/usr/bin/env bash
# Soak: many concurrent, slowly paced streams through the gateway, with nginx proxying the same
# upstream as the floor, in the same run. Loopback only, bounded in time.
#
# Core 0: the proxy under test (nginx's one worker, the gateway, the baseline). Core 1: the paced
# upstream (Benchmarks/soak/paced_upstream.c), the client (Benchmarks/soak/stream_client.c) and this
# script. Each stream is one streamed chat completion of EVENTS events, one every INTERVAL_MS; every
# event carries its send time, so the client measures each event's delay end to end.
#
# For each target in turn (nginx, the gateway, then BASELINE_BIN if given): a warm-up of 50 streams,
# then STREAMS streams opened at once. Measured: the target's CPU time (utime+stime of the process, for
# nginx its worker) over the run, its VmRSS with every stream open (sampled by the client when each
# stream has had its first event) less its VmRSS before, and the delays of all events.
#
#   Benchmarks/soak.sh                           # 1000 streams of 40 events at 100 ms (~4 s a target)
#   STREAMS=2000 EVENTS=100 INTERVAL_MS=50 Benchmarks/soak.sh
#   LEDGER_SYNC=full Benchmarks/soak.sh          # default normal (ledger commits without fsync)
#   BASELINE_BIN=/path/to/older/gateway Benchmarks/soak.sh   # a third target, configured the same
#   GATEWAY_BIN=.build/release/gateway Benchmarks/soak.sh    # skip the build, use this binary
#   GATEWAY_THREADS=2 Benchmarks/soak.sh         # --threads (still pinned to core 0)
#   ROUNDS=3 Benchmarks/soak.sh                  # the targets in turn, three times (one row each);
#                                                # KiB/stream counts in round 1 only: later rounds
#                                                # reuse the memory the first one left behind
#   SPREAD=0 Benchmarks/soak.sh                  # first events not spread (see paced_upstream.c)
#   TRACE="perf record -g -o /tmp/soak.perf -p" Benchmarks/soak.sh   # a command given the gateway's pid
#                                                # (TRACE_TARGET=nginx: its worker's),
#                                                # run during its measured streams, then sent SIGTERM
#
# The streams' requests go out at once, but by default (SPREAD=1) the upstream spreads their first
# events over one interval, so every target sees the same steady flow of events (STREAMS per
# interval, evenly spaced) however fast it passed the requests on; the delays are then comparable.
#
# Exits non-zero if any stream of any target did not complete.
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-1000}
EVENTS=${EVENTS:-40}
INTERVAL_MS=${INTERVAL_MS:-100}
LEDGER_SYNC=${LEDGER_SYNC:-normal}
GATEWAY_THREADS=${GATEWAY_THREADS:-1}
WARMUP_STREAMS=${WARMUP_STREAMS:-50}
SPREAD=${SPREAD:-1}
ROUNDS=${ROUNDS:-1}
UPORT=${UPORT:-19190}   # paced upstream
NPORT=${NPORT:-18190}   # nginx
GPORT=${GPORT:-18180}   # gateway
BPORT=${BPORT:-18181}   # baseline gateway
BUILD_LOCK=${BUILD_LOCK:-/tmp/build.lock}

# Every stream holds a client socket, a proxy socket on each side and an upstream socket.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((STREAMS * 2 + 100)) ] || { echo "ulimit -n $(ulimit -n) is too low for $STREAMS streams" >&2; exit 1; }
# This shell and what it starts run on core 1 unless pinned elsewhere below.
taskset -pc 1 $$ >/dev/null

for tool in nginx taskset cc curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/install-deps.sh --bench --no-python)" >&2; exit 1; }
done
if [ -n "${GATEWAY_BIN:-}" ]; then
  BIN=$(realpath "$GATEWAY_BIN")
else
  flock "$BUILD_LOCK" swift build -c release --product gateway >/dev/null
  BIN=$PWD/.build/release/gateway
fi
BASE_BIN=${BASELINE_BIN:+$(realpath "$BASELINE_BIN")}

source Benchmarks/soak/lib.sh
check_ports_free "$UPORT" "$NPORT" "$GPORT" ${BASE_BIN:+"$BPORT"}
build_soak_tools
out=$SOAK_OUT
UPSTREAM=$out/paced_upstream
CLIENT=$out/stream_client

start_work

wait_port() { # port: until something answers HTTP there (any status)
  for _ in $(seq 1 100); do
    curl -s -o /dev/null --max-time 2 "127.0.0.1:$1/readyz" && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  return 1
}

# --- the paced upstream, core 1
taskset -c 1 "$UPSTREAM" "$UPORT" "$EVENTS" "$INTERVAL_MS" "$SPREAD" >"$work/upstream.log" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")

# --- nginx, one worker, core 0
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 16384; use epoll; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream paced {
    server 127.0.0.1:$UPORT;
    keepalive 1024;
  }
  server {
    listen 127.0.0.1:$NPORT backlog=4096;
    location / {
      proxy_pass http://paced;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 120s;
    }
  }
}
NGINX
taskset -c 0 nginx -p "$work/nginx" -e "$work/nginx/logs/error.log" -c "$work/nginx/nginx.conf" \
  -g 'daemon off;' &
nginx_master=$!
pids+=("$nginx_master")

# --- the gateway (and the baseline), core 0, configured as Benchmarks/proxy-wrk.sh configures it
mkdir -p "$work/gw" "$work/base"
cat >"$work/gw/gateway.yaml" <<YAML
server: {host: 127.0.0.1, port: $GPORT, ledger_sync: $LEDGER_SYNC}
providers:
  - {name: paced, kind: openai, base_url: "http://127.0.0.1:$UPORT/v1", api_key_env: BENCH_UPSTREAM_KEY}
models:
  - {name: soak-gpt, provider: paced, tokenizer: o200k_base}
YAML
cat >"$work/gw/prices.yaml" <<YAML
prices:
  soak-gpt:
    - {effective_from: 2025-01-01, currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
YAML
"$BIN" tenants create soak --data "$work/gw" >/dev/null
KEY=$("$BIN" keys create --tenant soak --data "$work/gw" | tail -1)
BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning taskset -c 0 "$BIN" serve --data "$work/gw" \
  --config "$work/gw/gateway.yaml" --threads "$GATEWAY_THREADS" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")
if [ -n "$BASE_BIN" ]; then
  # A baseline from before `ledger_sync` existed runs with its default.
  drop_sync=()
  grep -aqs ledger_sync "$BASE_BIN" || drop_sync=(-e "s/, ledger_sync: [a-z]*//")
  sed -e "s/port: $GPORT/port: $BPORT/" "${drop_sync[@]}" "$work/gw/gateway.yaml" >"$work/base/gateway.yaml"
  cp "$work/gw/prices.yaml" "$work/base/prices.yaml"
  "$BASE_BIN" tenants create soak --data "$work/base" >/dev/null
  BKEY=$("$BASE_BIN" keys create --tenant soak --data "$work/base" | tail -1)
  BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning taskset -c 0 "$BASE_BIN" serve --data "$work/base" \
    --config "$work/base/gateway.yaml" --threads "$GATEWAY_THREADS" >"$work/baseline.log" 2>&1 &
  baseline_pid=$!
  pids+=("$baseline_pid")
fi
wait_port "$UPORT"
wait_port "$NPORT"
wait_port "$GPORT"
[ -z "$BASE_BIN" ] || wait_port "$BPORT"
nginx_worker=$(pgrep -P "$nginx_master" | head -1)
[ -n "$nginx_worker" ] || { echo "no nginx worker" >&2; cat "$work/nginx/logs/error.log" >&2; exit 1; }

TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid: utime+stime of the whole process, in clock ticks
  local stat rest f
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  read -ra f <<<"$rest"
  echo $((f[11] + f[12]))
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
field() { sed -n "s/.* $1=\([0-9-]*\).*/\1/p" <<<"$2"; }

timeout_s=$((EVENTS * INTERVAL_MS / 1000 + 60))
failed=0
results=()
measure() { # name port key pid
  local name=$1 port=$2 key=$3 pid=$4 line c0 c1 u0 u1 r0
  line=$(taskset -c 1 "$CLIENT" soak 127.0.0.1 "$port" "$WARMUP_STREAMS" "$key" "$timeout_s" 2>/dev/null || true)
  [ "$(field complete "$line")" = "$WARMUP_STREAMS" ] || { echo "$name: warm-up failed: $line" >&2; failed=1; }
  sleep 1
  r0=$(rss_kib "$pid")
  c0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$upstream_pid")
  local trace=""
  if [ -n "${TRACE:-}" ] && [ "$name" = "${TRACE_TARGET:-gateway}" ]; then
    taskset -c 1 $TRACE "$pid" >"$work/trace.log" 2>&1 &
    trace=$!
  fi
  line=$(taskset -c 1 "$CLIENT" soak 127.0.0.1 "$port" "$STREAMS" "$key" "$timeout_s" "$pid" 2>"$work/client.err" || true)
  [ -z "$trace" ] || { kill -TERM "$trace" 2>/dev/null; wait "$trace" || true; }
  sleep 1  # what the target still does after the last byte (e.g. the ledger) counts too
  c1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$upstream_pid")
  grep -q ALL_OPEN "$work/client.err" || echo "$name: not every stream had its first event at once; RSS is the peak" >&2
  [ "$(field complete "$line")" = "$STREAMS" ] || { echo "$name: $line" >&2; failed=1; }
  results+=("$name round=$round rss_before_kib=$r0 cpu_ticks=$((c1 - c0)) upstream_ticks=$((u1 - u0)) $line")
}

for round in $(seq 1 "$ROUNDS"); do
  measure nginx "$NPORT" - "$nginx_worker"
  measure gateway "$GPORT" "$KEY" "$gateway_pid"
  [ -z "$BASE_BIN" ] || measure baseline "$BPORT" "$BKEY" "$baseline_pid"
done

echo "soak: $STREAMS streams x $EVENTS events every $INTERVAL_MS ms (spread $SPREAD); gateway --threads $GATEWAY_THREADS, ledger_sync $LEDGER_SYNC; ulimit -n $(ulimit -n)"
printf '%-9s %5s %8s %6s %6s %12s %10s %9s %7s %7s %7s %6s %6s\n' target round complete events cpu_s \
  cpu_s/100kev KiB/stream peak/strm p50_ms p99_ms max_ms errors wall_s
for r in "${results[@]}"; do
  awk -v tck="$TCK" -v streams="$STREAMS" -v name="${r%% *}" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END {
      cpu = v["cpu_ticks"] / tck
      ro = v["rss_open_kib"] > 0 ? v["rss_open_kib"] : v["rss_peak_kib"]
      printf "%-9s %5d %8d %6d %6.2f %12.3f %10.1f %9.1f %7.2f %7.2f %7.2f %6d %6.1f\n", name, v["round"],
        v["complete"], v["events"], cpu, (v["events"] > 0 ? cpu / v["events"] * 100000 : 0),
        (ro - v["rss_before_kib"]) / streams, (v["rss_peak_kib"] - v["rss_before_kib"]) / streams,
        v["delay_p50_us"] / 1000, v["delay_p99_us"] / 1000, v["delay_max_us"] / 1000, v["errors"], v["wall_ms"] / 1000
    }' <<<"$r"
done
for r in "${results[@]}"; do
  echo "  ${r%% *} round $(field round "$r"): rss_before=$(field rss_before_kib "$r") KiB, rss_open=$(field rss_open_kib "$r") KiB, rss_peak=$(field rss_peak_kib "$r") KiB; upstream cpu $(awk -v t="$(field upstream_ticks "$r")" -v tck="$TCK" 'BEGIN{printf "%.2f", t/tck}') s"
done
ratio() { # a b round: a's CPU per event / b's, and a's p99 - b's p99 in ms
  local a b
  a=$(printf '%s\n' "${results[@]}" | grep "^$1 round=$3 ")
  b=$(printf '%s\n' "${results[@]}" | grep "^$2 round=$3 ")
  awk -v ca="$(field cpu_ticks "$a")" -v ea="$(field events "$a")" -v cb="$(field cpu_ticks "$b")" \
    -v eb="$(field events "$b")" -v pa="$(field delay_p99_us "$a")" -v pb="$(field delay_p99_us "$b")" \
    -v a="$1" -v b="$2" -v round="$3" 'BEGIN {
      r = (cb > 0 && ea > 0 && eb > 0) ? (ca / ea) / (cb / eb) : 0
      printf "%s/%s round %d: CPU per event x%.2f, p99 delay %+.2f ms\n", a, b, round, r, (pa - pb) / 1000 }'
}
for round in $(seq 1 "$ROUNDS"); do
  ratio gateway nginx "$round"
  [ -z "$BASE_BIN" ] || ratio gateway baseline "$round"
done
if [ "$failed" != 0 ]; then
  echo "some streams did not complete; gateway log tail:" >&2
  tail -20 "$work/gateway.log" >&2
  exit 1
fi
