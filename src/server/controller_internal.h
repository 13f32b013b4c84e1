// What the Controller's source files share and nothing else uses: controller.cc (the job
// lifecycle and the loop), controller_recovery.cc, controller_agents.cc, controller_admin.cc,
// controller_metrics.cc and controller_steps.cc are one class, split along its seams.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/input_limits.h"
#include "core/status.h"
#include "core/units.h"

namespace allot::controller_internal {

constexpr Time kDay = 86400;
inline const std::vector<std::string> kEndedStates = {"completed", "failed", "cancelled", "timeout",
                                                      "node_fail", "preempted"};

inline Time DayStart(Time t) { return t - ((t % kDay) + kDay) % kDay; }

// A JSON request body: an object whose keys are all in `allowed`.
inline StatusOr<nlohmann::json> ParseBody(std::string_view body, const std::vector<std::string_view>& allowed) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return nlohmann::json::object();
  // Before the parser: a deep document would be copied recursively below, and text that is not
  // UTF-8 could not be written back out.
  ALLOT_RETURN_IF_ERROR(CheckUtf8(body, "the request body"));
  ALLOT_RETURN_IF_ERROR(CheckNesting(body, kMaxNestingDepth, "the request body"));
  nlohmann::json parsed = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return InvalidArgumentError("the request body is not valid JSON");
  }
  if (!parsed.is_object()) return InvalidArgumentError("the request body must be a JSON object");
  for (const auto& [key, value] : parsed.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return InvalidArgumentError("unknown field '{}'; expected one of: {}", key, fmt::join(allowed, ", "));
    }
  }
  return parsed;
}

// Idempotency keys are the submitter's: the job's account and user with the key, so two users
// of one name in different accounts never see each other's replies.
inline std::string IdempotencyScope(std::string_view account, std::string_view user, std::string_view key) {
  return fmt::format("{}\n{}\n{}", account, user, key);
}

}  // namespace allot::controller_internal
