// Fuzzes the server's reader of an agent's sync report (POST /v1/agents/{node}/sync): whatever it
// accepts must have the documented shape, so applying it cannot throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/agent_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  allot::StatusOr<nlohmann::json> report = allot::ParseAgentReport(body);
  if (!report.ok()) return 0;
  // What the controller reads of it, read here the same way: none of it may throw.
  for (const nlohmann::json& task : (*report)["tasks"]) {
    (void)task["job"].get<uint64_t>();
    (void)task["epoch"].get<uint64_t>();
    (void)task["task"].get<uint64_t>();
    (void)task.value("exit_code", 1);
    (void)task.value("timed_out", false);
    (void)task.value("state", "");
  }
  for (const nlohmann::json& chunk : (*report)["logs"]) {
    (void)chunk.value("job", uint64_t{0});
    (void)chunk.value("task", 0);
    (void)chunk.value("offset", int64_t{0});
    (void)chunk.value("data", "");
    (void)chunk.value("stream", "");
  }
  (void)report->value("hostname", "");
  (void)report->value("wait_seconds", 0.0);
  (void)report->dump();
  return 0;
}
