#include "server/steps.h"

#include <algorithm>
#include <bit>

#include "core/input_limits.h"

namespace allot {

using nlohmann::json;

StatusOr<StepRequest> ParseStepRequest(std::string_view body) {
  ALLOT_RETURN_IF_ERROR(CheckUtf8(body, "the step"));
  ALLOT_RETURN_IF_ERROR(CheckNesting(body, kMaxNestingDepth, "the step"));
  json root = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return InvalidArgumentError("a step is a JSON object: {{\"argv\": [\"python\", \"train.py\"], \"ntasks\": 8, ...}}");
  }
  static const std::vector<std::string_view> kFields = {"argv", "ntasks", "ntasks_per_node", "nodes",
                                                        "gpus_per_task", "environment", "working_directory"};
  for (const auto& [key, value] : root.items()) {
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) {
      return InvalidArgumentError("step: unknown field '{}'; a step has {}", key, fmt::join(kFields, ", "));
    }
  }
  StepRequest request;
  const json& argv = root.contains("argv") ? root["argv"] : json();
  if (!argv.is_array() || argv.empty()) {
    return InvalidArgumentError("step.argv: give the command to run as a non-empty list of strings");
  }
  size_t argv_bytes = 0;
  for (const json& word : argv) {
    if (!word.is_string()) return InvalidArgumentError("step.argv: every element must be a string");
    request.argv.push_back(word.get<std::string>());
    argv_bytes += request.argv.back().size() + 1;
  }
  if (argv_bytes > kMaxStepArgvBytes) {
    return InvalidArgumentError("step.argv: {} KiB; a step's command line is at most {} KiB (put long argument lists "
                                "in a file)", argv_bytes >> 10, kMaxStepArgvBytes >> 10);
  }
  auto count = [&](const char* field, int& target) -> Status {
    if (!root.contains(field)) return OkStatus();
    const json& value = root[field];
    if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > kMaxStepTasks) {
      return InvalidArgumentError("step.{}: must be an integer from 1 to {}, got {}", field, kMaxStepTasks,
                                  value.dump());
    }
    target = value.get<int>();
    return OkStatus();
  };
  ALLOT_RETURN_IF_ERROR(count("ntasks", request.ntasks));
  ALLOT_RETURN_IF_ERROR(count("ntasks_per_node", request.ntasks_per_node));
  ALLOT_RETURN_IF_ERROR(count("nodes", request.nodes));
  ALLOT_RETURN_IF_ERROR(count("gpus_per_task", request.gpus_per_task));
  if (root.contains("environment")) {
    const json& environment = root["environment"];
    if (!environment.is_object()) return InvalidArgumentError("step.environment: must be an object of strings");
    for (const auto& [name, value] : environment.items()) {
      if (!value.is_string()) return InvalidArgumentError("step.environment.{}: must be a string", name);
      if (name.empty() || name.find('=') != std::string::npos) {
        return InvalidArgumentError("step.environment: '{}' is not a variable name", name);
      }
      request.environment[name] = value.get<std::string>();
    }
    size_t bytes = 0;
    for (const auto& [name, value] : request.environment) bytes += name.size() + value.size() + 2;
    if (bytes > kMaxStepEnvironmentBytes) {
      return InvalidArgumentError("step.environment: {} KiB; at most {} KiB is passed to a step's tasks (srun "
                                  "--export=NONE, or fewer variables)", bytes >> 10, kMaxStepEnvironmentBytes >> 10);
    }
  }
  if (root.contains("working_directory")) {
    if (!root["working_directory"].is_string()) return InvalidArgumentError("step.working_directory: must be a string");
    request.working_directory = root["working_directory"].get<std::string>();
  }
  return request;
}

json StepRequestToJson(const StepRequest& request) {
  json doc = {{"argv", request.argv}};
  if (request.ntasks > 0) doc["ntasks"] = request.ntasks;
  if (request.ntasks_per_node > 0) doc["ntasks_per_node"] = request.ntasks_per_node;
  if (request.nodes > 0) doc["nodes"] = request.nodes;
  if (request.gpus_per_task > 0) doc["gpus_per_task"] = request.gpus_per_task;
  if (!request.environment.empty()) doc["environment"] = request.environment;
  if (!request.working_directory.empty()) doc["working_directory"] = request.working_directory;
  return doc;
}

std::vector<JobNode> JobNodes(const Job& job) {
  std::vector<JobNode> nodes;
  for (size_t task = 0; task < job.tasks.size(); ++task) {
    const TaskAllocation& allocation = job.tasks[task];
    auto found = std::find_if(nodes.begin(), nodes.end(), [&](const JobNode& n) { return n.node == allocation.node; });
    if (found == nodes.end()) {
      nodes.push_back({allocation.node, static_cast<int>(task), 0, 0, 0});
      found = nodes.end() - 1;
    }
    found->gpu_mask |= allocation.gpu_mask;
    found->cpus += allocation.cpus;
    found->memory_bytes += allocation.memory_bytes;
  }
  return nodes;
}

