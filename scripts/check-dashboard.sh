#!/usr/bin/env bash
# The dashboard in a real browser: the Playwright suite (tests/browser, playwright-core pinned in
# its package-lock.json, installed with `npm ci`) drives Debian's chromium against a real
# `allot server --dev` running real jobs, with a small `allot sim` report in its --reports
# directory. Builds nothing: needs build/src/cli/allot (scripts/test.sh).
#   scripts/check-dashboard.sh                     run the suite
#   scripts/check-dashboard.sh --screenshots DIR   also write each view's screenshot to DIR
#                                                  (docs/images: docs/dashboard.md shows them)
set -euo pipefail
cd "$(dirname "$0")/.."
allot=build/src/cli/allot
shots=""
if [ "${1:-}" = "--screenshots" ]; then shots=$(mkdir -p "${2:?--screenshots needs a directory}" && cd "$2" && pwd); fi
for tool in chromium node npm; do
  command -v "$tool" >/dev/null || { echo "check-dashboard: $tool is missing: scripts/install-deps.sh --browser" >&2; exit 1; }
done
[ -x "$allot" ] || { echo "check-dashboard: $allot is missing: build first (scripts/test.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A report for the Simulation view: a short month of the national pool.
mkdir -p "$work/reports"
if ! "$allot" sim --config examples/national-pool.yaml --format national --jobs 5000 --quiet \
     --report "$work/reports/national-pool" >"$work/sim.log" 2>&1; then
  cat "$work/sim.log" >&2
  echo "check-dashboard: allot sim failed (above)" >&2
  exit 1
fi

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
ALLOT="$allot" REPORTS="$work/reports" SCREENSHOTS="$shots" \
  node --test tests/browser/dashboard.test.mjs
