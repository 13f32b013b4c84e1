#include "api/agent_protocol.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <type_traits>

#include "core/hostlist.h"
#include "core/input_limits.h"

namespace allot {
namespace {

using nlohmann::json;

// The shape of an agent's report, checked whole before any of it is read, so a malformed report
// changes nothing (and never throws half-way through a sync).
Status CheckShape(const json& report) {
  auto bad = [](std::string_view what) { return InvalidArgumentError("agent report: {}", what); };
  for (const char* key : {"hostname", "address", "gpu_model"}) {
    if (report.contains(key) && !report[key].is_string()) return bad(fmt::format("{} must be a string", key));
  }
  if (report.contains("gpus") && !report["gpus"].is_number_unsigned()) return bad("gpus must be a count");
  if (report.contains("protocol") &&
      (!report["protocol"].is_number_unsigned() || report["protocol"].get<uint64_t>() < 1 ||
       report["protocol"].get<uint64_t>() > static_cast<uint64_t>(kAgentProtocol))) {
    return bad(fmt::format("protocol must be a version from 1 to {} (this server's newest; upgrade the server "
                           "before its agents)", kAgentProtocol));
  }
  if (report.contains("wait_seconds") && !report["wait_seconds"].is_number()) return bad("wait_seconds must be a number");
  for (const char* key : {"cpus", "memory"}) {
    if (report.contains(key) && !report[key].is_number()) return bad(fmt::format("{} must be a number", key));
  }
  static const json kNone = json::array();
  const json& tasks = report.contains("tasks") ? report["tasks"] : kNone;  // by reference: chunks can be large
  const json& logs = report.contains("logs") ? report["logs"] : kNone;
  if (!tasks.is_array() || !logs.is_array()) return bad("tasks and logs must be arrays");
  auto unsigned_field = [](const json& item, const char* key) {
    return item.contains(key) && item[key].is_number_unsigned();
  };
  for (const json& task : tasks) {
    if (!task.is_object() || !unsigned_field(task, "job") || !unsigned_field(task, "epoch") || !unsigned_field(task, "task") ||
        task["task"].get<uint64_t>() > kMaxTaskIndex || !task.contains("state") ||
        (task["state"] != "running" && task["state"] != "exited")) {
      return bad("each task needs job, epoch, task (non-negative integers) and state (running or exited)");
    }
    if (task.contains("exit_code") && (!task["exit_code"].is_number_unsigned() || task["exit_code"].get<uint64_t>() > 255)) {
      return bad("exit_code must be an integer from 0 to 255");
    }
    for (const char* flag : {"timed_out", "out_of_memory"}) {
      if (task.contains(flag) && !task[flag].is_boolean()) return bad(fmt::format("{} must be true or false", flag));
    }
  }
  for (const json& chunk : logs) {
    if (!chunk.is_object() || !unsigned_field(chunk, "job") || !unsigned_field(chunk, "task") ||
        chunk["task"].get<uint64_t>() > kMaxTaskIndex || !unsigned_field(chunk, "offset") ||
        chunk["offset"].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) || !chunk.contains("stream") ||
        (chunk["stream"] != "out" && chunk["stream"] != "err") || !chunk.contains("data") || !chunk["data"].is_string()) {
      return bad("each log chunk needs job, task, offset (non-negative integers), stream (out or err) and data");
    }
  }
  return OkStatus();
}

// Ids and indexes as they are written (the server's ids fit JSON's unsigned integers).
json TaskId(JobId job, uint64_t epoch, int task) { return {{"job", job}, {"epoch", epoch}, {"task", task}}; }

// Every name of a hostlist, comma-separated (ALLOT_NODELIST); the list as given if it is not one.
std::string NodeNames(const std::string& hostlist) {
  StatusOr<std::vector<std::string>> names = ExpandHostList(hostlist);
  return names.ok() ? fmt::format("{}", fmt::join(*names, ",")) : hostlist;
}

json AssignmentJson(const TaskAssignment& assignment, int protocol) {
  json environment = json::object();  // the shared variables, then the task's own over them
  if (assignment.shared_environment) {
    for (const auto& [name, value] : *assignment.shared_environment) environment[name] = value;
  }
  // An agent of protocol 1 gets the node list written out; a newer one writes it out itself.
  if (protocol < 2 && !assignment.nodelist.empty()) environment["ALLOT_NODELIST"] = NodeNames(assignment.nodelist);
  for (const auto& [name, value] : assignment.environment) environment[name] = value;
  json doc = TaskId(assignment.job, assignment.epoch, assignment.task);
  if (assignment.step) doc["step"] = *assignment.step;
  doc["name"] = assignment.name;
  doc["user"] = assignment.user;
  doc["account"] = assignment.account;
  doc["argv"] = assignment.argv;
  doc["script"] = assignment.script;
  if (!assignment.script_args.empty() || !assignment.step) doc["script_args"] = assignment.script_args;
  doc["environment"] = std::move(environment);
  if (protocol >= 2 && !assignment.nodelist.empty()) doc["nodelist"] = assignment.nodelist;
  doc["working_directory"] = assignment.working_directory;
  doc["stdout"] = assignment.stdout_path;
  doc["stderr"] = assignment.stderr_path;
  doc["start_time"] = assignment.start_time;
  doc["time_limit"] = assignment.time_limit;
  doc["cpus"] = assignment.cpus;
  doc["memory_bytes"] = assignment.memory_bytes;
  doc["grace_seconds"] = assignment.grace_seconds;
  if (assignment.stdout_optional) doc["stdout_optional"] = true;
  if (assignment.fallback_to_own_directory) doc["fallback_to_own_directory"] = true;
  return doc;
}

// Reads a reply's field with a default; a field of the wrong type throws json::type_error,
// which ParseSyncReply turns into an error that names the field.
template <typename T>
T Field(const json& object, const char* key, T fallback, std::string& where) {
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return fallback;
  where = key;
  return found->get<T>();
}

// The same for a field of strings, moved out of the parsed document rather than copied (an
// assignment's environment is most of a reply).
template <typename Container>
Container MovedStrings(json& object, const char* key, std::string& where) {
  Container out;
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return out;
  where = key;
  if constexpr (std::is_same_v<Container, EnvironmentVariables>) {
    if (!found->is_object()) throw std::invalid_argument(fmt::format("{} must be an object of strings", key));
    for (auto entry = found->begin(); entry != found->end(); ++entry) {
      json& value = entry.value();
      out.emplace(entry.key(), std::move(value.get_ref<std::string&>()));
    }
  } else {
    if (!found->is_array()) throw std::invalid_argument(fmt::format("{} must be an array of strings", key));
    out.reserve(found->size());
    for (json& value : *found) out.push_back(std::move(value.get_ref<std::string&>()));
  }
  return out;
}

// A reply's array field; null when absent.
json* ArrayField(json& object, const char* key) {
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return nullptr;
  if (!found->is_array()) throw std::invalid_argument(fmt::format("{} must be an array", key));
  return &*found;
}

}  // namespace

