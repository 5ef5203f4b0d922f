#!/usr/bin/env bash
# Runs the end-to-end tests (node:test with the official openai npm package, and the demo page
# in headless Chromium through playwright-core) against a built talkserve binary.
#
#   tests/e2e/run.sh [WORK_DIR [TEST_GLOB]]
#
# TEST_GLOB picks the test files (default: *.test.mjs, all of them), e.g. demo_page.test.mjs.
# Environment: TALKSERVE_BINARY (the server), TALKSERVE_MODELS_DIR (the fetched models),
# TALKSERVE_SOURCE_DIR (the checkout; default: two levels up from here), TALKSERVE_CHROMIUM
# (the browser of the demo page test; default: chromium on the PATH), TALKSERVE_E2E_ARTIFACTS
# (where that test saves its screenshots).
# WORK_DIR (CTest passes one under the build dir) receives package.json, package-lock.json and
# the tests, and `npm ci` installs the exact locked versions into WORK_DIR/node_modules, from
# the npm registry only, when they are missing or the lock file changed. Without WORK_DIR the
# tests run in place (tests/e2e/node_modules is git-ignored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${1:-$here}"
tests="${2:-*.test.mjs}"
export TALKSERVE_SOURCE_DIR="${TALKSERVE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"

mkdir -p "$work"
if [[ "$work" != "$here" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$work/"
fi
cd "$work"

stamp="node_modules/.talkserve-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "e2e: npm ci in $work"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$want" > "$stamp"
fi

# Unquoted: the glob expands here, in WORK_DIR.
# shellcheck disable=SC2086
exec node --test --test-reporter=spec $tests
