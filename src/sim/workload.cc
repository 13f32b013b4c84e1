#include "sim/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "core/yaml_reader.h"

namespace allot {
namespace {

StatusOr<std::pair<Duration, Duration>> DurationRange(const YamlReader& reader, const YAML::Node& node,
                                                      std::string_view field) {
  if (node.IsScalar()) {
    ALLOT_ASSIGN_OR_RETURN(Duration value, reader.DurationValue(node, field));
    return std::make_pair(value, value);
  }
  if (!node.IsSequence() || node.size() != 2) return reader.Error(node, field, "expected [min, max]");
  ALLOT_ASSIGN_OR_RETURN(Duration low, reader.DurationValue(node[0], field));
  ALLOT_ASSIGN_OR_RETURN(Duration high, reader.DurationValue(node[1], field));
  if (low > high) return reader.Error(node, field, "min {} is above max {}", low, high);
  return std::make_pair(low, high);
}

StatusOr<std::pair<double, double>> NumberRange(const YamlReader& reader, const YAML::Node& node,
                                                std::string_view field, double min) {
  std::pair<double, double> range;
  if (node.IsScalar()) {
    ALLOT_ASSIGN_OR_RETURN(range.first, reader.Number(node, field));
    range.second = range.first;
  } else {
    if (!node.IsSequence() || node.size() != 2) return reader.Error(node, field, "expected [min, max]");
    ALLOT_ASSIGN_OR_RETURN(range.first, reader.Number(node[0], field));
    ALLOT_ASSIGN_OR_RETURN(range.second, reader.Number(node[1], field));
  }
  if (range.first < min || range.first > range.second) {
    return reader.Error(node, field, "expected {} <= min <= max", min);
  }
  return range;
}

StatusOr<std::vector<std::string>> StringList(const YamlReader& reader, const YAML::Node& node,
                                              std::string_view field) {
  std::vector<std::string> values;
  if (node.IsScalar()) return std::vector<std::string>{node.Scalar()};
  if (!node.IsSequence()) return reader.Error(node, field, "expected a name or a list of names");
  for (size_t i = 0; i < node.size(); ++i) {
    ALLOT_ASSIGN_OR_RETURN(std::string value, reader.String(node[i], Item(field, i)));
    values.push_back(std::move(value));
  }
  return values;
}

StatusOr<JobClass> ReadClass(const YamlReader& reader, const YAML::Node& node, std::string_view field) {
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(
      node, field,
      {"name", "weight", "accounts", "gpus", "gpus_per_task", "runtime", "limit_factor", "gpu_model",
       "pools", "topology", "priority_class", "preemptible", "kind", "cancel_fraction", "checkpoint"}));
  JobClass job_class;
  if (!node["name"]) return reader.Error(node, field, "needs a name");
  ALLOT_ASSIGN_OR_RETURN(job_class.name, reader.String(node["name"], Field(field, "name")));
  if (node["weight"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.weight, reader.Number(node["weight"], Field(field, "weight")));
    if (job_class.weight <= 0) return reader.Error(node["weight"], Field(field, "weight"), "must be positive");
  }
  if (node["accounts"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.accounts, StringList(reader, node["accounts"], Field(field, "accounts")));
  }
  if (node["gpus_per_task"]) {
    ALLOT_ASSIGN_OR_RETURN(int64_t per_task, reader.Integer(node["gpus_per_task"], Field(field, "gpus_per_task"), 1, kMaxGpusPerNode));
    job_class.gpus_per_task = static_cast<int>(per_task);
  }
  if (node["gpus"]) {
    ALLOT_ASSIGN_OR_RETURN(auto gpus, NumberRange(reader, node["gpus"], Field(field, "gpus"), 1));
    job_class.gpus = {static_cast<int64_t>(gpus.first), static_cast<int64_t>(gpus.second)};
    if (job_class.gpus.second > 1000000) return reader.Error(node["gpus"], Field(field, "gpus"), "at most 1,000,000 GPUs");
  }
  if (job_class.gpus.first < job_class.gpus_per_task) job_class.gpus.first = job_class.gpus_per_task;
  if (job_class.gpus.second < job_class.gpus.first) {
    return reader.Error(node, field, "gpus max {} is below gpus_per_task {}", job_class.gpus.second,
                        job_class.gpus_per_task);
  }
  if (node["runtime"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.runtime, DurationRange(reader, node["runtime"], Field(field, "runtime")));
    if (job_class.runtime.first < 1) return reader.Error(node["runtime"], Field(field, "runtime"), "must be at least 1s");
  }
  if (node["limit_factor"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.limit_factor, NumberRange(reader, node["limit_factor"], Field(field, "limit_factor"), 0.01));
  }
  if (node["gpu_model"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.gpu_model, reader.String(node["gpu_model"], Field(field, "gpu_model")));
  }
  if (node["pools"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.pools, StringList(reader, node["pools"], Field(field, "pools")));
  }
  if (node["topology"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.topology, ParseTopologyNode(node["topology"], reader.source(), Field(field, "topology")));
  }
  if (node["priority_class"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.priority_class, reader.String(node["priority_class"], Field(field, "priority_class")));
  }
  if (node["preemptible"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.preemptible, reader.Bool(node["preemptible"], Field(field, "preemptible")));
  }
  if (node["kind"]) {
    ALLOT_ASSIGN_OR_RETURN(std::string kind, reader.String(node["kind"], Field(field, "kind")));
    StatusOr<JobKind> parsed = ParseJobKind(kind);
    if (!parsed.ok()) return reader.Error(node["kind"], Field(field, "kind"), "{}", parsed.status().message());
    job_class.kind = *parsed;
  }
  if (node["cancel_fraction"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.cancel_fraction, reader.Number(node["cancel_fraction"], Field(field, "cancel_fraction")));
    if (job_class.cancel_fraction < 0 || job_class.cancel_fraction > 1) {
      return reader.Error(node["cancel_fraction"], Field(field, "cancel_fraction"), "must be between 0 and 1");
    }
  }
  if (node["checkpoint"]) {
    ALLOT_ASSIGN_OR_RETURN(job_class.checkpoint_interval, reader.DurationValue(node["checkpoint"], Field(field, "checkpoint")));
  }
  return job_class;
}

StatusOr<WorkloadModel> ReadWorkload(const YamlReader& reader, const YAML::Node& node) {
  if (!node) return reader.Error(node, "workload", "the file has no workload section");
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(node, "workload", {"jobs", "days", "classes", "failures"}));
  WorkloadModel model;
  if (node["jobs"]) {
    ALLOT_ASSIGN_OR_RETURN(int64_t jobs, reader.Integer(node["jobs"], "workload.jobs", 0, 100000000));
    model.jobs = static_cast<size_t>(jobs);
  }
  if (node["days"]) {
    ALLOT_ASSIGN_OR_RETURN(model.days, reader.Number(node["days"], "workload.days"));
    if (model.days <= 0 || model.days > 3650) return reader.Error(node["days"], "workload.days", "must be between 0 and 3650");
  }
  if (!node["classes"] || !node["classes"].IsSequence() || node["classes"].size() == 0) {
    return reader.Error(node, "workload.classes", "needs a list of job classes");
  }
  for (size_t i = 0; i < node["classes"].size(); ++i) {
    ALLOT_ASSIGN_OR_RETURN(JobClass job_class, ReadClass(reader, node["classes"][i], Item("workload.classes", i)));
    model.classes.push_back(std::move(job_class));
  }
  if (const YAML::Node& failures = node["failures"]) {
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(failures, "workload.failures", {"mtbf", "repair"}));
    if (failures["mtbf"]) {
      ALLOT_ASSIGN_OR_RETURN(model.failure_mtbf, reader.DurationValue(failures["mtbf"], "workload.failures.mtbf"));
    }
    if (failures["repair"]) {
      ALLOT_ASSIGN_OR_RETURN(model.repair, DurationRange(reader, failures["repair"], "workload.failures.repair"));
    }
  }
  return model;
}

