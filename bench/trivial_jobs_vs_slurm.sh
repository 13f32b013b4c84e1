#!/usr/bin/env bash
# Trivial-jobs throughput, allot and Slurm 22.05 side by side in one run on this machine: N jobs
# that each run `true` on one of 8 slots, from the first submit until every job has ended.
#   allot: build/src/agent/trivial_jobs_benchmark (`allot server --dev`: the server and an agent
#          with 8 emulated GPUs in one process; each job takes 1 GPU)
#   Slurm: bench/slurm/trivial_jobs.sh, as Debian ships it, and --tuned (batch_sched_delay=0)
# Prints the three result lines and allot's rate as a multiple of each of Slurm's.
#
# Usage: bench/trivial_jobs_vs_slurm.sh [--jobs N] [--build DIR]   (default 1000 jobs, build dir build)
# Needs root (Slurm's daemons) and a release build of allot (cmake -B build && cmake --build build).
set -euo pipefail

JOBS=1000
BUILD=build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    *) echo "usage: $0 [--jobs N] [--build DIR]" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/$BUILD/src/agent/trivial_jobs_benchmark"
[[ -x "$BENCH" ]] || { echo "error: $BENCH not found; build allot first (cmake -B $BUILD && cmake --build $BUILD)" >&2; exit 1; }

rate() { sed -n 's/.*: \([0-9.]*\) jobs\/s.*/\1/p' <<<"$1"; }

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"
allot_line="allot: $("$BENCH" --jobs "$JOBS" 2>/dev/null | tail -n 1)"
echo "$allot_line"
slurm_line="$("$ROOT/bench/slurm/trivial_jobs.sh" --jobs "$JOBS")"
echo "$slurm_line"
tuned_line="$("$ROOT/bench/slurm/trivial_jobs.sh" --jobs "$JOBS" --tuned)"
echo "$tuned_line"
awk -v a="$(rate "$allot_line")" -v s="$(rate "$slurm_line")" -v t="$(rate "$tuned_line")" 'BEGIN {
  printf "allot / slurm: %.1fx as Debian ships it, %.1fx tuned\n", a / s, a / t
}'
