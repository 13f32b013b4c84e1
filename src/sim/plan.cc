#include "sim/plan.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/config.h"
#include "core/yaml_reader.h"
#include "sim/simulator.h"
#include "sim/workload.h"

namespace allot {
namespace {

constexpr size_t kMaxSeeds = 100;
constexpr size_t kMaxScenarios = 20;

bool IsNamedList(const YAML::Node& node) {
  if (!node.IsSequence() || node.size() == 0) return false;
  for (const YAML::Node& element : node) {
    if (!element.IsMap() || !element["name"] || !element["name"].IsScalar()) return false;
  }
  return true;
}

// yaml-cpp nodes share their data: a merged document must not alias the base it came from.
YAML::Node DeepCopy(const YAML::Node& node) { return node.IsDefined() ? YAML::Clone(node) : YAML::Node(); }

StatusOr<YAML::Node> Merge(const YAML::Node& base, const YAML::Node& change, const std::string& where) {
  if (!change.IsDefined() || change.IsNull()) return DeepCopy(base);
  if (change.IsMap()) {
    if (base.IsSequence()) return InvalidArgumentError("{}: a mapping changes a list", where);
    // A mapping replaces a plain value: `samsung-b200: 23040` becomes {nominal: ..., lend_limit: ...}.
    if (base.IsScalar()) return DeepCopy(change);
    YAML::Node merged = base.IsMap() ? DeepCopy(base) : YAML::Node(YAML::NodeType::Map);
    for (const auto& entry : change) {
      std::string key = entry.first.Scalar();
      ALLOT_ASSIGN_OR_RETURN(YAML::Node value, Merge(merged[key], entry.second, where + "." + key));
      merged[key] = value;
    }
    return merged;
  }
  if (change.IsSequence() && IsNamedList(change) && (IsNamedList(base) || !base.IsDefined() || base.IsNull())) {
    std::vector<YAML::Node> elements;
    if (base.IsSequence()) {
      for (const YAML::Node& element : base) elements.push_back(DeepCopy(element));
    }
    for (const YAML::Node& element : change) {
      std::string name = element["name"].Scalar();
      auto it = std::find_if(elements.begin(), elements.end(),
                             [&](const YAML::Node& existing) { return existing["name"].Scalar() == name; });
      bool remove = element["remove"] && element["remove"].IsScalar() && element["remove"].Scalar() == "true";
      if (remove) {
        if (it == elements.end()) {
          return InvalidArgumentError("{}: cannot remove '{}': there is none by that name", where, name);
        }
        elements.erase(it);
        continue;
      }
      if (element["remove"]) return InvalidArgumentError("{}[{}].remove: expected true", where, name);
      std::string element_where = fmt::format("{}[{}]", where, name);
      if (it == elements.end()) {
        ALLOT_ASSIGN_OR_RETURN(YAML::Node added, Merge(YAML::Node(), element, element_where));
        elements.push_back(added);
      } else {
        ALLOT_ASSIGN_OR_RETURN(*it, Merge(*it, element, element_where));
      }
    }
    YAML::Node merged(YAML::NodeType::Sequence);
    for (const YAML::Node& element : elements) merged.push_back(element);
    return merged;
  }
  return DeepCopy(change);
}

// One line, whatever style the file used.
std::string Emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

YAML::Node FindNamed(const YAML::Node& list, const std::string& name, bool& found) {
  found = false;
  if (!list.IsSequence()) return YAML::Node();
  for (const YAML::Node& element : list) {
    if (element.IsMap() && element["name"] && element["name"].Scalar() == name) {
      found = true;
      return element;
    }
  }
  return YAML::Node();
}

bool Removes(const YAML::Node& element) { return element["remove"] && element["remove"].Scalar() == "true"; }

void Describe(const YAML::Node& base, const YAML::Node& change, const std::string& path,
              std::vector<std::string>& lines);

// A list of named things: each one added, removed, or changed field by field. Elements are named
// by path: `accounts/industry/samsung` (a `children` list continues its parent's path).
void DescribeNamedList(const YAML::Node& base, const YAML::Node& change, const std::string& list_path,
                       std::vector<std::string>& lines) {
  for (const YAML::Node& element : change) {
    std::string name = element["name"].Scalar();
    std::string element_path = list_path + "/" + name;
    bool found = false;
    const YAML::Node existing = FindNamed(base, name, found);
    if (Removes(element)) {
      lines.push_back(element_path + ": removed");
      continue;
    }
    if (!found) {
      lines.push_back(element_path + ": added");
      continue;
    }
    for (const auto& field : element) {
      std::string key = field.first.Scalar();
      if (key == "name") continue;
      if (key == "children" && IsNamedList(field.second)) {
        DescribeNamedList(existing[key], field.second, element_path, lines);
      } else {
        Describe(existing[key], field.second, element_path + "." + key, lines);
      }
    }
  }
}

void Describe(const YAML::Node& given_base, const YAML::Node& change, const std::string& path,
              std::vector<std::string>& lines) {
  // A key the base lacks reads as an invalid node, which throws on any question but this one.
  const YAML::Node base = given_base.IsDefined() ? given_base : YAML::Node();
  if (change.IsMap() && !base.IsScalar()) {
    for (const auto& entry : change) {
      std::string key = entry.first.Scalar();
      YAML::Node below = base.IsMap() ? base[key] : YAML::Node();
      Describe(below, entry.second, path.empty() ? key : path + "." + key, lines);
    }
    return;
  }
  if (IsNamedList(change) && (!base.IsDefined() || base.IsNull() || IsNamedList(base))) {
    DescribeNamedList(base, change, path, lines);
    return;
  }
  bool was_set = base.IsDefined() && !base.IsNull();
  if (was_set && Emit(base) == Emit(change)) return;  // unchanged
  lines.push_back(fmt::format("{}: {} (was {})", path, Emit(change), was_set ? Emit(base) : "unset"));
}

// The workload part of a document that decides which jobs arrive (failures do not).
std::string DemandOf(const YAML::Node& document) {
  YAML::Node workload = DeepCopy(document["workload"]);
  if (workload.IsMap()) workload.remove("failures");
  return Emit(workload);
}

StatusOr<std::string> ReadTextFile(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open {} '{}'", what, path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

StatusOr<YAML::Node> LoadYamlFile(const std::string& path, std::string_view what) {
  ALLOT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, what));
  return ParseYaml(text, path);
}

}  // namespace

