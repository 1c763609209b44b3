#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the tests: initdb into DIR (as the `postgres` user when
# run as root, since PostgreSQL refuses to run as root; DIR's parent must let that user in), its own PORT, trust authentication on
# 127.0.0.1 only, then removed.
#
#   scripts/pg-cluster.sh start DIR PORT   # prints the URL of its database `gateway`
#   scripts/pg-cluster.sh stop DIR         # stops the cluster and removes DIR
#   scripts/pg-cluster.sh pause DIR        # stops the server, keeps its data (a database gone away)
#   scripts/pg-cluster.sh resume DIR PORT  # starts it again
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
cmd=${1:?start or stop}
dir=${2:?a directory}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    port=${3:?a port}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    # fsync off: the cluster lives for one test run, and crash safety of the machine is not under test.
    as_owner "$bin/initdb" -D "$dir/data" -U gateway -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U gateway gateway
    echo "postgres://gateway@127.0.0.1:$port/gateway"
    ;;
  pause)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  resume)
    port=${3:?a port}
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start DIR PORT | pause DIR | resume DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
