#!/usr/bin/env bash
# The dashboard's first paint on the national pool (examples/national-pool.yaml, 36,880 nodes)
# with 100,000 jobs waiting: each view opened five times in Debian's chromium (docs/performance.md).
#   bench/dashboard_first_paint.sh [--jobs N] [--screenshots DIR]
# Needs build/src/cli/allot (scripts/test.sh) and scripts/install-deps.sh --browser.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=100000
shots=""
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --screenshots) shots=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    *) echo "usage: bench/dashboard_first_paint.sh [--jobs N] [--screenshots DIR]" >&2; exit 2 ;;
  esac
done
allot=build/src/cli/allot
[ -x "$allot" ] || { echo "dashboard_first_paint: $allot is missing: build first (scripts/test.sh)" >&2; exit 1; }
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# Nodes are up without agents (--static-nodes): jobs start on paper and the rest wait.
"$allot" server --config examples/national-pool.yaml --static-nodes --data "$work/data" --listen 127.0.0.1:0 \
  >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 600); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.]*:[0-9]*' "$work/server.out" | head -1)
[ -n "$url" ] || { cat "$work/server.err" >&2; exit 1; }
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
node tests/browser/first_paint.mjs "$url" "$(cat "$work/data/operator.token")" "$jobs" "$shots"
