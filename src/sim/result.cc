#include "sim/result.h"

namespace allot {

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCompleted: return "completed";
    case Outcome::kTimedOut: return "timed_out";
    case Outcome::kCancelled: return "cancelled";
    case Outcome::kFailed: return "failed";
    case Outcome::kRejected: return "rejected";
    case Outcome::kUnfinished: return "unfinished";
  }
  return "unknown";
}

}  // namespace allot
