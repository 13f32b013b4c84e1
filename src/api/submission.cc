#include "api/submission.h"

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

#include "core/config.h"
#include "core/input_limits.h"
#include "core/yaml_reader.h"

namespace allot {
namespace {

// Fields a submission adds to a job spec.
const std::vector<std::string_view> kSubmissionFields = {
    "script", "processes_per_task", "array", "dependency", "output", "error", "chdir", "exclusive",
    "hold", "batch", "submit_dir", "script_args"};

}  // namespace

nlohmann::json JobSpecToJson(const JobSpec& spec) {
  const JobSpec defaults;
  nlohmann::json json = nlohmann::json::object();
  if (!spec.name.empty()) json["name"] = spec.name;
  if (!spec.account.empty()) json["account"] = spec.account;
  if (!spec.user.empty()) json["user"] = spec.user;
  json["tasks"] = spec.tasks;
  json["gpus_per_task"] = spec.gpus_per_task;
  if (spec.one_task_per_node) json["one_task_per_node"] = true;
  if (spec.cpus_per_task != 0) json["cpus_per_task"] = spec.cpus_per_task;
  if (spec.memory_per_task != 0) json["memory_per_task"] = spec.memory_per_task;
  if (!spec.gpu_model.empty()) json["gpu_model"] = spec.gpu_model;
  if (!spec.pools.empty()) json["pools"] = spec.pools;
  if (spec.topology.mode != TopologyMode::kNone) {
    json["topology"] = {{"level", LevelName(spec.topology.level)},
                        {"mode", TopologyModeName(spec.topology.mode)}};
  }
  if (spec.time_limit > 0) json["time_limit"] = spec.time_limit;
  if (!spec.priority_class.empty()) json["priority"] = spec.priority_class;
  if (spec.preemptible != defaults.preemptible) json["preemptible"] = spec.preemptible;
  if (spec.requeue != defaults.requeue) json["requeue"] = spec.requeue;
  if (spec.kind != defaults.kind) json["kind"] = JobKindName(spec.kind);
  if (!spec.command.empty()) json["command"] = spec.command;
  return json;
}

nlohmann::json SubmissionToJson(const SubmitRequest& request) {
  nlohmann::json json = JobSpecToJson(request.spec);
  if (!request.script.empty()) json["script"] = request.script;
  if (!request.script_args.empty()) json["script_args"] = request.script_args;
  if (request.processes_per_task != 1) json["processes_per_task"] = request.processes_per_task;
  if (request.array) json["array"] = FormatArraySpec(*request.array);
  if (!request.dependencies.empty()) json["dependency"] = FormatDependencies(request.dependencies);
  if (!request.output.empty()) json["output"] = request.output;
  if (!request.error.empty()) json["error"] = request.error;
  if (!request.chdir.empty()) json["chdir"] = request.chdir;
  if (request.exclusive) json["exclusive"] = true;
  if (request.hold) json["hold"] = true;
  if (request.batch) json["batch"] = true;
  if (!request.submit_dir.empty()) json["submit_dir"] = request.submit_dir;
  return json;
}

// JSON escapes a character beyond the Basic Multilingual Plane as a surrogate pair
// ("\ud83d\ude80"), which yaml-cpp refuses. Such a document is read by the JSON parser and
// written out again with the characters themselves, which both parsers agree on.
static std::optional<std::string> WithoutSurrogateEscapes(std::string_view text) {
  bool has_pair = false;
  for (size_t at = text.find("\\u"); at != std::string_view::npos && !has_pair; at = text.find("\\u", at + 1)) {
    has_pair = at + 3 < text.size() && (text[at + 2] == 'd' || text[at + 2] == 'D') &&
               std::string_view("89abAB").find(text[at + 3]) != std::string_view::npos;
  }
  if (!has_pair) return std::nullopt;
  nlohmann::json parsed = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed.dump(2);
}

StatusOr<SubmitRequest> ParseSubmission(std::string_view text, std::string_view source) {
  // Checked before any parser sees it (ParseYaml checks again; the JSON reader needs it first).
  ALLOT_RETURN_IF_ERROR(CheckUtf8(text, source));
  ALLOT_RETURN_IF_ERROR(CheckNesting(text, kMaxNestingDepth, source));
  std::optional<std::string> rewritten = WithoutSurrogateEscapes(text);
  if (rewritten) text = *rewritten;
  ALLOT_ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(text, source, kMaxSubmissionValues));
  if (!root.IsMap()) {
    return InvalidArgumentError("{}: expected an object with the job's fields (name, account, "
                                "tasks, gpus_per_task, command, ...)", source);
  }
  YamlReader reader(source);
  try {
    SubmitRequest request;
    ALLOT_ASSIGN_OR_RETURN(request.spec, ParseJobSpec(root, source, "job", kSubmissionFields));
    auto text_field = [&](const char* key, std::string& target) -> Status {
      if (!root[key]) return OkStatus();
      ALLOT_ASSIGN_OR_RETURN(target, reader.String(root[key], Field("job", key)));
      return OkStatus();
    };
    ALLOT_RETURN_IF_ERROR(text_field("script", request.script));
    ALLOT_RETURN_IF_ERROR(text_field("output", request.output));
    ALLOT_RETURN_IF_ERROR(text_field("error", request.error));
    ALLOT_RETURN_IF_ERROR(text_field("chdir", request.chdir));
    ALLOT_RETURN_IF_ERROR(text_field("submit_dir", request.submit_dir));
    if (root["batch"]) {
      ALLOT_ASSIGN_OR_RETURN(request.batch, reader.Bool(root["batch"], "job.batch"));
    }
    if (root["script_args"]) {
      const YAML::Node& args = root["script_args"];
      if (!args.IsSequence()) return reader.Error(args, "job.script_args", "must be a list of strings");
      for (size_t i = 0; i < args.size(); ++i) {
        ALLOT_ASSIGN_OR_RETURN(std::string arg, reader.String(args[i], Item("job.script_args", i)));
        request.script_args.push_back(std::move(arg));
      }
      if (request.script.empty() && !request.script_args.empty()) {
        return reader.Error(args, "job.script_args", "arguments are for a script: give script");
      }
    }
    if (request.batch && request.script.empty()) {
      return reader.Error(root["batch"], "job.batch", "a batch job runs a script: give script");
    }
    if (!request.script.empty() && !request.spec.command.empty()) {
      return reader.Error(root["script"], "job.script",
                          "give a script or a command, not both");
    }
    if (!request.script.empty() && !request.script.starts_with("#!")) {
      return reader.Error(root["script"], "job.script",
                          "a script must start with a shebang line such as #!/bin/bash");
    }
    if (root["processes_per_task"]) {
      ALLOT_ASSIGN_OR_RETURN(int64_t processes,
                             reader.Integer(root["processes_per_task"], "job.processes_per_task", 1, 4096));
      request.processes_per_task = static_cast<int>(processes);
    }
    if (root["exclusive"]) {
      ALLOT_ASSIGN_OR_RETURN(request.exclusive, reader.Bool(root["exclusive"], "job.exclusive"));
      // Nodes to itself: each task takes a whole node (the scheduler checks that it asks for all
      // of a node's GPUs, so no other job can share one).
      request.spec.exclusive = request.exclusive;
      if (request.exclusive) request.spec.one_task_per_node = true;
    }
    if (root["hold"]) {
      ALLOT_ASSIGN_OR_RETURN(request.hold, reader.Bool(root["hold"], "job.hold"));
    }
    if (root["array"]) {
      ALLOT_ASSIGN_OR_RETURN(std::string array_text, reader.String(root["array"], "job.array"));
      StatusOr<ArraySpec> array = ParseArraySpec(array_text);
      if (!array.ok()) return reader.Error(root["array"], "job.array", "{}", array.status().message());
      request.array = std::move(*array);
    }
    if (root["dependency"]) {
      ALLOT_ASSIGN_OR_RETURN(std::string dependency_text,
                             reader.String(root["dependency"], "job.dependency"));
      StatusOr<std::vector<Dependency>> dependencies = ParseDependencies(dependency_text);
      if (!dependencies.ok()) {
        return reader.Error(root["dependency"], "job.dependency", "{}",
                            dependencies.status().message());
      }
      request.dependencies = std::move(*dependencies);
    }
    return request;
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}:{}:{}: {}", source, error.mark.line + 1, error.mark.column + 1,
                                error.msg);
  }
}

