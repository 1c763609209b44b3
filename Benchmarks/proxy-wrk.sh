#!/usr/bin/env bash
# Gateway vs. an nginx reverse proxy vs. calling the upstream directly, with wrk, on loopback only and
# bounded in time.
#
# Core 0: the proxies (the gateway as a release build with one event-loop thread; nginx with one
# worker). Core 1: the upstream and wrk. Every scenario runs each target in the same run:
#   direct    the upstream itself
#   nginx     an nginx reverse proxy in front of it: the floor (what proxying costs at the least)
#   gateway   this gateway
#   baseline  an older gateway build: BASELINE_REF=commit (built in a git worktree) or BASELINE_BIN=path
#   bare      Benchmarks/BareForwarder: Hummingbird 2 + AsyncHTTPClient forwarding and nothing else
#             (BARE=1), what that stack allows before the gateway does any work of its own
#   litellm   the LiteLLM proxy, its fastest mode (LITELLM=1; pip-installs litellm[proxy] into
#             .venv-litellm on first use)
# "added" is a target's p50 and p99 minus the direct call's; "x-nginx" is its req/s over nginx's.
#
# The upstream is nginx answering from memory (UPSTREAM=nginx, the default): a fixed chat completion,
# or a stream of 12 events, so that the upstream's own cost does not limit the run. UPSTREAM=emulator
# uses the gateway's upstream emulator instead (dearer: it caps the proxies near 7,000 req/s here).
#
#   Benchmarks/proxy-wrk.sh                      # 10 s per run
#   DURATION=5 SCENARIOS="nonstream-c1 nonstream-c32" Benchmarks/proxy-wrk.sh
#   LEDGER_SYNC=normal Benchmarks/proxy-wrk.sh   # ledger commits without fsync (see server.ledger_sync)
#   GATEWAY_THREADS=2 Benchmarks/proxy-wrk.sh    # the gateway on both cores (then nothing is pinned)
#   GATEWAY_BIN=path BASELINE_BIN=path Benchmarks/proxy-wrk.sh   # given binaries, no build
#   TRACE="perf record -g -o /tmp/c32.perf -p" SCENARIOS=nonstream-c32 Benchmarks/proxy-wrk.sh
#                     # a command given the gateway's pid (TRACE_TARGET=nginx|baseline: theirs) for the
#                     # length of each of its wrk runs, then sent SIGTERM
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
UPSTREAM=${UPSTREAM:-nginx}
THREADS=${GATEWAY_THREADS:-1}
EPORT=${EPORT:-19090}
GPORT=${GPORT:-18080}
BPORT=${BPORT:-18081}
NPORT=${NPORT:-18082}
FPORT=${FPORT:-18083}
LPORT=${LPORT:-18084}

scripts/install-deps.sh --bench --no-python
if [ -n "${GATEWAY_BIN:-}" ]; then
  BIN=$(realpath "$GATEWAY_BIN")
else
  flock /tmp/build.lock swift build -c release --product gateway >/dev/null
  BIN=$PWD/.build/release/gateway
fi
BASE_BIN=${BASELINE_BIN:+$(realpath "$BASELINE_BIN")}
tree=""
if [ -n "${BASELINE_REF:-}" ]; then
  tree=.build/baseline-$BASELINE_REF
  [ -d "$tree" ] || git worktree add --detach "$tree" "$BASELINE_REF" >/dev/null
  (cd "$tree" && flock /tmp/build.lock swift build -c release --product gateway >/dev/null)
  BASE_BIN=$PWD/$tree/.build/release/gateway
fi
FLOOR_BIN=""
if [ "${BARE:-0}" != 0 ]; then
  # BARE=NIOForwarder: the same server with a bare NIO client instead of AsyncHTTPClient.
  bare_product=BareForwarder
  [ "$BARE" = NIOForwarder ] && bare_product=NIOForwarder
  flock /tmp/build.lock swift build -c release --package-path Benchmarks --product "$bare_product" >/dev/null
  FLOOR_BIN=$PWD/Benchmarks/.build/release/$bare_product
