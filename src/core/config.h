// Loading a pool from YAML: pools and nodes, the account tree, and the scheduling policy.
//
// Every error names the file, the line and column, and the field, e.g.
//   national.yaml:41:17: accounts[1].children[0].quota.nacc-b200.nominal: expected a
//   non-negative integer, got 'lots'
// Unknown fields are errors too, so a typo never silently means a default.
//
//   StatusOr<Config> config = LoadConfigFile("examples/national-pool.yaml");
//   if (!config.ok()) { std::cerr << config.status().message(); return 2; }
//   Model model(std::move(config->cluster), std::move(config->accounts));
//
// The format is documented in docs/configuration.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/accounts.h"
#include "core/cluster.h"
#include "core/input_limits.h"
#include "core/job.h"
#include "core/units.h"

namespace allot {

// Scheduling policy as written in the config; the scheduler turns the names into parts.
struct PolicyConfig {
  std::string queue_order = "fair_share";  // fair_share | fifo | sjf | predicted | las
  // las: the attained service (GPU-hours over all of a job's runs) at which a job drops to the
  // next queue, ascending. Jobs in a lower queue go first and preempt jobs in higher ones.
  std::vector<double> las_thresholds = {0.25, 1, 4, 16, 64, 256};
  // las: a requeued job that has waited this many times as long as it has run goes back to the
  // first queue (Tiresias' PromoteKnob). 0: never.
  double las_promote = 1;
  std::string backfill = "easy";           // easy | conservative | none | first_fit
  int reservation_depth = 0;               // 0: 1 for easy, 16 for conservative
  Duration fair_share_half_life = 7 * 86400;
  // A job pending this long goes ahead of its class (the oldest, up to reservation_depth per
  // pool), so fair share cannot starve a big gang of a busy account. 0 turns it off.
  Duration starvation_after = 2 * 3600;
  // Least time between two scheduling passes. Events (submits, ends, node changes) trigger a
  // pass; within the interval they are batched into the next one. 0: a pass at every event.
  Duration pass_interval = 0;
  bool reclaim = true;              // a job within nominal preempts borrowers
  bool priority_preemption = true;  // classes with preempts_lower preempt lower classes
  Duration default_time_limit = 86400;
  Duration max_time_limit = 0;  // 0: none
  std::string default_priority_class = "normal";
  std::vector<PriorityClass> priority_classes = {
      {"critical", 1000, true}, {"normal", 100, false}, {"low", 0, false}};

  static const std::vector<std::string_view>& QueueOrders();
  static const std::vector<std::string_view>& BackfillModes();
};

struct Config {
  Cluster cluster;
  AccountTree accounts{0};
  PolicyConfig policy;
};

StatusOr<Config> LoadConfigFile(const std::string& path);
// `source` names the text in error messages (a file name, or "<inline>").
StatusOr<Config> ParseConfig(std::string_view yaml, std::string_view source);
// The same, from an already parsed tree (a config embedded in a larger file).
StatusOr<Config> ParseConfigNode(const YAML::Node& root, std::string_view source);

// Reads one job spec (the YAML a tenant submits; docs/configuration.md). `field` prefixes
// messages. Fields in `also_allowed` are accepted and left for the caller to read; any other
// unknown field is an error. An empty account is left for the server to fill in.
StatusOr<JobSpec> ParseJobSpec(const YAML::Node& node, std::string_view source,
                               std::string_view field,
                               const std::vector<std::string_view>& also_allowed = {});
// Parses YAML (or JSON, which is YAML) text; errors carry source:line:column.
// Refuses text that is not UTF-8 or nests deeper than kMaxNestingDepth before parsing it, and a
// document that expands (YAML aliases included) to more than `max_values` values after.
StatusOr<YAML::Node> ParseYaml(std::string_view yaml, std::string_view source,
                               size_t max_values = kMaxConfigValues);
// A topology constraint: `leaf` (required) or {level: leaf, mode: preferred}.
StatusOr<TopologyConstraint> ParseTopologyNode(const YAML::Node& node, std::string_view source,
                                               std::string_view field);
StatusOr<JobSpec> ParseJobSpecText(std::string_view yaml, std::string_view source);

// A time in a config: seconds, a duration from time 0 ("90d"), or a UTC date "2026-01-01".
StatusOr<Time> ParseTimePoint(std::string_view text);

}  // namespace allot
