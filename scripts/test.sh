#!/usr/bin/env bash
# Build everything including the tests (installing missing Debian packages first), fetch and
# verify the default models, then run the whole CTest suite.
#
#   scripts/test.sh [ctest arguments...]
#   e.g. scripts/test.sh -L unit          (only tests labelled unit)
#        scripts/test.sh -R 'BatchingExecutor'
#
# Tests find the models through TALKSERVE_MODELS_DIR (default <repo>/models), exported here.
# Environment: TALKSERVE_BUILD_DIR, TALKSERVE_MODEL_MIRROR, TALKSERVE_CMAKE_ARGS (see
# setup.sh and fetch-models.sh).
set -euo pipefail

build_dir="${TALKSERVE_BUILD_DIR:-}"
[[ -z "$build_dir" || "$build_dir" == /* ]] || build_dir="$PWD/$build_dir"
models_dir="${TALKSERVE_MODELS_DIR:-}"
[[ -z "$models_dir" || "$models_dir" == /* ]] || models_dir="$PWD/$models_dir"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export TALKSERVE_BUILD_DIR="${build_dir:-$repo_root/build}"
export TALKSERVE_MODELS_DIR="${models_dir:-$repo_root/models}"

scripts/setup.sh
scripts/fetch-models.sh --dest "$TALKSERVE_MODELS_DIR"

printf 'test: ctest in %s (models in %s)\n' "$TALKSERVE_BUILD_DIR" "$TALKSERVE_MODELS_DIR"
exec ctest --test-dir "$TALKSERVE_BUILD_DIR" --output-on-failure -j2 --timeout 600 "$@"