StatusOr<AgentReport> ParseAgentReport(std::string_view body) {
  ALLOT_RETURN_IF_ERROR(CheckUtf8(body, "the agent report"));
  ALLOT_RETURN_IF_ERROR(CheckNesting(body, kMaxNestingDepth, "the agent report"));
  json doc = body.find_first_not_of(" \t\r\n") == std::string_view::npos
                 ? json::object()
                 : json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError("the agent report is not valid JSON");
  if (!doc.is_object()) return InvalidArgumentError("the agent report must be a JSON object");
  static constexpr std::array<std::string_view, 10> kFields = {"hostname", "address", "gpus",  "gpu_model",    "cpus",
                                                               "memory",   "tasks",   "logs", "wait_seconds", "protocol"};
  for (const auto& [key, value] : doc.items()) {
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) {
      return InvalidArgumentError("the agent report has an unknown field '{}'", key);
    }
  }
  ALLOT_RETURN_IF_ERROR(CheckShape(doc));
  // Every field has been checked: the reads below cannot throw.
  AgentReport report;
  if (doc.contains("hostname")) report.hostname = doc["hostname"].get<std::string>();
  if (doc.contains("address")) report.address = doc["address"].get<std::string>();
  if (doc.contains("gpu_model")) report.gpu_model = doc["gpu_model"].get<std::string>();
  if (doc.contains("gpus")) report.gpus = doc["gpus"].get<uint64_t>();
  if (doc.contains("cpus")) report.cpus = doc["cpus"].get<double>();
  if (doc.contains("memory")) report.memory = doc["memory"].get<double>();
  report.wait_seconds = doc.value("wait_seconds", 0.0);
  if (doc.contains("protocol")) report.protocol = static_cast<int>(doc["protocol"].get<uint64_t>());
  if (doc.contains("tasks")) {
    report.tasks.reserve(doc["tasks"].size());
    for (const json& task : doc["tasks"]) {
      ReportedTask& reported = report.tasks.emplace_back();
      reported.job = task["job"].get<JobId>();
      reported.epoch = task["epoch"].get<uint64_t>();
      reported.task = static_cast<int>(task["task"].get<uint64_t>());
      reported.exited = task["state"] == "exited";
      if (task.contains("exit_code")) reported.exit_code = static_cast<int>(task["exit_code"].get<uint64_t>());
      reported.timed_out = task.value("timed_out", false);
      reported.out_of_memory = task.value("out_of_memory", false);
    }
  }
  if (doc.contains("logs")) {
    report.logs.reserve(doc["logs"].size());
    for (json& chunk : doc["logs"]) {
      OutputChunk& output = report.logs.emplace_back();
      output.job = chunk["job"].get<JobId>();
      output.task = static_cast<int>(chunk["task"].get<uint64_t>());
      output.stream = chunk["stream"].get<std::string>();
      output.offset = static_cast<int64_t>(chunk["offset"].get<uint64_t>());
      output.data = std::move(chunk["data"].get_ref<std::string&>());  // moved: chunks can be large
    }
  }
  return report;
}

