// What one simulation run produced: a record per job, time series, and the summary computed from
// them (metrics.h). Reports (report.h) only read these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/units.h"

namespace allot {

enum class Outcome : uint8_t {
  kCompleted,   // ran to its end
  kTimedOut,    // killed at its time limit
  kCancelled,   // cancelled by its owner (pending or running)
  kFailed,      // its node failed or it was preempted, and it does not requeue
  kRejected,    // refused at submit: it could never run (too large, unknown account, ...)
  kUnfinished,  // still pending or running when the simulation stopped
};
std::string_view OutcomeName(Outcome outcome);

// One trace job's fate. Compact: a national run keeps a million of these.
struct JobRecord {
  JobId id = 0;
  uint32_t account = 0;  // index into SimRun::account_names
  int32_t pool = -1;     // index into SimRun::pool_names of the last start; -1 never started
  int64_t gpus = 0;
  Time submit = 0;
  Time start = -1;       // start of the last execution; -1 never started
  Time end = -1;         // end of the last execution; -1 never ended
  int32_t restarts = 0;  // executions lost to preemption or node failure
  Outcome outcome = Outcome::kUnfinished;
  double lost_gpu_seconds = 0;  // work thrown away by preemptions and node failures

  Duration wait() const { return start - submit; }
  Duration run() const { return end - start; }
};

// An account followed over time in the report (the programmes: accounts near the root).
struct TrackedAccount {
  std::string name;
  int64_t nominal_gpus = 0;  // summed over pools; 0 when it has no quota
};

// Time-weighted averages per bucket of `step` seconds from `origin`.
struct TimeSeries {
  Time origin = 0;
  Duration step = 60;
  std::vector<double> allocated_gpus;
  std::vector<double> pending_jobs;
  std::vector<std::vector<double>> tracked_gpus;  // [tracked account][bucket]
};

struct AccountSummary {
  std::string name;
  size_t jobs = 0;  // jobs that ran to the end (completed or timed out)
  double gpu_hours = 0;
  double avg_wait_s = 0;
  double p50_wait_s = 0;
  double p95_wait_s = 0;
  double p99_wait_s = 0;
  double avg_bsld = 0;
  int64_t nominal_gpus = 0;
  double avg_gpus = 0;          // GPU-hours over the makespan
  double share_of_nominal = 0;  // avg_gpus / nominal_gpus; 0 without a nominal
};

struct SimSummary {
  std::string policy;
  int64_t total_gpus = 0;
  size_t trace_jobs = 0;    // jobs read from the trace
  size_t skipped_lines = 0; // bad trace lines skipped
  size_t jobs = 0;          // ran to the end: completed + timed_out
  size_t completed = 0;
  size_t timed_out = 0;
  size_t cancelled = 0;
  size_t failed = 0;
  size_t rejected = 0;      // could never be placed
  size_t unfinished = 0;
  double avg_wait_s = 0;
  double p50_wait_s = 0;
  double p95_wait_s = 0;
  double p99_wait_s = 0;
  double max_wait_s = 0;
  double avg_jct_s = 0;
  double avg_bsld = 0;
  double utilization = 0;  // allocated GPU-seconds / (total GPUs x makespan)
  Duration makespan_s = 0; // first submit to last end
  double gpu_hours = 0;    // allocated, including work later lost
  double gpu_hours_lost = 0;
  size_t preemptions = 0;
  size_t node_failures = 0;
  size_t passes = 0;
  double jain_fairness = 0;  // over accounts' average bounded slowdown; 1 = all equal
  double sim_wall_s = 0;
  size_t peak_rss_bytes = 0;
  std::vector<AccountSummary> per_account;  // accounts with jobs, by name
};

struct SimRun {
  SimSummary summary;
  std::vector<JobRecord> jobs;  // in trace order
  std::vector<std::string> account_names;
  std::vector<std::string> pool_names;
  std::vector<TrackedAccount> tracked;
  TimeSeries series;
  std::vector<std::string> problems;  // trace and submit problems, first 100
};

}  // namespace allot
