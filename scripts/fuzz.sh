#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/, clang, ASan + UBSan) and run each for a fixed time over
# its committed seeds. Fails when any target finds a crash, a sanitizer report, a leak or a
# hang; the input is saved as <build>/fuzz-artifacts/<target>/crash-* (replay: run the target
# binary with that file as its argument). Prints execs/s, coverage and corpus size per target.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--target NAME]... [--no-build] [--help]
#
#   --seconds N    run each target for N seconds (default 60)
#   --jobs J       targets run at the same time (default 2)
#   --target NAME  only this target (repeatable), e.g. --target fuzz_multipart
#   --no-build     use the targets already built
#
# Environment:
#   TALKSERVE_FUZZ_BUILD_DIR  build tree (default <repo>/build-fuzz); configured here with
#                             clang++ and -DTALKSERVE_FUZZ=ON when it does not exist yet
#   TALKSERVE_MODELS_DIR      models folder (default <repo>/models); fuzz_tokenizer needs
#                             stories260K/tok512.bin (fetched here when missing)
#
# New inputs that reach new coverage are kept in <build>/fuzz-corpus/<target>/ (not in git)
# and reused by the next run; fuzz/corpus/<target>/ holds the committed seeds.
set -euo pipefail

say() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

seconds=60
jobs=2
build=1
targets=()
while (($#)); do
  case "$1" in
    --seconds) (($# >= 2)) || die "--seconds needs a number"; seconds="$2"; shift ;;
    --seconds=*) seconds="${1#--seconds=}" ;;
    --jobs) (($# >= 2)) || die "--jobs needs a number"; jobs="$2"; shift ;;
    --jobs=*) jobs="${1#--jobs=}" ;;
    --target) (($# >= 2)) || die "--target needs a name"; targets+=("$2"); shift ;;
    --target=*) targets+=("${1#--target=}") ;;
    --no-build) build=0 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive integer, not '$seconds'"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer, not '$jobs'"

build_dir="${TALKSERVE_FUZZ_BUILD_DIR:-}"
[[ -z "$build_dir" || "$build_dir" == /* ]] || build_dir="$PWD/$build_dir"
models_dir="${TALKSERVE_MODELS_DIR:-}"
[[ -z "$models_dir" || "$models_dir" == /* ]] || models_dir="$PWD/$models_dir"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${build_dir:-$repo_root/build-fuzz}"
export TALKSERVE_MODELS_DIR="${models_dir:-$repo_root/models}"

all_targets=(fuzz_http_request fuzz_multipart fuzz_live_messages fuzz_audio_decoder fuzz_tokenizer
             fuzz_checkpoint_headers)
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || die "unknown target '$t' (known: ${all_targets[*]})"
done

# --- build ---------------------------------------------------------------------------------
if ((build)); then
  command -v clang++ >/dev/null 2>&1 || die "clang++ not found (Debian: clang libclang-rt-14-dev)"
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    say "configuring $build_dir (clang++, TALKSERVE_FUZZ=ON)"
    # Only the torch-free modules the targets need; assertions stay on (no NDEBUG).
    cmake -S "$repo_root" -B "$build_dir" -G Ninja \
      -DCMAKE_CXX_COMPILER=clang++ \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
      -DTALKSERVE_FUZZ=ON -DTALKSERVE_BUILD_TESTS=OFF -DTALKSERVE_BUILD_BENCH=OFF \
      "-DTALKSERVE_MODULES=sched;obs;net;llm;media" \
      "-DTALKSERVE_MODELS_DIR=$TALKSERVE_MODELS_DIR" >/dev/null
  fi
  say "building ${targets[*]}"
  cmake --build "$build_dir" -j"$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}"
fi
if [[ " ${targets[*]} " == *" fuzz_tokenizer "* ]]; then
  scripts/fetch-models.sh --dest "$TALKSERVE_MODELS_DIR" stories260K >/dev/null ||
    die "fuzz_tokenizer needs stories260K (scripts/fetch-models.sh stories260K)"
fi

# --- run -----------------------------------------------------------------------------------
logs="$build_dir/fuzz-logs"
mkdir -p "$logs"

run_one() {
  local t="$1" bin="$build_dir/fuzz/$1"
  local work="$build_dir/fuzz-corpus/$t" artifacts="$build_dir/fuzz-artifacts/$t"
  mkdir -p "$work" "$artifacts"
  [[ -x "$bin" ]] || { echo "missing binary $bin" >"$logs/$t.log"; return 1; }
  # -timeout: one input taking 10 s is a hang. The first corpus folder receives new inputs;
  # the seeds are only read. UBSan aborts (-fno-sanitize-recover), so it counts as a crash.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$t" >"$logs/$t.log" 2>&1
}

say "running ${#targets[@]} targets for ${seconds} s each, $jobs at a time (logs in $logs)"
declare -A status_of
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  rm -f "$logs/$t.rc"
  (set +e; run_one "$t"; echo $? >"$logs/$t.rc") &
  running=$((running + 1))
done
wait
failed=0
for t in "${targets[@]}"; do
  if [[ "$(cat "$logs/$t.rc" 2>/dev/null)" == 0 ]]; then
    status_of[$t]=ok
  else
    status_of[$t]=FAILED
    failed=1
  fi
done

# --- report --------------------------------------------------------------------------------
# Figures from libFuzzer's final stats and its last status line ("#N ... cov: C ft: F
# corp: U/S").
printf '\n%-26s %-7s %12s %9s %7s %7s %8s %10s\n' target status execs exec/s cov ft units corpus
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  line="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")"
  corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$line")"
  printf '%-26s %-7s %12s %9s %7s %7s %8s %10s\n' "$t" "${status_of[$t]}" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:--}" "${ft:--}" \
    "${corp%%/*}" "${corp#*/}"
done
printf '\n'
for t in "${targets[@]}"; do
  [[ "${status_of[$t]}" == ok ]] && continue
  say "$t FAILED; the end of its log ($logs/$t.log):"
  tail -n 40 "$logs/$t.log" | sed 's/^/  /'
  ls "$build_dir/fuzz-artifacts/$t" 2>/dev/null | sed "s|^|  artifact: $build_dir/fuzz-artifacts/$t/|"
done
# JSON, one object per target, for CI logs and comparisons.
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  line="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  printf '{"target":"%s","status":"%s","seconds":%s,"execs":%s,"exec_per_s":%s,"cov":%s,"corpus_units":%s}\n' \
    "$t" "${status_of[$t]}" "$seconds" \
    "$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 | grep . || echo null)" \
    "$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 | grep . || echo null)" \
    "$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line" | grep . || echo null)" \
    "$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$line" | grep . || echo null)"
