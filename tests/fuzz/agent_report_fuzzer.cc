// Fuzzes the server's reader of an agent's sync report (POST /v1/agents/{node}/sync): it never
// throws or crashes, and whatever it accepts, written again as an agent writes it, reads back
// the same (so no field is half-read).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/agent_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  allot::StatusOr<allot::AgentReport> report = allot::ParseAgentReport(body);
  if (!report.ok()) return 0;
  allot::StatusOr<allot::AgentReport> again = allot::ParseAgentReport(allot::RenderAgentReport(*report));
  if (!again.ok() || again->tasks.size() != report->tasks.size() || again->logs.size() != report->logs.size() ||
      again->hostname != report->hostname || again->gpus != report->gpus) {
    std::abort();
  }
  for (size_t i = 0; i < report->tasks.size(); ++i) {
    const allot::ReportedTask& a = report->tasks[i];
    const allot::ReportedTask& b = again->tasks[i];
    if (a.job != b.job || a.epoch != b.epoch || a.task != b.task || a.exited != b.exited || a.task < 0) std::abort();
  }
  for (size_t i = 0; i < report->logs.size(); ++i) {
    if (report->logs[i].data != again->logs[i].data || report->logs[i].offset < 0) std::abort();
  }
  return 0;
}