// Leaf accounts at or below `names` (every leaf when empty), each with its nominal summed over
// pools as its weight (1 when it has none).
StatusOr<std::vector<std::pair<std::string, double>>> ClassAccounts(const AccountTree& tree,
                                                                    const JobClass& job_class) {
  std::vector<AccountIndex> roots;
  if (job_class.accounts.empty()) {
    roots.push_back(tree.root());
  } else {
    for (const std::string& name : job_class.accounts) {
      StatusOr<AccountIndex> found = tree.Find(name);
      if (!found.ok()) {
        return InvalidArgumentError("workload class '{}': {}", job_class.name, found.status().message());
      }
      roots.push_back(*found);
    }
  }
  std::vector<std::pair<std::string, double>> leaves;
  for (AccountIndex a = 0; a < tree.accounts().size(); ++a) {
    const Account& account = tree.account(a);
    if (!account.is_leaf() || a == tree.root()) continue;
    bool below = std::any_of(roots.begin(), roots.end(), [&](AccountIndex r) { return tree.IsAncestorOrSelf(r, a); });
    if (!below) continue;
    double nominal = 0;
    for (const PoolQuota& quota : account.quota) {
      if (quota.nominal < kUnlimited) nominal += static_cast<double>(quota.nominal);
    }
    leaves.emplace_back(account.name, std::max(1.0, nominal));
  }
  if (leaves.empty()) return InvalidArgumentError("workload class '{}' has no leaf accounts", job_class.name);
  return leaves;
}

}  // namespace

