#!/usr/bin/env bash
# Build the server (installing missing Debian packages first), fetch and verify the default
# models, then run it in the foreground with config/talkserve.toml (127.0.0.1:8080 unless the
# config or an override says otherwise). Ctrl-C drains and stops it.
#
#   scripts/run.sh [talkserve arguments...]
#   e.g. scripts/run.sh --set http.port=9000
#
# Runs from the repository root, so relative paths in the config (server.models_dir = "models")
# and in the arguments are taken from there.
#
# Environment: TALKSERVE_BUILD_DIR (default <repo>/build), TALKSERVE_MODELS_DIR (default
# <repo>/models; when set, also passed to the server as server.models_dir),
# TALKSERVE_MODEL_MIRROR, TALKSERVE_CMAKE_ARGS (see setup.sh and fetch-models.sh).
set -euo pipefail

build_dir="${TALKSERVE_BUILD_DIR:-}"
[[ -z "$build_dir" || "$build_dir" == /* ]] || build_dir="$PWD/$build_dir"
models_dir="${TALKSERVE_MODELS_DIR:-}"
[[ -z "$models_dir" || "$models_dir" == /* ]] || models_dir="$PWD/$models_dir"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export TALKSERVE_BUILD_DIR="${build_dir:-$repo_root/build}"

scripts/setup.sh --target talkserve
overrides=()
if [[ -n "$models_dir" ]]; then
  export TALKSERVE_MODELS_DIR="$models_dir"
  overrides=(--set "server.models_dir=$models_dir")
fi
scripts/fetch-models.sh --dest "${models_dir:-$repo_root/models}"

config="$repo_root/config/talkserve.toml"
[[ -f "$config" ]] || { printf 'run: error: no config file %s\n' "$config" >&2; exit 1; }
printf 'run: starting %s/bin/talkserve --config %s %s\n' "$TALKSERVE_BUILD_DIR" "$config" "${overrides[*]} $*"
exec "$TALKSERVE_BUILD_DIR/bin/talkserve" --config "$config" "${overrides[@]}" "$@"
