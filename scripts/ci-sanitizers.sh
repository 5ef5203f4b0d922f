#!/usr/bin/env bash
# Sanitizer builds and their tests, as CI runs them (.ci/run). Two trees:
#
#   asan  TALKSERVE_SANITIZE="address;undefined", RelWithDebInfo at -O1 -g1 with assertions
#         on. Every module (speech, avatar, the talk pipeline and the LLM with the real
#         models), and every unit and integration test (ctest -LE e2e: the e2e tests need node
#         and chromium and test the same server), the integration tests starting the real
#         talkserve binary built with ASan too. About 27 min to build and 7 min to test on the
#         2-core machine. --quick builds only the modules without speech or talk (sched, obs,
#         gateway, net, media, cache, llm, app) and runs their tests (the integration tests
#         that need no speech or talk service; see tests/integration/CMakeLists.txt): about a
#         third of the time, for a quick local check.
#   tsan  TALKSERVE_SANITIZE=thread, the modules without libtorch (sched, obs, gateway, net,
#         cache, media, avatar, and pipeline's core: sessions, live messages, the frame
#         pipeline; libtorch's and OpenBLAS's thread pools are not instrumented and would only
#         give false reports); runs their unit tests but those of media and avatar (third-party
#         codec and image libraries, see tsan_step).
#
#   scripts/ci-sanitizers.sh [--only asan|tsan] [--quick] [--no-build] [--help] [-- ctest arguments...]
#
# Environment:
#   TALKSERVE_ASAN_BUILD_DIR  default <repo>/build-asan
#   TALKSERVE_TSAN_BUILD_DIR  default <repo>/build-tsan
#   TALKSERVE_MODELS_DIR      models folder for the tests (default <repo>/models; fetched here)
#
# Every sanitizer report fails the run, also one from a server process that a test started
# and that exited after the test had passed (a leak at exit): reports go to files under
# <build>/sanitizer-logs/ (log_path), which are checked and printed at the end. Suppressions
# (scripts/sanitizers/*.supp) cover findings inside uninstrumented third-party libraries only.
set -euo pipefail

say() { printf 'sanitizers: %s\n' "$*"; }
die() { printf 'sanitizers: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

only=""
build=1
full=1
ctest_args=()
while (($#)); do
  case "$1" in
    --only) (($# >= 2)) || die "--only needs asan or tsan"; only="$2"; shift ;;
    --only=*) only="${1#--only=}" ;;
    --no-build) build=0 ;;
    --full) full=1 ;;  # the default; kept for older command lines
    --quick) full=0 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; ctest_args=("$@"); break ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ -z "$only" || "$only" == asan || "$only" == tsan ]] || die "--only takes asan or tsan, not '$only'"

