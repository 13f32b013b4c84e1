#include "api/agent_protocol.h"

#include <algorithm>
#include <array>
#include <string>

#include "core/input_limits.h"

namespace allot {
namespace {

using nlohmann::json;

// The shape of an agent's report, checked whole before any of it is applied, so a malformed
// report changes nothing (and never throws half-way through a sync).
Status CheckShape(const json& report) {
  auto bad = [](std::string_view what) { return InvalidArgumentError("agent report: {}", what); };
  for (const char* key : {"hostname", "address", "gpu_model"}) {
    if (report.contains(key) && !report[key].is_string()) return bad(fmt::format("{} must be a string", key));
  }
  if (report.contains("gpus") && !report["gpus"].is_number_unsigned()) return bad("gpus must be a count");
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
        !chunk.contains("stream") || (chunk["stream"] != "out" && chunk["stream"] != "err") || !chunk.contains("data") ||
        !chunk["data"].is_string()) {
      return bad("each log chunk needs job, task, offset (non-negative integers), stream (out or err) and data");
    }
  }
  return OkStatus();
}

}  // namespace

StatusOr<json> ParseAgentReport(std::string_view body) {
  ALLOT_RETURN_IF_ERROR(CheckUtf8(body, "the agent report"));
  ALLOT_RETURN_IF_ERROR(CheckNesting(body, kMaxNestingDepth, "the agent report"));
  json report = body.find_first_not_of(" \t\r\n") == std::string_view::npos
                    ? json::object()
                    : json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded()) return InvalidArgumentError("the agent report is not valid JSON");
  if (!report.is_object()) return InvalidArgumentError("the agent report must be a JSON object");
  static constexpr std::array<std::string_view, 9> kFields = {"hostname", "address", "gpus", "gpu_model", "cpus",
                                                              "memory", "tasks", "logs", "wait_seconds"};
  for (const auto& [key, value] : report.items()) {
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) {
      return InvalidArgumentError("the agent report has an unknown field '{}'", key);
    }
  }
  ALLOT_RETURN_IF_ERROR(CheckShape(report));
  for (const char* list : {"tasks", "logs"}) {
    if (!report.contains(list)) report[list] = json::array();
  }
  return report;
}

}  // namespace allot