fi
LITELLM_BIN=""
if [ "${LITELLM:-0}" != 0 ]; then
  [ -x .venv-litellm/bin/litellm ] || {
    python3 -m venv .venv-litellm
    .venv-litellm/bin/pip install -q --disable-pip-version-check 'litellm[proxy]'
  }
  LITELLM_BIN=$PWD/.venv-litellm/bin/litellm
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for conf in "$work"/nginx-*.conf; do
    [ -f "$conf" ] && nginx -p "$work" -c "$conf" -s stop 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Upstream paths: nginx serves a JSON answer under /v1 and a stream under /sse/v1 (it cannot look
# into a request body); the emulator answers both under /v1, by the request's "stream" flag.
if [ "$UPSTREAM" = nginx ]; then
  JSON_BASE=/v1 SSE_BASE=/sse/v1
  chunk() { # content finish -> one chat.completion.chunk event, escaped for nginx's config
    printf 'data: {\\"id\\":\\"chatcmpl-bench\\",\\"object\\":\\"chat.completion.chunk\\",\\"created\\":0,\\"model\\":\\"bench\\",\\"choices\\":[{\\"index\\":0,\\"delta\\":{%s},\\"finish_reason\\":%s}]}\\n\\n' "$1" "$2"
  }
  sse=$(chunk '\"role\":\"assistant\",\"content\":\"\"' null)
  for word in I am doing well, thank you for asking. How can I help; do
    sse+=$(chunk "\\\"content\\\":\\\"$word \\\"" null)
  done
  sse+=$(chunk '' '\"stop\"')
  sse+='data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":11,\"total_tokens\":32}}\n\ndata: [DONE]\n\n'
  json='{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":0,\"model\":\"bench\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"I am doing well, thank you for asking. How can I help?\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":11,\"total_tokens\":32}}'
  cat >"$work/nginx-upstream.conf" <<NGINX
worker_processes 1;
pid $work/nginx-upstream.pid;
error_log $work/nginx-upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$EPORT;
    location /v1/ { default_type application/json; return 200 "$json"; }
    location /sse/v1/ { default_type text/event-stream; return 200 "$sse"; }
  }
}
NGINX
  taskset -c 1 nginx -p "$work" -c "$work/nginx-upstream.conf"
else
  JSON_BASE=/v1 SSE_BASE=/v1
  taskset -c 1 "$BIN" emulator --port "$EPORT" --threads 1 >"$work/emulator.log" 2>&1 &
  pids+=($!)
fi

# The floor: nginx as a reverse proxy, set up as one would for streaming answers.
cat >"$work/nginx-proxy.conf" <<NGINX
worker_processes 1;
pid $work/nginx-proxy.pid;
error_log $work/nginx-proxy.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$EPORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
taskset -c 0 nginx -p "$work" -c "$work/nginx-proxy.conf"

cat >"$work/gateway.yaml" <<YAML
server: {host: 127.0.0.1, port: $GPORT, ledger_sync: ${LEDGER_SYNC:-full}}
providers:
  - {name: upstream, kind: openai, base_url: "http://127.0.0.1:$EPORT$JSON_BASE", api_key_env: BENCH_UPSTREAM_KEY}
  - {name: upstream-sse, kind: openai, base_url: "http://127.0.0.1:$EPORT$SSE_BASE", api_key_env: BENCH_UPSTREAM_KEY}
models:
  - {name: bench-gpt, provider: upstream, tokenizer: o200k_base}
  - {name: bench-gpt-sse, provider: upstream-sse, upstream_model: bench-gpt, tokenizer: o200k_base}
