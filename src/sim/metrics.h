// Metrics of a simulation run, computed from its job records (sim/result.h).
//
//   wait      start of the job's first execution - submit (restarts are counted apart)
//   JCT       end - submit (job completion time)
//   bsld      bounded slowdown max((end - submit) / max(run, 10 s), 1), run of the last execution
// Averages and percentiles cover the jobs that ran to their end (completed or timed out).
// Jain's fairness index is taken over the accounts' average bounded slowdowns:
// (sum x)^2 / (n * sum x^2); 1 when every account sees the same slowdown.
#pragma once

#include <vector>

#include "sim/result.h"

namespace allot {

// Fills run.summary's job counts, waits, JCT, slowdown, fairness and per-account figures from
// run.jobs, and the job-derived figures of run.summary.per_programme (which the caller has
// sized). `gpu_seconds_by_account` (allocated, lost work included), `nominal_by_account` and
// `programme_of_account` (index into per_programme, -1 none) are indexed like
// run.account_names. Leaves the run-level totals (utilisation, makespan, ...) and the
// programmes' time-integrated figures to the simulator.
void SummarizeJobs(SimRun& run, const std::vector<double>& gpu_seconds_by_account,
                   const std::vector<int64_t>& nominal_by_account,
                   const std::vector<int>& programme_of_account);

// The value at quantile q (0..1) of `values` (nearest rank); 0 for an empty list. Reorders.
double Percentile(std::vector<double>& values, double q);

double JainIndex(const std::vector<double>& values);

}  // namespace allot
