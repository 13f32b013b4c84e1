// Synthetic jobs for a loaded pool: the national job mix, for demos, tests and benchmarks.
//
// The mix follows the reference workload: mostly small jobs (1-8 GPUs, one task), industry-sized
// gangs (64-1,024 GPUs) kept inside an NVLink domain, leaf or pod by size, and a few
// foundation-model runs of thousands of GPUs inside one pod. Accounts are drawn among leaf
// accounts in proportion to their nominal quota; each job goes to a pool its account has quota in.
// Seeded: the same seed gives the same jobs.
//
//   std::vector<JobSpec> jobs = GenerateJobs(model.cluster(), model.accounts(), 100000, {.seed = 7});
#pragma once

#include <cstdint>
#include <vector>

#include "core/accounts.h"
#include "core/cluster.h"
#include "core/job.h"

namespace allot {

struct JobMix {
  uint64_t seed = 1;
  double small_fraction = 0.80;  // 1-8 GPUs, one task
  double gang_fraction = 0.19;   // 64-1,024 GPUs
  // the rest: 2,048-8,192 GPUs inside one pod
  Duration min_time_limit = 3600;
  Duration max_time_limit = 2 * 86400;
};

std::vector<JobSpec> GenerateJobs(const Cluster& cluster, const AccountTree& accounts,
                                  size_t count, const JobMix& mix);

}  // namespace allot