YAML
cat >"$work/prices.yaml" <<YAML
prices:
  bench-gpt:
    - {effective_from: 2025-01-01, currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
  bench-gpt-sse:
    - {effective_from: 2025-01-01, currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
YAML
pin=(taskset -c 0)
[ "$THREADS" != 1 ] && pin=()
"$BIN" tenants create bench --data "$work" >/dev/null
KEY=$("$BIN" keys create --tenant bench --data "$work" | tail -1)
BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning "${pin[@]}" "$BIN" serve --data "$work" \
  --config "$work/gateway.yaml" --threads "$THREADS" >"$work/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
if [ -n "$BASE_BIN" ]; then
  # Same settings, on its own port; a baseline from before `ledger_sync` existed runs with its default.
  drop_sync=()
  [ -n "$tree" ] && ! grep -rqs ledger_sync "$tree/Sources" && drop_sync=(-e "s/, ledger_sync: [a-z]*//")
  sed -e "s/port: $GPORT/port: $BPORT/" ${drop_sync[@]+"${drop_sync[@]}"} "$work/gateway.yaml" >"$work/baseline.yaml"
  mkdir -p "$work/base"
  cp "$work/prices.yaml" "$work/base/"
  "$BASE_BIN" tenants create bench --data "$work/base" >/dev/null
  BKEY=$("$BASE_BIN" keys create --tenant bench --data "$work/base" | tail -1)
  BENCH_UPSTREAM_KEY=bench-upstream-key LOG_LEVEL=warning "${pin[@]}" "$BASE_BIN" serve --data "$work/base" \
    --config "$work/baseline.yaml" --threads "$THREADS" >"$work/baseline.log" 2>&1 &
  base_pid=$!
  pids+=("$base_pid")
fi
SPORT=$((FPORT + 10))
if [ -n "$FLOOR_BIN" ]; then
  # It serves /v1/chat/completions only: a second one forwards to the upstream's streaming path.
  taskset -c 0 "$FLOOR_BIN" "$FPORT" "http://127.0.0.1:$EPORT${JSON_BASE%/v1}" >"$work/floor.log" 2>&1 &
  pids+=($!)
  taskset -c 0 "$FLOOR_BIN" "$SPORT" "http://127.0.0.1:$EPORT${SSE_BASE%/v1}" >"$work/floor-sse.log" 2>&1 &
  pids+=($!)
fi
if [ -n "$LITELLM_BIN" ]; then
  cat >"$work/litellm.yaml" <<YAML
model_list:
  - model_name: bench-gpt
    litellm_params: {model: openai/bench-gpt, api_base: "http://127.0.0.1:$EPORT$JSON_BASE", api_key: bench}
  - model_name: bench-gpt-sse
    litellm_params: {model: openai/bench-gpt, api_base: "http://127.0.0.1:$EPORT$SSE_BASE", api_key: bench}
litellm_settings: {telemetry: false}
general_settings: {master_key: sk-bench-litellm}  # a made-up local key: LiteLLM will not start without one
YAML
  taskset -c 0 "$LITELLM_BIN" --config "$work/litellm.yaml" --port "$LPORT" --num_workers 1 >"$work/litellm.log" 2>&1 &
  pids+=($!)
fi
ready() { # port path (LiteLLM takes a while to start)
  for _ in $(seq 1 900); do
    curl -s -o /dev/null "127.0.0.1:$1$2" && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  exit 1
}
ready "$EPORT" /
ready "$NPORT" /
ready "$GPORT" /readyz
[ -n "$BASE_BIN" ] && ready "$BPORT" /readyz
[ -n "$FLOOR_BIN" ] && ready "$FPORT" /readyz && ready "$SPORT" /readyz
[ -n "$LITELLM_BIN" ] && ready "$LPORT" /health/liveliness

# The process whose CPU a target's run is charged to (nginx: its worker), when it is one of ours.
declare -A cpu_pid=()
cpu_pid[gateway]=$gw_pid
[ -n "$BASE_BIN" ] && cpu_pid[baseline]=$base_pid
cpu_pid[nginx]=$(pgrep -P "$(cat "$work/nginx-proxy.pid")" | head -1)
ticks() { # pid -> user and system clock ticks so far
  awk '{ print $14, $15 }' "/proc/$1/stat"
}
run() { # target url connections stream key model
  local out pid=${cpu_pid[$1]:-} before=(0 0) after=(0 0)
  [ -n "$pid" ] && read -r -a before < <(ticks "$pid")
  local tracer=""
  if [ -n "${TRACE:-}" ] && [ -n "$pid" ] && [ "$1" = "${TRACE_TARGET:-gateway}" ]; then
    taskset -c 1 $TRACE "$pid" >"$work/trace-$1-$3.log" 2>&1 &
    tracer=$!
  fi
  out=$(STREAM=$4 KEY=$5 MODEL=$6 taskset -c 1 wrk -t1 -c"$3" -d"${DURATION}s" --latency -s Benchmarks/chat.lua "$2" |
    grep '^BENCH')
  if [ -n "$tracer" ]; then
    kill -TERM "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
  fi
  [ -n "$pid" ] && read -r -a after < <(ticks "$pid")
  echo "$1 $out user_ticks=$((after[0] - before[0])) sys_ticks=$((after[1] - before[1]))"
}
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }

# cpu_us: the target's user+system CPU per request during its run, from /proc (10 ms ticks), where
# the process is ours to watch (the gateway, the baseline, nginx's worker).
printf '%-15s %-9s %9s %9s %9s %9s %9s %8s %8s %7s\n' scenario target req/s p50_us p99_us +p50_us +p99_us x-nginx \
  cpu_us sys_%
SCENARIOS=${SCENARIOS:-nonstream-c1 nonstream-c32 stream-c1 stream-c32}
for scenario in "nonstream-c1 1 0" "nonstream-c32 32 0" "stream-c1 1 1" "stream-c32 32 1"; do
  set -- $scenario
  case " $SCENARIOS " in *" $1 "*) ;; *) continue ;; esac
  name=$1 conns=$2 stream=$3
  base=$JSON_BASE model=bench-gpt
  [ "$stream" = 1 ] && base=$SSE_BASE model=bench-gpt-sse
  lines=()
  lines+=("$(run direct "http://127.0.0.1:$EPORT$base/chat/completions" "$conns" "$stream" "" bench-gpt)")
  lines+=("$(run nginx "http://127.0.0.1:$NPORT$base/chat/completions" "$conns" "$stream" "" bench-gpt)")
  lines+=("$(run gateway "http://127.0.0.1:$GPORT/v1/chat/completions" "$conns" "$stream" "$KEY" "$model")")
  [ -n "$BASE_BIN" ] &&
    lines+=("$(run baseline "http://127.0.0.1:$BPORT/v1/chat/completions" "$conns" "$stream" "$BKEY" "$model")")
  bport=$FPORT
  [ "$stream" = 1 ] && bport=$SPORT
  [ -n "$FLOOR_BIN" ] &&
    lines+=("$(run bare "http://127.0.0.1:$bport/v1/chat/completions" "$conns" "$stream" "" bench-gpt)")
  [ -n "$LITELLM_BIN" ] &&
    lines+=("$(run litellm "http://127.0.0.1:$LPORT/v1/chat/completions" "$conns" "$stream" sk-bench-litellm "$model")")
  dp50=$(field p50_us "${lines[0]}") dp99=$(field p99_us "${lines[0]}") nrps=$(field rps "${lines[1]}")
  for line in "${lines[@]}"; do
    rps=$(field rps "$line") p50=$(field p50_us "$line") p99=$(field p99_us "$line")
    bad=$(sed -n 's/.*non2xx=\([0-9]*\) errors=\([0-9]*\).*/\1+\2/p' <<<"$line")
    ratio=$(awk -v a="$rps" -v b="$nrps" 'BEGIN { if (b > 0) printf "%.3f", a / b }')
    cpu=$(awk -v u="$(field user_ticks "$line")" -v s="$(field sys_ticks "$line")" -v r="$rps" -v d="$DURATION" \
      -v hz="$(getconf CLK_TCK)" 'BEGIN { if (u + s > 0 && r > 0) printf "%.1f %.0f", (u + s) / hz / (r * d) * 1e6, 100 * s / (u + s); else print "- -" }')
    printf '%-15s %-9s %9s %9s %9s %9s %9s %8s %8s %7s' "$name" "${line%% *}" "$rps" "$p50" "$p99" \
      "$((p50 - dp50))" "$((p99 - dp99))" "$ratio" ${cpu}
    [ "$bad" != "0+0" ] && printf '   non-2xx+errors: %s' "$bad"
    printf '\n'
  done
done
# Where the gateway's time went, from its own /metrics: mean ledger commit (the fsync under
# ledger_sync: full) and mean records per commit, over every scenario above.
curl -s "127.0.0.1:$GPORT/metrics" | awk '
  /^gateway_ledger_commit_seconds_sum/ {s=$2} /^gateway_ledger_commit_seconds_count/ {n=$2}
  /^gateway_ledger_commit_batch_records_sum/ {r=$2}
  END { if (n > 0) printf "gateway ledger: %d commits, mean %.0f us per commit, %.1f records per commit\n", n, s / n * 1e6, r / n }'
