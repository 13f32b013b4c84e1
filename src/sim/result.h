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
  Time first_start = -1; // start of the first execution; -1 never started
  Time start = -1;       // start of the last execution; -1 never started
  Time end = -1;         // end of the last execution; -1 never ended
  int32_t restarts = 0;  // executions lost to preemption or node failure
  int32_t recovered = 0; // of those, how many were followed by another start
  Outcome outcome = Outcome::kUnfinished;
  double lost_gpu_seconds = 0;  // work thrown away by preemptions and node failures
  Duration recovering = 0;      // time spent waiting again after lost executions (recovered)

  // The wait a user sees: until the job first runs. Time lost to restarts is reported apart.
  Duration wait() const { return first_start - submit; }
  Duration run() const { return end - start; }  // of the last execution
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
  // [programme][bucket]: grant GPU-hours used by the end of the bucket, for programmes whose
  // subtree holds grants (ProgrammeSummary::grant_gpu_hours > 0); empty otherwise.
  std::vector<std::vector<double>> programme_grant_used;
  // [reason][bucket]: pending jobs by why they wait (the ReasonCode values, named by
  // ReasonCodeName), sampled at the first scheduling pass of each bucket and carried through
  // buckets without one. Empty when no pass ran.
  std::vector<std::vector<double>> pending_by_reason;
};

struct AccountSummary {
  std::string name;
  std::string programme;  // the programme it belongs to (see ProgrammeSummary); "" above them
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
  size_t restarts = 0;          // executions lost to preemption or node failure
  double lost_gpu_hours = 0;    // the work those executions threw away
  double avg_recover_s = 0;     // per restart: from losing an execution to running again
  double grant_gpu_hours = 0;   // of the grants the account itself holds
  double grant_used_gpu_hours = 0;
  Time grant_exhausted_at = -1; // first sample at which a grant was used up; -1 never
  // For a quota holder (sim/ledger.h): time demanded and short of its nominal, and the share
  // of demanded time it was not short.
  bool quota_holder = false;
  double demanded_s = 0;
  double shortfall_s = 0;
  double guarantee = 1;
};

// A programme: an account two levels below the root (public/startups, industry/samsung), or
// one level in a tree that has no second level. Its GPU-hours are split by whose GPUs they ran
// on, pool by pool: `own` within its nominal, `borrowed` above it. `lent` is the part of its
// idle nominal that others borrowed: a pool's borrowed GPUs are charged to the idle nominal of
// its owners in proportion, and what exceeds that idle nominal ran on GPUs under no quota.
struct ProgrammeSummary {
  std::string name;
  int64_t nominal_gpus = 0;  // summed over pools
  size_t accounts = 0;       // accounts below it with jobs
  size_t jobs = 0;           // jobs that ran to the end
  double gpu_hours = 0;
  double own_gpu_hours = 0;
  double borrowed_gpu_hours = 0;
  double lent_gpu_hours = 0;
  double avg_wait_s = 0;
  double p95_wait_s = 0;
  double avg_bsld = 0;
  size_t restarts = 0;
  double lost_gpu_hours = 0;
  double avg_recover_s = 0;
  // The guarantee, judged at its quota holders (sim/ledger.h explains it) and weighed by their
  // nominal: of the time its demand (running + waiting GPUs) reached its nominal, the share
  // in which it also held it, or no job of it that had waited a pass interval would have fit
  // in what was missing.
  double demanded_s = 0;           // over its quota holders, weighed by their nominal
  double shortfall_s = 0;
  double guarantee = 1;            // 1 - shortfall_s / demanded_s; 1 when never demanded
  double share_when_demanded = 0;  // of the nominal demanded, the share it held
  double grant_gpu_hours = 0;      // grants held in its subtree
  double grant_used_gpu_hours = 0;
  size_t grants_exhausted = 0;     // accounts whose grant was used up
};

// One pool over the run.
struct PoolSummary {
  std::string name;
  std::string gpu_model;
  int64_t gpus = 0;
  int64_t nominal_gpus = 0;  // under some quota; the rest is unowned
  double gpu_hours = 0;
  double utilization = 0;    // gpu_hours over gpus x makespan
  // Fragmentation: GPUs idle in partly used NVLink domains (some of the domain's GPUs busy, some
  // idle, on its up nodes), averaged over the run's buckets, each sampled with the pending
  // reasons. Idle GPUs a job that needs whole domains cannot use.
  double fragmented_gpus = 0;
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
  std::vector<ProgrammeSummary> per_programme;  // in tree order
  std::vector<PoolSummary> per_pool;            // in config order
};

struct SimRun {
  SimSummary summary;
  std::vector<JobRecord> jobs;  // in trace order
  std::vector<std::string> account_names;
  std::vector<std::string> pool_names;
  std::vector<TrackedAccount> tracked;
  TimeSeries series;
  std::vector<std::string> problems;  // trace and submit problems, first 100
  std::vector<std::string> notes;     // what a reader must know to read the figures right
};

}  // namespace allot
