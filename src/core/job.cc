#include "core/job.h"

namespace allot {

std::string_view TopologyModeName(TopologyMode mode) {
  switch (mode) {
    case TopologyMode::kNone: return "none";
    case TopologyMode::kPreferred: return "preferred";
    case TopologyMode::kRequired: return "required";
  }
  return "?";
}

std::string_view JobKindName(JobKind kind) {
  switch (kind) {
    case JobKind::kBatch: return "batch";
    case JobKind::kService: return "service";
    case JobKind::kInteractive: return "interactive";
  }
  return "?";
}

StatusOr<JobKind> ParseJobKind(std::string_view name) {
  if (name == "batch") return JobKind::kBatch;
  if (name == "service") return JobKind::kService;
  if (name == "interactive") return JobKind::kInteractive;
  return InvalidArgumentError("unknown job kind '{}'; use batch, service or interactive", name);
}

std::string_view ReasonCodeName(ReasonCode code) {
  switch (code) {
    case ReasonCode::kNone: return "none";
    case ReasonCode::kHeld: return "held";
    case ReasonCode::kPriority: return "priority";
    case ReasonCode::kQuota: return "quota";
    case ReasonCode::kGrant: return "grant";
    case ReasonCode::kResources: return "resources";
    case ReasonCode::kTopology: return "topology";
    case ReasonCode::kReserved: return "reserved";
    case ReasonCode::kBackfillBlocked: return "backfill";
    case ReasonCode::kPreempted: return "preempted";
  }
  return "?";
}

}  // namespace allot
