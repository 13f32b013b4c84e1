// Metrics of a simulation run, computed from its job records (sim/result.h).
//
//   wait      start of the job's last execution - submit
//   JCT       end - submit (job completion time)
//   bsld      bounded slowdown max((wait + run) / max(run, 10 s), 1)
// Averages and percentiles cover the jobs that ran to their end (completed or timed out).
// Jain's fairness index is taken over the accounts' average bounded slowdowns:
// (sum x)^2 / (n * sum x^2); 1 when every account sees the same slowdown.
#pragma once

#include <vector>

#include "sim/result.h"

namespace allot {

// Fills run.summary's job counts, waits, JCT, slowdown, fairness and per-account figures from
// run.jobs. `gpu_seconds_by_account` (allocated, lost work included) and `nominal_by_account`
// are indexed like run.account_names. Leaves the run-level totals (utilisation, makespan, ...)
// to the simulator.
void SummarizeJobs(SimRun& run, const std::vector<double>& gpu_seconds_by_account,
                   const std::vector<int64_t>& nominal_by_account);

// The value at quantile q (0..1) of `values` (nearest rank); 0 for an empty list. Reorders.
double Percentile(std::vector<double>& values, double q);

double JainIndex(const std::vector<double>& values);

}  // namespace allot