std::string FormatArraySpec(const ArraySpec& array) {
  std::string text;
  const std::vector<int>& indexes = array.indexes;
  for (size_t i = 0; i < indexes.size();) {
    size_t run_end = i;
    while (run_end + 1 < indexes.size() && indexes[run_end + 1] == indexes[run_end] + 1) ++run_end;
    if (!text.empty()) text += ',';
    text += run_end == i ? fmt::format("{}", indexes[i])
                         : fmt::format("{}-{}", indexes[i], indexes[run_end]);
    i = run_end + 1;
  }
  if (array.max_concurrent > 0) text += fmt::format("%{}", array.max_concurrent);
  return text;
}

std::string FormatDependencies(const std::vector<Dependency>& dependencies) {
  std::string text;
  for (size_t i = 0; i < dependencies.size(); ++i) {
    const Dependency& dependency = dependencies[i];
    if (i > 0 && dependencies[i - 1].type == dependency.type && dependency.type != DependencyType::kSingleton) {
      text += fmt::format(":{}", dependency.job);
      continue;
    }
    if (!text.empty()) text += ',';
    text += DependencyTypeName(dependency.type);
    if (dependency.type != DependencyType::kSingleton) text += fmt::format(":{}", dependency.job);
  }
  return text;
}

}  // namespace allot
