#!/usr/bin/env bash
# Average JCT on philly.csv (64x8) of the non-clairvoyant `las` order against shortest-first with
# oracle run times (Philly's limits are its run times), and how `las` depends on its settings.
#
#   bench/las_philly.sh            the comparison, then the sensitivity grid
#   bench/las_philly.sh --quick    the comparison only
#
# Every run gives the trace's jobs a checkpoint every 10 minutes (--checkpoint 10m): a preempted
# job resumes from its last one and loses the work since. Prints one line per run: the policy, its
# settings, avg JCT (s), its ratio to oracle sjf, preemptions, GPU-hours lost, simulation seconds.
# Needs ./build/src/cli/allot and ../shared/traces/philly.csv (or ALLOT_TRACE).
set -euo pipefail
cd "$(dirname "$0")/.."
allot=./build/src/cli/allot
trace=${ALLOT_TRACE:-../shared/traces/philly.csv}
[[ -x $allot ]] || { echo "error: $allot is missing; build first (cmake --build build)" >&2; exit 2; }
[[ -r $trace ]] || { echo "error: cannot read $trace; set ALLOT_TRACE to philly.csv" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
oracle=""
run() {  # policy [flags...]
  local policy=$1
  shift
  local flags=("$@")
  [[ ${#flags[@]} -gt 0 ]] || flags=(--checkpoint 10m)
  "$allot" sim --cluster 64x8 --trace "$trace" --policy "$policy" "${flags[@]}" --quiet \
    --json "$work/run.json" > /dev/null
  python3 - "$work/run.json" "$policy" "${oracle:-0}" "${flags[*]}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
oracle = float(sys.argv[3]) or s["avg_jct_s"]
print(f"{sys.argv[2]:20s} {sys.argv[4]:48s} {s['avg_jct_s']:9.0f} {s['avg_jct_s'] / oracle:6.3f}"
      f" {s['preemptions']:8d} {s['gpu_hours_lost']:9.0f} {s['sim_wall_s']:6.1f}")
PY
}
printf '%-20s %-48s %9s %6s %8s %9s %6s\n' policy settings avg_jct ratio preempt lost_gpuh wall_s
oracle=$(
  "$allot" sim --cluster 64x8 --trace "$trace" --policy sjf --quiet --json "$work/oracle.json" > /dev/null
  python3 -c "import json; print(json.load(open('$work/oracle.json'))['avg_jct_s'])"
)
for policy in sjf sjf-first-fit predicted las las-first-fit; do run "$policy"; done
[[ ${1:-} == --quick ]] && exit 0
for promote in 0 0.5 2 4; do run las --checkpoint 10m --las-promote "$promote"; done
for thresholds in 1,16 0.5,4,32,256; do run las --checkpoint 10m --las-thresholds "$thresholds"; done
for checkpoint in 1m 1h; do run las --checkpoint "$checkpoint"; done

