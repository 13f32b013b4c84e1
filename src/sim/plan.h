// `allot plan`: a what-if comparison. One workload, several scenarios of the pool (changes to one
// config: quotas and splits, purchases, lending limits, grants, policies, failure rates), each
// simulated under the same seeds, side by side in one report (sim/plan_report.cc).
//
// A plan file (examples/plans/national-split.yaml):
//
//   plan:
//     name: Who gets the next 16,000 GPUs
//     config: ../national-pool.yaml   # relative to the plan file; its `workload` section too
//     seeds: 3                        # or a list: [1, 2, 3]
//   scenarios:
//     - name: today
//     - name: public +30%
//       change:                        # merged into the config (MergeChange)
//         pools: [{name: nacc-b200, shape: {pods: 6}}]
//     - name: shortest first
//       policy: sjf                    # a preset of `allot sim --policy`
//
// Every scenario replays the same jobs for a seed: they are generated once per seed from the
// plan's config and workload, so a changed split moves capacity, not demand. A scenario that
// changes the workload itself (other than `failures`) gets jobs of its own. Node failures follow
// each scenario's pool and failure model.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "sim/result.h"

namespace allot {

struct PlanScenario {
  std::string name;
  std::string description;
  std::string policy;  // a policy preset; empty: the config's policy
  YAML::Node change;   // merged into the config document (and its `workload` section)
};

struct Plan {
  std::string path;  // the plan file
  std::string name;
  std::string description;
  std::string config_path;    // resolved against the plan file's folder
  std::string workload_path;  // the file with the `workload` section (default: the config)
  size_t jobs = 0;            // > 0: generate this many jobs instead of the model's count
  std::vector<uint64_t> seeds = {1};
  Time horizon = kForever;
  std::vector<PlanScenario> scenarios;
};

StatusOr<Plan> LoadPlanFile(const std::string& path);
StatusOr<Plan> ParsePlan(std::string_view yaml, const std::string& path);

// Merges `change` into a copy of `base`, the way people write a change to a config:
// - mappings merge key by key, recursively;
// - a list of mappings with `name` merges element by element by name: a named element that
//   exists is merged into, a new name is appended, and `{name: X, remove: true}` removes X;
// - anything else (scalars, other lists, a mapping where a plain value was) replaces what was
//   there.
// `where` prefixes error messages (a change that sets a mapping where a list is, say).
StatusOr<YAML::Node> MergeChange(const YAML::Node& base, const YAML::Node& change, const std::string& where);

// What each scenario changes, in words: "pools: nacc-b200 changed, nacc-b200-2 added".
std::vector<std::string> DescribeChange(const YAML::Node& base, const YAML::Node& change);

struct PlanOptions {
  size_t threads = 1;  // simulations run at once
  // progress(scenario index, fraction of its runs done, over all its seeds); from any thread,
  // never two calls at once.
  std::function<void(size_t, double)> progress;
};

struct ScenarioResult {
  std::string name;
  std::string description;
  std::vector<std::string> changes;
  std::vector<uint64_t> seeds;
  // One run per seed, labelled with the scenario's name. Only the first keeps its job records
  // (the report's completion-time plot uses them); the others keep their summaries and series.
  std::vector<SimRun> runs;
};

// Runs every scenario under every seed. Bad input (plan, configs, changes) is an error before
// any simulation starts.
StatusOr<std::vector<ScenarioResult>> RunPlan(const Plan& plan, const PlanOptions& options);

}  // namespace allot
