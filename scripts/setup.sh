#!/usr/bin/env bash
# Install the Debian 12 packages talkserve needs (only the missing ones), then configure and
# build it in Release with Ninja.
#
#   scripts/setup.sh [--deps-only] [--no-build] [--target NAME]... [--help]
#
#   --deps-only    install the missing packages and stop (no configure, no build)
#   --no-build     install packages and configure the build tree, but do not build
#   --target NAME  build only this CMake target (repeatable), e.g. --target talkserve
#
# Environment:
#   TALKSERVE_BUILD_DIR   build tree (default <repo>/build; relative paths are taken from the
#                         caller's working directory)
#   TALKSERVE_MODELS_DIR  when set, passed on as -DTALKSERVE_MODELS_DIR=<absolute path>, the
#                         models folder CTest hands to the tests (default <repo>/models)
#   TALKSERVE_CMAKE_ARGS  extra arguments appended to the cmake configure line, split on
#                         whitespace, e.g. "-DTALKSERVE_SANITIZE=address;undefined"
#
# Safe to run again: when every package is installed it neither calls apt nor needs root.
set -euo pipefail

# Every Debian package the project needs, one place. Add new ones here.
PACKAGES=(
  build-essential
  cmake
  ninja-build
  pkg-config
  git
  ca-certificates
  curl
  libboost-dev
  nlohmann-json3-dev
  libfmt-dev
  libspdlog-dev
  libtomlplusplus-dev
  catch2
  libsystemd-dev
  libssl-dev
  zlib1g-dev  # Whisper: zlib compression ratio of a transcript (temperature fallback)
  libtorch-dev
  libopenblas0-pthread
  libavformat-dev
  libavcodec-dev
  libavutil-dev
  libswresample-dev
  libswscale-dev
  ffmpeg
  libpocketsphinx-dev
  libsphinxbase-dev
  pocketsphinx-en-us
  libespeak-ng-dev
  espeak-ng-data
  flite1-dev
  libx264-dev
  libopencv-core-dev
  libopencv-imgproc-dev
  libopencv-imgcodecs-dev
  libopencv-objdetect-dev
  opencv-data
  wrk
  libhiredis-dev  # the Redis tier of the clip cache ([redis] url); optional at build time
  redis-server    # the Redis tier's unit and integration tests start a private one
  python3-yaml    # deploy/kubernetes/check-manifests.py (CTest deploy_kubernetes_manifests)
  python3-onnx    # scripts/convert-whisper-onnx.py (fetch-models.sh converts whisper-tiny-en)
  python3-numpy   # the Whisper converter and tests/reference/whisper_reference.py
  python3-torch   # tests/reference/whisper_reference.py (the independent Whisper reference)
  chromium  # the demo page's end-to-end test (tests/e2e, headless, driven by playwright-core)
  clang               # scripts/fuzz.sh: the libFuzzer targets in fuzz/ build with clang
  libclang-rt-14-dev  # libFuzzer and clang's sanitizer runtimes
)
# Node.js and npm run the end-to-end tests with the official OpenAI SDK. A node installed
# another way (e.g. NodeSource, whose nodejs conflicts with Debian's npm) is kept as it is.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

deps_only=0
no_build=0
targets=()
while (($#)); do
  case "$1" in
    --deps-only) deps_only=1 ;;
    --no-build) no_build=1 ;;
    --target)
      (($# >= 2)) || die "--target needs a target name"
      targets+=("$2")
      shift
      ;;
    --target=*) targets+=("${1#--target=}") ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

# Resolve relative paths against the caller's cwd before moving to the repo root.
build_dir="${TALKSERVE_BUILD_DIR:-}"
[[ -z "$build_dir" || "$build_dir" == /* ]] || build_dir="$PWD/$build_dir"
models_dir="${TALKSERVE_MODELS_DIR:-}"
[[ -z "$models_dir" || "$models_dir" == /* ]] || models_dir="$PWD/$models_dir"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${build_dir:-$repo_root/build}"

# --- packages ----------------------------------------------------------------------------

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  say "all ${#PACKAGES[@]} Debian packages are installed"
else
  say "missing packages: ${missing[*]}"
  as_root=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
      die "installing packages needs root, and sudo is not available; run as root: apt-get install ${missing[*]}"
    as_root=(sudo)
  fi
  say "apt-get update"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update ||
    die "apt-get update failed"
  say "apt-get install ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"
  say "packages installed"
fi

if ((deps_only)); then
  say "done (--deps-only)"
  exit 0
fi

# --- configure and build -----------------------------------------------------------------

extra_args=()
[[ -z "$models_dir" ]] || extra_args+=("-DTALKSERVE_MODELS_DIR=$models_dir")
if [[ -n "${TALKSERVE_CMAKE_ARGS:-}" ]]; then
  read -r -a user_args <<<"$TALKSERVE_CMAKE_ARGS"
  extra_args+=("${user_args[@]}")
fi

# -UTALKSERVE_MODULES: an existing tree picks up modules added since it was configured (a
# subset can still be chosen with TALKSERVE_CMAKE_ARGS=-DTALKSERVE_MODULES=...).
# An existing tree keeps its generator (cmake refuses to switch); a new one uses Ninja.
generator=(-G Ninja)
if [[ -f "$build_dir/CMakeCache.txt" ]]; then
  generator=()
fi

say "configuring Release build in $build_dir"
cmake -S "$repo_root" -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DTALKSERVE_BUILD_TESTS=ON \
  -DTALKSERVE_BUILD_BENCH=ON \
  -UTALKSERVE_MODULES \
  "${extra_args[@]}"

if ((no_build)); then
  say "done (--no-build): configured $build_dir"
  exit 0
fi

jobs="$(nproc 2>/dev/null || echo 2)"
target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
say "building ${targets[*]:-all targets} with $jobs jobs"
cmake --build "$build_dir" -j"$jobs" "${target_args[@]}"
say "done: build tree $build_dir"
