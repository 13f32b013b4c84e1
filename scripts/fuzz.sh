#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan, and runs each for a while.
#   scripts/fuzz.sh [SECONDS] [FUZZER...]   default: 60 s each, every fuzzer
# Seeds come from tests/fuzz/corpus/<fuzzer>/ (kept in git, never written); what a run finds goes
# to build-fuzz/corpus/<fuzzer>/, and a crash to build-fuzz/crashes/<fuzzer>/ with the input that
# caused it. Exits non-zero if any fuzzer crashed. Figures from long runs are in docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
seconds="${1:-60}"
shift || true
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DALLOT_FUZZ=ON -DALLOT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-fuzz --target allot_fuzzers
fuzzers=("$@")
if [ ${#fuzzers[@]} -eq 0 ]; then
  fuzzers=(submission_fuzzer sbatch_fuzzer config_fuzzer trace_fuzzer agent_report_fuzzer)
fi
failed=0
for fuzzer in "${fuzzers[@]}"; do
  corpus="build-fuzz/corpus/$fuzzer"
  crashes="build-fuzz/crashes/$fuzzer"
  mkdir -p "$corpus" "$crashes"
  log="build-fuzz/$fuzzer.log"
  # Inputs up to 64 KiB; a config or trace that size is already large. 2 GiB of memory at most.
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "build-fuzz/tests/fuzz/$fuzzer" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
       -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/" \
       "$corpus" "tests/fuzz/corpus/$fuzzer" >"$log" 2>&1; then
    runs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz: $fuzzer: ${runs:-?} runs in ${seconds} s, no crash"
  else
    echo "fuzz: $fuzzer CRASHED; the input is in $crashes/, the log in $log:" >&2
    tail -40 "$log" >&2
    failed=1
  fi
done
exit $failed