std::string RenderAgentReport(const AgentReport& report) {
  json doc = json::object();
  if (report.hostname) doc["hostname"] = *report.hostname;
  if (report.address) doc["address"] = *report.address;
  if (report.gpus) doc["gpus"] = *report.gpus;
  if (report.gpu_model) doc["gpu_model"] = *report.gpu_model;
  if (report.cpus) doc["cpus"] = *report.cpus;
  if (report.memory) doc["memory"] = *report.memory;
  json tasks = json::array();
  for (const ReportedTask& task : report.tasks) {
    json entry = TaskId(task.job, task.epoch, task.task);
    entry["state"] = task.exited ? "exited" : "running";
    if (task.exited && task.exit_code) entry["exit_code"] = *task.exit_code;
    if (task.timed_out) entry["timed_out"] = true;
    if (task.out_of_memory) entry["out_of_memory"] = true;
    tasks.push_back(std::move(entry));
  }
  json logs = json::array();
  for (const OutputChunk& chunk : report.logs) {
    logs.push_back({{"job", chunk.job}, {"task", chunk.task}, {"stream", chunk.stream}, {"offset", chunk.offset},
                    {"data", chunk.data}});
  }
  doc["tasks"] = std::move(tasks);
  doc["logs"] = std::move(logs);
  doc["wait_seconds"] = report.wait_seconds;
  if (report.protocol > 1) doc["protocol"] = report.protocol;
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

EnvironmentVariables TaskAssignment::MergedEnvironment() const {
  EnvironmentVariables merged = shared_environment ? *shared_environment : EnvironmentVariables();
  if (!nodelist.empty()) merged.insert_or_assign("ALLOT_NODELIST", NodeNames(nodelist));
  for (const auto& [name, value] : environment) merged.insert_or_assign(name, value);
  return merged;
}

std::string RenderSyncReply(const SyncReply& reply) {
  json assignments = json::array();
  for (const TaskAssignment& assignment : reply.assignments) {
    assignments.push_back(AssignmentJson(assignment, reply.protocol));
  }
  json kills = json::array();
  for (const TaskKill& kill : reply.kills) {
    json entry = TaskId(kill.job, kill.epoch, kill.task);
    entry["grace_seconds"] = kill.grace_seconds;
    kills.push_back(std::move(entry));
  }
  json acks = json::array();
  for (const TaskAck& ack : reply.acks) acks.push_back(TaskId(ack.job, ack.epoch, ack.task));
  json doc = {{"node", reply.node}, {"heartbeat_seconds", reply.heartbeat_seconds},
              {"assignments", std::move(assignments)}, {"kills", std::move(kills)}, {"acks", std::move(acks)}};
  if (reply.next_sync_seconds > 0) doc["next_sync_seconds"] = reply.next_sync_seconds;
  // Replacing, not throwing: names and paths come from users, and a reply that cannot be
  // written must not fail the sync that carries it.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

StatusOr<SyncReply> ParseSyncReply(std::string_view body) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return InvalidArgumentError("the server's sync reply is not a JSON object");
  SyncReply reply;
  std::string where = "the reply";
  try {
    reply.node = Field<std::string>(doc, "node", "", where);
    reply.heartbeat_seconds = Field(doc, "heartbeat_seconds", 0.0, where);
    reply.next_sync_seconds = Field(doc, "next_sync_seconds", 0.0, where);
    auto task_of = [&](const json& item, JobId& job, uint64_t& epoch, int& task) {
      if (!item.is_object()) throw std::invalid_argument("a task entry must be an object");
      job = Field(item, "job", JobId{0}, where);
      epoch = Field(item, "epoch", uint64_t{0}, where);
      task = Field(item, "task", 0, where);
    };
    json none = json::array();  // for an absent list (both sides of ?: must be lvalues, or it copies)
    json* acks = ArrayField(doc, "acks");
    for (const json& item : acks ? *acks : none) {
      TaskAck& ack = reply.acks.emplace_back();
      task_of(item, ack.job, ack.epoch, ack.task);
    }
    json* kills = ArrayField(doc, "kills");
    for (const json& item : kills ? *kills : none) {
      TaskKill& kill = reply.kills.emplace_back();
      task_of(item, kill.job, kill.epoch, kill.task);
      kill.grace_seconds = Field(item, "grace_seconds", 30.0, where);
    }
    json* assignments = ArrayField(doc, "assignments");
    for (json& item : assignments ? *assignments : none) {
      TaskAssignment& assignment = reply.assignments.emplace_back();
      task_of(item, assignment.job, assignment.epoch, assignment.task);
      if (item.contains("step") && !item["step"].is_null()) assignment.step = Field(item, "step", 0, where);
      assignment.name = Field<std::string>(item, "name", "", where);
      assignment.user = Field<std::string>(item, "user", "", where);
      assignment.account = Field<std::string>(item, "account", "", where);
      assignment.argv = MovedStrings<std::vector<std::string>>(item, "argv", where);
      assignment.script = Field<std::string>(item, "script", "", where);
      assignment.script_args = MovedStrings<std::vector<std::string>>(item, "script_args", where);
      assignment.environment = MovedStrings<EnvironmentVariables>(item, "environment", where);
      assignment.nodelist = Field<std::string>(item, "nodelist", "", where);
      assignment.working_directory = Field<std::string>(item, "working_directory", "", where);
      assignment.fallback_to_own_directory = Field(item, "fallback_to_own_directory", false, where);
      assignment.stdout_path = Field<std::string>(item, "stdout", "", where);
      assignment.stderr_path = Field<std::string>(item, "stderr", "", where);
      assignment.stdout_optional = Field(item, "stdout_optional", false, where);
      assignment.start_time = Field(item, "start_time", Time{0}, where);
      assignment.time_limit = Field(item, "time_limit", Time{0}, where);
      assignment.cpus = Field(item, "cpus", int64_t{0}, where);
      assignment.memory_bytes = Field(item, "memory_bytes", int64_t{0}, where);
      assignment.grace_seconds = Field(item, "grace_seconds", 30.0, where);
    }
  } catch (const json::exception&) {
    return InvalidArgumentError("the server's sync reply has a malformed '{}'", where);
  } catch (const std::invalid_argument& error) {
    return InvalidArgumentError("the server's sync reply: {}", error.what());
  }
  return reply;
}

}  // namespace allot