abs() { [[ -z "$1" || "$1" == /* ]] && printf '%s' "$1" || printf '%s' "$PWD/$1"; }
asan_dir="$(abs "${TALKSERVE_ASAN_BUILD_DIR:-}")"
tsan_dir="$(abs "${TALKSERVE_TSAN_BUILD_DIR:-}")"
models_dir="$(abs "${TALKSERVE_MODELS_DIR:-}")"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
asan_dir="${asan_dir:-$repo_root/build-asan}"
tsan_dir="${tsan_dir:-$repo_root/build-tsan}"
export TALKSERVE_MODELS_DIR="${models_dir:-$repo_root/models}"
supp="$repo_root/scripts/sanitizers"
jobs="$(nproc 2>/dev/null || echo 2)"

scripts/setup.sh --deps-only
scripts/fetch-models.sh --dest "$TALKSERVE_MODELS_DIR"

# configure <dir> <sanitizers> <modules|""> [compiler]: an existing tree keeps its generator
# and compiler.
configure() {
  local dir="$1" san="$2" modules="$3" cxx="${4:-}" gen=(-G Ninja) mod=(-UTALKSERVE_MODULES)
  [[ -n "$cxx" && ! -f "$dir/CMakeCache.txt" ]] && gen+=("-DCMAKE_CXX_COMPILER=$cxx")
  [[ -f "$dir/CMakeCache.txt" ]] && gen=()
  [[ -n "$modules" ]] && mod=("-DTALKSERVE_MODULES=$modules")
  cmake -S "$repo_root" -B "$dir" "${gen[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
    "-DTALKSERVE_SANITIZE=$san" -DTALKSERVE_BUILD_TESTS=ON -DTALKSERVE_BUILD_BENCH=OFF \
    "-DTALKSERVE_MODELS_DIR=$TALKSERVE_MODELS_DIR" "${mod[@]}" >/dev/null
}

# Prints every report file under <dir>/sanitizer-logs; returns 1 if there is one.
reports() {
  local logs="$1/sanitizer-logs" found=0 f
  for f in "$logs"/*; do
    [[ -s "$f" ]] || continue
    found=1
    say "report in $f:"
    sed 's/^/  /' "$f" | head -n 80
  done
  return "$found"
}

# run_tests <dir> <name> <ctest args...>
run_tests() {
  local dir="$1" name="$2" start rc=0
  shift 2
  rm -rf "$dir/sanitizer-logs"
  mkdir -p "$dir/sanitizer-logs"
  start=$SECONDS
  say "$name: ctest $*"
  ctest --test-dir "$dir" --output-on-failure -j2 --timeout 900 "$@" "${ctest_args[@]}" || rc=1
  say "$name: tests took $((SECONDS - start)) s"
  reports "$dir" || rc=1
  return "$rc"
}

# Each step checks its commands itself: `set -e` does not apply inside a function whose status
# is tested (`step || failed=1`), and a failed build must not test stale binaries.
asan_step() {
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1:log_path=$asan_dir/sanitizer-logs/asan"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp:log_path=$asan_dir/sanitizer-logs/ubsan"
  if ((build)); then
    local start=$SECONDS
    local modules="sched;obs;gateway;net;media;cache;llm;app"
    ((full)) && modules=""
    # clang: it builds the Beast-heavy ingress code under ASan several times faster than
    # GCC 12 (the whole torch-free tree in minutes), and it is installed for the fuzzers.
    configure "$asan_dir" "address;undefined" "$modules" clang++ || return 1
    # Test discovery runs the test binaries while building; leaks there are not findings.
    ASAN_OPTIONS=detect_leaks=0 cmake --build "$asan_dir" -j"$jobs" || return 1
    say "asan: build took $((SECONDS - start)) s"
  fi
  # --quick's module set has no speech or talk pipeline: its integration tests are the ones
  # that need neither. The LLM's tests carry the label llm only.
  if ((full)); then
    run_tests "$asan_dir" asan -LE e2e
  else
    run_tests "$asan_dir" asan -L "unit|integration|llm"
  fi
}

tsan_step() {
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:log_path=$tsan_dir/sanitizer-logs/tsan"
  if ((build)); then
    local start=$SECONDS
    configure "$tsan_dir" thread "sched;obs;gateway;net;cache;media;avatar;pipeline" || return 1
    cmake --build "$tsan_dir" -j"$jobs" || return 1
    say "tsan: build took $((SECONDS - start)) s"
  fi
  # media and avatar are built because pipeline_core links them, but their own tests are not
  # run here: they exercise FFmpeg, x264 and OpenCV (with GDAL behind imread), libraries whose
  # threads TSan sees only through their pthread calls, and it reports lock orders inside them
  # (CPLAcquireMutex) that are none of ours. Their code runs under ASan.
  run_tests "$tsan_dir" tsan -L unit -LE "^(media|avatar)$"
}

failed=0
if [[ -z "$only" || "$only" == asan ]]; then
  (asan_step) || failed=1
fi
if [[ -z "$only" || "$only" == tsan ]]; then
  (tsan_step) || failed=1
fi
if ((failed)); then
  say "FAILED (see the reports and test output above)"
  exit 1
fi
say "all sanitizer builds and tests passed"
