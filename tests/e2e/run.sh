#!/usr/bin/env bash
# Runs the end-to-end tests (node:test + the official openai npm package) against a built
# talkserve binary.
#
#   tests/e2e/run.sh [WORK_DIR]
#
# Environment: TALKSERVE_BINARY (the server), TALKSERVE_MODELS_DIR (stories260K inside),
# TALKSERVE_SOURCE_DIR (the checkout; default: two levels up from here).
# WORK_DIR (CTest passes one under the build dir) receives package.json, package-lock.json and
# the tests, and `npm ci` installs the exact locked versions into WORK_DIR/node_modules, from
# the npm registry only, when they are missing or the lock file changed. Without WORK_DIR the
# tests run in place (tests/e2e/node_modules is git-ignored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-$here}"
export TALKSERVE_SOURCE_DIR="${TALKSERVE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"

mkdir -p "$work"
if [[ "$work" != "$here" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$here"/*.test.mjs "$work/"
fi
cd "$work"

stamp="node_modules/.talkserve-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "e2e: npm ci in $work"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$want" > "$stamp"
fi

exec node --test --test-reporter=spec *.test.mjs
