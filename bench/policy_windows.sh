#!/usr/bin/env bash
# Average bounded slowdown of policies on lublin_256 in the RLScheduler protocol: 10 windows of
# 1,024 consecutive jobs, spread evenly over the trace, each replayed alone on 256x1.
#
#   bench/policy_windows.sh [POLICY...]     (default: fcfs easy sjf predicted)
#
# Prints one line per policy: its name and the mean over the windows of avg_bsld, where bounded
# slowdown is max((wait + run) / max(run, 10 s), 1). Needs ./build/src/cli/allot and
# ../shared/traces/lublin_256.swf (or ALLOT_TRACE). ALLOT_SIM_FLAGS adds flags to every run, e.g.
# ALLOT_SIM_FLAGS="--checkpoint 10m" for las, whose preempted jobs resume from checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
allot=./build/src/cli/allot
trace=${ALLOT_TRACE:-../shared/traces/lublin_256.swf}
[[ -x $allot ]] || { echo "error: $allot is missing; build first (cmake --build build)" >&2; exit 2; }
[[ -r $trace ]] || { echo "error: cannot read $trace; set ALLOT_TRACE to lublin_256.swf" >&2; exit 2; }
policies=("$@")
[[ ${#policies[@]} -gt 0 ]] || policies=(fcfs easy sjf predicted)
# Jobs the reader keeps: not a comment or blank, 18 fields, a run time (field 4) that is not -1.
jobs=$(awk '!/^[[:space:]]*;/ && NF >= 18 && $4 != -1' "$trace" | wc -l)
window=1024
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for policy in "${policies[@]}"; do
  sum=0
  for i in $(seq 0 9); do
    skip=$(( i * (jobs - window) / 9 ))
    # shellcheck disable=SC2086 # ALLOT_SIM_FLAGS is a list of flags
    "$allot" sim --cluster 256x1 --trace "$trace" --skip "$skip" --jobs "$window" --policy "$policy" \
      ${ALLOT_SIM_FLAGS:-} --quiet --json "$work/w.json" > /dev/null
    sum=$(python3 -c "import json,sys; print($sum + json.load(open('$work/w.json'))['avg_bsld'])")
  done
  python3 -c "print(f'{\"$policy\":22s} {$sum / 10:10.2f}')"
done