done
# A short account of each finding, for the end of a long CI log (.ci/run prints it last): the
# sanitizer's or libFuzzer's verdict lines and, when small, the input itself in base64
# (replay: base64 -d > crash && <build>/fuzz/<target> crash).
findings="$build_dir/fuzz-findings.txt"
rm -f "$findings"
for t in "${targets[@]}"; do
  [[ "${status_of[$t]}" == ok ]] && continue
  log="$logs/$t.log"
  {
    echo "== $t"
    grep -E '^(==[0-9]+==ERROR|SUMMARY:|[^ ]*: runtime error:|==[0-9]+== ERROR: libFuzzer|fuzz_[a-z_]+: )|deadly signal|out-of-memory|Test unit written to|-- answer --' "$log" |
      head -n 12 || true
    for a in "$build_dir/fuzz-artifacts/$t"/*; do
      [[ -f "$a" ]] || continue
      size=$(wc -c <"$a")
      echo "artifact $(basename "$a") ($size bytes)"
      ((size <= 8192)) && base64 -w 0 "$a" && echo
    done
  } >>"$findings"
done
if ((failed)); then
  say "FAILED: at least one target found a bug (see above; summary in $findings)"
  exit 1
fi
say "all ${#targets[@]} targets ran ${seconds} s without a finding"