StatusOr<YAML::Node> MergeChange(const YAML::Node& base, const YAML::Node& change, const std::string& where) {
  return Merge(base, change, where);
}

std::vector<std::string> DescribeChange(const YAML::Node& base, const YAML::Node& change) {
  std::vector<std::string> lines;
  if (change.IsDefined() && !change.IsNull()) Describe(base, change, "", lines);
  return lines;
}

namespace {

StatusOr<Plan> ParsePlanOrThrow(std::string_view yaml, const std::string& path) {
  ALLOT_ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(yaml, path));
  YamlReader reader(path);
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(root, "plan file", {"plan", "scenarios"}));
  const YAML::Node& head = root["plan"];
  if (!head) return reader.Error(root, "plan", "missing: the plan section names the config and the seeds");
  ALLOT_RETURN_IF_ERROR(reader.CheckMap(head, "plan", {"name", "description", "config", "workload", "jobs", "seeds", "horizon"}));
  Plan plan;
  plan.path = path;
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  auto resolve = [&folder](const std::string& file) {
    std::filesystem::path target(file);
    return (target.is_absolute() ? target : folder / target).lexically_normal().string();
  };
  if (head["name"]) {
    ALLOT_ASSIGN_OR_RETURN(plan.name, reader.String(head["name"], "plan.name"));
  }
  if (head["description"]) {
    ALLOT_ASSIGN_OR_RETURN(plan.description, reader.String(head["description"], "plan.description"));
  }
  if (!head["config"]) return reader.Error(head, "plan.config", "missing: the pool config the scenarios change");
  ALLOT_ASSIGN_OR_RETURN(std::string config, reader.String(head["config"], "plan.config"));
  plan.config_path = resolve(config);
  plan.workload_path = plan.config_path;
  if (head["workload"]) {
    ALLOT_ASSIGN_OR_RETURN(std::string workload, reader.String(head["workload"], "plan.workload"));
    plan.workload_path = resolve(workload);
  }
  if (head["jobs"]) {
    ALLOT_ASSIGN_OR_RETURN(int64_t jobs, reader.Integer(head["jobs"], "plan.jobs", 1, 100000000));
    plan.jobs = static_cast<size_t>(jobs);
  }
  if (const YAML::Node& seeds = head["seeds"]; seeds) {
    plan.seeds.clear();
    if (seeds.IsScalar()) {
      ALLOT_ASSIGN_OR_RETURN(int64_t count, reader.Integer(seeds, "plan.seeds", 1, kMaxSeeds));
      for (int64_t seed = 1; seed <= count; ++seed) plan.seeds.push_back(static_cast<uint64_t>(seed));
    } else if (seeds.IsSequence() && seeds.size() > 0 && seeds.size() <= kMaxSeeds) {
      for (const YAML::Node& seed : seeds) {
        ALLOT_ASSIGN_OR_RETURN(int64_t value, reader.Integer(seed, "plan.seeds", 0, INT64_MAX));
        if (std::find(plan.seeds.begin(), plan.seeds.end(), static_cast<uint64_t>(value)) != plan.seeds.end()) {
          return reader.Error(seed, "plan.seeds", "seed {} is listed twice", value);
        }
        plan.seeds.push_back(static_cast<uint64_t>(value));
      }
    } else {
      return reader.Error(seeds, "plan.seeds", "expected a count (1-{}) or a list of seeds", kMaxSeeds);
    }
  }
  if (head["horizon"]) {
    ALLOT_ASSIGN_OR_RETURN(plan.horizon, reader.DurationValue(head["horizon"], "plan.horizon"));
  }

  const YAML::Node& scenarios = root["scenarios"];
  if (!scenarios || !scenarios.IsSequence() || scenarios.size() == 0) {
    return reader.Error(scenarios ? scenarios : root, "scenarios", "expected a list of at least one scenario");
  }
  if (scenarios.size() > kMaxScenarios) {
    return reader.Error(scenarios, "scenarios", "at most {} scenarios, got {}", kMaxScenarios, scenarios.size());
  }
  std::set<std::string> names;
  for (const YAML::Node& node : scenarios) {
    ALLOT_RETURN_IF_ERROR(reader.CheckMap(node, "scenario", {"name", "description", "change", "policy"}));
    PlanScenario scenario;
    if (!node["name"]) return reader.Error(node, "scenario.name", "missing: every scenario needs a name");
    ALLOT_ASSIGN_OR_RETURN(scenario.name, reader.String(node["name"], "scenario.name"));
    if (scenario.name.empty()) return reader.Error(node["name"], "scenario.name", "must not be empty");
    if (!names.insert(scenario.name).second) {
      return reader.Error(node["name"], "scenario.name", "'{}' names two scenarios", scenario.name);
    }
    if (node["description"]) {
      ALLOT_ASSIGN_OR_RETURN(scenario.description, reader.String(node["description"], "scenario.description"));
    }
    if (node["policy"]) {
      ALLOT_ASSIGN_OR_RETURN(scenario.policy, reader.String(node["policy"], "scenario.policy"));
      PolicyConfig scratch;
      if (Status preset = ApplyPolicyPreset(scenario.policy, scratch); !preset.ok()) {
        return reader.Error(node["policy"], "scenario.policy", "{}", preset.message());
      }
    }
    if (node["change"]) {
      if (!node["change"].IsMap()) return reader.Error(node["change"], "scenario.change", "expected a mapping merged into the config");
      scenario.change = node["change"];
    }
    plan.scenarios.push_back(std::move(scenario));
  }
  return plan;
}

}  // namespace

