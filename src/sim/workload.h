// The national workload model: a seeded generator of jobs (and node failures) for a loaded pool,
// read from the `workload` section of a YAML file (examples/national-pool.yaml has one).
//
//   workload:
//     jobs: 1000000            # arrivals, Poisson over `days`
//     days: 30
//     classes:                 # each arrival picks a class by weight
//       - name: industry-finetune
//         weight: 4
//         accounts: [samsung, sk]        # leaves below these, drawn by nominal quota
//         gpus: [64, 1024]               # powers of two, log-uniform, multiples of gpus_per_task
//         gpus_per_task: 8
//         runtime: [1h, 2d]              # log-uniform
//         limit_factor: [1.2, 3]         # time limit = runtime x uniform factor (capped)
//         gpu_model: B200                # or pools: [...]
//         topology: leaf                 # required level; or {level: leaf, mode: preferred}
//         priority_class: normal
//         preemptible: true
//         cancel_fraction: 0.02          # owners cancel this share while it waits or runs
//         checkpoint: 2h                 # a requeued job resumes from its last checkpoint
//     failures: {mtbf: 60d, repair: [1h, 12h]}   # per node; repair time uniform
//
//   ALLOT_ASSIGN_OR_RETURN(WorkloadModel model, LoadWorkloadFile("examples/national-pool.yaml"));
//   ALLOT_ASSIGN_OR_RETURN(std::vector<TraceJob> jobs, GenerateWorkload(model, config, seed));
//
// The same model, config and seed give the same jobs (std::mt19937_64 and libstdc++'s
// distributions).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace allot {

struct JobClass {
  std::string name;
  double weight = 1;
  std::vector<std::string> accounts;  // empty: every leaf account
  std::pair<int64_t, int64_t> gpus{1, 1};
  int gpus_per_task = 1;
  std::pair<Duration, Duration> runtime{3600, 3600};
  std::pair<double, double> limit_factor{1.0, 1.0};
  std::string gpu_model;
  std::vector<std::string> pools;
  TopologyConstraint topology;
  std::string priority_class;
  bool preemptible = true;
  JobKind kind = JobKind::kBatch;
  double cancel_fraction = 0;
  Duration checkpoint_interval = 0;  // 0: a requeued job starts over
};

struct WorkloadModel {
  size_t jobs = 1000;
  double days = 30;
  std::vector<JobClass> classes;
  Duration failure_mtbf = 0;  // per node; 0: no failures
  std::pair<Duration, Duration> repair{3600, 3600};
};

// Reads the `workload` key of a YAML file; errors name the file, line and field.
StatusOr<WorkloadModel> LoadWorkloadFile(const std::string& path);
StatusOr<WorkloadModel> ParseWorkload(std::string_view yaml, std::string_view source);
// The same, from a parsed document (its `workload` section).
StatusOr<WorkloadModel> ParseWorkloadNode(const YAML::Node& root, std::string_view source);

// The arrivals, sorted by submit time; job ids 1..n. Fails if a class names an account, pool or
// GPU model the config lacks.
StatusOr<std::vector<TraceJob>> GenerateWorkload(const WorkloadModel& model, const Config& config,
                                                 uint64_t seed);

// Node failures over the model's days: each node fails after exponential times with mean mtbf
// and is repaired after a uniform repair time.
std::vector<NodeEvent> GenerateFailures(const WorkloadModel& model, const Cluster& cluster,
                                        uint64_t seed);

}  // namespace allot
