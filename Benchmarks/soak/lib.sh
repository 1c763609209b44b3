# Shared by Benchmarks/soak.sh and Benchmarks/callgrind.sh (sourced from the repository root).

# Refuses to start when one of the given ports already answers (another run, most likely).
check_ports_free() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use (another run?); set the *PORT variables" >&2
      exit 1
    fi
  done
}

# The C upstream and client (and the valgrind shim) into .build-soak/, rebuilt when their source is newer.
SOAK_OUT=$PWD/.build-soak
build_soak_tools() {
  mkdir -p "$SOAK_OUT"
  local prog
  for prog in paced_upstream stream_client; do
    if [ ! "$SOAK_OUT/$prog" -nt "Benchmarks/soak/$prog.c" ] || [ ! "$SOAK_OUT/$prog" -nt Benchmarks/soak/common.h ]; then
      cc -O2 -Wall -Wextra -Werror -o "$SOAK_OUT/$prog" "Benchmarks/soak/$prog.c"
    fi
  done
  if [ ! "$SOAK_OUT/sigsuspend_shim.so" -nt Benchmarks/soak/sigsuspend_shim.c ]; then
    cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$SOAK_OUT/sigsuspend_shim.so" Benchmarks/soak/sigsuspend_shim.c
  fi
}

# A scratch folder ($work) and the background processes ($pids) to stop, both cleaned up on exit.
start_work() {
  work=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
        rm -rf "$work"' EXIT
}
