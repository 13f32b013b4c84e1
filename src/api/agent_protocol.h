// The agent's side of the sync protocol as the server reads it (docs/agents.md): the report an
// agent sends with POST /v1/agents/{node}/sync, parsed and checked whole before any of it is
// applied, so a malformed or hostile report changes nothing.
//
//   ALLOT_ASSIGN_OR_RETURN(nlohmann::json report, ParseAgentReport(body));
//   for (const nlohmann::json& task : report["tasks"]) ...  // every field has its type
//
// A report is an object with these optional fields: hostname, address, gpu_model (strings),
// gpus (a count), cpus, memory, wait_seconds (numbers), tasks and logs (arrays, always present
// after parsing). Each task has job, epoch, task (non-negative integers), state (running or
// exited), and may have exit_code (0-255), timed_out and out_of_memory (booleans). Each log
// chunk has job, task, offset (non-negative integers), stream (out or err) and data (text).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace allot {

// A job has at most a million tasks of its own (config.cc); the tasks of its steps (srun) take
// the indexes after those, up to this bound, which keeps every index an int.
inline constexpr uint64_t kMaxTaskIndex = uint64_t{1} << 30;

StatusOr<nlohmann::json> ParseAgentReport(std::string_view body);

}  // namespace allot