StatusOr<std::vector<StepTask>> LayOutStep(const std::vector<JobNode>& nodes, int tasks_per_node,
                                           const StepRequest& request) {
  const int available = static_cast<int>(nodes.size());
  if (request.nodes > available) {
    return InvalidArgumentError("the step asks for {} nodes, but the job has {}", request.nodes, available);
  }
  int node_count = request.nodes;
  if (node_count == 0) node_count = request.ntasks > 0 ? std::min(available, request.ntasks) : available;
  std::vector<int> per_node(static_cast<size_t>(node_count), 0);
  if (request.ntasks_per_node > 0) {
    int total = request.ntasks > 0 ? request.ntasks : node_count * request.ntasks_per_node;
    if (total > node_count * request.ntasks_per_node) {
      return InvalidArgumentError("the step asks for {} tasks, more than {} nodes x {} tasks per node", total,
                                  node_count, request.ntasks_per_node);
    }
    // Blocks of ntasks_per_node, node after node, until the tasks run out.
    for (int& tasks : per_node) {
      tasks = std::min(request.ntasks_per_node, total);
      total -= tasks;
    }
  } else if (request.ntasks > 0) {
    if (request.ntasks < node_count) {
      return InvalidArgumentError("the step asks for {} tasks on {} nodes; every node needs a task", request.ntasks,
                                  node_count);
    }
    for (int i = 0; i < node_count; ++i) {
      per_node[static_cast<size_t>(i)] = request.ntasks / node_count + (i < request.ntasks % node_count ? 1 : 0);
    }
  } else {
    std::fill(per_node.begin(), per_node.end(), std::max(1, tasks_per_node));
  }
  std::vector<StepTask> tasks;
  for (int node = 0; node < node_count; ++node) {
    if (per_node[static_cast<size_t>(node)] == 0) continue;
    const uint32_t job_gpus = nodes[static_cast<size_t>(node)].gpu_mask;
    const int on_node = per_node[static_cast<size_t>(node)];
    if (on_node > kMaxStepTasksPerNode) {
      return InvalidArgumentError("the step asks for {} tasks on a node; at most {} are allowed", on_node,
                                  kMaxStepTasksPerNode);
    }
    if (request.gpus_per_task > 0 && on_node * request.gpus_per_task > std::popcount(job_gpus)) {
      return InvalidArgumentError("the step asks for {} tasks x {} GPUs on a node, but the job has {} GPUs there",
                                  on_node, request.gpus_per_task, std::popcount(job_gpus));
    }
    uint32_t left = job_gpus;
    for (int local = 0; local < on_node; ++local) {
      uint32_t mask = job_gpus;
      if (request.gpus_per_task > 0) {
        mask = 0;
        for (int g = 0; g < request.gpus_per_task; ++g) {
          uint32_t lowest = left & (~left + 1);
          mask |= lowest;
          left &= ~lowest;
        }
      }
      tasks.push_back({.index = 0, .node = node, .local_id = local, .gpu_mask = mask});
    }
  }
  if (static_cast<int>(tasks.size()) > kMaxStepTasks) {
    return InvalidArgumentError("the step has {} tasks; at most {} are allowed", tasks.size(), kMaxStepTasks);
  }
  return tasks;
}

bool Step::ended() const {
  return std::all_of(tasks.begin(), tasks.end(), [](const StepTask& task) { return task.exit_code.has_value(); });
}

int Step::exit_code() const {
  int highest = 0;
  for (const StepTask& task : tasks) highest = std::max(highest, task.exit_code.value_or(0));
  return highest;
}

json StepToJson(const Step& step) {
  json tasks = json::array();
  for (const StepTask& task : step.tasks) {
    json doc = {{"node", task.node}, {"local_id", task.local_id}, {"gpu_mask", task.gpu_mask}};
    if (task.exit_code) doc["exit_code"] = *task.exit_code;
    tasks.push_back(std::move(doc));
  }
  json request = StepRequestToJson(step.request);
  if (step.ended() || step.cancelled) request.erase("environment");
  return {{"id", step.id}, {"first_index", step.first_index}, {"request", std::move(request)},
          {"tasks", tasks}, {"nodes", step.nodes}, {"cancelled", step.cancelled}};
}

StatusOr<Step> StepFromJson(const json& doc) {
  try {
    Step step;
    step.id = doc.at("id").get<int>();
    step.first_index = doc.at("first_index").get<int>();
    ALLOT_ASSIGN_OR_RETURN(step.request, ParseStepRequest(doc.at("request").dump()));
    step.nodes = doc.at("nodes").get<int>();
    step.cancelled = doc.value("cancelled", false);
    int index = step.first_index;
    for (const json& task : doc.at("tasks")) {
      StepTask parsed{.index = index++, .node = task.at("node").get<int>(), .local_id = task.at("local_id").get<int>(),
                      .gpu_mask = task.at("gpu_mask").get<uint32_t>()};
      if (task.contains("exit_code")) parsed.exit_code = task["exit_code"].get<int>();
      step.tasks.push_back(parsed);
    }
    return step;
  } catch (const json::exception& error) {
    return InvalidArgumentError("a stored step is damaged: {}", error.what());
  }
}

}  // namespace allot