// yaml-cpp throws on questions a malformed document makes invalid; whatever slips past the
// checks above is still the plan's fault, and says so rather than ending the process.
StatusOr<Plan> ParsePlan(std::string_view yaml, const std::string& path) {
  try {
    return ParsePlanOrThrow(yaml, path);
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}: {}", path, error.what());
  }
}

StatusOr<Plan> LoadPlanFile(const std::string& path) {
  ALLOT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, "plan file"));
  return ParsePlan(text, path);
}

namespace {

// One scenario, ready to simulate.
struct PreparedScenario {
  Config config;
  WorkloadModel workload;
  bool own_jobs = false;  // its workload asks for other jobs than the plan's
  std::vector<std::string> changes;
};

}  // namespace

namespace {

StatusOr<std::vector<ScenarioResult>> RunPlanOrThrow(const Plan& plan, const PlanOptions& options) {
  ALLOT_ASSIGN_OR_RETURN(YAML::Node config_document, LoadYamlFile(plan.config_path, "config"));
  // yaml-cpp nodes share their data and assignment writes through: each document is a node of
  // its own, never assigned over another.
  bool separate_workload = plan.workload_path != plan.config_path;
  StatusOr<YAML::Node> loaded_workload =
      separate_workload ? LoadYamlFile(plan.workload_path, "workload file") : StatusOr<YAML::Node>(YAML::Clone(config_document));
  if (!loaded_workload.ok()) return loaded_workload.status();
  const YAML::Node workload_document = *loaded_workload;
  ALLOT_ASSIGN_OR_RETURN(Config base_config, ParseConfigNode(config_document, plan.config_path));
  ALLOT_ASSIGN_OR_RETURN(WorkloadModel base_workload, ParseWorkloadNode(workload_document, plan.workload_path));
  if (plan.jobs > 0) base_workload.jobs = plan.jobs;

  {
    WorkloadModel trial = base_workload;
    trial.jobs = 1;
    StatusOr<std::vector<TraceJob>> generated = GenerateWorkload(trial, base_config, 1);
    if (!generated.ok()) return InvalidArgumentError("{}: {}", plan.workload_path, generated.status().message());
  }
  // Every scenario is built, and any error reported, before hours of simulation.
  std::vector<PreparedScenario> prepared;
  for (const PlanScenario& scenario : plan.scenarios) {
    std::string where = fmt::format("{}: scenario '{}'", plan.path, scenario.name);
    PreparedScenario ready;
    YAML::Node change = scenario.change.IsDefined() ? YAML::Clone(scenario.change) : YAML::Node(YAML::NodeType::Map);
    YAML::Node workload_change;
    if (separate_workload && change["workload"]) {
      workload_change = YAML::Node(YAML::NodeType::Map);
      workload_change["workload"] = change["workload"];
      change.remove("workload");
    }
    ALLOT_ASSIGN_OR_RETURN(YAML::Node document, MergeChange(config_document, change, where + ": change"));
    ready.changes = DescribeChange(config_document, change);
    StatusOr<YAML::Node> merged_workload =
        separate_workload ? MergeChange(workload_document, workload_change, where + ": change")
                          : StatusOr<YAML::Node>(YAML::Clone(document));
    if (!merged_workload.ok()) return merged_workload.status();
    const YAML::Node scenario_workload = *merged_workload;
    if (separate_workload) {
      std::vector<std::string> more = DescribeChange(workload_document, workload_change);
      ready.changes.insert(ready.changes.end(), more.begin(), more.end());
    }
    StatusOr<Config> config = ParseConfigNode(document, where);
    if (!config.ok()) return config.status();
    ready.config = std::move(*config);
    if (!scenario.policy.empty()) {
      ALLOT_RETURN_IF_ERROR(ApplyPolicyPreset(scenario.policy, ready.config.policy));
      ready.changes.push_back("policy preset: " + scenario.policy);
    }
    StatusOr<WorkloadModel> workload = ParseWorkloadNode(scenario_workload, where);
    if (!workload.ok()) return workload.status();
    ready.workload = std::move(*workload);
    if (plan.jobs > 0) ready.workload.jobs = plan.jobs;
    ready.own_jobs = DemandOf(scenario_workload) != DemandOf(workload_document);
    if (ready.own_jobs) {
      ready.changes.push_back("its own jobs (the workload changed)");
      // A workload that does not fit its pool (a class naming no account) fails here, not
      // after other scenarios have run.
      WorkloadModel trial = ready.workload;
      trial.jobs = 1;
      StatusOr<std::vector<TraceJob>> generated = GenerateWorkload(trial, ready.config, 1);
      if (!generated.ok()) return InvalidArgumentError("{}: {}", where, generated.status().message());
    }
    prepared.push_back(std::move(ready));
  }

  // The work: every scenario under every seed. The jobs of a seed are generated once, from the
  // plan's own config and workload, and shared by the scenarios that do not change demand.
  struct Task {
    size_t scenario;
    size_t seed_index;
  };
  std::vector<Task> tasks;
  for (size_t seed_index = 0; seed_index < plan.seeds.size(); ++seed_index) {
    for (size_t s = 0; s < prepared.size(); ++s) tasks.push_back({s, seed_index});
  }
  std::vector<ScenarioResult> results(prepared.size());
  for (size_t s = 0; s < prepared.size(); ++s) {
    results[s].name = plan.scenarios[s].name;
    results[s].description = plan.scenarios[s].description;
    results[s].changes = prepared[s].changes;
    results[s].seeds = plan.seeds;
    results[s].runs.resize(plan.seeds.size());
  }

  std::mutex mutex;  // guards shared_jobs, fractions, first_error and progress calls
  std::map<uint64_t, std::shared_ptr<const std::vector<TraceJob>>> shared_jobs;
  std::vector<std::vector<double>> fractions(prepared.size(), std::vector<double>(plan.seeds.size(), 0));
  Status first_error = OkStatus();
  std::atomic<size_t> next_task{0};
  std::atomic<bool> failed{false};

  auto report_progress = [&](size_t scenario, size_t seed_index, double fraction) {
    std::lock_guard<std::mutex> lock(mutex);
    fractions[scenario][seed_index] = fraction;
    if (!options.progress) return;
    double sum = 0;
    for (double f : fractions[scenario]) sum += f;
    options.progress(scenario, sum / static_cast<double>(plan.seeds.size()));
  };

  auto jobs_for = [&](size_t scenario, uint64_t seed) -> StatusOr<std::shared_ptr<const std::vector<TraceJob>>> {
    if (prepared[scenario].own_jobs) {
      ALLOT_ASSIGN_OR_RETURN(std::vector<TraceJob> jobs,
                             GenerateWorkload(prepared[scenario].workload, prepared[scenario].config, seed));
      return std::make_shared<const std::vector<TraceJob>>(std::move(jobs));
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = shared_jobs.find(seed);
      if (it != shared_jobs.end()) return it->second;
    }
    // Two threads may generate the same seed's jobs at once; the result is the same either way.
    ALLOT_ASSIGN_OR_RETURN(std::vector<TraceJob> jobs, GenerateWorkload(base_workload, base_config, seed));
    auto generated = std::make_shared<const std::vector<TraceJob>>(std::move(jobs));
    std::lock_guard<std::mutex> lock(mutex);
    return shared_jobs.emplace(seed, generated).first->second;
  };

  auto run_task = [&](const Task& task) -> Status {
    const PreparedScenario& scenario = prepared[task.scenario];
    uint64_t seed = plan.seeds[task.seed_index];
    ALLOT_ASSIGN_OR_RETURN(std::shared_ptr<const std::vector<TraceJob>> jobs, jobs_for(task.scenario, seed));
    SimOptions sim_options;
    sim_options.policy_name = plan.scenarios[task.scenario].name;
    sim_options.horizon = plan.horizon;
    sim_options.source = plan.workload_path;
    sim_options.node_events = GenerateFailures(scenario.workload, scenario.config.cluster, seed);
    sim_options.progress = [&, task](double fraction) { report_progress(task.scenario, task.seed_index, fraction); };
    ALLOT_ASSIGN_OR_RETURN(SimRun run, Simulate(scenario.config, *jobs, sim_options));
    // A planner compares summaries; a million job records per run would be gigabytes.
    if (task.seed_index > 0) {
      run.jobs.clear();
      run.jobs.shrink_to_fit();
    }
    std::lock_guard<std::mutex> lock(mutex);
    results[task.scenario].runs[task.seed_index] = std::move(run);
    return OkStatus();
  };

  auto worker = [&] {
    while (!failed.load()) {
      size_t index = next_task.fetch_add(1);
      if (index >= tasks.size()) return;
      Status status = OkStatus();
      try {
        status = run_task(tasks[index]);
      } catch (const std::exception& error) {  // bad_alloc: a run too big for this machine
        status = Status(StatusCode::kResourceExhausted,
                        fmt::format("scenario '{}': {}", plan.scenarios[tasks[index].scenario].name, error.what()));
      }
      if (!status.ok()) {
        std::lock_guard<std::mutex> lock(mutex);
        if (first_error.ok()) first_error = status;
        failed = true;
      }
    }
  };
  size_t threads = std::clamp<size_t>(options.threads, 1, tasks.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& thread : pool) thread.join();
  ALLOT_RETURN_IF_ERROR(first_error);
  return results;
}

}  // namespace

StatusOr<std::vector<ScenarioResult>> RunPlan(const Plan& plan, const PlanOptions& options) {
  try {
    return RunPlanOrThrow(plan, options);
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}: {}", plan.path, error.what());
  }
}

}  // namespace allot
