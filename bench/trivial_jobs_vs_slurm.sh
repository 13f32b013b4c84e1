#!/usr/bin/env bash
# Trivial-jobs throughput, allot and Slurm 22.05 side by side in one run on this machine: N jobs
# that each run `true` on one of 8 slots, from the first submit until every job has ended.
#   allot: build/src/agent/trivial_jobs_benchmark (`allot server --dev`: the server and an agent
#          with 8 emulated GPUs in one process; each job takes 1 GPU)
#   Slurm: bench/slurm/trivial_jobs.sh in five settings, all on 8 slots unless said:
#          defaults (as Debian ships it); batch_sched_delay=0; Epilog=/bin/true; both; and both on
#          64 slots. With an epilog slurmd reports each end at once and slurmctld refills the slot
#          at once: that is Slurm configured as its experts would for short jobs, and the ratio
#          that counts is against the best 8-slot setting.
# Prints a line per run and allot's rate as a multiple of each Slurm setting's.
#
# Usage: bench/trivial_jobs_vs_slurm.sh [--jobs N] [--build DIR] [--quick]
#   (default 1000 jobs, build dir build; --quick skips Slurm's two timer-bound settings, which take
#   about 6 and 2 minutes for 1000 jobs)
# Needs root (Slurm's daemons) and a release build of allot (cmake -B build && cmake --build build).
set -euo pipefail

JOBS=1000
BUILD=build
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "usage: $0 [--jobs N] [--build DIR] [--quick]" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/$BUILD/src/agent/trivial_jobs_benchmark"
[[ -x "$BENCH" ]] || { echo "error: $BENCH not found; build allot first (cmake -B $BUILD && cmake --build $BUILD)" >&2; exit 1; }

rate() { sed -n 's/.*: \([0-9.]*\) jobs\/s.*/\1/p' <<<"$1"; }

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"
allot_line="allot: $("$BENCH" --jobs "$JOBS" 2>/dev/null | tail -n 1)"
echo "$allot_line"
allot_rate="$(rate "$allot_line")"

settings=()
(( QUICK )) || settings+=("" "--tuned")
settings+=("--epilog" "--epilog --tuned" "--epilog --tuned --slots 64")
best=0
for setting in "${settings[@]}"; do
  # shellcheck disable=SC2086  # the setting is a list of flags
  line="$("$ROOT/bench/slurm/trivial_jobs.sh" --jobs "$JOBS" $setting)"
  echo "$line"
  slurm_rate="$(rate "$line")"
  awk -v a="$allot_rate" -v s="$slurm_rate" -v what="${setting:-defaults}" 'BEGIN { printf "  allot / slurm (%s): %.1fx\n", what, a / s }'
  if [[ "$setting" != *--slots* ]]; then
    best="$(awk -v b="$best" -v s="$slurm_rate" 'BEGIN { print (s > b ? s : b) }')"
  fi
done
awk -v a="$allot_rate" -v b="$best" 'BEGIN { printf "allot / best 8-slot Slurm setting: %.1fx (%.1f vs %.1f jobs/s)\n", a / b, a, b }'
