#!/usr/bin/env bash
# Renders the reports of `allot sim` and `allot plan` in headless Chromium (Debian's chromium)
# and fails if a page does not render whole: the DOM Chromium builds must hold every plot and
# section the file has, and the browser must log no page error.
#   scripts/check-report.sh                          check (builds nothing: needs build/src/cli/allot)
#   scripts/check-report.sh --screenshots DIR [REPORT]
#       also write the screenshots docs/planning.md shows, of REPORT (a report of
#       examples/plans/national-split.yaml) or of a full run made here (about 4 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
allot=build/src/cli/allot
shots=""
full=""
if [ "${1:-}" = "--screenshots" ]; then shots="${2:?--screenshots needs a directory}"; full="${3:-}"; fi
command -v chromium >/dev/null || { echo "check-report: chromium is missing: scripts/install-deps.sh --browser" >&2; exit 1; }
[ -x "$allot" ] || { echo "check-report: $allot is missing: build first (scripts/test.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Small runs: the page's structure is what is checked, not the figures.
"$allot" plan examples/plans/national-split.yaml --jobs 20000 --seeds 2 --quiet --report "$work/plan" >/dev/null 2>&1
"$allot" sim --config examples/national-pool.yaml --format national --jobs 20000 --quiet --report "$work/sim" >/dev/null 2>&1

browser=(chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
         --user-data-dir="$work/profile" --enable-logging=stderr --v=0)

check_page() {  # check_page FILE HEADING...
  local page=$1; shift
  local dom="$work/dom.html" log="$work/browser.log"
  "${browser[@]}" --dump-dom "file://$page" >"$dom" 2>"$log"
  local want have
  want=$(grep -o '<svg' "$page" | wc -l)
  have=$(grep -o '<svg' "$dom" | wc -l)
  if [ "$want" -eq 0 ] || [ "$have" -ne "$want" ]; then
    echo "check-report: $page: Chromium built $have of its $want plots" >&2; exit 1
  fi
  for heading in "$@"; do
    grep -q "$heading" "$dom" || { echo "check-report: $page: '$heading' did not render" >&2; exit 1; }
  done
  grep -q '</body>' "$dom" || { echo "check-report: $page: the page did not render to its end" >&2; exit 1; }
  if grep -E 'CONSOLE|Uncaught|Failed to load resource' "$log" >&2; then
    echo "check-report: $page: the browser logged errors (above)" >&2; exit 1
  fi
  echo "check-report: $page renders: $have plots"
}

check_page "$work/plan/index.html" 'Headline' 'The guarantee, by programme' 'Who ran on whose GPUs' 'Drill-down'
check_page "$work/sim/index.html" 'Summary' 'Programmes' 'Utilisation' 'Accounts'

if [ -n "$shots" ]; then
  # The full month, three seeds: what docs/planning.md shows.
  mkdir -p "$shots"
  if [ -z "$full" ]; then
    full="$work/full"
    "$allot" plan examples/plans/national-split.yaml --quiet --report "$full" >/dev/null 2>&1
  fi
  full=$(cd "$full" && pwd)
  "${browser[@]}" --window-size=1280,1400 --screenshot="$shots/plan-report-top.png" "file://$full/index.html" 2>/dev/null
  # Headless screenshots do not scroll to a fragment: the second one renders the page from the
  # sharing section on (the same head and style, the body from that heading).
  { sed -n '1,/<\/head>/p' "$full/index.html"; echo '<body>'; sed -n '/id="sharing"/,$p' "$full/index.html"; } \
    >"$work/sharing.html"
  "${browser[@]}" --window-size=1280,1400 --screenshot="$shots/plan-report-sharing.png" "file://$work/sharing.html" 2>/dev/null
  echo "check-report: screenshots in $shots"
fi