StatusOr<WorkloadModel> ParseWorkload(std::string_view yaml, std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}:{}:{}: {}", source, error.mark.line + 1, error.mark.column + 1, error.msg);
  }
  YamlReader reader(source);
  return ReadWorkload(reader, root["workload"]);
}

StatusOr<WorkloadModel> ParseWorkloadNode(const YAML::Node& root, std::string_view source) {
  YamlReader reader(source);
  if (!root.IsMap()) return reader.Error(root, "workload", "the file is not a mapping with a workload section");
  return ReadWorkload(reader, root["workload"]);
}

StatusOr<WorkloadModel> LoadWorkloadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open workload file '{}'", path);
  std::stringstream text;
  text << in.rdbuf();
  return ParseWorkload(text.str(), path);
}

StatusOr<std::vector<TraceJob>> GenerateWorkload(const WorkloadModel& model, const Config& config,
                                                 uint64_t seed) {
  const AccountTree& tree = config.accounts;
  const Cluster& cluster = config.cluster;
  struct Resolved {
    std::vector<std::string> accounts;
    std::discrete_distribution<size_t> pick_account;
  };
  std::vector<Resolved> resolved;
  std::vector<double> class_weights;
  for (const JobClass& job_class : model.classes) {
    ALLOT_ASSIGN_OR_RETURN(auto leaves, ClassAccounts(tree, job_class));
    for (const std::string& pool : job_class.pools) {
      if (!cluster.FindPool(pool).ok()) return InvalidArgumentError("workload class '{}': no pool '{}'", job_class.name, pool);
    }
    if (!job_class.gpu_model.empty()) {
      bool known = std::any_of(cluster.pools().begin(), cluster.pools().end(),
                               [&](const Pool& pool) { return pool.gpu_model == job_class.gpu_model; });
      if (!known) return InvalidArgumentError("workload class '{}': no pool has GPU model '{}'", job_class.name, job_class.gpu_model);
    }
    Resolved entry;
    std::vector<double> weights;
    for (auto& [name, weight] : leaves) {
      entry.accounts.push_back(name);
      weights.push_back(weight);
    }
    entry.pick_account = std::discrete_distribution<size_t>(weights.begin(), weights.end());
    resolved.push_back(std::move(entry));
    class_weights.push_back(job_class.weight);
  }

  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::discrete_distribution<size_t> pick_class(class_weights.begin(), class_weights.end());
  double span = model.days * 86400.0;
  double mean_gap = model.jobs > 0 ? span / static_cast<double>(model.jobs) : span;
  std::exponential_distribution<double> gap(1.0 / mean_gap);
  auto log_uniform = [&](double low, double high) {
    if (high <= low) return low;
    return std::exp(std::log(low) + unit(random) * (std::log(high) - std::log(low)));
  };

  std::vector<TraceJob> jobs;
  jobs.reserve(model.jobs);
  double clock = 0;
  for (size_t i = 0; i < model.jobs; ++i) {
    clock += gap(random);
    size_t c = pick_class(random);
    const JobClass& job_class = model.classes[c];
    TraceJob job;
    job.id = i + 1;
    job.submit = static_cast<Time>(clock);
    job.account = resolved[c].accounts[resolved[c].pick_account(random)];
    // Sizes are powers of two (in tasks), as people ask for them.
    int64_t per_task = job_class.gpus_per_task;
    double low_tasks = static_cast<double>((job_class.gpus.first + per_task - 1) / per_task);
    double high_tasks = static_cast<double>(job_class.gpus.second / per_task);
    double tasks = log_uniform(std::max(1.0, low_tasks), std::max(1.0, high_tasks));
    int64_t rounded = int64_t{1} << static_cast<int>(std::lround(std::log2(tasks)));
    rounded = std::clamp<int64_t>(rounded, static_cast<int64_t>(std::max(1.0, low_tasks)),
                                  static_cast<int64_t>(std::max(1.0, high_tasks)));
    job.tasks = static_cast<int>(rounded);
    job.gpus_per_task = job_class.gpus_per_task;
    job.runtime = static_cast<Duration>(log_uniform(static_cast<double>(job_class.runtime.first),
                                                    static_cast<double>(job_class.runtime.second)));
    double factor = job_class.limit_factor.first +
                    unit(random) * (job_class.limit_factor.second - job_class.limit_factor.first);
    job.time_limit = std::max<Duration>(1, static_cast<Duration>(std::ceil(static_cast<double>(job.runtime) * factor)));
    if (config.policy.max_time_limit > 0) job.time_limit = std::min(job.time_limit, config.policy.max_time_limit);
    job.gpu_model = job_class.gpu_model;
    if (!job_class.pools.empty()) {
      job.pool = job_class.pools[static_cast<size_t>(unit(random) * static_cast<double>(job_class.pools.size())) %
                                 job_class.pools.size()];
    }
    job.topology = job_class.topology;
    job.priority_class = job_class.priority_class;
    job.preemptible = job_class.preemptible;
    job.kind = job_class.kind;
    job.checkpoint_interval = job_class.checkpoint_interval;
    if (job_class.cancel_fraction > 0 && unit(random) < job_class.cancel_fraction) {
      // Owners give up somewhere within the job's time limit.
      job.cancel_after = static_cast<Duration>(unit(random) * static_cast<double>(job.time_limit));
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::vector<NodeEvent> GenerateFailures(const WorkloadModel& model, const Cluster& cluster, uint64_t seed) {
  std::vector<NodeEvent> events;
  if (model.failure_mtbf <= 0) return events;
  std::mt19937_64 random(seed ^ 0x9e3779b97f4a7c15ULL);
  std::exponential_distribution<double> uptime(1.0 / static_cast<double>(model.failure_mtbf));
  std::uniform_int_distribution<Duration> repair(model.repair.first, model.repair.second);
  double span = model.days * 86400.0;
  for (const Node& node : cluster.nodes()) {
    double clock = uptime(random);
    while (clock < span) {
      Time down = static_cast<Time>(clock);
      Time up = down + std::max<Duration>(1, repair(random));
      events.push_back({down, node.name, NodeState::kDown});
      events.push_back({up, node.name, NodeState::kUp});
      clock = static_cast<double>(up) + uptime(random);
    }
  }
  std::stable_sort(events.begin(), events.end(), [](const NodeEvent& a, const NodeEvent& b) { return a.time < b.time; });
  return events;
}

}  // namespace allot
