#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (ships with the Swift toolchain): the Metering library, and the
# gateway's HTTP/1.1 parsers (the files listed in HTTP1_SOURCES below, built as a module of their own).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]   run each target that long (default 60 s)
#   scripts/fuzz.sh --smoke                            every target for 12 s (CI)
#   scripts/fuzz.sh --runs N [target...]               run each target for N executions instead
#   scripts/fuzz.sh --build-only [target...]           only build
#   scripts/fuzz.sh ... -- -flag=value                 extra libFuzzer flags
#
# Targets (Tests/Fuzz/Targets): json, request, sse, tokenizer, http1. Binaries go to .build-fuzz/fuzz-<target>;
# each keeps its corpus in .build-fuzz/corpus/<target> (seeded from Tests/Fuzz/seeds/<target>) and
# writes crashing inputs to .build-fuzz/artifacts/<target>/. Reproduce one with
#   .build-fuzz/fuzz-<target> .build-fuzz/artifacts/<target>/crash-...
# (with SWIFT_BACKTRACE=enable=no). Every compile holds /tmp/build.lock (another build may share the
# checkout). Exits non-zero if a target crashed, failed a check, timed out or ran out of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-fuzz
FUZZ=$ROOT/Tests/Fuzz
LOCK=${FUZZ_BUILD_LOCK:-/tmp/build.lock}
ALL_TARGETS=(json request sse tokenizer http1)
# The HTTP/1.1 parsers need only NIOCore, NIOHTTP1 and HTTP Types, so they build apart from the rest of
# the Gateway module.
HTTP1_SOURCES=(Sources/Gateway/Server/HTTP1Syntax.swift Sources/Gateway/Server/ClientRequestParser.swift
  Sources/Gateway/Server/HTTPFieldsLookup.swift
  Sources/Gateway/Upstream/UpstreamResponseParser.swift)

seconds=60
runs=""
build_only=0
targets=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) seconds=12 ;;
    --runs) runs=$2; shift ;;
    --build-only) build_only=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *[!0-9]*) targets+=("$1") ;;
    *) seconds=$1 ;;
  esac
  shift
done
[ ${#targets[@]} -eq 0 ] && targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [ -f "$FUZZ/Targets/$t.swift" ] || { echo "unknown target '$t' (known: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

locked() { flock "$LOCK" "$@"; }
mkdir -p "$OUT/modules" "$OUT/obj"

# 1. Dependencies (Metering's Yams and swift-crypto; the parsers' NIOHTTP1 and HTTP Types), built by
#    SwiftPM in a scratch path of our own; they need no instrumentation, only their modules and objects.
SPM=$OUT/spm
for dep in Yams Crypto NIOHTTP1 HTTPTypes; do
  locked swift build --scratch-path "$SPM" --target "$dep" -q 2>&1 | grep -v '^$' || true
  [ -f "$SPM/debug/Modules/$dep.swiftmodule" ] || { echo "building $dep failed" >&2; exit 1; }
done
# The scratch path builds only these two and what they depend on: link every object it has.
mapfile -t DEP_OBJS < <(find "$SPM/debug/" -path '*.build/*' -name '*.o' -not -path '*/Metering.build/*' | sort)

# 2. Sanitizers: libFuzzer with AddressSanitizer when the toolchain has its runtime, else libFuzzer alone.
SAN_FILE=$OUT/sanitizers
if [ ! -s "$SAN_FILE" ] || [ "$(command -v swiftc)" -nt "$SAN_FILE" ]; then
  probe=$OUT/obj/probe
  mkdir -p "$probe"
  printf '%s\n' '@_cdecl("LLVMFuzzerTestOneInput")' \
    'public func f(_ d: UnsafePointer<UInt8>?, _ n: Int) -> CInt { 0 }' >"$probe/probe.swift"
  if locked swiftc -parse-as-library -sanitize=fuzzer,address "$probe/probe.swift" -o "$probe/probe" \
      >"$probe/log" 2>&1 && "$probe/probe" -runs=1 >>"$probe/log" 2>&1; then
    echo "fuzzer,address" >"$SAN_FILE"
  else
    echo "AddressSanitizer is not available (see $probe/log); fuzzing with -sanitize=fuzzer alone" >&2
    echo "fuzzer" >"$SAN_FILE"
  fi
fi
SAN=$(cat "$SAN_FILE")
echo "sanitizers: $SAN"

SWIFT_FLAGS=(-parse-as-library -O -g -swift-version 6 -sanitize="$SAN"
  -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility
  -I "$SPM/debug/Modules")
# The C modules under the dependencies (their module maps).
for d in CYaml CCryptoBoringSSL CCryptoBoringSSLShims CNIOAtomics CNIOLinux CNIODarwin CNIOWindows CNIOLLHTTP \
  CNIOPosix CNIOWASI CNIOOpenBSD CNIOFreeBSD _AtomicsShims; do
  inc=$(find "$SPM/checkouts" -maxdepth 4 -type d -path "*/Sources/$d/include" | head -1)
  [ -n "$inc" ] && SWIFT_FLAGS+=(-I "$inc")
  # SwiftPM writes the module map itself for a target whose include folder has none.
  [ -f "$SPM/debug/$d.build/module.modulemap" ] && SWIFT_FLAGS+=(-I "$SPM/debug/$d.build")
done

# 3. Metering itself, instrumented, as one module (with -enable-testing so that the targets can reach
#    internal API), plus Tests/Fuzz/Support/BundleModule.swift, which stands in for SwiftPM's
#    generated resource accessor. Rebuilt when a source is newer than the object.
mapfile -t SOURCES < <(find "$ROOT/Sources/Metering" -name '*.swift' | sort)
SOURCES+=("$FUZZ/Support/BundleModule.swift")
LIB=$OUT/obj/Metering.o
STAMP=$OUT/obj/Metering.sources
printf '%s\n' "$SAN" "${SOURCES[@]}" >"$STAMP.new"
stale=0
if [ ! -f "$LIB" ] || ! cmp -s "$STAMP" "$STAMP.new"; then stale=1
else for f in "${SOURCES[@]}"; do [ "$f" -nt "$LIB" ] && { stale=1; break; }; done; fi
if [ $stale = 1 ]; then
  echo "compiling Metering (instrumented)..."
  locked nice -n 10 swiftc "${SWIFT_FLAGS[@]}" -module-name Metering -wmo -enable-testing \
    -emit-module -emit-module-path "$OUT/modules/Metering.swiftmodule" \
    -c "${SOURCES[@]}" -o "$LIB"
  mv "$STAMP.new" "$STAMP"
fi
rm -f "$STAMP.new"

# 3b. The HTTP/1.1 parsers, instrumented, as the module HTTP1Parsers.
PARSERS=$OUT/obj/HTTP1Parsers.o
if [ ! -f "$PARSERS" ] || [ "$SAN_FILE" -nt "$PARSERS" ] || [ -n "$(find "${HTTP1_SOURCES[@]}" -newer "$PARSERS")" ]; then
  echo "compiling HTTP1Parsers (instrumented)..."
  locked nice -n 10 swiftc "${SWIFT_FLAGS[@]}" -module-name HTTP1Parsers -wmo -enable-testing \
    -emit-module -emit-module-path "$OUT/modules/HTTP1Parsers.swiftmodule" \
    -c "${HTTP1_SOURCES[@]}" -o "$PARSERS"
fi

# 4. The targets.
for t in "${targets[@]}"; do
  bin=$OUT/fuzz-$t
  src=$FUZZ/Targets/$t.swift
  libs=("$LIB")
  [ "$t" = http1 ] && libs+=("$PARSERS")
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$FUZZ/Support/FuzzSupport.swift" -nt "$bin" ] \
      || [ "$LIB" -nt "$bin" ] || [ "${libs[-1]}" -nt "$bin" ]; then
    echo "compiling fuzz-$t..."
    locked nice -n 10 swiftc "${SWIFT_FLAGS[@]}" -module-name "Fuzz_$t" -I "$OUT/modules" \
      "$src" "$FUZZ/Support/FuzzSupport.swift" "${libs[@]}" "${DEP_OBJS[@]}" -use-ld=lld -o "$bin"
  fi
done
[ $build_only = 1 ] && exit 0

# 5. Run them, one at a time.
flags_for() {
  case "$1" in
    json|request) echo "-max_len=8192 -dict=$FUZZ/dicts/api.dict" ;;
    sse) echo "-max_len=16384 -dict=$FUZZ/dicts/api.dict" ;;
    tokenizer) echo "-max_len=4096" ;;
    http1) echo "-max_len=4096 -dict=$FUZZ/dicts/http1.dict" ;;
  esac
}
failed=0
summary=()
for t in "${targets[@]}"; do
  corpus=$OUT/corpus/$t
  artifacts=$OUT/artifacts/$t
  log=$OUT/logs/$t.log
  mkdir -p "$corpus" "$artifacts" "$OUT/logs"
  if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
  # shellcheck disable=SC2046
  cmd=("$OUT/fuzz-$t" "${limit[@]}" $(flags_for "$t") -timeout=30 -rss_limit_mb=4096 -detect_leaks=0
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${extra[@]}" "$corpus" "$FUZZ/seeds/$t")
  echo "== $t: ${cmd[*]}"
  start=$(date +%s)
  set +e
  # No allocation stacks by default: recording them took a fifth of the time; reproduce a crash with
  # ASAN_OPTIONS=detect_leaks=0 to get them.
  # SWIFT_BACKTRACE=enable=no: libFuzzer prints the stack; the Swift runtime's backtracer could hang.
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:malloc_context_size=0} nice -n 10 "${cmd[@]}" >"$log" 2>&1
  status=$?
  set -e
  wall=$(( $(date +%s) - start ))
  execs=$(grep -ao 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  [ -z "$execs" ] && execs=$(grep -ao '^Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]\+' || true)
  [ -z "$execs" ] && execs=$(grep -ao '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  speed=$(grep -ao 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  artifact=$(grep -ao 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //' || true)
  if [ $status -ne 0 ] || [ -n "$artifact" ]; then
    failed=1
    line="$t: FAILED (exit $status) after ${execs:-?} runs, ${wall}s; input: ${artifact:-none}; log: $log"
    grep -a -m1 -E 'FUZZ CHECK FAILED|Fatal error|ERROR: (AddressSanitizer|libFuzzer)' "$log" || true
  else
    line="$t: ok, ${execs:-?} runs in ${wall}s (${speed:-?} exec/s), corpus $(ls "$corpus" | wc -l) inputs"
  fi
  echo "$line"
  summary+=("$line")
done
echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $failed
